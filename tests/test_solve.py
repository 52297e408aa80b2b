"""The coupled solve: convergence to the LQ closed form, conservation, backends, 2D, errors."""

import math
import warnings

import numpy as np
import pytest

from mfg_rl import SolverError, problems
from mfg_rl.backends import available_backends
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.solvers import EarlyStop, Equilibrium, FictitiousPlay, Snapshots, solve


def lq_errors(Nx: int, Nt: int) -> tuple[float, float, float]:
    """Errors of u(0, .) (where the crowd is, |x - mu0| < 2), mean and variance of m(t)."""
    problem = problems.make("lq-1d", Nx=Nx, Nt=Nt)
    eq = solve(problem, backend="numpy", progress=False)
    exact, (x,), h = problem.exact, problem.grid.coordinates(), problem.grid.spacing[0]
    u, m, t = eq.u.numpy(), eq.m.numpy(), problem.time.times()
    mean = m @ x * h
    var = np.sum((x[None, :] - mean[:, None]) ** 2 * m, axis=1) * h
    near = np.abs(x - problem.params["mu0"]) < 2.0
    return (
        float(np.max(np.abs(u[0] - exact.u(0.0, x))[near])),
        float(np.max(np.abs(mean - exact.mean(t)))),
        float(np.max(np.abs(var - exact.variance(t)))),
    )


def test_lq_converges_at_first_order_to_closed_form():
    """Joint refinement (h, dt halved) on three grids: observed order of each error >= 0.85."""
    errors = [lq_errors(Nx, Nt) for Nx, Nt in ((101, 25), (201, 50), (401, 100))]
    for quantity in range(3):
        e = [row[quantity] for row in errors]
        orders = [math.log2(a / b) for a, b in zip(e, e[1:], strict=False)]
        assert all(p > 0.85 for p in orders), (quantity, e, orders)
        assert e[-1] < 1e-2, (quantity, e)


def test_lq_conservation_positivity_and_residual():
    problem = problems.make("lq-1d", Nx=101, Nt=30)
    eq = solve(problem, backend="numpy", progress=False, tol=1e-9)
    d = eq.diagnostics
    assert d.converged and d.residual <= 1e-9
    assert max(abs(v - 1.0) for v in d.mass) < 1e-12
    assert eq.m.numpy().min() >= 0.0
    np.testing.assert_allclose(eq.m.numpy()[0], problem.m0, rtol=0, atol=1e-14)
    exact = problem.exact
    x = problem.grid.coordinates()[0]
    near = np.abs(x - 1.0) < 1.5
    assert np.max(np.abs(eq.control(0) - exact.control(0.0, x))[near]) < 0.05


