"""Games the default solve converges on: every catalogue problem at T in {1, 10, 50}.

Each row is ``solve(problems.make(name, T=T), progress=False)`` with every other option
at its default (``coupling="auto"``, default grid and backend): whether it converged, its
iterations, residual and seconds, the coupling that finished and the switches on the way.
With ``--against COUPLING`` the same solve with that coupling runs too (a column of its
seconds, or why it failed), as the baseline measured in the same run.

Usage::

    python benchmarks/default_solves.py
    python benchmarks/default_solves.py --horizons 1 --against anderson
"""

from __future__ import annotations

import argparse
import time

from mfg_rl import problems, solve
from mfg_rl.errors import SolverError


def attempt(name: str, horizon: float, **options: object) -> tuple[str, object]:
    """``("ok", equilibrium)`` and the seconds, or ``("failed", message)``."""
    problem = problems.make(name, T=horizon)
    start = time.perf_counter()
    try:
        eq = solve(problem, progress=False, **options)
    except SolverError as exc:
        return "failed", f"{str(exc)[:60]}... ({time.perf_counter() - start:.1f} s)"
    return "ok", (eq, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=float, nargs="+", default=[1.0, 10.0, 50.0])
    parser.add_argument("--names", nargs="+", default=problems.names())
    parser.add_argument("--against", default=None, help="a coupling to time in the same run")
    args = parser.parse_args()
    header = f"{'problem':22s} {'T':>4s} {'conv':>5s} {'iter':>5s} {'residual':>9s} {'s':>7s}  finished by"
    print(header + (f"  | {args.against} s" if args.against else ""))
    for name in args.names:
        for horizon in args.horizons:
            status, found = attempt(name, horizon)
            if status == "failed":
                row = f"{name:22s} {horizon:4g} {'no':>5s}  {found}"
            else:
                eq, seconds = found
                d = eq.diagnostics
                last = d.switches[-1]["to"] if d.switches else "anderson"
                path = " -> ".join(["anderson"] + [s["to"] for s in d.switches])
                row = (f"{name:22s} {horizon:4g} {'yes' if d.converged else 'no':>5s} {d.iterations:5d} "
                       f"{d.residual:9.1e} {seconds:7.2f}  {last} ({path})")
            if args.against:
                other, result = attempt(name, horizon, coupling=args.against)
                row += f"  | {result[1]:.2f}" if other == "ok" else "  | " + result
            print(row, flush=True)


if __name__ == "__main__":
    main()
