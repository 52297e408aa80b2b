"""A crowd leaves a corridor through an exit: mass leaves, and the books balance.

Run: python examples/crowd_exit.py          (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import tempfile

from mfg_rl import problems, solve
from mfg_rl.plotting import plot_equilibrium

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
problem = problems.make("crowd-exit-1d", Nx=40 if tiny else 200, Nt=20 if tiny else 100)
eq = solve(problem, progress=not tiny)
print(eq.diagnostics.summary())
d = eq.diagnostics
for n in range(0, problem.time.Nt + 1, max(1, problem.time.Nt // 5)):
    print(f"t={problem.time.times()[n]:.2f}  inside {d.mass[n]:.6f}  exited {d.exited[n]:.6f}")
print(f"inside + exited at T = {d.mass[-1] + d.exited[-1]:.15f}")
print(f"figure: {plot_equilibrium(eq, os.path.join(tempfile.gettempdir(), 'mfg_rl_exit.png'))}")
