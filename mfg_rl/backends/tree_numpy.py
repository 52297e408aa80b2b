"""Tree-mesh kernels in plain numpy: Morton keys, locate, faces, refine, coarsen, 2:1 balance.

The reference twin of ``tree_numba`` (same functions, same arguments, identical results).
A tree mesh (binary tree in 1D, quadtree in 2D) is two integer arrays over its leaves:
``level`` (M,) and ``coords`` (M, d), the leaf's cell index at its own level, so leaf ``k``
covers ``[lo + coords h_l, lo + (coords + 1) h_l)`` with ``h_l = (hi - lo) / (root_shape 2^l)``.
Leaves are sorted by the Morton key of their lowest corner at the finest level ``L``,

    key = interleave(coords << (L - level))          (axis 0 in the lowest bit),

so the leaves inside any cell of level ``l`` form one run of keys ``[key, key + 2^(d (L - l)))``
and the leaf holding a point is the last leaf whose key does not exceed the point's key: a
binary search, ``O(log M)`` per point. Children of a cell follow their parent's position in
the order ``c = sum_a bit_a 2^a`` (``bit_a`` the child's offset along axis ``a``).

Faces are found from the leaf on their minus side: the same-level neighbour cell across the
``+axis`` side of leaf ``a`` holds either one leaf of the same or the coarser level (one face)
or, on a 2:1 balanced mesh, the ``2^(d-1)`` children adjacent to the face (hanging faces).
"""

from __future__ import annotations

import numpy as np

_MASKS = ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
          (2, 0x3333333333333333), (1, 0x5555555555555555))


def morton(fine: np.ndarray) -> np.ndarray:
    """Morton keys of integer points, shape (N, d) -> (N,) int64; 2D coordinates below 2^31."""
    fine = np.asarray(fine, dtype=np.int64)
    if fine.shape[1] == 1:
        return fine[:, 0].copy()
    key = np.zeros(fine.shape[0], dtype=np.int64)
    for axis in range(2):
        x = fine[:, axis] & 0xFFFFFFFF
        for shift, mask in _MASKS:
            x = (x | (x << shift)) & mask
        key |= x << axis
    return key


def keys_of(level: np.ndarray, coords: np.ndarray, max_level: int) -> np.ndarray:
    """Morton keys of the leaves' lowest corners at level ``max_level``, shape (M,)."""
    return morton(coords << (max_level - level)[:, None])


def locate(keys: np.ndarray, points: np.ndarray, lo: np.ndarray, scale: np.ndarray,
           n_fine: np.ndarray) -> np.ndarray:
    """Index of the leaf holding each point, (N, d) -> (N,) int64.

    The point's finest cell is ``clip(floor((x - lo) scale), 0, n_fine - 1)`` per axis, its
    leaf the last one whose key does not exceed that cell's key (points checked by the caller).
    """
    fine = np.floor((points - lo) * scale).astype(np.int64)
    np.clip(fine, 0, n_fine - 1, out=fine)
    return np.searchsorted(keys, morton(fine), side="right") - 1


