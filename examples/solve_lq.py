"""Solve the linear-quadratic MFG and compare with its closed-form equilibrium.

Run: python examples/solve_lq.py            (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import tempfile

import numpy as np

from mfg_rl import problems, solve
from mfg_rl.plotting import plot_equilibrium

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
problem = problems.make("lq-1d", Nx=41 if tiny else 401, Nt=10 if tiny else 100)
eq = solve(problem, progress=not tiny)
print(eq.diagnostics.summary())

x, h, t = problem.grid.coordinates()[0], problem.grid.spacing[0], problem.time.times()
m = eq.m.numpy()
mean = m @ x * h
print(f"max |mean(m_t) - exact| = {np.max(np.abs(mean - problem.exact.mean(t))):.2e}")
near = np.abs(x - problem.params["mu0"]) < 2.0
error_u = np.max(np.abs(eq.u.numpy()[0] - problem.exact.u(0.0, x))[near])
print(f"max |u(0, x) - exact| near the crowd = {error_u:.2e}")
out = plot_equilibrium(eq, os.path.join(tempfile.gettempdir(), "mfg_rl_lq.png"))
print(f"figure: {out}")
