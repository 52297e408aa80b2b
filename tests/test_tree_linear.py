"""The linear algebra of the tree steps (``solvers/tree_linear.py``): the fixed CSC pattern and its
LU (solves and transposed solves to round-off), ``apply_sparse`` equal to the CSR Jacobian, and the
reuse of factors across Newton iterations and coupling sweeps (``ChordSolve``): fewer
factorisations, the same steps to Newton's tolerance, mass still exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import mfg_rl.solvers.tree_linear as tree_linear
from mfg_rl.core import Grid, MFGProblem, TimeGrid
from mfg_rl.core.hamiltonians import Hamiltonian
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.solvers.tree_linear import CSCSlots, SparseLU
from mfg_rl.solvers.tree_scheme import TreeMFG, TreeScheme


def room() -> tuple[MFGProblem, TreeMesh, np.ndarray]:
    """A congested 2D crowd with an exit on a mesh refined twice near its bump (hanging faces);
    ``m0`` on the leaves, of mass 1."""
    grid = Grid([(0.0, 1.0)] * 2, (8, 8), boundary=[("no_flux", "exit"), ("no_flux", "no_flux")])
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 8), sigma=0.2, running_cost=lambda x, m: 1.0 + m,
                         terminal_cost=lambda x, m: 5.0 + 0.0 * m, m0=np.ones(grid.shape),
                         hamiltonian=Hamiltonian(congestion=0.5), exit_cost=0.0)
    mesh = TreeMesh.from_grid(grid, min_level=2, max_level=5, kernels="numpy")
    for _ in range(3):
        mesh = mesh.refine((np.linalg.norm(mesh.centres - 0.4, axis=1) < 0.25) & (mesh.level < 5))
    m0 = np.exp(-np.sum((mesh.centres - 0.4) ** 2, axis=1) / 0.02)
    return problem, mesh, m0 / (m0 @ mesh.volumes)


def test_pattern_and_lu_solve_both_ways() -> None:
    rng = np.random.default_rng(0)
    size = 40
    rows, cols = rng.integers(0, size, 300), rng.integers(0, size, 300)  # with duplicates
    values = -rng.random(300)
    pattern = CSCSlots(rows, cols, size)
    data = pattern.gather(values)
    dense = sp.coo_matrix((values, (rows, cols)), shape=(size, size)).toarray()
    shift = 1.0 + np.abs(dense).sum(axis=1)  # rows dominated by 1
    data[pattern.diagonal] += shift
    dense += np.diag(shift)
    matrix = SparseLU(pattern, data)
    np.testing.assert_array_equal(matrix.toarray(), dense)
    rhs = rng.standard_normal(size)
    assert not matrix.factored
    np.testing.assert_allclose(matrix @ rhs, dense @ rhs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(matrix.solve(rhs), np.linalg.solve(dense, rhs), rtol=0, atol=1e-12)
    assert matrix.factored
    np.testing.assert_allclose(matrix.solve(rhs, transpose=True), np.linalg.solve(dense.T, rhs),
                               rtol=0, atol=1e-12)


def test_apply_sparse_is_the_csr_jacobian() -> None:
    problem, mesh, m0 = room()
    scheme = TreeScheme(problem, mesh)
    assert not scheme.tridiagonal
    u = np.random.default_rng(1).standard_normal(len(mesh))
    value, jac = scheme.apply(u, m0)
    sparse_value, sparse = scheme.apply_sparse(u, m0, scheme.bind(m0), 7.0)
    np.testing.assert_array_equal(sparse_value, value)
    expected = (jac + 7.0 * sp.identity(len(mesh))).toarray()
    np.testing.assert_allclose(sparse.toarray(), expected, rtol=0, atol=1e-14 * np.abs(expected).max())


def test_factors_are_reused_across_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    problem, mesh, m0 = room()
    calls = []
    splu = tree_linear.splu
    monkeypatch.setattr(tree_linear, "splu", lambda *a, **k: calls.append(1) or splu(*a, **k))
    tree = TreeMFG(problem, mesh, m0)
    crowd = np.stack([m0] * (problem.time.Nt + 1))
    first = tree.hjb(crowd)
    assert len(calls) < first.newton_iterations / 2  # plain Newton factorises once per iteration
    calls.clear()
    m = tree.fp(first.steps)
    assert len(calls) < problem.time.Nt / 2  # J_n^T x = b refined with the last Newton factors
    ones, dt = np.ones(len(mesh)), problem.time.dt
    outflow = [dt * (step @ ones - 1.0 / dt) @ (tree.volumes * m[n + 1])
               for n, step in enumerate(first.steps)]
    np.testing.assert_allclose(tree.mass(m), 1.0 - np.concatenate([[0.0], np.cumsum(outflow)]), rtol=0,
                               atol=1e-13)  # mass: what left through the exit, to round-off
    crowd = 0.5 * (crowd + m)  # a damped coupling sweep: starts from the FP step's factors
    calls.clear()
    again = tree.hjb(crowd, first.u)
    assert len(calls) < again.newton_iterations / 2
    monkeypatch.setattr(tree_linear, "CHORD_RATE", 0.0)  # no reuse: plain Newton
    newton = TreeMFG(problem, mesh, m0).hjb(crowd, first.u)
    assert newton.newton_iterations < again.newton_iterations
    np.testing.assert_allclose(again.u, newton.u, rtol=0, atol=1e-11 * np.abs(newton.u).max())


def test_later_factorisations_on_a_pattern_reuse_its_order() -> None:
    """The first LU on a pattern keeps its fill-reducing order; later matrices on the pattern are
    factorised permuted, in natural order: solves both ways still match the dense ones."""
    problem, mesh, m0 = room()
    scheme = TreeScheme(problem, mesh)
    rng = np.random.default_rng(3)
    first, second = (scheme.apply_sparse(rng.standard_normal(len(mesh)), m0, scheme.bind(m0), 7.0)[1]
                     for _ in range(2))
    rhs = rng.standard_normal(len(mesh))
    assert scheme._pattern.order is None
    first.solve(rhs)
    order = scheme._pattern.order
    assert order is not None and not np.array_equal(order, np.arange(len(mesh)))  # MMD moved something
    for matrix in (first, second):
        dense = matrix.toarray()
        np.testing.assert_allclose(matrix.solve(rhs), np.linalg.solve(dense, rhs), rtol=0, atol=1e-12)
        np.testing.assert_allclose(matrix.solve(rhs, transpose=True), np.linalg.solve(dense.T, rhs), rtol=0,
                                   atol=1e-12)
    assert second._order is order and first._order is None  # the second LU is of the permuted matrix


def test_fp_steps_started_from_a_guess_are_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fp(steps, guess)`` (the coupling's last ``m``) solves each step to the same round-off as
    without a guess; from the answer itself no step factorises."""
    problem, mesh, m0 = room()
    tree = TreeMFG(problem, mesh, m0)
    first = tree.hjb(np.stack([m0] * (problem.time.Nt + 1)))
    plain = tree.fp(first.steps)
    calls = []
    splu = tree_linear.splu
    monkeypatch.setattr(tree_linear, "splu", lambda *a, **k: calls.append(1) or splu(*a, **k))
    for guess in (plain, 0.5 * (plain + m0)):
        m = tree.fp(first.steps, guess)
        np.testing.assert_allclose(m, plain, rtol=0, atol=1e-13 * np.abs(plain).max())
        np.testing.assert_allclose(tree.mass(m), tree.mass(plain), rtol=0, atol=1e-14)
        if guess is plain:
            assert not calls
