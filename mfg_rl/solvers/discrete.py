"""The discrete MFG system on one backend: costs, Hamiltonian weight, steps and residuals.

Time pairing (Achdou & Capuzzo-Dolcetta 2010): for n = 0..Nt-1

    (u^n - u^{n+1})/dt - nu Lap_h u^n + w(m^{n+1}) H_h(u^n) = f(x, m^{n+1})   (HJB)
    (m^{n+1} - m^n)/dt + (A_n)^T m^{n+1} = 0                                 (FP)

with ``A_n`` the Jacobian of the space part of HJB at ``u^n``. So the FP matrix is the
transpose of the final Newton matrix ``J_n = I/dt + A_n``: mass is conserved to
round-off on no-flux and periodic boxes (columns of ``A_n^T`` sum to zero) and ``m`` stays
non-negative (``J_n^T`` is an M-matrix).
"""

from __future__ import annotations

from typing import Any

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem
from mfg_rl.errors import SolverError
from mfg_rl.solvers.stencil import StencilMatrix, StencilSolver
from mfg_rl.solvers.upwind import UpwindOperator

NEWTON_KRYLOV_RTOL = 1e-4  # relative defect of the linear solves inside HJB Newton (2D)
ROUND_OFF = 16  # HJB Newton also stops once its correction is below this many eps of max|u|


