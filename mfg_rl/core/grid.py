"""Space and time grids.

Space is a box of cells: along each axis ``n`` cells of width ``h = (hi - lo) / n``
whose centres ``x_i = lo + (i + 1/2) h`` are the unknowns' nodes. Boundary
conditions live on the cell faces at ``lo`` and ``hi``, which makes no-flux walls
conserve mass exactly and treats periodic, no-flux and exit sides alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mfg_rl.checks import check_choice, check_int, check_real, shown

BOUNDARY_KINDS = ("periodic", "no_flux", "exit")
MAX_NODES = 2**27
"""Most cells of a grid and most time steps: one float64 level of 2**27 nodes is 1 GiB, and a solve
holds every level of several fields (512^3 and 8192^2 grids fit)."""


@dataclass(frozen=True)
class Grid:
    """A box ``prod_d [lo_d, hi_d]`` split into ``shape`` cells, with a boundary per side.

    Args:
        bounds: ``((lo, hi), ...)`` one pair per axis, ``lo < hi``.
        shape: number of cells per axis, each ``>= 3``, at most ``MAX_NODES`` in all.
        boundary: one ``(low_side, high_side)`` pair per axis, or one name for every side;
            names are ``"periodic"``, ``"no_flux"`` (reflecting wall) and ``"exit"``
            (absorbing: agents leave, ``u`` equals the exit cost there). A periodic axis
            must be periodic on both sides. In 1D a ``(low, high)`` pair of names is accepted.

    Example:
        >>> g = Grid(bounds=((0.0, 1.0),), shape=(4,), boundary="no_flux")
        >>> g.coordinates()[0]
        array([0.125, 0.375, 0.625, 0.875])
    """

    bounds: tuple[tuple[float, float], ...]
    shape: tuple[int, ...]
    boundary: tuple[tuple[str, str], ...] = ()

    def __init__(
        self,
        bounds: Sequence[Sequence[float]],
        shape: Sequence[int] | int,
        boundary: str | Sequence[str | Sequence[str]] = "no_flux",
    ) -> None:
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            bounds_t = tuple((lo, hi) for lo, hi in bounds)
        except (TypeError, ValueError):
            raise TypeError(f"bounds must be a sequence of (lo, hi) pairs, got {shown(bounds)}") from None
        if not 1 <= len(bounds_t) <= 3:
            raise ValueError(f"bounds must describe 1 to 3 axes, got {len(bounds_t)}")
        try:
            items = list(shape) if not isinstance(shape, (str, bytes)) else None
        except TypeError:
            items = None
        if items is None:
            raise TypeError(f"shape must be an int or a sequence of ints, got {shown(shape)}")
        shape_t = tuple(check_int(f"shape[{d}]", n, 3, MAX_NODES) for d, n in enumerate(items))
        if len(shape_t) != len(bounds_t):
            raise ValueError(
                f"shape has {len(shape_t)} axes but bounds has {len(bounds_t)}; they must match"
            )
        if math.prod(shape_t) > MAX_NODES:
            raise ValueError(f"shape {shape_t} has {math.prod(shape_t)} cells, more than MAX_NODES = "
                             f"2**27 = {MAX_NODES}")
        checked = []
        for d, (lo, hi) in enumerate(bounds_t):
            lo = check_real(f"bounds[{d}][0]", lo)
            hi = check_real(f"bounds[{d}][1]", hi)
            if not lo < hi:
                raise ValueError(f"bounds[{d}] must satisfy lo < hi, got ({lo}, {hi})")
            h = (hi - lo) / shape_t[d]
            if not (math.isfinite(h) and h > 0 and math.isfinite(h * h * h) and h * h * h > 0):
                raise ValueError(f"bounds[{d}] = ({lo}, {hi}) gives {shape_t[d]} cells of width h = {h!r}, "
                                 "whose h^3 is not a positive float64 number; use a box nearer 1")
            checked.append((lo, hi))
        if isinstance(boundary, str):
            boundary = [boundary] * len(shape_t)
        if not isinstance(boundary, (list, tuple)):
            raise TypeError(f"boundary must be a name, or one name or (low, high) pair per axis, "
                            f"got {shown(boundary)}")
        boundary = list(boundary)
        if len(shape_t) == 1 and len(boundary) == 2 and all(isinstance(b, str) for b in boundary):
            boundary = [tuple(boundary)]
        if len(boundary) != len(shape_t):
            raise ValueError(
                f"boundary must give one entry per axis ({len(shape_t)}), got {len(boundary)}"
            )
        sides = []
        for d, entry in enumerate(boundary):
            pair = (entry, entry) if isinstance(entry, str) else entry
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"boundary[{d}] must be a name or a (low, high) pair, got {shown(entry)}")
            pair = tuple(check_choice(f"boundary[{d}]", name, BOUNDARY_KINDS) for name in pair)
            if ("periodic" in pair) and pair != ("periodic", "periodic"):
                raise ValueError(f"boundary[{d}]: a periodic axis must be periodic on both sides")
            sides.append(pair)
        object.__setattr__(self, "bounds", tuple(checked))
        object.__setattr__(self, "shape", shape_t)
        object.__setattr__(self, "boundary", tuple(sides))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell width ``h_d`` per axis."""
        return tuple((hi - lo) / n for (lo, hi), n in zip(self.bounds, self.shape, strict=True))

    @property
    def cell_volume(self) -> float:
        """``prod_d h_d``: the quadrature weight of one node."""
        return math.prod(self.spacing)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates, one float64 array of shape ``(n_d,)`` per axis."""
        return tuple(
            lo + (np.arange(n) + 0.5) * h
            for (lo, _), n, h in zip(self.bounds, self.shape, self.spacing, strict=True)
        )

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinates broadcast to the grid, ``indexing="ij"``: arrays of shape ``shape``."""
        return tuple(np.meshgrid(*self.coordinates(), indexing="ij"))

    def has_exit(self) -> bool:
        return any("exit" in pair for pair in self.boundary)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of points (shape ``(N, ndim)``) inside the closed box."""
        points = np.asarray(points, dtype=float).reshape(-1, self.ndim)
        inside = np.ones(points.shape[0], dtype=bool)
        for d, (lo, hi) in enumerate(self.bounds):
            inside &= (points[:, d] >= lo) & (points[:, d] <= hi)
        return inside


@dataclass(frozen=True)
class TimeGrid:
    """Uniform time levels ``t_n = n T / Nt`` for ``n = 0..Nt``: ``T > 0``, ``1 <= Nt <= MAX_NODES``.

    Example:
        >>> TimeGrid(T=1.0, Nt=4).dt
        0.25
    """

    T: float
    Nt: int

    def __post_init__(self) -> None:
        T = check_real("T", self.T, 0.0, open_low=True)
        Nt = check_int("Nt", self.Nt, 1, MAX_NODES)
        if not T / Nt > 0 or not (T / Nt) * (T / Nt) > 0:
            raise ValueError(f"T / Nt underflows (T={T}, Nt={Nt}); use a larger T or fewer steps")
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "Nt", Nt)

    @property
    def dt(self) -> float:
        return self.T / self.Nt

    def times(self) -> np.ndarray:
        """The ``Nt + 1`` time levels as a float64 array."""
        return np.linspace(0.0, self.T, self.Nt + 1)
