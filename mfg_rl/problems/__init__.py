"""The catalogue of named MFG problems: ``names()``, ``make(name, Nx=..., Nt=..., **params)``.

Each problem lives in its own module and documents its equations and parameters.
"""

from mfg_rl.problems import attractive, beach_bar, crowd_2d, crowd_exit, lq, santa_fe, walking  # noqa: F401  (modules register their problems on import)
from mfg_rl.problems.registry import make, names, parameters, register

__all__ = ["make", "names", "parameters", "register"]
