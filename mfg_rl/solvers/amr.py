"""Adaptive mesh refinement (issue 15): coupled solves on a tree mesh, adapted between them.

The mesh is fixed over the whole horizon ``[0, T]`` during one coupled solve (``run_coupling``
on ``TreeMFG``, the scheme of ``tree_scheme.py``); between solves the indicator of ``(u, m)``
(``error_indicator``) and ``mark`` (a target error and/or a cell budget) adapt it, and the last
crowd ``m`` moves to the new mesh by ``LeafMap`` (integrals conserved to round-off) to start the
next solve. Fields on the problem's grid and on the leaves meet through ``grid_to_leaves`` and
``leaves_to_grid``, both conservative; the grid must be a uniform level of the tree
(``shape_d = root_shape_d 2^L``).

Not yet a ``method=`` of ``solve``: ``solve`` runs its coupling loop on grid arrays. To register
it, ``solve`` would call ``AMR.solve(problem, policy, tol=..., max_iter=...)`` when handed an
``AMR``, build the ``Equilibrium`` from ``AMRResult.on_grid()`` (mass and outflow from the tree's
``TreeMFG``), and ``STRATEGIES["amr"] = AMR`` would follow in ``solvers/registry.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mfg_rl.checks import check_choice, check_int, check_real
from mfg_rl.core import Grid, MFGProblem
from mfg_rl.core.tree_mesh import KERNELS, TreeMesh
from mfg_rl.core.tree_transfer import LeafMap
from mfg_rl.solvers.amr_marking import error_indicator, mark
from mfg_rl.solvers.coupling import Anderson, CouplingResult, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.trajectory import HJBResult
from mfg_rl.solvers.tree_scheme import TreeMFG

INDICATOR_KINDS = ("jump", "gradient")


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


class TreeMarching:
    """``Sequential`` on a tree: the trajectory strategy ``run_coupling`` calls with a ``TreeMFG``."""

    name = "tree-sequential"

    def hjb(self, disc: TreeMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        return disc.hjb(m, u_guess)

    def fp(self, disc: TreeMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None) -> Any:
        return disc.fp(disc.matrices(u, m) if steps is None else steps)


@dataclass
class AMRResult:
    """The last coupled solve of ``AMR.solve``: ``u``, ``m`` of shape (Nt+1, M) on ``mesh``.

    ``coupling``: its ``CouplingResult``; ``rounds``: per coupled solve ``(leaves, iterations,
    residual)``; ``transfer_mass_error``: the largest change of ``sum vol m`` (any time level) by
    a transfer between meshes; ``problem``: the game.
    """

    mesh: TreeMesh
    u: np.ndarray
    m: np.ndarray
    coupling: CouplingResult
    problem: MFGProblem
    rounds: list[tuple[int, int, float]] = field(default_factory=list)
    transfer_mass_error: float = 0.0

    def on_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, m)`` as cell averages on the problem's grid, shape ``(Nt+1, *grid.shape)``."""
        grid = self.problem.grid
        return leaves_to_grid(grid, self.mesh, self.u), leaves_to_grid(grid, self.mesh, self.m)


@dataclass
class AMR:
    """Coupled solves on a tree mesh between ``min_level`` and ``max_level``, adapted between them.

    Args:
        max_level, min_level: finest and coarsest leaf levels (``TreeMesh.from_grid``'s root cells,
            near square); the first mesh is uniform at ``min_level``.
        tol: target of the indicator (``mark``: refine leaves over ``tol / M``), or None.
        budget: most leaves after an adaptation, or None; one of ``tol``/``budget`` is needed
            unless ``min_level == max_level`` (a uniform mesh, never adapted).
        adaptations: most mesh changes; the solve stops earlier once marking leaves the mesh as is.
        indicator: ``"jump"`` or ``"gradient"`` (``error_indicator``).
        kernels: tree kernels, ``"auto"``, ``"numba"`` or ``"numpy"``.

    Costs are evaluated at leaf centres (``TreeMFG``): a cost that sums over the grid's cells
    (``lq-1d``'s mean) is right only while the mesh is the grid.

    Example:
        >>> from mfg_rl import problems
        >>> problem = problems.make("crowd-exit-1d", Nx=32, Nt=10)
        >>> result = AMR(max_level=5, min_level=3, budget=20, kernels="numpy").solve(problem, tol=1e-8)
        >>> len(result.mesh) <= 20, result.coupling.converged
        (True, True)
    """

    max_level: int
    min_level: int = 0
    tol: float | None = None
    budget: int | None = None
    adaptations: int = 4
    indicator: str = "jump"
    kernels: str = "auto"
    name = "amr"

    def __post_init__(self) -> None:
        self.max_level = check_int("max_level", self.max_level, 0)
        self.min_level = check_int("min_level", self.min_level, 0)
        if self.max_level < self.min_level:
            raise ValueError(f"max_level ({self.max_level}) must be >= min_level ({self.min_level})")
        if self.tol is not None:
            self.tol = check_real("tol", self.tol, 0.0, open_low=True)
        if self.budget is not None:
            self.budget = check_int("budget", self.budget, 1)
        if self.tol is None and self.budget is None and self.max_level > self.min_level:
            raise ValueError("AMR needs tol or budget to adapt between min_level and max_level")
        self.adaptations = check_int("adaptations", self.adaptations, 0)
        check_choice("indicator", self.indicator, INDICATOR_KINDS)
        check_choice("kernels", self.kernels, KERNELS)

    def first_mesh(self, problem: MFGProblem) -> TreeMesh:
        """The uniform ``min_level`` mesh on the problem's box; checks the grid is a level of the tree."""
        mesh = TreeMesh.from_grid(problem.grid, min_level=self.min_level, max_level=self.max_level,
                                  kernels=self.kernels)
        grid_level(problem.grid, mesh)
        return mesh

    def solve(self, problem: MFGProblem, policy: FixedPoint | FictitiousPlay | Anderson | None = None, *,
              tol: float = 1e-8, max_iter: int = 500) -> AMRResult:
        """Coupled solves (``run_coupling`` with ``policy``, default ``FixedPoint()``, to ``tol``)
        alternating with adaptations; returns the last solve (``AMRResult``). Raises like
        ``run_coupling`` when a solve does not converge."""
        policy = FixedPoint() if policy is None else policy
        mesh = self.first_mesh(problem)
        marching, m, rounds, moved = TreeMarching(), None, [], 0.0
        for k in range(self.adaptations + 1):
            tree = TreeMFG(problem, mesh, grid_to_leaves(problem.grid, mesh, problem.m0))
            record = run_coupling(tree, marching, marching, policy, tol=tol, max_iter=max_iter, m_init=m,
                                  inexact=False)
            rounds.append((len(mesh), record.iterations, float(record.residuals[-1])))
            if k == self.adaptations or self.min_level == self.max_level:
                break
            eta = error_indicator(mesh, record.u, record.m, kind=self.indicator)
            marks = mark(mesh, eta, tol=self.tol, budget=self.budget)
            new = mesh.adapt(marks.refine, marks.coarsen)
            if new == mesh:
                break
            m = LeafMap.between(mesh, new).transfer(record.m)
            moved = max(moved, float(np.abs(m @ new.volumes - record.m @ mesh.volumes).max()))
            mesh = new
        return AMRResult(mesh, record.u, record.m, record, problem, rounds, moved)
