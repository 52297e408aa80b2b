"""One tree mesh per time slab: the implicit steps of ``TreeMFG`` with the mesh changing in time.

The horizon's steps ``n = 0 .. Nt-1`` are split into ``S`` slabs at ``edges`` (``0 = e_0 < .. <
e_S = Nt``); step ``n`` runs on the mesh of its slab ``s(n)``. What a step produces lives on its
mesh: ``u^n`` (HJB, backward) on ``s(n)`` (``u^Nt`` on ``s(Nt-1)``), ``m^{n+1}`` (FP, forward) on
``s(n)`` (``m^0`` on ``s(0)``). Where a step needs a level computed on the next or previous slab's
mesh, it is moved by ``LeafMap`` (``core/tree_transfer.py``):

    HJB step n-1 from u^n:     P u^n     (mesh s(n) -> s(n-1): copy into children, average into parents)
    FP step n from m^n:        Q m^n     (mesh s(n-1) -> s(n)),   Q = V_s^-1 P^T V_{s-1}

Both are ``LeafMap.transfer`` (cell averages), and the two are adjoint: with ``V`` the leaf
volumes, ``<Q m, u>_V = <m, P u>_V``. Within a slab the FP step is the transpose of the HJB
Newton matrix (``TreeMFG``), so the discrete duality of the uniform scheme holds across the whole
horizon: mass is exact to round-off and ``m >= 0`` through every slab change.

Fields are arrays ``(Nt+1, W)``, ``W`` the most leaves of any slab's mesh: level ``k`` fills the
first ``M`` entries (its mesh's leaves, Morton order), zeros after, so ``run_coupling`` (Anderson's
flat vectors) runs unchanged. With one slab it is ``TreeMFG`` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import create_backend
from mfg_rl.core import MFGProblem
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.core.tree_transfer import LeafMap
from mfg_rl.solvers.trajectory import HJBResult
from mfg_rl.solvers.tree_scheme import TreeMFG


def slab_edges(nt: int, slabs: int) -> np.ndarray:
    """``slabs + 1`` step indices ``0 = e_0 < .. < e_S = Nt``, slabs of near-equal length; ValueError
    unless ``1 <= slabs <= Nt``."""
    if isinstance(slabs, bool) or not isinstance(slabs, (int, np.integer)) or not 1 <= slabs <= nt:
        raise ValueError(f"slabs must be an integer in [1, Nt={nt}], got {slabs!r}")
    return np.round(np.linspace(0, nt, slabs + 1)).astype(np.int64)


class SlabMFG:
    """The implicit steps of ``problem`` with ``meshes[s]`` on the steps ``edges[s] .. edges[s+1]-1``
    (module docstring); what ``run_coupling`` and ``TreeMarching`` read of a discretisation.

    Args:
        problem: the game.
        meshes: one ``TreeMesh`` per slab, all of one root.
        edges: ``(S+1,)`` step indices (``slab_edges``).
        m0: the initial density on ``meshes[0]``, shape ``(M_0,)``.
        newton_tol: ``TreeMFG``'s Newton tolerance.
        previous: the ``SlabMFG`` of an earlier solve of ``problem`` on the same ``edges``: a slab
            whose mesh it had keeps its ``TreeMFG`` (the scheme, and the factors of its last sweep,
            which start the chord and adjoint solves of the first sweep here, ``tree_linear``).
    """

    def __init__(self, problem: MFGProblem, meshes: list[TreeMesh], edges: np.ndarray, m0: np.ndarray, *,
                 newton_tol: float = 1e-12, previous: SlabMFG | None = None) -> None:
        self.problem, self.meshes, self.edges = problem, list(meshes), np.asarray(edges, dtype=np.int64)
        self.Nt, self.dt = problem.time.Nt, problem.time.dt
        if len(self.meshes) != len(self.edges) - 1 or self.edges[0] != 0 or self.edges[-1] != self.Nt \
                or (np.diff(self.edges) <= 0).any():
            raise ValueError(f"edges must rise from 0 to Nt={self.Nt} with one slab per mesh "
                             f"({len(self.meshes)}), got {self.edges.tolist()}")
        self.xp, self.backend, self.newton_tol = np, create_backend("numpy"), newton_tol
        self.step_slab = np.searchsorted(self.edges, np.arange(self.Nt), side="right") - 1
        self.u_slab = self.step_slab[np.minimum(np.arange(self.Nt + 1), self.Nt - 1)]
        self.m_slab = self.step_slab[np.maximum(np.arange(self.Nt + 1) - 1, 0)]
        self.sizes = [len(mesh) for mesh in self.meshes]
        self.width = max(self.sizes)
        kept = previous is not None and previous.problem is problem and previous.newton_tol == newton_tol \
            and np.array_equal(previous.edges, self.edges)
        self.trees: list[TreeMFG] = []
        for s, mesh in enumerate(self.meshes):  # slabs that keep the mesh share its scheme
            if s > 0 and mesh == self.meshes[s - 1]:
                self.trees.append(self.trees[-1])
            elif kept and mesh == previous.meshes[s] and (s > 0 or np.array_equal(previous.trees[0].m0, m0)):
                self.trees.append(previous.trees[s])
            else:
                self.trees.append(TreeMFG(problem, mesh, m0 if s == 0 else np.zeros(len(mesh)),
                                          newton_tol=newton_tol))
        # down[s]: u from slab s+1's mesh to slab s's; up[s]: m from slab s-1's mesh to slab s's
        last = len(meshes) - 1
        self.down = [None if s == last or meshes[s + 1] == mesh else LeafMap.between(meshes[s + 1], mesh)
                     for s, mesh in enumerate(self.meshes)]
        self.up = [None if s == 0 or meshes[s - 1] == mesh else LeafMap.between(meshes[s - 1], mesh)
                   for s, mesh in enumerate(self.meshes)]
        self.m0 = self.pad(np.asarray(m0, dtype=np.float64))

    def pad(self, values: np.ndarray) -> np.ndarray:
        """Leaf values ``(M,)`` -> ``(W,)``, zeros after the leaves."""
        out = np.zeros(self.width)
        out[: len(values)] = values
        return out

    def u_level(self, u: np.ndarray, k: int) -> np.ndarray:
        """``u^k`` on its own mesh (``meshes[u_slab[k]]``), shape ``(M,)``."""
        return u[k, : self.sizes[self.u_slab[k]]]

    def m_level(self, m: np.ndarray, k: int) -> np.ndarray:
        """``m^k`` on its own mesh (``meshes[m_slab[k]]``), shape ``(M,)``."""
        return m[k, : self.sizes[self.m_slab[k]]]

    def _m_into(self, m: np.ndarray, n: int) -> np.ndarray:
        """``m^n`` on the mesh of step ``n`` (``Q m^n`` at a slab's first step)."""
        s, level = self.step_slab[n], self.m_level(m, n)
        return level if self.m_slab[n] == s or self.up[s] is None else self.up[s].transfer(level)

    def hjb(self, m: np.ndarray, u_guess: np.ndarray | None = None, forcing: float | None = None,
            ) -> HJBResult:
        """March HJB backward from ``u^Nt = g(m^Nt)`` with the crowd ``m`` (Nt+1, W): ``u`` (Nt+1, W),
        Newton statistics and ``steps`` ``[J_0 .. J_{Nt-1}]``, each on its slab's mesh (``forcing``:
        ``TreeMFG.hjb_step``'s)."""
        u = np.zeros((self.Nt + 1, self.width))
        last = self.trees[-1]
        u[-1, : self.sizes[-1]] = last.terminal_cost(self.m_level(m, self.Nt))
        steps, iterations, worst = [None] * self.Nt, 0, 0.0
        for n in range(self.Nt - 1, -1, -1):
            s = self.step_slab[n]
            tree, size, u_next = self.trees[s], self.sizes[s], self.u_level(u, n + 1)
            if self.u_slab[n + 1] != s and self.down[s] is not None:
                u_next = self.down[s].transfer(u_next)
            m_next = m[n + 1, :size]
            f = tree.level_cost(m_next)
            guess = None if u_guess is None else u_guess[n, :size]
            u[n, :size], steps[n], k, error = tree.hjb_step(u_next, m_next, f, n, guess, forcing)
            iterations, worst = iterations + k, max(worst, error)
        return HJBResult(u, iterations, worst, steps=steps)

    def matrices(self, u: np.ndarray, m: np.ndarray) -> list[Any]:
        """The Newton matrices ``J_n`` of ``u^n`` with the crowd ``m^{n+1}``, each on its slab's mesh."""
        return [self.trees[s].matrix(self.u_level(u, n), m[n + 1, : self.sizes[s]])
                for n, s in enumerate(self.step_slab)]

    def fp(self, matrices: list, guess: np.ndarray | None = None) -> np.ndarray:
        """March FP forward from ``m0``: ``V m^{n+1} = dt^-1 J_n^-T V (Q) m^n``; ``m`` (Nt+1, W);
        ``guess`` (Nt+1, W) starts the steps' solves (``TreeMFG.fp_step``)."""
        m = np.zeros((self.Nt + 1, self.width))
        m[0] = self.m0
        for n, s in enumerate(self.step_slab):
            size = self.sizes[s]
            m[n + 1, :size] = self.trees[s].fp_step(matrices[n], self._m_into(m, n), n,
                                                    None if guess is None else guess[n + 1, :size])
        return m

    def fp_residual(self, u: np.ndarray, m: np.ndarray, steps: list | None = None) -> float:
        """``max_n sum |dt J_n^T (V m^{n+1}) - V (Q) m^n|`` and ``sum |V (m^0 - m0)|`` (``TreeMFG``'s)."""
        matrices = self.matrices(u, m) if steps is None else steps
        defects = []
        for n, s in enumerate(self.step_slab):
            volumes = self.trees[s].volumes
            mass_next = volumes * m[n + 1, : self.sizes[s]]
            defect = self.dt * matrices[n].rmatvec(mass_next) - volumes * self._m_into(m, n)
            defects.append(np.abs(defect).sum())
        start = np.abs(m[0] - self.m0)[: self.sizes[0]] @ self.trees[0].volumes
        return max(max(defects), float(start))

    def mass(self, m: np.ndarray) -> np.ndarray:
        """``sum_i vol_i m_i^k`` per level, shape ``(Nt+1,)``."""
        return np.array([self.m_level(m, k) @ self.meshes[s].volumes for k, s in enumerate(self.m_slab)])

    def outflow(self, u: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Mass leaving through exits during each step, shape ``(Nt,)``: ``dt (A_n 1)^T V m^{n+1}``
        (``TreeMFG.outflow`` step by step)."""
        out = np.zeros(self.Nt)
        for n, s in enumerate(self.step_slab):
            tree, m_next = self.trees[s], m[n + 1, : self.sizes[s]]
            rows = tree.scheme.apply(self.u_level(u, n), m_next)[1] @ np.ones(self.sizes[s])
            out[n] = self.dt * (rows * m_next) @ tree.volumes
        return out

    def moved(self, m: np.ndarray, meshes: list[TreeMesh], slabs: np.ndarray | None = None,
              interpolate: bool = False) -> tuple[np.ndarray, float]:
        """``m`` (Nt+1, W) moved level by level onto the same edges with new ``meshes`` (``LeafMap``,
        conservative): ``(m on the new meshes, padded, largest change of a level's mass)``. ``slabs``:
        the slab of each level, default ``m_slab`` (``u_slab`` moves ``u``). ``interpolate``: point
        values (``u``), carried to refined leaves with the old leaf's gradient (``LeafMap.interpolate``,
        ``TreeScheme.gradient``), a start for Newton without the jumps of a copy (crowd-2d's front at
        finest 7: the first sweep on new meshes takes 79 Newton iterations instead of 133)."""
        out, worst = np.zeros((self.Nt + 1, max(len(mesh) for mesh in meshes))), 0.0
        maps: dict[int, LeafMap | None] = {}  # per slab, built once for its levels (None: the same mesh)
        for k, s in enumerate(self.m_slab if slabs is None else slabs):
            old_mesh, new_mesh = self.meshes[s], meshes[s]
            if s not in maps:
                maps[s] = None if old_mesh == new_mesh else LeafMap.between(old_mesh, new_mesh)
            level, leaf_map = m[k, : len(old_mesh)], maps[s]
            if leaf_map is None:
                moved = level
            elif interpolate:
                moved = leaf_map.interpolate(level, self.trees[s].scheme.gradient(level))
            else:
                moved = leaf_map.transfer(level)
            out[k, : len(moved)] = moved
            worst = max(worst, abs(moved @ new_mesh.volumes - level @ old_mesh.volumes))
        return out, worst
