"""The compiled zebra-BiCGStab kernel (``mfg_rl.backends.stencil_numba``) against its numpy twin.

The reference is the generic path of ``StencilSolver`` (``compiled=False``): ``bicgstab``
of ``mfg_rl.backends.krylov`` with the zebra preconditioner and LAPACK-factorised lines.
Same preconditioner and stopping rule, so the solutions agree to round-off (float64:
1e-10 relative; float32: 1e-4, both solves stopping at rtol 1e-5) and the iteration
counts within 2.
"""

from __future__ import annotations

import numba  # noqa: F401  (a test dependency through the [all] extra: fail loudly without it)
import numpy as np
import pytest

from mfg_rl import problems, solve
from mfg_rl.backends import create_backend, stencil_numba
from mfg_rl.core import Grid
from mfg_rl.errors import SolverError
from mfg_rl.solvers.stencil import LinearSolver, StencilMatrix, StencilSolver


def advection_diffusion(
    shape: tuple[int, int], periodic0: bool, seed: int, dtype: type = np.float64, strong_axis: int = 1,
) -> tuple[StencilMatrix, np.ndarray]:
    """``I/dt - nu Lap + b . grad`` (upwind, non-symmetric M-matrix) with a random drift ``b``,
    ``|b| <= 1``, and a random right-hand side. Couplings leaving the box are zero except
    along a periodic axis 0; ``strong_axis`` gets 4x the diffusion (the zebra line axis)."""
    rng = np.random.default_rng(seed)
    h, nu, dt = 1.0 / max(shape), 0.02, 0.05
    minus, plus = [], []
    for d in range(2):
        drift = rng.uniform(-1.0, 1.0, shape)
        diffusion = nu * (4.0 if d == strong_axis else 1.0) / h**2
        minus.append(-diffusion - np.maximum(drift, 0.0) / h)
        plus.append(-diffusion + np.minimum(drift, 0.0) / h)
    center = 1.0 / dt - minus[0] - plus[0] - minus[1] - plus[1]
    if not periodic0:
        minus[0][0], plus[0][-1] = 0.0, 0.0
    minus[1][:, 0], plus[1][:, -1] = 0.0, 0.0
    matrix = StencilMatrix(center.astype(dtype), tuple(a.astype(dtype) for a in minus),
                           tuple(a.astype(dtype) for a in plus))
    return matrix, rng.standard_normal(shape).astype(dtype)


def grid_for(shape: tuple[int, int], periodic0: bool) -> Grid:
    axis0 = ("periodic", "periodic") if periodic0 else ("no_flux", "exit")
    return Grid([(0.0, 1.0), (0.0, 1.0)], shape, boundary=(axis0, ("no_flux", "exit")))


def kernel(matrix: StencilMatrix, rhs: np.ndarray, x0: np.ndarray | None = None,
           **kwargs: object) -> stencil_numba.KrylovResult:
    return stencil_numba.bicgstab_zebra_2d(
        matrix.center, matrix.minus[0], matrix.plus[0], matrix.minus[1], matrix.plus[1], rhs, x0, **kwargs)


def generic(grid: Grid, matrix: StencilMatrix, rhs: np.ndarray, **kwargs: object) -> tuple[np.ndarray, int]:
    solver = StencilSolver(grid, create_backend("numpy"), compiled=False, rtol=kwargs.pop("rtol", 1e-12))
    x = solver.solve(matrix, rhs, **kwargs)
    return x, solver.iterations


def residual_norm(matrix: StencilMatrix, x: np.ndarray, rhs: np.ndarray) -> float:
    xp = create_backend("numpy").xp
    return float(np.linalg.norm(rhs.astype(np.float64) - matrix.matvec(xp, x).astype(np.float64)))


