"""Hamiltonians beyond the quadratic: the family's identities, manufactured solutions of the HJB
and FP steps (observed first order), agreement of every strategy, and the env's return."""

import math

import numpy as np
import pytest
import torch
from test_envs import pde_value, run_policy  # the Monte Carlo return of test_envs' LQ check

import mfg_rl
from mfg_rl import problems, solve
from mfg_rl.backends import create_backend
from mfg_rl.core import (
    BoundedControlHamiltonian,
    CustomHamiltonian,
    Grid,
    Hamiltonian,
    MFGProblem,
    PowerLawHamiltonian,
    TimeGrid,
)
from mfg_rl.envs import MFGVectorEnv, equilibrium_policy
from mfg_rl.problems.walking import Relativistic
from mfg_rl.solvers import DiscreteMFG, GlobalKrylov, GlobalSpacetime, Newton, Parareal

HAMILTONIANS = {
    "quadratic": Hamiltonian(control_cost=1.5),
    "state-dependent": Hamiltonian(control_cost=lambda x: 1.0 + 0.5 * x * x),
    "congestion": Hamiltonian(control_cost=0.7, congestion=0.8, exponent=1.5),
    "power-3": PowerLawHamiltonian(power=3.0, control_cost=1.3),
    "power-1.5": PowerLawHamiltonian(power=1.5),
    "bounded": BoundedControlHamiltonian(max_speed=0.8, control_cost=1.2),
    "relativistic": CustomHamiltonian(Relativistic(0.9), max_speed=1 / 0.9),
}


@pytest.mark.parametrize("name", HAMILTONIANS)
def test_derivatives_and_legendre_duality(name):
    """``dH/dp`` and ``dg/ds`` against central differences (1e-6), and ``H(p) = -alpha*.p - L(alpha*)``
    (the Lagrangian is the Legendre dual, to 1e-9)."""
    ham = HAMILTONIANS[name]
    x = np.linspace(-1.0, 1.0, 9)
    m = np.linspace(0.0, 2.0, 9)
    for p in (0.37, -1.1, 2.3):
        p = np.full(9, p)
        eps = 1e-6
        numeric = (ham(x, p + eps, m) - ham(x, p - eps, m)) / (2 * eps)
        np.testing.assert_allclose(ham.dH_dp(x, p, m), numeric, rtol=1e-6, atol=1e-8)
        s = p * p
        numeric_s = (ham.speed(x, s + eps, m) - ham.speed(x, s - eps, m)) / (2 * eps) + 0 * x
        np.testing.assert_allclose(ham.speed_ds(x, s, m) + 0 * x, numeric_s, rtol=1e-5, atol=1e-7)
        alpha = ham.optimal_control(x, p, m)
        dual = -alpha * p - ham.lagrangian(x, alpha, m)
        np.testing.assert_allclose(ham(x, p, m), dual, rtol=1e-9, atol=1e-11)
        if ham.depends_on_m:
            numeric_m = (ham.speed(x, s, m + eps) - ham.speed(x, s, m - eps)) / (2 * eps) + 0 * x
            np.testing.assert_allclose(ham.speed_dm(x, s, m) + 0 * x, numeric_m, rtol=1e-5, atol=1e-8)


def test_special_cases_and_bounds():
    x, p, m = 0.0, np.array([0.3, -2.0, 5.0]), 0.0
    np.testing.assert_allclose(PowerLawHamiltonian(power=2.0, control_cost=1.7)(x, p, m),
                               Hamiltonian(control_cost=1.7)(x, p, m), rtol=1e-15)
    bounded = BoundedControlHamiltonian(max_speed=0.5)
    np.testing.assert_allclose(np.abs(bounded.optimal_control(x, p, m)), [0.3, 0.5, 0.5])
    assert bounded.lagrangian(x, np.array(0.6), m) == math.inf
    speeds = np.abs(CustomHamiltonian(Relativistic(1.0), max_speed=1.0).optimal_control(x, p, m))
    np.testing.assert_allclose(speeds, np.abs(p) / np.sqrt(1 + p * p), rtol=1e-12)
    assert PowerLawHamiltonian(3.0).is_quadratic is False and Hamiltonian().is_quadratic


@pytest.mark.parametrize(("function", "match"), [
    (lambda x, p, m: p[0] ** 2 + 2.0 * p[1] ** 2, "only through"),
    (lambda x, p, m: -(p[0] ** 2 + p[1] ** 2), "decrease"),
    (lambda x, p, m: 1.0 - (1.0 + p[0] ** 2 + p[1] ** 2) ** -1, "convex"),
])
def test_custom_hamiltonian_is_checked_when_the_problem_is_built(function, match):
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (5, 4), "no_flux")
    with pytest.raises(ValueError, match=match):
        MFGProblem(grid=grid, time=TimeGrid(1.0, 2), sigma=0.1, running_cost=_zero, terminal_cost=_zero,
                   m0=np.ones((5, 4)), hamiltonian=CustomHamiltonian(function))


