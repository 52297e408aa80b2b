"""Compiled values of the implicit tree HJB step: the twin of ``TreeScheme``'s numpy path.

``slopes`` and ``assemble`` compute what ``TreeScheme.slopes`` and ``TreeScheme.apply_sparse``
compute with numpy (``mfg_rl/solvers/tree_scheme.py``, read its docstring for the scheme), and
``matvec`` and ``rmatvec`` the products of ``SparseLU`` (``tree_linear``), ``side_slopes`` and
``bands`` what ``TreeScheme.apply_tridiagonal`` computes on a 1D tree: the same sums in the same
order, each as one loop instead of a dozen temporaries:

    P[slot_k] += a_k u[leaf_k] + b_k u[nb_k] + c_k                      (side slopes, K entries)
    active = max(P-, 0), min(P+, 0),    S_i = sum over leaf i's 2 d slots of active^2
    value = L u + l + psi,    data = D + sum_k g[leaf_k] active[slot_k] (a_k, b_k) at the drift slots,
    data[diagonal] += shift

``L`` the diffusion (CSR), ``D`` its values on the CSC pattern of ``shift I + A`` (``CSCSlots``).
The Hamiltonian's ``psi(S)``, ``g(S)`` stay in numpy between the two calls (any ``Hamiltonian``).
numba is optional (``mfg-rl[numba]``): imported on the first call, kernels cached on disk
(``NUMBA_CACHE_DIR``, as ``stencil_numba``); without it ``TreeScheme`` runs its numpy path.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

from mfg_rl.backends.stencil_numba import _point_numba_cache, available

__all__ = ["assemble", "available", "bands", "matvec", "rmatvec", "side_slopes", "slopes"]


def slopes(slot: np.ndarray, leaf: np.ndarray, nb: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
           u: np.ndarray, size: int, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(active (2 d M,), S (M,))`` of ``u`` (M,) from the slope entries (K,) (``TreeScheme.slopes``)."""
    return _compiled()["_slopes"](slot, leaf, nb, a, b, c, u, size, ndim)


