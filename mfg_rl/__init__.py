"""mfg-rl: mean-field games solved to their Nash equilibrium, as RL environments.

Example:
    >>> import mfg_rl
    >>> backend = mfg_rl.create_backend("numpy")
    >>> backend.name
    'numpy'
"""

from mfg_rl._version import __version__
from mfg_rl.backends import available_backends, create_backend
from mfg_rl.errors import SolverError

__all__ = ["SolverError", "__version__", "available_backends", "create_backend"]
