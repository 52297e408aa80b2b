"""Manufactured and exact solutions for the HJB step and the FP step alone (observed orders)."""

import math

import numpy as np
import pytest

from mfg_rl import problems
from mfg_rl.backends import create_backend
from mfg_rl.core import Grid, MFGProblem, TimeGrid
from mfg_rl.solvers import DiscreteMFG, Sequential


def _zero(x, m):
    return 0.0 * m


def _problem(grid: Grid, T: float, Nt: int, sigma: float) -> MFGProblem:
    return MFGProblem(grid=grid, time=TimeGrid(T, Nt), sigma=sigma, running_cost=_zero,
                      terminal_cost=_zero, m0=np.ones(grid.shape) / (grid.cell_volume * grid.size))


def _order(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


def hjb_manufactured_error(n: int) -> float:
    """u*(t, x) = cos(t) sin(2 pi x) + x-independent drift on the periodic unit interval."""
    nu, T = 0.05, 0.5
    grid = Grid([(0.0, 1.0)], n, "periodic")
    Nt = n // 2
    disc = DiscreteMFG(_problem(grid, T, Nt, math.sqrt(2 * nu)), create_backend("numpy"))
    x = grid.coordinates()[0]
    k = 2 * math.pi

    def exact(t):
        return math.cos(t) * np.sin(k * x)

    def source(t):
        u_t = -math.sin(t) * np.sin(k * x)
        u_x = math.cos(t) * k * np.cos(k * x)
        u_xx = -math.cos(t) * k * k * np.sin(k * x)
        return -u_t - nu * u_xx + 0.5 * u_x**2

    dt = T / Nt
    u = exact(T)
    crowd = np.ones(n)
    for step in range(Nt - 1, -1, -1):
        result = disc.hjb_step(u, crowd, source(step * dt), step)
        u = result.u
        assert result.residual < 1e-10
    return float(np.max(np.abs(u - exact(0.0))))


def test_hjb_step_manufactured_first_order():
    errors = [hjb_manufactured_error(n) for n in (40, 80, 160, 320)]
    orders = _order(errors)
    assert errors[-1] < 5e-2
    assert all(0.8 < p < 1.3 for p in orders[1:]), (errors, orders)


def fp_ornstein_uhlenbeck_error(n: int) -> tuple[float, float]:
    """FP with drift -a x (u = a x^2/2): m stays Gaussian with known mean and variance."""
    a, nu, T, mu0, v0 = 1.0, 0.1, 1.0, 0.8, 0.05
    grid = Grid([(-3.0, 3.0)], n, "no_flux")
    Nt = n // 4
    x = grid.coordinates()[0]
    problem = MFGProblem(grid=grid, time=TimeGrid(T, Nt), sigma=math.sqrt(2 * nu),
                         running_cost=_zero, terminal_cost=_zero,
                         m0=np.exp(-((x - mu0) ** 2) / (2 * v0)) / math.sqrt(2 * math.pi * v0))
    disc = DiscreteMFG(problem, create_backend("numpy"))
    u = np.broadcast_to(0.5 * a * x**2, (Nt + 1, n))
    m_field = np.broadcast_to(problem.m0, (Nt + 1, n))
    matrices = disc.fp_matrices(u, m_field)
    m = problem.m0
    for step in range(Nt):
        m = disc.fp_step(matrices.at(step), m)
    h = grid.spacing[0]
    mean = float(np.sum(x * m) * h)
    var = float(np.sum((x - mean) ** 2 * m) * h)
    exact_mean = mu0 * math.exp(-a * T)
    exact_var = v0 * math.exp(-2 * a * T) + nu / a * (1 - math.exp(-2 * a * T))
    exact_m = np.exp(-((x - exact_mean) ** 2) / (2 * exact_var)) / math.sqrt(2 * math.pi * exact_var)
    assert abs(np.sum(m) * h - 1.0) < 1e-12 and m.min() >= 0.0
    return float(np.sum(np.abs(m - exact_m)) * h), abs(mean - exact_mean) + abs(var - exact_var)


def test_fp_step_ornstein_uhlenbeck_first_order():
    results = [fp_ornstein_uhlenbeck_error(n) for n in (60, 120, 240, 480)]
    l1 = [r[0] for r in results]
    moments = [r[1] for r in results]
    for errors in (l1, moments):
        orders = _order(errors)
        assert all(0.8 < p < 1.4 for p in orders[1:]), (errors, orders)
    assert l1[-1] < 2e-2


@pytest.mark.parametrize("boundary", ["no_flux", "periodic"])
def test_fp_is_adjoint_of_hjb_jacobian(boundary):
    """<J v, m> = <v, J^T m> for the step matrices, so FP is the discrete adjoint."""
    rng = np.random.default_rng(3)
    grid = Grid([(0.0, 1.0), (0.0, 2.0)], (6, 7), boundary)
    disc = DiscreteMFG(_problem(grid, 1.0, 4, 0.4), create_backend("numpy"))
    u = rng.normal(size=(5, 6, 7))
    m = rng.uniform(size=(5, 6, 7))
    _, jac = disc.scheme.apply(u[:-1], m[1:])
    jt = disc.fp_matrices(u, m)
    v = rng.normal(size=(4, 6, 7))
    mm = rng.normal(size=(4, 6, 7))
    lhs = np.sum((jac.matvec(np, v) + v / disc.dt) * mm, axis=(1, 2))
    rhs = np.sum(v * jt.matvec(np, mm), axis=(1, 2))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_exit_boundary_mass_balance():
    """Mass inside plus mass that left through the exit face equals 1 to round-off."""
    grid = Grid([(0.0, 1.0)], 50, ("exit", "no_flux"))
    x = grid.coordinates()[0]
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 40), sigma=0.3, running_cost=_zero,
                         terminal_cost=_zero, m0=np.exp(-((x - 0.6) ** 2) / 0.02) / 0.2506551)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    u = np.broadcast_to(x, (41, 50))
    m_field = np.broadcast_to(problem.m0, (41, 50))
    matrices = disc.fp_matrices(u, m_field)
    m, exited = problem.m0, 0.0
    ones = np.ones(50)
    h = grid.spacing[0]
    for step in range(40):
        jt = matrices.at(step)
        m = disc.fp_step(jt, m)
        outflow = disc.dt * (ones @ jt.matvec(np, m) - np.sum(m) / disc.dt)
        exited += outflow * h
        assert m.min() >= 0.0
    assert exited > 0.1
    assert abs(np.sum(m) * h + exited - 1.0) < 1e-12


