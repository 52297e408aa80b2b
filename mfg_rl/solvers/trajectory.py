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
        xp = disc.xp
        f = disc.running_cost(m[1:])
        u_next = disc.terminal_cost(m[-1])
        levels, matrices = [u_next], []
        newton, worst = 0, 0.0
        for n in range(disc.Nt - 1, -1, -1):
            guess = None if u_guess is None else u_guess[n]
            step = disc.hjb_step(u_next, m[n + 1], f[n], n, guess, forcing)
            u_next = step.u
            levels.append(u_next)
            matrices.append(step.matrix)
            newton += step.iterations
            worst = max(worst, step.residual)
        u = xp.stack(levels[::-1])
        return HJBResult(u, newton, worst, steps=KeptSteps(matrices[::-1], xp))  # FP's matrices, for free

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None,
           steps: KeptSteps | None = None) -> Any:
        matrices = disc.fp_matrices(u, m) if steps is None else steps
        levels = [disc.m0]
        for n in range(disc.Nt):
            # the previous coupling iterate starts the 2D Krylov solves (1D solves are direct)
            levels.append(disc.fp_step(matrices.at(n), levels[-1], guess=m[n + 1], forcing=forcing))
        return disc.xp.stack(levels)
