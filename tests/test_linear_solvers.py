"""Linear solves of the implicit steps: Krylov vs direct vs dense numpy, on every backend.

The matrices are random stencil M-matrices (non-positive couplings, strictly diagonally
dominant rows, not symmetric) on 2D grids with every kind of side, like the Jacobians of
the upwind HJB step and their transposes (the FP step).
"""

from __future__ import annotations

import numpy as np
import pytest

from mfg_rl import SolverError
from mfg_rl.backends import available_backends, create_backend, sparse
from mfg_rl.backends.krylov import KrylovResult, bicgstab, cyclic_tridiagonal, fgmres
from mfg_rl.core import Grid
from mfg_rl.solvers.stencil import PRECONDITIONERS, StencilMatrix, StencilSolver

BACKENDS = list(available_backends())
SIDES = {
    "no_flux": "no_flux",
    "periodic": "periodic",
    "exit": ("exit", "exit"),
    "mixed": (("periodic", "periodic"), ("no_flux", "exit")),
    "exit-x": (("no_flux", "exit"), ("no_flux", "no_flux")),
}


def random_m_matrix(grid: Grid, seed: int, anisotropy: float = 1.0) -> dict[str, list[np.ndarray]]:
    """Couplings in ``[-1, 0]`` (axis 0 scaled by ``anisotropy``), zero across walls;
    ``center = sum |couplings| + U(0.2, 1.2)`` (the ``1/dt`` margin)."""
    rng = np.random.default_rng(seed)
    minus, plus = [], []
    for d, (low, _) in enumerate(grid.boundary):
        scale = anisotropy if d == 0 else 1.0
        lo, hi = -scale * rng.random(grid.shape), -scale * rng.random(grid.shape)
        if low != "periodic":
            first = [slice(None)] * grid.ndim
            first[d] = 0
            last = [slice(None)] * grid.ndim
            last[d] = -1
            lo[tuple(first)] = 0.0
            hi[tuple(last)] = 0.0
        minus.append(lo)
        plus.append(hi)
    center = sum(-a - b for a, b in zip(minus, plus, strict=True)) + 0.2 + rng.random(grid.shape)
    return {"center": [center], "minus": minus, "plus": plus}


