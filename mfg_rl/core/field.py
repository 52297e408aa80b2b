"""Fields on the space-time cylinder ``[0, T] x Omega``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.core.grid import Grid, TimeGrid


@dataclass(frozen=True)
class SpacetimeField:
    """Values on every time level and node: ``data`` of shape ``(Nt + 1, *grid.shape)``.

    ``data`` is an array of any backend (torch tensor, numpy or jax array).

    Example:
        >>> import numpy as np
        >>> from mfg_rl.core import Grid, TimeGrid
        >>> f = SpacetimeField(np.zeros((3, 4)), Grid([(0, 1)], 4), TimeGrid(1.0, 2))
        >>> f.at(2).shape, f.numpy().shape
        ((4,), (3, 4))
    """

    data: Any
    grid: Grid
    time: TimeGrid

    def __post_init__(self) -> None:
        expected = (self.time.Nt + 1, *self.grid.shape)
        if tuple(self.data.shape) != expected:
            raise ValueError(
                f"SpacetimeField data has shape {tuple(self.data.shape)}, expected {expected}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def at(self, n: int) -> Any:
        """The space slice at time index ``n`` (negative indices count from the end)."""
        if not -(self.time.Nt + 1) <= n <= self.time.Nt:
            raise IndexError(f"time index n must be in [0, {self.time.Nt}], got {n}")
        return self.data[n]

    def numpy(self) -> np.ndarray:
        """The data as a float64 numpy array on the host."""
        data = self.data
        if hasattr(data, "detach"):
            data = data.detach().cpu()
        return np.asarray(data, dtype=np.float64)

    def to(self, backend: Any) -> SpacetimeField:
        """The same field with its data on ``backend`` (a ``Backend`` or a name)."""
        from mfg_rl.backends import create_backend

        backend = create_backend(backend)
        return SpacetimeField(backend.asarray(self.numpy()), self.grid, self.time)

    def integral(self, n: int) -> float:
        """``int_Omega field(t_n, x) dx`` by the cell-centre rule."""
        return float(np.sum(self.numpy()[n]) * self.grid.cell_volume)
