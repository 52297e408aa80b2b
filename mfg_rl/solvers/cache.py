"""The on-disk cache of equilibria: entries that cannot be used are moved aside, never trusted."""

from __future__ import annotations

import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mfg_rl.checks import shown
from mfg_rl.core import MFGProblem
from mfg_rl.errors import EquilibriumFileError
from mfg_rl.paths import default_cache_dir, remove_stale_temps
from mfg_rl.solvers.equilibrium import Equilibrium

log = logging.getLogger("mfg_rl.solvers")


def cache_directory(cache: Any) -> Path | None:
    """The directory that ``solve(cache=...)`` names (None: no cache), checked and created before any
    work: ``False``/None, ``True`` (``default_cache_dir()``) or a path to a directory."""
    if cache is False or cache is None:
        return None
    allowed = "False, True or the path of a directory"
    if cache is True:
        directory = default_cache_dir()
    elif isinstance(cache, (str, os.PathLike)) and not isinstance(cache, bytes) and str(cache):
        directory = Path(cache)
    else:
        error = ValueError if isinstance(cache, str) else TypeError
        raise error(f"cache must be {allowed}, got {shown(cache)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cache={shown(cache)} cannot be used as a directory ({directory}): "
                         f"{getattr(exc, 'strerror', None) or exc}; pass {allowed}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"cache={shown(cache)}: the directory {directory} is not writable; pass {allowed}")
    return directory


def load_cached(path: Path, problem: MFGProblem, backend: Any) -> Equilibrium | None:
    """The equilibrium cached at ``path``, or None when there is none or it cannot be used.

    An entry that ``Equilibrium.load`` rejects is renamed ``<name>.corrupt-<UTC time>`` (kept
    for inspection) with a ``UserWarning`` naming it and why, so the caller recomputes it.
    Temporary files of killed saves older than ``paths.STALE_TEMP_AGE`` are removed first.
    """
    if path.parent.is_dir():
        remove_stale_temps(path.parent, "*.npz*.tmp")
    try:
        eq = Equilibrium.load(path, problem=problem, backend=backend)
    except FileNotFoundError:
        return None
    except EquilibriumFileError as exc:
        aside = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
        warnings.warn(f"ignoring the cached equilibrium {exc.path}: {exc.reason}; moved to {aside.name}, "
                      f"recomputing", UserWarning, stacklevel=3)
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another process moved it aside first
            pass
        return None
    log.info("loaded cached equilibrium %s", path)
    return eq
