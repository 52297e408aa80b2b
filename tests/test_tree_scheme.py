"""The finite-volume scheme on tree meshes (``solvers/tree_scheme.py``).

On a uniform tree mesh it must be the uniform grid's scheme cell by cell (``NumericalHamiltonian``
and ``DiscreteMFG``: value, Jacobian, whole HJB and FP trajectories to 1e-12); on refined meshes
(hanging faces) its Jacobian must be an M-matrix and FP must conserve mass and positivity.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfg_rl import create_backend, problems
from mfg_rl.core import Grid, MFGProblem, TimeGrid
from mfg_rl.core.hamiltonians import Hamiltonian
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import LinearSolver, stencil_coo, stencil_values
from mfg_rl.solvers.trajectory import Sequential
from mfg_rl.solvers.tree_scheme import TreeMFG, TreeScheme

UNIFORM = [
    ("crowd-exit-1d", dict(Nx=32, Nt=8, exits="both")),  # exits on both ends
    ("lq-1d", dict(Nx=32, Nt=8)),  # no-flux walls
    ("beach-bar-1d", dict(Nx=32, Nt=8)),  # periodic
    ("crowd-2d", dict(Nx=8, Ny=8, Nt=4)),  # exit and walls, congestion (an array speed)
]


def uniform_case(name: str, kwargs: dict) -> tuple[MFGProblem, TreeMesh, np.ndarray]:
    """The problem, its grid as a uniform tree mesh and ``order``: grid cell (C order) of each leaf."""
    problem = problems.make(name, **kwargs)
    level = int(np.log2(problem.grid.shape[0]))
    mesh = TreeMesh.from_grid(problem.grid, min_level=level, max_level=level + 2, kernels="numpy")
    centres = np.stack([a.ravel() for a in problem.grid.mesh()], axis=1)
    order = np.argsort(mesh.locate(centres))
    return problem, mesh, order


def to_leaves(values: np.ndarray, order: np.ndarray, ndim: int) -> np.ndarray:
    """Grid values ``(*batch, *shape)`` -> leaf values ``(*batch, M)``."""
    return values.reshape(*values.shape[: values.ndim - ndim], -1)[..., order]


@pytest.mark.parametrize(("name", "kwargs"), UNIFORM, ids=[c[0] for c in UNIFORM])
def test_uniform_mesh_is_the_grid_scheme(name: str, kwargs: dict) -> None:
    problem, mesh, order = uniform_case(name, kwargs)
    ndim = problem.grid.ndim
    disc = DiscreteMFG(problem, create_backend("numpy"), linear=LinearSolver(method="direct"))
    rng = np.random.default_rng(1)
    u = rng.standard_normal(problem.grid.shape)
    m = problem.m0 * (1.0 + 0.5 * rng.random(problem.grid.shape))
    value, jac = disc.scheme.apply(u, m)
    scheme = TreeScheme(problem, mesh)
    tree_value, tree_jac = scheme.apply(to_leaves(u, order, ndim), to_leaves(m, order, ndim))
    scale = np.abs(value).max()
    np.testing.assert_allclose(tree_value, to_leaves(value, order, ndim), rtol=0, atol=1e-13 * scale)
    rows, cols = stencil_coo(problem.grid.shape, 1)
    dense = sp.coo_matrix((stencil_values(np, jac), (rows, cols)), shape=(len(mesh),) * 2).toarray()
    np.testing.assert_allclose(tree_jac.toarray(), dense[np.ix_(order, order)], rtol=0,
                               atol=1e-13 * np.abs(dense).max())

    crowd = np.stack([problem.m0] * (problem.time.Nt + 1))
    sweep = Sequential().hjb(disc, crowd)
    m = Sequential().fp(disc, sweep.u, crowd, steps=sweep.steps)
    tree = TreeMFG(problem, mesh, to_leaves(problem.m0, order, ndim))
    tree_sweep = tree.hjb(to_leaves(crowd, order, ndim))
    tree_m = tree.fp(tree_sweep.steps)
    if scheme.tridiagonal:  # plain Newton; elsewhere factors are reused (ChordSolve): more, cheaper steps
        assert tree_sweep.newton_iterations == sweep.newton_iterations
    np.testing.assert_allclose(tree_sweep.u, to_leaves(sweep.u, order, ndim), rtol=0, atol=1e-12)
    # Newton's target is 1e-12 of u's scale: plain Newton lands far below it, reused factors just below
    np.testing.assert_allclose(tree_m, to_leaves(m, order, ndim), rtol=0, atol=1e-11 * np.abs(m).max())
    rebuilt = tree.matrices(tree_sweep.u, to_leaves(crowd, order, ndim))  # J_n from u and the crowd
    np.testing.assert_allclose(tree.fp(rebuilt), tree_m, rtol=0, atol=1e-12)
    for crowd_now in (crowd, m):  # the FP residual of the grid, also away from the FP solution
        assert abs(tree.fp_residual(tree_sweep.u, to_leaves(crowd_now, order, ndim))
                   - disc.fp_residual(sweep.u, crowd_now)) < 1e-11


def refined_case(ndim: int, boundary: str) -> tuple[MFGProblem, TreeMesh, np.ndarray]:
    """A congested crowd pulled to a corner on a mesh refined twice near it (hanging faces in
    both directions), with ``m0`` a bump at the leaf centres, of mass 1."""
    grid = Grid([(0.0, 1.0)] * ndim, (8,) * ndim, boundary=boundary)
    target = 0.7

    def terminal(x: object, m: np.ndarray) -> np.ndarray:
        xs = (x,) if ndim == 1 else x
        return 5.0 * sum((xd - target) ** 2 for xd in xs) + 0.0 * m

    def bump(x: object) -> np.ndarray:
        xs = (x,) if ndim == 1 else x
        return np.exp(-sum((xd - 0.3) ** 2 for xd in xs) / 0.02)

    on_grid = bump(grid.mesh()[0] if ndim == 1 else grid.mesh())
    problem = MFGProblem(grid=grid, time=TimeGrid(1.0, 10), sigma=0.3, running_cost=lambda x, m: m,
                         terminal_cost=terminal, m0=on_grid / (on_grid.sum() * grid.cell_volume),
                         hamiltonian=Hamiltonian(congestion=0.5))
    mesh = TreeMesh.from_grid(grid, min_level=2, max_level=5, kernels="numpy")
    for _ in range(3):
        near = np.linalg.norm(mesh.centres - 0.6, axis=1) < 0.25
        mesh = mesh.refine(near & (mesh.level < 5))
    assert mesh.faces.hanging.any() and len(set(mesh.level.tolist())) >= 3
    m0 = bump(mesh.centres[:, 0] if ndim == 1 else tuple(mesh.centres.T))
    return problem, mesh, m0 / (m0 @ mesh.volumes)


CLOSED = [(1, "no_flux"), (1, "periodic"), (2, "no_flux"), (2, "periodic")]


@pytest.mark.parametrize(("ndim", "boundary"), CLOSED, ids=[f"{d}d-{b}" for d, b in CLOSED])
def test_refined_mesh_conserves_mass_and_positivity(ndim: int, boundary: str) -> None:
    problem, mesh, m0 = refined_case(ndim, boundary)
    tree = TreeMFG(problem, mesh, m0)
    m = np.stack([m0] * (problem.time.Nt + 1))
    for _ in range(3):  # a few Picard rounds: the crowd moves, the drift follows it
        m = tree.fp(tree.hjb(m).steps)
        np.testing.assert_allclose(tree.mass(m), 1.0, rtol=0, atol=1e-12)
        assert (m >= 0.0).all()
    centre_of_mass = (m[-1] * mesh.volumes) @ mesh.centres
    assert (centre_of_mass > (m0 * mesh.volumes) @ mesh.centres + 0.05).all()  # it moved to the target


@pytest.mark.parametrize("boundary", ["no_flux", "exit"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_refined_jacobian_is_an_m_matrix(ndim: int, boundary: str) -> None:
    problem, mesh, m0 = refined_case(ndim, boundary)
    scheme = TreeScheme(problem, mesh)
    u = np.random.default_rng(2).standard_normal(len(mesh))
    _, jac = scheme.apply(u, m0)
    a = jac.toarray()
    off = a - np.diag(np.diag(a))
    assert (np.diag(a) > 0.0).all() and (off <= 0.0).all()
    rows = a.sum(axis=1)
    assert (rows >= -1e-12 * np.abs(a).max()).all()  # diagonally dominant
    if boundary == "no_flux":  # constants are invariant: zero row sums
        np.testing.assert_allclose(rows, 0.0, atol=1e-12 * np.abs(a).max())
    else:
        assert rows.max() > 0.0


def test_jacobian_is_the_derivative_on_a_refined_mesh() -> None:
    problem, mesh, m0 = refined_case(2, "exit")
    scheme = TreeScheme(problem, mesh)
    u = np.random.default_rng(3).standard_normal(len(mesh))
    value, jac = scheme.apply(u, m0)
    step = np.random.default_rng(4).standard_normal(len(mesh))
    for eps in (1e-6,):
        fd = (scheme.apply(u + eps * step, m0)[0] - scheme.apply(u - eps * step, m0)[0]) / (2 * eps)
        np.testing.assert_allclose(fd, jac @ step, rtol=0, atol=1e-6 * np.abs(jac @ step).max())


@pytest.mark.parametrize("ndim", [1, 2])
def test_gradient_is_exact_for_linear_u_away_from_walls_and_hanging_faces(ndim: int) -> None:
    """``TreeScheme.gradient``: the mean of the side slopes, exact for ``u = k . x`` at leaves whose
    neighbours have their level (a central difference); beside a no-flux wall the ghost halves it."""
    problem, mesh, _ = refined_case(ndim, "no_flux")
    scheme = TreeScheme(problem, mesh)
    slope = np.array([1.5, -0.5][:ndim])
    gradient = scheme.gradient(mesh.centres @ slope)
    faces = mesh.faces
    even = np.ones(len(mesh), dtype=bool)
    uneven = mesh.level[faces.minus] != mesh.level[faces.plus]
    even[faces.minus[uneven]] = even[faces.plus[uneven]] = False
    walls = mesh.boundary_faces
    same = even.copy()
    same[walls.leaf] = False
    assert same.sum() > len(mesh) // 4
    np.testing.assert_allclose(gradient[same], np.broadcast_to(slope, (same.sum(), ndim)), rtol=1e-12)
    beside = walls.leaf[(walls.axis == 0) & even[walls.leaf]]
    assert len(beside)
    np.testing.assert_allclose(gradient[beside, 0], slope[0] / 2, rtol=1e-12)


def test_periodic_ends_or_2d_keep_the_csr_jacobian() -> None:
    assert not TreeScheme(*refined_case(1, "periodic")[:2]).tridiagonal  # the ends close the band
    assert not TreeScheme(*refined_case(2, "no_flux")[:2]).tridiagonal


@pytest.mark.parametrize("boundary", ["no_flux", "exit"])
def test_tridiagonal_bands_are_the_csr_jacobian_on_a_refined_1d_mesh(boundary: str) -> None:
    problem, mesh, m0 = refined_case(1, boundary)
    scheme = TreeScheme(problem, mesh)
    assert scheme.tridiagonal
    u = np.random.default_rng(5).standard_normal(len(mesh))
    value, jac = scheme.apply(u, m0)
    band_value, bands = scheme.apply_tridiagonal(u, m0, scheme.bind(m0), 3.0)
    dense = jac.toarray() + 3.0 * np.eye(len(mesh))
    np.testing.assert_allclose(band_value, value, rtol=0, atol=1e-14 * np.abs(value).max())
    np.testing.assert_allclose(bands.toarray(), dense, rtol=0, atol=1e-14 * np.abs(dense).max())
    np.testing.assert_allclose(bands.T.toarray(), dense.T, rtol=0, atol=1e-14 * np.abs(dense).max())
    rhs = np.random.default_rng(6).standard_normal(len(mesh))
    np.testing.assert_allclose(bands.solve(rhs), np.linalg.solve(dense, rhs), rtol=1e-12)
    np.testing.assert_allclose(bands.T @ rhs, dense.T @ rhs, rtol=1e-13)


def test_bad_mesh_or_m0_is_refused() -> None:
    problem = problems.make("crowd-exit-1d", Nx=16, Nt=4)
    wrong_box = TreeMesh.uniform([(0.0, 2.0)], min_level=4, max_level=5, kernels="numpy")
    with pytest.raises(ValueError, match="problem's box"):
        TreeScheme(problem, wrong_box)
    with pytest.raises(TypeError, match="TreeMesh"):
        TreeScheme(problem, problem.grid)
    mesh = TreeMesh.from_grid(problem.grid, min_level=4, max_level=5, kernels="numpy")
    with pytest.raises(ValueError, match="one value per leaf"):
        TreeMFG(problem, mesh, np.ones(8))
