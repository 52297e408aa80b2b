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

from mfg_rl.solvers.discrete import DiscreteMFG


@dataclass
class HJBResult:
    """``u`` of shape ``(Nt+1, *space)`` and Newton statistics."""

    u: Any
    newton_iterations: int
    residual: float


class TrajectorySolver(Protocol):
    """What the coupling loop needs from a strategy."""

    name: str

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None) -> HJBResult:
        """Solve HJB backward from ``u^Nt = g(m^Nt)`` with the crowd ``m`` (Nt+1, *space).

        ``u_guess`` (same shape), when given, is where the nonlinear solves may start.
        """

    def fp(self, disc: DiscreteMFG, u: Any, m: Any) -> Any:
        """Solve FP forward from ``m0`` with the drift of ``u``; ``m`` supplies congestion."""


class Sequential:
    """Time marching: ``Nt`` implicit steps backward (HJB, Newton) then forward (FP)."""

    name = "sequential"

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None) -> HJBResult:
        xp = disc.xp
        f = disc.running_cost(m[1:])
        w = disc.weight(m[1:])
        u_next = disc.terminal_cost(m[-1])
        levels, jacobians = [u_next], []
        newton, worst = 0, 0.0
        for n in range(disc.Nt - 1, -1, -1):
            guess = None if u_guess is None else u_guess[n]
            u_next, iterations, residual = disc.hjb_step(u_next, w[n], f[n], n, guess)
            levels.append(u_next)
            jacobians.append(disc.step_jacobian)
            newton += iterations
            worst = max(worst, residual)
        u = xp.stack(levels[::-1])
        disc.keep_fp_matrices(u, m, jacobians[::-1])  # the FP matrices of (u, m), for free
        return HJBResult(u, newton, worst)

    def fp(self, disc: DiscreteMFG, u: Any, m: Any) -> Any:
        matrices = disc.fp_step_matrices(u, m)
        levels = [disc.m0]
        for n in range(disc.Nt):
            # the previous coupling iterate starts the 2D Krylov solves (1D solves are direct)
            levels.append(disc.fp_step(matrices.at(n), levels[-1], guess=m[n + 1]))
        return disc.xp.stack(levels)


from mfg_rl.solvers.jax_scan import JaxScan  # noqa: E402  (imports jax only when constructed)
from mfg_rl.solvers.parareal import Parareal  # noqa: E402  (builds on HJBResult)
from mfg_rl.solvers.spacetime import GlobalKrylov, GlobalSpacetime  # noqa: E402  (builds on HJBResult)

STRATEGIES: dict[str, type] = {
    "sequential": Sequential, "global": GlobalSpacetime, "global-krylov": GlobalKrylov, "jax-scan": JaxScan,
    "parareal": Parareal,
}
