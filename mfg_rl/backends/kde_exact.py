"""The exact Gaussian KDE: the kernel sum evaluated directly, chunked over particles (see ``kde``)."""

from __future__ import annotations

import math
from typing import Any

from mfg_rl.backends.arrays import Grid, rows_of

CUTOFF = 9.0  # kernel tails beyond CUTOFF * sigma (relative size exp(-40.5) ~ 3e-18) are dropped
CHUNK_ELEMENTS = 2**18  # about this many kernel entries per temporary
SQRT_2PI = math.sqrt(2.0 * math.pi)

def unit_images(xp: Any, u: Any, period: float | None, bounded: bool = False) -> Any:
    """``sum_k exp(-(u + k P)^2)`` (``P = period``; just ``exp(-u^2)`` when ``period`` is None).

    ``u`` is a distance in units of ``sigma sqrt(2)``. Summed over images while ``P >= 2``,
    else by the Fourier series ``(sqrt(pi)/P) [1 + 2 sum_l exp(-pi^2 l^2/P^2) cos(2 pi l u/P)]``;
    terms below ``exp(-40)`` are dropped. ``bounded``: ``|u| <= P/2`` already holds.
    """
    if period is None:
        return xp.exp(-(u * u))
    if not bounded:
        u = u - period * xp.round(u / period)
    if period >= 2.0:
        total = xp.exp(-(u * u))
        for k in range(1, int((CUTOFF / math.sqrt(2.0) + period / 2.0) // period) + 1):
            up, down = u + k * period, u - k * period
            total = total + xp.exp(-(up * up)) + xp.exp(-(down * down))
        return total
    total = xp.zeros_like(u) + math.sqrt(math.pi) / period
    for ell in range(1, int(math.ceil(2.02 * period)) + 2):
        coeff = 2.0 * math.sqrt(math.pi) / period * math.exp(-((math.pi * ell / period) ** 2))
        total = total + coeff * xp.cos((2.0 * math.pi * ell / period) * u)
    return total


def gauss(xp: Any, d: Any, sigma: float) -> Any:
    """The normalised Gaussian ``exp(-d^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``."""
    return unit_images(xp, d * (1.0 / (math.sqrt(2.0) * sigma)), None) / (SQRT_2PI * sigma)


def _axis_matrix(xp: Any, x: Any, p: Any, lo: float, hi: float, kind: str) -> Any:
    """``A[p, i] = sum_images exp(-(x_i - image(p))^2)`` of one axis, shape ``(chunk, n)``.

    ``x``, ``p``, ``lo``, ``hi`` are in units of ``sigma sqrt(2)``; ``p`` is folded inside
    on ``"periodic"``/``"both"`` axes.
    """
    d = x[None, :] - p[:, None]
    if kind == "periodic":
        return unit_images(xp, d, hi - lo)
    if kind == "both":
        mirror = x[None, :] + p[:, None] - 2.0 * lo
        period = 2.0 * (hi - lo)
        return unit_images(xp, d, period, bounded=True) + unit_images(xp, mirror, period)
    out = xp.exp(-(d * d))
    if kind in ("lo", "hi"):
        mirror = x[None, :] + p[:, None] - 2.0 * (lo if kind == "lo" else hi)
        out = out + xp.exp(-(mirror * mirror))
    return out


def exact_kde(
    xp: Any,
    cols: list[Any],
    w: Any,
    grid: Grid,
    sigma: tuple[float, ...],
    kinds: list[str],
    chunk: int | None,
) -> Any:
    from array_api_compat import device

    like = cols[0]
    dev, dtype = device(like), like.dtype
    scale = [1.0 / (math.sqrt(2.0) * s) for s in sigma]  # work in units of sigma sqrt(2)
    nodes = [
        xp.asarray(c * f, dtype=dtype, device=dev) for c, f in zip(grid.coordinates(), scale, strict=True)
    ]
    cols = [c * f for c, f in zip(cols, scale, strict=True)]
    bounds = [(lo * f, hi * f) for (lo, hi), f in zip(grid.bounds, scale, strict=True)]
    shape, n = grid.shape, int(like.shape[0])
    if chunk is None:
        chunk = max(1, CHUNK_ELEMENTS // max(max(shape), math.prod(shape[1:])))
    out = xp.zeros(shape if grid.ndim > 1 else shape[0], dtype=dtype, device=dev)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        mats = [
            _axis_matrix(xp, nodes[k], rows_of(xp, cols[k], start, stop, n), *bounds[k], kinds[k])
            for k in range(grid.ndim)
        ]
        if grid.ndim == 1:
            if w is None:
                out = out + xp.sum(mats[0], axis=0)
            else:
                out = out + xp.matmul(rows_of(xp, w, start, stop, n), mats[0])
            continue
        left = mats[0] if w is None else mats[0] * rows_of(xp, w, start, stop, n)[:, None]
        right = mats[1]
        for mat in mats[2:]:
            right = xp.reshape(right[:, :, None] * mat[:, None, :], (stop - start, -1))
        out = out + xp.reshape(xp.matmul(xp.matrix_transpose(left), right), shape)
    return out * (1.0 / math.prod(SQRT_2PI * s for s in sigma))


