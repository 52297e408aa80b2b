"""Random and bad input thrown at the core nouns: each either raises a ValueError/TypeError
or builds an object whose numbers a solver can use (finite, positive spacings, a density
of mass one)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mfg_rl.core import BOUNDARY_KINDS, Grid, Hamiltonian, MFGProblem, TimeGrid

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- strategies ---------------------------------------------------------------------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.complex_numbers(allow_nan=False),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
reals = st.one_of(st.floats(), st.integers(-(10**6), 10**6), st.floats(-10, 10))
numbers = st.one_of(reals, st.sampled_from([np.float64(0.5), np.float32(2.0), np.int64(3)]))
small_ints = st.one_of(st.integers(-2, 40), st.sampled_from([np.int64(5), 3.0, True]))
side_names = st.sampled_from([*BOUNDARY_KINDS, "wall", "", "Periodic"])
boundary_entry = st.one_of(side_names, st.tuples(side_names, side_names),
                           st.lists(side_names, max_size=3))


@st.composite
def grid_arguments(draw: st.DrawFn) -> dict[str, Any]:
    ndim = draw(st.integers(0, 4))
    bounds = draw(st.one_of(
        st.lists(st.tuples(numbers, numbers), min_size=ndim, max_size=ndim),
        st.lists(st.lists(numbers, max_size=3), max_size=3),
        junk,
    ))
    shape = draw(st.one_of(
        st.lists(small_ints, min_size=ndim, max_size=ndim), small_ints,
        st.lists(small_ints, max_size=4), junk,
    ))
    boundary = draw(st.one_of(
        side_names,
        st.lists(boundary_entry, min_size=ndim, max_size=ndim),
        st.lists(boundary_entry, max_size=4),
        junk,
    ))
    return {"bounds": bounds, "shape": shape, "boundary": boundary}


def small_grids() -> st.SearchStrategy[Grid]:
    """Valid 1D/2D grids of at most 20 x 20 cells."""
    side = st.sampled_from(BOUNDARY_KINDS)
    lo = st.floats(-5, 5)
    width = st.floats(0.1, 10)
    axis = st.tuples(lo, width, st.integers(3, 20), side, side)

    def build(axes: list[tuple[float, float, int, str, str]]) -> Grid:
        boundary = [(a, b) if "periodic" not in (a, b) else "periodic" for *_, a, b in axes]
        return Grid([(lo, lo + w) for lo, w, *_ in axes], [n for _, _, n, *_ in axes], boundary)

    return st.lists(axis, min_size=1, max_size=2).map(build)


def assert_valid_grid(grid: Grid) -> None:
    assert 1 <= grid.ndim <= 3
    assert len(grid.bounds) == len(grid.shape) == len(grid.boundary) == grid.ndim
    for (lo, hi), n, pair, h, x in zip(grid.bounds, grid.shape, grid.boundary, grid.spacing,
                                       grid.coordinates(), strict=True):
        assert isinstance(n, int) and n >= 3
        assert isinstance(lo, float) and isinstance(hi, float) and lo < hi
        assert math.isfinite(h) and h > 0, f"spacing {h} of the box [{lo}, {hi}] is unusable"
        assert set(pair) <= set(BOUNDARY_KINDS) and len(pair) == 2
        assert ("periodic" not in pair) or pair == ("periodic", "periodic")
        assert x.shape == (n,) and np.all(np.isfinite(x)) and np.all(np.diff(x) > 0)
        assert lo < x[0] and x[-1] < hi
    assert math.isfinite(grid.cell_volume) and grid.cell_volume > 0


# -- Grid ---------------------------------------------------------------------------------


@SETTINGS
@given(grid_arguments())
@example({"bounds": [(-1e308, 1e308)], "shape": 3, "boundary": "no_flux"})  # width overflows
@example({"bounds": [(0.0, 5e-324)], "shape": 3, "boundary": "exit"})  # spacing underflows
def test_grid_raises_or_is_valid(kwargs: dict[str, Any]) -> None:
    try:
        grid = Grid(**kwargs)
    except (ValueError, TypeError):
        return
    assert_valid_grid(grid)


@SETTINGS
@given(small_grids())
def test_valid_grids_round_trip(grid: Grid) -> None:
    assert_valid_grid(grid)
    assert Grid(grid.bounds, grid.shape, grid.boundary) == grid
    assert all(grid.contains(np.stack([x[:1] for x in grid.coordinates()], axis=-1)))


# -- TimeGrid -----------------------------------------------------------------------------


@SETTINGS
@given(T=st.one_of(numbers, junk), Nt=st.one_of(small_ints, st.integers(-5, 10**5), junk))
@example(T=5e-324, Nt=2)  # the time step underflows to 0
def test_time_grid_raises_or_is_valid(T: Any, Nt: Any) -> None:
    try:
        time = TimeGrid(T, Nt)
    except (ValueError, TypeError):
        return
    assert isinstance(time.T, float) and math.isfinite(time.T) and time.T > 0
    assert isinstance(time.Nt, int) and time.Nt >= 1
    assert math.isfinite(time.dt) and time.dt > 0, f"time step {time.dt} is unusable"
    times = time.times()
    assert times.shape == (time.Nt + 1,) and times[0] == 0.0 and times[-1] == time.T


# -- Hamiltonian --------------------------------------------------------------------------


@SETTINGS
@given(control_cost=st.one_of(numbers, junk), congestion=st.one_of(numbers, junk),
       exponent=st.one_of(numbers, junk))
def test_hamiltonian_raises_or_is_valid(control_cost: Any, congestion: Any, exponent: Any) -> None:
    try:
        h = Hamiltonian(control_cost=control_cost, congestion=congestion, exponent=exponent)
    except (ValueError, TypeError):
        return
    assert math.isfinite(h.control_cost) and h.control_cost > 0
    assert math.isfinite(h.congestion) and h.congestion >= 0
    assert math.isfinite(h.exponent) and h.exponent > 0
    assert h.has_congestion == (h.congestion > 0)
    if 1e-100 < h.control_cost < 1e100:  # away from over- and underflow of 1 / lambda
        p, m = np.linspace(-1.0, 1.0, 5), np.zeros(5)
        np.testing.assert_allclose(h(0.0, p, m), p**2 / (2 * h.control_cost))
        np.testing.assert_allclose(h.optimal_control(0.0, p, m), -p / h.control_cost)


# -- MFGProblem ---------------------------------------------------------------------------

costs = st.sampled_from([
    lambda x, m: m,
    lambda x, m: 0.0,
    lambda x, m: np.log(m + 1.0),
    lambda x, m: m * np.nan,
    lambda x, m: np.ones(7),
    lambda x, m: None,
    lambda x, m: [0.0],
    1.0,
    None,
])


@st.composite
def m0_values(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    wrong = tuple(n + draw(st.integers(-2, 2)) for n in shape)
    return draw(st.one_of(
        hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1e3)),
        hnp.arrays(np.float64, shape, elements=st.floats(allow_subnormal=False)),
        hnp.arrays(np.float64, st.sampled_from([shape, wrong, shape[:1]]),
                   elements=st.floats(0.0, 10.0)),
        st.lists(st.floats(0.0, 10.0), max_size=25),
        numbers,
        st.just(lambda x: np.exp(-np.sum(np.square(x), axis=0))),
        junk,
    ))


@st.composite
def problem_arguments(draw: st.DrawFn) -> dict[str, Any]:
    grid = draw(small_grids())
    return {
        "grid": draw(st.one_of(st.just(grid), st.just(grid), junk)),
        "time": draw(st.one_of(st.builds(TimeGrid, st.floats(0.1, 5.0), st.integers(1, 20)),
                               junk)),
        "sigma": draw(st.one_of(numbers, junk)),
        "running_cost": draw(costs),
        "terminal_cost": draw(costs),
        "m0": draw(m0_values(grid.shape)),
        "exit_cost": draw(st.one_of(st.floats(-10, 10), numbers, junk)),
    }


def assert_valid_problem(problem: MFGProblem) -> None:
    assert_valid_grid(problem.grid)
    assert isinstance(problem.sigma, float) and problem.sigma >= 0 and math.isfinite(problem.nu)
    exit_cost = problem.exit_cost
    real = (int, float, np.integer, np.floating)
    assert isinstance(exit_cost, real) and not isinstance(exit_cost, bool), (
        f"exit_cost {exit_cost!r} was accepted but is not a number"
    )
    assert math.isfinite(exit_cost)
    m0 = problem.m0
    assert isinstance(m0, np.ndarray) and m0.dtype == np.float64
    assert m0.shape == problem.grid.shape
    assert np.all(np.isfinite(m0)) and np.all(m0 >= 0)
    assert float(m0.sum()) * problem.grid.cell_volume == pytest.approx(1.0, rel=1e-9)
    for cost in (problem.running_cost, problem.terminal_cost):
        value = np.asarray(problem.evaluate_cost(cost, m0))
        assert value.shape == problem.grid.shape and np.all(np.isfinite(value))
    assert problem.fingerprint() == problem.fingerprint()


@SETTINGS
@given(problem_arguments())
@example({  # finite values whose mass overflows to inf: m0 came out as all zeros
    "grid": Grid([(0.0, 1.0)], 4), "time": TimeGrid(1.0, 4), "sigma": 0.1,
    "running_cost": lambda x, m: m, "terminal_cost": lambda x, m: 0.0,
    "m0": np.full(4, 1e308), "exit_cost": 0.0,
})
@example({  # a string exit cost was accepted and kept as a string
    "grid": Grid([(0.0, 1.0)], 4), "time": TimeGrid(1.0, 4), "sigma": 0.1,
    "running_cost": lambda x, m: m, "terminal_cost": lambda x, m: 0.0,
    "m0": 1.0, "exit_cost": "1",
})
@example({  # a cost returning None raised AttributeError
    "grid": Grid([(0.0, 1.0)], 4), "time": TimeGrid(1.0, 4), "sigma": 0.1,
    "running_cost": lambda x, m: None, "terminal_cost": lambda x, m: 0.0,
    "m0": 1.0, "exit_cost": 0.0,
})
def test_problem_raises_or_is_valid(kwargs: dict[str, Any]) -> None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", UserWarning)  # m0 normalisation, tested elsewhere
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy's array -> float
        try:
            problem = MFGProblem(**kwargs)
        except (ValueError, TypeError):
            return
        assert_valid_problem(problem)