@pytest.mark.parametrize("name", [b for b in available_backends() if b != "numpy"])
def test_every_backend_gives_the_same_equilibrium(name):
    problem = problems.make("lq-1d", Nx=41, Nt=10)
    reference = solve(problem, backend="numpy", progress=False)
    other = solve(problem, backend=name, progress=False)
    np.testing.assert_allclose(other.u.numpy(), reference.u.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(other.m.numpy(), reference.m.numpy(), rtol=0, atol=1e-10)


def _room(Nx: int, Ny: int, Nt: int = 10) -> MFGProblem:
    """Symmetric 2D room: target at the centre, crowd aversion, congestion."""

    def running(x, m):
        return 0.5 * ((x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2) + 0.2 * m

    def terminal(x, m):
        return (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2

    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (Nx, Ny), "no_flux")
    return MFGProblem(
        grid=grid, time=TimeGrid(0.5, Nt), sigma=0.3, running_cost=running, terminal_cost=terminal,
        m0=lambda x: np.exp(-((x[0] - 0.3) ** 2 + (x[1] - 0.3) ** 2) / 0.02) + 1e-3,
        hamiltonian=Hamiltonian(congestion=0.1),
    )


def test_2d_symmetric_problem_has_symmetric_equilibrium():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        problem = _room(16, 16)
    eq = solve(problem, backend="numpy", progress=False, coupling="fixed_point")  # exact step solves
    u, m = eq.u.numpy(), eq.m.numpy()
    np.testing.assert_allclose(u, np.swapaxes(u, 1, 2), rtol=0, atol=1e-10)
    np.testing.assert_allclose(m, np.swapaxes(m, 1, 2), rtol=0, atol=1e-10)
    assert max(abs(v - 1.0) for v in eq.diagnostics.mass) < 1e-12


def test_2d_problem_constant_in_y_matches_1d():
    lq = problems.make("lq-1d", Nx=41, Nt=10, L=3.0)
    x1 = lq.grid.coordinates()[0]
    hx = lq.grid.spacing[0]
    q, kappa = lq.params["q"], lq.params["kappa"]
    q_T, kappa_T = lq.params["q_T"], lq.params["kappa_T"]
    grid = Grid([(-3.0, 3.0), (0.0, 1.0)], (41, 5), "no_flux")
    hy = grid.spacing[1]

    def running(x, m):
        mean = (x[0] * m).sum() * hx * hy
        return 0.5 * q * (x[0] - kappa * mean) ** 2

    def terminal(x, m):
        mean = (x[0] * m).sum() * hx * hy
        return 0.5 * q_T * (x[0] - kappa_T * mean) ** 2

    flat = MFGProblem(grid=grid, time=lq.time, sigma=lq.sigma, running_cost=running,
                      terminal_cost=terminal, m0=np.repeat(lq.m0[:, None], 5, axis=1))
    eq1 = solve(lq, backend="numpy", progress=False, coupling="fixed_point")  # exact step solves
    eq2 = solve(flat, backend="numpy", progress=False, coupling="fixed_point")
    for j in range(5):
        np.testing.assert_allclose(eq2.u.numpy()[:, :, j], eq1.u.numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(eq2.m.numpy()[:, :, j], eq1.m.numpy(), rtol=0, atol=1e-10)
    assert x1.shape == (41,)


def test_fictitious_play_approaches_the_same_equilibrium():
    problem = problems.make("lq-1d", Nx=61, Nt=15)
    reference = solve(problem, backend="numpy", progress=False)
    fp = solve(problem, backend="numpy", progress=False, coupling=FictitiousPlay(), tol=1e-3,
               max_iter=1000)
    assert fp.diagnostics.converged
    h = problem.grid.spacing[0]
    # Measured: u within 7.6e-3 and m within 1.0e-2 (L1) of the fixed point at tol=1e-3.
    assert np.max(np.abs(fp.u.numpy() - reference.u.numpy())) < 1.5e-2
    assert np.max(np.sum(np.abs(fp.m.numpy() - reference.m.numpy()), axis=1) * h) < 2e-2


def test_max_iter_raises_or_flags_unconverged():
    problem = problems.make("lq-1d", Nx=41, Nt=10)
    with pytest.raises(SolverError, match="did not converge in max_iter=2"):
        solve(problem, backend="numpy", progress=False, max_iter=2)
    eq = solve(problem, backend="numpy", progress=False, max_iter=2, allow_unconverged=True)
    assert not eq.diagnostics.converged and eq.diagnostics.stopped_by == "max_iter"
    assert eq.diagnostics.residual > 1e-8


def test_callbacks_snapshots_and_early_stop():
    problem = problems.make("lq-1d", Nx=41, Nt=10)
    snaps = Snapshots(every=2)
    eq = solve(problem, backend="numpy", progress=False, callbacks=[snaps])
    assert len(snaps.snapshots) == (eq.diagnostics.iterations + 1) // 2
    stop = EarlyStop(patience=1, factor=0.0)
    eq = solve(problem, backend="numpy", progress=False, callbacks=[stop])
    assert eq.diagnostics.stopped_by == "callback" and not eq.diagnostics.converged


def test_nan_during_the_solve_raises_solver_error():
    """A cost that turns NaN once the crowd moves: the HJB step reports where."""
    grid = Grid([(0.0, 1.0)], 20)
    m0 = np.exp(-((grid.coordinates()[0] - 0.3) ** 2) / 0.01)
    m0 = m0 / (m0.sum() * grid.spacing[0])

    def running(x, m):
        return 0.0 * m + (0.0 if float(np.abs(m - m0).sum()) < 1e-12 else float("nan"))

    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 5), sigma=0.2, running_cost=running,
                         terminal_cost=lambda x, m: x * 1.0, m0=m0)
    with pytest.raises(SolverError, match="non-finite values at time index"):
        solve(problem, backend="numpy", progress=False)


def test_nan_cost_rejected_at_construction():
    grid = Grid([(0.0, 1.0)], 20)
    with pytest.raises(ValueError, match="running_cost"):
        MFGProblem(grid=grid, time=TimeGrid(1.0, 5), sigma=0.2, running_cost=lambda x, m: m * np.nan,
                   terminal_cost=lambda x, m: 0.0 * m, m0=np.ones(20))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "euler"}, "method must be one of"),
        ({"coupling": "newtonish"}, "coupling must be one of"),
        ({"fp": "spectral"}, "fp must be one of"),
        ({"tol": 0.0}, r"tol must be a finite number in \(0, 1\)"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"damping": 1.5}, r"damping must be a finite number in \(0, 1\]"),
        ({"backend": "cupy"}, "backend must be one of"),
    ],
)
def test_bad_solver_options_raise_before_work(kwargs, message):
    problem = problems.make("lq-1d", Nx=21, Nt=5)
    with pytest.raises(ValueError, match=message):
        solve(problem, progress=False, **kwargs)


