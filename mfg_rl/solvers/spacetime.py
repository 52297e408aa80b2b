"""All-at-once space-time solves: the whole horizon of HJB or FP as one sparse system.

With ``U = (u^0, ..., u^{Nt-1})`` and ``M = (m^1, ..., m^Nt)`` stacked time-major
(``Nt * N`` unknowns, ``N`` nodes), the discrete equations of ``DiscreteMFG`` read

    HJB (Newton step):  (I/dt + A_n) du^n - du^{n+1}/dt = -R_n      (upper block-bidiagonal)
    FP:                 J_n^T m^{n+1} - m^n/dt = 0,  m^0 = m0       (lower block-bidiagonal)

``GlobalSpacetime`` assembles these ``(Nt N) x (Nt N)`` matrices in COO form (vectorised,
no Python loop over time or nodes) and solves them at once: ``linear="direct"`` by the
backend's sparse solve (SuperLU on the host), ``linear="krylov"`` by flexible GMRES
preconditioned with one block sweep in time whose spatial blocks are solved inexactly
(1D: exact tridiagonal; 2D: a few zebra-preconditioned BiCGStab iterations). Since the
preconditioner only errs in space, its iteration count does not grow with ``Nt``.
The fixed point of either is the Sequential solution (same discrete equations).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from mfg_rl.backends import SparsePattern
from mfg_rl.backends.krylov import fgmres
from mfg_rl.checks import check_choice, check_int, check_real
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix, StencilSolver, stencil_coo, stencil_values
from mfg_rl.solvers.step_newton import newton, raise_for_status, round_off_floor
from mfg_rl.solvers.trajectory import HJBResult

LINEAR = ("direct", "krylov")


def wall_free(shape: tuple[int, ...], periodic: list[bool], blocks: int) -> np.ndarray:
    """Mask of ``stencil_coo`` entries that do not wrap across a non-periodic wall.

    The wrapped slots hold zeros; leaving them out keeps them out of a direct solver's fill.
    """
    index = np.indices(shape)
    masks = [np.ones(shape, dtype=bool)]
    for d, wraps in enumerate(periodic):
        for edge in (0, shape[d] - 1):
            masks.append(np.ones(shape, dtype=bool) if wraps else index[d] != edge)
    return np.broadcast_to(np.stack(masks).reshape(len(masks), 1, -1),
                           (len(masks), blocks, math.prod(shape))).ravel()


def shifted_identity(size: int, blocks: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """COO rows/cols coupling block ``n`` to block ``n + offset`` node by node."""
    first = range(max(0, -offset), blocks - max(0, offset))
    rows = np.arange(first.start * size, first.stop * size, dtype=np.int64)
    return rows, rows + offset * size


class GlobalSpacetime:
    """Trajectory solver that solves each whole horizon as one sparse system.

    Args:
        linear: ``"direct"`` (backend sparse solve) or ``"krylov"`` (preconditioned FGMRES).
        rtol: relative tolerance of the Krylov solves (``||b - A x|| <= rtol ||b||``). The
            default 1e-12 is what round-off leaves attainable over long horizons: at 1e-13
            FGMRES stalled at 2.4e-13 on crowd-exit-1d 501x1000.
        restart, max_iter: FGMRES restart length and total iteration budget.

    Attributes:
        krylov_iterations: FGMRES iterations of every Krylov solve, in order.

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("lq-1d", Nx=41, Nt=8), method="global", progress=False)
        >>> eq.diagnostics.converged
        True
    """

    name = "global"

    def __init__(self, linear: str = "direct", *, rtol: float = 1e-12, restart: int = 30,
                 max_iter: int = 300) -> None:
        self.linear = check_choice("linear", linear, LINEAR)
        self.rtol = check_real("rtol", rtol, 0.0, 1.0, open_low=True, open_high=True)
        self.restart = check_int("restart", restart, 1)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.krylov_iterations: list[int] = []
        self._patterns: dict[tuple, tuple[SparsePattern, np.ndarray]] = {}
        self._inner: StencilSolver | None = None

    # -- assembly --------------------------------------------------------------------
    def _pattern(self, disc: DiscreteMFG, offset: int) -> tuple[SparsePattern, np.ndarray]:
        """Block stencils on the diagonal plus identities ``offset`` blocks away, and the
        indices of the ``stencil_values`` entries it keeps (those not wrapping across a wall)."""
        key = (disc.problem.grid.shape, disc.Nt, offset)
        if key not in self._patterns:
            shape, size = disc.problem.grid.shape, disc.problem.grid.size
            rows, cols = stencil_coo(shape, disc.Nt)
            keep = wall_free(shape, [low == "periodic" for low, _ in disc.problem.grid.boundary], disc.Nt)
            r_id, c_id = shifted_identity(size, disc.Nt, offset)
            pattern = SparsePattern(
                np.concatenate([rows[keep], r_id]), np.concatenate([cols[keep], c_id]), disc.Nt * size
            )
            self._patterns[key] = (pattern, np.flatnonzero(keep))
        return self._patterns[key]

    def _solve(self, disc: DiscreteMFG, blocks: StencilMatrix, offset: int, rhs: Any,
               rtol: float | None = None) -> Any:
        """``x`` with ``blocks_n x_n - x_{n+offset} / dt = rhs_n``; ``rhs``, ``x`` (Nt, *space).
        ``rtol`` (Krylov only; default ``self.rtol``) is never below ``self.rtol``."""
        xp = disc.xp
        if self.linear == "krylov":
            return self._krylov(disc, blocks, offset, rhs, max(self.rtol, rtol or 0.0))
        pattern, kept = self._pattern(disc, offset)
        n_coupling = (disc.Nt - 1) * disc.problem.grid.size
        coupling = xp.full((n_coupling,), -1.0 / disc.dt, dtype=rhs.dtype, device=array_device(rhs))
        kept = xp.asarray(kept, device=array_device(rhs))
        stencil = xp.take(stencil_values(xp, blocks), kept)
        values = xp.concat([stencil, coupling])
        x = disc.backend.solve_sparse(pattern, values, xp.reshape(rhs, (-1,)))
        return xp.reshape(x, rhs.shape)

    def _krylov(self, disc: DiscreteMFG, blocks: StencilMatrix, offset: int, rhs: Any, rtol: float) -> Any:
        """FGMRES on the block-bidiagonal system, preconditioned by one inexact time sweep."""
        xp, dt, Nt = disc.xp, disc.dt, disc.Nt
        if disc.problem.grid.ndim == 1:
            inner = disc.linear
        else:
            if self._inner is None or self._inner.grid is not disc.problem.grid:
                self._inner = replace(disc.linear.options, rtol=1e-3).build(disc.problem.grid, disc.backend)
            inner = self._inner

        def neighbour(x: Any) -> Any:  # x_{n+offset}, zero outside the horizon
            zero = xp.zeros_like(x[:1])
            return xp.concat([x[1:], zero]) if offset > 0 else xp.concat([zero, x[:-1]])

        def matvec(x: Any) -> Any:
            return blocks.matvec(xp, x) - neighbour(x) / dt

        def sweep(r: Any) -> Any:
            order = range(Nt - 1, -1, -1) if offset > 0 else range(Nt)
            levels: dict[int, Any] = {}
            for n in order:
                b = r[n] if n + offset not in levels else r[n] + levels[n + offset] / dt
                levels[n] = inner.solve(blocks.at(n), b)
            return xp.stack([levels[n] for n in range(Nt)])

        x, iterations = fgmres(xp, matvec, rhs, sweep, rtol=rtol, restart=self.restart,
                               max_iter=self.max_iter)
        self.krylov_iterations.append(iterations)
        return x

    # -- the two trajectories ----------------------------------------------------------
    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        """Newton on the whole HJB horizon at once (``step_newton``); each step one space-time solve.

        Stops when ``max_n dt |R_n| <= newton_tol (1 + max|u| + dt max|f|)`` (the marching test, with
        ``u`` the start) or once a correction is round-off; a step that does not decrease the
        residual is halved (up to 20 times). Krylov steps are inexact Newton: relative
        tolerance ``min(1e-4, max(e / s, 0.1 t / e))`` (``e`` the residual, ``t`` its target,
        ``s = 1 + max|u|``), so only the last steps ask for much, and none asks below what
        round-off allows (``rtol``). ``forcing`` is not used: the horizon is solved exactly.
        """
        xp, dt = disc.xp, disc.dt
        f = disc.running_cost(m[1:])
        crowd = m[1:]
        u_T = disc.terminal_cost(m[-1])
        start = xp.stack([u_T] * disc.Nt) if u_guess is None else u_guess[:-1]
        scale = float(disc.step_scale(start, f))
        target = disc.newton_tol * scale

        bound = disc.scheme.bind(crowd)

        def residual(u: Any) -> tuple[Any, StencilMatrix, Any]:
            value, jac = disc.scheme.apply(u, crowd, bound)
            r = (u - xp.concat([u[1:], u_T[None]])) / dt + value - f
            return r, StencilMatrix(jac.center + 1.0 / dt, jac.minus, jac.plus), xp.max(xp.abs(r)) * dt

        def solve(jac: StencilMatrix, r: Any, error: Any) -> Any:
            e = float(error)
            return self._solve(disc, jac, 1, r, min(1e-4, max(e / scale, 0.1 * target / e)))

        out = newton(xp, residual, solve, start, target=target, floor=round_off_floor(xp, start.dtype, scale),
                     max_iter=disc.max_newton, line_search=True)
        error = float(out.error)
        raise_for_status(int(out.status), error, "on the whole horizon (global)", disc.max_newton,
                         f"{disc.newton_tol:.1e} x (1 + max|u| + dt max|f|)")
        return HJBResult(xp.concat([out.u, u_T[None]]), int(out.iterations), error)

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None) -> Any:
        """All FP steps ``J_n^T m^{n+1} - m^n/dt = 0`` as one lower block-bidiagonal solve."""
        xp = disc.xp
        matrices = disc.fp_matrices(u, m)
        rhs = xp.concat([disc.m0[None] / disc.dt, xp.zeros_like(m[2:])])
        return xp.concat([disc.m0[None], self._solve(disc, matrices, -1, rhs)])


class GlobalKrylov(GlobalSpacetime):
    """``GlobalSpacetime(linear="krylov")``: preconditioned FGMRES on each space-time system."""

    name = "global-krylov"

    def __init__(self, **options: Any) -> None:
        super().__init__("krylov", **options)
