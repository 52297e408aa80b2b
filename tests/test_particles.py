"""Particle Fokker-Planck: closed-form moments, convergence to the FDM density, seeds, exits, solve."""

from __future__ import annotations

import numpy as np
import pytest

from mfg_rl import problems
from mfg_rl.backends import available_backends, create_backend
from mfg_rl.core import Grid, MFGProblem, TimeGrid
from mfg_rl.solvers import DiscreteMFG, Sequential, solve
from mfg_rl.solvers.particles import ParticleFP

BACKENDS = [b for b in ("numpy", "torch") if b in available_backends()]


def exact_fields(problem: MFGProblem) -> tuple[np.ndarray, np.ndarray]:
    """The LQ closed-form ``u`` and ``m`` sampled on the grid at every level."""
    exact, (x,), times = problem.exact, problem.grid.coordinates(), problem.time.times()
    return np.stack([exact.u(t, x) for t in times]), np.stack([exact.m(t, x) for t in times])


def test_lq_moments_match_closed_form_within_4_standard_errors():
    """N = 1e5, exact u on the grid: mean and variance of the KDE density at every level.

    The KDE adds ``sigma^2`` to the variance, which is subtracted. Standard errors of a
    Gaussian sample: ``sqrt(v/N)`` (mean), ``v sqrt(2/N)`` (variance). The grid (h = 0.01)
    and step (dt = 0.01) keep the upwind-drift and Euler-Maruyama biases near 1 SE.
    """
    n = 100_000
    problem = problems.make("lq-1d", Nx=801, Nt=100)
    u, m = exact_fields(problem)
    run = ParticleFP(n, seed=1).simulate(DiscreteMFG(problem, create_backend("numpy")), u, m)
    (x,), h, times = problem.grid.coordinates(), problem.grid.spacing[0], problem.time.times()
    mean = run.m @ x * h
    kernel = np.array([0.0] + [s[0] ** 2 for s in run.bandwidth])
    var = np.sum((x[None, :] - mean[:, None]) ** 2 * run.m, axis=1) * h - kernel
    v = problem.exact.variance(times)
    z_mean = (mean - problem.exact.mean(times)) / np.sqrt(v / n)
    z_var = (var - v) / (v * np.sqrt(2.0 / n))
    assert np.max(np.abs(z_mean)) < 4.0, np.max(np.abs(z_mean))
    assert np.max(np.abs(z_var)) < 4.0, np.max(np.abs(z_var))


def test_l1_distance_to_fdm_decreases_with_n_at_rate_at_least_0_3():
    """Same u (closed form): L1 distance (max over levels) for N = 1e3..1e6, log-log fit.

    Scott's KDE error is O(N^(-2/5)) (bias ~ (sigma^2/2) int|m''| ~ 2e-3 at N = 1e6 here,
    variance ~ (N sigma)^(-1/2)); the N-independent floor (FDM and SDE discretisations
    differ by O(h + dt)) is bounded by |FDM - exact|, asserted below the N = 1e6 distance.
    Measured: rate ~0.45 (distances ~6e-2, 3e-2, 1e-2, 3e-3).
    """
    problem = problems.make("lq-1d", Nx=801, Nt=10, T=0.1)
    u, m = exact_fields(problem)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    m_fdm = Sequential().fp(disc, u, m)
    h, sizes = problem.grid.spacing[0], [10**3, 10**4, 10**5, 10**6]
    distances = [
        float(np.max(np.sum(np.abs(ParticleFP(n, seed=7).fp(disc, u, m) - m_fdm), axis=1) * h)) for n in sizes
    ]
    rate = -np.polyfit(np.log(sizes), np.log(distances), 1)[0]
    print(f"L1 particle vs FDM: {distances}, fitted rate {rate:.3f}")
    assert all(b < a for a, b in zip(distances, distances[1:], strict=False)), distances
    assert rate >= 0.3, (rate, distances)
    floor = float(np.max(np.sum(np.abs(m_fdm - m), axis=1) * h))
    assert floor < 0.5 * distances[-1], (floor, distances)


