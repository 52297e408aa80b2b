"""Stable-Baselines3 PPO on 128 LQ1D agents: the batched env through ``SB3VecEnv`` against 128 single envs.

Rows, each the same PPO (same hyperparameters, seed and env-step budget) on ``LQ1D-v0``:

- ``SB3VecEnv(MFGVectorEnv)``: the natively batched env, all agents as torch tensors;
- ``SB3VecEnv(SyncVectorEnv)``: gymnasium's ``SyncVectorEnv`` of 128 ``MFGEnv`` (same-step autoreset);
- ``DummyVecEnv``: SB3's own vectorisation of 128 ``MFGEnv``.

Columns: wall time per env step of the whole ``learn`` (rollouts and updates) and of the env
alone (``step_async`` + ``step_wait``, timed by a ``VecEnvWrapper``), and the exploitability
of the deterministic policy before and after, scored by ``mfg_rl.benchmark.evaluate`` through
``mfg_rl.envs.observed_policy``. One torch thread.

Usage::

    python benchmarks/sb3.py                  # 256k env steps per row (about 8 minutes on 2 CPU cores)
    python benchmarks/sb3.py --quick          # small grid and budget, seconds
    python benchmarks/sb3.py --seeds 3 --rows native sync     # the spread over seeds
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor

import mfg_rl  # noqa: F401  (registers the ids)
from mfg_rl.benchmark import evaluate
from mfg_rl.envs import SB3VecEnv, observed_policy

ENV_ID = "mfg_rl/LQ1D-v0"
SOLVE = {"backend": "numpy", "coupling": "anderson"}


class Timed(VecEnvWrapper):
    """Seconds spent in the wrapped env's steps, summed in ``seconds``."""

    def __init__(self, venv: Any) -> None:
        super().__init__(venv)
        self.seconds = 0.0

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        start = time.perf_counter()
        self.venv.step_async(actions)
        self.seconds += time.perf_counter() - start

    def step_wait(self) -> Any:
        start = time.perf_counter()
        result = self.venv.step_wait()
        self.seconds += time.perf_counter() - start
        return result


def make_venv(kind: str, num_envs: int, size: dict[str, int]) -> Any:
    if kind == "SB3VecEnv(MFGVectorEnv)":
        return SB3VecEnv(gymnasium.make_vec(ENV_ID, num_envs=num_envs, device="cpu", solve_options=SOLVE,
                                            **size))
    if kind == "SB3VecEnv(SyncVectorEnv)":
        return SB3VecEnv(gymnasium.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync",
                                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
                                            solve_options=SOLVE, **size))
    return DummyVecEnv([lambda: gymnasium.make(ENV_ID, solve_options=SOLVE, **size)] * num_envs)


def run(kind: str, num_envs: int, steps: int, size: dict[str, int], seed: int) -> dict[str, float]:
    scorer = gymnasium.make(ENV_ID, solve_options=SOLVE, **size)  # the same game, for the policy's units
    eq = scorer.unwrapped.equilibrium
    nt = eq.problem.time.Nt
    timed = Timed(make_venv(kind, num_envs, size))
    model = PPO("MlpPolicy", VecMonitor(timed), n_steps=nt, batch_size=nt * num_envs // 4, n_epochs=10,
                learning_rate=1e-3, gamma=1.0, gae_lambda=0.95, policy_kwargs={"log_std_init": -1.0},
                seed=seed, device="cpu")
    policy = observed_policy(lambda obs: model.predict(obs, deterministic=True)[0], scorer)
    before = evaluate(policy, eq, backend="numpy")["exploitability"]
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    after = evaluate(policy, eq, backend="numpy")["exploitability"]
    done = model.num_timesteps
    return {"steps": done, "seconds": seconds, "per_step": seconds / done,
            "env_per_step": timed.seconds / done, "before": before, "after": after}


KINDS = {"native": "SB3VecEnv(MFGVectorEnv)", "sync": "SB3VecEnv(SyncVectorEnv)", "dummy": "DummyVecEnv"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid and budget (smoke run)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per row (default 256000)")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=1, help="runs per row, seeds 0, 1000, ...")
    parser.add_argument("--rows", nargs="+", choices=sorted(KINDS), default=list(KINDS), help="which envs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("MFG_RL_CACHE", os.path.join(tempfile.gettempdir(), "mfg_rl_bench_cache"))
    size = {"Nx": 51, "Nt": 10} if args.quick else {}
    steps = args.steps or (10 * 10 * args.num_envs if args.quick else 256_000)
    seeds = [1000 * k for k in range(args.seeds)]  # far apart: SB3 seeds env i of a run with seed + i
    rows = {KINDS[k]: [run(KINDS[k], args.num_envs, steps, size, seed) for seed in seeds] for k in args.rows}

    base = next(iter(rows.values()))
    base_per_step = np.mean([r["per_step"] for r in rows.get(KINDS["sync"], base)])
    print(f"\nSB3 PPO on {ENV_ID} {size or '(Nx=201, Nt=50)'}, {args.num_envs} agents, {steps:,} env steps, "
          f"seeds {seeds}, torch {torch.__version__}, 1 thread; means over seeds")
    print(f"{'env':<26} {'s':>7} {'us/step':>8} {'env us/step':>12} {'vs sync':>8} "
          f"{'expl. before':>13} {'expl. after':>12}  {'after: min .. max':>22}")
    for kind, runs in rows.items():
        mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        low, high = min(r["after"] for r in runs), max(r["after"] for r in runs)
        print(f"{kind:<26} {mean['seconds']:>7.1f} {1e6 * mean['per_step']:>8.1f} "
              f"{1e6 * mean['env_per_step']:>12.1f} {base_per_step / mean['per_step']:>7.2f}x "
              f"{mean['before']:>13.4e} {mean['after']:>12.4e}  {low:>10.3e} .. {high:.3e}")


if __name__ == "__main__":
    main()
