"""Trajectory solvers: the whole horizon of one equation, given the other's field.

An MFG is a boundary-value problem in time (``u`` fixed at T, ``m`` at 0). A
``TrajectorySolver`` produces the HJB trajectory ``u`` for a given crowd ``m`` and the
FP trajectory ``m`` for a given ``u``; how it does so (marching, all-at-once, Parareal,
particles) is its own business. ``Sequential`` marches step by step: Gaussian elimination
on the block-triangular space-time operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mfg_rl.solvers.discrete import DiscreteMFG, KeptSteps
from mfg_rl.solvers.step_newton import CONVERGED


@dataclass
class HJBResult:
    """``u`` of shape ``(Nt+1, *space)`` and Newton statistics.

    ``steps``: the FP step matrices of ``(u, m)`` when the sweep has them for free (the
    final Newton matrices of marching), handed to ``fp``/``fp_residual``; ``fp_defect``: the
    FP residual of ``(u, m)`` when the sweep computed it (a 0-d array), else None.
    """

    u: Any
    newton_iterations: int
    residual: float
    steps: KeptSteps | None = None
    fp_defect: Any = None


class TrajectorySolver(Protocol):
    """What the coupling loop needs from a strategy.

    ``forcing`` (None: exact): the accuracy the coupling iteration needs from the step
    solves (``DiscreteMFG``); ``steps``: FP step matrices from the HJB sweep (``HJBResult``).
    A strategy with limits on the problem (``Parareal``'s slices) also has ``check(problem)``,
    which ``solve`` calls before any work.
    """

    name: str

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        """Solve HJB backward from ``u^Nt = g(m^Nt)`` with the crowd ``m`` (Nt+1, *space).

        ``u_guess`` (same shape), when given, is where the nonlinear solves may start.
        """

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None,
           steps: KeptSteps | None = None) -> Any:
        """Solve FP forward from ``m0`` with the drift of ``u``; ``m`` supplies congestion."""


class Sequential:
    """Time marching: ``Nt`` implicit steps backward (HJB, Newton) then forward (FP)."""

    name = "sequential"

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        """The backward sweep. On the host each step's Newton is checked as it goes; where
        ``disc.unrolled_sweep`` (off the host), every step runs unrolled Newton iterations
        (``disc.step_rounds``) and the host reads all statuses once, at the end of the sweep
        (``_unchecked_sweep``). Either way ``disc.newton_counts`` says what each step took."""
        xp = disc.xp
        f = disc.running_cost(m[1:])
        levels, matrices = [disc.terminal_cost(m[-1])], []
        newton, worst = 0, 0.0
        if not disc.unrolled_sweep:
            counts = []
            for n in range(disc.Nt - 1, -1, -1):
                guess = None if u_guess is None else u_guess[n]
                step = disc.hjb_step(levels[-1], m[n + 1], f[n], n, guess, forcing)
                levels.append(step.u)
                matrices.append(step.matrix)
                counts.append(step.iterations)
                worst = max(worst, step.residual)
            newton = sum(counts)
            disc.record_newton(counts)
        else:
            newton, worst = self._unchecked_sweep(disc, m, f, u_guess, forcing, levels, matrices)
        u = xp.stack(levels[::-1])
        return HJBResult(u, newton, worst, steps=KeptSteps(matrices[::-1], xp))  # FP's matrices, for free

    def _unchecked_sweep(self, disc: DiscreteMFG, m: Any, f: Any, u_guess: Any, forcing: float | None,
                         levels: list, matrices: list) -> tuple[int, float]:
        """Passes of unrolled steps from ``n = Nt-1`` down, each read by the host once at its end.

        Each step runs ``disc.step_rounds(n, rounds, slack)``: the pass's ``rounds``, capped at
        what the step took in the last sweep plus ``slack``. A step still running after its
        rounds is finished under the checked loop and the sweep goes on from the step before
        it with twice the rounds and twice the slack (at least 1), so a sweep takes at most
        ``log2(max_newton) + 2`` passes; a failed step raises as ``hjb_step`` does. The next
        sweep's rounds are the most this one took, its caps what each step took. Same numbers
        as the checked sweep.
        """
        rounds, slack, counts, errors = disc.newton_rounds, 0, [], [0.0]
        start = disc.Nt - 1
        while start >= 0:
            base, pending = len(levels), []
            for n in range(start, -1, -1):
                guess = None if u_guess is None else u_guess[n]
                pending.append(disc.start_hjb_step(levels[-1], m[n + 1], f[n], n, guess, forcing,
                                                   disc.step_rounds(n, rounds, slack)))
                levels.append(pending[-1].outcome.u)
                matrices.append(pending[-1].outcome.jacobian)
            codes, iterations, residuals = disc.step_reports(pending)  # the host's one look at this pass
            kept = next((i for i, code in enumerate(codes) if code != CONVERGED), len(pending))
            counts += [int(k) for k in iterations[:kept]]
            errors += [float(e) for e in residuals[:kept]]
            del levels[base + kept:], matrices[base - 1 + kept:]
            if kept == len(pending):
                break
            step = disc.finish_hjb_step(pending[kept], status=int(codes[kept]))  # raises on failure
            levels.append(step.u)
            matrices.append(step.matrix)
            counts.append(step.iterations)
            errors.append(step.residual)
            rounds, slack = max(step.iterations, 2 * rounds), max(2 * slack, 1)
            start = pending[kept].n - 1
        disc.record_newton(counts)
        return sum(counts), max(errors)

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None,
           steps: KeptSteps | None = None) -> Any:
        matrices = disc.fp_matrices(u, m) if steps is None else steps
        levels = [disc.m0]
        for n in range(disc.Nt):
            # the previous coupling iterate starts the 2D Krylov solves (1D solves are direct)
            levels.append(disc.fp_step(matrices.at(n), levels[-1], guess=m[n + 1], forcing=forcing))
        return disc.xp.stack(levels)