@pytest.mark.parametrize("name", ["crowd-2d", "crowd-exit-1d"])
def test_hjb_sweep_keeps_the_fp_matrices_it_linearised(name):
    """The FP matrices the HJB sweep keeps are bitwise those ``fp_matrices`` rebuilds, and
    the residual measured from them equals the batched ``fp_defect``."""
    from mfg_rl.solvers.discrete import KeptSteps

    size = {"Nx": 12, "Ny": 10, "Nt": 6} if name == "crowd-2d" else {"Nx": 31, "Nt": 8}
    problem = problems.make(name, **size)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    m = np.stack([disc.m0] * (disc.Nt + 1))
    result = Sequential().hjb(disc, m)
    u, kept, fresh = result.u, result.steps, disc.fp_matrices(result.u, m)
    assert isinstance(kept, KeptSteps)
    for n in range(disc.Nt):
        for a, b in zip((kept.at(n).center, *kept.at(n).minus, *kept.at(n).plus),
                        (fresh.at(n).center, *fresh.at(n).minus, *fresh.at(n).plus), strict=True):
            np.testing.assert_array_equal(a, b)
    assert disc.fp_residual(u, m, kept) == float(disc.fp_defect(u, m))


@pytest.mark.parametrize(("name", "params"), [("lq-1d", {"Nx": 101, "Nt": 4}),
                                              ("crowd-2d", {"Nx": 12, "Ny": 10, "Nt": 3})])
def test_hjb_newton_stops_at_round_off(name, params):
    """An unreachable residual target (1e-30) ends once Newton's correction is round-off, at
    the solution the default target gives, instead of failing after max_newton iterations
    (what a coarse Parareal step of 500 fine steps hit at 6.3e-12 > 5.7e-12)."""
    problem = problems.make(name, **params)
    backend = create_backend("numpy")
    m = np.stack([problem.m0] * (problem.time.Nt + 1))
    strict = DiscreteMFG(problem, backend, newton_tol=1e-30)
    u = Sequential().hjb(strict, m).u
    reference = Sequential().hjb(DiscreteMFG(problem, backend), m).u
    assert np.max(np.abs(u - reference)) < 1e-11 * (1.0 + np.max(np.abs(reference)))
