"""Correctness of the fast paths of the equilibrium solve (never timed here).

- ``backend.factor_tridiagonal``: factorise once, solve many (whole batch or one entry),
  equal to ``solve_tridiagonal``.
- the zebra preconditioner with factorised lines gives the same Krylov solutions.
- inexact step solves in the coupling loop (``DiscreteMFG.forcing``) reach the same
  discrete equilibrium as exact ones, to the coupling tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from mfg_rl import problems
from mfg_rl.backends import available_backends, create_backend
from mfg_rl.backends.tridiagonal import TridiagonalFactor
from mfg_rl.core import Grid
from mfg_rl.solvers import solve
from mfg_rl.solvers.coupling import Anderson, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix, StencilSolver
from mfg_rl.solvers.trajectory import Sequential

BACKENDS = list(available_backends())


def tridiagonal(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    lower, upper = -rng.random(shape), -rng.random(shape)
    diag = np.abs(lower) + np.abs(upper) + 0.1 + rng.random(shape)
    return lower, diag, upper


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shape", [(1,), (7,), (5, 9), (2, 3, 16)])
def test_factor_tridiagonal_matches_solve_tridiagonal(name: str, shape: tuple[int, ...]) -> None:
    backend = create_backend(name)
    rng = np.random.default_rng(len(shape))
    lower, diag, upper = (backend.asarray(a) for a in tridiagonal(rng, shape))
    factor = backend.factor_tridiagonal(lower, diag, upper)
    for _ in range(3):  # one factorisation, many right-hand sides
        rhs = backend.asarray(rng.standard_normal(shape))
        expected = backend.to_numpy(backend.solve_tridiagonal(lower, diag, upper, rhs))
        np.testing.assert_allclose(backend.to_numpy(factor.solve(rhs)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shape", [(4, 1), (5, 9), (2, 3, 16)])
def test_factor_solves_one_batch_entry_alone(name: str, shape: tuple[int, ...]) -> None:
    """``solve_entry(n, rhs)``: the system of entry ``n`` of the leading axis only, as the whole
    batch's solve gives it (the Newton sweeps solve level after level from one factorisation)."""
    backend = create_backend(name)
    rng = np.random.default_rng(7)
    lower, diag, upper = (backend.asarray(a) for a in tridiagonal(rng, shape))
    factor = backend.factor_tridiagonal(lower, diag, upper)
    rhs = rng.standard_normal(shape)
    whole = backend.to_numpy(backend.solve_tridiagonal(lower, diag, upper, backend.asarray(rhs)))
    for n in range(shape[0]):
        entry = backend.to_numpy(factor.solve_entry(n, backend.asarray(rhs[n])))
        np.testing.assert_allclose(entry, whole[n], rtol=1e-12, atol=1e-12)


def test_factor_entries_keep_their_pivots() -> None:
    """A small diagonal forces row interchanges; the slices of an entry still solve it."""
    rng = np.random.default_rng(8)
    lower, upper = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    diag = 0.05 * rng.standard_normal((6, 10))
    factor = create_backend("numpy").factor_tridiagonal(lower, diag, upper)
    for n in range(6):
        b = rng.standard_normal(10)
        x = factor.solve_entry(n, b)
        residual = (diag[n] * x + lower[n] * np.concatenate([[0.0], x[:-1]])
                    + upper[n] * np.concatenate([x[1:], [0.0]]))
        np.testing.assert_allclose(residual, b, rtol=1e-10, atol=1e-10)


def test_generic_factor_is_the_reference_kernel() -> None:
    backend = create_backend("numpy")
    rng = np.random.default_rng(3)
    lower, diag, upper = tridiagonal(rng, (4, 12))
    rhs = rng.standard_normal((4, 12))
    generic = TridiagonalFactor(backend.solve_tridiagonal, lower, diag, upper)
    np.testing.assert_allclose(generic.solve(rhs), backend.factor_tridiagonal(lower, diag, upper).solve(rhs),
                               rtol=1e-13, atol=1e-13)


def test_factor_tridiagonal_rejects_a_singular_system() -> None:
    backend = create_backend("numpy")
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        backend.factor_tridiagonal(np.zeros(4), np.zeros(4), np.zeros(4))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("boundary", ["no_flux", (("no_flux", "exit"), ("no_flux", "no_flux")),
                                      (("no_flux", "no_flux"), ("periodic", "periodic"))])
