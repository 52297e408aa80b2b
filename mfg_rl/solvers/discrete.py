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

import copy
from dataclasses import dataclass
from typing import Any

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.numerical_hamiltonian import NumericalHamiltonian
from mfg_rl.solvers.stencil import LinearSolver, StencilMatrix
from mfg_rl.solvers.step_newton import (
    RUNNING,
    NewtonOutcome,
    Unrolled,
    newton,
    python_loop,
    raise_for_status,
    round_off_floor,
)

NEWTON_KRYLOV_RTOL = 1e-4  # relative defect of the linear solves inside HJB Newton (2D)


MIN_NEWTON = 50  # Newton iterations per step before SolverError, plus one per cell along each axis
FIRST_ROUNDS = 4  # unrolled Newton iterations per step in a sweep before any sweep has said how many it takes


def forcing_scale(smallest_spacing: float, ndim: int, dt: float) -> float:
    """``s = min(1, h^2 / (2 d dt))``: an error ``du`` of ``u`` moves the FP residual by about
    ``2 d dt du / h^2`` through the upwind drift, so an inexact Newton step stops at ``s forcing``
    (``DiscreteMFG.step_target``; ``h`` the smallest cell, of a grid or a tree)."""
    return min(1.0, smallest_spacing**2 / (2 * ndim * dt))


@dataclass
class StepResult:
    """One HJB step: ``u^n``, Newton corrections, the final ``dt max|R|`` and the Newton
    matrix ``J_n = I/dt + A_n`` at ``u^n`` (its transpose is FP's step matrix)."""

    u: Any
    iterations: int
    residual: float
    matrix: StencilMatrix


@dataclass
class PendingStep:
    """An HJB step whose Newton ran ``Unrolled`` (``DiscreteMFG.start_hjb_step``): its status,
    error and count are 0-d arrays still on the device; ``finish_hjb_step`` reads them."""

    outcome: NewtonOutcome
    target: Any
    m_next: Any
    n: int
    resume: Any  # () -> NewtonOutcome: the same Newton continued under python_loop


