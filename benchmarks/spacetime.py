"""Space-time strategies against time marching: one table, measured in one run.

Rows per case: ``sequential`` (marching, damped fixed point), ``global`` (one sparse
space-time solve per trajectory, SuperLU), ``global-krylov`` (FGMRES, time-sweep
preconditioner), ``newton`` (monolithic Newton on the coupled system, global warm-up),
all to the same ``tol``; ``ratio`` = sequential seconds / row seconds. Parareal is not
implemented yet: its rows say so.

Cases: crowd-exit-1d at ``Nx=501, Nt=1000`` and crowd-2d at ``64x64, Nt=200``, plus
lq-1d at ``201x50`` and ``2001x1000`` (the equilibrium-solver performance goals).
``--quick`` uses small sizes. A row is stopped at ``--max-seconds`` (a callback ends the
coupling loop; the table says "stopped"); a Newton row whose sparse LU, predicted from
``t ~ 0.16 s (n / 2e4)^1.4`` per factorisation (measured on this machine), exceeds the
limit is skipped and the table says so.

Usage::

    python benchmarks/spacetime.py --quick
    python benchmarks/spacetime.py --max-seconds 30 --backend numpy
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mfg_rl import problems, solve
from mfg_rl.solvers.callbacks import Callback

ROWS = ("sequential", "global", "global-krylov", "newton")


class TimeLimit(Callback):
    """Stops the coupling loop once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self.hit = False

    def on_iteration(self, state: Any) -> bool:
        self.hit = time.perf_counter() - self.start > self.seconds
        return not self.hit


def cases(quick: bool) -> list[tuple[str, dict[str, int]]]:
    if quick:
        return [("crowd-exit-1d", {"Nx": 101, "Nt": 50}), ("crowd-2d", {"Nx": 16, "Ny": 16, "Nt": 10}),
                ("lq-1d", {"Nx": 201, "Nt": 50})]
    return [("crowd-exit-1d", {"Nx": 501, "Nt": 1000}), ("crowd-2d", {"Nx": 64, "Ny": 64, "Nt": 200}),
            ("lq-1d", {"Nx": 201, "Nt": 50}), ("lq-1d", {"Nx": 2001, "Nt": 1000})]


def run_row(problem: Any, row: str, backend: str, tol: float, max_seconds: float) -> dict[str, Any]:
    unknowns = 2 * problem.grid.size * problem.time.Nt
    if row == "newton" and 6 * 0.16 * (unknowns / 2e4) ** 1.4 > max_seconds:
        return {"note": f"skipped: LU of {unknowns:.1e} unknowns predicted > {max_seconds:g} s"}
    limit = TimeLimit(max_seconds)
    method, coupling = (("global", "newton") if row == "newton" else (row, "fixed_point"))
    start = time.perf_counter()
    eq = solve(problem, method=method, coupling=coupling, backend=backend, tol=tol, progress=False,
               callbacks=[limit], max_iter=2000)
    seconds = time.perf_counter() - start
    d = eq.diagnostics
    note = "stopped at limit" if limit.hit else ("converged" if d.converged else "not converged")
    return {"seconds": seconds, "iterations": d.iterations, "residual": d.residual, "note": note,
            "m": eq.m.numpy()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per-row limit")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args()
    header = (f"{'case':<26}{'row':<15}{'seconds':>9}{'iters':>7}{'residual':>10}{'ratio':>7}"
              f"  {'|m-m_seq|':>9}  note")
    print(f"backend={args.backend} tol={args.tol:g} max_seconds={args.max_seconds:g}")
    print(header)
    print("-" * len(header))
    for name, params in cases(args.quick):
        problem = problems.make(name, **params)
        space = "x".join(str(v) for k, v in params.items() if k != "Nt")
        label = f"{name} {space} Nt={params['Nt']}"
        base: dict[str, Any] = {}
        for row in ROWS:
            r = run_row(problem, row, args.backend, args.tol, args.max_seconds)
            if row == "sequential":
                base = r
            if "seconds" not in r:
                dashes = f"{'-':>9}{'-':>7}{'-':>10}{'-':>7}  {'-':>9}"
                print(f"{label:<26}{row:<15}{dashes}  {r['note']}", flush=True)
                continue
            ratio = base["seconds"] / r["seconds"] if base.get("note") == "converged" else float("nan")
            diff = abs(r["m"] - base["m"]).max() if "m" in base else float("nan")
            print(f"{label:<26}{row:<15}{r['seconds']:>9.3f}{r['iterations']:>7d}{r['residual']:>10.1e}"
                  f"{ratio:>7.2f}  {diff:>9.1e}  {r['note']}", flush=True)
        for slices in (2, 4, 8, 16):
            dashes = f"{'-':>9}{'-':>7}{'-':>10}{'-':>7}  {'-':>9}"
            print(f"{label:<26}{f'parareal S={slices}':<15}{dashes}  not implemented", flush=True)


if __name__ == "__main__":
    main()
