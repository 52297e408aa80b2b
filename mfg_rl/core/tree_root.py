"""The root of a tree mesh: the box, its uniform root grid and the range of levels.

Meshes with one root are comparable leaf by leaf (same integer coordinates, same Morton
keys), which is what transfers between an old and a refined mesh rely on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_LEAVES = 2**27
"""Largest uniform ``min_level`` mesh a root may start from (~134 million leaves, ~3 GB)."""
COORD_BITS = {1: 62, 2: 31}
"""Bits of a finest-level coordinate per dimension, so that a Morton key fits an int64."""


def _integer(name: str, value: object, low: int) -> int:
    """``value`` as an int ``>= low``, else an error naming ``name`` and the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def _finite(name: str, value: object) -> float:
    """``value`` as a finite float, else an error naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value}")
    return float(value)


@dataclass(frozen=True)
class TreeRoot:
    """A box ``prod_d [lo_d, hi_d]`` cut into ``root_shape`` cells (level 0), refined between
    ``min_level`` and ``max_level``; a cell of level ``l`` has width
    ``h_{l,d} = (hi_d - lo_d) / (root_shape_d 2^l)``.

    Args:
        bounds: ``((lo, hi),)`` in 1D or ``((lo0, hi0), (lo1, hi1))`` in 2D, finite, ``lo < hi``.
        root_shape: cells of level 0 per axis, each ``>= 1``.
        min_level: the coarsest level a leaf may have (``>= 0``).
        max_level: the finest level (``>= min_level``; the finest grid
            ``root_shape 2^max_level`` must have fewer than ``2^31`` cells per axis in 2D).
        periodic: per axis (or one bool for all), whether the two ends are glued.

    Example:
        >>> TreeRoot([(0.0, 2.0), (0.0, 1.0)], (2, 1), min_level=1, max_level=4).finest_shape
        (32, 16)
    """

    bounds: tuple[tuple[float, float], ...]
    root_shape: tuple[int, ...]
    min_level: int
    max_level: int
    periodic: tuple[bool, ...]

    def __init__(self, bounds: Sequence[Sequence[float]], root_shape: Sequence[int], min_level: int = 0,
                 max_level: int = 0, periodic: bool | Sequence[bool] = False) -> None:
        try:
            pairs = tuple(tuple(pair) for pair in bounds)
        except TypeError:
            raise TypeError(f"bounds must be a sequence of (lo, hi) pairs, got {bounds!r}") from None
        if not 1 <= len(pairs) <= 2:
            raise ValueError(f"bounds must describe a 1D or 2D box (1 or 2 (lo, hi) pairs), got {len(pairs)}")
        checked = []
        for d, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"bounds[{d}] must be a (lo, hi) pair of a box, got {pair!r}")
            lo, hi = _finite(f"bounds[{d}][0]", pair[0]), _finite(f"bounds[{d}][1]", pair[1])
            if not lo < hi:
                raise ValueError(f"bounds[{d}] must satisfy lo < hi, got ({lo}, {hi})")
            checked.append((lo, hi))
        ndim = len(checked)
        if isinstance(root_shape, (int, np.integer)) and not isinstance(root_shape, bool):
            root_shape = (root_shape,) * ndim
        shape = tuple(_integer(f"root_shape[{d}]", n, 1) for d, n in enumerate(root_shape))
        if len(shape) != ndim:
            raise ValueError(f"root_shape must give one cell count per axis ({ndim}), got {len(shape)}")
        min_level = _integer("min_level", min_level, 0)
        max_level = _integer("max_level", max_level, min_level)
        bits = COORD_BITS[ndim]
        limit = bits - max(int(n - 1).bit_length() for n in shape)
        if max_level > limit:
            raise ValueError(
                f"max_level must be <= {limit} for root_shape {shape} in {ndim}D (the finest grid needs "
                f"fewer than 2^{bits} cells per axis for 64-bit Morton keys), got {max_level}")
        start = math.prod(shape) * 2 ** (ndim * int(min_level))
        if start > MAX_LEAVES:
            raise ValueError(f"min_level = {min_level} starts from {start} leaves; the limit is {MAX_LEAVES} "
                             f"(lower min_level or root_shape)")
        for d, ((lo, hi), n) in enumerate(zip(checked, shape, strict=True)):
            h = (hi - lo) / (n * 2.0**max_level)
            if not (h > 0 and math.isfinite(h) and h**ndim > 0):
                raise ValueError(f"bounds[{d}] = ({lo}, {hi}) gives an unusable finest cell width {h!r} "
                                 f"at max_level = {max_level}")
        if isinstance(periodic, (bool, np.bool_)):
            periodic = (bool(periodic),) * ndim
        flags = tuple(periodic)
        if len(flags) != ndim or not all(isinstance(p, (bool, np.bool_)) for p in flags):
            raise TypeError(f"periodic must be a bool or {ndim} bools (one per axis), got {periodic!r}")
        object.__setattr__(self, "bounds", tuple(checked))
        object.__setattr__(self, "root_shape", shape)
        object.__setattr__(self, "min_level", int(min_level))
        object.__setattr__(self, "max_level", int(max_level))
        object.__setattr__(self, "periodic", tuple(bool(p) for p in flags))

    @property
    def ndim(self) -> int:
        return len(self.bounds)

    @property
    def finest_shape(self) -> tuple[int, ...]:
        """Cells per axis of the uniform grid at ``max_level``."""
        return tuple(n << self.max_level for n in self.root_shape)

    @property
    def volume(self) -> float:
        """``prod_d (hi_d - lo_d)``."""
        return math.prod(hi - lo for lo, hi in self.bounds)

    def width(self, level: np.ndarray | int) -> np.ndarray:
        """Cell widths ``h_{l,d}`` of cells of level ``level``: shape ``(*level.shape, d)``."""
        span = np.array([hi - lo for lo, hi in self.bounds]) / np.array(self.root_shape)
        return span * np.ldexp(1.0, -np.asarray(level, dtype=np.int64))[..., None]
