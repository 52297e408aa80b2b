"""Time as a dimension: the same equilibrium by marching, one space-time solve, Newton, Parareal, and jitted.

Run: python examples/spacetime.py            (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import time

import numpy as np

from mfg_rl import problems, solve
from mfg_rl.solvers.parareal import Parareal

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
problem = problems.make("crowd-exit-1d", Nx=40 if tiny else 101, Nt=10 if tiny else 50)

reference = None
for method, coupling in (("sequential", "fixed_point"), ("global", "fixed_point"),
                         ("global-krylov", "fixed_point"), ("sequential", "newton")):
    start = time.perf_counter()
    eq = solve(problem, method=method, coupling=coupling, backend="numpy", tol=1e-10, progress=False)
    seconds = time.perf_counter() - start
    m = eq.m.numpy()
    reference = m if reference is None else reference
    print(f"{method:>14} / {coupling:<12} {eq.diagnostics.iterations:4d} iterations  {seconds:6.2f} s  "
          f"max|m - m_sequential| = {np.abs(m - reference).max():.1e}")

# Parareal: 4 time slices, one coarse implicit step each, fine sweeps batched over the slices.
strategy = Parareal(slices=4)
start = time.perf_counter()
eq = solve(problem, method=strategy, backend="numpy", tol=1e-10, progress=False)
seconds = time.perf_counter() - start
K = "/".join(f"{sum(c) / len(c):.1f}" for c in strategy.iterations.values())
print(f"{'parareal S=4':>14} / {'fixed_point':<12} {eq.diagnostics.iterations:4d} iterations  "
      f"{seconds:6.2f} s  max|m - m_sequential| = {np.abs(eq.m.numpy() - reference).max():.1e}"
      f"  (K per sweep HJB/FP {K})")

# The same marching compiled by jax (lax.scan, x64): the first solve compiles, the next reuse it.
try:
    import jax  # noqa: F401
except ImportError:
    print('      jax-scan skipped: jax is not installed (pip install "mfg-rl[jax]")')
else:
    for attempt in ("first", "second"):
        start = time.perf_counter()
        eq = solve(problem, method="jax-scan", tol=1e-10, progress=False)
        seconds = time.perf_counter() - start
        compile_s = eq.diagnostics.timings["compile"]
        print(f"{'jax-scan':>14} / {'fixed_point':<12} {eq.diagnostics.iterations:4d} iterations  "
              f"{seconds:6.2f} s  max|m - m_sequential| = {np.abs(eq.m.numpy() - reference).max():.1e}"
              f"  ({attempt} solve, compile {compile_s:.2f} s)")

    # 2D: the zebra BiCGStab solves are traced too (lax.while_loop), so the whole sweep compiles.
    room = problems.make("crowd-2d", Nx=8 if tiny else 24, Ny=8 if tiny else 24, Nt=4 if tiny else 20)
    marched = solve(room, backend="numpy", coupling="anderson", tol=1e-9, progress=False)
    start = time.perf_counter()
    eq = solve(room, method="jax-scan", coupling="anderson", tol=1e-9, progress=False)
    seconds = time.perf_counter() - start
    print(f"{'jax-scan 2D':>14} / {'anderson':<12} {eq.diagnostics.iterations:4d} iterations  "
          f"{seconds:6.2f} s  max|m - m_sequential| = {np.abs(eq.m.numpy() - marched.m.numpy()).max():.1e}"
          f"  (crowd-2d {room.grid.shape}, compile {eq.diagnostics.timings['compile']:.2f} s)")
