"""GlobalSpacetime and the monolithic Newton coupling reproduce Sequential / the fixed point."""

import numpy as np
import pytest

from mfg_rl import SolverError, problems
from mfg_rl.backends import create_backend
from mfg_rl.solvers import solve
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.newton import CoupledSystem, Newton
from mfg_rl.solvers.spacetime import GlobalSpacetime
from mfg_rl.solvers.trajectory import Sequential

CASES = [("lq-1d", {"Nx": 41, "Nt": 8}), ("crowd-exit-1d", {"Nx": 41, "Nt": 8}),
         ("crowd-2d", {"Nx": 12, "Ny": 12, "Nt": 8})]


@pytest.mark.parametrize("linear", ["direct", "krylov"])
@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_global_trajectories_equal_sequential(name: str, params: dict, linear: str) -> None:
    disc = DiscreteMFG(problems.make(name, **params), create_backend("numpy"))
    m = np.stack([disc.m0] * (disc.Nt + 1))
    sequential = Sequential().hjb(disc, m)
    strategy = GlobalSpacetime(linear)
    assert np.max(np.abs(strategy.hjb(disc, m).u - sequential.u)) < 1e-10
    m_seq = Sequential().fp(disc, sequential.u, m)
    assert np.max(np.abs(strategy.fp(disc, sequential.u, m) - m_seq)) < 1e-10
    if linear == "krylov":
        assert max(strategy.krylov_iterations) <= 8


def test_krylov_iterations_do_not_grow_with_nt() -> None:
    counts = []
    for Nt in (4, 16):
        disc = DiscreteMFG(problems.make("crowd-2d", Nx=12, Ny=12, Nt=Nt), create_backend("numpy"))
        m = np.stack([disc.m0] * (Nt + 1))
        strategy = GlobalSpacetime("krylov")
        strategy.fp(disc, Sequential().hjb(disc, m).u, m)
        counts.append(strategy.krylov_iterations[-1])
    assert counts[1] <= counts[0] + 1


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_global_equilibrium_equals_sequential(name: str, params: dict) -> None:
    problem = problems.make(name, **params)
    reference = solve(problem, backend="numpy", progress=False, tol=1e-11)
    eq = solve(problem, method="global", backend="numpy", progress=False, tol=1e-11)
    assert np.max(np.abs(eq.u.numpy() - reference.u.numpy())) < 1e-10
    assert np.max(np.abs(eq.m.numpy() - reference.m.numpy())) < 1e-10


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_newton_reaches_the_fixed_point_equilibrium(name: str, params: dict, backend: str) -> None:
    problem = problems.make(name, **params)
    reference = solve(problem, backend=backend, progress=False, tol=1e-11, max_iter=2000)
    eq = solve(problem, coupling="newton", backend=backend, progress=False, tol=1e-11)
    assert eq.diagnostics.converged and eq.diagnostics.timings["newton_steps"] <= 10
    assert np.max(np.abs(eq.u.numpy() - reference.u.numpy())) < 1e-8
    assert np.max(np.abs(eq.m.numpy() - reference.m.numpy())) < 1e-8


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_newton_jacobian_matches_finite_differences(name: str, params: dict) -> None:
    import scipy.sparse as sp

    backend = create_backend("numpy")
    small = {k: (min(v, 7) if k != "Nt" else 3) for k, v in params.items()}
    disc = DiscreteMFG(problems.make(name, **small), backend)
    m = np.stack([disc.m0] * (disc.Nt + 1))
    u = Sequential().hjb(disc, m).u
    rng = np.random.default_rng(0)
    U = u[:-1] + 0.05 * rng.normal(size=u[:-1].shape)
    M = Sequential().fp(disc, u, m)[1:] * rng.uniform(0.8, 1.2, size=U.shape)
    system = CoupledSystem(disc)
    J = sp.coo_matrix((system.jacobian_values(U, M), system.coo),
                      shape=(system.n, system.n)).toarray()
    n = system.n // 2
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        J[:n, n + j] += system.nonlocal_product(M, e.reshape(U.shape)).ravel()

    def F(z: np.ndarray) -> np.ndarray:
        f_u, f_m, _, _ = system.residual(z[:n].reshape(U.shape), z[n:].reshape(U.shape))
        return np.concatenate([f_u.ravel(), f_m.ravel()])

    z, eps = np.concatenate([U.ravel(), M.ravel()]), 1e-6
    fd = np.stack([(F(z + eps * e) - F(z - eps * e)) / (2 * eps) for e in np.eye(system.n)], axis=1)
    assert np.max(np.abs(J - fd)) < 1e-6 * (1.0 + np.max(np.abs(fd)))


