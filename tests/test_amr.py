"""The AMR loop (``solvers/amr.py``): grid <-> leaf transfers, agreement with the uniform solver
when the tree is the grid, and adaptive solves that conserve mass through every adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from mfg_rl import problems, solve
from mfg_rl.core import Grid
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.solvers.amr import AMR, grid_to_leaves, leaves_to_grid
from mfg_rl.solvers.coupling import FixedPoint


def mixed_mesh(grid: Grid, level: int) -> TreeMesh:
    """A mesh with leaves two levels above and two below the grid's ``level``."""
    mesh = TreeMesh.from_grid(grid, min_level=level - 2, max_level=level + 2, kernels="numpy")
    for _ in range(4):
        mesh = mesh.refine(np.linalg.norm(mesh.centres - 0.3, axis=1) < 0.2)
    assert mesh.level.min() < level < mesh.level.max()
    return mesh


@pytest.mark.parametrize("ndim", [1, 2])
def test_grid_and_leaves_exchange_cell_averages_conservatively(ndim: int) -> None:
    grid = Grid([(0.0, 1.0)] * ndim, (16,) * ndim)
    mesh = mixed_mesh(grid, 4)
    rng = np.random.default_rng(0)
    on_grid = rng.random((3, *grid.shape))
    leaves = grid_to_leaves(grid, mesh, on_grid)
    np.testing.assert_allclose(leaves @ mesh.volumes, on_grid.reshape(3, -1).sum(axis=1) * grid.cell_volume,
                               rtol=1e-13)
    on_leaves = rng.random((3, len(mesh)))
    back = leaves_to_grid(grid, mesh, on_leaves)
    np.testing.assert_allclose(back.reshape(3, -1).sum(axis=1) * grid.cell_volume, on_leaves @ mesh.volumes,
                               rtol=1e-13)
    at_grid = TreeMesh.from_grid(grid, min_level=4, max_level=6, kernels="numpy")
    fine = at_grid.refine(np.linalg.norm(at_grid.centres - 0.3, axis=1) < 0.2)
    np.testing.assert_allclose(leaves_to_grid(grid, fine, grid_to_leaves(grid, fine, on_grid)), on_grid,
                               rtol=1e-14)  # leaves at or below the grid's cells: exact round trip


@pytest.mark.parametrize("name", ["crowd-exit-1d", "lq-1d"])
def test_amr_on_the_grid_level_is_the_uniform_solver(name: str) -> None:
    problem = problems.make(name, Nx=32, Nt=10)
    result = AMR(max_level=5, min_level=5, kernels="numpy").solve(problem, FixedPoint(), tol=1e-11)
    eq = solve(problem, coupling=FixedPoint(), backend="numpy", tol=1e-11, progress=False)
    u, m = result.on_grid()
    assert result.coupling.converged and result.coupling.iterations == eq.diagnostics.iterations
    np.testing.assert_allclose(u, eq.u.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(m, eq.m.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("name", "closed"), [("beach-bar-1d", True), ("crowd-exit-1d", False)])
def test_adaptive_solve_converges_and_conserves_mass(name: str, closed: bool) -> None:
    problem = problems.make(name, Nx=32, Nt=10)
    result = AMR(max_level=6, min_level=3, budget=24, kernels="numpy").solve(problem, tol=1e-8)
    assert result.coupling.converged and len(result.rounds) >= 2
    assert len(result.mesh) <= 24 and len(set(result.mesh.level.tolist())) >= 2  # adapted, not uniform
    assert result.transfer_mass_error < 1e-12
    mass = result.m @ result.mesh.volumes
    assert abs(mass[0] - 1.0) < 1e-12 and (result.m >= 0.0).all()
    if closed:
        np.testing.assert_allclose(mass, 1.0, rtol=0, atol=1e-12)
    else:
        assert (np.diff(mass) <= 1e-15).all() and mass[-1] < 0.99  # the crowd leaves by the exits


def test_bad_input_is_refused_before_work() -> None:
    with pytest.raises(ValueError, match="max_level"):
        AMR(max_level=2, min_level=4)
    with pytest.raises(ValueError, match="budget"):
        AMR(max_level=5, min_level=2, budget=0)
    with pytest.raises(ValueError, match="tol or budget"):
        AMR(max_level=5, min_level=2)
    with pytest.raises(ValueError, match="indicator"):
        AMR(max_level=5, min_level=5, indicator="curvature")
    with pytest.raises(ValueError, match="uniform level"):
        AMR(max_level=5, min_level=5, kernels="numpy").solve(problems.make("crowd-exit-1d", Nx=30, Nt=4))
