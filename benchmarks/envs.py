"""Agent-steps per second of the environments, against gymnasium's ``SyncVectorEnv``, in one run.

Rows: the single-agent ``MFGEnv`` (numpy in and out), ``SyncVectorEnv`` of that env (the
baseline: what one gets from gymnasium without a native vector env), and the natively
batched ``MFGVectorEnv`` at N = 1e3, 1e5, 1e6 agents, in the frozen equilibrium crowd and
in the empirical (KDE) crowd. The vector env is timed with fixed equilibrium actions
(``step`` alone) and with the equilibrium policy called every step; the baselines step
with zeros. Rows run through episode ends (autoreset); rates use the median step time.

Usage::

    python benchmarks/envs.py                # full table (about a minute on 2 CPU cores)
    python benchmarks/envs.py --quick        # tiny sizes, seconds
    python benchmarks/envs.py --device cuda --threads 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import gymnasium
import numpy as np
import torch

import mfg_rl  # noqa: F401  (registers the ids)
from mfg_rl.envs import equilibrium_policy

ENV_ID = "mfg_rl/LQ1D-v0"
SOLVE = {"backend": "numpy", "coupling": "anderson"}


def rate_single(steps: int) -> float:
    env = gymnasium.make(ENV_ID, solve_options=SOLVE)
    env.reset(seed=0)
    action = np.zeros(1, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def rate_sync(num_envs: int, steps: int) -> float:
    envs = gymnasium.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", solve_options=SOLVE)
    envs.reset(seed=0)
    action = np.zeros((num_envs, 1), dtype=np.float32)
    envs.step(action)
    start = time.perf_counter()
    for _ in range(steps):
        envs.step(action)
    return num_envs * steps / (time.perf_counter() - start)


def rate_vector(num_envs: int, steps: int, device: str, population: str) -> tuple[float, float]:
    """Agent-steps/s of ``step`` alone (fixed equilibrium actions) and of policy + step.

    Median over steps, so that a hiccup of a shared machine does not decide the figure.
    """
    envs = gymnasium.make_vec(ENV_ID, num_envs=num_envs, device=device, population=population,
                              solve_options=SOLVE)
    policy = equilibrium_policy(envs)
    obs, _ = envs.reset(seed=0)
    action = policy.act(obs)
    envs.step(action)

    def median_step(act: bool) -> float:
        nonlocal obs
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            obs, *_ = envs.step(policy.act(obs) if act else action)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    return num_envs / median_step(False), num_envs / median_step(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--device", default="cpu", help="torch device of the vector env")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MFG_RL_CACHE", os.path.join(tempfile.gettempdir(), "mfg_rl_bench_cache"))
    steps = 20 if args.quick else 200
    sizes = (1_000,) if args.quick else (1_000, 100_000, 1_000_000)
    sync_n = 16 if args.quick else 64

    rows = []
    single = rate_single(steps * 5)
    rows.append(("MFGEnv (single agent)", "-", 1, single, None))
    baseline = rate_sync(sync_n, steps // 2)
    rows.append(("SyncVectorEnv(MFGEnv) [baseline]", "cpu", sync_n, baseline, None))
    for population in ("equilibrium", "empirical"):
        for n in sizes:
            n_steps = max(10, steps * 1000 // n) if n > 1000 else steps
            rows.append((f"MFGVectorEnv {population}", args.device, n,
                         *rate_vector(n, n_steps, args.device, population)))

    print(f"\n{ENV_ID} (Nx=201, Nt=50), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("agent-steps/s: env.step alone (fixed actions), and with the equilibrium policy's call")
    print(f"{'env':<36} {'device':<7} {'N':>9} {'step only':>11} {'vs base':>9} {'+policy':>11}")
    for name, device, n, rate, with_policy in rows:
        extra = "-" if with_policy is None else f"{with_policy:.3e}"
        print(f"{name:<36} {device:<7} {n:>9,} {rate:>11.3e} {rate / baseline:>8.0f}x {extra:>11}")


if __name__ == "__main__":
    main()