def test_zebra_with_factorised_lines_solves_the_stencil_system(name: str, boundary: object) -> None:
    backend = create_backend(name)
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (12, 17), boundary=boundary)
    rng = np.random.default_rng(0)
    minus = [-rng.random(grid.shape) for _ in range(2)]
    plus = [-rng.random(grid.shape) for _ in range(2)]
    for d, (low, _) in enumerate(grid.boundary):
        if low != "periodic":
            np.moveaxis(minus[d], d, 0)[0] = 0.0
            np.moveaxis(plus[d], d, 0)[-1] = 0.0
    center = -sum(minus) - sum(plus) + 0.5
    matrix = StencilMatrix(backend.asarray(center), tuple(backend.asarray(a) for a in minus),
                           tuple(backend.asarray(a) for a in plus))
    rhs = backend.asarray(rng.standard_normal(grid.shape))
    x = StencilSolver(grid, backend).solve(matrix, rhs, rtol=1e-12)
    direct = StencilSolver(grid, create_backend("numpy"), "direct").solve(
        StencilMatrix(center, tuple(minus), tuple(plus)), backend.to_numpy(rhs))
    np.testing.assert_allclose(backend.to_numpy(x), direct, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("policy", [FixedPoint, Anderson])
def test_inexact_step_solves_reach_the_same_equilibrium(policy: type) -> None:
    """Forcing loosens the step solves, never the coupled residual: same answer to tol."""
    problem = problems.make("crowd-2d", Nx=10, Ny=10, Nt=6)
    backend = create_backend("numpy")
    results = []
    for inexact in (True, False):
        disc = DiscreteMFG(problem, backend)
        record = run_coupling(disc, Sequential(), Sequential(), policy(), tol=1e-9, max_iter=200,
                              inexact=inexact)
        assert record.converged and record.residuals[-1] <= 1e-9
        results.append(record)
    (u1, m1), (u2, m2) = ((backend.to_numpy(r.u), backend.to_numpy(r.m)) for r in results)
    assert np.max(np.abs(m1 - m2)) * problem.grid.cell_volume * m1[0].size < 1e-6
    assert np.max(np.abs(u1 - u2)) < 1e-6 * (1.0 + np.max(np.abs(u2)))
    if policy is Anderson:
        assert results[0].newton_iterations < results[1].newton_iterations


def test_only_anderson_loosens_steps_by_default() -> None:
    problem = problems.make("crowd-2d", Nx=8, Ny=8, Nt=4)
    seen = {}
    for policy in (FixedPoint(), Anderson()):
        disc = DiscreteMFG(problem, create_backend("numpy"))
        hjb = Sequential.hjb

        def spy(self, disc, m, u_guess=None, forcing=None, policy=policy, hjb=hjb):
            seen.setdefault(policy.name, []).append(forcing)
            return hjb(self, disc, m, u_guess, forcing)

        solver = Sequential()
        solver.hjb = spy.__get__(solver)
        run_coupling(disc, solver, solver, policy, tol=1e-8, max_iter=100)
    assert all(f is None for f in seen["fixed_point"])
    assert all(f is not None and f > 0 for f in seen["anderson"])


def test_solve_2d_is_converged_and_conserves_mass_with_inexact_steps() -> None:
    problem = problems.make("crowd-2d", Nx=12, Ny=12, Nt=5, exit_side="right")
    eq = solve(problem, backend="numpy", coupling="anderson", progress=False)
    d = eq.diagnostics
    assert d.converged and d.residual <= 1e-8
    # mass in the room + mass that left = 1, to round-off, at every level
    np.testing.assert_allclose(np.array(d.mass) + np.array(d.exited), d.mass[0], atol=1e-10)
    assert float(np.min(eq.m.numpy())) >= 0.0


def test_jax_scan_with_forcing_matches_exact_sequential() -> None:
    """The compiled HJB sweep honours the forcing floor; the answer stays the exact one to tol."""
    pytest.importorskip("jax")
    problem = problems.make("lq-1d", Nx=41, Nt=8)
    ref = solve(problem, backend="numpy", coupling=FixedPoint(), tol=1e-10, progress=False)
    eq = solve(problem, method="jax-scan", coupling="anderson", tol=1e-10, progress=False)
    assert eq.diagnostics.converged and eq.diagnostics.residual <= 1e-10
    np.testing.assert_allclose(eq.m.numpy(), ref.m.numpy(), atol=1e-8)
    np.testing.assert_allclose(eq.u.numpy(), ref.u.numpy(), atol=1e-8)
