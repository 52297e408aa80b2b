"""The upwind finite-volume scheme of ``-nu Lap u + H(x, grad u, m)`` on a ``TreeMesh``, and its time steps.

Per face ``f`` (``TreeFaces``) the two-point slope is ``p_f = (u_plus - u_minus) / distance_f``. Per
leaf ``i`` and axis ``d`` the back slope ``P-`` (forward ``P+``) is the area-weighted mean of ``p_f``
over the faces on the leaf's low (high) side (one face, or ``2^(d-1)`` at a hanging side), and

    S_i = sum_d max(P-, 0)^2 + min(P+, 0)^2,       H_i = psi(x_i, S_i, m_i),
    (-nu Lap u)_i = -nu / vol_i sum_f area_f (u_j - u_i) / distance_f,

with ghost values on the box's boundary as on the uniform grid (``NumericalHamiltonian``):
``u_ghost = u_i`` on no-flux walls, ``2 c - u_i`` on exits at distance ``h_i``. On a uniform mesh
this is ``NumericalHamiltonian`` cell by cell. The Jacobian ``A`` is an M-matrix with zero row
sums away from exits; the FP step is its exact transpose acting on cell masses ``vol m``, so
``sum vol m`` is conserved to round-off on a closed box and ``m >= 0`` on any mesh.
Arrays live on the host (numpy, scipy CSR); leaves in the mesh's Morton order. On a 1D tree
without periodic ends the Morton order is the order in ``x`` and every leaf has one neighbour per
side, so the Jacobian is tridiagonal: ``TreeMFG`` then assembles its three bands
(``TreeScheme.apply_tridiagonal``) and solves with LAPACK's ``gtsv`` (``Tridiagonal``), the same
matrix as the CSR one without building it. Any other tree sums the Jacobian's values into a CSC
pattern fixed per mesh (``TreeScheme.apply_sparse``, ``SparseLU``), factorised once per matrix and
reused by the FP step and by later Newton iterations (``tree_linear.ChordSolve``). On a mesh with
numba kernels (``mesh.kernels == "numba"``) the slopes and the values of either step (bands or
sparse) are computed by the compiled twin ``backends/tree_step_numba.py`` (the same sums in the
same order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from mfg_rl.backends import create_backend, tree_step_numba
from mfg_rl.core import MFGProblem
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.solvers.discrete import MIN_NEWTON, forcing_scale
from mfg_rl.solvers.step_newton import newton, raise_for_status, round_off_floor
from mfg_rl.solvers.trajectory import HJBResult
from mfg_rl.solvers.tree_linear import ChordSolve, CSCSlots, SparseLU, Tridiagonal, adjoint_solve


def leafwise(values: Any, u: np.ndarray) -> np.ndarray:
    """``values`` (a number or (M,)) as a contiguous float64 array shaped like ``u`` (M,)."""
    if np.ndim(values) == 0:
        return np.full(u.shape, values, dtype=np.float64)
    return np.ascontiguousarray(values, dtype=np.float64)


class TreeScheme:
    """Value and sparse Jacobian of the upwind scheme of ``problem`` on ``mesh`` (module docstring).

    ``u`` and ``m`` are arrays (M,) on the leaves; the Jacobian is a CSR matrix (M, M).

    Example:
        >>> from mfg_rl import problems
        >>> problem = problems.make("crowd-exit-1d", Nx=16, Nt=4)
        >>> mesh = TreeMesh.from_grid(problem.grid, min_level=4, max_level=6, kernels="numpy")
        >>> value, jacobian = TreeScheme(problem, mesh).apply(np.zeros(16), np.ones(16))
        >>> jacobian.shape
        (16, 16)
    """

    def __init__(self, problem: MFGProblem, mesh: TreeMesh) -> None:
        if not isinstance(mesh, TreeMesh):
            raise TypeError(f"mesh must be a TreeMesh, got {type(mesh).__name__}")
        grid = problem.grid
        periodic = tuple(pair == ("periodic", "periodic") for pair in grid.boundary)
        if tuple(map(tuple, mesh.root.bounds)) != tuple(grid.bounds) or tuple(mesh.root.periodic) != periodic:
            raise ValueError(f"mesh must cover the problem's box {grid.bounds} with periodic axes "
                             f"{periodic}, got {mesh.root.bounds} with {tuple(mesh.root.periodic)}")
        self.mesh, self.problem = mesh, problem
        self.hamiltonian = problem.hamiltonian
        self.nu = problem.nu
        self.ndim = mesh.ndim
        centres = np.asarray(mesh.centres)
        self.points = centres[:, 0] if self.ndim == 1 else tuple(centres[:, d] for d in range(self.ndim))
        self._build_slopes(grid.boundary, float(problem.exit_cost))
        self._build_diffusion(grid.boundary, float(problem.exit_cost))
        coo = self.diffusion.tocoo()
        self.tridiagonal = bool(self.ndim == 1 and np.abs(self._cols - self._rows).max(initial=0) <= 1
                                and np.abs(coo.col - coo.row).max(initial=0) <= 1)
        self.compiled = mesh.kernels == "numba"
        if self.tridiagonal:  # entry (row, col) sits in band (col - row + 1) at row
            M = len(mesh)
            self._diffusion_bands = np.bincount(coo.row + M * (coo.col - coo.row + 1), coo.data,
                                                minlength=3 * M).reshape(3, M)
            self._diffusion_tridiagonal = Tridiagonal(*self._diffusion_bands)
            # one slope entry per side: P-_i = a0 u_i + b0 u_{i-1} + c0, P+_i = a1 u_i + b1 u_{i+1} + c1
            self._sides = [np.bincount(self._slot, w, minlength=2 * M).reshape(M, 2).T.copy()
                           for w in (self._a, self._b, self._c)]
        else:
            self._pattern = CSCSlots(np.concatenate([coo.row, self._rows]),
                                     np.concatenate([coo.col, self._cols]), len(mesh), self.compiled)
            self._diffusion_data = self._pattern.gather(np.concatenate([coo.data, np.zeros(len(self._rows))]))
            self._drift_slots = self._pattern.slots[len(coo.data):]

    # -- the fixed parts ------------------------------------------------------------------
    def _build_slopes(self, boundary: tuple, exit_cost: float) -> None:
        """Entries ``P[slot] += a u[leaf] + b u[nb] + c`` of the side slopes (``slot = (leaf d + axis) 2
        + side``; an exit's ghost has ``nb = leaf``, ``b = 0``), weighted by face area per slot."""
        mesh, faces, walls = self.mesh, self.mesh.faces, self.mesh.boundary_faces
        M, d = len(mesh), self.ndim
        sizes = np.asarray(mesh.sizes)
        inv = 1.0 / faces.distance
        # the plus leaf sees the face on its low side (back slope), the minus leaf on its high side
        leaf = np.concatenate([faces.plus, faces.minus])
        nb = np.concatenate([faces.minus, faces.plus])
        axis = np.concatenate([faces.axis, faces.axis])
        side = np.repeat([0, 1], len(faces))
        area = np.concatenate([faces.area, faces.area])
        a = np.concatenate([inv, -inv])
        c = np.zeros(2 * len(faces))
        exits = np.array([boundary[ax][s] == "exit" for ax, s in zip(walls.axis, walls.side, strict=True)],
                         dtype=bool)
        e_leaf, e_axis, e_side = walls.leaf[exits], walls.axis[exits], walls.side[exits]
        h = sizes[e_leaf, e_axis]
        sign = np.where(e_side == 0, 1.0, -1.0)  # back: (u - (2c - u)) / h; forward: ((2c - u) - u) / h
        leaf = np.concatenate([leaf, e_leaf])
        nb = np.concatenate([nb, e_leaf])
        axis = np.concatenate([axis, e_axis])
        side = np.concatenate([side, e_side])
        area = np.concatenate([area, walls.area[exits]])
        a = np.concatenate([a, 2.0 * sign / h])
        b = np.concatenate([-a[: 2 * len(faces)], np.zeros(len(h))])
        c = np.concatenate([c, -2.0 * sign * exit_cost / h])
        slot = (leaf * d + axis) * 2 + side
        weight = area / np.bincount(slot, area, minlength=2 * d * M)[slot]
        self._slot, self._leaf, self._nb = slot, leaf, nb
        self._a, self._b, self._c = weight * a, weight * b, weight * c
        self._rows = np.concatenate([leaf, leaf])
        self._cols = np.concatenate([leaf, nb])

    def _build_diffusion(self, boundary: tuple, exit_cost: float) -> None:
        """``-nu Lap`` as ``L u + l``: ``L`` (M, M) CSR, ``l`` (M,) from exit ghosts."""
        mesh, faces, walls = self.mesh, self.mesh.faces, self.mesh.boundary_faces
        M = len(mesh)
        vol = np.asarray(mesh.volumes)
        t = self.nu * faces.area / faces.distance
        i, j = faces.minus, faces.plus
        rows = np.concatenate([i, j, i, j])
        cols = np.concatenate([i, j, j, i])
        vals = np.concatenate([t / vol[i], t / vol[j], -t / vol[i], -t / vol[j]])
        exits = np.array([boundary[ax][s] == "exit" for ax, s in zip(walls.axis, walls.side, strict=True)],
                         dtype=bool)
        e_leaf = walls.leaf[exits]
        h = np.asarray(mesh.sizes)[e_leaf, walls.axis[exits]]
        te = 2.0 * self.nu * walls.area[exits] / (h * vol[e_leaf])  # flux area (2c - 2u) / h per volume
        rows = np.concatenate([rows, e_leaf])
        cols = np.concatenate([cols, e_leaf])
        vals = np.concatenate([vals, te])
        self.diffusion = sp.csr_matrix((vals, (rows, cols)), shape=(M, M))
        self.diffusion_constant = -exit_cost * np.bincount(e_leaf, te, minlength=M)

    # -- slopes, value, Jacobian ----------------------------------------------------------
    def slopes(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(active, S)``: the clipped side slopes ``max(P-, 0)``, ``min(P+, 0)`` per slot (2 d M,)
        and ``S`` (M,)."""
        M, d = len(self.mesh), self.ndim
        if self.compiled:
            return tree_step_numba.slopes(self._slot, self._leaf, self._nb, self._a, self._b, self._c,
                                          np.ascontiguousarray(u, dtype=np.float64), M, d)
        p = self._side_slopes(u)
        np.maximum(p[..., 0], 0.0, out=p[..., 0])
        np.minimum(p[..., 1], 0.0, out=p[..., 1])
        active = p.reshape(-1)
        return active, (active * active).reshape(M, 2 * d).sum(axis=1)

    def _side_slopes(self, u: np.ndarray) -> np.ndarray:
        """The side slopes ``(P-, P+)`` per leaf and axis, unclipped, shape (M, d, 2)."""
        return np.bincount(self._slot, self._a * u[self._leaf] + self._b * u[self._nb] + self._c,
                           minlength=2 * self.ndim * len(self.mesh)).reshape(len(self.mesh), self.ndim, 2)

    def gradient(self, u: np.ndarray) -> np.ndarray:
        """``grad u`` (M, d) at the leaf centres: per axis the mean of the back and forward side
        slopes ``(P- + P+) / 2``, unclipped (a central difference on a uniform mesh)."""
        return self._side_slopes(u).mean(axis=2)

    def bind(self, m: np.ndarray) -> Callable[[Any], tuple[Any, Any]]:
        """``s -> (psi, g)`` on the leaves with the crowd ``m`` fixed."""
        return self.hamiltonian.bind(self.points, m)

    def _value(self, u: np.ndarray, bound: Callable[[Any], tuple[Any, Any]]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(-nu Lap_h u + H_h(u, m) (M,), active slopes (2 d M,), g (M,))``."""
        active, s = self.slopes(u)
        psi, g = bound(s)
        return self.diffusion @ u + self.diffusion_constant + psi, active, g + 0.0 * u

    def apply(self, u: np.ndarray, m: np.ndarray, bound: Callable[[Any], tuple[Any, Any]] | None = None,
              ) -> tuple[np.ndarray, sp.csr_matrix]:
        """``-nu Lap_h u + H_h(u, m)`` (M,) and its Jacobian ``A = d/du`` (M, M) without a time term."""
        value, active, g = self._value(u, self.bind(m) if bound is None else bound)
        M = len(self.mesh)
        drift = sp.csr_matrix((self.drift_values(active, g), (self._rows, self._cols)), shape=(M, M))
        return value, self.diffusion + drift

    def drift_values(self, active: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``d psi(S) / du = g dS/2 / du`` as entries at ``(_rows, _cols)`` (duplicates summed): row ``i``
        sums ``g_i active_slot dP_slot/du`` over its slots."""
        factor = g[self._leaf] * active[self._slot]
        return np.concatenate([factor * self._a, factor * self._b])

    def apply_tridiagonal(self, u: np.ndarray, m: np.ndarray, bound: Callable[[Any], tuple[Any, Any]],
                          shift: float) -> tuple[np.ndarray, Tridiagonal]:
        """``apply`` on a tridiagonal tree (``self.tridiagonal``): the value (M,) and the bands of
        ``shift I + A`` (``Tridiagonal``), the same numbers as the CSR Jacobian without building it:
        each leaf has one slope entry per side, so slopes and bands are shifted products, no
        scatter (``slopes`` and ``drift_values`` with their neighbours in the bands); with numba kernels
        the compiled twin (``tree_step_numba.side_slopes``, ``bands``)."""
        if self.compiled:
            u = np.ascontiguousarray(u, dtype=np.float64)
            back, forward, s = tree_step_numba.side_slopes(self._sides, u)
            psi, g = bound(s)
            value, *bands = tree_step_numba.bands(self._diffusion_bands, self.diffusion_constant,
                                                  leafwise(psi, u), leafwise(g, u), u, back, forward,
                                                  self._sides, float(shift))
            return value, Tridiagonal(*bands)
        (a0, a1), (b0, b1), (c0, c1) = self._sides
        back = a0 * u + c0
        back[1:] += b0[1:] * u[:-1]
        forward = a1 * u + c1
        forward[:-1] += b1[:-1] * u[1:]
        np.maximum(back, 0.0, out=back)
        np.minimum(forward, 0.0, out=forward)
        psi, g = bound(back * back + forward * forward)
        value = self._diffusion_tridiagonal @ u + self.diffusion_constant + psi
        g_back, g_forward = (g + 0.0 * u) * back, (g + 0.0 * u) * forward
        lower, diag, upper = self._diffusion_bands
        return value, Tridiagonal(lower + g_back * b0, diag + shift + g_back * a0 + g_forward * a1,
                                  upper + g_forward * b1)

    def apply_sparse(self, u: np.ndarray, m: np.ndarray, bound: Callable[[Any], tuple[Any, Any]],
                     shift: float) -> tuple[np.ndarray, SparseLU]:
        """``apply`` on any other tree: the value (M,) and ``shift I + A`` on the mesh's fixed CSC
        pattern (``SparseLU``), the same numbers as the CSR Jacobian."""
        if self.compiled:
            u = np.ascontiguousarray(u, dtype=np.float64)
            active, s = self.slopes(u)
            psi, g = bound(s)
            diffusion, pattern = self.diffusion, self._pattern
            value, data = tree_step_numba.assemble(
                diffusion.indptr, diffusion.indices, diffusion.data, self.diffusion_constant,
                leafwise(psi, u), leafwise(g, u), u, active, self._slot, self._leaf, self._a, self._b,
                self._drift_slots, self._diffusion_data, pattern.diagonal, float(shift))
            return value, SparseLU(pattern, data)
        value, active, g = self._value(u, bound)
        data = self._diffusion_data + np.bincount(self._drift_slots, self.drift_values(active, g),
                                                  minlength=self._pattern.nnz)
        data[self._pattern.diagonal] += shift
        return value, SparseLU(self._pattern, data)

    def step_jacobian(self, u: np.ndarray, m: np.ndarray, bound: Callable[[Any], tuple[Any, Any]],
                      shift: float) -> tuple[np.ndarray, Tridiagonal | SparseLU]:
        """``apply_tridiagonal`` on a tridiagonal tree, else ``apply_sparse``."""
        return (self.apply_tridiagonal if self.tridiagonal else self.apply_sparse)(u, m, bound, shift)

    def control(self, u: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, ...]:
        """The scheme's optimal control ``alpha_d = -g(S) (max(P-, 0) + min(P+, 0))``, one (M,) array
        per axis."""
        active, s = self.slopes(u)
        g = self.hamiltonian.speed(self.points, s, m) + 0.0 * u
        per_axis = active.reshape(len(self.mesh), self.ndim, 2).sum(axis=2)
        return tuple(-g * per_axis[:, d] for d in range(self.ndim))


class TreeMFG:
    """The implicit time steps of ``problem`` on ``mesh``: ``DiscreteMFG``'s pairing (Achdou &
    Capuzzo-Dolcetta 2010) with ``TreeScheme``; fields have shape ``(Nt+1, M)``.

        (u^n - u^{n+1})/dt + A(u^n) = f(x, m^{n+1})          (HJB, Newton)
        J_n^T (V m^{n+1}) = V m^n / dt                        (FP)

    with ``V = diag(volumes)`` and ``J_n = I/dt + A'(u^n)`` the final Newton matrix (``A`` the
    space part of ``TreeScheme.apply``, with the crowd ``m^{n+1}``). ``m0`` (M,):
    the initial density on the leaves. Costs are evaluated at the leaf centres, so they must be
    local in ``x`` (a cost that sums over a uniform grid's cells is only right on a uniform mesh).
    ``xp``, ``backend``, ``m0``, ``Nt``, ``fp_residual`` are what ``run_coupling`` reads of a
    discretisation, so the coupling loop runs on the tree unchanged (``mfg_rl.solvers.amr``).
    """

    def __init__(self, problem: MFGProblem, mesh: TreeMesh, m0: np.ndarray, *, newton_tol: float = 1e-12,
                 max_newton: int | None = None) -> None:
        self.problem, self.mesh = problem, mesh
        self.scheme = TreeScheme(problem, mesh)
        self.xp, self.backend = np, create_backend("numpy")
        self.dt, self.Nt = problem.time.dt, problem.time.Nt
        self.volumes = np.asarray(mesh.volumes)
        self.m0 = np.asarray(m0, dtype=np.float64)
        if self.m0.shape != (len(mesh),):
            raise ValueError(f"m0 must have shape ({len(mesh)},) (one value per leaf), got {self.m0.shape}")
        self.newton_tol = newton_tol
        finest = np.asarray(mesh.root.finest_shape)
        self.max_newton = MIN_NEWTON + int(finest.sum()) if max_newton is None else max_newton
        self.factors: dict[int, Any] = {}  # per step n, the matrix last factorised for it (tree_linear)
        self.forcing_scale = forcing_scale(float(np.asarray(mesh.sizes).min()), mesh.ndim, self.dt)

    def _cost(self, cost: Callable[[Any, Any], Any], m: np.ndarray) -> np.ndarray:
        return np.asarray(cost(self.scheme.points, m), dtype=np.float64) + 0.0 * m

    def running_cost(self, m: np.ndarray) -> np.ndarray:
        """``f(x, m^n)`` per level, shape ``m.shape``."""
        return np.stack([self.level_cost(level) for level in m])

    def level_cost(self, m_n: np.ndarray) -> np.ndarray:
        """``f(x, m^n)`` at one level (M,)."""
        return self._cost(self.problem.running_cost, m_n)

    def terminal_cost(self, m_T: np.ndarray) -> np.ndarray:
        return self._cost(self.problem.terminal_cost, m_T)

    def hjb_step(self, u_next: np.ndarray, m_next: np.ndarray, f: np.ndarray, n: int,
                 guess: np.ndarray | None = None, forcing: float | None = None,
                 ) -> tuple[np.ndarray, Any, int, float]:
        """``(u^n, J_n, Newton iterations, dt max|R|)`` of the HJB step from ``u^{n+1}`` with crowd
        ``m^{n+1}``; Newton stops at ``dt max|R| <= max(newton_tol (1 + max|u^{n+1}| + dt max|f|),
        s forcing)`` (``DiscreteMFG.step_target``, ``s = forcing_scale``; no ``forcing``: the first
        term alone). The linear solves reuse factors (``ChordSolve``), first the last ones made for
        step ``n`` (``factors[n]``, of an earlier sweep)."""
        dt = self.dt
        bound = self.scheme.bind(m_next)

        def residual(u: np.ndarray) -> tuple[np.ndarray, Any, np.ndarray]:
            value, jac = self.scheme.step_jacobian(u, m_next, bound, 1.0 / dt)
            r = (u - u_next) / dt + value - f
            return r, jac, np.max(np.abs(r)) * dt

        scale = 1.0 + np.max(np.abs(u_next)) + dt * np.max(np.abs(f))
        target = self.newton_tol * scale
        if forcing is not None:
            target = max(target, forcing * self.forcing_scale)
        chord = ChordSolve(self.factors.get(n))
        out = newton(np, residual, chord, u_next if guess is None else guess,
                     target=target, floor=round_off_floor(np, u_next.dtype, scale), max_iter=self.max_newton)
        raise_for_status(int(out.status), float(out.error), f"at time index n={n}", self.max_newton,
                         f"{target:.1e}")
        if chord.factor is not None:
            self.factors[n] = chord.factor
        return out.u, out.jacobian, int(out.iterations), float(out.error)

    def fp_step(self, matrix: Tridiagonal | SparseLU, m_prev: np.ndarray, n: int | None = None,
                guess: np.ndarray | None = None) -> np.ndarray:
        """``m^{n+1}`` from ``J_n^T (V m^{n+1}) = V m^n / dt`` (``matrix = J_n``), solved to round-off
        with step ``n``'s last factors (``adjoint_solve``, from ``guess`` (M,) of ``m^{n+1}`` if given;
        ``n=None``: with ``J_n``'s own)."""
        mass, used = adjoint_solve(matrix, self.volumes * m_prev / self.dt, self.factors.get(n),
                                   None if guess is None else self.volumes * guess)
        if n is not None:
            self.factors[n] = used
        return mass / self.volumes

    def hjb(self, m: np.ndarray, u_guess: np.ndarray | None = None, forcing: float | None = None,
            ) -> HJBResult:
        """March HJB backward from ``u^Nt = g(m^Nt)`` with the crowd ``m`` (Nt+1, M): ``u`` (Nt+1, M),
        Newton statistics and ``steps``, the list of Newton matrices ``[J_0 .. J_{Nt-1}]``
        (``forcing``: ``hjb_step``'s)."""
        f = self.running_cost(m[1:])
        levels, matrices, iterations, worst = [self.terminal_cost(m[-1])], [], 0, 0.0
        for n in range(self.Nt - 1, -1, -1):
            u, jac, k, error = self.hjb_step(levels[-1], m[n + 1], f[n], n,
                                             None if u_guess is None else u_guess[n], forcing)
            levels.append(u)
            matrices.append(jac)
            iterations, worst = iterations + k, max(worst, error)
        return HJBResult(np.stack(levels[::-1]), iterations, worst, steps=matrices[::-1])

    def matrices(self, u: np.ndarray, m: np.ndarray) -> list[Any]:
        """The Newton matrices ``J_n = I/dt + A(u^n)`` with the crowd ``m^{n+1}``, n = 0..Nt-1
        (``Tridiagonal`` on a tridiagonal tree, ``SparseLU`` otherwise)."""
        return [self.matrix(u[n], m[n + 1]) for n in range(self.Nt)]

    def matrix(self, u_n: np.ndarray, m_next: np.ndarray) -> Any:
        """One Newton matrix ``J_n = I/dt + A(u^n)`` with the crowd ``m^{n+1}`` (arrays (M,))."""
        return self.scheme.step_jacobian(u_n, m_next, self.scheme.bind(m_next), 1.0 / self.dt)[1]

    def fp(self, matrices: list, guess: np.ndarray | None = None) -> np.ndarray:
        """March FP forward from ``m0`` with the matrices ``J_n`` (``hjb(...).steps`` or ``matrices``):
        ``m`` (Nt+1, M); ``guess`` (Nt+1, M) starts the steps' solves (``fp_step``)."""
        levels = [self.m0]
        for n, matrix in enumerate(matrices):
            levels.append(self.fp_step(matrix, levels[-1], n, None if guess is None else guess[n + 1]))
        return np.stack(levels)

    def fp_residual(self, u: np.ndarray, m: np.ndarray, steps: list | None = None) -> float:
        """``max_n sum_i |dt J_n^T (V m^{n+1}) - V m^n|`` and ``sum_i vol_i |m^0 - m0|``: the mass by
        which ``m`` misses the FP equations of ``u`` (``DiscreteMFG.fp_residual`` on a uniform mesh)."""
        matrices = self.matrices(u, m) if steps is None else steps
        mass = m * self.volumes
        defects = [np.abs(self.dt * matrices[n].rmatvec(mass[n + 1]) - mass[n]).sum() for n in range(self.Nt)]
        return max(max(defects), float(np.abs(mass[0] - self.m0 * self.volumes).sum()))

    def mass(self, m: np.ndarray) -> np.ndarray:
        """``sum_i vol_i m_i`` per level, shape ``m.shape[:-1]``."""
        return m @ self.volumes

    def outflow(self, u: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Mass leaving through exits during each step, shape ``(Nt,)``: summing the FP step gives
        ``mass^n - mass^{n+1} = dt (A_n 1)^T V m^{n+1}``, and ``A_n 1`` vanishes away from exits."""
        ones = np.ones(u.shape[-1])
        rows = np.stack([self.scheme.apply(u[n], m[n + 1])[1] @ ones for n in range(self.Nt)])
        return self.dt * (rows * m[1:]) @ self.volumes
