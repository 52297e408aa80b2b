"""Baselines a learned policy must beat: the zero control and the best constant drift.

A leaderboard states exploitability relative to the better of the two: on the exit games a
single constant drift already removes most of the zero control's exploitability, so a ratio
to the zero control alone flatters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mfg_rl.backends import Backend
from mfg_rl.benchmark.exploitability import evaluate
from mfg_rl.checks import check_int, check_real
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.equilibrium import Equilibrium
from mfg_rl.solvers.solve import solve

MAX_SPEED = 1e6
"""Largest ``max_action``: policies answer in float32 (``evaluate``'s convention), and a drift of
1e6 already costs ``1e12 / 2`` per unit time."""


class ConstantPolicy:
    """``policy(t, x) = alpha``: the same drift everywhere and always (picklable).

    Example:
        >>> import torch
        >>> ConstantPolicy([0.5])(torch.zeros(3), torch.zeros(3)).tolist()
        [0.5, 0.5, 0.5]
    """

    def __init__(self, alpha: Sequence[float]) -> None:
        self.alpha = tuple(float(a) for a in alpha)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 1:
            return torch.full_like(x, self.alpha[0])
        return x.new_tensor(self.alpha).expand_as(x)


@dataclass(frozen=True)
class Baselines:
    """Exploitability of the zero control and of the best constant drift found.

    Attributes:
        zero: exploitability of ``alpha = 0``.
        constant: the best constant drift, one entry per axis, in ``[-max_action, max_action]^d``.
        constant_exploitability: its exploitability (``<= zero``: zero is one of the candidates).
        evaluations: policies scored to find it.
    """

    zero: float
    constant: tuple[float, ...]
    constant_exploitability: float
    evaluations: int

    @property
    def best(self) -> float:
        """The better (lower) of the two exploitabilities."""
        return min(self.zero, self.constant_exploitability)

    def as_dict(self) -> dict[str, Any]:
        """Plain types, for JSON."""
        return {"zero": self.zero, "constant": list(self.constant),
                "constant_exploitability": self.constant_exploitability,
                "evaluations": self.evaluations, "best": self.best}


def baselines(
    eq_or_problem: Equilibrium | MFGProblem,
    max_action: float,
    *,
    points: int | None = None,
    backend: str | Backend | None = None,
) -> Baselines:
    """Score the zero control and search the constant drift of least exploitability.

    ``min over c in [-A, A]^d of E(c)``, ``E(c)`` the exploitability of ``alpha(t, x) = c``
    (``mfg_rl.benchmark.evaluate``): every point of a grid of ``points`` values per axis
    (odd, so zero is one), then a local refinement around the best grid point within one grid
    step (bounded Brent in 1D, bounded Nelder-Mead in 2D). The result is the best of every
    policy scored, so it is no worse than the zero control or any grid point.

    Args:
        eq_or_problem: an ``Equilibrium``, or an ``MFGProblem`` solved first (cached).
        max_action: ``A`` in ``(0, MAX_SPEED]``, the bound of each component of the drift (an env's
            ``max_action``).
        points: grid values per axis, odd, in [3, 101] (default 17 in 1D, 7 in 2D).
        backend: where ``evaluate`` runs its linear algebra (default: the best installed).

    Example:
        >>> from mfg_rl import problems
        >>> b = baselines(problems.make("lq-1d", Nx=51, Nt=10), 4.0, points=5)  # doctest: +SKIP
        >>> b.constant_exploitability <= b.zero                                   # doctest: +SKIP
        True
    """
    from scipy import optimize

    if not isinstance(eq_or_problem, (Equilibrium, MFGProblem)):
        raise TypeError(
            f"eq_or_problem must be an Equilibrium or an MFGProblem, got {type(eq_or_problem).__name__}"
        )
    A = check_real("max_action", max_action, 0.0, MAX_SPEED, open_low=True)
    eq = eq_or_problem
    if isinstance(eq, MFGProblem):
        eq = solve(eq, backend=backend, progress=False, cache=True)
    ndim = eq.problem.ndim
    if points is None:
        points = 17 if ndim == 1 else 7
    points = check_int("points", points, 3, 101)
    if points % 2 == 0:
        raise ValueError(f"points must be odd (so that zero is on the grid), got {points}")

    scored: dict[tuple[float, ...], float] = {}

    def exploitability(c: Sequence[float]) -> float:
        key = tuple(float(np.clip(v, -A, A)) for v in c)
        if key not in scored:
            scored[key] = float(evaluate(ConstantPolicy(key), eq, backend=backend)["exploitability"])
        return scored[key]

    axis = np.linspace(-A, A, points)
    step = float(axis[1] - axis[0])
    zero = exploitability((0.0,) * ndim)
    for c in itertools.product(axis, repeat=ndim):
        exploitability(c)
    start = min(scored, key=scored.__getitem__)
    box = [(max(-A, s - step), min(A, s + step)) for s in start]
    if ndim == 1:
        optimize.minimize_scalar(lambda c: exploitability((c,)), bounds=box[0], method="bounded",
                                 options={"xatol": 1e-4 * A})
    else:
        simplex = np.array([start, *(np.add(start, 0.5 * step * np.eye(ndim)[k]) for k in range(ndim))])
        optimize.minimize(exploitability, np.array(start), method="Nelder-Mead", bounds=box,
                          options={"initial_simplex": np.clip(simplex, -A, A), "xatol": 1e-4 * A,
                                   "fatol": 1e-8, "maxfev": 25 * ndim})
    best = min(scored, key=scored.__getitem__)
    return Baselines(zero=zero, constant=best, constant_exploitability=scored[best], evaluations=len(scored))
