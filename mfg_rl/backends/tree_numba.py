"""Tree-mesh kernels compiled with numba: the twin of ``tree_numpy``, identical results.

Same functions, arguments and conventions as ``mfg_rl.backends.tree_numpy`` (read its
docstring for the layout: ``level`` (M,), ``coords`` (M, d), Morton order at the finest
level), written as loops: one pass over the leaves per operation and a binary search per
neighbour or point, where the numpy twin builds every intermediate array.

numba is an optional dependency (``mfg-rl[numba]``): it is imported on the first call; the
kernels are compiled once and cached on disk (``NUMBA_CACHE_DIR``, as ``stencil_numba``).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np

from mfg_rl.backends.stencil_numba import _point_numba_cache, available

__all__ = ["available", "balance", "coarsen", "faces", "families", "keys_of", "locate", "morton", "refine"]


def morton(fine: np.ndarray) -> np.ndarray:
    """Morton keys of integer points, shape (N, d) -> (N,) int64; 2D coordinates below 2^31."""
    fine = np.ascontiguousarray(fine, dtype=np.int64)
    return _compiled()["_morton"](fine)


def keys_of(level: np.ndarray, coords: np.ndarray, max_level: int) -> np.ndarray:
    """Morton keys of the leaves' lowest corners at level ``max_level``, shape (M,)."""
    return _compiled()["_keys_of"](level, coords, max_level)


def locate(keys: np.ndarray, points: np.ndarray, lo: np.ndarray, scale: np.ndarray,
           n_fine: np.ndarray) -> np.ndarray:
    """Index of the leaf holding each point, (N, d) -> (N,) int64 (as ``tree_numpy.locate``)."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    return _compiled()["_locate"](keys, points, lo, scale, n_fine)


def faces(level: np.ndarray, coords: np.ndarray, keys: np.ndarray, root_shape: np.ndarray, max_level: int,
          periodic: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(minus, plus, axis, b_leaf, b_axis, b_side)`` as ``tree_numpy.faces``."""
    return _compiled()["_faces"](level, coords, keys, root_shape, max_level, periodic)


