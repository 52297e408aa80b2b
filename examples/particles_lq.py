"""Solve the linear-quadratic MFG with a particle Fokker-Planck and compare with the closed form.

Run: python examples/particles_lq.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

import numpy as np

from mfg_rl import problems, solve

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
n_particles = 5_000 if tiny else 200_000
problem = problems.make("lq-1d", Nx=41 if tiny else 201, Nt=10 if tiny else 50)
eq = solve(problem, fp="particles", n_particles=n_particles, seed=0, tol=n_particles**-0.5,
           progress=not tiny)
print(eq.diagnostics.summary())

(x,), h, t = problem.grid.coordinates(), problem.grid.spacing[0], problem.time.times()
mean = eq.m.numpy() @ x * h
print(f"max |mean(m_t) - exact| = {np.max(np.abs(mean - problem.exact.mean(t))):.2e} "
      f"(N = {n_particles}, Monte Carlo error ~ {np.sqrt(0.1 / n_particles):.1e})")
