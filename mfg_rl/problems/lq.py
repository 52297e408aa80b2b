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
xbar' = -(a xbar + b), v' = -2 a v + sigma^2. In closed form, with s = sqrt(q),
Psi(tau) = sinh(s tau)/s (tau when q = 0) and phi(tau) = cosh(s tau) + q_T Psi(tau):

    a(t) = phi'(T - t) / phi(T - t)
    v(t) = E(t)^2 [v0 + sigma^2 phi(T)^2 (Psi/phi |_{T-t}^{T})],   E(t) = phi(T - t) / phi(T)

(using W(phi, Psi) = 1, so that int dtau / phi^2 = Psi / phi). The mean control
y = a xbar + b satisfies y' = -q (1 - kappa) xbar, hence xbar'' = r^2 xbar with
r^2 = q (1 - kappa), xbar(0) = mu0, xbar'(T) + q_T (1 - kappa_T) xbar(T) = 0:
xbar = mu0 (C + beta S) with C, S the cosine/sine-type fundamental solutions, and
b = -xbar' - a xbar. Only c(t) needs a quadrature (64-point Gauss-Legendre of a smooth
integrand, accurate to round-off); everything else is evaluated in closed form.
The equilibrium is unique unless C(T) + k S(T) = 0, which is rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, check_real
from mfg_rl.problems.registry import register


@dataclass(frozen=True)
class LQExact:
    """Closed-form equilibrium of ``lq-1d`` on the whole line (see the module docstring).

    All methods are vectorised over ``t`` (and ``x``) numpy arrays.

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
        C, S, _ = self._fundamental(self.T)
        k = self.q_T * (1.0 - self.kappa_T)
        if abs(C + k * S) < 1e-12:
            raise ValueError(
                "these parameters admit no unique LQ equilibrium (C(T) + q_T (1 - kappa_T) S(T) = 0); "
                "change kappa, kappa_T or T"
            )

    # closed-form building blocks -----------------------------------------------------
    def _phi(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``phi(tau)``, ``phi'(tau)`` and ``Psi(tau)``."""
        tau = np.asarray(tau, dtype=float)
        s = math.sqrt(self.q)
        if s == 0.0:
            psi, cosh, ds = tau, np.ones_like(tau), np.zeros_like(tau)
        else:
            psi, cosh, ds = np.sinh(s * tau) / s, np.cosh(s * tau), s * np.sinh(s * tau)
        return cosh + self.q_T * psi, ds + self.q_T * cosh, psi

    def _fundamental(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``C(t)``, ``S(t)`` solving ``y'' = r^2 y`` (C(0)=1, C'(0)=0, S(0)=0, S'(0)=1), r^2."""
        t = np.asarray(t, dtype=float)
        r2 = self.q * (1.0 - self.kappa)
        if r2 > 0:
            r = math.sqrt(r2)
            return np.cosh(r * t), np.sinh(r * t) / r, r2
        if r2 < 0:
            w = math.sqrt(-r2)
            return np.cos(w * t), np.sin(w * t) / w, r2
        return np.ones_like(t), t.copy(), r2

    def a(self, t: np.ndarray) -> np.ndarray:
        """Quadratic coefficient of ``u``: solves ``a' = a^2 - q``, ``a(T) = q_T``."""
        phi, dphi, _ = self._phi(self.T - np.asarray(t, dtype=float))
        return dphi / phi

    def _beta(self) -> float:
        C, S, r2 = self._fundamental(self.T)
        k = self.q_T * (1.0 - self.kappa_T)
        return float(-(r2 * S + k * C) / (C + k * S))

    def mean(self, t: np.ndarray) -> np.ndarray:
        """Mean of ``m(t)``."""
        C, S, _ = self._fundamental(t)
        return self.mu0 * (C + self._beta() * S)

    def _mean_rate(self, t: np.ndarray) -> np.ndarray:
        C, S, r2 = self._fundamental(t)
        return self.mu0 * (r2 * S + self._beta() * C)

    def b(self, t: np.ndarray) -> np.ndarray:
        """Linear coefficient of ``u``: ``b = -xbar' - a xbar``."""
        return -self._mean_rate(t) - self.a(t) * self.mean(t)

    def variance(self, t: np.ndarray) -> np.ndarray:
        """Variance of ``m(t)``: ``v' = -2 a v + sigma^2``, ``v(0) = v0``."""
        t = np.asarray(t, dtype=float)
        phi_T, _, psi_T = self._phi(np.asarray(self.T))
        phi_t, _, psi_t = self._phi(self.T - t)
        growth = phi_t / phi_T
        return growth**2 * (self.v0 + self.sigma**2 * phi_T**2 * (psi_T / phi_T - psi_t / phi_t))

    def c(self, t: np.ndarray) -> np.ndarray:
        """Constant term of ``u``, by Gauss-Legendre quadrature of ``c'`` on ``[t, T]``."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        nodes, weights = np.polynomial.legendre.leggauss(64)
        half = 0.5 * (self.T - t)[:, None]
        r = t[:, None] + half * (nodes[None, :] + 1.0)
        xbar = self.mean(r)
        integrand = 0.5 * self.q * self.kappa**2 * xbar**2 - 0.5 * self.b(r) ** 2
        nu = 0.5 * self.sigma**2
        phi, _, _ = self._phi(self.T - t)
        xbar_T = float(self.mean(self.T))
        c_T = 0.5 * self.q_T * self.kappa_T**2 * xbar_T**2
        return c_T + nu * np.log(phi) + (half[:, 0] * (integrand @ weights))

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

    def running_cost(x, m):  # noqa: ANN001, ANN202  (CostFn)
        mean = (x * m).sum() * h
        return 0.5 * q * (x - kappa * mean) ** 2

    def terminal_cost(x, m):  # noqa: ANN001, ANN202  (CostFn)
        mean = (x * m).sum() * h
        return 0.5 * q_T * (x - kappa_T * mean) ** 2

    params = dict(Nx=Nx, Nt=Nt, q=q, q_T=q_T, kappa=kappa, kappa_T=kappa_T, sigma=sigma,
                  mu0=mu0, v0=v0, T=T, L=L)
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=T, Nt=Nt),
        sigma=sigma,
        running_cost=running_cost,
        terminal_cost=terminal_cost,
        m0=m0 / (m0.sum() * h),
        hamiltonian=Hamiltonian(),
        name="lq-1d",
        params=params,
        exact=exact,
    )
