"""Linear (bilinear in 2D) interpolation of a grid field at scattered points.

    f(p) = sum_{corners c} prod_d (1 - |t_d - c_d|) values[c],   t_d = (p_d - lo_d) / h_d - 1/2

``t_d`` is the point's position in node units (node ``i`` at the cell centre ``t = i``).
On a periodic axis ``t_d`` wraps modulo ``n_d`` (between the last node and the first the
field is interpolated across the seam); on other axes it is clamped to ``[0, n_d - 1]``, so
points beyond the outermost nodes take the value of the nearest node. Written once against
an array-API namespace ``xp``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mfg_rl.backends.kde import Grid, _check_finite, _check_grid, as_real_array, points_by_axis

__all__ = ["interp"]


def interp(xp: Any, grid: Grid, values: Any, points: Any, *, check_finite: bool = True) -> Any:
    """Interpolate ``values`` (shape ``grid.shape``) at ``points`` (``(N,)`` or ``(N, d)``).

    Returns shape ``(N,)`` in the dtype of ``values``. With ``check_finite=False`` the
    host-side NaN/inf check of ``points`` is skipped (no device sync) and such points give NaN.

    Example:
        >>> import numpy as np
        >>> from mfg_rl.core import Grid
        >>> g = Grid([(0.0, 1.0)], 4)                       # nodes 0.125, 0.375, 0.625, 0.875
        >>> interp(np, g, np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.25, 0.0, 5.0]))
        array([0.5, 0. , 3. ])
    """
    grid = _check_grid(grid)
    values = as_real_array(xp, values, "values")
    if tuple(values.shape) != grid.shape:
        raise ValueError(f"values must have the grid's shape {grid.shape}, got {tuple(values.shape)}")
    points = xp.astype(as_real_array(xp, points, "points", like=values), values.dtype)
    cols = points_by_axis(xp, points, grid)
    if check_finite:
        _check_finite(xp, points, "points")
    with np.errstate(all="ignore"):  # far points overflow t to +-inf, which clamps correctly
        return _interp(xp, grid, xp.reshape(values, (-1,)), cols)


def _interp(xp: Any, grid: Grid, flat: Any, cols: list[Any]) -> Any:
    strides = [math.prod(grid.shape[k + 1 :]) for k in range(grid.ndim)]
    finite = None
    axis_corners = []
    for k, (col, (lo, hi), n, h) in enumerate(zip(cols, grid.bounds, grid.shape, grid.spacing, strict=True)):
        ok = xp.isfinite(col)
        finite = ok if finite is None else finite & ok
        if grid.boundary[k][0] == "periodic":
            # wrap in coordinates first (t itself may overflow), then t in [-1/2, n - 1/2]
            t = xp.remainder(xp.where(ok, col - lo, 0.0), hi - lo) * (1.0 / h) - 0.5
            t = xp.where(t < 0.0, t + float(n), t)
            left = xp.floor(t)
            frac = t - left
            i0 = xp.astype(left, xp.int64)
            i0 = xp.where(i0 >= n, i0 - n, i0)  # t may round up to exactly n
            i1 = xp.where(i0 + 1 >= n, i0 + 1 - n, i0 + 1)
        else:
            t = xp.where(ok, (col - lo) * (1.0 / h) - 0.5, 0.0)
            t = xp.clip(t, min=0.0, max=float(n - 1))
            i0 = xp.clip(xp.astype(xp.floor(t), xp.int64), min=0, max=n - 2)
            i1 = i0 + 1
            frac = t - xp.astype(i0, t.dtype)
        axis_corners.append(((i0 * strides[k], 1.0 - frac), (i1 * strides[k], frac)))
    out = None
    for choice in np.ndindex(*(2,) * grid.ndim):
        index, weight = None, None
        for k, c in enumerate(choice):
            offset, w = axis_corners[k][c]
            index = offset if index is None else index + offset
            weight = w if weight is None else weight * w
        term = weight * xp.take(flat, index)
        out = term if out is None else out + term
    return xp.where(finite, out, float("nan"))
