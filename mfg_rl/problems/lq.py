"""Linear-quadratic MFG in 1D with its closed-form equilibrium.

    dX = alpha dt + sigma dW,   cost  E[ int_0^T alpha^2/2 + q/2 (X - kappa mean(m_t))^2 dt
                                         + q_T/2 (X_T - kappa_T mean(m_T))^2 ],
    m0 = N(mu0, v0).

Derivation (H = p^2/2, nu = sigma^2/2). With the ansatz u = a x^2/2 + b x + c the HJB
splits by powers of x:

    a' = a^2 - q,                 a(T) = q_T
    b' = a b + q kappa xbar,      b(T) = -q_T kappa_T xbar(T)
    c' = -nu a + b^2/2 - q kappa^2 xbar^2 / 2,   c(T) = q_T kappa_T^2 xbar(T)^2 / 2

and the optimal control alpha = -(a x + b) keeps m Gaussian N(xbar, v) with
xbar' = -(a xbar + b), v' = -2 a v + sigma^2. Both a and xbar are built from one kind of
function, f(tau) = cosh(rho tau) + gamma sinh(rho tau)/rho (cos/sin when rho^2 < 0):

    a(t) = phi'(T - t) / phi(T - t),   phi = f with rho^2 = q, gamma = q_T
    xbar(t) = mu0 G(T - t) / G(T),     G = f with rho^2 = r^2 = q (1 - kappa), gamma = k = q_T (1 - kappa_T)

(the mean control y = a xbar + b satisfies y' = -q (1 - kappa) xbar, so xbar'' = r^2 xbar,
xbar(0) = mu0, xbar'(T) + k xbar(T) = 0), and with s = sqrt(q), Psi(t) = sinh(s t)/s,

    v(t) = (phi(T-t)/phi(T))^2 v0 + sigma^2 phi(T-t) Psi(t) / phi(T)
    c(t) = c(T) + nu log phi(T-t) + [xbar b]_t^T / 2
                - kappa/4 ([xbar xbar']_t^T - (k^2 - r^2) xbar(T)^2 (T - t))

(c by parts: b^2 = xbar'^2 + (a xbar^2)' + q xbar^2 and xbar'^2 - r^2 xbar^2 is constant).
Stability for any horizon: for rho^2 >= 0 every f is evaluated as f(tau) = e^{rho tau} F(tau)
with F = 1 + (gamma - rho) D, f' = e^{rho tau} (gamma + rho (rho - gamma) D) and
D(tau) = (1 - e^{-2 rho tau})/(2 rho) in [0, tau]; the growing factors e^{rho tau} cancel in
every ratio above, so nothing overflows. The equilibrium is unique unless G(T) = 0, which is
rejected (as is a G(T) too close to 0 to evaluate in float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.checks import check_real
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.registry import register


def _scaled_robin(rho2: float, gamma: float, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``f(tau) = cosh(rho tau) + gamma sinh(rho tau)/rho`` without overflow.

    Returns ``(F, dF, rho)`` with ``f = e^{rho tau} F`` and ``f' = e^{rho tau} dF``; for
    ``rho^2 < 0`` (``f = cos(w tau) + gamma sin(w tau)/w``) the scale ``rho`` is 0. ``tau >= 0``
    array of any shape; ``F`` and ``dF`` have its shape.
    """
    tau = np.asarray(tau, dtype=float)
    if rho2 < 0:
        w = math.sqrt(-rho2)
        cos, sin = np.cos(w * tau), np.sin(w * tau)
        return cos + gamma * sin / w, -w * sin + gamma * cos, 0.0
    rho = math.sqrt(rho2)
    D = tau.copy() if rho == 0.0 else -np.expm1(-2.0 * rho * tau) / (2.0 * rho)
    return 1.0 + (gamma - rho) * D, gamma + rho * (rho - gamma) * D, rho