@pytest.mark.parametrize("name", BACKENDS)
def test_same_seed_same_particles_and_exits_conserve_mass(name):
    problem = problems.make("crowd-exit-1d", Nx=100, Nt=40)
    backend = create_backend(name)
    disc = DiscreteMFG(problem, backend)
    m = disc.xp.stack([disc.m0] * (problem.time.Nt + 1))
    u = Sequential().hjb(disc, m).u
    first = ParticleFP(20_000, seed=3, store_paths=True).simulate(disc, u, m)
    again = ParticleFP(20_000, seed=3, store_paths=True).simulate(disc, u, m)
    other = ParticleFP(20_000, seed=4, store_paths=True).simulate(disc, u, m)
    paths = backend.to_numpy(first.paths)
    np.testing.assert_array_equal(paths, backend.to_numpy(again.paths))
    assert not np.array_equal(paths, backend.to_numpy(other.paths))
    assert first.exited[-1] > 0.5 and first.exited[5] < 0.01  # the crowd leaves over time
    np.testing.assert_allclose(first.inside + first.exited, 1.0, rtol=0, atol=1e-12)
    mass = backend.to_numpy(disc.mass(first.m))
    np.testing.assert_allclose(mass, first.inside, rtol=0, atol=1e-12)
    assert np.all(np.diff(first.exited) >= 0.0)


def test_numpy_and_torch_draw_the_same_particles():
    problem = problems.make("lq-1d", Nx=51, Nt=5)
    runs = []
    for name in ("numpy", "torch"):
        backend = create_backend(name, device="cpu" if name == "torch" else None)
        disc = DiscreteMFG(problem, backend)
        m = disc.xp.stack([disc.m0] * 6)
        u = Sequential().hjb(disc, m).u
        run = ParticleFP(5000, seed=2, store_paths=True).simulate(disc, u, m)
        assert all(backend.is_native(a) for a in (run.m, run.positions, run.paths))
        runs.append(backend.to_numpy(run.m))
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-10)


def test_torch_cpu_steps_on_zero_copy_numpy_views():
    import torch

    backend = create_backend("torch", device="cpu", dtype="float32")
    twin = backend.host_twin()
    assert twin.name == "numpy" and twin.dtype == np.float32
    host = np.arange(6, dtype=np.float32)
    tensor = backend.from_host(host)
    assert tensor.dtype == torch.float32 and tensor.data_ptr() == host.ctypes.data
    assert create_backend("numpy").host_twin().name == "numpy"


@pytest.mark.parametrize("name", available_backends())
def test_backend_random_draws_are_seeded_and_standard(name):
    backend = create_backend(name)
    a = backend.to_numpy(backend.normal(backend.generator(5), (200_000,)))
    b = backend.to_numpy(backend.normal(backend.generator(5), (200_000,)))
    c = backend.to_numpy(backend.uniform(backend.generator(5), (200_000,)))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64 and abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01
    assert 0.0 <= c.min() and c.max() < 1.0 and abs(c.mean() - 0.5) < 0.01
    with pytest.raises(ValueError, match="seed"):
        backend.generator(-1)


def test_boundaries_periodic_wrap_and_walls_reflect_and_paths():
    for boundary in ("periodic", "no_flux"):
        grid = Grid([(0.0, 1.0)], 40, boundary=boundary)
        problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 20), sigma=1.5,
                             running_cost=lambda x, m: 0.0 * m, terminal_cost=lambda x, m: 0.0 * m,
                             m0=lambda x: np.exp(-((x - 0.5) ** 2) / 0.01) / 0.1772453850905516)
        disc = DiscreteMFG(problem, create_backend("numpy"))
        flat = np.zeros((21, 40))
        run = ParticleFP(4000, seed=0, store_paths=True, bandwidth=0.05).simulate(disc, flat, flat + 1.0)
        assert run.paths.shape == (21, 4000)
        assert run.paths.min() >= 0.0 and run.paths.max() <= 1.0
        np.testing.assert_allclose(run.m.sum(axis=1) / 40, 1.0, rtol=0, atol=1e-12)
        # strong noise: the density has spread to nearly uniform
        assert np.max(np.abs(run.m[-1] - 1.0)) < 0.25
        assert ParticleFP(10, seed=0).simulate(disc, flat, flat + 1.0).paths is None


