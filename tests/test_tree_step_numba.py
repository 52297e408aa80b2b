"""The compiled tree step (``backends/tree_step_numba.py``) against ``TreeScheme``'s numpy path.

Same mesh, one with ``kernels="numba"`` (compiled slopes, values, Jacobian and ``SparseLU``
products), one with ``kernels="numpy"``: the kernels sum the same terms in the same order, so
the numbers agree to round-off (asserted to 1e-13 relative; measured: bit for bit); the whole
HJB and FP trajectories agree to 1e-12; the same for the bands of a 1D tree. Without numba
``TreeScheme`` keeps its numpy path.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfg_rl.core import Grid, MFGProblem, TimeGrid
from mfg_rl.core.hamiltonians import Hamiltonian
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.solvers.tree_linear import SparseLU
from mfg_rl.solvers.tree_scheme import TreeMFG, TreeScheme

pytest.importorskip("numba")

BOUNDARIES = {
    "exit": [("no_flux", "exit"), ("no_flux", "no_flux")],
    "periodic": [("periodic", "periodic"), ("no_flux", "no_flux")],
}


def room(boundary: str, congestion: float, kernels: str) -> tuple[MFGProblem, TreeMesh, np.ndarray]:
    """A 2D crowd on a mesh refined three times near its bump (hanging faces, levels 2..5); ``m0``
    on the leaves, of mass 1. ``congestion=0``: a constant speed ``g`` (a number, not an array)."""
    grid = Grid([(0.0, 1.0)] * 2, (8, 8), boundary=BOUNDARIES[boundary])
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 6), sigma=0.2, running_cost=lambda x, m: 1.0 + m,
                         terminal_cost=lambda x, m: 5.0 + 0.0 * m, m0=np.ones(grid.shape),
                         hamiltonian=Hamiltonian(congestion=congestion), exit_cost=0.5)
    mesh = TreeMesh.from_grid(grid, min_level=2, max_level=5, kernels=kernels)
    for _ in range(3):
        mesh = mesh.refine((np.linalg.norm(mesh.centres - 0.4, axis=1) < 0.25) & (mesh.level < 5))
    m0 = np.exp(-np.sum((mesh.centres - 0.4) ** 2, axis=1) / 0.02)
    return problem, mesh, m0 / (m0 @ mesh.volumes)


def close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-13) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * max(np.abs(expected).max(), 1.0))


CASES = [("exit", 0.5), ("periodic", 0.5), ("exit", 0.0)]


@pytest.mark.parametrize(("boundary", "congestion"), CASES, ids=[f"{b}-{c}" for b, c in CASES])
def test_compiled_step_equals_numpy(boundary: str, congestion: float) -> None:
    problem, mesh, m0 = room(boundary, congestion, "numba")
    reference = TreeScheme(*room(boundary, congestion, "numpy")[:2])
    scheme = TreeScheme(problem, mesh)
    assert scheme.compiled and not reference.compiled and mesh.faces.hanging.any()
    rng = np.random.default_rng(0)
    for u in (rng.standard_normal(len(mesh)), 3.0 * mesh.centres[:, 0] - mesh.centres[:, 1]):
        for got, want in zip(scheme.slopes(u), reference.slopes(u), strict=True):
            close(got, want)
        value, matrix = scheme.apply_sparse(u, m0, scheme.bind(m0), 7.0)
        value_np, matrix_np = reference.apply_sparse(u, m0, reference.bind(m0), 7.0)
        close(value, value_np)
        close(matrix.data, matrix_np.data)
        v = rng.standard_normal(len(mesh))
        close(matrix @ v, matrix_np @ v)
        close(matrix.rmatvec(v), matrix_np.rmatvec(v))
        close(matrix.rmatvec(v, absolute=True), matrix_np.rmatvec(v, absolute=True))
        # and both are the CSR Jacobian of TreeScheme.apply (scipy's sums, another order)
        csr_value, jacobian = reference.apply(u, m0)
        dense = (jacobian + 7.0 * sp.identity(len(mesh))).toarray()
        close(value, csr_value, 1e-14)
        close(matrix.toarray(), dense, 1e-14)
        close(matrix @ v, dense @ v)
        close(matrix.rmatvec(v), dense.T @ v)


def test_a_wrong_kernel_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above sees a kernel that drops one drift entry."""
    from mfg_rl.backends import tree_step_numba

    problem, mesh, m0 = room("exit", 0.5, "numba")
    scheme, reference = TreeScheme(problem, mesh), TreeScheme(*room("exit", 0.5, "numpy")[:2])
    assemble = tree_step_numba.assemble

    def dropped(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        args = list(args)
        args[11] = args[11].copy()  # b, the neighbour entries
        args[11][np.argmax(np.abs(args[11]))] = 0.0
        return assemble(*args)

    monkeypatch.setattr(tree_step_numba, "assemble", dropped)
    u = np.random.default_rng(1).standard_normal(len(mesh))
    data = scheme.apply_sparse(u, m0, scheme.bind(m0), 7.0)[1].data
    assert np.abs(data - reference.apply_sparse(u, m0, reference.bind(m0), 7.0)[1].data).max() > 1e-3


@pytest.mark.parametrize("boundary", ["exit", "periodic"])
def test_compiled_trajectories_equal_numpy(boundary: str) -> None:
    problem, mesh, m0 = room(boundary, 0.5, "numba")
    trees = [TreeMFG(problem, mesh, m0), TreeMFG(*room(boundary, 0.5, "numpy"))]
    crowd = np.stack([m0] * (problem.time.Nt + 1))
    out = []
    for tree in trees:
        hjb = tree.hjb(crowd)
        assert isinstance(hjb.steps[0], SparseLU)
        out.append((hjb.u, tree.fp(hjb.steps)))
    close(out[0][0], out[1][0], 1e-12)
    close(out[0][1], out[1][1], 1e-12)
    np.testing.assert_allclose(trees[0].mass(out[0][1])[0], 1.0, rtol=0, atol=1e-12)


def test_numpy_kernels_keep_the_numpy_path() -> None:
    problem, mesh, _ = room("exit", 0.5, "numpy")
    assert not TreeScheme(problem, mesh).compiled


def line(boundary: tuple[str, str], congestion: float, kernels: str,
         ) -> tuple[MFGProblem, TreeMesh, np.ndarray]:
    """A 1D crowd on a binary tree refined near its bump (levels 3..6): a tridiagonal Jacobian."""
    grid = Grid([(0.0, 1.0)], (32,), boundary=[boundary])
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 5), sigma=0.2, running_cost=lambda x, m: 1.0 + m,
                         terminal_cost=lambda x, m: 0.0 * m, m0=np.ones(grid.shape),
                         hamiltonian=Hamiltonian(congestion=congestion), exit_cost=0.5)
    mesh = TreeMesh.from_grid(grid, min_level=3, max_level=6, kernels=kernels)
    for _ in range(3):
        mesh = mesh.refine((np.abs(mesh.centres[:, 0] - 0.3) < 0.15) & (mesh.level < 6))
    m0 = np.exp(-((mesh.centres[:, 0] - 0.3) ** 2) / 0.01)
    return problem, mesh, m0 / (m0 @ mesh.volumes)


