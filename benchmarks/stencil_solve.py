"""Benchmark of one 2D stencil solve: the generic numpy path against the compiled kernel.

The matrix is a crowd-2d Fokker-Planck step at ``n x n``: ``problems.make("crowd-2d",
Nx=n, Ny=n, Nt=50 n / 64)`` (``dt = 2 / Nt``, ``nu = 0.02``, exit on the right), its
upwind HJB Jacobian linearised at ``u = 1 - x`` (a drift of magnitude ~1 towards the
exit) with the weight of ``m0``, plus ``I / dt``, transposed; right-hand side ``m0 / dt``.
Both paths run ``StencilSolver.solve`` on the numpy backend to ``rtol = 1e-10``:

- generic: ``StencilSolver(compiled=False)``, i.e. ``krylov.bicgstab`` with the zebra
  preconditioner on LAPACK-factorised lines, ~40 numpy calls per iteration;
- numba: ``StencilSolver(compiled=True)``, one call of
  ``mfg_rl.backends.stencil_numba.bicgstab_zebra_2d`` (compiled on first use, not timed).

Times are the best of a few solves within a budget per size.

Usage::

    python benchmarks/stencil_solve.py            # 32, 64, 128, 256 (about a minute)
    python benchmarks/stencil_solve.py --quick    # 32, 64
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from kernels import best_time  # benchmarks/kernels.py: best of a few runs

from mfg_rl import problems
from mfg_rl.backends import create_backend
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix, StencilSolver

SIZES = [32, 64, 128, 256]
RTOL = 1e-10


def fp_step(n: int) -> tuple[Any, StencilMatrix, np.ndarray]:
    """``(grid, A, b)`` of one crowd-2d Fokker-Planck step at ``n x n`` (module docstring)."""
    problem = problems.make("crowd-2d", Nx=n, Ny=n, Nt=max(1, round(50 * n / 64)))
    disc = DiscreteMFG(problem, create_backend("numpy"))
    u = 1.0 - np.asarray(disc.points[0])  # points: the (x, y) meshgrid
    m0 = np.asarray(disc.m0)
    _, jac = disc.scheme.apply(u, m0)
    matrix = StencilMatrix(jac.center + 1.0 / disc.dt, jac.minus, jac.plus).transpose(np)
    return problem.grid, matrix, m0 / disc.dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 32 and 64 only")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timing per size and path")
    args = parser.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    backend = create_backend("numpy")
    print(f"crowd-2d Fokker-Planck step, numpy backend, BiCGStab + zebra to rtol {RTOL:g}")
    print(f"{'n x n':>9} {'generic ms':>11} {'numba ms':>9} {'ratio':>6} {'it generic':>11} {'it numba':>9} "
          f"{'max |dx|/|x|':>13}")
    for n in sizes:
        grid, matrix, rhs = fp_step(n)
        row = []
        for compiled in (False, True):
            solver = StencilSolver(grid, backend, compiled=compiled, rtol=RTOL)
            seconds = best_time(lambda s=solver, a=matrix, b=rhs: s.solve(a, b), args.budget, repeats=20)
            solver.solves = solver.iterations = 0
            x = solver.solve(matrix, rhs)
            row.append((seconds, solver.iterations, x))
        (slow, it_slow, x_slow), (fast, it_fast, x_fast) = row
        diff = float(np.abs(x_fast - x_slow).max() / np.abs(x_slow).max())
        print(f"{n:>4} x{n:<4} {slow * 1e3:>11.2f} {fast * 1e3:>9.2f} {slow / fast:>6.1f} {it_slow:>11d} "
              f"{it_fast:>9d} {diff:>13.1e}")


if __name__ == "__main__":
    main()