def test_bad_parameters_name_themselves():
    for build, match in ((lambda: PowerLawHamiltonian(power=1.0), "power"),
                         (lambda: BoundedControlHamiltonian(max_speed=0.0), "max_speed"),
                         (lambda: CustomHamiltonian(3.0), "callable"),
                         (lambda: Hamiltonian(control_cost=-1.0), "control_cost")):
        with pytest.raises((ValueError, TypeError), match=match):
            build()
    grid = Grid([(0.0, 1.0)], 6, "no_flux")
    with pytest.raises(ValueError, match="control_cost"):
        MFGProblem(grid=grid, time=TimeGrid(1.0, 2), sigma=0.1, running_cost=_zero, terminal_cost=_zero,
                   m0=np.ones(6), hamiltonian=Hamiltonian(control_cost=lambda x: x - 0.5))


def _zero(x, m):
    return 0.0 * m


def _density(values, grid):
    return values / (values.sum() * grid.cell_volume)


def _order(errors):
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


def hjb_manufactured_error(ham, n: int) -> float:
    """``u*(t, x) = cos(t) sin(2 pi x)`` on the periodic unit interval, source
    ``f = -u_t - nu u_xx + H(u_x)``."""
    nu, T = 0.05, 0.5
    grid = Grid([(0.0, 1.0)], n, "periodic")
    Nt = n // 2
    problem = MFGProblem(grid=grid, time=TimeGrid(T, Nt), sigma=math.sqrt(2 * nu), running_cost=_zero,
                         terminal_cost=_zero, m0=np.ones(n), hamiltonian=ham)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    x = grid.coordinates()[0]
    k = 2 * math.pi
    crowd = np.ones(n)

    def source(t):
        u_t = -math.sin(t) * np.sin(k * x)
        u_x = math.cos(t) * k * np.cos(k * x)
        u_xx = -math.cos(t) * k * k * np.sin(k * x)
        return -u_t - nu * u_xx + ham(x, u_x, crowd)

    dt = T / Nt
    u = math.cos(T) * np.sin(k * x)
    for step in range(Nt - 1, -1, -1):
        result = disc.hjb_step(u, crowd, source(step * dt), step)
        u = result.u
        assert result.residual < 1e-10
    return float(np.max(np.abs(u - np.sin(k * x))))


@pytest.mark.parametrize("name", ["power-3", "power-1.5", "bounded", "relativistic", "state-dependent"])
def test_hjb_step_manufactured_first_order(name):
    errors = [hjb_manufactured_error(HAMILTONIANS[name], n) for n in (40, 80, 160, 320)]
    orders = _order(errors)
    assert errors[-1] < 5e-2
    assert all(0.75 < p < 1.4 for p in orders[1:]), (errors, orders)


@pytest.mark.parametrize("power", [3.0, 1.5])
def test_fp_step_power_law_ornstein_uhlenbeck_first_order(power):
    """With ``u = a |x|^q' / q'`` the power-law drift ``-|u_x|^(q-2) u_x = -a^(q-1) x`` is linear: the
    FP solution stays Gaussian (Ornstein-Uhlenbeck) with known mean and variance."""
    dual = power / (power - 1.0)
    a, nu, T, mu0, v0 = 1.0, 0.1, 1.0, 0.8, 0.05
    rate = a ** (power - 1.0)
    l1 = []
    for n in (60, 120, 240, 480):
        grid = Grid([(-3.0, 3.0)], n, "no_flux")
        Nt = n // 4
        x = grid.coordinates()[0]
        problem = MFGProblem(grid=grid, time=TimeGrid(T, Nt), sigma=math.sqrt(2 * nu), running_cost=_zero,
                             terminal_cost=_zero, m0=_density(np.exp(-((x - mu0) ** 2) / (2 * v0)), grid),
                             hamiltonian=PowerLawHamiltonian(power=power))
        disc = DiscreteMFG(problem, create_backend("numpy"))
        u = np.broadcast_to(a * np.abs(x) ** dual / dual, (Nt + 1, n))
        matrices = disc.fp_matrices(u, np.broadcast_to(problem.m0, (Nt + 1, n)))
        m = problem.m0
        for step in range(Nt):
            m = disc.fp_step(matrices.at(step), m)
        h = grid.spacing[0]
        mean = mu0 * math.exp(-rate * T)
        var = v0 * math.exp(-2 * rate * T) + nu / rate * (1 - math.exp(-2 * rate * T))
        exact = np.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
        assert abs(np.sum(m) * h - 1.0) < 1e-12 and m.min() >= 0.0
        l1.append(float(np.sum(np.abs(m - exact)) * h))
    orders = _order(l1)
    assert l1[-1] < 3e-2 and all(0.75 < p < 1.4 for p in orders[1:]), (l1, orders)