@pytest.mark.parametrize(("name", "params"), [
    ("lq-1d", {"Nx": 15, "Nt": 4}),
    ("crowd-2d", {"Nx": 6, "Ny": 5, "Nt": 3, "congestion": 0.0, "crowd_aversion": 0.0}),
], ids=["lq-1d", "crowd-2d-uncoupled-locally"])
def test_newton_sweeps_invert_the_local_jacobian_when_it_is_block_triangular(name: str, params: dict) -> None:
    """Without a local dF_u/dM (lq-1d's coupling is a mean; crowd-2d without congestion or crowd
    cost), a backward then a forward sweep solve the local Jacobian exactly: the same answer as
    its sparse LU, at a fraction of the cost."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    disc = DiscreteMFG(problems.make(name, **params), create_backend("numpy"))
    m = np.stack([disc.m0] * (disc.Nt + 1))
    u = Sequential().hjb(disc, m).u
    U, M = u[:-1], Sequential().fp(disc, u, m)[1:]
    system = CoupledSystem(disc)
    uu, um, mu, mm = system.blocks(U, M)
    assert np.max(np.abs(um)) == 0.0
    J = sp.csc_matrix((system.values(uu, um, mu, mm), system.coo), shape=(system.n, system.n))
    r = np.random.default_rng(1).normal(size=system.n)
    exact = splu(J).solve(r)
    assert np.max(np.abs(system.sweeps(uu, mu, mm)(r) - exact)) < 1e-9 * np.max(np.abs(exact))


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_newton_matrix_free_product_equals_the_assembled_jacobian(name: str, params: dict) -> None:
    import scipy.sparse as sp

    disc = DiscreteMFG(problems.make(name, **params), create_backend("numpy"))
    m = np.stack([disc.m0] * (disc.Nt + 1))
    u = Sequential().hjb(disc, m).u
    U, M = u[:-1], Sequential().fp(disc, u, m)[1:]
    system = CoupledSystem(disc)
    blocks = system.blocks(U, M)
    J = sp.csc_matrix((system.values(*blocks), system.coo), shape=(system.n, system.n))
    z = np.random.default_rng(2).normal(size=system.n)
    expected = J @ z
    expected[: system.n // 2] += system.nonlocal_product(M, z[system.n // 2:].reshape(U.shape)).ravel()
    np.testing.assert_allclose(system.product(blocks, M, z), expected, rtol=1e-12,
                               atol=1e-12 * np.max(np.abs(expected)))


def test_newton_starts_cold_and_falls_back_to_a_warmup_when_damped() -> None:
    """lq-1d: full Newton steps from m0 and u = g, no fixed-point iteration at all. crowd-exit-1d:
    the cold start's large values make the line search damp, so 2 fixed-point iterations run."""
    lq = solve(problems.make("lq-1d", Nx=101, Nt=20), coupling="newton", backend="numpy", progress=False)
    assert lq.diagnostics.converged and lq.diagnostics.timings["warmup"] == 0.0
    assert lq.diagnostics.timings["newton_steps"] <= 5
    exit_ = solve(problems.make("crowd-exit-1d", Nx=41, Nt=8), coupling="newton", backend="numpy",
                  progress=False)
    assert exit_.diagnostics.converged and exit_.diagnostics.timings["warmup"] > 0.0
    reference = solve(problems.make("crowd-exit-1d", Nx=41, Nt=8), backend="numpy", progress=False)
    assert np.max(np.abs(exit_.m.numpy() - reference.m.numpy())) < 1e-7


def test_newton_raises_with_iteration_count() -> None:
    problem = problems.make("crowd-exit-1d", Nx=41, Nt=8)
    with pytest.raises(SolverError, match="max_iter=1"):
        solve(problem, coupling="newton", backend="numpy", progress=False, max_iter=1, tol=1e-12)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="linear"):
        GlobalSpacetime("lu")
    with pytest.raises(ValueError, match="warmup"):
        Newton(warmup=-1)
    with pytest.raises(TypeError, match="warmup"):
        Newton(warmup=1.5)
