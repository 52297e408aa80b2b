"""The nouns of mfg_rl.core: grids, time grids, Hamiltonians, problems and fields."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mfg_rl.core import Grid, Hamiltonian, MFGProblem, SpacetimeField, TimeGrid

# -- helpers ------------------------------------------------------------------------------


def gaussian(x: np.ndarray) -> np.ndarray:
    return np.exp(-((x - 0.5) ** 2) / 0.02)


def problem(**overrides: object) -> MFGProblem:
    """A small valid 1D problem; keyword arguments replace its fields."""
    spec: dict[str, object] = {
        "grid": Grid([(0.0, 1.0)], 20),
        "time": TimeGrid(1.0, 10),
        "sigma": 0.3,
        "running_cost": lambda x, m: m,
        "terminal_cost": lambda x, m: (x - 0.5) ** 2,
        "m0": gaussian,
    }
    spec.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # normalisation of m0 is tested apart
        return MFGProblem(**spec)


# -- Grid ---------------------------------------------------------------------------------


def test_grid_coordinates_are_cell_centres() -> None:
    grid = Grid([(0.0, 1.0)], 4)
    (x,) = grid.coordinates()
    np.testing.assert_allclose(x, [0.125, 0.375, 0.625, 0.875])
    assert x.dtype == np.float64


def test_grid_spacing_and_volume_2d() -> None:
    grid = Grid([(-1.0, 1.0), (0.0, 3.0)], (4, 6), boundary="periodic")
    assert grid.ndim == 2 and grid.shape == (4, 6) and grid.size == 24
    assert grid.spacing == pytest.approx((0.5, 0.5))
    assert grid.cell_volume == pytest.approx(0.25)
    x, y = grid.coordinates()
    np.testing.assert_allclose(x, [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(np.diff(y), 0.5)
    assert y[0] == pytest.approx(0.25) and y[-1] == pytest.approx(2.75)
    # every centre is half a cell from the faces: the box is covered exactly
    assert x[0] - grid.bounds[0][0] == pytest.approx(grid.spacing[0] / 2)
    X, Y = grid.mesh()
    assert X.shape == Y.shape == (4, 6)
    np.testing.assert_array_equal(X[:, 0], x)
    np.testing.assert_array_equal(Y[0, :], y)


def test_grid_shape_int_and_boundary_forms() -> None:
    grid = Grid([(0.0, 2.0)], 5, boundary=[("no_flux", "exit")])
    assert grid.shape == (5,)
    assert grid.boundary == (("no_flux", "exit"),)
    assert grid.has_exit()
    assert Grid([(0, 1), (0, 1)], (3, 3)).boundary == (("no_flux", "no_flux"),) * 2
    assert not Grid([(0, 1)], 3, boundary="periodic").has_exit()
    # in 1D a bare (low, high) pair of names is the one axis's pair
    assert Grid([(0, 1)], 3, boundary=("exit", "no_flux")).boundary == (("exit", "no_flux"),)


def test_grid_contains() -> None:
    grid = Grid([(0.0, 1.0), (0.0, 2.0)], (3, 3))
    inside = grid.contains(np.array([[0.5, 1.0], [1.0, 2.0], [1.1, 0.5], [0.5, -0.1]]))
    np.testing.assert_array_equal(inside, [True, True, False, False])


def test_grid_is_frozen_and_comparable() -> None:
    assert Grid([(0, 1)], 8) == Grid([(0.0, 1.0)], (8,), "no_flux")
    with pytest.raises(AttributeError):
        Grid([(0, 1)], 8).shape = (9,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"bounds": [(0, 1)], "shape": 2}, ValueError, "shape[0]"),
        ({"bounds": [(0, 1)], "shape": 4.0}, TypeError, "shape"),
        ({"bounds": [(0, 1)], "shape": True}, TypeError, "shape"),
        ({"bounds": [(0, 1)], "shape": (4, 4)}, ValueError, "shape"),
        ({"bounds": [(1, 0)], "shape": 4}, ValueError, "bounds[0]"),
        ({"bounds": [(0, 0)], "shape": 4}, ValueError, "bounds[0]"),
        ({"bounds": [(0, math.inf)], "shape": 4}, ValueError, "bounds[0][1]"),
        ({"bounds": [(math.nan, 1)], "shape": 4}, ValueError, "bounds[0][0]"),
        ({"bounds": [("a", 1)], "shape": 4}, TypeError, "bounds[0][0]"),
        ({"bounds": [(0, 1, 2)], "shape": 4}, TypeError, "bounds"),
        ({"bounds": [], "shape": ()}, ValueError, "bounds"),
        ({"bounds": [(0, 1)] * 4, "shape": (3,) * 4}, ValueError, "bounds"),
        ({"bounds": [(0, 1)], "shape": 4, "boundary": "wall"}, ValueError, "boundary[0]"),
        ({"bounds": [(0, 1)], "shape": 4, "boundary": [("exit", "wall")]}, ValueError,
         "boundary[0]"),
        ({"bounds": [(0, 1)], "shape": 4, "boundary": [("periodic", "no_flux")]}, ValueError,
         "boundary[0]"),
        ({"bounds": [(0, 1), (0, 1)], "shape": (4, 4),
          "boundary": ["no_flux", ("exit", "periodic")]}, ValueError, "boundary[1]"),
        ({"bounds": [(0, 1)], "shape": 4, "boundary": ["exit", "exit", "exit"]}, ValueError,
         "boundary"),
        ({"bounds": [(0, 1), (0, 1)], "shape": (4, 4), "boundary": ["exit"]}, ValueError,
         "boundary"),
        ({"bounds": [(0, 1)], "shape": 4, "boundary": [("exit",)]}, ValueError, "boundary[0]"),
    ],
)
def test_grid_rejects_bad_input_naming_the_parameter(
    kwargs: dict, error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as info:
        Grid(**kwargs)
    assert names in str(info.value)


def test_grid_unknown_boundary_lists_allowed() -> None:
    with pytest.raises(ValueError, match="must be one of .periodic., .no_flux., .exit."):
        Grid([(0, 1)], 4, boundary="reflecting")


# -- TimeGrid -----------------------------------------------------------------------------


def test_time_grid_levels() -> None:
    time = TimeGrid(T=2.0, Nt=4)
    assert time.dt == pytest.approx(0.5)
    np.testing.assert_allclose(time.times(), [0.0, 0.5, 1.0, 1.5, 2.0])
    assert TimeGrid(1, 3).T == 1.0 and isinstance(TimeGrid(1, 3).T, float)
    assert TimeGrid(1.0, np.int64(3)).Nt == 3


@pytest.mark.parametrize(
    ("T", "Nt", "error", "names"),
    [
        (0.0, 10, ValueError, "T"),
        (-1.0, 10, ValueError, "T"),
        (math.inf, 10, ValueError, "T"),
        (math.nan, 10, ValueError, "T"),
        ("1", 10, TypeError, "T"),
        (1.0, 0, ValueError, "Nt"),
        (1.0, -3, ValueError, "Nt"),
        (1.0, 2.5, TypeError, "Nt"),
        (1.0, True, TypeError, "Nt"),
    ],
)
def test_time_grid_rejects_bad_input(T: object, Nt: object, error: type, names: str) -> None:
    with pytest.raises(error, match=rf"\b{names}\b"):
        TimeGrid(T, Nt)  # type: ignore[arg-type]


# -- Hamiltonian --------------------------------------------------------------------------


def test_hamiltonian_quadratic() -> None:
    h = Hamiltonian(control_cost=2.0)
    p = np.array([-2.0, 0.0, 4.0])
    np.testing.assert_allclose(h(0.0, p, 0.0), p**2 / 4)
    np.testing.assert_allclose(h.dH_dp(0.0, p, 0.0), p / 2)
    np.testing.assert_allclose(h.optimal_control(0.0, p, 0.0), -p / 2)
    assert not h.has_congestion


def test_hamiltonian_legendre_duality() -> None:
    """``L(alpha*) = p . dH/dp - H`` at the optimal control, with congestion too."""
    h = Hamiltonian(control_cost=0.5, congestion=2.0, exponent=0.5)
    p, m = np.linspace(-3, 3, 7), np.linspace(0, 2, 7)
    alpha = h.optimal_control(0.0, p, m)
    np.testing.assert_allclose(h.lagrangian(0.0, alpha, m), p * h.dH_dp(0.0, p, m) - h(0.0, p, m))
    # congestion slows agents in crowds
    assert np.all(np.diff(np.abs(h.optimal_control(0.0, 1.0, m))) < 0)


def test_hamiltonian_2d_components() -> None:
    h = Hamiltonian()
    p = (np.array([3.0]), np.array([4.0]))
    np.testing.assert_allclose(h(0.0, p, 0.0), 12.5)
    ax, ay = h.optimal_control(0.0, p, 0.0)
    np.testing.assert_allclose((ax, ay), ([-3.0], [-4.0]))


def test_hamiltonian_works_on_torch() -> None:
    h = Hamiltonian(congestion=1.0)
    p, m = torch.linspace(-1, 1, 5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    value = h(None, p, m)
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
    torch.testing.assert_close(value, p**2 / 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"control_cost": 0.0}, ValueError, "control_cost"),
        ({"control_cost": -1.0}, ValueError, "control_cost"),
        ({"control_cost": math.inf}, ValueError, "control_cost"),
        ({"control_cost": "1"}, TypeError, "control_cost"),
        ({"congestion": -0.1}, ValueError, "congestion"),
        ({"congestion": math.nan}, ValueError, "congestion"),
        ({"exponent": 0.0}, ValueError, "exponent"),
        ({"exponent": None}, TypeError, "exponent"),
        ({"exponent": True}, TypeError, "exponent"),
    ],
)
def test_hamiltonian_rejects_bad_input(kwargs: dict, error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        Hamiltonian(**kwargs)


# -- MFGProblem ---------------------------------------------------------------------------


def test_problem_normalises_m0_and_derives_nu() -> None:
    p = problem(sigma=0.4)
    assert p.nu == pytest.approx(0.08)
    assert p.ndim == 1
    assert isinstance(p.m0, np.ndarray) and p.m0.shape == (20,) and p.m0.dtype == np.float64
    assert p.m0.sum() * p.grid.cell_volume == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p.m0 / p.m0.max(), gaussian(p.grid.coordinates()[0]) /
                               gaussian(p.grid.coordinates()[0]).max())


def test_problem_m0_off_by_more_than_tolerance_warns() -> None:
    grid = Grid([(0.0, 2.0)], 10)
    with pytest.warns(UserWarning, match="m0 had mass 2") as record:
        p = MFGProblem(grid=grid, time=TimeGrid(1.0, 5), sigma=0.1,
                       running_cost=lambda x, m: m, terminal_cost=lambda x, m: 0 * m,
                       m0=np.ones(10))
    assert record[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_allclose(p.m0, 0.5)
    assert any("normalised" in note for note in p.notes)


def test_problem_normalised_m0_is_silent() -> None:
    grid = Grid([(0.0, 2.0)], 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = MFGProblem(grid=grid, time=TimeGrid(1.0, 5), sigma=0.1,
                       running_cost=lambda x, m: m, terminal_cost=lambda x, m: 0 * m,
                       m0=np.full(10, 0.5))
    assert p.notes == ()


def test_problem_m0_scalar_broadcasts_and_2d_function() -> None:
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (4, 5))
    p = problem(grid=grid, m0=lambda xy: np.exp(-xy[0] ** 2 - xy[1] ** 2),
                terminal_cost=lambda xy, m: xy[0] + xy[1])
    assert p.m0.shape == (4, 5)
    assert p.m0.sum() * grid.cell_volume == pytest.approx(1.0)
    assert isinstance(p.points(), tuple) and p.points()[0].shape == (4, 5)
    flat = problem(m0=1.0)
    np.testing.assert_allclose(flat.m0, 1.0)


def test_problem_costs_are_broadcast_to_the_grid() -> None:
    p = problem(running_cost=lambda x, m: 3.0)
    value = p.evaluate_cost(p.running_cost, p.m0)
    assert value.shape == (20,)
    np.testing.assert_allclose(value, 3.0)


def test_problem_points_on_a_backend() -> None:
    from mfg_rl import create_backend

    x = problem().points(create_backend("torch"))
    assert isinstance(x, torch.Tensor) and x.shape == (20,) and x.dtype == torch.float64


@pytest.mark.parametrize(
    ("overrides", "error", "names"),
    [
        ({"sigma": -0.1}, ValueError, "sigma"),
        ({"sigma": math.nan}, ValueError, "sigma"),
        ({"sigma": "0.1"}, TypeError, "sigma"),
        ({"sigma": None}, TypeError, "sigma"),
        ({"m0": -gaussian(np.linspace(0.025, 0.975, 20))}, ValueError, "m0"),
        ({"m0": np.zeros(20)}, ValueError, "m0"),
        ({"m0": lambda x: 0.0 * x}, ValueError, "m0"),
        ({"m0": np.full(20, np.nan)}, ValueError, "m0"),
        ({"m0": np.r_[np.ones(19), np.inf]}, ValueError, "m0"),
        ({"m0": np.ones(21)}, ValueError, "m0"),
        ({"m0": np.ones((20, 2))}, ValueError, "m0"),
        ({"m0": "uniform"}, TypeError, "m0"),
        ({"grid": [(0, 1)]}, TypeError, "grid"),
        ({"time": (1.0, 10)}, TypeError, "time"),
        ({"hamiltonian": 1.0}, TypeError, "hamiltonian"),
        ({"running_cost": 1.0}, TypeError, "running_cost"),
        ({"terminal_cost": None}, TypeError, "terminal_cost"),
        ({"running_cost": lambda x, m: np.log(m - m)}, ValueError, "running_cost"),
        ({"terminal_cost": lambda x, m: np.ones(7)}, ValueError, "shape"),
        ({"exit_cost": math.inf}, ValueError, "exit_cost"),
    ],
)
def test_problem_rejects_bad_input_naming_the_parameter(
    overrides: dict, error: type, names: str
) -> None:
    with np.errstate(all="ignore"), pytest.raises(error, match=names):
        problem(**overrides)


def test_problem_fingerprint_is_stable_across_constructions() -> None:
    first, second = problem(), problem()
    assert first is not second
    assert first.fingerprint() == second.fingerprint()
    assert first.fingerprint() == first.fingerprint()
    assert len(first.fingerprint()) == 20


@pytest.mark.parametrize(
    "overrides",
    [
        {"grid": Grid([(0.0, 1.0)], 21)},
        {"grid": Grid([(0.0, 1.1)], 20)},
        {"grid": Grid([(0.0, 1.0)], 20, boundary="periodic")},
        {"grid": Grid([(0.0, 1.0)], 20, boundary="exit")},
        {"time": TimeGrid(1.5, 10)},
        {"time": TimeGrid(1.0, 11)},
        {"sigma": 0.31},
        {"hamiltonian": Hamiltonian(control_cost=2.0)},
        {"hamiltonian": Hamiltonian(congestion=0.5)},
        {"hamiltonian": Hamiltonian(congestion=0.5, exponent=2.0)},
        {"exit_cost": 1.0},
        {"m0": lambda x: np.exp(-((x - 0.4) ** 2) / 0.02)},
        {"running_cost": lambda x, m: 2 * m},
        {"terminal_cost": lambda x, m: (x - 0.4) ** 2},
        {"name": "crowd"},
        {"params": {"a": 1}},
    ],
    ids=lambda overrides: next(iter(overrides)),
)
def test_problem_fingerprint_changes_with_every_parameter(overrides: dict) -> None:
    assert problem(**overrides).fingerprint() != problem().fingerprint()


def test_problem_fingerprint_follows_catalogue_params() -> None:
    base = problem(name="lq-1d", params={"a": 1.0, "b": 2})
    assert base.fingerprint() == problem(name="lq-1d", params={"b": 2, "a": 1.0}).fingerprint()
    assert base.fingerprint() != problem(name="lq-1d", params={"a": 1.5, "b": 2}).fingerprint()


# -- SpacetimeField -----------------------------------------------------------------------


def field(data: object = None) -> SpacetimeField:
    grid, time = Grid([(0.0, 2.0)], 4), TimeGrid(1.0, 2)
    if data is None:
        data = np.arange(12, dtype=np.float64).reshape(3, 4)
    return SpacetimeField(data, grid, time)


def test_field_shape_is_checked() -> None:
    assert field().shape == (3, 4)
    for bad in (np.zeros((2, 4)), np.zeros((3, 5)), np.zeros(12), np.zeros((3, 4, 1))):
        with pytest.raises(ValueError, match=r"expected \(3, 4\)"):
            field(bad)


def test_field_at() -> None:
    f = field()
    np.testing.assert_array_equal(f.at(0), [0, 1, 2, 3])
    np.testing.assert_array_equal(f.at(2), [8, 9, 10, 11])
    np.testing.assert_array_equal(f.at(-1), f.at(2))
    for bad in (3, -4):
        with pytest.raises(IndexError, match="time index"):
            f.at(bad)


def test_field_numpy_from_torch() -> None:
    data = torch.arange(12, dtype=torch.float32, requires_grad=False).reshape(3, 4)
    out = field(data).numpy()
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_array_equal(out, np.arange(12).reshape(3, 4))
    grad = field(torch.ones(3, 4, dtype=torch.float64, requires_grad=True)).numpy()
    np.testing.assert_array_equal(grad, 1.0)


@pytest.mark.parametrize("target", ["numpy", "torch"])
def test_field_to_backend(target: str) -> None:
    from mfg_rl import create_backend

    f = field()
    moved = f.to(target)
    backend = create_backend(target)
    assert backend.is_native(moved.data)
    assert moved.grid == f.grid and moved.time == f.time
    np.testing.assert_array_equal(moved.numpy(), f.numpy())
    again = moved.to(backend)
    assert backend.is_native(again.data)
    np.testing.assert_array_equal(again.numpy(), f.numpy())


def test_field_to_torch_keeps_float64() -> None:
    assert field().to("torch").data.dtype == torch.float64


def test_field_integral_cell_centre_rule() -> None:
    f = field()  # h = 0.5
    assert f.integral(0) == pytest.approx(0.5 * (0 + 1 + 2 + 3))
    assert f.integral(2) == pytest.approx(0.5 * (8 + 9 + 10 + 11))
    assert isinstance(f.integral(1), float)
    # the initial density of a problem integrates to one
    p = problem()
    m = SpacetimeField(np.broadcast_to(p.m0, (11, 20)), p.grid, p.time)
    assert m.integral(0) == pytest.approx(1.0)
    assert field(torch.ones(3, 4)).integral(1) == pytest.approx(2.0)


def test_hamiltonian_accepts_numpy_scalars() -> None:
    h = Hamiltonian(control_cost=np.float32(2.0), congestion=np.int64(1))
    assert h.control_cost == 2.0 and isinstance(h.control_cost, float) and h.congestion == 1.0


def test_torch_backend_names_a_bad_dtype() -> None:
    from mfg_rl.backends import create_backend

    with pytest.raises(ValueError, match="int32"):
        create_backend("torch", dtype="int32")
