"""JaxScan (compiled ``lax.scan`` marching) against Sequential (numpy marching): one table.

Per case: Sequential seconds on numpy; JaxScan compile seconds (ahead-of-time XLA
compilation of its sweeps, ``timings["compile"]``), its first solve (compile included)
and the run of a second solve of the same problem (programs from the cache, the number
that counts in a parameter sweep); ``ratio`` = sequential / run; ``|m-m_seq|`` the
largest density difference. Both solve to ``--tol`` with the damped fixed point.

Goals (DESIGN, solver performance): lq-1d 201x50 in < 50 ms and 2001x1000 in < 3 s.
2D grids are not supported by jax-scan yet; their row says so.

Usage::

    python benchmarks/jax_scan.py --quick
    python benchmarks/jax_scan.py            # lq-1d 201x50, 2001x1000, crowd-exit-1d 501x1000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from mfg_rl import problems, solve


def cases(quick: bool) -> list[tuple[str, dict[str, int]]]:
    if quick:
        return [("lq-1d", {"Nx": 201, "Nt": 50}), ("crowd-exit-1d", {"Nx": 101, "Nt": 50}),
                ("crowd-2d", {"Nx": 16, "Ny": 16, "Nt": 10})]
    return [("lq-1d", {"Nx": 201, "Nt": 50}), ("lq-1d", {"Nx": 2001, "Nt": 1000}),
            ("crowd-exit-1d", {"Nx": 501, "Nt": 1000}), ("crowd-2d", {"Nx": 128, "Ny": 128, "Nt": 100})]


def timed(problem: Any, **options: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    eq = solve(problem, progress=False, max_iter=2000, **options)
    return time.perf_counter() - start, eq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--repeats", type=int, default=3, help="runs after the first; the best counts")
    args = parser.parse_args()
    header = (f"{'case':<28}{'seq s':>9}{'compile s':>11}{'first s':>9}{'run s':>9}{'iters':>7}"
              f"{'ratio':>8}  {'|m-m_seq|':>9}")
    print(f"tol={args.tol:g}; sequential on numpy, jax-scan on jax (x64)")
    print(header)
    print("-" * len(header))
    for name, params in cases(args.quick):
        problem = problems.make(name, **params)
        space = "x".join(str(v) for k, v in params.items() if k != "Nt")
        label = f"{name} {space} Nt={params['Nt']}"
        if problem.grid.ndim > 1:
            print(f"{label:<28}  jax-scan supports 1D grids only (NotImplementedError)", flush=True)
            continue
        seq_seconds, seq = timed(problem, backend="numpy", tol=args.tol)
        first, eq = timed(problem, method="jax-scan", tol=args.tol)
        compile_seconds = eq.diagnostics.timings["compile"]
        run = min(timed(problem, method="jax-scan", tol=args.tol)[0] for _ in range(args.repeats))
        diff = float(np.abs(eq.m.numpy() - seq.m.numpy()).max())
        print(f"{label:<28}{seq_seconds:>9.3f}{compile_seconds:>11.2f}{first:>9.2f}{run:>9.3f}"
              f"{eq.diagnostics.iterations:>7d}{seq_seconds / run:>8.1f}  {diff:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