def assemble(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, constant: np.ndarray,
             psi: np.ndarray, g: np.ndarray, u: np.ndarray, active: np.ndarray, slot: np.ndarray,
             leaf: np.ndarray, a: np.ndarray, b: np.ndarray, drift_slots: np.ndarray,
             diffusion_data: np.ndarray, diagonal: np.ndarray, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """``(value (M,), data (nnz,))``: ``L u + l + psi`` with ``L`` in CSR (``indptr``, ``indices``,
    ``values``) and the CSC values of ``shift I + A`` (``TreeScheme.apply_sparse``); ``psi``, ``g`` (M,)."""
    return _compiled()["_assemble"](indptr, indices, values, constant, psi, g, u, active, slot, leaf, a, b,
                                    drift_slots, diffusion_data, diagonal, shift)


def matvec(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``A v`` (M,) of the CSC matrix (``SparseLU.__matmul__``'s sums, in its order)."""
    return _compiled()["_matvec"](indptr, indices, data, np.ascontiguousarray(v, dtype=np.float64))


def rmatvec(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, v: np.ndarray, absolute: bool,
            ) -> np.ndarray:
    """``A^T v`` (``|A|^T v`` if ``absolute``) (M,) of the CSC matrix (``SparseLU.rmatvec``'s sums)."""
    return _compiled()["_rmatvec"](indptr, indices, data, np.ascontiguousarray(v, dtype=np.float64), absolute)


def side_slopes(sides: list[np.ndarray], u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(max(P-, 0), min(P+, 0), S)`` (M,) of ``u`` (M,) on a 1D tree whose leaves have one slope
    entry per side, ``sides`` the arrays ``[(a0, a1), (b0, b1), (c0, c1)]`` (2, M) of
    ``TreeScheme.apply_tridiagonal``."""
    (a0, a1), (b0, b1), (c0, c1) = sides
    return _compiled()["_side_slopes"](a0, a1, b0, b1, c0, c1, u)


def bands(diffusion_bands: np.ndarray, constant: np.ndarray, psi: np.ndarray, g: np.ndarray, u: np.ndarray,
          back: np.ndarray, forward: np.ndarray, sides: list[np.ndarray], shift: float,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(value, lower, diag, upper)`` (M,): ``L u + l + psi`` and the bands of ``shift I + A`` on a 1D
    tree (``TreeScheme.apply_tridiagonal``), from ``side_slopes``' clipped slopes and ``psi``, ``g`` (M,)."""
    lower, diag, upper = diffusion_bands
    (a0, a1), (b0, b1), _ = sides
    return _compiled()["_bands"](lower, diag, upper, constant, psi, g, u, back, forward, a0, a1, b0, b1,
                                  shift)


_compile_lock = threading.Lock()
_KERNELS = ("_slopes", "_assemble", "_matvec", "_rmatvec", "_side_slopes", "_bands")


@functools.cache
def _compiled() -> dict[str, Any]:
    """The kernels, jitted (``fastmath=False``: the numpy twin's rounding) and cached on disk."""
    _point_numba_cache()
    import numba

    with _compile_lock:
        names = globals()
        for name in _KERNELS:
            if not isinstance(names[name], numba.core.dispatcher.Dispatcher):
                names[name] = numba.njit(cache=True, nogil=True, fastmath=False)(names[name])
        return {name: names[name] for name in _KERNELS}


# -- kernels: plain Python, compiled by ``_compiled`` ----------------------------------------
def _slopes(slot, leaf, nb, a, b, c, u, size, ndim):  # noqa: ANN001, ANN202
    width = 2 * ndim
    active = np.zeros(width * size)
    for k in range(slot.shape[0]):  # np.bincount's order
        active[slot[k]] += a[k] * u[leaf[k]] + b[k] * u[nb[k]] + c[k]
    s = np.empty(size)
    for i in range(size):
        total = 0.0
        for j in range(width):
            q = active[i * width + j]
            if j % 2 == 0:
                q = 0.0 if q < 0.0 else q  # max(P-, 0), NaN kept
            else:
                q = 0.0 if q > 0.0 else q  # min(P+, 0)
            active[i * width + j] = q
            total += q * q
        s[i] = total
    return active, s


def _assemble(indptr, indices, values, constant, psi, g, u, active, slot, leaf, a, b, drift_slots,  # noqa: ANN001, ANN202
              diffusion_data, diagonal, shift):
    size = indptr.shape[0] - 1
    value = np.empty(size)
    for i in range(size):  # scipy's CSR product, then + l + psi
        total = 0.0
        for j in range(indptr[i], indptr[i + 1]):
            total += values[j] * u[indices[j]]
        value[i] = total + constant[i] + psi[i]
    entries = slot.shape[0]
    drift = np.zeros(diffusion_data.shape[0])
    for k in range(entries):  # np.bincount over [factor a, factor b]
        drift[drift_slots[k]] += g[leaf[k]] * active[slot[k]] * a[k]
    for k in range(entries):
        drift[drift_slots[entries + k]] += g[leaf[k]] * active[slot[k]] * b[k]
    data = diffusion_data + drift
    for i in range(diagonal.shape[0]):
        data[diagonal[i]] += shift
    return value, data


def _matvec(indptr, indices, data, v):  # noqa: ANN001, ANN202
    out = np.zeros(indptr.shape[0] - 1)
    for col in range(indptr.shape[0] - 1):  # storage order: np.bincount over the entries
        for j in range(indptr[col], indptr[col + 1]):
            out[indices[j]] += data[j] * v[col]
    return out


def _rmatvec(indptr, indices, data, v, absolute):  # noqa: ANN001, ANN202
    out = np.zeros(indptr.shape[0] - 1)
    for col in range(indptr.shape[0] - 1):
        for j in range(indptr[col], indptr[col + 1]):
            out[col] += (abs(data[j]) if absolute else data[j]) * v[indices[j]]
    return out


def _side_slopes(a0, a1, b0, b1, c0, c1, u):  # noqa: ANN001, ANN202
    size = u.shape[0]
    back, forward, s = np.empty(size), np.empty(size), np.empty(size)
    for i in range(size):
        p = a0[i] * u[i] + c0[i]
        if i > 0:
            p += b0[i] * u[i - 1]
        q = a1[i] * u[i] + c1[i]
        if i < size - 1:
            q += b1[i] * u[i + 1]
        p = 0.0 if p < 0.0 else p  # max(P-, 0), NaN kept
        q = 0.0 if q > 0.0 else q  # min(P+, 0)
        back[i], forward[i], s[i] = p, q, p * p + q * q
    return back, forward, s


def _bands(lower, diag, upper, constant, psi, g, u, back, forward, a0, a1, b0, b1, shift):  # noqa: ANN001, ANN202
    size = u.shape[0]
    value, new_lower, new_diag, new_upper = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    for i in range(size):
        total = diag[i] * u[i]  # Tridiagonal.__matmul__'s order
        if i > 0:
            total += lower[i] * u[i - 1]
        if i < size - 1:
            total += upper[i] * u[i + 1]
        value[i] = total + constant[i] + psi[i]
        weight = g[i] + 0.0 * u[i]
        g_back, g_forward = weight * back[i], weight * forward[i]
        new_lower[i] = lower[i] + g_back * b0[i]
        new_diag[i] = diag[i] + shift + g_back * a0[i] + g_forward * a1[i]
        new_upper[i] = upper[i] + g_forward * b1[i]
    return value, new_lower, new_diag, new_upper