def refine(level: np.ndarray, coords: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace each flagged leaf by its ``2^d`` children in place (as ``tree_numpy.refine``)."""
    return _compiled()["_refine"](level, coords, flags)


def families(level: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Start indices of the complete families (as ``tree_numpy.families``)."""
    return _compiled()["_families"](level, coords)


def coarsen(level: np.ndarray, coords: np.ndarray, keys: np.ndarray, flags: np.ndarray, min_level: int,
            root_shape: np.ndarray, max_level: int, periodic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coarsen the flagged complete families keeping 2:1 balance (as ``tree_numpy.coarsen``)."""
    return _compiled()["_coarsen"](level, coords, keys, flags, min_level, root_shape, max_level, periodic)


def balance(level: np.ndarray, coords: np.ndarray, root_shape: np.ndarray, max_level: int,
            periodic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coarsest 2:1 balanced refinement (as ``tree_numpy.balance``)."""
    return _compiled()["_balance"](level, coords, root_shape, max_level, periodic)


_compile_lock = threading.Lock()
_KERNELS = ("_spread", "_key", "_search", "_neighbour", "_morton", "_keys_of", "_locate", "_faces", "_refine",
            "_families", "_family_of", "_coarsen", "_balance")


@functools.cache
def _compiled() -> dict[str, Any]:
    """The kernels, jitted in dependency order with the module's names rebound to the
    dispatchers (so kernels call compiled kernels); cached on disk."""
    _point_numba_cache()
    import numba

    with _compile_lock:
        names = globals()
        for name in _KERNELS:
            if not isinstance(names[name], numba.core.dispatcher.Dispatcher):
                names[name] = numba.njit(cache=True, nogil=True)(names[name])
        return {name: names[name] for name in _KERNELS}


# -- kernels: plain Python, compiled by ``_compiled`` ----------------------------------------
def _spread(x):  # noqa: ANN001, ANN202
    """The low 32 bits of ``x`` moved to the even bit positions."""
    x &= 0xFFFFFFFF
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    return (x | (x << 1)) & 0x5555555555555555


def _key(c0, c1, ndim, shift):  # noqa: ANN001, ANN202
    """Morton key of cell ``(c0, c1)`` (``c1`` unused in 1D) scaled by ``2^shift`` per axis."""
    if ndim == 1:
        return c0 << shift
    return _spread(c0 << shift) | (_spread(c1 << shift) << 1)


def _search(keys, key):  # noqa: ANN001, ANN202
    """The last index ``i`` with ``keys[i] <= key`` (``searchsorted(..., "right") - 1``)."""
    lo, hi = 0, keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def _neighbour(lev, c0, c1, axis, step, root_shape, periodic):  # noqa: ANN001, ANN202
    """The same-level neighbour cell across side ``step`` of ``axis``: ``(inside, c0, c1)``."""
    n = root_shape[axis] << lev
    c = (c0 if axis == 0 else c1) + step
    if periodic[axis]:
        c %= n
    elif c < 0 or c >= n:
        return False, c0, c1
    if axis == 0:
        return True, c, c1
    return True, c0, c


def _morton(fine):  # noqa: ANN001, ANN202
    ndim = fine.shape[1]
    out = np.empty(fine.shape[0], dtype=np.int64)
    for i in range(fine.shape[0]):
        out[i] = _key(fine[i, 0], fine[i, ndim - 1], ndim, 0)
    return out


def _keys_of(level, coords, max_level):  # noqa: ANN001, ANN202
    ndim = coords.shape[1]
    out = np.empty(level.shape[0], dtype=np.int64)
    for i in range(level.shape[0]):
        out[i] = _key(coords[i, 0], coords[i, ndim - 1], ndim, max_level - level[i])
    return out


def _locate(keys, points, lo, scale, n_fine):  # noqa: ANN001, ANN202
    ndim = points.shape[1]
    out = np.empty(points.shape[0], dtype=np.int64)
    cell = np.zeros(2, dtype=np.int64)
    for i in range(points.shape[0]):
        for d in range(ndim):
            c = np.int64(math.floor((points[i, d] - lo[d]) * scale[d]))
            cell[d] = min(max(c, 0), n_fine[d] - 1)
        out[i] = _search(keys, _key(cell[0], cell[ndim - 1], ndim, 0))
    return out


def _faces(level, coords, keys, root_shape, max_level, periodic):  # noqa: ANN001, ANN202
    m, ndim = coords.shape
    fan = 1 << (ndim - 1)  # fine leaves across a hanging side
    minus = np.empty(m * ndim * fan, dtype=np.int64)
    plus = np.empty_like(minus)
    axes = np.empty_like(minus)
    b_leaf = np.empty(2 * m * ndim, dtype=np.int64)
    b_axis = np.empty_like(b_leaf)
    b_side = np.empty_like(b_leaf)
    nf = nb = 0
    for a in range(m):
        lev, c0, c1 = level[a], coords[a, 0], coords[a, ndim - 1]
        for axis in range(ndim):
            if not periodic[axis] and (c0 if axis == 0 else c1) == 0:
                b_leaf[nb], b_axis[nb], b_side[nb] = a, axis, 0
                nb += 1
            inside, n0, n1 = _neighbour(lev, c0, c1, axis, 1, root_shape, periodic)
            if not inside:
                b_leaf[nb], b_axis[nb], b_side[nb] = a, axis, 1
                nb += 1
                continue
            found = _search(keys, _key(n0, n1, ndim, max_level - lev))
            if level[found] <= lev:
                minus[nf], plus[nf], axes[nf] = a, found, axis
                nf += 1
                continue
            for t in range(fan):  # children of the neighbour cell on its -axis side
                f0, f1 = 2 * n0, 2 * n1
                if ndim == 2:
                    if axis == 0:
                        f1 += t
                    else:
                        f0 += t
                fine = _search(keys, _key(f0, f1, ndim, max_level - lev - 1))
                minus[nf], plus[nf], axes[nf] = a, fine, axis
                nf += 1
    return minus[:nf].copy(), plus[:nf].copy(), axes[:nf].copy(), b_leaf[:nb].copy(), b_axis[:nb].copy(), \
        b_side[:nb].copy()


def _refine(level, coords, flags):  # noqa: ANN001, ANN202
    m, ndim = coords.shape
    k = 1 << ndim
    total = 0
    for i in range(m):
        total += k if flags[i] else 1
    new_level = np.empty(total, dtype=np.int64)
    new_coords = np.empty((total, ndim), dtype=np.int64)
    j = 0
    for i in range(m):
        if not flags[i]:
            new_level[j] = level[i]
            for d in range(ndim):
                new_coords[j, d] = coords[i, d]
            j += 1
            continue
        for child in range(k):
            new_level[j] = level[i] + 1
            for d in range(ndim):
                new_coords[j, d] = 2 * coords[i, d] + ((child >> d) & 1)
            j += 1
    return new_level, new_coords


def _families(level, coords):  # noqa: ANN001, ANN202
    m, ndim = coords.shape
    k = 1 << ndim
    out = np.empty(m // k + 1, dtype=np.int64)
    n = 0
    for s in range(m - k + 1):
        if level[s] == 0:
            continue
        complete = True
        for d in range(ndim):
            if coords[s, d] % 2 != 0:
                complete = False
        for j in range(1, k):
            if not complete:
                break
            if level[s + j] != level[s]:
                complete = False
            for d in range(ndim):
                if coords[s + j, d] >> 1 != coords[s, d] >> 1:
                    complete = False
        if complete:
            out[n] = s
            n += 1
    return out[:n].copy()


def _family_of(level, coords, flags, min_level):  # noqa: ANN001, ANN202
    """Per leaf, the start of its complete, all-flagged family above ``min_level``, else -1."""
    k = 1 << coords.shape[1]
    family = np.full(level.shape[0], -1, dtype=np.int64)
    for s in _families(level, coords):
        if level[s] <= min_level:
            continue
        flagged = True
        for j in range(k):
            flagged = flagged and flags[s + j]
        if flagged:
            for j in range(k):
                family[s + j] = s
    return family


def _coarsen(level, coords, keys, flags, min_level, root_shape, max_level, periodic):  # noqa: ANN001, ANN202
    m, ndim = coords.shape
    k = 1 << ndim
    family = _family_of(level, coords, flags, min_level)
    wanted = np.zeros(m, dtype=np.bool_)
    for i in range(m):
        if family[i] == i:
            wanted[i] = True
    pair_family = np.empty(2 * ndim * m, dtype=np.int64)
    pair_fine = np.empty_like(pair_family)
    n = 0
    for q in range(m):  # every fine leaf q one level finer across a face of a family member
        for axis in range(ndim):
            for step in (-1, 1):
                inside, n0, n1 = _neighbour(level[q], coords[q, 0], coords[q, ndim - 1], axis, step,
                                            root_shape, periodic)
                if not inside:
                    continue
                found = _search(keys, _key(n0, n1, ndim, max_level - level[q]))
                if level[found] == level[q] - 1 and family[found] >= 0:
                    pair_family[n], pair_fine[n] = family[found], q
                    n += 1
    changed = True
    while changed:
        changed = False
        for p in range(n):
            fam, fine = pair_family[p], pair_fine[p]
            if wanted[fam] and (family[fine] < 0 or not wanted[family[fine]]):
                wanted[fam] = False
                changed = True
    total = m
    for i in range(m):
        if wanted[i]:
            total -= k - 1
    new_level = np.empty(total, dtype=np.int64)
    new_coords = np.empty((total, ndim), dtype=np.int64)
    i = j = 0
    while i < m:
        if wanted[i]:
            new_level[j] = level[i] - 1
            for d in range(ndim):
                new_coords[j, d] = coords[i, d] >> 1
            i += k
        else:
            new_level[j] = level[i]
            for d in range(ndim):
                new_coords[j, d] = coords[i, d]
            i += 1
        j += 1
    return new_level, new_coords


def _balance(level, coords, root_shape, max_level, periodic):  # noqa: ANN001, ANN202
    m, ndim = coords.shape
    k = 1 << ndim
    check = np.arange(m)
    while True:
        m = level.shape[0]
        keys = _keys_of(level, coords, max_level)
        flags = np.zeros(m, dtype=np.bool_)
        again = np.zeros(m, dtype=np.bool_)
        for q in check:
            for axis in range(ndim):
                for step in (-1, 1):
                    inside, n0, n1 = _neighbour(level[q], coords[q, 0], coords[q, ndim - 1], axis, step,
                                                root_shape, periodic)
                    if not inside:
                        continue
                    found = _search(keys, _key(n0, n1, ndim, max_level - level[q]))
                    if level[found] <= level[q] - 2:
                        flags[found] = True
                        again[q] = True
        n_flags = 0
        for i in range(m):
            n_flags += flags[i]
        if n_flags == 0:
            return level, coords
        level, coords = _refine(level, coords, flags)
        check = np.empty(level.shape[0], dtype=np.int64)
        n = j = 0
        for i in range(m):  # new leaves and the leaves that refined a neighbour, in order
            if flags[i]:
                for c in range(k):
                    check[n] = j + c
                    n += 1
                j += k
            else:
                if again[i]:
                    check[n] = j
                    n += 1
                j += 1
        check = check[:n].copy()
