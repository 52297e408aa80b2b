"""mfg-rl: mean-field games solved to their Nash equilibrium, as RL environments.

Example:
    >>> from mfg_rl import problems, solve
    >>> eq = solve(problems.make("lq-1d", Nx=51, Nt=10), progress=False)
    >>> eq.diagnostics.converged
    True
"""

from mfg_rl import problems
from mfg_rl._version import __version__
from mfg_rl.backends import available_backends, create_backend
from mfg_rl.envs import register_envs
from mfg_rl.errors import SolverError
from mfg_rl.solvers import Equilibrium, solve

register_envs()

__all__ = [
    "Equilibrium", "SolverError", "__version__", "available_backends", "create_backend", "problems", "solve",
]
