"""``mfg-rl`` without dead ends: ids and names, progress before training, safe resumes, one-line errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mfg_rl import cli, problems
from mfg_rl.agents.config import defaults
from mfg_rl.envs import env_ids

TINY = ["--steps", "40", "--num-envs", "8", "-p", "Nx=21", "-p", "Nt=5", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("isolated_cache")


def one_line_error(capsys: pytest.CaptureFixture, *words: str) -> str:
    """The captured stderr, checked to be one line without a traceback that says ``words``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def a2c_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny a2c run on LQ1D (Nx=21, Nt=5, 8 agents) started by its problem name: its checkpoint."""
    logdir = tmp_path_factory.mktemp("runs")
    assert cli.main(["train", "lq-1d", "--algo", "a2c", *TINY, "--logdir", str(logdir), "--quiet"]) == 0
    (checkpoint,) = logdir.glob("LQ1D-v0-a2c-best-response/version_0/checkpoints/last.ckpt")
    copy = tmp_path_factory.mktemp("ckpt") / "a2c.ckpt"  # outside its run: resuming it starts a new one
    shutil.copy(checkpoint, copy)
    return copy


def test_list_shows_problems_and_their_env_ids(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in problems.names():
        assert name in out
    for env_id in env_ids():
        assert env_id in out
    assert "lq-1d" in out and "env mfg_rl/LQ1D-v0" in out.split("lq-1d", 1)[1].splitlines()[0]
    assert "crowd-walk-1d" in out and "no env (solve only)" in out


def test_first_make_announces_the_solve_then_training_starts(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    args = ["train", "mfg_rl/CrowdExit1D-v0", *TINY, "--logdir", str(tmp_path)]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    solving = err.index("solving the equilibrium of crowd-exit-1d Nx=21 Nt=5 (first use; cached after in")
    assert solving < err.index("ppo on mfg_rl/CrowdExit1D-v0 with 8 agents; starting Lightning")
    assert cli.main(args) == 0  # cached now: no solve to announce
    err = capsys.readouterr().err
    assert "solving the equilibrium" not in err and "starting Lightning" in err


@pytest.mark.parametrize("typo, nearest", [("lq1d", "mfg_rl/LQ1D-v0"), ("mfg_rl/LQ1D-v", "mfg_rl/LQ1D-v0"),
                                           ("crowdexit", "mfg_rl/CrowdExit1D-v0"),
                                           ("santa-fe", "mfg_rl/SantaFeBar-v0")])
def test_train_suggests_the_nearest_id_on_a_typo(typo: str, nearest: str, capsys: pytest.CaptureFixture,
                                                 tmp_path: Path) -> None:
    assert cli.main(["train", typo, "--logdir", str(tmp_path)]) == 2
    one_line_error(capsys, f"unknown environment {typo!r}", f"did you mean {nearest}?")


def test_train_on_a_problem_without_env_and_solve_on_a_typo(capsys: pytest.CaptureFixture,
                                                           tmp_path: Path) -> None:
    assert cli.main(["train", "crowd-walk-1d", "--logdir", str(tmp_path)]) == 2
    one_line_error(capsys, "problem 'crowd-walk-1d' has no environment", "mfg_rl/CrowdExit1D-v0")
    assert cli.main(["solve", "lq1d"]) == 2
    one_line_error(capsys, "unknown problem 'lq1d'; did you mean lq-1d?")


def test_a_typo_in_a_real_process_is_one_line_without_traceback() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "MFG_RL_BACKEND"}
    result = subprocess.run([sys.executable, "-m", "mfg_rl", "train", "lq-1"], capture_output=True, text=True,
                            timeout=120, env=environ, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "did you mean mfg_rl/LQ1D-v0?" in result.stderr, result.stderr


def resume_args(checkpoint: Path, logdir: Path, *, env: str = "lq-1d", algo: str = "a2c", nx: int = 21,
                num_envs: int = 8, regime: str = "best-response", steps: int = 40,
                extra: tuple[str, ...] = ()) -> list[str]:
    return ["train", env, "--algo", algo, "--regime", regime, "--steps", str(steps), "--num-envs",
            str(num_envs), "-p", f"Nx={nx}", "-p", "Nt=5", "--device", "cpu", "--logdir", str(logdir),
            "--quiet", "--ckpt-path", str(checkpoint), *extra]


@pytest.mark.parametrize("change, named", [
    ({"algo": "ppo"}, "--algo a2c (asked ppo)"),
    ({"nx": 31}, "problem parameters Nx=21 Nt=5 (asked Nx=31 Nt=5)"),
    ({"num_envs": 4}, "--num-envs 8 (asked 4)"),
    ({"regime": "fictitious-play"}, "--regime best-response (asked fictitious-play)"),
    ({"env": "mfg_rl/CrowdExit1D-v0"}, "env mfg_rl/LQ1D-v0 (asked mfg_rl/CrowdExit1D-v0)"),
    ({"extra": ("--hparam", "hidden=32,32")}, "hidden 64,64 (asked 32,32)"),
])
def test_resume_refuses_another_run_by_name(change: dict, named: str, a2c_checkpoint: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert cli.main(resume_args(a2c_checkpoint, tmp_path, **change)) == 2
    err = one_line_error(capsys, "is another run", named, "leave out --ckpt-path to start a new run")
    assert ("`mfg-rl train mfg_rl/LQ1D-v0 --algo a2c --regime best-response --num-envs 8 -p Nx=21 -p Nt=5 "
            in err and f"--ckpt-path {a2c_checkpoint}`" in err)
    assert ("--hparam hidden=64,64" in err) == ("extra" in change)


def test_resume_continues_its_own_run(a2c_checkpoint: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    assert cli.main(resume_args(a2c_checkpoint, tmp_path, env="LQ1D-v0", steps=80)) == 0
    assert "mfg_rl/LQ1D-v0  a2c  best-response  80 env steps  2 iterations" in capsys.readouterr().out


def test_library_train_refuses_a_mismatched_resume_too(a2c_checkpoint: Path, tmp_path: Path) -> None:
    from mfg_rl.agents import train

    with pytest.raises(ValueError, match=r"algo='a2c' \(asked 'ppo'\)"):
        train("mfg_rl/LQ1D-v0", algo="ppo", steps=40, num_envs=8, env_kwargs={"Nx": 21, "Nt": 5},
              ckpt_path=a2c_checkpoint, logdir=tmp_path, progress=False)


def test_devices_that_do_not_exist_here(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path, a2c_checkpoint: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    assert cli.main(["train", "lq-1d", "--device", "cuda", "--logdir", str(tmp_path)]) == 2
    one_line_error(capsys, "--device cuda: CUDA is not available here", "use --device cpu")
    assert cli.main(["train", "lq-1d", "--device", "gpu", "--logdir", str(tmp_path)]) == 2
    one_line_error(capsys, "--device 'gpu' is not a torch device (a GPU is --device cuda)")
    assert cli.main(["bench", str(a2c_checkpoint), "--device", "gpu"]) == 2
    one_line_error(capsys, "mfg-rl bench: --device 'gpu'")


def test_unwritable_paths_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["solve", "lq-1d", "--quiet", "--save", str(blocker / "eq.npz")]) == 2
    one_line_error(capsys, f"--save {blocker / 'eq.npz'}: cannot write in {blocker}",
                   "choose a writable path for --save")
    assert capsys.readouterr().out == ""  # nothing was solved
    assert cli.main(["solve", "lq-1d", "--quiet", "--save", f"{tmp_path}/"]) == 2
    one_line_error(capsys, "--save takes a file name, got the folder", "equilibrium.npz")
    assert cli.main(["solve", "lq-1d", "--quiet", "--plot", str(blocker / "m.png")]) == 2
    one_line_error(capsys, "--plot")
    assert cli.main(["train", "lq-1d", "--logdir", str(blocker / "runs")]) == 2
    one_line_error(capsys, "--logdir", "choose a writable path for --logdir")


def test_garbage_checkpoints_are_named_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    files = {"random.ckpt": os.urandom(2000), "text.ckpt": b"hello\n", "empty.ckpt": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    for name in [*files, "foreign.ckpt"]:
        path = tmp_path / name
        assert cli.main(["bench", str(path)]) == 2
        one_line_error(capsys, str(path), "pass the .ckpt file written by mfg-rl train")
        assert cli.main(["train", "lq-1d", "--ckpt-path", str(path), "--logdir", str(tmp_path)]) == 2
        one_line_error(capsys, f"--ckpt-path: {path}")
    assert cli.main(["train", "lq-1d", "--ckpt-path", str(tmp_path / "missing.ckpt"),
                     "--logdir", str(tmp_path)]) == 2
    one_line_error(capsys, "no checkpoint at")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["train", "lq-1d", "--algo", "dqn"]) == 2
    one_line_error(capsys, "invalid choice: 'dqn'", "see mfg-rl train --help")


def test_train_help_lists_every_hyperparameter_with_its_default(capsys: pytest.CaptureFixture) -> None:
    from mfg_rl.agents.algorithms import REGISTRY

    assert cli.main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: ppo)" in out
    sections: dict[str, list[str]] = {}
    name = ""
    for line in out[out.index("per --algo:"):].splitlines()[1:]:
        if line.startswith("  "):
            sections[name].append(line)
        else:
            name = line.split(":")[0]
            sections[name] = []
    assert list(sections) == list(REGISTRY)
    first: dict[type, object] = {}
    for name, entry in REGISTRY.items():
        params = defaults(name)
        base = first.setdefault(entry.hyperparameters, params)
        for field in dataclasses.fields(params):
            value = getattr(params, field.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            listed = f"  {field.name}={shown}" in sections[name]
            assert listed == (base is params or value != getattr(base, field.name)), (name, field.name)
    assert "  optimizer=rmsprop" in sections["a2c"] and "  optimizer=adam" in sections["ppo"]


def test_hyperparameter_tuples_and_none_parse_from_the_command_line() -> None:
    assert cli._parse_param("hidden=32,32") == ("hidden", (32, 32))
    assert cli._parse_param("target_kl=None") == ("target_kl", None)
    assert cli._parse_param("m0_center=0.3, 0.5") == ("m0_center", (0.3, 0.5))