@pytest.mark.parametrize("shape", [(7, 9), (16, 16), (33, 20), (8, 5), (3, 3)])
@pytest.mark.parametrize("periodic0", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_matches_the_generic_zebra_bicgstab(
    shape: tuple[int, int], periodic0: bool, dtype: type
) -> None:
    matrix, rhs = advection_diffusion(shape, periodic0, seed=sum(shape), dtype=dtype)
    strength = [float(np.abs(matrix.minus[d]).sum() + np.abs(matrix.plus[d]).sum()) for d in range(2)]
    assert strength[1] > strength[0]  # the generic path keeps the frame: same lines as the kernel
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    expected, iterations = generic(grid_for(shape, periodic0), matrix, rhs, rtol=rtol)
    result = kernel(matrix, rhs, periodic0=periodic0, rtol=rtol, max_iter=1000)
    assert result.x.dtype == dtype and result.residual.dtype == dtype and result.x.shape == shape
    close = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(result.x, expected, rtol=0, atol=close * np.abs(expected).max())
    assert abs(result.iterations - iterations) <= 2
    bound = rtol * float(np.linalg.norm(rhs.astype(np.float64)))
    assert float(np.linalg.norm(result.residual.astype(np.float64))) <= bound
    assert residual_norm(matrix, result.x, rhs) <= (1.01 if dtype == np.float64 else 2.0) * bound


@pytest.mark.parametrize("periodic0", [False, True])
def test_stencil_solver_uses_the_kernel_in_a_permuted_frame(
    periodic0: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines along the grid's axis 0 (strongest couplings): the frame transposes, its axis 0
    (the grid's axis 1) carries the periodicity."""
    shape = (18, 11)
    matrix, rhs = advection_diffusion(shape, False, seed=3, strong_axis=0)
    if periodic0:  # periodic grid axis 1 = frame axis 0: give it wrapping couplings
        rng = np.random.default_rng(4)
        wrap_minus, wrap_plus = matrix.minus[1].copy(), matrix.plus[1].copy()
        wrap_minus[:, 0], wrap_plus[:, -1] = -rng.random(shape[0]), -rng.random(shape[0])
        center = matrix.center - wrap_minus[:, :1] * (np.arange(shape[1]) == 0)
        center = center - wrap_plus[:, -1:] * (np.arange(shape[1]) == shape[1] - 1)
        matrix = StencilMatrix(center, matrix.minus[:1] + (wrap_minus,), matrix.plus[:1] + (wrap_plus,))
    axis1 = ("periodic", "periodic") if periodic0 else ("no_flux", "no_flux")
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], shape, boundary=(("no_flux", "exit"), axis1))
    calls = []
    original = stencil_numba.bicgstab_zebra_2d

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["periodic0"])
        return original(*args, **kwargs)

    monkeypatch.setattr(stencil_numba, "bicgstab_zebra_2d", spy)
    backend = create_backend("numpy")
    fast, slow = StencilSolver(grid, backend), StencilSolver(grid, backend, compiled=False)
    x_fast, x_slow = fast.solve(matrix, rhs), slow.solve(matrix, rhs)
    assert calls == [periodic0]
    np.testing.assert_allclose(x_fast, x_slow, rtol=0, atol=1e-10 * np.abs(x_slow).max())
    assert abs(fast.iterations - slow.iterations) <= 2 and fast.solves == slow.solves == 1
    direct = StencilSolver(grid, backend, "direct").solve(matrix, rhs)
    np.testing.assert_allclose(x_fast, direct, rtol=0, atol=1e-9 * np.abs(direct).max())


