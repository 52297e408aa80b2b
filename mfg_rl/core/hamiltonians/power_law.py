"""Power-law Hamiltonian ``H = lambda^(1-q) |p|^q / q``, dual to the cost ``L = lambda |alpha|^q' / q'``.

``q > 1`` and ``1/q + 1/q' = 1``; ``q = 2`` is the quadratic Hamiltonian. With
``c = lambda^(1-q)``: ``psi(s) = c s^(q/2) / q``, ``g = c s^(q/2 - 1)``, so
``|alpha*| = c |p|^(q-1)``. For ``q < 2`` the speed factor blows up at ``p = 0`` while
``g p`` stays continuous; the scheme uses ``g p`` (and ``g = 0`` where ``p = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mfg_rl.checks import check_real
from mfg_rl.core.hamiltonians.base import IsotropicHamiltonian, safe_power


@dataclass(frozen=True)
class PowerLawHamiltonian(IsotropicHamiltonian):
    """``H(p) = lambda^(1-q) |p|^q / q``: control cost ``lambda |alpha|^q' / q'``, ``q' = q/(q-1)``.

    Args:
        power: ``q > 1``; larger ``q`` makes fast moves cheaper relative to slow ones.
        control_cost: ``lambda > 0``.

    Example:
        >>> h = PowerLawHamiltonian(power=3.0)
        >>> float(h(0.0, 2.0, 0.0)), float(h.optimal_control(0.0, 2.0, 0.0))
        (2.6666666666666665, -4.0)
    """

    power: float = 2.0
    control_cost: float = 1.0

    def __post_init__(self) -> None:
        for name, lowest in (("power", 1.0), ("control_cost", 0.0)):
            value = check_real(f"PowerLawHamiltonian {name}", getattr(self, name), lowest, open_low=True)
            object.__setattr__(self, name, value)
        self.check_finite()

    @property
    def _c(self) -> float:
        return self.control_cost ** (1.0 - self.power)

    @property
    def is_quadratic(self) -> bool:
        return self.power == 2.0

    def value_sq(self, x: Any, s: Any, m: Any) -> Any:
        return (self._c / self.power) * safe_power(s, 0.5 * self.power) + 0.0 * m

    def speed(self, x: Any, s: Any, m: Any) -> Any:
        return self._c * safe_power(s, 0.5 * self.power - 1.0) + 0.0 * m

    def speed_ds(self, x: Any, s: Any, m: Any) -> Any:
        return self._c * (0.5 * self.power - 1.0) * safe_power(s, 0.5 * self.power - 2.0) + 0.0 * m

    def lagrangian_sq(self, x: Any, a2: Any, m: Any) -> Any:
        dual = self.power / (self.power - 1.0)
        return (self.control_cost / dual) * safe_power(a2, 0.5 * dual) + 0.0 * m

    def spec(self, points: Any) -> list[Any]:
        return ["power-law", self.power, self.control_cost]
