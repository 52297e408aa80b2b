"""RGB frames of the crowd with the agents on it (``render_mode="rgb_array"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

SIZE = 256
AGENTS_DRAWN = 512


def _colours(values: np.ndarray) -> np.ndarray:
    """Viridis colours of ``values`` scaled to their maximum: uint8 ``(*shape, 3)``."""
    from matplotlib import colormaps

    top = float(values.max())
    scaled = values / top if top > 0 else values
    return (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def frame(table: np.ndarray, level: int, x: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
    """One frame, HWC uint8 of ``SIZE x SIZE``.

    1D: the density over ``(x, t)`` (x upwards, t to the right, the current time marked by
    a grey line) with the agents as white dots at the current time. 2D: the density at the
    current level (axis 0 to the right, axis 1 upwards) with the agents as white dots.
    ``table`` is the density ``(levels, *space)``, ``x`` the agents' positions ``(N, d)``.
    """
    x = x[:AGENTS_DRAWN]
    if len(bounds) == 1:
        image = _resize(_colours(table.T[::-1]), SIZE, SIZE)
        column = min(SIZE - 1, level * SIZE // max(table.shape[0] - 1, 1))
        image[:, column] = 160
        columns = np.full(len(x), column)
        rows = _pixels(x[:, 0], bounds[0], flip=True)
    else:
        image = _resize(_colours(table[min(level, table.shape[0] - 1)].T[::-1]), SIZE, SIZE)
        columns = _pixels(x[:, 0], bounds[0], flip=False)
        rows = _pixels(x[:, 1], bounds[1], flip=True)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            image[np.clip(rows + dr, 0, SIZE - 1), np.clip(columns + dc, 0, SIZE - 1)] = 255
    return image


def _pixels(coordinate: Any, bounds: tuple[float, float], flip: bool) -> np.ndarray:
    lo, hi = bounds
    pixel = np.clip(((np.asarray(coordinate) - lo) / (hi - lo) * SIZE).astype(int), 0, SIZE - 1)
    return SIZE - 1 - pixel if flip else pixel