def test_solve_with_particles_records_and_converges_near_closed_form():
    problem = problems.make("lq-1d", Nx=101, Nt=20)
    eq = solve(problem, fp="particles", n_particles=20_000, seed=0, tol=1e-3, backend="numpy", progress=False)
    d = eq.diagnostics
    assert d.converged and d.fp == "particles" and d.residual <= 1e-3
    assert d.options["n_particles"] == 20_000 and d.options["seed"] == 0
    assert max(abs(v - 1.0) for v in d.mass) < 1e-12 and d.exited[-1] == 0.0
    (x,), h = problem.grid.coordinates(), problem.grid.spacing[0]
    mean = eq.m.numpy() @ x * h
    assert np.max(np.abs(mean - problem.exact.mean(problem.time.times()))) < 0.03


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_particles": 0}, "n_particles"),
        ({"n_particles": 2.5}, "n_particles"),
        ({"seed": -3}, "seed"),
        ({"seed": "a"}, "seed"),
        ({"tol": 1e-6}, "tol"),
    ],
)
def test_solve_rejects_bad_particle_options(kwargs, match):
    problem = problems.make("lq-1d", Nx=21, Nt=4)
    options = {"fp": "particles", "n_particles": 1000, "tol": 0.05, "progress": False} | kwargs
    with pytest.raises((TypeError, ValueError), match=match):
        solve(problem, **options)


def test_particle_fp_rejects_bad_arguments():
    for kwargs, match in (({"bandwidth": "wide"}, "bandwidth"), ({"bandwidth": -1.0}, "bandwidth"),
                          ({"kde_method": "fast"}, "kde_method"), ({"n_particles": 1}, "n_particles"),
                          ({"dtype": "float16"}, "dtype")):
        with pytest.raises(ValueError, match=match):
            ParticleFP(**({"n_particles": 100} | kwargs))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("problem_name", ["lq-1d", "crowd-exit-1d"])
def test_float32_particles_agree_with_float64_to_round_off(name, problem_name):
    """Same noise stream (drawn in float64): float32 positions change the density by round-off."""
    problem = problems.make(problem_name, Nx=101, Nt=40)
    backend = create_backend(name, device="cpu" if name == "torch" else None)
    disc = DiscreteMFG(problem, backend)
    m = disc.xp.stack([disc.m0] * (problem.time.Nt + 1))
    u = Sequential().hjb(disc, m).u
    runs = [ParticleFP(50_000, seed=5, dtype=dtype).simulate(disc, u, m) for dtype in ("float64", "float32")]
    assert str(runs[1].positions.dtype).endswith("float32") and str(runs[1].m.dtype).endswith("float64")
    h = problem.grid.spacing[0]
    l1 = np.max(np.sum(np.abs(backend.to_numpy(runs[0].m) - backend.to_numpy(runs[1].m)), axis=1)) * h
    assert l1 < 1e-5, l1  # measured ~1e-7; the Monte Carlo error is ~1e-2
    np.testing.assert_allclose(runs[1].inside + runs[1].exited, 1.0, rtol=0, atol=1e-12)
    assert np.max(np.abs(runs[0].exited - runs[1].exited)) <= 1e-4  # a few particles at the exit may flip