def test_the_generic_path_serves_what_the_kernel_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Periodic line axis, other preconditioners, compiled=False on the solver and on its options."""
    monkeypatch.setattr(stencil_numba, "bicgstab_zebra_2d", lambda *a, **k: pytest.fail("kernel called"))
    backend = create_backend("numpy")
    matrix, rhs = advection_diffusion((10, 12), True, seed=5)
    periodic_lines = Grid([(0.0, 1.0), (0.0, 1.0)], (10, 12), boundary="periodic")
    assert StencilSolver(periodic_lines, backend).solve(matrix, rhs).shape == (10, 12)
    grid = grid_for((10, 12), True)
    StencilSolver(grid, backend, preconditioner="adi").solve(matrix, rhs)
    StencilSolver(grid, backend, compiled=False).solve(matrix, rhs)
    LinearSolver(compiled=False).build(grid, backend).solve(matrix, rhs)


def test_warm_start_and_absolute_tolerance() -> None:
    shape, periodic0 = (24, 17), True
    matrix, rhs = advection_diffusion(shape, periodic0, seed=7)
    grid = grid_for(shape, periodic0)
    cold = kernel(matrix, rhs, periodic0=periodic0, rtol=1e-12, max_iter=1000)
    guess = cold.x + 1e-6 * np.random.default_rng(8).standard_normal(shape)
    warm = kernel(matrix, rhs, guess, periodic0=periodic0, rtol=1e-12, max_iter=1000)
    expected, iterations = generic(grid, matrix, rhs, x0=guess)
    np.testing.assert_allclose(warm.x, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    assert warm.iterations < cold.iterations and abs(warm.iterations - iterations) <= 2
    exact = kernel(matrix, rhs, cold.x, periodic0=periodic0, rtol=1e-6)
    assert exact.iterations == 0 and np.array_equal(exact.x, cold.x)
    atol = 1e-4 * float(np.linalg.norm(rhs))
    loose = kernel(matrix, rhs, periodic0=periodic0, rtol=1e-15, atol=atol)
    expected, iterations = generic(grid, matrix, rhs, rtol=1e-15, atol=atol)
    assert residual_norm(matrix, loose.x, rhs) <= atol
    assert loose.iterations < cold.iterations and abs(loose.iterations - iterations) <= 2
    np.testing.assert_allclose(loose.x, expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_failures_raise_with_the_iteration_count() -> None:
    matrix, rhs = advection_diffusion((20, 20), False, seed=9)
    with pytest.raises(SolverError, match=r"BiCGStab did not converge after 3 iterations"):
        kernel(matrix, rhs, periodic0=False, rtol=1e-12, max_iter=3)
    bad = StencilMatrix(np.full((20, 20), np.nan), matrix.minus, matrix.plus)
    with pytest.raises(SolverError, match="non-finite"):
        kernel(bad, rhs, periodic0=False)
    grid = grid_for((20, 20), False)
    with pytest.raises(SolverError, match=r"did not converge after 2 iterations"):
        StencilSolver(grid, create_backend("numpy"), max_iter=2).solve(matrix, rhs)
    with pytest.raises(ValueError, match="x0 has shape"):
        kernel(matrix, rhs, np.zeros((20, 19)), periodic0=False)


def test_torch_cpu_tensors_go_through_the_kernel_zero_copy() -> None:
    torch = pytest.importorskip("torch")  # torch is optional for this one; numba is not
    backend = create_backend("torch", device="cpu")
    shape = (16, 12)
    matrix, rhs = advection_diffusion(shape, True, seed=10)
    on = StencilMatrix(backend.asarray(matrix.center), tuple(backend.asarray(a) for a in matrix.minus),
                       tuple(backend.asarray(a) for a in matrix.plus))
    grid = grid_for(shape, True)
    fast = StencilSolver(grid, backend)
    assert fast._use_compiled((True, False))
    x = fast.solve(on, backend.asarray(rhs))
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
    expected, iterations = generic(grid, matrix, rhs)
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    assert abs(fast.iterations - iterations) <= 2


def test_density_step_projection_still_applies() -> None:
    """b >= 0: the kernel's answer is clipped and rescaled exactly as the generic one."""
    shape = (12, 14)
    matrix, _ = advection_diffusion(shape, False, seed=11)
    rhs = np.random.default_rng(12).random(shape)
    grid = grid_for(shape, False)
    fp = matrix.transpose(np)
    fast = StencilSolver(grid, create_backend("numpy"), rtol=1e-6).solve(fp, rhs)
    slow = StencilSolver(grid, create_backend("numpy"), rtol=1e-6, compiled=False).solve(fp, rhs)
    assert float(fast.min()) >= 0.0
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_crowd_2d_equilibrium_is_the_same_with_and_without_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem = problems.make("crowd-2d", Nx=12, Ny=10, Nt=6)
    fast = solve(problem, backend="numpy", progress=False)
    monkeypatch.setattr(stencil_numba, "bicgstab_zebra_2d", lambda *a, **k: pytest.fail("kernel called"))
    slow = solve(problem, backend="numpy", progress=False, linear=LinearSolver(compiled=False))
    assert fast.diagnostics.converged and slow.diagnostics.converged
    np.testing.assert_allclose(fast.u.numpy(), slow.u.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.m.numpy(), slow.m.numpy(), rtol=0, atol=1e-9)


def test_a_read_only_install_caches_kernels_in_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path,  # noqa: ANN001
) -> None:
    """Where the package directory is not writable, numba's cache goes to $MFG_RL_CACHE/numba
    (set before numba is imported); a writable package, or the user's own choice, is left alone."""
    import os
    import sys

    from mfg_rl.backends import stencil_numba

    monkeypatch.setenv("MFG_RL_CACHE", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    stencil_numba._point_numba_cache()
    assert "NUMBA_CACHE_DIR" not in os.environ  # this checkout is writable
    monkeypatch.setattr(stencil_numba.os, "access", lambda path, mode: False)
    stencil_numba._point_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere")
    stencil_numba._point_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == "/elsewhere"
