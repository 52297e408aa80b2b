"""Baselines of the leaderboard: the zero control and the best constant drift (mfg_rl.benchmark.baselines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from mfg_rl import problems, solve
from mfg_rl.benchmark import evaluate
from mfg_rl.benchmark.baselines import ConstantPolicy, baselines


@pytest.fixture(scope="module")
def lq_small():
    return solve(problems.make("lq-1d", Nx=51, Nt=10), progress=False, cache=False)


def test_best_constant_beats_zero_and_every_grid_constant(lq_small) -> None:
    found = baselines(lq_small, 4.0, points=5)
    zero = evaluate(lambda t, x: torch.zeros_like(x), lq_small)["exploitability"]
    assert found.zero == pytest.approx(zero, rel=1e-12)
    assert found.constant_exploitability <= found.zero
    assert found.best == found.constant_exploitability
    assert abs(found.constant[0]) <= 4.0
    for c in np.linspace(-4.0, 4.0, 13):  # a grid the search never saw (its own is 5 points)
        assert found.constant_exploitability <= evaluate(ConstantPolicy([c]), lq_small)["exploitability"]
    rescored = evaluate(ConstantPolicy(found.constant), lq_small)["exploitability"]
    assert rescored == pytest.approx(found.constant_exploitability, rel=1e-12)


def lq_constant_drift_exploitability(c: float, q=1.0, q_T=0.5, kappa=0.5, kappa_T=0.5, sigma=0.5, mu0=1.0,
                                     v0=0.1, T=1.0) -> float:
    """Exploitability of ``alpha = c`` in lq-1d on the whole line, derived (not from the scheme).

    The crowd of ``alpha = c`` is ``N(mu0 + c t, v0 + sigma^2 t)``. In that crowd the best response
    is ``-(a x + b)`` with ``a' = a^2 - q``, ``a(T) = q_T``, ``b' = a b + q kappa xbar``,
    ``b(T) = -q_T kappa_T xbar(T)``, and with ``H = p^2/2`` the cost of any control exceeds the value
    by ``E int |alpha - alpha_br|^2 / 2 dt`` along its own paths:
    ``E(c) = int_0^T ((c + a xbar + b)^2 + a^2 var) / 2 dt``.
    """
    def rhs(t, y):
        a, b, _ = y
        xbar, var = mu0 + c * t, v0 + sigma**2 * t
        return [a * a - q, a * b + q * kappa * xbar, -0.5 * ((c + a * xbar + b) ** 2 + a * a * var)]

    end = [q_T, -q_T * kappa_T * (mu0 + c * T), 0.0]
    return float(integrate.solve_ivp(rhs, (T, 0.0), end, rtol=1e-11, atol=1e-13).y[2, -1])


def test_lq_best_constant_matches_the_derived_one() -> None:
    exact = optimize.minimize_scalar(lq_constant_drift_exploitability, bounds=(-4, 4), method="bounded",
                                     options={"xatol": 1e-8})
    found = baselines(problems.make("lq-1d", Nx=201, Nt=50), 4.0)
    # derived: c* = -0.349, E(c*) = 0.0663, E(0) = 0.1331; the scheme (h = 0.04, dt = 0.02) is first order
    assert found.constant[0] == pytest.approx(exact.x, abs=0.03)
    assert found.constant_exploitability == pytest.approx(exact.fun, rel=0.05)
    assert found.zero == pytest.approx(lq_constant_drift_exploitability(0.0), rel=0.05)


def test_two_dimensional_constant_is_in_the_box_and_beats_zero() -> None:
    eq = solve(problems.make("crowd-2d", Nx=16, Ny=16, Nt=10), progress=False, cache=False)
    found = baselines(eq, 5.0, points=3)
    assert len(found.constant) == 2 and max(abs(c) for c in found.constant) <= 5.0
    assert found.constant_exploitability < 0.5 * found.zero
    for c in np.array(np.meshgrid([-5.0, 0.0, 5.0], [-2.5, 2.5])).reshape(2, -1).T:
        assert found.constant_exploitability <= evaluate(ConstantPolicy(c), eq)["exploitability"]


def test_constant_policy_shapes() -> None:
    x2 = torch.zeros(4, 2)
    assert ConstantPolicy([1.0, -2.0])(torch.zeros(4), x2).tolist() == [[1.0, -2.0]] * 4
    assert ConstantPolicy([3.0])(torch.zeros(2), torch.zeros(2)).tolist() == [3.0, 3.0]


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"max_action": 0.0}, ValueError, "max_action"),
    ({"max_action": float("nan")}, ValueError, "max_action"),
    ({"max_action": 1.0, "points": 4}, ValueError, "odd"),
    ({"max_action": 1.0, "points": 1}, ValueError, "points"),
])
def test_bad_arguments_are_refused(lq_small, kwargs, error, words) -> None:
    with pytest.raises(error, match=words):
        baselines(lq_small, **kwargs)
    with pytest.raises(TypeError, match="eq_or_problem"):
        baselines("lq-1d", 1.0)
