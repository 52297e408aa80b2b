"""Adaptive mesh refinement (issue 15): coupled solves on tree meshes, adapted between them.

The horizon is split into ``slabs`` time slabs (``amr_slabs.py``), each with its own mesh; one
coupled solve (``run_coupling`` on ``SlabMFG``, the scheme of ``tree_scheme.py`` per slab) runs
over the whole horizon, ``u`` moving backward and ``m`` forward between slab meshes by adjoint
``LeafMap`` transfers, so mass stays exact. Between solves the indicator of ``(u, m)`` over each
slab's time levels (``error_indicator``, the largest over the levels) and ``mark`` (a target error
and/or a cell budget per slab mesh) adapt every slab's mesh, and ``m`` moves to the new meshes
level by level (integrals conserved to round-off) to start the next solve. One slab is a mesh
fixed over the horizon. Fields on the problem's grid and on the leaves meet through
``grid_to_leaves`` and ``leaves_to_grid``, both conservative; the grid must be a uniform level
of the tree (``shape_d = root_shape_d 2^L``). The first steering solve, on the uniform first mesh,
runs on that mesh's grid when the tree step there would be sparse (``AMR.grid_round``: the grid's
compiled Krylov steps instead of LU factorisations, the same scheme cell by cell).

``solve(problem, method=AMR(...))`` and ``method="amr"`` run ``AMR.solve`` and return the
``Equilibrium`` of ``AMRResult.on_grid()``. The coupling is ``run_coupling``'s: fixed point,
Anderson or fictitious play; ``"auto"`` is Anderson alone (``coupling_policy``), as the tree has
no coupled Jacobian for Newton.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import NearestNDInterpolator
from scipy.spatial import Delaunay

from mfg_rl.backends import create_backend
from mfg_rl.checks import check_choice, check_int, check_real
from mfg_rl.core import Grid, MFGProblem
from mfg_rl.core.tree_mesh import KERNELS, TreeMesh
from mfg_rl.solvers.amr_marking import coarsen_through, error_indicator, mark
from mfg_rl.solvers.amr_slabs import SlabMFG, slab_edges
from mfg_rl.solvers.auto import Auto
from mfg_rl.solvers.callbacks import Callback, IterationState
from mfg_rl.solvers.coupling import Anderson, CouplingResult, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.newton import Newton
from mfg_rl.solvers.trajectory import HJBResult, Sequential
from mfg_rl.solvers.tree_scheme import TreeMFG

INDICATOR_KINDS = ("jump", "gradient", "density")
BUDGET_SHARE = 0.3  # default budget: this share of the uniform max_level mesh (issue 15's cell target)


def grid_level(grid: Grid, mesh: TreeMesh) -> int:
    """The tree level ``L`` whose uniform mesh is ``grid`` (``shape_d = root_shape_d 2^L``); ValueError
    if there is none."""
    ratios = {n / r for n, r in zip(grid.shape, mesh.root.root_shape, strict=True)}
    ratio = ratios.pop() if len(ratios) == 1 else 0.0
    level = round(math.log2(ratio)) if ratio >= 1.0 else -1
    if level < 0 or 2**level != ratio:
        raise ValueError(f"the grid {grid.shape} must be a uniform level of the tree: root_shape "
                         f"{mesh.root.root_shape} times one power of two")
    return level


def transfer_matrices(grid: Grid, mesh: TreeMesh) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(to_leaves (M, N), to_grid (N, M))``: cell averages between the grid's ``N`` cells (C order)
    and the leaves. A leaf at or above the grid's level takes the mean of its cells and gives its
    value to each; a finer leaf takes its cell's value and gives its volume share. Both keep
    integrals (``sum vol v``) to round-off."""
    level = grid_level(grid, mesh)
    vol, cell = np.asarray(mesh.volumes), grid.cell_volume
    centres = np.stack([a.ravel() for a in grid.mesh()], axis=1)
    holder = mesh.locate(centres)  # the leaf holding each cell's centre
    coarse = mesh.level[holder] <= level
    cells = np.flatnonzero(coarse)
    fine = np.flatnonzero(mesh.level > level)
    lo = np.array([b[0] for b in grid.bounds])
    index = np.floor((mesh.centres[fine] - lo) / np.array(grid.spacing)).astype(np.int64)
    owner = np.ravel_multi_index(tuple(index.T), grid.shape)  # the cell of each finer leaf
    n, m = grid.size, len(mesh)
    to_leaves = sp.csr_matrix((np.concatenate([cell / vol[holder[cells]], np.ones(len(fine))]),
                               (np.concatenate([holder[cells], fine]), np.concatenate([cells, owner]))),
                              shape=(m, n))
    to_grid = sp.csr_matrix((np.concatenate([np.ones(len(cells)), vol[fine] / cell]),
                             (np.concatenate([cells, owner]), np.concatenate([holder[cells], fine]))),
                            shape=(n, m))
    return to_leaves, to_grid


