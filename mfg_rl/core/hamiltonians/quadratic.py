"""Quadratic Hamiltonian ``H(x, p, m) = |p|^2 / (2 lambda(x) c(m))``, with optional congestion.

``lambda`` is the control cost (running cost ``lambda c(m) |alpha|^2 / 2``), a number or a
function of the position; ``c(m) = (1 + congestion * m)^exponent`` slows agents down in
crowded places (``congestion = 0`` gives the plain quadratic Hamiltonian). With
``w = 1 / (lambda c(m))``: ``psi(s) = w s / 2``, ``g = w``, ``alpha* = -w p``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.checks import check_real
from mfg_rl.core.hamiltonians.base import IsotropicHamiltonian, function_digest


@dataclass(frozen=True)
class Hamiltonian(IsotropicHamiltonian):
    """Quadratic Hamiltonian with optional congestion and a state-dependent control cost.

    Args:
        control_cost: ``lambda > 0``, weight of the kinetic cost ``lambda |alpha|^2 / 2``; a
            number, or a function ``lambda(x)`` of the nodes (as the costs receive them:
            an array in 1D, a tuple of arrays in 2D) returning positive values.
        congestion: ``>= 0``, strength of the crowd's slowing; 0 means none.
        exponent: ``> 0``, power of the congestion factor ``(1 + congestion * m)^exponent``.

    Example:
        >>> h = Hamiltonian(control_cost=2.0)
        >>> h(0.0, 4.0, 0.0), h.optimal_control(0.0, 4.0, 0.0)
        (4.0, -2.0)
    """

    control_cost: float | Callable[[Any], Any] = 1.0
    congestion: float = 0.0
    exponent: float = 1.0

    def __post_init__(self) -> None:
        if not callable(self.control_cost):
            object.__setattr__(self, "control_cost", check_real("Hamiltonian control_cost", self.control_cost,
                                                                0.0, open_low=True))
        object.__setattr__(self, "congestion", check_real("Hamiltonian congestion", self.congestion, 0.0))
        object.__setattr__(self, "exponent", check_real("Hamiltonian exponent", self.exponent, 0.0,
                                                        open_low=True))
        if not callable(self.control_cost):
            self.check_finite()

    @property
    def has_congestion(self) -> bool:
        return self.congestion > 0.0

    @property
    def depends_on_m(self) -> bool:
        return self.has_congestion

    @property
    def is_quadratic(self) -> bool:
        return True

    def _lambda(self, x: Any) -> Any:
        return self.control_cost(x) if callable(self.control_cost) else self.control_cost

    def weight(self, m: Any, x: Any = None) -> Any:
        """``w(x, m) = 1 / (lambda(x) c(m))``, so that ``H = w |p|^2 / 2``. Broadcasts with ``m``
        (``x`` is needed only for a state-dependent ``control_cost``)."""
        if callable(self.control_cost) and x is None:
            raise ValueError("this Hamiltonian's control_cost depends on x: pass the positions x")
        lam = self._lambda(x)
        if not self.has_congestion:
            return 0.0 * m + 1.0 / lam
        return 1.0 / (lam * (1.0 + self.congestion * m) ** self.exponent)

    def bind(self, x: Any, m: Any) -> Callable[[Any], tuple[Any, Any]]:
        """``s -> (w s / 2, w)`` with ``w(x, m)`` computed once."""
        w = self.speed(x, 0.0, m)
        return lambda s: (0.5 * w * s, w)

    def value_sq(self, x: Any, s: Any, m: Any) -> Any:
        return 0.5 * self.speed(x, s, m) * s

    def speed(self, x: Any, s: Any, m: Any) -> Any:
        if not self.has_congestion and not callable(self.control_cost):
            return 1.0 / self.control_cost  # a float: no array work on the hot path
        return self.weight(m, x)

    def speed_ds(self, x: Any, s: Any, m: Any) -> Any:
        return 0.0 * (s + m)

    def speed_dm(self, x: Any, s: Any, m: Any) -> Any:
        """``w'(m) = -exponent congestion w / (1 + congestion m)``."""
        if not self.has_congestion:
            return 0.0 * (s + m)
        return -self.exponent * self.congestion * self.weight(m, x) / (1.0 + self.congestion * m) + 0.0 * s

    def value_dm(self, x: Any, s: Any, m: Any) -> Any:
        return 0.5 * s * self.speed_dm(x, s, m)

    def lagrangian_sq(self, x: Any, a2: Any, m: Any) -> Any:
        """``L = |alpha|^2 / (2 w)``."""
        if not self.has_congestion and not callable(self.control_cost):
            return (0.5 * self.control_cost) * a2  # one operation on the envs' hot path
        return 0.5 * a2 / self.weight(m, x)

    def spec(self, points: Any) -> list[Any]:
        if callable(self.control_cost):
            return ["quadratic", function_digest(self.control_cost, points), self.congestion, self.exponent]
        return [self.control_cost, self.congestion, self.exponent]  # as before the Hamiltonian family

    def check(self, points: Any, m: np.ndarray) -> None:
        if callable(self.control_cost):
            values = np.asarray(self.control_cost(points), dtype=np.float64)
            if not np.all(np.isfinite(values)) or np.any(values <= 0.0):
                raise ValueError("Hamiltonian control_cost(x) must be finite and > 0 at every node, "
                                 f"got min {np.nanmin(values):.3g}")