LINES = [(("no_flux", "exit"), 0.5), (("no_flux", "no_flux"), 0.0), (("exit", "exit"), 0.3)]


@pytest.mark.parametrize(("boundary", "congestion"), LINES, ids=["exit", "walls-constant-speed", "two-exits"])
def test_compiled_bands_equal_numpy(boundary: tuple[str, str], congestion: float) -> None:
    """The 1D step (``apply_tridiagonal``): the compiled value and bands are the numpy path's, and
    the whole HJB and FP trajectories agree to 1e-12."""
    problem, mesh, m0 = line(boundary, congestion, "numba")
    scheme, reference = TreeScheme(problem, mesh), TreeScheme(*line(boundary, congestion, "numpy")[:2])
    assert scheme.tridiagonal and scheme.compiled and not reference.compiled
    rng = np.random.default_rng(2)
    for u in (rng.standard_normal(len(mesh)), 2.0 - 3.0 * mesh.centres[:, 0] ** 2):
        value, bands = scheme.apply_tridiagonal(u, m0, scheme.bind(m0), 5.0)
        value_np, bands_np = reference.apply_tridiagonal(u, m0, reference.bind(m0), 5.0)
        close(value, value_np)
        for got, want in zip((bands.lower, bands.diag, bands.upper),
                             (bands_np.lower, bands_np.diag, bands_np.upper), strict=True):
            close(got, want)
        csr_value, jacobian = reference.apply(u, m0)  # and both are the CSR Jacobian (scipy's sums)
        close(value, csr_value, 1e-14)
        close(bands.toarray(), (jacobian + 5.0 * sp.identity(len(mesh))).toarray(), 1e-14)
    trees = [TreeMFG(problem, mesh, m0), TreeMFG(*line(boundary, congestion, "numpy"))]
    crowd = np.stack([m0] * (problem.time.Nt + 1))
    (u, m), (u_np, m_np) = [(hjb.u, tree.fp(hjb.steps)) for tree in trees for hjb in [tree.hjb(crowd)]]
    close(u, u_np, 1e-12)
    close(m, m_np, 1e-12)
