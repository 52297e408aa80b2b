"""A cell-centred tree mesh on a box: binary tree in 1D, quadtree in 2D, as flat arrays.

The leaves are rows of integer arrays (``level`` (M,), ``coords`` (M, d)) in Morton order
(p4est's layout; ``mfg_rl.backends.tree_numpy`` documents it); geometry, faces and families
are derived arrays. Every mesh is 2:1 balanced across faces (face neighbours differ by at
most one level), and immutable: ``refine``, ``coarsen`` and ``adapt`` return new meshes,
``LeafMap`` (``core/tree_transfer.py``) carries cell averages from one to the other.
The imperative work runs in the numba kernels (``backends/tree_numba.py``) when numba is
installed, else in their numpy twin (``backends/tree_numpy.py``); both give identical meshes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mfg_rl.core.grid import Grid
from mfg_rl.core.tree_root import TreeRoot

KERNELS = ("auto", "numba", "numpy")


def tree_kernels(name: str) -> ModuleType:
    """The kernel module ``"numba"`` or ``"numpy"``; ``"auto"``: numba when installed."""
    from mfg_rl.backends import tree_numba, tree_numpy

    if name not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(map(repr, KERNELS))}, got {name!r}")
    if name == "numba" and not tree_numba.available():
        raise ImportError("kernels='numba' needs numba: pip install 'mfg-rl[numba]' (or use kernels='numpy')")
    if name == "numba" or (name == "auto" and tree_numba.available()):
        return tree_numba
    return tree_numpy


@dataclass(frozen=True)
class TreeFaces:
    """The interior faces of a mesh, each once, sorted by ``(minus, axis, plus)``; arrays (F,).

    ``minus``/``plus``: the leaves on the low/high side along ``axis`` (across a periodic end
    ``plus`` is the leaf at the low end of the box); ``area``: the face measure (the smaller
    leaf's side; 1 in 1D); ``normal_distance``: ``(h_minus + h_plus) / 2`` along ``axis``;
    ``distance``: ``|x_plus - x_minus|`` between centres (periodic ends unwrapped);
    ``hanging``: the two leaves differ by a level (a coarse leaf meets ``2^(d-1)`` fine ones).
    """

    minus: np.ndarray
    plus: np.ndarray
    axis: np.ndarray
    area: np.ndarray
    normal_distance: np.ndarray
    distance: np.ndarray
    hanging: np.ndarray

    def __len__(self) -> int:
        return len(self.minus)


@dataclass(frozen=True)
class BoundaryFaces:
    """The faces on the box's boundary, sorted by ``(leaf, axis, side)``; arrays (B,).

    ``side`` is 0 at ``lo`` and 1 at ``hi`` of ``axis``; periodic axes have none.
    """

    leaf: np.ndarray
    axis: np.ndarray
    side: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return len(self.leaf)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view (the kernels get the writable base: numba compiles once per array type)."""
    view = array.view()
    view.flags.writeable = False
    return view


class TreeMesh:
    """A 2:1 balanced, cell-centred tree mesh: leaf ``k`` of level ``l`` covers
    ``prod_d [lo_d + c_d h_{l,d}, lo_d + (c_d + 1) h_{l,d})`` with ``c = coords[k]`` and
    ``h_{l,d} = (hi_d - lo_d) / (root_shape_d 2^l)``; leaves in Morton order.

    Build one with ``TreeMesh.uniform``, ``TreeMesh.from_grid`` or ``TreeMesh.from_leaves``.

    Example:
        >>> mesh = TreeMesh.uniform([(0.0, 1.0), (0.0, 1.0)], min_level=2, max_level=5, kernels="numpy")
        >>> fine = mesh.refine(mesh.centres[:, 0] < 0.25)
        >>> len(mesh), len(fine), fine.leaves_per_level()[2:4].tolist()
        (16, 28, [12, 16])
    """

    def __init__(self, root: TreeRoot, level: np.ndarray, coords: np.ndarray, kernels: str = "auto") -> None:
        """Internal: leaves known to form a balanced tree of ``root`` (see ``from_leaves``)."""
        self.root = root
        self._kernels = tree_kernels(kernels)
        self.kernels = self._kernels.__name__.rsplit("_", 1)[-1]
        self._level = np.array(level, dtype=np.int64)
        self._coords = np.array(coords, dtype=np.int64).reshape(len(self._level), root.ndim)
        self.level, self.coords = _frozen(self._level), _frozen(self._coords)
        self._root_shape = np.array(root.root_shape, dtype=np.int64)
        self._periodic = np.array(root.periodic, dtype=np.bool_)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def uniform(cls, bounds: Sequence[Sequence[float]], *, max_level: int, min_level: int = 0,
                root_shape: int | Sequence[int] = 1, periodic: bool | Sequence[bool] = False,
                kernels: str = "auto") -> TreeMesh:
        """The uniform mesh of level ``min_level`` on the box ``bounds`` (``TreeRoot`` checks
        every argument before any work)."""
        root = TreeRoot(bounds, root_shape, min_level, max_level, periodic)
        grids = np.meshgrid(*(np.arange(n << root.min_level) for n in root.root_shape), indexing="ij")
        coords = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
        level = np.full(len(coords), root.min_level, dtype=np.int64)
        kernel = tree_kernels(kernels)
        order = np.argsort(kernel.keys_of(level, coords, root.max_level), kind="stable")
        return cls(root, level, coords[order], kernels)

    @classmethod
    def from_grid(cls, grid: Grid, *, max_level: int, min_level: int = 0,
                  root_shape: int | Sequence[int] | None = None, kernels: str = "auto") -> TreeMesh:
        """The uniform mesh on ``grid.bounds``, periodic where ``grid`` is; by default the root
        cells are near square (``root_shape_d = round(L_d / min_d L_d)``)."""
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a mfg_rl.core.Grid, got {type(grid).__name__}")
        if root_shape is None:
            spans = [hi - lo for lo, hi in grid.bounds]
            root_shape = tuple(max(1, round(s / min(spans))) for s in spans)
        periodic = tuple(pair == ("periodic", "periodic") for pair in grid.boundary)
        return cls.uniform(grid.bounds, max_level=max_level, min_level=min_level, root_shape=root_shape,
                           periodic=periodic, kernels=kernels)

    @classmethod
    def from_leaves(cls, root: TreeRoot, level: np.ndarray, coords: np.ndarray,
                    kernels: str = "auto") -> TreeMesh:
        """A mesh from its leaf arrays (e.g. saved ones), checked: shapes, levels in
        ``[min_level, max_level]``, coordinates inside the box, Morton order, a tiling of the
        box without overlap, 2:1 balance."""
        if not isinstance(root, TreeRoot):
            raise TypeError(f"root must be a TreeRoot, got {type(root).__name__}")
        level = np.asarray(level)
        coords = np.asarray(coords)
        if level.ndim != 1 or coords.shape != (len(level), root.ndim) or len(level) == 0:
            raise ValueError(f"level must have shape (M,) and coords (M, {root.ndim}), M >= 1; got "
                             f"{level.shape} and {coords.shape}")
        if level.dtype.kind not in "iu" or coords.dtype.kind not in "iu":
            raise TypeError(f"level and coords must be integer arrays, got {level.dtype} and {coords.dtype}")
        level, coords = level.astype(np.int64), coords.astype(np.int64)
        if level.min() < root.min_level or level.max() > root.max_level:
            raise ValueError(f"level must lie in [{root.min_level}, {root.max_level}], got "
                             f"[{level.min()}, {level.max()}]")
        if (coords < 0).any() or (coords >= np.array(root.root_shape) << level[:, None]).any():
            raise ValueError("coords must lie in [0, root_shape 2^level) per axis")
        mesh = cls(root, level, coords, kernels)
        span = np.int64(1) << (root.ndim * (root.max_level - mesh.level))
        if (np.diff(mesh.keys) <= 0).any() or (mesh.keys[:-1] + span[:-1] > mesh.keys[1:]).any():
            raise ValueError("leaves must be in increasing Morton order and must not overlap")
        if not np.isclose(mesh.volumes.sum(), root.volume, rtol=1e-12, atol=0.0):
            raise ValueError(f"leaves cover {mesh.volumes.sum()!r} of the box's {root.volume!r}: "
                             "not a tiling")
        if len(mesh._kernels.balance(mesh._level, mesh._coords, mesh._root_shape, root.max_level,
                                     mesh._periodic)[0]) != len(mesh):
            raise ValueError("leaves are not 2:1 balanced (a face neighbour two or more levels finer)")
        return mesh

    # -- leaves and their geometry ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.level)

    @property
    def ndim(self) -> int:
        return self.root.ndim

    @functools.cached_property
    def _keys(self) -> np.ndarray:
        return self._kernels.keys_of(self._level, self._coords, self.root.max_level)

    @property
    def keys(self) -> np.ndarray:
        """Morton keys of the leaves' lowest corners at ``max_level``, increasing, shape (M,)."""
        return _frozen(self._keys)

    @functools.cached_property
    def sizes(self) -> np.ndarray:
        """Leaf widths ``h_{l,d}``, shape (M, d)."""
        return _frozen(self.root.width(self.level))

    @functools.cached_property
    def centres(self) -> np.ndarray:
        """Leaf centres ``lo + (c + 1/2) h``, shape (M, d)."""
        lo = np.array([lo for lo, _ in self.root.bounds])
        return _frozen(lo + (self.coords + 0.5) * self.sizes)

    @functools.cached_property
    def volumes(self) -> np.ndarray:
        """Leaf volumes ``prod_d h_{l,d}``, shape (M,)."""
        return _frozen(np.prod(self.sizes, axis=1))

    def leaves_per_level(self) -> np.ndarray:
        """Number of leaves of each level ``0..max_level``, shape (max_level + 1,)."""
        return np.bincount(self.level, minlength=self.root.max_level + 1)

    @functools.cached_property
    def families(self) -> np.ndarray:
        """Start indices of the complete families (``2^d`` sibling leaves, consecutive,
        child ``c = sum_a bit_a 2^a`` at ``start + c``), shape (F,): what ``coarsen`` may merge."""
        return _frozen(self._kernels.families(self._level, self._coords))

    # -- faces ------------------------------------------------------------------------------
    @functools.cached_property
    def _face_lists(self) -> tuple[np.ndarray, ...]:
        return self._kernels.faces(self._level, self._coords, self._keys, self._root_shape,
                                   self.root.max_level, self._periodic)

    @functools.cached_property
    def faces(self) -> TreeFaces:
        """The interior faces (``TreeFaces``)."""
        minus, plus, axis = self._face_lists[:3]
        finer = np.where(self.level[minus] >= self.level[plus], minus, plus)
        area = np.ones(len(minus))
        if self.ndim == 2:
            area = self.sizes[finer, 1 - axis]
        sizes = self.sizes
        normal = 0.5 * (sizes[minus, axis] + sizes[plus, axis])
        offset = self.centres[plus] - self.centres[minus]
        offset[np.arange(len(minus)), axis] = normal
        hanging = self.level[minus] != self.level[plus]
        distance = np.linalg.norm(offset, axis=1)
        return TreeFaces(*(_frozen(a) for a in (minus, plus, axis, area, normal, distance, hanging)))

    @functools.cached_property
    def boundary_faces(self) -> BoundaryFaces:
        """The faces on the box's boundary (``BoundaryFaces``)."""
        leaf, axis, side = self._face_lists[3:]
        area = self.sizes[leaf, 1 - axis] if self.ndim == 2 else np.ones(len(leaf))
        return BoundaryFaces(*(_frozen(a) for a in (leaf, axis, side, area)))

    # -- queries ----------------------------------------------------------------------------
    def locate(self, points: Any) -> np.ndarray:
        """Index of the leaf holding each point, ``O(log M)`` per point (binary search of
        Morton keys): points (N, d) (or (N,) in 1D) inside the closed box -> (N,) int64.
        A point on a face between leaves belongs to the leaf above it (the box's ``hi`` to
        the last leaf)."""
        pts = np.asarray(points, dtype=np.float64)
        if self.ndim == 1 and pts.ndim == 1:
            pts = pts[:, None]
        if pts.ndim != 2 or pts.shape[1] != self.ndim:
            raise ValueError(f"points must have shape (N, {self.ndim}), got {np.shape(points)}")
        lo = np.array([lo for lo, _ in self.root.bounds])
        hi = np.array([hi for _, hi in self.root.bounds])
        bad = ~np.all(np.isfinite(pts) & (pts >= lo) & (pts <= hi), axis=1)
        if bad.any():
            first = pts[np.flatnonzero(bad)[0]]
            raise ValueError(f"points must be finite and inside the box {self.root.bounds}: {int(bad.sum())} "
                             f"of {len(pts)} are not, e.g. {first.tolist()}")
        n_fine = np.array(self.root.finest_shape, dtype=np.int64)
        return self._kernels.locate(self._keys, pts, lo, n_fine / (hi - lo), n_fine)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeMesh):
            return NotImplemented
        return (self.root == other.root and np.array_equal(self.level, other.level)
                and np.array_equal(self.coords, other.coords))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"TreeMesh({self.ndim}D, {len(self)} leaves, levels {self.level.min()}..{self.level.max()} "
                f"of {self.root.min_level}..{self.root.max_level}, kernels={self.kernels!r})")

    # -- adaptation -------------------------------------------------------------------------
    def _flags(self, name: str, flags: Any) -> np.ndarray:
        flags = np.array(flags, copy=True)  # contiguous and writable: one compiled signature
        if flags.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array of shape ({len(self)},), got {flags.dtype}")
        if flags.shape != (len(self),):
            raise ValueError(f"{name} must have shape ({len(self)},) (one flag per leaf), got {flags.shape}")
        return flags

    def _with(self, level: np.ndarray, coords: np.ndarray) -> TreeMesh:
        return TreeMesh(self.root, level, coords, self.kernels)

    def refine(self, flags: Any) -> TreeMesh:
        """Split each flagged leaf into its ``2^d`` children, then refine to 2:1 balance (the
        coarsest balanced mesh that splits them). Flags at ``max_level`` are ignored.

        Args:
            flags: boolean array (M,).
        """
        flags = self._flags("flags", flags) & (self.level < self.root.max_level)
        if not flags.any():
            return self
        k = self._kernels
        level, coords = k.refine(self._level, self._coords, flags)
        return self._with(*k.balance(level, coords, self._root_shape, self.root.max_level, self._periodic))

    def coarsen(self, flags: Any) -> TreeMesh:
        """Merge each complete family whose ``2^d`` leaves are all flagged into its parent,
        except below ``min_level`` and where the parent would meet a leaf two levels finer
        (the mesh stays balanced; ``coarsen(refine(flags), new leaves)`` gives the mesh back).

        Args:
            flags: boolean array (M,).
        """
        flags = self._flags("flags", flags)
        if not flags.any():
            return self
        root = self.root
        return self._with(*self._kernels.coarsen(self._level, self._coords, self._keys, flags, root.min_level,
                                                 self._root_shape, root.max_level, self._periodic))

    def adapt(self, refine: Any = None, coarsen: Any = None) -> TreeMesh:
        """``refine`` the flagged leaves, then ``coarsen`` the families flagged in ``coarsen``
        whose leaves the refinement left alone; both boolean arrays (M,) or None."""
        refined = self if refine is None else self.refine(refine)
        if coarsen is None:
            return refined
        coarsen = self._flags("coarsen", coarsen)
        if refined is self:
            return self.coarsen(coarsen)
        at = np.searchsorted(self.keys, refined.keys, side="right") - 1
        return refined.coarsen(coarsen[at] & (self.level[at] == refined.level))
