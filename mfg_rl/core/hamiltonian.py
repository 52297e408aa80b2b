"""Hamiltonians of the form ``H(x, p, m) = |p|^2 / (2 lambda c(m))``.

``lambda`` is the control cost (running cost ``lambda c(m) |alpha|^2 / 2``) and
``c(m) = (1 + congestion * m)^exponent`` slows agents down in crowded places
(congestion; ``congestion = 0`` gives the plain quadratic Hamiltonian). The optimal
control is ``alpha*(x, p) = -dH/dp = -p / (lambda c(m))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Hamiltonian:
    """Quadratic Hamiltonian with optional congestion.

    Args:
        control_cost: ``lambda > 0``, weight of the kinetic cost ``lambda |alpha|^2 / 2``.
        congestion: ``>= 0``, strength of the crowd's slowing; 0 means none.
        exponent: ``> 0``, power of the congestion factor ``(1 + congestion * m)^exponent``.

    Example:
        >>> h = Hamiltonian(control_cost=2.0)
        >>> h(0.0, 4.0, 0.0), h.optimal_control(0.0, 4.0, 0.0)
        (4.0, -2.0)
    """

    control_cost: float = 1.0
    congestion: float = 0.0
    exponent: float = 1.0

    def __post_init__(self) -> None:
        for name, value, lowest, strict in (
            ("control_cost", self.control_cost, 0.0, True),
            ("congestion", self.congestion, 0.0, False),
            ("exponent", self.exponent, 0.0, True),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"Hamiltonian {name} must be a real number, got {value!r}")
            if not math.isfinite(value) or (value <= lowest if strict else value < lowest):
                bound = "> 0" if strict else ">= 0"
                raise ValueError(f"Hamiltonian {name} must be finite and {bound}, got {value}")
            object.__setattr__(self, name, float(value))

    @property
    def has_congestion(self) -> bool:
        return self.congestion > 0.0

    def weight(self, m: Any) -> Any:
        """``w(m) = 1 / (lambda c(m))``, so that ``H = w |p|^2 / 2``. Same shape as ``m``."""
        if not self.has_congestion:
            return 0.0 * m + 1.0 / self.control_cost
        return 1.0 / (self.control_cost * (1.0 + self.congestion * m) ** self.exponent)

    def __call__(self, x: Any, p: Any, m: Any) -> Any:
        """``H(x, p, m)``; ``p`` is an array (1D) or a tuple of per-axis components."""
        return 0.5 * self.weight(m) * _squared_norm(p)

    def dH_dp(self, x: Any, p: Any, m: Any) -> Any:
        """``dH/dp = w(m) p`` (a tuple of components when ``p`` is one)."""
        w = self.weight(m)
        if isinstance(p, tuple):
            return tuple(w * pk for pk in p)
        return w * p

    def optimal_control(self, x: Any, p: Any, m: Any) -> Any:
        """``alpha*(x, p) = -dH/dp``."""
        q = self.dH_dp(x, p, m)
        return tuple(-qk for qk in q) if isinstance(q, tuple) else -q

    def lagrangian(self, x: Any, alpha: Any, m: Any) -> Any:
        """Running cost of a control, ``L = |alpha|^2 / (2 w(m))``; the Legendre dual of H."""
        return 0.5 * _squared_norm(alpha) / self.weight(m)


def _squared_norm(p: Any) -> Any:
    if isinstance(p, tuple):
        return sum(pk * pk for pk in p)
    return p * p
