"""The default coupling: Anderson while it progresses, Newton when it stalls, and back.

Anderson-accelerated fixed point is the cheapest per iteration and converges on most games
(the catalogue: 5-52 iterations), including attractive ones where Newton stalls in a local
minimum of the residual; monolithic Newton converges where the fixed point map oscillates
(santa-fe-bar at ``T = 10``: Anderson circles at residual 0.7-1.5, Newton converges in 15
steps). ``run_auto`` runs one until it stops progressing (``Progress``: no new best residual
by 10 % within the policy's patience, a failed line search, or divergence), then starts
the other from the best iterate so far; each return to Anderson halves its damping, and a
whole round (Anderson, then Newton) that does not lower the best residual by 10 % ends the
solve with ``SolverError`` (nothing more to try) instead of spending ``max_iter``. Every
switch is recorded (``CouplingResult.switches``, then ``Diagnostics.switches``). With
particles (no assembled Jacobian) only Anderson runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mfg_rl.checks import check_flag, check_int
from mfg_rl.errors import SolverError
from mfg_rl.solvers.callbacks import Callback, IterationState
from mfg_rl.solvers.coupling import PROGRESS, Anderson, CouplingResult, check_damping, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.newton import Newton, run_newton
from mfg_rl.solvers.trajectory import TrajectorySolver


@dataclass(frozen=True)
class Auto:
    """Anderson, switching to Newton and back by progress (module docstring).

    Args:
        depth, damping: Anderson's history and first relaxation, in (0, 1] (``Anderson``).
        newton_phases: whether Newton may run (``Newton(warmup=0)`` from the best iterate of
            the phase before); False leaves Anderson alone, halving its damping at each
            stall (particles, whose Jacobian is not assembled).
        patience, newton_patience: iterations (Newton steps) without a new best residual (by
            10 %) after which a phase has stalled.

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("santa-fe-bar", Nx=60, Nt=30, T=10.0), progress=False)
        >>> eq.diagnostics.converged, [s["to"] for s in eq.diagnostics.switches]
        (True, ['newton'])
    """

    depth: int = 5
    damping: float = 1.0
    newton_phases: bool = True
    patience: int = 15
    newton_patience: int = 8
    name: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", Anderson(depth=self.depth).depth)
        object.__setattr__(self, "damping", check_damping(self.damping))
        for name in ("patience", "newton_patience"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        object.__setattr__(self, "newton_phases", check_flag("newton_phases", self.newton_phases))

    def reset(self) -> None:
        """Auto keeps no state between solves (each phase builds its policy)."""


class _Phase(Callback):
    """A user callback seen through one phase: iteration numbers continue across phases,
    ``on_start``/``on_end`` are left to ``run_auto`` (once per solve)."""

    def __init__(self, callback: Callback, offset: int, max_iter: int) -> None:
        self.callback, self.offset, self.max_iter = callback, offset, max_iter

    def on_iteration(self, state: IterationState) -> bool | None:
        shifted = IterationState(state.iteration + self.offset, state.residual, state.fp_residual,
                                 state.hjb_residual, state.u, state.m, self.max_iter, state.tol)
        return self.callback.on_iteration(shifted)


def run_auto(
    disc: DiscreteMFG,
    hjb_solver: TrajectorySolver,
    fp_solver: TrajectorySolver,
    policy: Auto,
    *,
    tol: float,
    max_iter: int,
    callbacks: list[Callback] = (),
    allow_unconverged: bool = False,
) -> CouplingResult:
    """Alternate Anderson and Newton phases until ``tol`` (module docstring).

    Same contract as ``run_coupling``; ``max_iter`` counts the iterations of all phases.
    ``record.switches``: one dict per switch, ``{"iteration", "from", "to", "reason",
    "residual"}``. Raises ``SolverError`` when ``max_iter`` is spent (unless
    ``allow_unconverged``), naming the phases tried.
    """
    anderson = Anderson(depth=policy.depth, damping=policy.damping)
    newton = Newton(warmup=0)
    record = CouplingResult(u=None, m=None, converged=False, stopped_by="max_iter", iterations=0)
    record.timings = {}
    phase, damping = "anderson", anderson.damping
    round_start = math.inf  # the best residual when the current round (anderson, newton) began
    for callback in callbacks:
        callback.on_start(max_iter, tol)
    try:
        while record.iterations < max_iter:
            seen = [_Phase(c, record.iterations, max_iter) for c in callbacks]
            part, reason = _run_phase(phase, disc, hjb_solver, fp_solver, anderson, newton, damping, record,
                                      tol, max_iter - record.iterations, seen,
                                      policy.patience if phase == "anderson" else policy.newton_patience)
            _merge(record, part)
            if reason is None:
                break
            if not policy.newton_phases:
                if phase == "anderson" and damping > anderson.min_damping:
                    damping = max(0.5 * damping, anderson.min_damping)
                    record.switches.append(_switch(record, phase, phase, f"{reason}; damping {damping:g}"))
                    continue
                record.stopped_by = "stalled"
                break
            after = "newton" if phase == "anderson" else "anderson"
            if after == "anderson":
                if record.best[0] > PROGRESS * round_start:  # a whole round without progress
                    record.stopped_by = "stalled"
                    break
                round_start = record.best[0]
                damping = max(0.5 * damping, anderson.min_damping)
            record.switches.append(_switch(record, phase, after, reason))
            phase = after
    finally:
        for callback in callbacks:
            callback.on_end(record.converged)
    if not record.converged and record.stopped_by in ("max_iter", "stalled") and not allow_unconverged:
        tried = " -> ".join(["anderson"] + [s["to"] for s in record.switches])
        if record.stopped_by == "stalled":
            raise SolverError(
                f"auto stalled after {record.iterations} iterations ({tried}): neither Anderson nor "
                f"Newton gets below the best residual {record.best[0]:.3e} (tol={tol:.1e}); the game "
                "may have no equilibrium this iteration can reach from m0 on this grid (see the "
                "uniqueness note of a non-monotone game), or try a finer grid; allow_unconverged=True "
                "returns the flagged result"
            )
        raise SolverError(
            f"auto did not converge in max_iter={max_iter} iterations ({tried}): best residual "
            f"{record.best[0]:.3e} > tol={tol:.1e}; raise max_iter, refine the grid, or pass "
            "allow_unconverged=True to get the flagged result"
        )
    return record


def _run_phase(phase: str, disc: DiscreteMFG, hjb_solver: TrajectorySolver, fp_solver: TrajectorySolver,
               anderson: Anderson, newton: Newton, damping: float, record: CouplingResult, tol: float,
               budget: int, callbacks: list[Callback], patience: int) -> tuple[CouplingResult, str | None]:
    """One phase from the best iterate so far; ``(its record, why it stalled or None)``.
    A stall (no progress, divergence, a line search without decrease) hands over to the other
    policy; non-finite values and failed linear solves raise ``SolverError`` as they would alone."""
    _, u, m = record.best
    if phase == "anderson":
        policy = Anderson(depth=anderson.depth, damping=damping, min_damping=anderson.min_damping)
        part = run_coupling(disc, hjb_solver, fp_solver, policy, tol=tol, max_iter=budget,
                            callbacks=callbacks, allow_unconverged=True, m_init=m, stop_on_stall=True,
                            patience=patience)
    else:
        part = run_newton(disc, hjb_solver, fp_solver, newton, tol=tol, max_iter=budget, callbacks=callbacks,
                          allow_unconverged=True, m_init=m, u_init=u, stop_on_stall=True, patience=patience)
    if part.stopped_by == "stalled":
        return part, f"no progress (best residual {part.best[0]:.2e})"
    return part, None


def _merge(record: CouplingResult, part: CouplingResult) -> None:
    """Append phase ``part`` to the solve's ``record``."""
    for name in ("residuals", "fp_residuals", "hjb_residuals"):
        getattr(record, name).extend(getattr(part, name))
    record.iterations += part.iterations
    record.newton_iterations += part.newton_iterations
    for key, value in part.timings.items():
        record.timings[key] = record.timings.get(key, 0.0) + value
    if part.u is not None:
        record.u, record.m = part.u, part.m
    record.best = min(record.best, part.best, key=lambda best: best[0])
    record.converged, record.stopped_by = part.converged, part.stopped_by


def _switch(record: CouplingResult, before: str, after: str, reason: str) -> dict[str, Any]:
    return {"iteration": record.iterations, "from": before, "to": after, "reason": reason,
            "residual": record.best[0]}
