"""``solve`` never drops an option silently: each one is used or raises, naming itself."""

import numpy as np
import pytest

from mfg_rl import problems, solve
from mfg_rl.solvers import Anderson, FictitiousPlay, FixedPoint, LinearSolver, Newton, ParticleFP


@pytest.fixture(scope="module")
def problem():
    return problems.make("lq-1d", Nx=21, Nt=5)


# -- damping ---------------------------------------------------------------------------
@pytest.mark.parametrize("coupling", ["fixed_point", "anderson"])
def test_damping_reaches_the_policies_that_have_one(problem, coupling):
    eq = solve(problem, coupling=coupling, damping=0.5, backend="numpy", progress=False)
    assert eq.diagnostics.converged
    assert eq.diagnostics.options["damping"] == 0.5


@pytest.mark.parametrize("coupling", ["fictitious_play", "newton"])
def test_damping_raises_with_a_policy_without_damping(problem, coupling):
    hint = "'fixed_point' or 'anderson'"
    with pytest.raises(ValueError, match=rf"damping=0.5 .*coupling='{coupling}'.*{hint}"):
        solve(problem, coupling=coupling, damping=0.5, progress=False)


@pytest.mark.parametrize(
    ("policy", "hint"),
    [(FixedPoint(), r"FixedPoint\(damping=0.5\)"), (Anderson(depth=3), r"Anderson\(damping=0.5\)"),
     (FictitiousPlay(), "FictitiousPlay has none"), (Newton(), "Newton has none")],
)
def test_damping_raises_with_a_policy_object(problem, policy, hint):
    with pytest.raises(ValueError, match=rf"damping=0.5 .*policy object.*{hint}"):
        solve(problem, coupling=policy, damping=0.5, progress=False)


@pytest.mark.parametrize("coupling", ["fictitious_play", "newton", FixedPoint(0.5), FictitiousPlay()])
def test_default_damping_works_with_every_policy(problem, coupling):
    eq = solve(problem, coupling=coupling, damping=1.0, tol=1e-2, backend="numpy", progress=False)
    assert eq.diagnostics.converged  # tol: fictitious play converges like 1/k


# -- particle options ------------------------------------------------------------------
@pytest.mark.parametrize(("name", "value"), [("n_particles", 1000), ("seed", 1), ("seed", 0)])
def test_particle_options_raise_with_finite_differences(problem, name, value):
    with pytest.raises(ValueError, match=rf"{name}={value} is only used by particles.*fp='particles'"):
        solve(problem, fp="fdm", progress=False, **{name: value})


@pytest.mark.parametrize(("name", "value"), [("n_particles", 1000), ("seed", 1)])
def test_particle_options_raise_beside_a_particle_object(problem, name, value):
    with pytest.raises(ValueError, match=rf"{name}={value} is not used with fp=ParticleFP.*\({name}="):
        solve(problem, fp=ParticleFP(2000), tol=0.05, progress=False, **{name: value})


def test_particles_default_to_100k_particles_seed_0(problem):
    eq = solve(problem, fp="particles", tol=0.05, max_iter=1, allow_unconverged=True, backend="numpy",
               progress=False)
    assert eq.diagnostics.options["n_particles"] == 100_000 and eq.diagnostics.options["seed"] == 0


def test_a_particle_object_carries_bandwidth_and_kde_method(problem):
    runs = {}
    for bandwidth in ("scott", 0.5):
        particles = ParticleFP(2000, seed=3, bandwidth=bandwidth, kde_method="exact")
        runs[bandwidth] = solve(problem, fp=particles, tol=0.05, max_iter=2, allow_unconverged=True,
                                backend="numpy", progress=False)
    d = runs[0.5].diagnostics
    assert d.fp == "particles"
    assert d.options | {"bandwidth": 0.5, "kde_method": "exact", "n_particles": 2000, "seed": 3} == d.options
    assert runs["scott"].diagnostics.options["bandwidth"] == "scott"
    assert np.max(np.abs(runs[0.5].m.numpy() - runs["scott"].m.numpy())) > 1e-6  # the bandwidth was used


def test_a_particle_object_keeps_the_tol_and_coupling_rules(problem):
    with pytest.raises(ValueError, match="tol"):
        solve(problem, fp=ParticleFP(1000), tol=1e-6, progress=False)
    with pytest.raises(ValueError, match="coupling='newton' needs fp='fdm'"):
        solve(problem, fp=ParticleFP(1000), coupling="newton", tol=0.05, progress=False)


def test_fp_of_another_type_raises(problem):
    with pytest.raises(TypeError, match="fp must be one of fdm, particles or a ParticleFP"):
        solve(problem, fp=3, progress=False)
    with pytest.raises(ValueError, match="fp must be one of fdm, particles or a ParticleFP, got 'sde'"):
        solve(problem, fp="sde", progress=False)


# -- linear solver -----------------------------------------------------------------------
def test_linear_solver_options_reach_the_2d_steps():
    """Direct (SuperLU) and Krylov (ADI, generic path) steps give the same equilibrium to 1e-9."""
    crowd = problems.make("crowd-2d", Nx=10, Ny=8, Nt=4)
    krylov = solve(crowd, backend="numpy", progress=False,
                   linear=LinearSolver(preconditioner="adi", compiled=False))
    direct = solve(crowd, backend="numpy", progress=False, linear=LinearSolver(method="direct"))
    assert krylov.diagnostics.options["linear"]["preconditioner"] == "adi"
    assert direct.diagnostics.options["linear"]["method"] == "direct"
    np.testing.assert_allclose(krylov.u.numpy(), direct.u.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(krylov.m.numpy(), direct.m.numpy(), rtol=0, atol=1e-9)


def test_linear_solver_raises_on_a_1d_grid_and_for_a_wrong_type(problem):
    with pytest.raises(ValueError, match="not used on a 1D grid"):
        solve(problem, linear=LinearSolver(), progress=False)
    with pytest.raises(TypeError, match="linear must be a mfg_rl.solvers.LinearSolver"):
        solve(problem, linear="direct", progress=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"method": "lu"}, "method must be one of 'krylov', 'direct'"),
     ({"preconditioner": "ilu"}, "preconditioner must be one of"),
     ({"rtol": 0.0}, r"rtol must be a finite number in \(0, 1\)"),
     ({"max_iter": 0}, "max_iter must be an integer >= 1"),
     ({"compiled": "yes"}, "compiled must be True or False")],
)
def test_linear_solver_options_are_checked(options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        LinearSolver(**options)


# -- placement ---------------------------------------------------------------------------
def test_solve_places_itself_on_numpy_unless_told_otherwise(problem, monkeypatch):
    """numpy is the fastest place for a solve today (benchmarks/placement.py: torch 3.4x slower
    on the CPU for lq-1d 201x50); $MFG_RL_BACKEND and backend= still decide when given."""
    monkeypatch.delenv("MFG_RL_BACKEND", raising=False)
    assert solve(problem, progress=False).diagnostics.backend == "numpy"
    monkeypatch.setenv("MFG_RL_BACKEND", "torch")
    assert solve(problem, progress=False).diagnostics.backend == "torch"
    assert solve(problem, progress=False, backend="numpy").diagnostics.backend == "numpy"
