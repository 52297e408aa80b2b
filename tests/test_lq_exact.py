"""The closed form of lq-1d against an independent numerical solution of its ODEs, up to T = 1000."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from mfg_rl import problems
from mfg_rl.problems.lq import LQExact

DEFAULTS = dict(q=1.0, q_T=0.5, kappa=0.5, kappa_T=0.5, sigma=0.5, mu0=1.0, v0=0.1)
FIELDS = ("a", "b", "c", "mean", "variance")


def ode_reference(q, q_T, kappa, kappa_T, sigma, mu0, v0, T, times):
    """a, b, c, mean, variance at ``times`` by DOP853 (rtol 1e-12, atol 1e-14), no closed form used.

    Backward in tau = T - t: the Riccati a' = a^2 - q and, writing b = p xbar, p' = p^2 + 2 a p
    + q kappa (p(T) = -q_T kappa_T); forward: xbar' = -(a + p) xbar, v' = -2 a v + sigma^2 and
    J' = nu a - b^2/2 + q kappa^2 xbar^2/2, so that c(t) = c(T) + J(T) - J(t).
    """

    def backward(tau, y):
        a, p = y
        return [q - a * a, -(p * p + 2.0 * a * p + q * kappa)]

    tight = dict(method="DOP853", rtol=1e-12, atol=1e-14)
    back = solve_ivp(backward, (0.0, T), [q_T, -q_T * kappa_T], dense_output=True, **tight)
    assert back.success, back.message
    nu = 0.5 * sigma**2

    def forward(t, y):
        xbar, v, _ = y
        a, p = back.sol(T - t)
        b = p * xbar
        return [-(a + p) * xbar, -2.0 * a * v + sigma**2, nu * a - 0.5 * b * b + 0.5 * q * kappa**2 * xbar**2]

    fwd = solve_ivp(forward, (0.0, T), [mu0, v0, 0.0], t_eval=times, **tight)
    assert fwd.success, fwd.message
    xbar, v, J = fwd.y
    a, p = back.sol(T - times)
    c_T = 0.5 * q_T * kappa_T**2 * xbar[-1] ** 2
    return {"a": a, "b": p * xbar, "c": c_T + J[-1] - J, "mean": xbar, "variance": v}


def relative_errors(params: dict, T: float) -> dict[str, float]:
    """max |exact - ode| / (1 + |ode|) of each coefficient on 201 times in [0, T]."""
    times = np.linspace(0.0, T, 201)
    reference = ode_reference(**params, T=T, times=times)
    exact = LQExact(**params, T=T)
    return {
        f: float(np.max(np.abs(getattr(exact, f)(times) - reference[f]) / (1.0 + np.abs(reference[f]))))
        for f in FIELDS
    }


@pytest.mark.parametrize("T", [1.0, 30.0, 50.0, 75.0, 1000.0])
def test_closed_form_matches_the_ode_solution_for_long_horizons(T):
    """Default parameters: every coefficient within 1e-9 (relative to 1 + |value|) of the ODE.

    The ODE reference itself is good to ~4e-10 at T = 1000; the former cosh/sinh closed form was
    off by 1.2e-7 (mean) at T = 30, 0.25 at T = 50, 8.4e6 at T = 75 and overflowed at T = 1000.
    """
    errors = relative_errors(DEFAULTS, T)
    assert max(errors.values()) < 1e-9, errors


@pytest.mark.parametrize(
    ("regime", "T"),
    [
        ("q=0", 1.0), ("q=0", 1000.0),            # s = 0: a = q_T / (1 + q_T (T - t))
        ("kappa=1", 1.0), ("kappa=1", 1000.0),    # r = 0: the mean is linear in t
        ("q_T=0", 1000.0),
        ("k<0", 1.0), ("k<0", 1000.0),            # kappa_T > 1: -r < k < 0
        ("kappa<0", 1000.0),
        ("kappa>1", 1.0),                         # r^2 < 0: cos/sin mean (the reference needs xbar != 0)
    ],
)
def test_closed_form_matches_the_ode_solution_in_every_regime(regime, T):
    """Degenerate and oscillatory branches within 1e-8 (the ODE reference is good to ~3e-9 here)."""
    change = {
        "q=0": dict(q=0.0), "kappa=1": dict(kappa=1.0), "q_T=0": dict(q_T=0.0),
        "k<0": dict(q_T=2.0, kappa_T=1.3), "kappa<0": dict(q=2.0, kappa=-1.0),
        "kappa>1": dict(q=2.0, kappa=1.8),
    }[regime]
    errors = relative_errors({**DEFAULTS, **change}, T)
    assert max(errors.values()) < 1e-8, errors


def test_same_values_as_the_former_closed_form_at_short_horizon():
    """T = 1 values of the former cosh/sinh + quadrature formulas, to round-off (rtol 1e-13)."""
    exact = LQExact(**DEFAULTS, T=1.0)
    t = np.array([0.0, 0.5, 1.0])
    former = {
        "a": [0.9136709340400075, 0.7815364548539282, 0.5],
        "b": [-0.3536869126473906, -0.26737391157816853, -0.16319046531362985],
        "c": [0.16478287214776627, 0.08690032108673214, 0.02663112796927902],
        "mean": [1.0, 0.777292016832459, 0.6527618612545193],
        "variance": [0.1, 0.1273228782650885, 0.15991770125206387],
    }
    for f, values in former.items():
        np.testing.assert_allclose(getattr(exact, f)(t), values, rtol=1e-13, atol=1e-15, err_msg=f)


@pytest.mark.parametrize("T", [1000.0, 1e6])
def test_no_overflow_or_nan_at_any_horizon(T):
    """Every public quantity is finite, with no floating-point overflow, division or invalid op."""
    problem = problems.make("lq-1d", Nx=21, Nt=3, T=T)
    exact = problem.exact
    t, x = np.linspace(0.0, T, 7), problem.grid.coordinates()[0]
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        values = [getattr(exact, f)(t) for f in FIELDS]
        values += [exact.u(s, x) for s in t] + [exact.m(s, x) for s in t] + [exact.control(s, x) for s in t]
    assert all(np.all(np.isfinite(v)) for v in values)
    np.testing.assert_allclose(exact.a(0.0), 1.0, rtol=1e-14)                 # a -> sqrt(q)
    np.testing.assert_allclose(exact.variance(T), 0.25 / 1.5, rtol=1e-14)      # sigma^2 / (sqrt(q) + q_T)
    assert abs(float(exact.mean(T))) < 1e-300                                 # xbar ~ mu0 e^{-r T}


def test_degenerate_parameters_raise():
    """G(T) = cosh(T) + k sinh(T) = 0 at q = 1, kappa = 0, k = -coth(1): no unique equilibrium."""
    k = -1.0 / np.tanh(1.0)
    with pytest.raises(ValueError, match="no unique LQ equilibrium"):
        LQExact(q=1.0, q_T=1.0, kappa=0.0, kappa_T=1.0 - k, sigma=0.5, mu0=1.0, v0=0.1, T=1.0)