@dataclass(frozen=True)
class LQExact:
    """Closed-form equilibrium of ``lq-1d`` on the whole line (see the module docstring).

    All methods are vectorised over ``t`` (and ``x``) numpy arrays and finite for any horizon.

    Example:
        >>> ex = LQExact(q=1.0, q_T=1.0, kappa=0.5, kappa_T=0.5, sigma=0.5, mu0=1.0, v0=0.1, T=1.0)
        >>> round(float(ex.variance(0.0)), 12), round(float(ex.mean(0.0)), 12)
        (0.1, 1.0)
    """

    q: float
    q_T: float
    kappa: float
    kappa_T: float
    sigma: float
    mu0: float
    v0: float
    T: float

    def __post_init__(self) -> None:
        G_T, _, _ = self._mean_shape(np.asarray(self.T))
        r2, k = self._r2_k()
        if r2 < 0:
            scale = 1.0 + abs(k) / math.sqrt(-r2)
        else:
            r = math.sqrt(r2)
            D_T = self.T if r == 0.0 else -math.expm1(-2.0 * r * self.T) / (2.0 * r)
            scale = 1.0 + abs(k - r) * D_T
        if not abs(float(G_T)) > 1e-12 * scale:
            raise ValueError(
                "these parameters admit no unique LQ equilibrium, or one too close to that case to "
                "evaluate in float64 (G(T) = cosh(r T) + k sinh(r T)/r ~ 0 with r^2 = q (1 - kappa), "
                "k = q_T (1 - kappa_T)); change kappa, kappa_T or T"
            )
        times = np.array([0.0, 0.5 * self.T, self.T])
        try:
            with np.errstate(all="ignore"):
                values = [self.a(times), self.b(times), self.c(times), self.mean(times), self.variance(times)]
            finite = all(bool(np.all(np.isfinite(v))) for v in values)
        except (OverflowError, ZeroDivisionError):
            finite = False
        if not finite:
            raise ValueError(f"the closed form overflows float64 at {self!r}; use parameters closer to 1")

    # closed-form building blocks -----------------------------------------------------
    def _r2_k(self) -> tuple[float, float]:
        """``r^2 = q (1 - kappa)`` and ``k = q_T (1 - kappa_T)`` of the mean's equation."""
        return self.q * (1.0 - self.kappa), self.q_T * (1.0 - self.kappa_T)

    def _mean_shape(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``G(tau) = e^{r tau} F``, ``G'(tau) = e^{r tau} dF``: returns ``(F, dF, r)``."""
        r2, k = self._r2_k()
        return _scaled_robin(r2, k, tau)

    def _value_shape(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``phi(tau) = e^{s tau} F``, ``phi'(tau) = e^{s tau} dF``: returns ``(F, dF, s)``."""
        return _scaled_robin(self.q, self.q_T, tau)

    def a(self, t: np.ndarray) -> np.ndarray:
        """Quadratic coefficient of ``u``: solves ``a' = a^2 - q``, ``a(T) = q_T``."""
        F, dF, _ = self._value_shape(self.T - np.asarray(t, dtype=float))
        return dF / F

    def mean(self, t: np.ndarray) -> np.ndarray:
        """Mean of ``m(t)``: ``xbar = mu0 G(T - t) / G(T)``."""
        t = np.asarray(t, dtype=float)
        F, _, r = self._mean_shape(self.T - t)
        F_T, _, _ = self._mean_shape(np.asarray(self.T))
        return self.mu0 * np.exp(-r * t) * F / F_T

    def _mean_rate(self, t: np.ndarray) -> np.ndarray:
        """``xbar'(t) = -mu0 G'(T - t) / G(T)``."""
        t = np.asarray(t, dtype=float)
        _, dF, r = self._mean_shape(self.T - t)
        F_T, _, _ = self._mean_shape(np.asarray(self.T))
        return -self.mu0 * np.exp(-r * t) * dF / F_T

    def b(self, t: np.ndarray) -> np.ndarray:
        """Linear coefficient of ``u``: ``b = -xbar' - a xbar``."""
        return -self._mean_rate(t) - self.a(t) * self.mean(t)

    def variance(self, t: np.ndarray) -> np.ndarray:
        """Variance of ``m(t)``: ``v' = -2 a v + sigma^2``, ``v(0) = v0``."""
        t = np.asarray(t, dtype=float)
        F_tau, _, s = self._value_shape(self.T - t)
        F_T, _, _ = self._value_shape(np.asarray(self.T))
        D_t = t if s == 0.0 else -np.expm1(-2.0 * s * t) / (2.0 * s)
        return np.exp(-2.0 * s * t) * (F_tau / F_T) ** 2 * self.v0 + self.sigma**2 * F_tau * D_t / F_T

    def c(self, t: np.ndarray) -> np.ndarray:
        """Constant term of ``u`` in closed form (module docstring); shape ``atleast_1d(t)``."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        r2, k = self._r2_k()
        F_tau, _, s = self._value_shape(self.T - t)
        log_phi = s * (self.T - t) + np.log(F_tau)
        xbar, rate, b = self.mean(t), self._mean_rate(t), self.b(t)
        xbar_T, rate_T, b_T = float(self.mean(self.T)), float(self._mean_rate(self.T)), float(self.b(self.T))
        c_T = 0.5 * self.q_T * self.kappa_T**2 * xbar_T**2
        by_parts = 0.5 * (xbar_T * b_T - xbar * b)
        energy = (xbar_T * rate_T - xbar * rate) - (k**2 - r2) * xbar_T**2 * (self.T - t)
        nu = 0.5 * self.sigma**2
        return c_T + nu * log_phi + by_parts - 0.25 * self.kappa * energy

    def u(self, t: float, x: np.ndarray) -> np.ndarray:
        """Value function ``u(t, x) = a x^2/2 + b x + c`` at one time ``t``."""
        x = np.asarray(x, dtype=float)
        return 0.5 * self.a(t) * x**2 + self.b(t) * x + self.c(t)[0]

    def m(self, t: float, x: np.ndarray) -> np.ndarray:
        """Density ``N(mean(t), variance(t))`` at one time ``t``."""
        x = np.asarray(x, dtype=float)
        v = self.variance(t)
        return np.exp(-((x - self.mean(t)) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)

    def control(self, t: float, x: np.ndarray) -> np.ndarray:
        """Equilibrium feedback ``alpha(t, x) = -(a x + b)``."""
        return -(self.a(t) * np.asarray(x, dtype=float) + self.b(t))


@dataclass(frozen=True)
class DistanceToMean:
    """LQ cost ``weight/2 (x - attraction mean(m))^2`` with ``mean(m) = sum_i x_i m_i h``.

    ``h`` is the cell width; a picklable ``CostFn`` (``lq-1d``'s running and terminal costs).
    """

    weight: float
    attraction: float
    h: float

    def __call__(self, x: Any, m: Any) -> Any:
        mean = (x * m).sum() * self.h
        return 0.5 * self.weight * (x - self.attraction * mean) ** 2


@register("lq-1d")
def lq_1d(
    Nx: int = 201,
    Nt: int = 50,
    *,
    q: float = 1.0,
    q_T: float = 0.5,
    kappa: float = 0.5,
    kappa_T: float = 0.5,
    sigma: float = 0.5,
    mu0: float = 1.0,
    v0: float = 0.1,
    T: float = 1.0,
    L: float = 4.0,
) -> MFGProblem:
    """Linear-quadratic MFG on ``[-L, L]`` (no-flux walls) with a closed-form equilibrium.

    Running cost ``q/2 (x - kappa mean(m_t))^2 + alpha^2/2``, terminal cost
    ``q_T/2 (x - kappa_T mean(m_T))^2``, dynamics ``dX = alpha dt + sigma dW``,
    ``m0 = N(mu0, v0)``. ``problem.exact`` is an ``LQExact`` (whole-line solution; the
    walls at ``+-L`` are far enough that the density there is negligible for the defaults).

    Args:
        Nx, Nt: cells and time steps. q, q_T >= 0: running and terminal weights.
        kappa, kappa_T: attraction to the crowd's mean (real). sigma >= 0: noise.
        mu0: initial mean, ``|mu0| < L``. v0 > 0: initial variance. T > 0: horizon.
        L > 0: half-width of the box.

    Example:
        >>> p = lq_1d(Nx=101, Nt=20)
        >>> p.grid.shape, round(float(p.exact.mean(0.0)), 6)
        ((101,), 1.0)
    """
    Nx, Nt = check_cells("Nx", Nx), check_cells("Nt", Nt, 1)
    q, q_T = check_real("q", q, 0.0), check_real("q_T", q_T, 0.0)
    kappa, kappa_T = check_real("kappa", kappa), check_real("kappa_T", kappa_T)
    sigma = check_real("sigma", sigma, 0.0)
    v0 = check_real("v0", v0, 0.0, open_low=True)
    T = check_real("T", T, 0.0, open_low=True)
    L = check_real("L", L, 0.0, open_low=True)
    mu0 = check_real("mu0", mu0)
    if abs(mu0) >= L:
        raise ValueError(f"mu0 must lie inside the box (-L, L) = ({-L}, {L}), got {mu0}")
    exact = LQExact(q=q, q_T=q_T, kappa=kappa, kappa_T=kappa_T, sigma=sigma, mu0=mu0, v0=v0, T=T)
    grid = Grid(bounds=[(-L, L)], shape=Nx, boundary="no_flux")
    h = grid.spacing[0]
    m0 = np.exp(-((grid.coordinates()[0] - mu0) ** 2) / (2 * v0))

    params = dict(Nx=Nx, Nt=Nt, q=q, q_T=q_T, kappa=kappa, kappa_T=kappa_T, sigma=sigma,
                  mu0=mu0, v0=v0, T=T, L=L)
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=T, Nt=Nt),
        sigma=sigma,
        running_cost=DistanceToMean(q, kappa, h),
        terminal_cost=DistanceToMean(q_T, kappa_T, h),
        m0=normalised(m0, h, "v0"),
        hamiltonian=Hamiltonian(),
        name="lq-1d",
        params=params,
        exact=exact,
    )