class DiscreteMFG:
    """Everything the trajectory solvers need about ``problem`` on ``backend``.

    ``forcing`` (None, or a float set by the coupling loop): the accuracy the current
    coupling iteration needs from its step solves (inexact Picard). With it, HJB Newton
    stops at ``dt max|R| <= max(newton_tol (1 + max|u|), s forcing)`` with
    ``s = min(1, h^2 / (2 d dt))`` (an error ``du`` in ``u`` moves the FP residual by about
    ``2 d dt du / h^2`` through the upwind drift), and the 2D Krylov solves of FP steps
    stop once their defects add up to at most ``s forcing`` of mass. The coupling residual
    itself is always measured exactly, so the converged equilibrium meets ``tol`` as with
    exact step solves. (Measured on crowd-2d: the coupled residual reacts to step errors
    far more than these estimates say; ``s`` on both keeps the iteration count unchanged.)
    """

    def __init__(self, problem: MFGProblem, backend: Backend, *, newton_tol: float = 1e-12,
                 max_newton: int = 50) -> None:
        self.problem = problem
        self.backend = backend
        self.xp = backend.xp
        self.dt = problem.time.dt
        self.Nt = problem.time.Nt
        self.cell_volume = problem.grid.cell_volume
        self.points = problem.points(backend)
        self.operator = UpwindOperator(problem, backend)
        self.linear = StencilSolver(problem.grid, backend)
        self.m0 = backend.asarray(problem.m0)
        self.newton_tol = newton_tol
        self.max_newton = max_newton
        self.forcing: float | None = None
        self._kept: tuple[Any, Any, KeptSteps] | None = None  # (u, m, steps), see keep_fp_matrices
        self.step_jacobian: StencilMatrix | None = None  # A at the last hjb_step's u^n
        ndim = problem.grid.ndim
        self.forcing_scale = min(1.0, min(problem.grid.spacing) ** 2 / (2 * ndim * self.dt))

    # -- couplings -------------------------------------------------------------------
    def running_cost(self, m: Any) -> Any:
        """``f(x, m^n)`` for every time level: shape ``m.shape``."""
        f = self.problem.running_cost
        return self.xp.stack([self.problem.evaluate_cost(f, m[n], self.points) for n in range(m.shape[0])])

    def terminal_cost(self, m_T: Any) -> Any:
        return self.problem.evaluate_cost(self.problem.terminal_cost, m_T, self.points)

    def weight(self, m: Any) -> Any:
        """``w(m) = 1/(lambda c(m))`` with ``H = w |p|^2 / 2``."""
        return self.problem.hamiltonian.weight(m)

    # -- one implicit step -----------------------------------------------------------
    def hjb_step(self, u_next: Any, w: Any, f: Any, n: int, guess: Any = None) -> tuple[Any, int, float]:
        """Solve the HJB step for ``u^n`` by Newton with the exact Jacobian.

        Newton starts from ``guess`` (e.g. the previous coupling iterate) or ``u^{n+1}`` and
        stops at ``dt max|R| <= max(newton_tol (1 + max|u^{n+1}|), s forcing)`` (class
        docstring), or once its correction is round-off (``ROUND_OFF`` eps of ``1 + max|u^{n+1}|``:
        a coarse Parareal step of 500 fine ones left ``dt max|R|`` at 6.3e-12 > 5.7e-12).
        Its 2D Krylov solves are inexact (Eisenstat-Walker style): relative defect ``1e-4``
        or an absolute one ten times below the stopping threshold, whichever is looser, so
        the last step still lands below it.
        Returns ``(u^n, newton iterations, final residual max|dt R|)`` and keeps the space
        Jacobian ``A_n`` at the returned ``u^n`` in ``step_jacobian`` (``keep_fp_matrices``);
        raises ``SolverError`` naming ``n`` when Newton fails.
        """
        xp = self.xp
        u = u_next if guess is None else guess
        scale = 1.0 + float(xp.max(xp.abs(u_next)))
        target = self.newton_tol * scale
        if self.forcing is not None:
            target = max(target, self.forcing * self.forcing_scale)
        floor = ROUND_OFF * xp.finfo(u.dtype).eps * scale  # a correction this small is round-off
        for iteration in range(self.max_newton + 1):
            value, jac = self.operator.apply(u, w)
            residual = (u - u_next) / self.dt + value - f
            error = float(xp.max(xp.abs(residual))) * self.dt
            if error != error or error == float("inf"):
                raise SolverError(f"HJB Newton produced non-finite values at time index n={n}")
            if error <= target:
                self.step_jacobian = jac
                return u, iteration, error
            if iteration == self.max_newton:
                break
            step = self.linear.solve(StencilMatrix(jac.center + 1.0 / self.dt, jac.minus, jac.plus), residual,
                                     rtol=NEWTON_KRYLOV_RTOL, atol=0.1 * target / self.dt)
            if float(xp.max(xp.abs(step))) <= floor:  # u is as exact as it gets
                self.step_jacobian = jac
                return u, iteration, error
            u = u - step
        raise SolverError(
            f"HJB Newton did not converge at time index n={n}: residual {error:.3e} after "
            f"{self.max_newton} iterations (tolerance {target:.1e})"
        )

    def fp_matrices(self, u: Any, m: Any) -> StencilMatrix:
        """``J_n^T`` for n = 0..Nt-1, batched over time: the FP step matrices.

        ``u``, ``m`` have shape ``(Nt+1, *space)``; ``J_n`` is linearised at ``u^n`` with
        the weight ``w(m^{n+1})``.
        """
        _, jac = self.operator.apply(u[:-1], self.weight(m[1:]))
        return StencilMatrix(jac.center + 1.0 / self.dt, jac.minus, jac.plus).transpose(self.xp)

    def fp_step_matrices(self, u: Any, m: Any) -> StencilMatrix | KeptSteps:
        """The FP step matrices for marching (``.at(n) = J_n^T``): those kept by the HJB sweep
        that produced ``u`` from ``m`` (``keep_fp_matrices``), else ``fp_matrices(u, m)``."""
        kept = self._kept
        if kept is not None and kept[0] is u and kept[1] is m:
            return kept[2]
        return self.fp_matrices(u, m)

    def keep_fp_matrices(self, u: Any, m: Any, jacobians: list[Any]) -> None:
        """Keep the HJB sweep's final Newton Jacobians ``A_n`` (``step_jacobian``, n = 0..Nt-1)
        as the FP matrices of ``(u, m)`` (the same array objects): the same numbers as
        ``fp_matrices``, without rebuilding them (one ``apply`` over all levels, ~10% of a
        2D coupling iteration) or stacking them (fresh memory)."""
        self._kept = (u, m, KeptSteps(jacobians, 1.0 / self.dt, self.xp))

    def fp_step(self, matrix_T: StencilMatrix, m_prev: Any, guess: Any = None) -> Any:
        """``m^{n+1}`` solving ``J_n^T m^{n+1} = m^n / dt``.

        ``guess`` starts 2D Krylov solves (default ``m^n``). Under ``forcing`` they stop at
        ``||b - A m||_2 <= s forcing / (T h^d sqrt(N))``: the step's L1 defect
        ``dt h^d ||b - A m||_1`` is then at most ``s forcing / Nt``.
        """
        if self.problem.grid.ndim == 1:
            return self.linear.solve(matrix_T, m_prev / self.dt)
        guess = m_prev if guess is None else guess
        if self.forcing is None:
            return self.linear.solve(matrix_T, m_prev / self.dt, x0=guess)
        atol = self.forcing * self.forcing_scale / (
            self.Nt * self.dt * self.cell_volume * self.problem.grid.size**0.5)
        return self.linear.solve(matrix_T, m_prev / self.dt, x0=guess, atol=atol)

    # -- residuals -------------------------------------------------------------------
    def fp_residual(self, u: Any, m: Any) -> float:
        """Residual of the FP equations at ``(u, m)``: ``max_n h^d sum_i |dt J_n^T m^{n+1} - m^n|``.

        Dimensionless (a mass); zero exactly when ``m`` is the FP solution for ``u``.
        """
        steps = self.fp_step_matrices(u, m)
        if not isinstance(steps, KeptSteps):
            return float(self.fp_defect(u, m))
        xp = self.xp
        per_step = xp.stack([self._defects(steps.at(n), m[n + 1], m[n]) for n in range(self.Nt)])
        return float(xp.maximum(xp.max(per_step), self._initial_defect(m)))

    def fp_defect(self, u: Any, m: Any) -> Any:
        """``fp_residual`` as a 0-d backend array (no host sync, so it can be traced/jitted)."""
        per_step = self._defects(self.fp_matrices(u, m), m[1:], m[:-1])
        return self.xp.maximum(self.xp.max(per_step), self._initial_defect(m))

    def _defects(self, jt: StencilMatrix, m_next: Any, m_prev: Any) -> Any:
        """``h^d sum_i |dt J^T m^{n+1} - m^n|`` over the space axes (leading axes: a batch)."""
        xp = self.xp
        defect = self.dt * jt.matvec(xp, m_next) - m_prev
        axes = tuple(range(defect.ndim - self.problem.grid.ndim, defect.ndim))
        return xp.sum(xp.abs(defect), axis=axes) * self.cell_volume

    def _initial_defect(self, m: Any) -> Any:
        return self.xp.sum(self.xp.abs(m[0] - self.m0)) * self.cell_volume

    def outflow(self, u: Any, m: Any) -> Any:
        """Mass leaving through exits during each step, from the boundary flux; shape ``(Nt,)``.

        Summing the FP step over nodes gives ``mass^n - mass^{n+1} = dt h^d (A_n 1)^T m^{n+1}``;
        ``A_n 1`` vanishes except in cells next to an exit face.
        """
        xp = self.xp
        _, jac = self.operator.apply(u[:-1], self.weight(m[1:]))
        rows = jac.matvec(xp, xp.ones_like(m[1:]))
        axes = tuple(range(1, m.ndim))
        return xp.sum(rows * m[1:], axis=axes) * (self.dt * self.cell_volume)

    def mass(self, m: Any) -> Any:
        """``h^d sum_i m^n_i`` per time level, shape ``(Nt+1,)``."""
        axes = tuple(range(1, m.ndim))
        return self.xp.sum(m, axis=axes) * self.cell_volume


class KeptSteps:
    """FP step matrices ``J_n^T = (I/dt + A_n)^T`` from a list of space Jacobians ``A_n``,
    transposed on first use of ``at(n)`` (no stacked copy of all levels)."""

    def __init__(self, jacobians: list[StencilMatrix], inv_dt: float, xp: Any) -> None:
        self.jacobians, self.inv_dt, self.xp = jacobians, inv_dt, xp
        self.transposed: dict[int, StencilMatrix] = {}

    def at(self, n: int) -> StencilMatrix:
        found = self.transposed.get(n)
        if found is None:
            a = self.jacobians[n]
            found = StencilMatrix(a.center + self.inv_dt, a.minus, a.plus).transpose(self.xp)
            self.transposed[n] = found
        return found