def dense(grid: Grid, coefficients: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The ``n x n`` matrix of the stencil (row-major flattening of the grid)."""
    index = np.arange(grid.size).reshape(grid.shape)
    matrix = np.zeros((grid.size, grid.size))
    np.add.at(matrix, (index.ravel(), index.ravel()), coefficients["center"][0].ravel())
    for d in range(grid.ndim):
        for shift, values in ((1, coefficients["minus"][d]), (-1, coefficients["plus"][d])):
            np.add.at(matrix, (index.ravel(), np.roll(index, shift, axis=d).ravel()), values.ravel())
    return matrix


def on(backend, coefficients: dict[str, list[np.ndarray]]) -> StencilMatrix:
    center, minus, plus = coefficients["center"][0], coefficients["minus"], coefficients["plus"]
    return StencilMatrix(
        backend.asarray(center), tuple(backend.asarray(a) for a in minus),
        tuple(backend.asarray(a) for a in plus),
    )


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("sides", list(SIDES))
@pytest.mark.parametrize("shape,anisotropy", [((12, 9), 4.0), ((9, 12), 0.25), ((10, 10), 1.0)])
def test_krylov_matches_direct_and_dense(name, sides, shape, anisotropy):
    grid = Grid([(0.0, 1.0), (0.0, 2.0)], shape, SIDES[sides])
    backend = create_backend(name)
    coefficients = random_m_matrix(grid, seed=sum(shape) + len(sides), anisotropy=anisotropy)
    rhs = np.random.default_rng(1).standard_normal(shape)
    expected = np.linalg.solve(dense(grid, coefficients), rhs.ravel()).reshape(shape)
    matrix, b = on(backend, coefficients), backend.asarray(rhs)
    direct = backend.to_numpy(StencilSolver(grid, backend, "direct").solve(matrix, b))
    np.testing.assert_allclose(direct, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    for preconditioner in PRECONDITIONERS:
        solver = StencilSolver(grid, backend, "krylov", preconditioner=preconditioner)
        x = solver.solve(matrix, b)
        assert backend.is_native(x) and tuple(x.shape) == shape
        np.testing.assert_allclose(
            backend.to_numpy(x), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max(),
            err_msg=preconditioner,
        )
        assert solver.solves == 1 and 0 < solver.iterations < 60, (preconditioner, solver.iterations)


@pytest.mark.parametrize("sides", ["no_flux", "mixed"])
def test_krylov_3d_matches_dense(sides):
    boundary = "no_flux" if sides == "no_flux" else (("periodic", "periodic"), ("no_flux", "exit"),
                                                       ("no_flux", "no_flux"))
    grid = Grid([(0.0, 1.0)] * 3, (5, 6, 7), boundary)
    backend = create_backend("numpy")
    coefficients = random_m_matrix(grid, seed=3, anisotropy=3.0)
    rhs = np.random.default_rng(2).standard_normal(grid.shape)
    expected = np.linalg.solve(dense(grid, coefficients), rhs.ravel()).reshape(grid.shape)
    for preconditioner in PRECONDITIONERS:
        x = StencilSolver(grid, backend, preconditioner=preconditioner).solve(on(backend, coefficients), rhs)
        np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def fp_matrix(grid: Grid, seed: int) -> dict[str, list[np.ndarray]]:
    """``(I/dt + A)^T`` with ``A 1 = 0`` (no-flux walls): columns sum to ``1/dt``."""
    coefficients = random_m_matrix(grid, seed)
    off = sum(-a - b for a, b in zip(coefficients["minus"], coefficients["plus"], strict=True))
    coefficients["center"] = [off + 10.0]
    ndim = grid.ndim
    return {  # transpose: minus[d] at i is plus[d] at i - e_d, and so on
        "center": coefficients["center"],
        "minus": [np.roll(coefficients["plus"][d], 1, axis=d) for d in range(ndim)],
        "plus": [np.roll(coefficients["minus"][d], -1, axis=d) for d in range(ndim)],
    }


@pytest.mark.parametrize("name", BACKENDS)
def test_density_steps_conserve_mass_and_positivity_even_at_loose_tolerance(name):
    """With ``b >= 0`` the result is projected onto ``x >= 0`` and ``sum(b - A x) = 0``."""
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (16, 11), "no_flux")
    backend = create_backend(name)
    coefficients = fp_matrix(grid, seed=5)
    matrix = on(backend, coefficients)
    m = np.exp(-60.0 * np.add.outer((np.arange(16) / 16 - 0.3) ** 2, (np.arange(11) / 11 - 0.5) ** 2))
    m /= m.sum()
    solver = StencilSolver(grid, backend, rtol=1e-6)
    x = backend.asarray(m)
    for _ in range(20):
        x = solver.solve(matrix, 10.0 * x)
    x = backend.to_numpy(x)
    assert x.min() >= 0.0
    assert abs(x.sum() - 1.0) < 1e-14


@pytest.mark.parametrize("name", BACKENDS)
def test_warm_start_and_absolute_tolerance(name):
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (14, 14), "no_flux")
    backend = create_backend(name)
    coefficients = random_m_matrix(grid, seed=7)
    rhs = np.random.default_rng(3).standard_normal(grid.shape)
    expected = np.linalg.solve(dense(grid, coefficients), rhs.ravel()).reshape(grid.shape)
    matrix, b = on(backend, coefficients), backend.asarray(rhs)
    solver = StencilSolver(grid, backend)
    x = solver.solve(matrix, b, x0=backend.asarray(expected))
    assert solver.iterations == 0
    np.testing.assert_allclose(backend.to_numpy(x), expected, rtol=0, atol=1e-12)
    solver.solve(matrix, b, rtol=1e-2, atol=1e-8)  # atol below rtol ||b||: rtol decides
    loose = solver.iterations
    solver.solve(matrix, b, rtol=1e-14, atol=1e-3 * np.linalg.norm(rhs))
    assert solver.iterations - loose <= loose + 1


def test_failure_to_converge_raises_with_the_iteration_count():
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (20, 20), "no_flux")
    backend = create_backend("numpy")
    matrix = on(backend, random_m_matrix(grid, seed=2))
    solver = StencilSolver(grid, backend, preconditioner="jacobi", max_iter=3)
    with pytest.raises(SolverError, match=r"BiCGStab did not converge after 3 iterations"):
        solver.solve(matrix, np.ones(grid.shape))
    bad = StencilMatrix(np.full(grid.shape, np.nan), matrix.minus, matrix.plus)
    with pytest.raises(SolverError, match="non-finite"):
        StencilSolver(grid, backend).solve(bad, np.ones(grid.shape))


def test_generic_bicgstab_and_the_sparse_jacobi_wrapper_agree_with_dense():
    rng = np.random.default_rng(4)
    n = 60
    a = -rng.random((n, n)) * (rng.random((n, n)) < 0.1)
    np.fill_diagonal(a, 0.0)
    a += np.diag(-a.sum(axis=1) + 0.5)
    b = rng.standard_normal(n)
    expected = np.linalg.solve(a, b)
    xp = create_backend("numpy").xp
    result = bicgstab(xp, lambda v: a @ v, b, precond=lambda v: v / np.diag(a), rtol=1e-12)
    tol = {"rtol": 1e-10, "atol": 1e-10 * np.abs(expected).max()}
    np.testing.assert_allclose(result.x, expected, **tol)
    np.testing.assert_allclose(result.residual, b - a @ result.x, rtol=0, atol=1e-12)
    rows, cols = np.nonzero(a)
    pattern = sparse.SparsePattern(rows.astype(np.int64), cols.astype(np.int64), n)
    x = sparse.bicgstab_jacobi(xp, pattern, a[rows, cols], b)
    np.testing.assert_allclose(x, expected, **tol)


def test_generic_fgmres_with_a_varying_preconditioner_agrees_with_dense():
    rng = np.random.default_rng(5)
    n = 50
    a = np.eye(n) * 3.0 + rng.standard_normal((n, n)) / np.sqrt(n)  # not symmetric
    b = rng.standard_normal((5, 10))  # any shape: the operator acts on the flattened array
    expected = np.linalg.solve(a, b.ravel()).reshape(b.shape)
    calls = []

    def precond(v):  # a different (Jacobi-like) preconditioner at every call
        calls.append(1)
        return v / (np.diag(a).reshape(b.shape) + 0.1 * len(calls) % 3)

    xp = create_backend("numpy").xp
    x, iterations = fgmres(xp, lambda v: (a @ v.ravel()).reshape(b.shape), b, precond, rtol=1e-12,
                           restart=20, max_iter=200)
    assert 0 < iterations <= 200 and len(calls) >= iterations
    assert np.linalg.norm(b - (a @ x.ravel()).reshape(b.shape)) <= 1e-12 * np.linalg.norm(b)
    np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-11)
    with pytest.raises(SolverError, match="FGMRES did not converge in 3 iterations"):
        fgmres(xp, lambda v: (a @ v.ravel()).reshape(b.shape), b, precond, rtol=1e-12, restart=2, max_iter=3)


@pytest.mark.parametrize("name", BACKENDS)
def test_batched_cyclic_tridiagonal(name):
    backend = create_backend(name)
    rng = np.random.default_rng(6)
    lower, upper = -rng.random((3, 7)), -rng.random((3, 7))
    diag = 2.5 + rng.random((3, 7))
    rhs = rng.standard_normal((3, 7))
    x = cyclic_tridiagonal(backend.xp, backend.solve_tridiagonal,
                           *(backend.asarray(v) for v in (lower, diag, upper, rhs)))
    for k in range(3):
        full = np.diag(diag[k]) + np.diag(lower[k, 1:], -1) + np.diag(upper[k, :-1], 1)
        full[0, -1], full[-1, 0] = lower[k, 0], upper[k, -1]
        np.testing.assert_allclose(backend.to_numpy(x)[k], np.linalg.solve(full, rhs[k]), rtol=1e-12)


def test_torch_device_path_never_leaves_the_tensor_world(monkeypatch):
    """Off the host the torch backend solves lines by PCR; Krylov must stay in torch."""
    torch = pytest.importorskip("torch")
    from mfg_rl.backends.torch_backend import TorchBackend

    class DeviceLike(TorchBackend):
        on_host = False  # take the accelerator code path on the CPU

    backend = DeviceLike("cpu")
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (12, 10), (("periodic", "periodic"), ("no_flux", "exit")))
    coefficients = random_m_matrix(grid, seed=8, anisotropy=2.0)
    rhs = np.random.default_rng(5).standard_normal(grid.shape)
    expected = np.linalg.solve(dense(grid, coefficients), rhs.ravel()).reshape(grid.shape)
    matrix, b = on(backend, coefficients), backend.asarray(rhs)

    def forbidden(*args, **kwargs):
        raise AssertionError("tensor copied to the host")

    monkeypatch.setattr(torch.Tensor, "numpy", forbidden)
    monkeypatch.setattr(torch.Tensor, "cpu", forbidden)
    monkeypatch.setattr(torch.Tensor, "__array__", forbidden)
    x = StencilSolver(grid, backend).solve(matrix, b)
    monkeypatch.undo()
    assert isinstance(x, torch.Tensor)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def test_bad_options_raise_before_work():
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (5, 5))
    backend = create_backend("numpy")
    with pytest.raises(ValueError, match="must be one of 'krylov', 'direct'"):
        StencilSolver(grid, backend, "cholesky")
    with pytest.raises(ValueError, match="preconditioner must be one of"):
        StencilSolver(grid, backend, preconditioner="ilu")


def test_an_emptied_crowd_projects_to_zero_not_nan():
    """A density step whose right-hand side is all but gone (everyone exited: crowd-2d at T = 50
    on its default grid) can clip the Krylov solution to zero, so ``1^T (b - A x) = 1^T b``: the
    mass projection must leave ``x = 0`` (it divided 0 by 0 and raised ZeroDivisionError)."""
    backend = create_backend("numpy")
    solver = StencilSolver(Grid([(0.0, 1.0), (0.0, 1.0)], (4, 4)), backend)
    b = np.full((4, 4), 1e-300)
    clipped = KrylovResult(x=np.full((4, 4), -1e-310), residual=b.copy(), iterations=1)
    x = solver._project(clipped, b, lambda v: 0.0 * v)
    assert np.all(x == 0.0)
