"""A 2D room emptying through an exit: snapshots of the equilibrium density and value.

Run: python examples/crowd_2d.py            (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import tempfile

from mfg_rl import problems, solve
from mfg_rl.plotting import plot_equilibrium

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = 12 if tiny else 48
problem = problems.make("crowd-2d", Nx=size, Ny=size, Nt=10 if tiny else 40)
eq = solve(problem, progress=not tiny)
print(eq.diagnostics.summary())
print(f"figure: {plot_equilibrium(eq, os.path.join(tempfile.gettempdir(), 'mfg_rl_crowd2d.png'))}")
