"""Parareal reproduces Sequential: one slice, finite termination at K = S, equilibria, failures."""

import numpy as np
import pytest

from mfg_rl import SolverError, problems
from mfg_rl.backends import create_backend
from mfg_rl.solvers import solve
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.parareal import Parareal
from mfg_rl.solvers.registry import STRATEGIES
from mfg_rl.solvers.trajectory import Sequential

CASES = [("lq-1d", {"Nx": 41, "Nt": 16}), ("crowd-exit-1d", {"Nx": 41, "Nt": 16}),
         ("crowd-2d", {"Nx": 10, "Ny": 10, "Nt": 8})]
IDS = [c[0] for c in CASES]


def setup(name: str, params: dict, backend: str = "numpy") -> tuple:
    """The discrete problem, a crowd ``m`` (uniform in time) and the Sequential trajectories."""
    disc = DiscreteMFG(problems.make(name, **params), create_backend(backend))
    m = disc.xp.stack([disc.m0] * (disc.Nt + 1))
    u = Sequential().hjb(disc, m).u
    return disc, m, u, Sequential().fp(disc, u, m)


def gap(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_one_slice_is_sequential(name: str, params: dict, backend: str) -> None:
    disc, m, u, m_seq = setup(name, params, backend)
    strategy = Parareal(slices=1)
    result = strategy.hjb(disc, m)
    assert gap(result.u, u) <= 1e-12
    assert gap(strategy.fp(disc, u, m), m_seq) <= 1e-12
    assert strategy.iterations == {"hjb": [1], "fp": [1]}


@pytest.mark.parametrize("slices", [2, 4, 8])
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_k_equal_slices_is_exact(name: str, params: dict, slices: int) -> None:
    """Finite termination: after S iterations every slice started from exact values.

    (With one fine step per slice the coarse step is the fine one: exact after one.)
    """
    disc, m, u, m_seq = setup(name, params)
    expected = 1 if slices == disc.Nt else slices
    strategy = Parareal(slices=slices, tol=1e-300, warm_start=False)  # never stops on tol
    assert gap(strategy.hjb(disc, m).u, u) <= 1e-10
    assert gap(strategy.fp(disc, u, m), m_seq) <= 1e-10
    assert strategy.iterations == {"hjb": [expected], "fp": [expected]}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_threaded_2d_slices_equal_one_after_the_other(backend: str) -> None:
    """2D slices swept by several threads give bitwise the trajectories of one thread (each
    slice's arithmetic is the same), and every fine step is counted once."""
    disc, m, u, _ = setup("crowd-2d", {"Nx": 12, "Ny": 10, "Nt": 12}, backend)
    results = []
    for workers in (1, 3):
        strategy = Parareal(slices=4, tol=1e-300, warm_start=False, workers=workers)
        results.append((strategy.hjb(disc, m).u, strategy.fp(disc, u, m), dict(strategy.steps)))
    assert gap(results[0][0], results[1][0]) == 0.0
    assert gap(results[0][1], results[1][1]) == 0.0
    assert results[0][2] == results[1][2]


def test_converges_before_k_equal_slices() -> None:
    """With a coarse step of two fine steps, lq-1d reaches the fine solution to 1e-8 in K < S."""
    disc, m, u, m_seq = setup("lq-1d", {"Nx": 61, "Nt": 64})
    strategy = Parareal(slices=16, coarse_factor=2, tol=1e-10, warm_start=False)
    assert gap(strategy.hjb(disc, m).u, u) <= 1e-8
    assert gap(strategy.fp(disc, u, m), m_seq) <= 1e-8
    assert max(strategy.iterations["hjb"] + strategy.iterations["fp"]) < 16


def test_warm_start_from_the_answer_takes_one_iteration() -> None:
    """Boundary values from the fine solution: one iteration (lq-1d has no congestion, so the
    crowd passed to FP only supplies the warm start)."""
    disc, m, u, m_seq = setup("lq-1d", {"Nx": 41, "Nt": 16})
    assert disc.problem.hamiltonian.congestion == 0.0
    strategy = Parareal(slices=4)
    assert gap(strategy.hjb(disc, m, u).u, u) <= 1e-10
    assert gap(strategy.fp(disc, u, m_seq), m_seq) <= 1e-10
    assert strategy.iterations == {"hjb": [1], "fp": [1]}


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_equilibrium_equals_sequential(name: str, params: dict) -> None:
    problem = problems.make(name, **params)
    reference = solve(problem, coupling="anderson", backend="numpy", progress=False, tol=1e-10)
    strategy = Parareal(slices=4)
    eq = solve(problem, method=strategy, coupling="anderson", backend="numpy", progress=False, tol=1e-10)
    assert eq.diagnostics.converged and eq.diagnostics.method == "parareal"
    assert gap(eq.u.numpy(), reference.u.numpy()) <= 1e-8
    assert gap(eq.m.numpy(), reference.m.numpy()) <= 1e-8
    assert eq.diagnostics.timings["parareal_fine"] > 0.0
    assert len(strategy.iterations["hjb"]) == eq.diagnostics.iterations


def test_method_name_uses_defaults() -> None:
    assert STRATEGIES["parareal"] is Parareal
    eq = solve(problems.make("lq-1d", Nx=31, Nt=16), method="parareal", backend="numpy", progress=False)
    assert eq.diagnostics.converged and eq.diagnostics.options["strategy"]["slices"] == 8


def test_too_few_iterations_raise_with_counts() -> None:
    disc, m, _, _ = setup("crowd-exit-1d", {"Nx": 41, "Nt": 16})
    with pytest.raises(SolverError, match=r"max_iter=2 iterations with slices=8"):
        Parareal(slices=8, max_iter=2, tol=1e-14, warm_start=False).hjb(disc, m)


@pytest.mark.parametrize(("options", "parameter"), [
    ({"slices": 0}, "slices"), ({"slices": 2.0}, "slices"), ({"slices": True}, "slices"),
    ({"coarse_factor": 0}, "coarse_factor"), ({"tol": 0.0}, "tol"), ({"tol": 1.5}, "tol"),
    ({"max_iter": 0}, "max_iter"), ({"warm_start": "yes"}, "warm_start"), ({"forcing": 1.0}, "forcing"),
    ({"workers": 0}, "workers"), ({"workers": 1.5}, "workers"),
])
def test_bad_options_name_the_parameter(options: dict, parameter: str) -> None:
    with pytest.raises((TypeError, ValueError), match=parameter):
        Parareal(**options)


def test_more_slices_than_steps_and_bad_method_objects_raise() -> None:
    disc, m, _, _ = setup("lq-1d", {"Nx": 21, "Nt": 4})
    with pytest.raises(ValueError, match="slices"):
        Parareal(slices=8).hjb(disc, m)
    with pytest.raises(TypeError, match="method"):
        solve(problems.make("lq-1d", Nx=21, Nt=4), method=object(), progress=False)
