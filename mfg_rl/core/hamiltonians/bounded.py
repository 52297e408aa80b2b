"""Bounded controls: quadratic cost ``lambda |alpha|^2 / 2`` with speeds ``|alpha| <= a_max``.

``H(p) = sup_{|alpha| <= a} (-alpha.p - lambda |alpha|^2 / 2)`` is quadratic for slow
moves and linear beyond (Huber-like): with ``s = |p|^2`` and ``s_* = (lambda a)^2``

    psi(s) = s / (2 lambda)            for s <= s_*,     a sqrt(s) - lambda a^2 / 2   else,
    g      = 1 / lambda                                  a / sqrt(s),

so ``|alpha*| = min(|p| / lambda, a)``: the walking speed of crowd models saturates.
``L = +inf`` beyond ``a`` (such controls are not admissible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mfg_rl.checks import check_real
from mfg_rl.core.hamiltonians.base import IsotropicHamiltonian, namespace, safe_power


@dataclass(frozen=True)
class BoundedControlHamiltonian(IsotropicHamiltonian):
    """Quadratic control cost with a maximal speed ``a_max``: ``|alpha*| = min(|p| / lambda, a_max)``.

    Args:
        max_speed: ``a_max > 0``, the largest admissible ``|alpha|``.
        control_cost: ``lambda > 0``, weight of ``lambda |alpha|^2 / 2``.

    Example:
        >>> h = BoundedControlHamiltonian(max_speed=1.0)
        >>> float(h.optimal_control(0.0, 0.5, 0.0)), float(h.optimal_control(0.0, 3.0, 0.0))
        (-0.5, -1.0)
    """

    max_speed: float = 1.0
    control_cost: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_speed", "control_cost"):
            value = check_real(f"BoundedControlHamiltonian {name}", getattr(self, name), 0.0, open_low=True)
            object.__setattr__(self, name, value)
        self.check_finite()

    @property
    def _knee(self) -> float:
        """``s_* = (lambda a)^2``: where the speed saturates."""
        knee = self.control_cost * self.max_speed
        return knee * knee  # inf, not OverflowError, when it does not fit: the speed then never saturates

    def value_sq(self, x: Any, s: Any, m: Any) -> Any:
        xp, a, lam = namespace(s), self.max_speed, self.control_cost
        slow = s <= self._knee
        return xp.where(slow, s / (2.0 * lam), a * safe_power(s, 0.5) - 0.5 * lam * a * a) + 0.0 * m

    def speed(self, x: Any, s: Any, m: Any) -> Any:
        xp = namespace(s)
        slow = s <= self._knee
        fast = self.max_speed * safe_power(s, -0.5)
        return xp.where(slow, 1.0 / self.control_cost + 0.0 * s, fast) + 0.0 * m

    def speed_ds(self, x: Any, s: Any, m: Any) -> Any:
        xp = namespace(s)
        slow = s <= self._knee
        return xp.where(slow, 0.0 * s, -0.5 * self.max_speed * safe_power(s, -1.5)) + 0.0 * m

    def lagrangian_sq(self, x: Any, a2: Any, m: Any) -> Any:
        xp = namespace(a2)
        allowed = a2 <= self.max_speed * self.max_speed * (1.0 + 1e-6)  # float32 clamps land within 1e-7
        return xp.where(allowed, 0.5 * self.control_cost * a2, float("inf") + 0.0 * a2) + 0.0 * m

    def spec(self, points: Any) -> list[Any]:
        return ["bounded-control", self.max_speed, self.control_cost]
