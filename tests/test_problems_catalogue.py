"""The catalogue: every problem builds, validates its parameters and has backend-agnostic costs."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import mfg_rl
from mfg_rl import problems
from mfg_rl.core import MFGProblem
from mfg_rl.problems import crowd_2d, crowd_exit, santa_fe
from mfg_rl.problems.registry import factory

ONE_D = ("beach-bar-1d", "crowd-exit-1d", "santa-fe-bar")
OURS = (*ONE_D, "crowd-2d")


def small(name: str) -> dict:
    """Small custom sizes for ``name``."""
    return {"Nx": 8, "Ny": 6, "Nt": 4} if name == "crowd-2d" else {"Nx": 20, "Nt": 5}


def backends() -> list:
    return [mfg_rl.create_backend("numpy"), mfg_rl.create_backend("torch")]


@pytest.mark.parametrize("name", OURS)
def test_registered(name: str) -> None:
    assert name in problems.names()


@pytest.mark.parametrize("name", problems.names())
def test_builds_with_defaults_and_small_sizes(name: str) -> None:
    default = problems.make(name)
    assert default.name == name
    assert set(default.params) == set(problems.parameters(name)), "params must list every parameter"
    p = problems.make(name, **small(name))
    shape = tuple(v for k, v in small(name).items() if k != "Nt")
    assert p.grid.shape == shape and p.time.Nt == small(name)["Nt"]
    assert p.params["Nx"] == small(name)["Nx"]
    assert np.isclose(p.m0.sum() * p.grid.cell_volume, 1.0) and np.all(p.m0 >= 0)
    assert p.fingerprint() != default.fingerprint()


@pytest.mark.parametrize("name", problems.names())
def test_docstring_names_every_parameter(name: str) -> None:
    build = factory(name)
    doc = inspect.getdoc(build) or ""
    module_doc = inspect.getmodule(build).__doc__ or ""
    assert "Example" in doc
    for param in inspect.signature(build).parameters:
        assert re.search(rf"\b{param}\b", doc), f"{name}: docstring does not name {param!r}"
    assert len(module_doc) > 200, f"{name}: module docstring should give the equations"


@pytest.mark.parametrize("name", problems.names())
def test_unknown_parameter_is_a_type_error_naming_the_allowed(name: str) -> None:
    with pytest.raises(TypeError, match="allowed") as info:
        problems.make(name, no_such_parameter=1.0)
    assert "no_such_parameter" in str(info.value)
    for param in problems.parameters(name):
        assert param in str(info.value)


BAD_VALUES = [
    *[(name, {"sigma": -0.1}, "sigma") for name in problems.names()],
    *[(name, {"T": 0.0}, "T") for name in problems.names()],
    *[(name, {"Nx": 2}, "Nx") for name in OURS],
    ("crowd-2d", {"Ny": 1}, "Ny"),
    ("crowd-2d", {"exit_side": "up"}, "exit_side"),
    ("crowd-2d", {"m0_center": (0.5, 1.2)}, r"m0_center\[1\]"),
    ("crowd-2d", {"m0_center": 0.5}, "m0_center"),
    ("crowd-2d", {"congestion": -1.0}, "congestion"),
    ("crowd-exit-1d", {"exits": "top"}, "exits"),
    ("crowd-exit-1d", {"control_cost": 0.0}, "control_cost"),
    ("crowd-exit-1d", {"m0_center": 1.0}, "m0_center"),
    ("crowd-exit-1d", {"time_cost": float("nan")}, "time_cost"),
    ("santa-fe-bar", {"threshold": 0.0}, "threshold"),
    ("santa-fe-bar", {"threshold": 1.5}, "threshold"),
    ("santa-fe-bar", {"smoothing": 0.0}, "smoothing"),
    ("santa-fe-bar", {"go_width": -1.0}, "go_width"),
    ("santa-fe-bar", {"payoff_crowded": 20.0}, "payoff_crowded"),
    ("beach-bar-1d", {"x_bar": 1.5}, "x_bar"),
    ("beach-bar-1d", {"crowd_eps": 0.0}, "crowd_eps"),
    ("beach-bar-1d", {"boundary": "exit"}, "boundary"),
    ("beach-bar-1d", {"distance_cost": -1.0}, "distance_cost"),
]


@pytest.mark.parametrize(("name", "params", "param"), BAD_VALUES)
def test_bad_values_raise_before_any_work(
    name: str, params: dict, param: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = inspect.getmodule(factory(name))

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation must happen before the grid or problem is built")

    monkeypatch.setattr(module, "Grid", no_work)
    monkeypatch.setattr(module, "MFGProblem", no_work)
    with pytest.raises(ValueError, match=param):
        problems.make(name, **{**small(name), **params})


@pytest.mark.parametrize("name", OURS)
def test_a_bump_narrower_than_the_grid_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="m0_width"):
        problems.make(name, **small(name), m0_width=1e-9)


@pytest.mark.parametrize("name", OURS)
def test_wrong_types_raise_type_error(name: str) -> None:
    with pytest.raises(TypeError, match="sigma"):
        problems.make(name, sigma="0.1")
    with pytest.raises(TypeError, match="Nt"):
        problems.make(name, Nt=4.0)


def densities(p: MFGProblem) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shape = p.grid.shape
    uniform = np.ones(shape) / (p.grid.size * p.grid.cell_volume)
    return [p.m0, uniform, np.zeros(shape), rng.uniform(0.0, 3.0, shape)]


@pytest.mark.parametrize("name", problems.names())
def test_costs_are_finite_on_the_grid_on_numpy_and_torch(name: str) -> None:
    p = problems.make(name, **small(name))
    for m in densities(p):
        reference = None
        for backend in backends():
            x, mb = p.points(backend), backend.asarray(m)
            for cost in (p.running_cost, p.terminal_cost):
                value = p.evaluate_cost(cost, mb, x)
                assert backend.is_native(value), f"{name}: cost left the backend"
                assert tuple(value.shape) == p.grid.shape
                assert np.all(np.isfinite(backend.to_numpy(value)))
            value = backend.to_numpy(p.evaluate_cost(p.running_cost, mb, x))
            if reference is None:
                reference = value
            np.testing.assert_allclose(value, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", OURS)
def test_couplings_are_monotone(name: str) -> None:
    """Lasry-Lions: ``int (f(m1) - f(m2)) (m1 - m2) >= 0``, the uniqueness condition."""
    p = problems.make(name, **small(name))
    rng = np.random.default_rng(1)
    for _ in range(20):
        m1, m2 = rng.uniform(0.0, 3.0, (2, *p.grid.shape))
        df = p.evaluate_cost(p.running_cost, m1) - p.evaluate_cost(p.running_cost, m2)
        assert np.sum(df * (m1 - m2)) * p.grid.cell_volume >= -1e-12


def test_santa_fe_cost_depends_on_attendance_as_the_game_says() -> None:
    p = problems.make("santa-fe-bar", Nx=100, Nt=5)
    x = p.grid.coordinates()[0]
    h = p.grid.cell_volume
    width = p.params["go_width"]
    home = np.where(x < 0.5, 1.9, 0.1)  # attendance ~0.1: the bar is empty
    out = np.where(x < 0.5, 0.1, 1.9)  # attendance ~0.9: the bar is crowded
    a_home = float(santa_fe.attendance(x, home, width, h)[0])
    a_out = float(santa_fe.attendance(x, out, width, h)[0])
    assert a_home < 0.2 < 0.8 < a_out
    f_empty = p.evaluate_cost(p.running_cost, home)
    f_crowded = p.evaluate_cost(p.running_cost, out)
    go = santa_fe.go_probability(x, width)
    # cost = -go(x) * payoff of going: about -10 at an empty bar, +5 at a crowded one
    np.testing.assert_allclose(f_empty, -10.0 * go, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(f_crowded, 5.0 * go, rtol=1e-3, atol=1e-6)
    assert go[-1] > 0.99 and go[0] < 0.01
    assert f_crowded[-1] > 4.9 and f_empty[-1] < -9.8  # committed goers
    assert abs(f_crowded[0]) < 0.1 and abs(f_empty[0]) < 0.1  # staying home pays 0
    # the payoff switches at the threshold, smoothed over `smoothing`
    theta, eps = p.params["threshold"], p.params["smoothing"]
    for attendance, payoff in ((theta - 4 * eps, 10.0), (theta, 2.5), (theta + 4 * eps, -5.0)):
        m = np.full_like(x, attendance / float(np.sum(go) * h))
        f = p.evaluate_cost(p.running_cost, m)
        np.testing.assert_allclose(f, -go * payoff, rtol=2e-3, atol=1e-9)


def test_santa_fe_cost_is_batched_over_leading_axes() -> None:
    p = problems.make("santa-fe-bar", Nx=30, Nt=5)
    rng = np.random.default_rng(2)
    m = rng.uniform(0.0, 2.0, (3, 30))
    batched = p.running_cost(p.points(), m)
    for k in range(3):
        np.testing.assert_allclose(batched[k], p.running_cost(p.points(), m[k]))


def test_beach_bar_cost_prefers_the_bar_and_empty_spots() -> None:
    for boundary in ("periodic", "no_flux"):
        p = problems.make("beach-bar-1d", Nx=100, Nt=5, boundary=boundary, x_bar=0.3)
        x = p.grid.coordinates()[0]
        flat = p.evaluate_cost(p.running_cost, np.ones(100))
        assert int(np.argmin(np.abs(x - 0.3))) == int(np.argmin(flat))
        crowded = np.ones(100)
        crowded[40] = 5.0
        assert p.evaluate_cost(p.running_cost, crowded)[40] > flat[40]
    periodic = problems.make("beach-bar-1d", Nx=100, Nt=5, x_bar=0.05)
    walls = problems.make("beach-bar-1d", Nx=100, Nt=5, x_bar=0.05, boundary="no_flux")
    fp, fw = (q.evaluate_cost(q.running_cost, np.ones(100)) for q in (periodic, walls))
    assert fp[-1] < fp[50] and fw[-1] > fw[50]  # x = 1 is next to the bar only on a circle


def test_crowd_exit_sides_and_mirror_symmetry() -> None:
    right = problems.make("crowd-exit-1d", Nx=40, Nt=5, exits="right", m0_center=0.3)
    left = problems.make("crowd-exit-1d", Nx=40, Nt=5, exits="left", m0_center=0.7)
    both = problems.make("crowd-exit-1d", Nx=40, Nt=5, exits="both", m0_center=0.5)
    assert right.grid.boundary == (("no_flux", "exit"),)
    assert left.grid.boundary == (("exit", "no_flux"),)
    assert both.grid.boundary == (("exit", "exit"),)
    np.testing.assert_allclose(right.m0, left.m0[::-1], atol=1e-12)
    np.testing.assert_allclose(both.m0, both.m0[::-1], atol=1e-12)
    assert right.hamiltonian.has_congestion and right.exit_cost == 0.0
    f = right.evaluate_cost(right.running_cost, right.m0)
    assert np.all(f >= right.params["time_cost"])  # every moment inside costs time
    g = right.evaluate_cost(right.terminal_cost, right.m0)
    assert np.all(g == right.params["terminal_penalty"])
    assert crowd_exit.EXITS.keys() == {"right", "left", "both"}


def test_crowd_2d_m0_symmetry_follows_its_parameters() -> None:
    p = problems.make("crowd-2d", Nx=24, Ny=18, Nt=3)  # exit right, centre y = 1/2
    assert p.grid.boundary == (("no_flux", "exit"), ("no_flux", "no_flux"))
    np.testing.assert_allclose(p.m0, p.m0[:, ::-1], atol=1e-12)
    assert not np.allclose(p.m0, p.m0[::-1, :])  # centre x = 0.3: not symmetric in x
    top = problems.make("crowd-2d", Nx=24, Ny=18, Nt=3, exit_side="top", m0_center=(0.5, 0.3))
    assert top.grid.boundary == (("no_flux", "no_flux"), ("no_flux", "exit"))
    np.testing.assert_allclose(top.m0, top.m0[::-1, :], atol=1e-12)
    square = problems.make("crowd-2d", Nx=20, Ny=20, Nt=3, m0_center=(0.5, 0.5))
    np.testing.assert_allclose(square.m0, square.m0.T, atol=1e-12)
    assert set(crowd_2d.EXIT_SIDES) == {"right", "left", "top", "bottom"}
    # the blob is centred where asked
    x, y = p.grid.mesh()
    h = p.grid.cell_volume
    assert abs(np.sum(x * p.m0) * h - 0.3) < 1e-3 and abs(np.sum(y * p.m0) * h - 0.5) < 1e-9


try:
    from mfg_rl.solvers import solve
except ImportError:  # the solvers are not there yet
    solve = getattr(mfg_rl, "solve", None)


@pytest.mark.skipif(solve is None, reason="mfg_rl.solve is not available yet")
@pytest.mark.parametrize("name", ONE_D)
def test_one_d_problems_solve_at_a_tiny_size(name: str) -> None:
    p = problems.make(name, Nx=40, Nt=20)
    eq = solve(p, progress=False)
    assert eq.diagnostics.converged
    m, u = eq.m.numpy(), eq.u.numpy()
    assert m.shape == u.shape == (21, 40)
    assert np.all(np.isfinite(m)) and np.all(np.isfinite(u)) and np.all(m >= -1e-10)
    mass = m.sum(axis=1) * p.grid.cell_volume
    assert abs(mass[0] - 1.0) < 1e-10
    if p.grid.has_exit():
        assert np.all(np.diff(mass) <= 1e-10) and mass[-1] < 0.9 * mass[0]
    else:
        np.testing.assert_allclose(mass, 1.0, atol=1e-8)
