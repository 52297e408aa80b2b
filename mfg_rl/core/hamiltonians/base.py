"""Isotropic convex Hamiltonians ``H(x, p, m) = psi(x, |p|^2, m)``: the family the scheme discretises.

The upwind scheme (``mfg_rl.solvers.numerical_hamiltonian``) needs ``H`` only through
``psi(x, s, m)`` of the squared slope ``s = |p|^2`` and the *speed factor*
``g = 2 dpsi/ds``, with which

    dH/dp = g p,        alpha*(x, p) = -g(x, |p|^2, m) p,        |alpha*| = g |p|.

Convexity in ``p`` means ``psi`` non-decreasing and ``r -> psi(r^2)`` convex; then the
numerical Hamiltonian ``psi(x, S_h, m)`` with ``S_h`` the upwind squared slope is monotone.
A subclass gives ``value_sq``, ``speed``, ``speed_ds`` and ``lagrangian_sq`` (and the ``m``
derivatives when it depends on the crowd); ``__call__``, ``dH_dp``, ``optimal_control`` and
``lagrangian`` follow here, written once. Arrays of any namespace (numpy, torch, jax);
``p`` and ``alpha`` are an array (1D) or a tuple of per-axis components.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

CHECK_RADII = np.concatenate([[0.0], np.geomspace(1e-3, 1e2, 24)])  # |p| where H is checked

class IsotropicHamiltonian:
    """Base of every Hamiltonian of the library: ``H = psi(x, |p|^2, m)``, convex in ``p``.

    Attributes:
        max_speed: ``sup |alpha*|`` over all ``p`` (a float), or None when controls are unbounded.
    """

    max_speed: float | None = None

    # -- what a subclass gives --------------------------------------------------------
    def value_sq(self, x: Any, s: Any, m: Any) -> Any:
        """``psi(x, s, m) = H`` at ``|p|^2 = s``; ``s`` and ``m`` broadcast together."""
        raise NotImplementedError

    def speed(self, x: Any, s: Any, m: Any) -> Any:
        """``g = 2 dpsi/ds >= 0``, so that ``dH/dp = g p``; may be a float when constant."""
        raise NotImplementedError

    def speed_ds(self, x: Any, s: Any, m: Any) -> Any:
        """``dg/ds`` (0 for quadratic ``H``): the curvature of ``H`` beyond its quadratic part."""
        raise NotImplementedError

    def lagrangian_sq(self, x: Any, a2: Any, m: Any) -> Any:
        """``L`` at ``|alpha|^2 = a2``: the Legendre dual ``sup_p (-alpha.p - H)``."""
        raise NotImplementedError

    @property
    def depends_on_m(self) -> bool:
        """Whether ``H`` depends on the crowd (congestion); then ``value_dm``/``speed_dm`` matter."""
        return False

    @property
    def is_quadratic(self) -> bool:
        """``H`` quadratic in ``p`` (``speed_ds = 0``): the scheme's Hessian is then a stencil."""
        return False

    def value_dm(self, x: Any, s: Any, m: Any) -> Any:
        """``dpsi/dm`` (0 without congestion)."""
        return 0.0 * (s + m)

    def speed_dm(self, x: Any, s: Any, m: Any) -> Any:
        """``dg/dm`` (0 without congestion)."""
        return 0.0 * (s + m)

    def spec(self, points: Any) -> list[Any]:
        """A JSON-able description that changes whenever ``H`` does on the nodes ``points``
        (numpy, as the costs take them): part of the problem's fingerprint."""
        raise NotImplementedError

    def check(self, points: Any, m: np.ndarray) -> None:
        """Validate on the problem's nodes (numpy) and a sample crowd; ValueError when unfit."""

    def check_finite(self) -> None:
        """ValueError naming the parameters unless ``H``, its speed and the cost of the optimal
        control are finite float64 numbers for ``|p|`` in ``CHECK_RADII`` (0 to 100) and ``m`` in
        {0, 1}, and the optimal control is not 0 at ``|p| = 1`` (a constructor's last check)."""
        for m in (0.0, 1.0):
            try:
                with np.errstate(all="ignore"):
                    alpha = self.optimal_control(0.0, CHECK_RADII, m)
                    values = (self(0.0, CHECK_RADII, m), alpha, self.lagrangian(0.0, alpha, m))
                    finite = all(bool(np.all(np.isfinite(v))) for v in values)
                    moving = bool(np.all(self.speed(0.0, 1.0, m) > 0.0))
            except (OverflowError, ZeroDivisionError, FloatingPointError):
                finite = moving = False
            if not finite:
                raise ValueError(f"{self!r}: H, its optimal control or the control's cost overflows float64 "
                                 f"for |p| <= {CHECK_RADII[-1]:g} at m = {m:g}; use parameters closer to 1")
            if not moving:
                raise ValueError(f"{self!r}: the optimal control underflows to 0 at |p| = 1, m = {m:g} (H is "
                                 "numerically 0); use parameters closer to 1")

    # -- written once from the above ----------------------------------------------------
    def bind(self, x: Any, m: Any) -> Callable[[Any], tuple[Any, Any]]:
        """``s -> (psi, g)`` at fixed ``x`` and crowd ``m``: what one implicit step evaluates at
        every Newton iteration (a subclass may precompute the crowd's part once)."""
        return lambda s: (self.value_sq(x, s, m), self.speed(x, s, m))

    def __call__(self, x: Any, p: Any, m: Any) -> Any:
        """``H(x, p, m)``."""
        return self.value_sq(x, squared_norm(p), m)

    def dH_dp(self, x: Any, p: Any, m: Any) -> Any:
        """``dH/dp = g(x, |p|^2, m) p`` (a tuple of components when ``p`` is one)."""
        g = self.speed(x, squared_norm(p), m)
        return tuple(g * pk for pk in p) if isinstance(p, tuple) else g * p

    def optimal_control(self, x: Any, p: Any, m: Any) -> Any:
        """``alpha*(x, p, m) = -dH/dp``."""
        q = self.dH_dp(x, p, m)
        return tuple(-qk for qk in q) if isinstance(q, tuple) else -q

    def lagrangian(self, x: Any, alpha: Any, m: Any) -> Any:
        """Running cost of a control, ``L(x, alpha, m)``; ``+inf`` beyond ``max_speed``."""
        return self.lagrangian_sq(x, squared_norm(alpha), m)


def squared_norm(p: Any) -> Any:
    """``|p|^2`` of an array (1D) or a tuple of per-axis components."""
    if isinstance(p, tuple):
        return sum(pk * pk for pk in p)
    return p * p


def namespace(a: Any) -> Any:
    """The array namespace of ``a`` (numpy for Python scalars)."""
    if not hasattr(a, "shape"):
        return np
    from array_api_compat import array_namespace

    return array_namespace(a)


def safe_power(s: Any, exponent: float) -> Any:
    """``s^exponent`` for ``s > 0`` and 0 at ``s = 0`` (no 0 ** negative, no warning)."""
    xp = namespace(s)
    positive = s > 0.0
    base = xp.where(positive, s, 1.0 + 0.0 * s)
    return xp.where(positive, base**exponent, 0.0 * s)


def function_digest(function: Callable[[Any], Any], points: Any) -> str:
    """A hash of ``function(points)`` (a user function's values on the nodes, for fingerprints)."""
    values = np.ascontiguousarray(np.asarray(function(points), dtype=np.float64))
    return hashlib.sha256(values.tobytes()).hexdigest()[:20]

