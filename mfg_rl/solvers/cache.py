"""The on-disk cache of equilibria: entries that cannot be used are moved aside, never trusted."""

from __future__ import annotations

import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mfg_rl.core import MFGProblem
from mfg_rl.errors import EquilibriumFileError
from mfg_rl.paths import remove_stale_temps
from mfg_rl.solvers.equilibrium import Equilibrium

log = logging.getLogger("mfg_rl.solvers")


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
