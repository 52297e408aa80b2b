"""Parameter checks shared by the catalogue's factories: clear errors before any work."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a float, or a ``ValueError``/``TypeError`` naming ``name`` and its range."""
    lo = "(-inf" if low is None else f"{'(' if open_low else '['}{low:g}"
    hi = "inf)" if high is None else f"{high:g}{')' if open_high else ']'}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number in {lo}, {hi}, got {value!r}")
    value = float(value)
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number in {lo}, {hi}, got {value}")
    return value


def check_cells(name: str, value: Any, minimum: int = 3) -> int:
    """A count of cells or time steps: an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of the ``allowed`` names."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def normalised(m0: np.ndarray, cell_volume: float) -> np.ndarray:
    """``m0`` scaled to mass 1 on the grid; a bump too narrow to touch a node is an error."""
    mass = float(m0.sum()) * cell_volume
    if not mass > 1e-300:
        raise ValueError("m0_width is too small for the grid: the initial bump misses every node")
    return m0 / mass
