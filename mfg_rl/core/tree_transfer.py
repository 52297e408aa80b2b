"""Parent/child maps between two tree meshes of one root, and the conservative transfer of
cell averages along them.

A new leaf either lies inside one old leaf (the same leaf, or a descendant after
refinement) or is the union of old leaves (its descendants, after coarsening). The cell
average on the new leaf ``K`` is the overlap-weighted mean of the old averages,

    v_K = sum_i |K cap K_i| v_i / |K|,

that is a copy into children and a volume-weighted average into parents, so the integral
``sum_K |K| v_K`` is the same on both meshes (to round-off).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.core.tree_mesh import TreeMesh


@dataclass(frozen=True)
class LeafMap:
    """How the leaves of ``new`` lie over those of ``old``: for new leaf ``k`` the old leaves
    ``start[k]:stop[k]`` (one run in Morton order) are those it overlaps; arrays (M_new,).

    ``stop - start == 1`` where the new leaf lies inside one old leaf (``old.level[start] <=
    new.level``: the same leaf or a descendant), more where it is the parent (or an ancestor)
    of the old leaves of the run.

    Example:
        >>> from mfg_rl.core.tree_mesh import TreeMesh
        >>> old = TreeMesh.uniform([(0.0, 1.0)], min_level=1, max_level=3, kernels="numpy")
        >>> new = old.refine(np.array([True, False]))
        >>> LeafMap.between(old, new).transfer(np.array([1.0, 3.0])).tolist()
        [1.0, 1.0, 3.0]
    """

    old: TreeMesh
    new: TreeMesh
    start: np.ndarray
    stop: np.ndarray

    @classmethod
    def between(cls, old: TreeMesh, new: TreeMesh) -> LeafMap:
        """The map from ``old`` to ``new``; both meshes must share their ``TreeRoot``."""
        for name, mesh in (("old", old), ("new", new)):
            if not isinstance(mesh, TreeMesh):
                raise TypeError(f"{name} must be a TreeMesh, got {type(mesh).__name__}")
        if old.root != new.root:
            raise ValueError(f"old and new must share one TreeRoot, got {old.root} and {new.root}")
        start = np.searchsorted(old.keys, new.keys, side="right") - 1
        span = np.int64(1) << (new.ndim * (new.root.max_level - new.level))
        stop = np.where(old.level[start] < new.level, start + 1,
                        np.searchsorted(old.keys, new.keys + span, side="left"))
        return cls(old, new, start, stop)

    @functools.cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(new_leaf, old_leaf, weight)`` of every overlap, ``weight = |K_new cap K_old| / |K_new|``;
        arrays (P,), grouped by new leaf; the weights of each new leaf sum to 1 (computed once: the
        slab transfers of a solve reuse one map)."""
        counts = self.stop - self.start
        new_leaf = np.repeat(np.arange(len(self.new)), counts)
        old_leaf = np.arange(len(new_leaf)) - np.repeat(np.cumsum(counts) - counts - self.start, counts)
        v_old, v_new = self.old.volumes[old_leaf], self.new.volumes[new_leaf]
        return new_leaf, old_leaf, np.minimum(v_old, v_new) / v_new

    def transfer(self, values: Any) -> np.ndarray:
        """Cell averages on ``old`` -> cell averages on ``new``: ``(..., M_old) -> (..., M_new)``,
        conserving ``sum_K |K| v_K`` along the last axis (copy into children, volume-weighted
        mean into parents)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 0 or values.shape[-1] != len(self.old):
            raise ValueError(f"values must have shape (..., {len(self.old)}) (one per old leaf), "
                             f"got {values.shape}")
        if np.all(self.stop - self.start == 1):
            return values[..., self.start]
        _, old_leaf, weight = self.pairs
        return np.add.reduceat(values[..., old_leaf] * weight, self._first, axis=-1)

    @functools.cached_property
    def _first(self) -> np.ndarray:
        """Where each new leaf's run starts in ``pairs`` (M_new,)."""
        return np.cumsum(self.stop - self.start) - (self.stop - self.start)

    def interpolate(self, values: Any, gradients: Any) -> np.ndarray:
        """Point values at the old leaf centres ``(..., M_old)`` -> at the new ones ``(..., M_new)``,
        first order: a new leaf inside a coarser old leaf ``i`` takes ``v_i + grad_i . (x - x_i)``
        (``gradients`` ``(..., M_old, d)``), the others ``transfer``'s value (a copy, or the mean of
        the children). For ``u``, whose slopes are the control: ``transfer`` would make ``u`` flat
        in each refined leaf, with jumps of ``h |grad u|`` at its sides."""
        out = self.transfer(values)
        inside = np.flatnonzero((self.stop - self.start == 1) & (self.old.level[self.start] < self.new.level))
        if len(inside):
            old = self.start[inside]
            offset = self.new.centres[inside] - self.old.centres[old]  # (P, d)
            out[..., inside] += np.einsum("...pd,pd->...p", np.asarray(gradients)[..., old, :], offset)
        return out