class DiscreteMFG:
    """Everything the trajectory solvers need about ``problem`` on ``backend``.

    ``forcing`` (an argument of the step solves, None for exact ones): the accuracy the
    current coupling iteration needs (inexact Picard). With it, HJB Newton stops at
    ``dt max|R| <= max(newton_tol (1 + max|u| + dt max|f|), s forcing)`` with ``s = min(1, h^2 / (2 d dt))``
    (an error ``du`` in ``u`` moves the FP residual by about ``2 d dt du / h^2`` through the
    upwind drift), and the 2D Krylov solves of FP steps stop once their defects add up to at
    most ``s forcing`` of mass. The coupling residual itself is always measured exactly, so
    the converged equilibrium meets ``tol`` as with exact step solves. (Measured on
    crowd-2d: the coupled residual reacts to step errors far more than these estimates say;
    ``s`` on both keeps the iteration count unchanged.)
    ``max_newton``: Newton iterations per step before ``SolverError``; default ``50 + sum(grid.shape)``.
    ``linear``: how 2D/3D stencil systems are solved (``LinearSolver``; default Krylov, zebra).
    """

    def __init__(self, problem: MFGProblem, backend: Backend, *, newton_tol: float = 1e-12,
                 max_newton: int | None = None, linear: LinearSolver | None = None) -> None:
        self.problem = problem
        self.backend = backend
        self.xp = backend.xp
        self.dt = problem.time.dt
        self.Nt = problem.time.Nt
        self.cell_volume = problem.grid.cell_volume
        self.points = problem.points(backend)
        self.scheme = NumericalHamiltonian(problem, backend)
        self.linear = (LinearSolver() if linear is None else linear).build(problem.grid, backend)
        self.m0 = backend.asarray(problem.m0)
        self.newton_tol = newton_tol
        # Newton on the upwind scheme moves a switch of upwind direction about one cell per
        # iteration when transport dominates (crowd-exit-1d at sigma = 0: ~200 on the first step)
        self.max_newton = MIN_NEWTON + sum(problem.grid.shape) if max_newton is None else max_newton
        # unrolled Newton iterations per step of the next sweep (``start_hjb_step``): the most the
        # last sweep took, so a sweep like the last reads its statuses once, at its end; each step
        # capped at what it took in the last sweep (``step_rounds``; None before a sweep)
        self.newton_rounds = FIRST_ROUNDS
        self.newton_counts: list[int] | None = None
        self.forcing_scale = forcing_scale(min(problem.grid.spacing), problem.grid.ndim, self.dt)

    @property
    def unrolled_newton(self) -> bool:
        """Whether sweeps run each step's Newton ``Unrolled`` and read the statuses once per sweep.

        Off the host (an accelerator, or jax), where a host read waits for the device. On the
        host a read is free and the checked loop stops each step in time, while unrolled
        rounds take what the step took in the last sweep (``step_rounds``). The Newton part
        of a sweep then reads nothing per step: its target stays a 0-d array (the 2D Krylov
        ``atol`` too). 1D steps solve directly and read nothing else; each Newton round of a 2D
        step is an off-host Krylov solve, which reads the host once per chunk of BiCGStab
        iterations plus twice (``StencilSolver._solve_off_host``: at most ``ceil(n / k) + 3``
        for ``n`` iterations), three times in a round masked after the step stopped (its right
        side is zero).
        """
        return self.backend.host_twin().name != "numpy"

    @property
    def unrolled_sweep(self) -> bool:
        """Whether the next HJB sweep unrolls (``unrolled_newton``): 1D always; 2D once a sweep
        has said what each step takes (``newton_counts``). A pass reads only at its end, so
        the steps after one that outran its rounds run and are discarded, and a 2D step's
        idle round is a Krylov solve (three reads): a first 2D sweep unrolled at 4 rounds
        read 1.2-1.7x the checked sweep on crowd-2d 16x16 (Nt = 3, 10)."""
        return self.unrolled_newton and (self.problem.grid.ndim == 1 or self.last_counts() is not None)

    def last_counts(self) -> list[int] | None:
        """The Newton iterations of each step ``n`` in the last sweep at this ``Nt`` (None before one)."""
        counts = self.newton_counts
        return counts if counts is not None and len(counts) == self.Nt else None

    def record_newton(self, counts: list[int]) -> None:
        """What a sweep's steps took, from ``n = Nt-1`` down: the next sweep's rounds (the most)
        and caps (``step_rounds``)."""
        self.newton_rounds = max(1, max(counts, default=1))
        self.newton_counts = counts[::-1]

    def step_rounds(self, n: int, rounds: int, slack: int) -> int:
        """Unrolled Newton iterations of step ``n`` in a pass of ``rounds`` (``Sequential``): at most
        ``slack`` more than step ``n`` took in the last sweep (before any: than ``newton_rounds``).
        Steps differ (crowd-2d 16x16 takes 10, 6, 5, 4, ... from ``n = Nt-1`` down), and each
        idle round of a 2D step is a Krylov solve (three host reads, ``first`` masked BiCGStab
        iterations), dearer than a step finished under the checked loop."""
        counts = self.last_counts()
        return min(rounds, (self.newton_rounds if counts is None else counts[n]) + slack)

    def with_dt(self, dt: float) -> DiscreteMFG:
        """The same scheme with time step ``dt`` (Parareal's coarse steps); shares everything else."""
        coarse = copy.copy(self)
        coarse.dt = dt
        return coarse

    # -- couplings -------------------------------------------------------------------
    def running_cost(self, m: Any) -> Any:
        """``f(x, m^n)`` for every time level: shape ``m.shape``."""
        f = self.problem.running_cost
        return self.xp.stack([self.problem.evaluate_cost(f, m[n], self.points) for n in range(m.shape[0])])

    def terminal_cost(self, m_T: Any) -> Any:
        return self.problem.evaluate_cost(self.problem.terminal_cost, m_T, self.points)

    # -- one implicit step -----------------------------------------------------------
    def step_scale(self, u_next: Any, f: Any) -> Any:
        """``1 + max|u^{n+1}| + dt max|f|`` (a 0-d array): the size of the terms of ``dt R``, so
        ``newton_tol`` times it is a relative accuracy also for large steps (santa-fe-bar at
        ``dt = 5``: ``dt R`` stalls at 3e-12 in round-off, above ``newton_tol (1 + max|u^{n+1}|)``)."""
        xp = self.xp
        return 1.0 + xp.max(xp.abs(u_next)) + self.dt * xp.max(xp.abs(f))

    def step_target(self, u_next: Any, f: Any, forcing: float | None) -> Any:
        """Newton's target ``max(newton_tol step_scale, s forcing)`` (a 0-d array) and the
        round-off floor of its corrections."""
        xp = self.xp
        scale = self.step_scale(u_next, f)
        target = self.newton_tol * scale
        if forcing is not None:
            target = xp.maximum(target, forcing * self.forcing_scale)
        return target, round_off_floor(xp, u_next.dtype, scale)

    def krylov_atol(self, target: Any) -> Any:
        """The absolute defect ``||J du - R||_2`` a 2D Newton correction may leave, ``0.1 target / dt``
        (a 0-d array), so that the last correction still lands below ``target``; 0 where ``target`` is
        not finite: that step stopped on a non-finite error before any solve, and the masked rounds
        of an unrolled Newton solve ``J du = 0`` for it, which must converge."""
        return self.xp.where(self.xp.isfinite(target), 0.1 * target / self.dt, 0.0)

    def transport_hint(self, u: Any, m: Any) -> str:
        """Why a step may defeat Newton, from the scheme's speed ``a = max|alpha(u, m)|``: cells
        crossed per step ``dt a / h`` and the cell Peclet number ``h a / (2 nu)`` (both > 1:
        transport dominates, and Newton moves the upwind switches about a cell per iteration)."""
        speed = max(float(self.xp.max(self.xp.abs(a))) for a in self.scheme.control(u, m))
        h = min(self.problem.grid.spacing)
        cells, nu = self.dt * speed / h, self.problem.nu
        peclet = float("inf") if nu == 0.0 else h * speed / (2.0 * nu)
        if cells <= 1.0 and peclet <= 1.0:
            return ""
        return (f"the step is transport-dominated (speed {speed:.3g}: {cells:.3g} cells per step, cell "
                f"Peclet number {peclet:.3g}); more time steps (Nt), more noise (sigma) or a coarser "
                "grid make it easier")

    def step_residual(self, u_next: Any, m_next: Any, f: Any) -> Any:
        """``u -> (R, I/dt + A(u), dt max|R|)`` of the HJB step ``n`` (``m_next = m^{n+1}``)."""
        xp, dt = self.xp, self.dt
        bound = self.scheme.bind(m_next)  # the crowd's part of H, once per step

        def residual(u: Any) -> tuple[Any, StencilMatrix, Any]:
            value, jac = self.scheme.apply(u, m_next, bound)
            r = (u - u_next) / dt + value - f
            return r, StencilMatrix(jac.center + 1.0 / dt, jac.minus, jac.plus), xp.max(xp.abs(r)) * dt

        return residual

    def hjb_step(self, u_next: Any, m_next: Any, f: Any, n: int, guess: Any = None,
                 forcing: float | None = None) -> StepResult:
        """Solve the HJB step for ``u^n`` by Newton with the exact Jacobian (``step_newton``).

        Newton starts from ``guess`` (e.g. the previous coupling iterate) or ``u^{n+1}``, with
        ``m_next = m^{n+1}`` the crowd of the step and ``f = f(x, m^{n+1})``. Its 2D Krylov
        solves are inexact (Eisenstat-Walker style): relative defect ``1e-4`` or an absolute
        one ten times below the stopping threshold, whichever is looser, so the last step
        still lands below it. Raises ``SolverError`` naming ``n`` when Newton fails. The host
        reads Newton's status every iteration; ``start_hjb_step`` is the same step without that.
        """
        return self.finish_hjb_step(self.start_hjb_step(u_next, m_next, f, n, guess, forcing, rounds=None))

    def start_hjb_step(self, u_next: Any, m_next: Any, f: Any, n: int, guess: Any = None,
                       forcing: float | None = None, rounds: int | None = None) -> PendingStep:
        """``hjb_step``'s Newton, ``Unrolled(rounds)`` (no host look of its own; ``None``: ``python_loop``;
        the host reads of 2D steps' Krylov solves: ``unrolled_newton``)."""
        target, floor = self.step_target(u_next, f, forcing)
        atol = self.krylov_atol(target) if self.problem.grid.ndim > 1 else 0.0  # 1D solves are direct

        def solve(jac: StencilMatrix, r: Any, error: Any) -> Any:
            return self.linear.solve(jac, r, rtol=NEWTON_KRYLOV_RTOL, atol=atol)

        residual = self.step_residual(u_next, m_next, f)
        loop = python_loop if rounds is None else Unrolled(min(rounds, self.max_newton))
        out = newton(self.xp, residual, solve, u_next if guess is None else guess, target=target, floor=floor,
                     max_iter=self.max_newton, loop=loop)

        def resume() -> NewtonOutcome:
            return newton(self.xp, residual, solve, out.u, target=target, floor=floor,
                          max_iter=self.max_newton, iterations=out.iterations)

        return PendingStep(out, target, m_next, n, resume)

    def finish_hjb_step(self, step: PendingStep, status: int | None = None) -> StepResult:
        """The ``StepResult`` of ``step``: resumed under ``python_loop`` if still running, raising
        ``SolverError`` naming ``n`` if Newton failed. ``status``: the code when already read."""
        out = step.outcome
        if (int(out.status) if status is None else status) == RUNNING:
            out = step.resume()
        error = float(out.error)
        raise_for_status(int(out.status), error, f"at time index n={step.n}", self.max_newton,
                         f"{float(step.target):.1e}", lambda: self.transport_hint(out.u, step.m_next))
        return StepResult(out.u, int(out.iterations), error, out.jacobian)

    def step_reports(self, steps: list[PendingStep]) -> Any:
        """Status, iterations and error of every step, read in one transfer: a host array ``(3, len)``."""
        xp = self.xp
        errors = xp.stack([s.outcome.error for s in steps])
        codes = xp.stack([xp.astype(s.outcome.status, errors.dtype) for s in steps])
        counts = xp.stack([xp.astype(s.outcome.iterations, errors.dtype) for s in steps])
        return self.backend.to_numpy(xp.stack([codes, counts, errors]))

    def fp_matrices(self, u: Any, m: Any) -> StencilMatrix:
        """``J_n^T`` for n = 0..Nt-1, batched over time: the FP step matrices.

        ``u``, ``m`` have shape ``(Nt+1, *space)``; ``J_n`` is linearised at ``u^n`` with
        the crowd ``m^{n+1}``.
        """
        _, jac = self.scheme.apply(u[:-1], m[1:])
        return StencilMatrix(jac.center + 1.0 / self.dt, jac.minus, jac.plus).transpose(self.xp)

    def fp_step(self, matrix_T: StencilMatrix, m_prev: Any, guess: Any = None,
                forcing: float | None = None) -> Any:
        """``m^{n+1}`` solving ``J_n^T m^{n+1} = m^n / dt``.

        ``guess`` starts 2D Krylov solves (default ``m^n``). Under ``forcing`` they stop at
        ``||b - A m||_2 <= s forcing / (T h^d sqrt(N))``: the step's L1 defect
        ``dt h^d ||b - A m||_1`` is then at most ``s forcing / Nt``.
        """
        if self.problem.grid.ndim == 1:
            return self.linear.solve(matrix_T, m_prev / self.dt)
        guess = m_prev if guess is None else guess
        if forcing is None:
            return self.linear.solve(matrix_T, m_prev / self.dt, x0=guess)
        atol = forcing * self.forcing_scale / (
            self.Nt * self.dt * self.cell_volume * self.problem.grid.size**0.5)
        return self.linear.solve(matrix_T, m_prev / self.dt, x0=guess, atol=atol)

    # -- residuals -------------------------------------------------------------------
    def fp_residual(self, u: Any, m: Any, steps: KeptSteps | None = None) -> float:
        """Residual of the FP equations at ``(u, m)``: ``max_n h^d sum_i |dt J_n^T m^{n+1} - m^n|``.

        Dimensionless (a mass); zero exactly when ``m`` is the FP solution for ``u``.
        ``steps``: the FP step matrices of ``(u, m)`` when known (``HJBResult.steps``).
        """
        if steps is None:
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
        _, jac = self.scheme.apply(u[:-1], m[1:])
        rows = jac.matvec(xp, xp.ones_like(m[1:]))
        axes = tuple(range(1, m.ndim))
        return xp.sum(rows * m[1:], axis=axes) * (self.dt * self.cell_volume)

    def mass(self, m: Any) -> Any:
        """``h^d sum_i m^n_i`` per time level, shape ``(Nt+1,)``."""
        axes = tuple(range(1, m.ndim))
        return self.xp.sum(m, axis=axes) * self.cell_volume


class KeptSteps:
    """FP step matrices ``J_n^T`` from the HJB sweep's Newton matrices ``J_n = I/dt + A_n``
    (the same numbers as ``fp_matrices``, without rebuilding or stacking them), transposed
    on first use of ``at(n)``."""

    def __init__(self, matrices: list[StencilMatrix], xp: Any) -> None:
        self.matrices, self.xp = matrices, xp
        self.transposed: dict[int, StencilMatrix] = {}

    def at(self, n: int) -> StencilMatrix:
        found = self.transposed.get(n)
        if found is None:
            found = self.matrices[n].transpose(self.xp)
            self.transposed[n] = found
        return found
