"""Validation and conversion of kernel inputs (points, weights, values, grids) on any namespace."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from array_api_compat import device as array_device


class Grid(Protocol):
    """What the kernels read of a ``mfg_rl.core.Grid`` (backends sit below core: no import)."""

    bounds: tuple[tuple[float, float], ...]
    shape: tuple[int, ...]
    boundary: tuple[tuple[str, str], ...]

    @property
    def ndim(self) -> int: ...
    @property
    def spacing(self) -> tuple[float, ...]: ...
    def coordinates(self) -> tuple[np.ndarray, ...]: ...


def is_array_of(xp: Any, x: Any) -> bool:
    import array_api_compat as compat

    for is_namespace, is_array in (
        (compat.is_numpy_namespace, compat.is_numpy_array),
        (compat.is_torch_namespace, compat.is_torch_array),
        (compat.is_jax_namespace, compat.is_jax_array),
    ):
        if is_namespace(xp):
            return bool(is_array(x))
    return hasattr(x, "__array_namespace__")


def check_dtype(xp: Any, x: Any, name: str) -> Any:
    """``x`` (an ``xp`` array) if real floating, cast to float64 if integer, else TypeError."""
    if xp.isdtype(x.dtype, "real floating"):
        return x
    if xp.isdtype(x.dtype, "integral") and not xp.isdtype(x.dtype, "bool"):
        return xp.astype(x, xp.float64)
    raise TypeError(f"{name} must be an array of real numbers, got dtype {x.dtype}")


def host_real(x: Any, name: str) -> np.ndarray:
    try:
        host = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}: {exc}") from None
    if host.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {host.dtype}")
    return host.astype(np.float64) if host.dtype.kind != "f" else host


def as_real_array(xp: Any, x: Any, name: str, like: Any = None) -> Any:
    """``x`` as a real floating ``xp`` array (on ``like``'s device when converted), or TypeError."""
    if is_array_of(xp, x):
        return check_dtype(xp, x, name)
    host = host_real(x, name)
    if like is None:
        return xp.asarray(host)
    from array_api_compat import device

    return xp.asarray(host, dtype=like.dtype, device=device(like))


def as_backend_array(backend: Any, x: Any, name: str) -> Any:
    """``x`` as an array of ``backend`` in its dtype (``None`` passes); TypeError if not real."""
    if x is None:
        return None
    if backend.is_native(x):
        x = check_dtype(backend.xp, x, name)
        return x if x.dtype == backend.dtype else backend.xp.astype(x, backend.dtype)
    return backend.asarray(host_real(x, name))


def check_grid(grid: Any) -> Grid:
    if not all(hasattr(grid, a) for a in ("bounds", "shape", "boundary", "spacing", "coordinates")):
        raise TypeError(f"grid must be a mfg_rl.core.Grid, got {type(grid).__name__}")
    return grid


def points_by_axis(xp: Any, points: Any, grid: Grid) -> list[Any]:
    """Check ``points`` has shape ``(N,)`` (1D grid) or ``(N, d)``; return the d columns."""
    d = grid.ndim
    allowed = "(N,) or (N, 1)" if d == 1 else f"(N, {d})"
    shape = tuple(points.shape)
    if not ((d == 1 and len(shape) == 1) or (len(shape) == 2 and shape[1] == d)):
        raise ValueError(f"points must have shape {allowed} for a {d}D grid, got {shape}")
    if len(shape) == 1:
        return [points]
    return [points[:, k] for k in range(d)]


def check_finite(xp: Any, x: Any, name: str, total: float | None = None) -> None:
    """ValueError unless all entries are finite (one pass: a finite sum means no NaN/inf)."""
    if total is None:
        with np.errstate(all="ignore"):
            total = float(xp.sum(x))
    if math.isfinite(total):
        return
    bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
    if bad:
        raise ValueError(f"{name} must be finite; found {bad} NaN or infinite entries")


def check_weights(xp: Any, weights: Any, n: int) -> float:
    """Validate ``weights`` (shape ``(N,)``, finite, >= 0); return their sum."""
    if tuple(weights.shape) != (n,):
        raise ValueError(f"weights must have shape ({n},) to match points, got {tuple(weights.shape)}")
    with np.errstate(all="ignore"):
        total = float(xp.sum(weights))
    check_finite(xp, weights, "weights", total)
    if n and float(xp.min(weights)) < 0:
        raise ValueError(f"weights must be >= 0, got a minimum of {float(xp.min(weights))}")
    if not math.isfinite(total):
        raise ValueError("weights must have a finite sum (it overflows); rescale them")
    return total


def rows_of(xp: Any, x: Any, start: int, stop: int, n: int) -> Any:
    """``x[start:stop]`` (``None`` passes); jax gets a gather, as it compiles one kernel per slice."""
    if x is None or (start == 0 and stop == n):
        return x
    import array_api_compat as compat

    if compat.is_jax_array(x):
        return xp.take(x, xp.arange(start, stop, device=array_device(x)))
    return x[start:stop]

