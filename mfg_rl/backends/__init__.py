"""Backends: where arrays live, and the kernels that differ per library.

``create_backend(None)`` picks the best installed library (torch > jax > numpy) unless
the ``MFG_RL_BACKEND`` environment variable or the ``name`` argument says otherwise.

Example:
    >>> from mfg_rl.backends import create_backend
    >>> backend = create_backend("numpy")
    >>> backend.name, backend.device
    ('numpy', 'cpu')
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from mfg_rl.backends.base import Array, Backend
from mfg_rl.backends.sparse import SparsePattern

__all__ = ["Array", "Backend", "SparsePattern", "available_backends", "create_backend"]

log = logging.getLogger("mfg_rl.backends")

PREFERENCE = ("torch", "jax", "numpy")
ENV_VAR = "MFG_RL_BACKEND"


def _installed(name: str) -> bool:
    return name == "numpy" or importlib.util.find_spec(name) is not None


def available_backends() -> dict[str, list[str]]:
    """Installed backends and the devices each can use, e.g. ``{"torch": ["cpu"], ...}``.

    Importing jax here is deferred until asked, so this is the one place that may load it.
    """
    found: dict[str, list[str]] = {}
    for name in PREFERENCE:
        if not _installed(name):
            continue
        if name == "numpy":
            found[name] = ["cpu"]
        elif name == "torch":
            from mfg_rl.backends.torch_backend import torch_devices

            found[name] = torch_devices()
        else:
            from mfg_rl.backends.jax_backend import import_jax

            found[name] = [f"{d.platform}:{d.id}" for d in import_jax().devices()]
    return found


def create_backend(
    name: str | Backend | None = None, *, device: str | None = None, dtype: Any = None
) -> Backend:
    """Create the backend ``name`` (``"torch"``, ``"jax"``, ``"numpy"``) on ``device``.

    With ``name=None`` the ``MFG_RL_BACKEND`` environment variable decides, else the first
    installed of torch > jax > numpy. ``dtype`` defaults to float64 (float32 on MPS, which
    has no float64). A ``Backend`` passed in is returned as is.
    """
    if isinstance(name, Backend):
        return name
    reason = "asked for by argument"
    if name is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            name, reason = env, f"set by {ENV_VAR}"
        else:
            name = next(n for n in PREFERENCE if _installed(n))
            reason = "best installed (torch > jax > numpy)"
    if not isinstance(name, str) or name.lower() not in PREFERENCE:
        raise ValueError(f"backend must be one of {', '.join(PREFERENCE)} or None, got {name!r}")
    name = name.lower()
    if not _installed(name):
        raise ImportError(f"backend {name!r} is not installed: pip install 'mfg-rl[{name}]'")
    if name == "torch":
        from mfg_rl.backends.torch_backend import TorchBackend as cls
    elif name == "jax":
        from mfg_rl.backends.jax_backend import JaxBackend as cls
    else:
        from mfg_rl.backends.numpy_backend import NumpyBackend as cls
    backend = cls(device=device, dtype=dtype)
    log.info("backend %s on %s (%s): %s", name, backend.device, backend.dtype_name, reason)
    return backend