def test_save_load_roundtrip_and_cache(tmp_path):
    problem = problems.make("lq-1d", Nx=41, Nt=10)
    eq = solve(problem, backend="numpy", progress=False, cache=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    loaded = Equilibrium.load(files[0], backend="numpy")
    np.testing.assert_array_equal(loaded.u.numpy(), eq.u.numpy())
    np.testing.assert_array_equal(loaded.m.numpy(), eq.m.numpy())
    assert loaded.diagnostics.iterations == eq.diagnostics.iterations
    cached = solve(problem, backend="numpy", progress=False, cache=tmp_path)
    np.testing.assert_array_equal(cached.u.numpy(), eq.u.numpy())
    other = problems.make("lq-1d", Nx=41, Nt=10, q=2.0)
    with pytest.raises(ValueError, match="different problem"):
        Equilibrium.load(files[0], problem=other)


def test_exit_mass_balance_from_boundary_flux():
    """Mass inside plus the mass counted leaving through the exit face stays 1.

    The outflow is summed from the boundary flux, so the balance holds to the coupled
    residual (1e-11 here), not by construction.
    """
    problem = problems.make("crowd-exit-1d", Nx=60, Nt=30)
    eq = solve(problem, backend="numpy", progress=False, tol=1e-11)
    d = eq.diagnostics
    assert d.exited[-1] > 0.5
    assert max(abs(inside + out - 1.0) for inside, out in zip(d.mass, d.exited, strict=True)) < 1e-11
    assert all(b <= a + 1e-15 for a, b in zip(d.mass, d.mass[1:], strict=False))


@pytest.mark.parametrize("name", ["lq-1d", "santa-fe-bar", "crowd-exit-1d"])
def test_anderson_reaches_the_fixed_point_equilibrium_in_fewer_iterations(name):
    problem = problems.make(name, Nx=50, Nt=20)
    plain = solve(problem, backend="numpy", progress=False, tol=1e-10, coupling="fixed_point")
    fast = solve(problem, backend="numpy", progress=False, tol=1e-10, coupling="anderson")
    assert fast.diagnostics.converged and fast.diagnostics.iterations < plain.diagnostics.iterations
    assert fast.m.numpy().min() >= 0.0
    np.testing.assert_allclose(fast.u.numpy(), plain.u.numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(fast.m.numpy(), plain.m.numpy(), rtol=0, atol=1e-7)


@pytest.mark.parametrize(("name", "params"), [("crowd-2d", {"Nx": 8, "Ny": 6, "Nt": 4}),
                                              ("crowd-exit-1d", {"Nx": 21, "Nt": 5})])
def test_controls_of_all_levels_are_the_per_level_controls(name: str, params: dict) -> None:
    eq = solve(problems.make(name, **params), backend="numpy", progress=False)
    controls = eq.controls()
    assert controls.shape == (params["Nt"] + 1, *eq.control(0).shape)
    for n in range(params["Nt"] + 1):
        np.testing.assert_array_equal(controls[n], eq.control(n))
