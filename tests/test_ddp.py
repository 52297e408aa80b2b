"""Data parallelism: 2 CPU processes (DDP, gloo) keep identical parameters; envs are seeded by rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = """
import os, sys
import torch
torch.set_num_threads(1)
from mfg_rl.agents import train

out = sys.argv[1]
result = train("mfg_rl/LQ1D-v0", steps=3 * 10 * 16 * 2, num_envs=16, seed=5, logdir=out, progress=False,
               device="cpu", devices=2, strategy="ddp", env_kwargs={"Nx": 51, "Nt": 10},
               update_epochs=2, num_minibatches=2, eval_every=100)
rank = int(os.environ.get("LOCAL_RANK", "0"))
torch.save({"state": result.model.state_dict(), "env_steps": result.env_steps,
            "iterations": result.iterations, "checkpoint": str(result.checkpoint)}, f"{out}/rank{rank}.pt")
"""


def test_two_cpu_processes_keep_identical_parameters(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = os.environ | {"MFG_RL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["iterations"] == ranks[1]["iterations"] == 3
    assert ranks[0]["env_steps"] == ranks[1]["env_steps"] == 3 * 10 * 16 * 2  # counted over both ranks
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert ranks[0]["state"]["normalizer.count"] == 3 * 10 * 16 * 2  # statistics from both ranks
    run = torch.load(ranks[0]["checkpoint"], weights_only=False)["mfg_rl"]["ranks"]
    assert len(run) == 2  # each rank's env state is in the checkpoint, and they differ (seeded by rank)
    assert not torch.equal(run[0]["env"]["batch"]["x"], run[1]["env"]["batch"]["x"])
