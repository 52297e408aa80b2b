"""Error indicators of cell fields on a tree mesh, written once against an array namespace:
plain numpy (the reference) and ``jax.jit`` (``jax`` extra, imported on first use).

From the interior faces ``f = (a, b, axis, area A_f, normal distance delta_f)``:

    g_f     = (v_b - v_a) / delta_f                                  face normal gradient
    G_{K,d} = sum_{f in K, axis d} A_f g_f / sum_{f in K, axis d} A_f   cell gradient (0 without faces)

and per leaf ``K`` (volume ``|K|``, widths ``h_{K,d}``) the indicators

    "gradient":  eta_K = |K| sum_d h_{K,d} |G_{K,d}| / 4
                 (the L1 error ``int_K |v - v_K|`` of the cell average; exact for v linear along one axis)
    "jump":      eta_K = 1/2 sum_{f in K} A_f delta_f |G_{b,d} - G_{a,d}|
                 (the gradient jump across faces, ~ |K| h_K |d^2 v|: the term a first-order
                 upwind scheme drops; in 1D exactly |K| h |v''| for quadratic v on a uniform mesh)

Fields come as ``(B, M)`` (a batch of B fields on M leaves); results are ``(B, M)``. The jax
version pads faces and leaves to powers of two (zero-area faces, zero-volume leaves), so a
mesh that changes size recompiles only when it crosses a power of two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

INDICATORS = ("jump", "gradient")


def indicator(xp: Any, segment_sum: Callable[..., Any], values: Any, minus: Any, plus: Any, axis: Any,
              area: Any, normal_distance: Any, volume: Any, size: Any, kind: str) -> Any:
    """The indicator ``kind`` of ``values`` (B, M) on the faces (F,) and leaves (M,), (M, d);
    ``segment_sum(data (B, F), ids (F,), n) -> (B, n)``."""
    n_leaves, ndim = size.shape
    g = (values[:, plus] - values[:, minus]) / normal_distance
    low, high = minus * ndim + axis, plus * ndim + axis  # (leaf, axis) slots of both sides
    weight = area[None, :]
    total = segment_sum(weight, low, n_leaves * ndim) + segment_sum(weight, high, n_leaves * ndim)
    flux = segment_sum(weight * g, low, n_leaves * ndim) + segment_sum(weight * g, high, n_leaves * ndim)
    gradient = xp.where(total > 0, flux / xp.where(total > 0, total, 1.0), 0.0)  # (B, M d)
    if kind == "gradient":
        scaled = xp.abs(gradient).reshape(gradient.shape[0], n_leaves, ndim) * size
        return volume * xp.sum(scaled, axis=-1) / 4
    jump = 0.5 * area * normal_distance * xp.abs(gradient[:, high] - gradient[:, low])
    return segment_sum(jump, minus, n_leaves) + segment_sum(jump, plus, n_leaves)


def _segment_sum_numpy(data: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    rows = data.shape[0]
    offset = (ids[None, :] + n * np.arange(rows)[:, None]).ravel()
    flat = np.broadcast_to(data, (rows, len(ids))).ravel()
    return np.bincount(offset, weights=flat, minlength=rows * n).reshape(rows, n)


def indicator_numpy(values: np.ndarray, minus: np.ndarray, plus: np.ndarray, axis: np.ndarray,
                    area: np.ndarray, normal_distance: np.ndarray, volume: np.ndarray, size: np.ndarray,
                    kind: str) -> np.ndarray:
    """``indicator`` in numpy: values (B, M) -> (B, M)."""
    return indicator(np, _segment_sum_numpy, np.asarray(values, dtype=np.float64), minus, plus, axis, area,
                     normal_distance, volume, size, kind)


def _bucket(n: int) -> int:
    return max(64, 1 << max(n - 1, 1).bit_length())


@functools.cache  # one jitted function per kind; jax retraces it per (padded) shape
def _jitted(kind: str) -> Callable[..., Any]:
    from mfg_rl.backends.jax_backend import import_jax

    jax = import_jax()
    import jax.numpy as jnp

    def segment_sum(data: Any, ids: Any, n: int) -> Any:
        return jax.ops.segment_sum(jnp.broadcast_to(data, (data.shape[0], ids.shape[0])).T, ids, n).T

    def run(values: Any, minus: Any, plus: Any, axis: Any, area: Any, normal_distance: Any, volume: Any,
            size: Any) -> Any:
        return indicator(jnp, segment_sum, values, minus, plus, axis, area, normal_distance, volume, size,
                         kind)

    return jax.jit(run)


def indicator_jax(values: np.ndarray, minus: np.ndarray, plus: np.ndarray, axis: np.ndarray, area: np.ndarray,
                  normal_distance: np.ndarray, volume: np.ndarray, size: np.ndarray, kind: str) -> np.ndarray:
    """``indicator`` under ``jax.jit`` (float64): values (B, M) -> numpy (B, M)."""
    values = np.asarray(values, dtype=np.float64)
    rows, n_leaves = values.shape
    m, f = _bucket(n_leaves), _bucket(len(minus))
    pad_f, pad_m = f - len(minus), m - n_leaves

    def faces(a: np.ndarray, fill: float) -> np.ndarray:
        return np.concatenate([a, np.full(pad_f, fill, dtype=a.dtype)])

    out = _jitted(kind)(
        np.pad(values, ((0, 0), (0, pad_m))), faces(minus, 0), faces(plus, 0), faces(axis, 0),
        faces(area, 0.0), faces(normal_distance, 1.0), np.pad(volume, (0, pad_m)),
        np.pad(size, ((0, pad_m), (0, 0))),
    )
    return np.asarray(out)[:, :n_leaves]
