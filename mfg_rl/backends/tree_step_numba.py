"""Compiled values of the implicit tree HJB step: the twin of ``TreeScheme``'s numpy path.

``slopes`` and ``assemble`` compute what ``TreeScheme.slopes`` and ``TreeScheme.apply_sparse``
compute with numpy (``mfg_rl/solvers/tree_scheme.py``, read its docstring for the scheme), and
``matvec`` and ``rmatvec`` the products of ``SparseLU`` (``tree_linear``): the same sums in the
same order, each as one loop instead of a dozen temporaries:

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

__all__ = ["assemble", "available", "matvec", "rmatvec", "slopes"]


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


_compile_lock = threading.Lock()
_KERNELS = ("_slopes", "_assemble", "_matvec", "_rmatvec")


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