STRATEGIES = {
    "global": dict(method=GlobalSpacetime()),
    "global-krylov": dict(method=GlobalKrylov()),
    "jax-scan": dict(method="jax-scan", backend="jax"),
    "parareal": dict(method=Parareal(slices=4)),
    "newton": dict(coupling=Newton()),
    "torch": dict(backend="torch"),
}


@pytest.mark.parametrize("name", ["crowd-walk-1d", "crowd-power-1d", "crowd-relativistic-1d"])
def test_every_strategy_reaches_the_same_equilibrium(name):
    """Bounded controls, a power law and a custom Hamiltonian: every strategy, the coupled Newton
    and the torch backend agree with Sequential on numpy to 1e-10 (tol 1e-11; measured <= 1.7e-11)."""
    problem = problems.make(name, Nx=40, Nt=16)
    reference = solve(problem, backend="numpy", tol=1e-11, progress=False)
    for label, options in STRATEGIES.items():
        options = {"backend": "numpy", **options}  # jax-scan: a custom H differentiated by jax.grad
        eq = solve(problem, tol=1e-11, progress=False, **options)
        for got, want in ((eq.u.numpy(), reference.u.numpy()), (eq.m.numpy(), reference.m.numpy())):
            np.testing.assert_allclose(got, want, atol=1e-10, rtol=0, err_msg=label)
        assert abs(eq.diagnostics.mass[-1] + eq.diagnostics.exited[-1] - 1.0) < 1e-10, label


@pytest.mark.parametrize("label", ["sequential", "global", "global-krylov", "jax-scan", "parareal", "newton"])
def test_an_unreachable_newton_tolerance_stops_at_round_off_on_every_strategy(label):
    """``newton_tol=1e-30`` is below round-off: each strategy's Newton stops once its correction is
    round-off (the one stopping rule) and lands on the same equilibrium."""
    problem = problems.make("lq-1d", Nx=41, Nt=10)
    options = {"sequential": {}, **STRATEGIES}[label]
    options = {"backend": "numpy", **options}
    eq = solve(problem, newton_tol=1e-30, progress=False, **options)
    reference = solve(problem, backend="numpy", progress=False)
    assert eq.diagnostics.converged
    np.testing.assert_allclose(eq.u.numpy(), reference.u.numpy(), atol=1e-7)


def test_equilibrium_control_earns_minus_the_value_function_power_law():
    """The env pays ``L = lambda |alpha|^q' / q'`` of the power-law Hamiltonian: following the
    equilibrium control, its mean return is ``-E_m0[u(0)]`` within 3 standard errors plus the
    O(dt) bias allowance of the quadratic case (2 %)."""
    grid = Grid([(-2.0, 2.0)], 101, "no_flux")
    x = grid.coordinates()[0]
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 50), sigma=0.4, running_cost=_quadratic_cost,
                         terminal_cost=_quadratic_cost, m0=_density(np.exp(-((x - 0.7) ** 2) / 0.08), grid),
                         hamiltonian=PowerLawHamiltonian(power=3.0))
    envs = MFGVectorEnv(problem, num_envs=20_000, device="cpu", solve_options={"progress": False,
                                                                              "backend": "numpy"})
    eq = envs.equilibrium
    returns = run_policy(envs, equilibrium_policy(envs), seed=0)
    mean, error = float(returns.mean()), float(returns.std()) / len(returns) ** 0.5
    target = pde_value(eq)
    assert abs(mean - target) <= 3 * error + 0.02 * abs(target), (mean, target, error)


def _quadratic_cost(x, m):
    return 0.5 * x * x + 0.0 * m


def test_bounded_controls_bound_the_env_actions():
    envs = MFGVectorEnv("crowd-walk-1d", num_envs=64, device="cpu", Nx=40, Nt=10,
                        solve_options={"progress": False, "backend": "numpy"})
    assert envs.game.max_action == pytest.approx(0.6) and envs.single_action_space.high[0] == 1.0
    envs.reset(seed=0)
    *_, info = envs.step(torch.full((64, 1), 5.0))
    assert bool(info["clipped"].all())
    with pytest.raises(ValueError, match="max_speed"):
        MFGVectorEnv(equilibrium=envs.equilibrium, num_envs=4, max_action=1.0)
    assert isinstance(mfg_rl.core.IsotropicHamiltonian, type)
