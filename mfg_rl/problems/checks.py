"""Checks of the catalogue's parameters that the general ones (``mfg_rl.checks``) do not cover."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.checks import check_int
from mfg_rl.core.grid import MAX_NODES


def check_cells(name: str, value: Any, minimum: int = 3) -> int:
    """A count of cells or time steps: an integer in ``[minimum, MAX_NODES]``."""
    return check_int(name, value, minimum, MAX_NODES)


def normalised(m0: np.ndarray, cell_volume: float, width: str = "m0_width") -> np.ndarray:
    """``m0`` scaled to mass 1 on the grid; a bump too narrow to touch a node is an error naming
    ``width``, the parameter that sets the bump's width."""
    mass = float(m0.sum()) * cell_volume
    if not mass > 1e-300:
        raise ValueError(f"{width} is too small for the grid: the initial bump misses every node; "
                         f"use a larger {width} or more cells")
    return m0 / mass