def grid_to_leaves(grid: Grid, mesh: TreeMesh, values: Any) -> np.ndarray:
    """Cell averages on ``grid`` ``(..., *shape)`` -> on the leaves ``(..., M)`` (``transfer_matrices``)."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(*values.shape[: values.ndim - grid.ndim], grid.size)
    return (transfer_matrices(grid, mesh)[0] @ flat.reshape(-1, grid.size).T).T.reshape(*flat.shape[:-1], -1)


def leaves_to_grid(grid: Grid, mesh: TreeMesh, values: Any) -> np.ndarray:
    """Cell averages on the leaves ``(..., M)`` -> on ``grid`` ``(..., *shape)`` (``transfer_matrices``)."""
    values = np.asarray(values, dtype=np.float64)
    out = (transfer_matrices(grid, mesh)[1] @ values.reshape(-1, len(mesh)).T).T
    return out.reshape(*values.shape[:-1], *grid.shape)


def changed_leaves(old: TreeMesh, new: TreeMesh) -> int:
    """Leaves of ``new`` that are not leaves of ``old`` (children of a refined leaf, parents of
    coarsened ones): those whose cell in ``old`` has another level (one leaf per level holds a point)."""
    if new == old:
        return 0
    return int(np.count_nonzero(old.level[old.locate(new.centres)] != new.level))


def coupling_policy(policy: Any) -> FixedPoint | FictitiousPlay | Anderson:
    """The ``run_coupling`` policy that ``policy`` stands for on a tree: ``Auto`` is Anderson alone
    (its depth and damping); ``Newton`` raises ValueError (no coupled Jacobian on the tree)."""
    if isinstance(policy, Newton):
        raise ValueError("coupling='newton' does not run on an AMR tree: the coupled Jacobian is "
                         "assembled only on the uniform grid; use coupling='auto' (Anderson), 'anderson' "
                         "or 'fixed_point'")
    if isinstance(policy, Auto):
        return Anderson(depth=policy.depth, damping=policy.damping)
    if not isinstance(policy, (FixedPoint, FictitiousPlay, Anderson)):
        raise TypeError(f"policy must be FixedPoint, FictitiousPlay, Anderson or Auto, "
                        f"got {type(policy).__name__}")
    return policy


def interpolate_to_grid(grid: Grid, mesh: TreeMesh, values: Any) -> np.ndarray:
    """Point values at the leaf centres ``(..., M)`` -> at the grid's cell centres ``(..., *shape)``:
    linear interpolation (piecewise linear in 1D, on the Delaunay triangles of the centres in 2D),
    the nearest centre's value beyond them. For ``u``, whose gradient is the control: cell
    averages would make it a staircase on coarse leaves."""
    values = np.asarray(values, dtype=np.float64)
    rows = values.reshape(-1, len(mesh)).T  # (M, K)
    centres = np.asarray(mesh.centres)
    points = np.stack([a.ravel() for a in grid.mesh()], axis=1)
    if grid.ndim == 1:
        order = np.argsort(centres[:, 0])
        out = np.stack([np.interp(points[:, 0], centres[order, 0], row[order]) for row in rows.T], axis=1)
        return out.T.reshape(*values.shape[:-1], *grid.shape)
    out = np.empty((len(points), rows.shape[1]))
    holder, level = mesh.locate(points), grid_level(grid, mesh)
    own = mesh.level[holder] == level  # the cell is a leaf: its centre's value
    out[own] = rows[holder[own]]
    rest = np.flatnonzero(~own)
    if len(rest):
        kept = triangulated(mesh, level)
        simplices = kept[Delaunay(centres[kept]).simplices]
        triangle, weights = barycentric(centres[simplices], points[rest])
        inside = triangle >= 0
        out[rest[inside]] = np.einsum("pk,pkv->pv", weights[inside], rows[simplices[triangle[inside]]])
        out[rest[~inside]] = NearestNDInterpolator(centres, rows)(points[rest[~inside]])
    return out.T.reshape(*values.shape[:-1], *grid.shape)


def triangulated(mesh: TreeMesh, level: int, reach: float = 3.0) -> np.ndarray:
    """The leaves whose centres ``interpolate_to_grid`` triangulates: those off the grid's ``level``
    (a grid cell that is a leaf takes its value) and the leaves at ``level`` within ``reach`` times
    the width of an off-level one, which holds the centres of the Delaunay circles over off-level
    leaves: the triangles that cover them are the full triangulation's up to the diagonals qhull
    picks among cocircular centres (crowd-2d's front at finest 8: 5.7k of 16.8k leaves, 0.07 s
    against 0.18 s; u within 3e-4 of its range of the full triangulation's)."""
    on = mesh.level == level
    off = np.flatnonzero(~on)
    if len(off) == 0 or not on.any():
        return np.arange(len(mesh))
    from scipy.spatial import cKDTree

    at_level = np.flatnonzero(on)
    near = cKDTree(mesh.centres[at_level]).query_ball_point(
        mesh.centres[off], r=reach * mesh.sizes[off].max(axis=1))
    band = at_level[np.unique(np.concatenate([np.asarray(n, dtype=np.int64) for n in near]))]
    return np.sort(np.concatenate([off, band]))


def barycentric(triangles: np.ndarray, points: np.ndarray, chunk: int = 1 << 22,
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(triangle, weights)``: for each point ``(P, 2)`` the first of ``triangles`` ``(S, 3, 2)``
    holding it (-1 if none; flat ones skipped) and its barycentric weights ``(P, 3)``.

    Only the pairs whose point lies in the triangle's bounding box are tested: the points are
    binned on a ``sqrt(P) x sqrt(P)`` grid and each triangle meets the points of the bins its box
    covers, ``O(P + S)`` pairs on a mesh's centres, at most ``chunk`` at a time. (``Delaunay.find_simplex``
    computes its barycentric maps by one LAPACK call per triangle, seconds when BLAS threads meet a
    busy CPU; testing all ``P S`` pairs costs seconds at ``P = 4096``.)"""
    a, e1, e2 = triangles[:, 0], triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    flat = np.abs(det) <= 1e-12 * np.abs(e1).max(initial=0.0) * np.abs(e2).max(initial=0.0)
    det = np.where(flat, 1.0, det)
    triangle, weights = np.full(len(points), -1), np.zeros((len(points), 3))
    if len(points) == 0 or len(triangles) == 0:
        return triangle, weights
    bins = max(1, math.isqrt(len(points)))
    lo, hi = points.min(axis=0), points.max(axis=0)
    width = np.maximum(hi - lo, 1e-300) / bins
    slack = 1e-9 * (np.abs(triangles).max() + 1.0)  # a point on an edge, within the weights' 1e-12
    first = np.clip(np.floor((triangles.min(axis=1) - slack - lo) / width), 0, bins - 1).astype(np.int64)
    last = np.clip(np.floor((triangles.max(axis=1) + slack - lo) / width), 0, bins - 1).astype(np.int64)
    own = np.clip(np.floor((points - lo) / width), 0, bins - 1).astype(np.int64)
    order = np.argsort(own[:, 0] * bins + own[:, 1], kind="stable")  # points by bin
    start = np.searchsorted((own[:, 0] * bins + own[:, 1])[order], np.arange(bins * bins + 1))
    span = last - first + 1
    hits_tri, hits_point, hits_w = [], [], []
    for part in np.array_split(np.arange(len(triangles)), max(1, int(span.prod(axis=1).sum()) // chunk + 1)):
        count = span[part].prod(axis=1)  # bins per triangle
        tri = np.repeat(part, count)
        within = np.arange(len(tri)) - np.repeat(np.cumsum(count) - count, count)
        ny = span[tri, 1]
        box = (first[tri, 0] + within // ny) * bins + first[tri, 1] + within % ny
        many = start[box + 1] - start[box]  # points per (triangle, bin)
        tri, box = np.repeat(tri, many), np.repeat(box, many)
        point = order[start[box] + np.arange(len(tri)) - np.repeat(np.cumsum(many) - many, many)]
        d = points[point] - a[tri]
        w1 = (d[:, 0] * e2[tri, 1] - d[:, 1] * e2[tri, 0]) / det[tri]
        w2 = (e1[tri, 0] * d[:, 1] - e1[tri, 1] * d[:, 0]) / det[tri]
        hit = (w1 >= -1e-12) & (w2 >= -1e-12) & (w1 + w2 <= 1.0 + 1e-12) & ~flat[tri]
        hits_tri.append(tri[hit])
        hits_point.append(point[hit])
        hits_w.append(np.stack([1.0 - w1[hit] - w2[hit], w1[hit], w2[hit]], axis=1))
    tri, point, w = np.concatenate(hits_tri), np.concatenate(hits_point), np.concatenate(hits_w)
    pick = np.lexsort((tri, point))  # by point, then triangle: each point's first hit leads
    pick = pick[np.r_[True, point[pick][1:] != point[pick][:-1]]] if len(pick) else pick
    triangle[point[pick]] = tri[pick]
    weights[point[pick]] = w[pick]
    return triangle, weights


class TreeMarching:
    """``Sequential`` on a tree: the trajectory strategy ``run_coupling`` calls with a ``TreeMFG``.

    ``start``: ``u`` (Nt+1, W) that starts the Newton steps of the first sweep (an earlier solve's
    ``u`` on these meshes), where ``run_coupling`` has no iterate yet; None: each step starts from
    ``u^{n+1}``. It only saves Newton iterations: the steps are solved to the same tolerance."""

    name = "tree-sequential"

    def __init__(self, start: np.ndarray | None = None) -> None:
        self.start = start

    def hjb(self, disc: TreeMFG | SlabMFG, m: Any, u_guess: Any = None, forcing: float | None = None,
            ) -> HJBResult:
        return disc.hjb(m, self.start if u_guess is None else u_guess, forcing)

    def fp(self, disc: TreeMFG | SlabMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None,
           ) -> Any:
        return disc.fp(disc.matrices(u, m) if steps is None else steps, m)  # FP(u(m)) = m at the fixed point


def uniform_problem(problem: MFGProblem, mesh: TreeMesh) -> MFGProblem:
    """``problem`` on the grid of the uniform ``mesh`` (its leaves, in C order), ``m0`` the cell
    averages there (``grid_to_leaves``, conservative)."""
    level = int(mesh.level[0])
    shape = [n << level for n in mesh.root.root_shape]
    grid = Grid(problem.grid.bounds, shape, boundary=problem.grid.boundary)
    m0 = leaves_to_grid(grid, mesh, grid_to_leaves(problem.grid, mesh, problem.m0))
    return dataclasses.replace(problem, grid=grid, m0=m0)


class OnLeaves(Callback):
    """Forwards to ``callback`` with the fields of each iteration moved from a grid to the leaves
    (``to_leaves``): what a solve on the grid of a uniform mesh shows callbacks of a tree solve."""

    def __init__(self, callback: Callback, to_leaves: Callable[[np.ndarray], np.ndarray]) -> None:
        self.callback, self.to_leaves = callback, to_leaves

    def on_start(self, max_iter: int, tol: float) -> None:
        self.callback.on_start(max_iter, tol)

    def on_iteration(self, state: IterationState) -> bool | None:
        return self.callback.on_iteration(dataclasses.replace(state, u=self.to_leaves(state.u),
                                                              m=self.to_leaves(state.m)))

    def on_end(self, converged: bool) -> None:
        self.callback.on_end(converged)


class Steer(Callback):
    """Steers a coupled solve of ``AMR.solve`` that runs to ``tol``: at the first iteration whose
    residual is under ``goal`` (the round's tolerance), the meshes marking picks for ``(u, m)``
    (``AMR.adapted``, kept in ``new``); if one changes, the solve stops there (``stopped``), else
    these meshes are final (``settled``) and it goes on to ``tol``, without the restart (Anderson's
    history lost, a repeated sweep) of a separate final solve. Inactive (``active`` False): a
    solve to ``goal`` alone."""

    def __init__(self, amr: AMR, disc: SlabMFG, goal: float, active: bool) -> None:
        self.amr, self.disc, self.goal, self.active = amr, disc, goal, active
        self.new: list[TreeMesh] | None = None
        self.stopped = self.settled = False

    def on_iteration(self, state: IterationState) -> bool | None:
        if not self.active or self.settled or state.residual > self.goal:
            return None
        self.new = self.amr.adapted(self.disc, state.u, state.m)
        if self.amr.keeps(self.disc.meshes, self.new):
            self.settled = True
            return None
        self.stopped = True
        return False


@dataclass
class AMRResult:
    """The last coupled solve of ``AMR.solve``: ``u``, ``m`` of shape (Nt+1, W) on the slab meshes
    (``SlabMFG``'s layout: level ``k`` in the first leaves of its mesh, ``disc.u_level``/``m_level``).

    ``meshes``: one per slab, ``edges`` the slabs' step indices; ``coupling``: its
    ``CouplingResult``; ``disc``: its ``SlabMFG`` (mass, outflow); ``rounds``: per coupled solve
    ``(mean leaves per step, iterations, residual)``; ``transfer_mass_error``: the largest change of
    a level's ``sum vol m`` by a transfer between rounds' meshes; ``problem``: the game.
    """

    meshes: list[TreeMesh]
    edges: np.ndarray
    u: np.ndarray
    m: np.ndarray
    coupling: CouplingResult
    problem: MFGProblem
    disc: SlabMFG
    rounds: list[tuple[float, int, float]] = field(default_factory=list)
    transfer_mass_error: float = 0.0

    @property
    def mesh(self) -> TreeMesh:
        """The mesh of the last slab (the mesh, with one slab)."""
        return self.meshes[-1]

    def mean_leaves(self) -> float:
        """Leaves per time step, averaged over the steps (space-time cells / Nt)."""
        return float(np.mean([len(self.meshes[s]) for s in self.disc.step_slab]))

    def on_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, m)`` on the problem's grid, shape ``(Nt+1, *grid.shape)``: ``u`` interpolated
        between leaf centres (``interpolate_to_grid``), ``m`` as cell averages (mass kept), each
        level from its own mesh."""
        grid, disc = self.problem.grid, self.disc
        u, m = np.zeros((len(self.u), *grid.shape)), np.zeros((len(self.m), *grid.shape))
        for s, mesh in enumerate(self.meshes):
            rows = np.flatnonzero(disc.u_slab == s)
            u[rows] = interpolate_to_grid(grid, mesh, self.u[rows, : len(mesh)])
            rows = np.flatnonzero(disc.m_slab == s)
            m[rows] = leaves_to_grid(grid, mesh, self.m[rows, : len(mesh)])
        return u, m

    def leaves_per_level(self) -> dict[str, int]:
        """Leaves per level per time step, averaged over the steps and rounded, ``{"level": count}``
        (string keys, as JSON keeps them); with one slab the final mesh's counts."""
        counts = np.mean([np.bincount(self.meshes[s].level, minlength=self.mesh.root.max_level + 1)
                          for s in self.disc.step_slab], axis=0)
        return {str(level): int(round(count)) for level, count in enumerate(counts) if count > 0}


@dataclass
class AMR:
    """Coupled solves on a tree mesh between ``min_level`` and ``max_level``, adapted between them.

    Args:
        max_level, min_level: finest and coarsest leaf levels (``TreeMesh.from_grid``'s root cells,
            near square); the first mesh is uniform at ``min_level``. None: the level ``L`` of the
            problem's grid (``shape_d = root_shape_d 2^L``) and ``max(max_level - 2, 0)``.
        tol: target of the indicator (``mark``: refine leaves over ``tol / M``; with
            ``indicator="density"``: over ``tol`` times the largest ``m``), or None.
        budget: most leaves of a slab's mesh after an adaptation, or None; with ``tol`` also None,
            30 % of the uniform ``max_level`` mesh.
        adaptations: most mesh changes; the solve stops earlier once marking leaves the meshes as are.
        slabs: time slabs, each with its own mesh (``amr_slabs.py``), in ``[1, Nt]``; 1: one mesh
            for the whole horizon.
        round_tol: coupling tolerance of the solves that only steer an adaptation (``max(tol,
            round_tol)``); the last solve, on the final meshes, goes to ``tol``. None: every solve to
            ``tol``. 1e-2 places the refinement as well as 1e-4 with fewer iterations (crowd-2d's
            front at finest 8: steering rounds of 9 and 5 iterations instead of 24 and 11).
        indicator: ``"jump"`` or ``"gradient"`` of ``u`` and ``m``, or ``"density"`` of ``m``
            (``error_indicator``): refine where the crowd is, the leaves that can carry L1 error of
            ``m`` (with ``slabs``, this matches the finest grid's error on crowd-exit-1d, README).
        kernels: tree kernels, ``"auto"``, ``"numba"`` or ``"numpy"``.
        first_level: level of the first, uniform mesh, in ``[min_level, max_level]``; None:
            ``min_level``. A finer start skips the steering solves on meshes too coarse to place
            the refinement (each adaptation moves a leaf by one level), while coarsening still
            reaches ``min_level`` where nothing happens.
        settle_share: an adaptation that would change at most this share of the leaves
            (``changed_leaves``) is not made: the meshes are final, and a steering solve goes on to
            ``tol`` instead of restarting on meshes a few leaves apart (crowd-2d's front at finest 8:
            16,085 -> 16,088 leaves cost a restart of 18 iterations).

    Costs are evaluated at leaf centres (``TreeMFG``): a cost that sums over the grid's cells
    (``lq-1d``'s mean) is right only while the mesh is the grid.

    Example:
        >>> from mfg_rl import problems
        >>> problem = problems.make("crowd-exit-1d", Nx=32, Nt=10)
        >>> result = AMR(max_level=5, min_level=3, budget=20, kernels="numpy").solve(problem, tol=1e-8)
        >>> len(result.mesh) <= 20, result.coupling.converged
        (True, True)
    """

    max_level: int | None = None
    min_level: int | None = None
    tol: float | None = None
    budget: int | None = None
    adaptations: int = 4
    slabs: int = 1
    round_tol: float | None = 1e-2
    indicator: str = "jump"
    kernels: str = "auto"
    first_level: int | None = None
    settle_share: float = 0.01
    name = "amr"
    backend = "numpy"  # the tree scheme runs on the host (scipy sparse)

    def __post_init__(self) -> None:
        if self.max_level is not None:
            self.max_level = check_int("max_level", self.max_level, 0)
        if self.min_level is not None:
            self.min_level = check_int("min_level", self.min_level, 0)
        if None not in (self.max_level, self.min_level) and self.max_level < self.min_level:
            raise ValueError(f"max_level ({self.max_level}) must be >= min_level ({self.min_level})")
        if self.tol is not None:
            self.tol = check_real("tol", self.tol, 0.0, open_low=True)
        if self.budget is not None:
            self.budget = check_int("budget", self.budget, 1)
        self.adaptations = check_int("adaptations", self.adaptations, 0)
        self.slabs = check_int("slabs", self.slabs, 1)
        if self.round_tol is not None:
            self.round_tol = check_real("round_tol", self.round_tol, 0.0, open_low=True)
        self.settle_share = check_real("settle_share", self.settle_share, 0.0, 1.0, open_high=True)
        check_choice("indicator", self.indicator, INDICATOR_KINDS)
        check_choice("kernels", self.kernels, KERNELS)
        if self.first_level is not None:
            self.first_level = check_int("first_level", self.first_level, 0)
            low, high = self.min_level or 0, self.max_level
            if self.first_level < low or (high is not None and self.first_level > high):
                raise ValueError(f"first_level ({self.first_level}) must lie in [min_level, max_level] = "
                                 f"[{self.min_level}, {self.max_level}]")

    @property
    def options(self) -> dict[str, Any]:
        """The settings, as ``Diagnostics.options["strategy"]`` records them."""
        return {"max_level": self.max_level, "min_level": self.min_level, "tol": self.tol,
                "budget": self.budget, "adaptations": self.adaptations, "slabs": self.slabs,
                "round_tol": self.round_tol, "indicator": self.indicator, "first_level": self.first_level,
                "settle_share": self.settle_share}

    def resolved(self, problem: MFGProblem) -> AMR:
        """A copy with the defaults filled for ``problem`` (levels from its grid, the budget);
        ValueError if the grid is not a uniform level of the tree or the levels conflict."""
        probe = TreeMesh.from_grid(problem.grid, max_level=0, kernels="numpy")
        level = grid_level(problem.grid, probe)
        max_level = (level if self.min_level is None else max(level, self.min_level)) \
            if self.max_level is None else self.max_level
        min_level = max(max_level - 2, 0) if self.min_level is None else self.min_level
        budget = self.budget
        if budget is None and self.tol is None and max_level > min_level:
            budget = max(1, math.ceil(BUDGET_SHARE * len(probe) * 2 ** (problem.ndim * max_level)))
        slab_edges(problem.time.Nt, self.slabs)  # ValueError unless slabs <= Nt
        return AMR(max_level, min_level, self.tol, budget, self.adaptations, self.slabs, self.round_tol,
                   self.indicator, self.kernels, min_level if self.first_level is None else self.first_level,
                   self.settle_share)

    def first_mesh(self, problem: MFGProblem) -> TreeMesh:
        """The uniform ``first_level`` mesh (of a tree from ``min_level`` to ``max_level``) on the
        problem's box; checks the grid is a level of the tree."""
        mesh = TreeMesh.from_grid(problem.grid, min_level=self.min_level, max_level=self.max_level,
                                  kernels=self.kernels)
        grid_level(problem.grid, mesh)
        for _ in range((self.min_level if self.first_level is None else self.first_level) - self.min_level):
            mesh = mesh.refine(np.ones(len(mesh), dtype=bool))
        return mesh

    def solve(self, problem: MFGProblem, policy: Any = None, *, tol: float = 1e-8, max_iter: int = 500,
              callbacks: list[Callback] | tuple = (), allow_unconverged: bool = False,
              newton_tol: float = 1e-12) -> AMRResult:
        """Coupled solves (``run_coupling`` with ``coupling_policy(policy)``, default ``FixedPoint()``,
        to ``tol``; ``callbacks`` see each solve, on the leaves) alternating with adaptations;
        returns the last solve (``AMRResult``). Raises like ``run_coupling`` when a solve does not
        converge; with ``allow_unconverged`` an unconverged solve ends the loop, flagged.

        Each solve starts from the last: ``m`` moved onto the new meshes, ``u`` interpolated onto them
        (``SlabMFG.moved``; it starts the first sweep's Newton steps, ``TreeMarching``), and a slab
        whose mesh did not change keeps its ``TreeMFG`` and factors (``SlabMFG(previous=...)``).
        Under Anderson (inexact) the Newton steps are loosened as on the grid (``TreeMFG.hjb_step``'s
        ``forcing``). A steering solve runs to ``tol`` under ``Steer``: it stops at ``round_tol``
        where marking changes a mesh, and goes on where it keeps them all (those meshes are final);
        the first, on a uniform 2D mesh, runs on its grid (``grid_round``)."""
        amr = self.resolved(problem)
        policy = FixedPoint() if policy is None else coupling_policy(policy)
        edges = slab_edges(problem.time.Nt, amr.slabs)
        meshes = [amr.first_mesh(problem)] * amr.slabs
        marching, m, rounds, moved, disc = TreeMarching(), None, [], 0.0, None
        k, final = 0, amr.min_level == amr.max_level
        while True:
            final = final or k == amr.adaptations
            goal = tol if final or amr.round_tol is None else max(tol, amr.round_tol)
            m0 = grid_to_leaves(problem.grid, meshes[0], problem.m0)
            disc = SlabMFG(problem, meshes, edges, m0, newton_tol=newton_tol, previous=disc)
            steer = Steer(amr, disc, goal, goal > tol)
            options = {"tol": tol if steer.active else goal, "max_iter": max_iter,
                       "allow_unconverged": allow_unconverged}
            if k == 0 and steer.active and amr.on_grid(disc):
                record = amr.grid_round(problem, disc, policy, [*callbacks, steer], newton_tol, options)
            else:
                record = run_coupling(disc, marching, marching, policy, m_init=m,
                                      callbacks=[*callbacks, steer], **options)
            mean = float(np.mean([disc.sizes[s] for s in disc.step_slab]))
            rounds.append((mean, record.iterations, float(record.residuals[-1])))
            done = record.converged or record.stopped_by == "floor" or steer.stopped
            if final or steer.settled or not done:
                break
            new = amr.adapted(disc, record.u, record.m) if steer.new is None else steer.new
            if amr.keeps(meshes, new):  # settled: one more solve on it, to tol, unless this one was
                if goal == tol:
                    break
                final, m, marching = True, record.m, TreeMarching(record.u)
                continue
            m, worst = disc.moved(record.m, new)
            marching = TreeMarching(disc.moved(record.u, new, disc.u_slab, interpolate=True)[0])
            moved, meshes, k = max(moved, worst), new, k + 1
        return AMRResult(meshes, edges, record.u, record.m, record, problem, disc, rounds, moved)

    @staticmethod
    def on_grid(disc: SlabMFG) -> bool:
        """Whether a solve on ``disc``'s meshes runs on their grid instead (``grid_round``): one uniform
        mesh, at least 3 leaves per axis (a ``Grid``), whose tree step is sparse (2D, periodic ends),
        where the grid's compiled Krylov steps beat sparse LU factorisations (crowd-2d's front, the
        first mesh of 4096 leaves: 0.27 s against 1.7 s to round_tol); a 1D band is as fast as the grid."""
        mesh = disc.meshes[0]
        return (all(other == mesh for other in disc.meshes) and int(mesh.level.min()) == int(mesh.level.max())
                and min(n << int(mesh.level[0]) for n in mesh.root.root_shape) >= 3
                and not disc.trees[0].scheme.tridiagonal)

    def grid_round(self, problem: MFGProblem, disc: SlabMFG, policy: Any, callbacks: list[Callback],
                   newton_tol: float, options: dict[str, Any]) -> CouplingResult:
        """``run_coupling`` on the grid of ``disc``'s uniform mesh (``uniform_problem``, the grid's
        ``DiscreteMFG``: the tree scheme on a uniform mesh is the grid's, cell by cell), its callbacks
        and its result on the leaves (``OnLeaves``, ``grid_to_leaves``: a reordering)."""
        mesh = disc.meshes[0]
        coarse = uniform_problem(problem, mesh)
        cells = grid_to_leaves(coarse.grid, mesh, np.arange(coarse.grid.size, dtype=np.float64))
        order = cells.round().astype(np.int64)  # each leaf is one cell: a reordering, exact

        def to_leaves(values: np.ndarray) -> np.ndarray:
            return np.asarray(values).reshape(*np.shape(values)[: -coarse.ndim], -1)[..., order]

        grid_disc = DiscreteMFG(coarse, create_backend("numpy"), newton_tol=newton_tol)
        record = run_coupling(grid_disc, Sequential(), Sequential(), policy,
                              callbacks=[OnLeaves(callback, to_leaves) for callback in callbacks], **options)
        record.u, record.m = to_leaves(record.u), to_leaves(record.m)
        if record.best[1] is not None:
            record.best = (record.best[0], to_leaves(record.best[1]), to_leaves(record.best[2]))
        return record

    def keeps(self, meshes: list[TreeMesh], new: list[TreeMesh]) -> bool:
        """Whether the adaptation to ``new`` is skipped: the meshes are the same, or ``new`` changes
        at most ``settle_share`` of the leaves (``changed_leaves``, summed over the slabs)."""
        if new == meshes:
            return True
        changed = sum(changed_leaves(old, mesh) for old, mesh in zip(meshes, new, strict=True))
        return changed <= self.settle_share * sum(len(mesh) for mesh in new)

    def adapted(self, disc: SlabMFG, u: np.ndarray, m: np.ndarray) -> list[TreeMesh]:
        """Each slab's mesh adapted to ``u`` and ``m`` (Nt+1, W) over the slab's own time levels
        (``error_indicator``, its largest over them; one weight per field for all slabs) and marked
        by ``mark`` (``tol``, ``budget`` per mesh); the density marking without a budget coarsens
        through several levels at once (``coarsen_through``)."""
        weights = [1.0 / top if (top := float(np.abs(a).max())) > 0 else 1.0 for a in (u, m)]
        density = self.indicator == "density"
        out = []
        for s, mesh in enumerate(disc.meshes):
            size = len(mesh)
            fields = [u[disc.u_slab == s, :size], m[disc.m_slab == s, :size]]
            eta = error_indicator(mesh, *fields[density:], kind=self.indicator, weights=weights[density:])
            marks = mark(mesh, eta, tol=None if density else self.tol, above=self.tol if density else None,
                         budget=self.budget)
            adapted = mesh.adapt(marks.refine, marks.coarsen)
            out.append(coarsen_through(mesh, adapted, eta, self.tol) if density and self.budget is None
                       else adapted)
        return out
