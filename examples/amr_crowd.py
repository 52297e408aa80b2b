"""An adaptive solve of a crowd crossing a room, against the uniform grid of its finest level.

crowd-2d with a compact crowd (sigma 0.05, width 0.05) walking to the exit: the density lives on a
small, moving part of the room. ``AMR(slabs=5, indicator="density")`` gives each of 5 time slabs a
quadtree refined where ``m`` exceeds 0.3 % of its peak and coarse where nobody is; the script solves
it that way and on the uniform grid, prints leaves per step, seconds and the L1 distance between
the two densities (the uniform grid's own error is larger: README, Solvers), and draws the meshes
over ``m`` (amr_crowd.png, what ``mfg-rl solve crowd-2d --method amr --plot`` draws).

Run: python examples/amr_crowd.py          (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import time

import numpy as np

from mfg_rl import problems, solve
from mfg_rl.plotting import plot_equilibrium
from mfg_rl.solvers.amr import AMR

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
level = 5 if tiny else 7  # the finest level: 2^level cells per side
front = {"sigma": 0.05, "m0_width": 0.05, "m0_center": (0.5, 0.5), "crowd_aversion": 0.0,
         "congestion": 0.05, "time_cost": 0.0}
problem = problems.make("crowd-2d", Nx=2**level, Ny=2**level, Nt=20, **front)
amr = AMR(max_level=level, min_level=level - 3, first_level=level - 2, tol=0.003, indicator="density",
          slabs=5)

start = time.perf_counter()
adaptive = solve(problem, method=amr, tol=1e-8, progress=False)
seconds_amr = time.perf_counter() - start
start = time.perf_counter()
uniform = solve(problem, coupling="anderson", backend="numpy", tol=1e-8, progress=False)
seconds_uniform = time.perf_counter() - start

leaves = np.mean([len(adaptive.meshes.meshes[adaptive.meshes.slab_of_level(k + 1)])
                  for k in range(problem.time.Nt)])
distance = np.abs(adaptive.m.numpy() - uniform.m.numpy()).reshape(problem.time.Nt + 1, -1).sum(axis=1).max()
print(f"uniform {problem.grid.shape}: {problem.grid.size} cells, {seconds_uniform:.2f} s, "
      f"{uniform.diagnostics.iterations} iterations")
rounds = [(round(n), k, float(f"{r:.1e}")) for n, k, r in adaptive.diagnostics.options["strategy"]["rounds"]]
share = leaves / problem.grid.size
print(f"AMR levels {amr.min_level}..{level}: {leaves:.0f} leaves per step ({share:.0%}), "
      f"{seconds_amr:.2f} s, rounds (leaves, iterations, residual) {rounds}")
print(f"max_n sum |m_amr - m_uniform| h^2 = {distance * problem.grid.cell_volume:.2e}, "
      f"mass at T {adaptive.diagnostics.mass[-1]:.6f} (uniform {uniform.diagnostics.mass[-1]:.6f})")
print(f"plot: {plot_equilibrium(adaptive, 'amr_crowd.png')}")