def _neighbour_keys(level: np.ndarray, coords: np.ndarray, axis: int, step: int, root_shape: np.ndarray,
                    max_level: int, periodic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the same-level neighbour cells across side ``step`` (+1 or -1) of ``axis``, and
    the mask of leaves that have one (outside a non-periodic box they do not)."""
    nb = coords.copy()
    nb[:, axis] += step
    n_level = root_shape[axis] << level
    if periodic[axis]:
        nb[:, axis] %= n_level
        inside = np.ones(len(level), dtype=bool)
    else:
        inside = (nb[:, axis] >= 0) & (nb[:, axis] < n_level)
    return keys_of(level[inside], nb[inside], max_level), inside


def faces(level: np.ndarray, coords: np.ndarray, keys: np.ndarray, root_shape: np.ndarray, max_level: int,
          periodic: np.ndarray) -> tuple[np.ndarray, ...]:
    """Interior and boundary faces of a 2:1 balanced mesh.

    Returns ``(minus, plus, axis)`` of the interior faces, sorted by (minus, axis, plus), and
    ``(leaf, axis, side)`` of the boundary faces (side 0: low end, 1: high end), sorted by
    (leaf, axis, side); all int64 arrays.
    """
    ndim = coords.shape[1]
    minus, plus, axes, b_leaf, b_axis, b_side = [], [], [], [], [], []
    for axis in range(ndim):
        nb_keys, inside = _neighbour_keys(level, coords, axis, 1, root_shape, max_level, periodic)
        leaf = np.flatnonzero(inside)
        found = np.searchsorted(keys, nb_keys, side="right") - 1
        coarse = level[found] <= level[leaf]
        minus.append(leaf[coarse])
        plus.append(found[coarse])
        axes.append(np.full(int(coarse.sum()), axis, dtype=np.int64))
        fine_side = leaf[~coarse]
        nb = coords[fine_side].copy()
        nb[:, axis] += 1
        if periodic[axis]:
            nb[:, axis] %= root_shape[axis] << level[fine_side]
        for t in range(2 ** (ndim - 1)):  # children of the neighbour cell on its -axis side
            child = 2 * nb
            if ndim == 2:
                child[:, 1 - axis] += t
            child_keys = keys_of(level[fine_side] + 1, child, max_level)
            minus.append(fine_side)
            plus.append(np.searchsorted(keys, child_keys, side="right") - 1)
            axes.append(np.full(len(fine_side), axis, dtype=np.int64))
        if not periodic[axis]:
            for side, at_edge in ((0, coords[:, axis] == 0), (1, ~inside)):
                edge = np.flatnonzero(at_edge)
                b_leaf.append(edge)
                b_axis.append(np.full(len(edge), axis, dtype=np.int64))
                b_side.append(np.full(len(edge), side, dtype=np.int64))
    minus_a, plus_a, axis_a = np.concatenate(minus), np.concatenate(plus), np.concatenate(axes)
    order = np.lexsort((plus_a, axis_a, minus_a))
    if b_leaf:
        b_leaf_a, b_axis_a, b_side_a = np.concatenate(b_leaf), np.concatenate(b_axis), np.concatenate(b_side)
    else:
        b_leaf_a = b_axis_a = b_side_a = np.zeros(0, dtype=np.int64)
    b_order = np.lexsort((b_side_a, b_axis_a, b_leaf_a))
    return (minus_a[order], plus_a[order], axis_a[order], b_leaf_a[b_order], b_axis_a[b_order],
            b_side_a[b_order])


def refine(level: np.ndarray, coords: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace each flagged leaf by its ``2^d`` children in place (Morton order is kept)."""
    ndim = coords.shape[1]
    counts = np.where(flags, 2**ndim, 1)
    source = np.repeat(np.arange(len(level)), counts)
    child = np.arange(len(source)) - np.repeat(np.cumsum(counts) - counts, counts)
    split = flags[source].astype(np.int64)
    new_coords = coords[source] << split[:, None]
    for axis in range(ndim):
        new_coords[:, axis] += ((child >> axis) & 1) * split
    return level[source] + split, new_coords


def families(level: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Start indices of the complete families: ``2^d`` sibling leaves, consecutive in the
    order, child 0 first (level > 0). Shape (F,) int64, increasing."""
    ndim = coords.shape[1]
    k = 2**ndim
    start = np.flatnonzero((level > 0) & np.all(coords % 2 == 0, axis=1))
    start = start[start + k <= len(level)]
    for j in range(1, k):
        member = start + j
        same = (level[member] == level[start]) & np.all(coords[member] >> 1 == coords[start] >> 1, axis=1)
        start = start[same]
    return start


def coarsen(level: np.ndarray, coords: np.ndarray, keys: np.ndarray, flags: np.ndarray, min_level: int,
            root_shape: np.ndarray, max_level: int, periodic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace each complete family whose leaves are all flagged by its parent, unless the
    parent would be below ``min_level`` or next to a leaf two levels finer (2:1 balance kept:
    the largest such set, found by dropping blocked families until none is left)."""
    ndim = coords.shape[1]
    k = 2**ndim
    start = families(level, coords)
    start = start[level[start] > min_level]
    for j in range(k):
        start = start[flags[start + j]]
    family = np.full(len(level), -1, dtype=np.int64)
    for j in range(k):
        family[start + j] = start
    wanted = np.zeros(len(level), dtype=bool)
    wanted[start] = True
    # (family of a coarse leaf, fine leaf q) for every q one level finer across a face of it
    pair_family, pair_fine = [], []
    for axis in range(ndim):
        for step in (-1, 1):
            nb_keys, inside = _neighbour_keys(level, coords, axis, step, root_shape, max_level, periodic)
            leaf = np.flatnonzero(inside)
            found = np.searchsorted(keys, nb_keys, side="right") - 1
            hit = (level[found] == level[leaf] - 1) & (family[found] >= 0)
            pair_family.append(family[found[hit]])
            pair_fine.append(leaf[hit])
    fam, fine = np.concatenate(pair_family), np.concatenate(pair_fine)
    while True:
        fine_stays = (family[fine] < 0) | ~wanted[np.maximum(family[fine], 0)]
        blocked = fam[wanted[fam] & fine_stays]
        if len(blocked) == 0:
            break
        wanted[blocked] = False
    start = np.flatnonzero(wanted)
    keep = np.ones(len(level), dtype=bool)
    for j in range(1, k):
        keep[start + j] = False
    new_level, new_coords = level.copy(), coords.copy()
    new_level[start] -= 1
    new_coords[start] >>= 1
    return new_level[keep], new_coords[keep]


def balance(level: np.ndarray, coords: np.ndarray, root_shape: np.ndarray, max_level: int,
            periodic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coarsest 2:1 balanced refinement: refine every leaf with a face neighbour two or
    more levels finer, until there is none. Each pass looks from the fine side (the leaf
    across a face of ``q`` at ``q``'s level holds the coarse neighbour), and after the first
    pass only at new leaves and at leaves that found a neighbour to refine."""
    ndim = coords.shape[1]
    check = np.arange(len(level))
    while True:
        keys = keys_of(level, coords, max_level)
        flags = np.zeros(len(level), dtype=bool)
        again = np.zeros(len(level), dtype=bool)
        for axis in range(ndim):
            for step in (-1, 1):
                nb_keys, inside = _neighbour_keys(level[check], coords[check], axis, step, root_shape,
                                                  max_level, periodic)
                leaf = check[inside]
                found = np.searchsorted(keys, nb_keys, side="right") - 1
                coarse = level[found] <= level[leaf] - 2
                flags[found[coarse]] = True
                again[leaf[coarse]] = True
        if not flags.any():
            return level, coords
        counts = np.where(flags, 2**ndim, 1)
        new_start = np.cumsum(counts) - counts
        level, coords = refine(level, coords, flags)
        children = (new_start[flags][:, None] + np.arange(2**ndim)).ravel()
        check = np.union1d(children, new_start[again & ~flags])