@pytest.mark.parametrize("name", BACKENDS)
def test_chunks_and_prefetched_noise_do_not_change_results(name, monkeypatch):
    """Chunked steps and noise drawn ahead on a thread give the unchunked, serial run to round-off."""
    from mfg_rl.solvers import particle_noise, particles

    problem = problems.make("crowd-exit-1d", Nx=60, Nt=12)
    backend = create_backend(name, device="cpu" if name == "torch" else None)
    disc = DiscreteMFG(problem, backend)
    m = disc.xp.stack([disc.m0] * (problem.time.Nt + 1))
    u = Sequential().hjb(disc, m).u
    runs = []
    for chunk, prefetch in ((10**9, 10**9), (1000, 1), (4096, 10**9)):
        monkeypatch.setattr(particles, "STEP_CHUNK_HOST", chunk)
        monkeypatch.setattr(particle_noise, "PREFETCH_MIN", prefetch)
        runs.append(ParticleFP(10_000, seed=9, store_paths=True).simulate(disc, u, m))
    for run in runs[1:]:
        np.testing.assert_array_equal(backend.to_numpy(run.paths), backend.to_numpy(runs[0].paths))
        np.testing.assert_allclose(backend.to_numpy(run.m), backend.to_numpy(runs[0].m), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(run.exited, runs[0].exited)
        np.testing.assert_allclose(np.array(run.bandwidth), np.array(runs[0].bandwidth), rtol=1e-12)


@pytest.mark.parametrize("bandwidth", ["scott", 0.05])
def test_fast_stepper_matches_the_validated_kde_path(bandwidth):
    """Each level is ``backend.kde`` of the returned paths (validated path), rescaled to the mass inside."""
    problem = problems.make("crowd-exit-1d", Nx=80, Nt=10)
    backend = create_backend("numpy")
    disc = DiscreteMFG(problem, backend)
    m = np.stack([disc.m0] * 11)
    u = Sequential().hjb(disc, m).u
    run = ParticleFP(5000, seed=1, store_paths=True, bandwidth=bandwidth).simulate(disc, u, m)
    alive = np.ones(5000)
    (_, hi), h = problem.grid.bounds[0], problem.grid.spacing[0]
    assert problem.grid.boundary[0] == ("no_flux", "exit")
    for level in range(1, 11):
        alive = alive * (run.paths[level] != hi)  # exited particles are parked on the exit face
        if alive.sum() < 2:
            break
        rho = backend.kde(run.paths[level], alive / 5000, problem.grid, bandwidth=run.bandwidth[level - 1],
                          method="binned", reflect=True)
        rho = rho * (run.inside[level] / (rho.sum() * h))
        np.testing.assert_allclose(run.m[level], rho, rtol=0, atol=1e-10 * run.m[level].max())
        if isinstance(bandwidth, str):
            from mfg_rl.backends.kde import rule_bandwidth

            (sigma,) = rule_bandwidth(np, [run.paths[level]], alive, bandwidth)
            assert abs(max(sigma, 0.5 * h) - run.bandwidth[level - 1][0]) <= 1e-12 * sigma


@pytest.mark.skipif("jax" not in available_backends(), reason="jax not installed")
def test_jax_particles_run_in_one_chunk_and_conserve_mass():
    problem = problems.make("crowd-exit-1d", Nx=50, Nt=10)
    backend = create_backend("jax")
    disc = DiscreteMFG(problem, backend)
    m = disc.xp.stack([disc.m0] * 11)
    u = Sequential().hjb(disc, m).u
    first = ParticleFP(4000, seed=3, store_paths=True).simulate(disc, u, m)
    again = ParticleFP(4000, seed=3, store_paths=True, dtype="float32").simulate(disc, u, m)
    np.testing.assert_allclose(first.inside + first.exited, 1.0, rtol=0, atol=1e-12)
    mass = backend.to_numpy(disc.mass(first.m))
    np.testing.assert_allclose(mass, first.inside, rtol=0, atol=1e-12)
    l1 = np.max(np.sum(np.abs(backend.to_numpy(first.m) - backend.to_numpy(again.m)), axis=1))
    assert l1 * problem.grid.spacing[0] < 1e-5


def test_nan_drift_raises_before_binning():
    from mfg_rl.errors import SolverError

    problem = problems.make("lq-1d", Nx=21, Nt=4)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    u, m = exact_fields(problem)
    u[1, 5:16] = np.nan
    with pytest.raises(SolverError, match="non-finite"):
        ParticleFP(1000, seed=0).simulate(disc, u, m)
