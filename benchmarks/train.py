"""Benchmark of the main job: PPO's exploitability against wall time and env steps.

Runs ``mfg_rl.agents.train`` (PPO, default hyperparameters, CPU, one torch thread) on
``LQ1D-v0`` and ``CrowdExit1D-v0`` in both regimes (best response to the frozen
equilibrium crowd; fictitious play, where the crowd is the average of the crowds the
agent's own policies induce), scoring the policy with ``mfg_rl.benchmark.evaluate`` every
``--eval-every`` iterations. Prints the curve of each run (seconds, env steps,
exploitability) and a table: regime, env, steps, seconds, exploitability before/after,
their ratio, and the first time the exploitability was 20x below the initial policy's.
Target on a 2-core CPU: 20x within 3 minutes on LQ1D-v0.

Usage::

    python benchmarks/train.py             # default budgets (about 7 minutes on 2 CPU cores)
    python benchmarks/train.py --quick     # tiny grids and budgets, about a minute
    python benchmarks/train.py --env mfg_rl/LQ1D-v0 --regime best-response --steps 500000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import lightning.pytorch as pl

from mfg_rl.agents import DEFAULT_STEPS, train

ENVS = ("mfg_rl/LQ1D-v0", "mfg_rl/CrowdExit1D-v0")
REGIMES = ("best-response", "fictitious-play")
QUICK = {"mfg_rl/LQ1D-v0": {"Nx": 51, "Nt": 10}, "mfg_rl/CrowdExit1D-v0": {"Nx": 50, "Nt": 20}}


class Curve(pl.Callback):
    """(seconds since the fit started, env steps, exploitability) at every scoring."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int, float]] = []
        self.start = 0.0
        self._seen: Any = None

    def on_fit_start(self, trainer: pl.Trainer, module: Any) -> None:
        self.start = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:  # after the initial scoring
        self.points.append((0.0, 0, module.initial["exploitability"]))
        self._seen = module.latest

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        if module.latest is not self._seen:
            self._seen = module.latest
            self.points.append((time.perf_counter() - self.start, module.env_steps,
                                module.latest["exploitability"]))


def run(env_id: str, regime: str, steps: int | None, quick: bool, eval_every: int, logdir: str) -> dict:
    curve = Curve()
    result = train(env_id, regime=regime, steps=steps, device="cpu", logdir=logdir, progress=False,
                   env_kwargs=QUICK[env_id] if quick else {}, num_envs=32 if quick else 128,
                   eval_every=eval_every, callbacks=[curve])
    before, after = result.before["exploitability"], result.after["exploitability"]
    hit = next((t for t, _, e in curve.points if e <= before / 20.0), None)
    return {"env": env_id.split("/")[-1], "regime": regime, "steps": result.env_steps,
            "seconds": result.seconds, "before": before, "after": after, "ratio": before / max(after, 1e-300),
            "to_20x": hit, "curve": curve.points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny grids and budgets")
    parser.add_argument("--env", choices=ENVS, action="append", help="env id(s) (default: both)")
    parser.add_argument("--regime", choices=REGIMES, action="append", help="regime(s) (default: both)")
    parser.add_argument("--steps", type=int, default=None, help="budget (default: the env's default)")
    parser.add_argument("--eval-every", type=int, default=5, help="iterations between scorings")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    with tempfile.TemporaryDirectory() as logdir:
        for env_id in args.env or ENVS:
            for regime in args.regime or REGIMES:
                steps = args.steps or (3_000 if args.quick else DEFAULT_STEPS[env_id])
                row = run(env_id, regime, steps, args.quick, 1 if args.quick else args.eval_every, logdir)
                rows.append(row)
                print(f"\n{row['env']} {row['regime']}: seconds, env steps, exploitability")
                for seconds, env_steps, value in row["curve"]:
                    print(f"  {seconds:7.1f}  {env_steps:>9,}  {value:.4e}")
    print(f"\n{'regime':<16} {'env':<15} {'steps':>10} {'seconds':>8} {'expl. before':>13} "
          f"{'expl. after':>12} {'ratio':>7} {'20x at (s)':>10}")
    for r in rows:
        hit = "-" if r["to_20x"] is None else f"{r['to_20x']:.1f}"
        print(f"{r['regime']:<16} {r['env']:<15} {r['steps']:>10,} {r['seconds']:>8.1f} {r['before']:>13.4e} "
              f"{r['after']:>12.4e} {r['ratio']:>7.1f} {hit:>10}")


if __name__ == "__main__":
    main()
