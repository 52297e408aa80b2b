"""The AMR loop (``solvers/amr.py``): grid <-> leaf transfers, agreement with the uniform solver
when the tree is the grid, and adaptive solves that conserve mass through every adaptation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mfg_rl import Equilibrium, problems, solve
from mfg_rl.core import Grid
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.core.tree_transfer import LeafMap
from mfg_rl.solvers.amr import AMR, changed_leaves, grid_to_leaves, interpolate_to_grid, leaves_to_grid
from mfg_rl.solvers.amr_marking import coarsen_through, error_indicator, mark
from mfg_rl.solvers.coupling import FixedPoint
from mfg_rl.solvers.registry import STRATEGIES


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
    with pytest.raises(ValueError, match="indicator"):
        AMR(max_level=5, min_level=5, indicator="curvature")
    with pytest.raises(ValueError, match="uniform level"):
        AMR(max_level=5, min_level=5, kernels="numpy").solve(problems.make("crowd-exit-1d", Nx=30, Nt=4))


def test_defaults_follow_the_grid() -> None:
    problem = problems.make("crowd-exit-1d", Nx=64, Nt=4)
    amr = STRATEGIES["amr"]().resolved(problem)
    assert (amr.max_level, amr.min_level, amr.budget) == (6, 4, 20)  # grid level, two coarser, 30 % of 64
    assert AMR(max_level=5, min_level=2).resolved(problem).budget == 10


@pytest.mark.parametrize("name", ["crowd-exit-1d", "lq-1d"])
def test_solve_with_amr_at_the_grid_level_is_the_uniform_solve(name: str) -> None:
    problem = problems.make(name, Nx=32, Nt=10)
    eq = solve(problem, coupling="fixed_point", tol=1e-11, progress=False)
    uniform = solve(problem, method=AMR(max_level=5, min_level=5, kernels="numpy"), coupling="fixed_point",
                    tol=1e-11, progress=False)
    refined = solve(problem, method=AMR(max_level=5, min_level=3, tol=1e-300, kernels="numpy"),
                    coupling="fixed_point", tol=1e-11, progress=False)  # refines everything, 8 -> 16 -> 32
    assert refined.diagnostics.options["strategy"]["leaves"] == {"5": 32}
    rounds = refined.diagnostics.options["strategy"]["rounds"]
    assert [r[0] for r in rounds] == [8, 16, 32]  # steered to round_tol; on the final mesh, on to tol (Steer)
    assert max(r[2] for r in rounds[:-1]) <= AMR.round_tol < 1e3 * min(r[2] for r in rounds[:-1])
    assert rounds[-1][2] <= 1e-11
    for amr, atol in ((uniform, 1e-10), (refined, 1e-9)):  # refined: started from another iterate, tol 1e-11
        assert amr.diagnostics.method == "amr" and amr.diagnostics.converged
        np.testing.assert_allclose(amr.u.numpy(), eq.u.numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(amr.m.numpy(), eq.m.numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(amr.diagnostics.mass, eq.diagnostics.mass, rtol=0, atol=atol)
        np.testing.assert_allclose(amr.diagnostics.exited, eq.diagnostics.exited, rtol=0, atol=atol)


def test_method_amr_saves_loads_caches_and_runs_anderson(tmp_path) -> None:
    problem = problems.make("crowd-exit-1d", Nx=64, Nt=10)
    eq = solve(problem, method="amr", progress=False, cache=tmp_path)
    strategy = eq.diagnostics.options["strategy"]
    assert eq.diagnostics.coupling == "anderson" and eq.diagnostics.converged  # "auto": Anderson alone
    assert sum(strategy["leaves"].values()) <= strategy["budget"] == 20
    mass = np.asarray(eq.diagnostics.mass)
    np.testing.assert_allclose(eq.m.numpy().sum(axis=1) * problem.grid.cell_volume, mass, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mass + np.asarray(eq.diagnostics.exited), 1.0, rtol=0, atol=1e-8)  # to tol
    back = Equilibrium.load(eq.save(tmp_path / "amr.npz"))
    np.testing.assert_array_equal(back.m.numpy(), eq.m.numpy())
    assert back.diagnostics.options == eq.diagnostics.options
    assert back.meshes == eq.meshes and eq.meshes.edges == (0, 10)  # the tree travels with the file
    again = solve(problem, method="amr", progress=False, cache=tmp_path)  # from the cache
    np.testing.assert_array_equal(again.u.numpy(), eq.u.numpy())
    assert again.diagnostics.options["strategy"]["leaves"] == strategy["leaves"]
    assert again.meshes == eq.meshes
    assert solve(problem, progress=False).meshes is None  # a grid solve has none


def test_saved_slab_meshes_are_rebuilt_and_checked(tmp_path) -> None:
    """``Equilibrium.save`` writes each slab's leaves; ``load`` rebuilds them through
    ``TreeMesh.from_leaves`` and refuses leaves that do not tile the box, or slabs off the horizon."""
    import json

    from mfg_rl.errors import EquilibriumFileError

    problem = problems.make("crowd-exit-1d", Nx=64, Nt=12)
    eq = solve(problem, method=AMR(max_level=6, min_level=3, budget=30, slabs=3), progress=False)
    assert len(eq.meshes.meshes) == 3 and eq.meshes.edges == (0, 4, 8, 12)
    assert [eq.meshes.slab_of_level(k) for k in (0, 1, 4, 5, 12)] == [0, 0, 0, 1, 2]
    back = Equilibrium.load(eq.save(tmp_path / "eq.npz"))
    assert all(a == b for a, b in zip(back.meshes.meshes, eq.meshes.meshes, strict=True))
    with np.load(tmp_path / "eq.npz") as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays["meta"]))

    def damaged(name: str, **change: object) -> str:
        out = dict(arrays, **change)
        np.savez(tmp_path / name, **out)
        return str(tmp_path / name)

    level = arrays["mesh_level"].copy()
    level[0] += 1  # a leaf one level finer: a hole in the tiling
    with pytest.raises(EquilibriumFileError, match="tree meshes that cannot be rebuilt"):
        Equilibrium.load(damaged("hole.npz", mesh_level=level))
    meta["meshes"]["edges"] = [0, 4, 8, 11]
    with pytest.raises(EquilibriumFileError, match="do not rise from 0 to Nt=12"):
        Equilibrium.load(damaged("edges.npz", meta=np.array(json.dumps(meta))))


@pytest.mark.parametrize("ndim", [1, 2])
def test_the_plot_of_an_amr_solve_draws_its_meshes_over_m(ndim: int, tmp_path) -> None:
    """1D: one segment per leaf boundary inside each slab, over the slab's times; 2D: one outline per
    leaf, the outlines tile the box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mfg_rl.plotting import _draw_leaves, _draw_slab_edges, plot_equilibrium

    name, sizes = ("crowd-exit-1d", {"Nx": 64}) if ndim == 1 else ("crowd-2d", {"Nx": 16, "Ny": 16})
    problem = problems.make(name, Nt=8, **sizes)
    amr = AMR(max_level=6 if ndim == 1 else 4, min_level=2, tol=0.01, indicator="density", slabs=2)
    eq = solve(problem, method=amr, progress=False)
    assert plot_equilibrium(eq, tmp_path / "amr.png").stat().st_size > 10_000
    fig, ax = plt.subplots()
    times = problem.time.times()
    if ndim == 1:
        _draw_slab_edges(ax, eq.meshes, times)
        segments = ax.collections[0].get_segments()
        assert len(segments) == sum(len(mesh) - 1 for mesh in eq.meshes.meshes)
        assert {(s[0][1], s[1][1]) for s in segments} == {(times[0], times[4]), (times[4], times[8])}
    else:
        mesh = eq.meshes.meshes[1]
        _draw_leaves(ax, mesh)
        boxes = ax.collections[0].get_paths()
        assert len(boxes) == len(mesh) and len(set(mesh.level.tolist())) > 1
        area = sum(np.ptp(box.vertices[:, 0]) * np.ptp(box.vertices[:, 1]) for box in boxes)
        np.testing.assert_allclose(area, 1.0, rtol=1e-12)
    plt.close(fig)


def test_solve_refuses_what_amr_cannot_run_before_work() -> None:
    problem = problems.make("crowd-exit-1d", Nx=32, Nt=4)
    with pytest.raises(ValueError, match="coupled Jacobian"):
        solve(problem, method="amr", coupling="newton", progress=False)
    with pytest.raises(ValueError, match="fp='fdm'"):
        solve(problem, method="amr", fp="particles", tol=0.01, progress=False)
    with pytest.raises(ValueError, match="method='amr'.*uniform level"):
        solve(problems.make("crowd-exit-1d", Nx=30, Nt=4), method="amr", progress=False)
    with pytest.raises(ValueError, match="max_level"):
        solve(problem, method=AMR(max_level=2, min_level=4), progress=False)


@pytest.mark.parametrize("ndim", [1, 2])
def test_values_interpolate_linearly_from_the_leaf_centres(ndim: int) -> None:
    grid = Grid([(0.0, 1.0)] * ndim, (16,) * ndim)
    mesh = mixed_mesh(grid, 4)
    linear = np.stack([1.0 + 2.0 * mesh.centres.sum(axis=1), 3.0 - mesh.centres[:, 0]])
    points = np.stack(grid.mesh(), axis=-1)
    inside = (np.abs(points - 0.5) < 0.5 - 1 / 8).all(axis=-1)  # within the outer coarse centres
    out = interpolate_to_grid(grid, mesh, linear)
    np.testing.assert_allclose(out[0][inside], 1.0 + 2.0 * points.sum(axis=-1)[inside], atol=1e-13)
    np.testing.assert_allclose(out[1][inside], 3.0 - points[..., 0][inside], atol=1e-13)
    at_grid = TreeMesh.from_grid(grid, min_level=4, max_level=4, kernels="numpy")
    values = np.random.default_rng(0).random((2, len(at_grid)))
    np.testing.assert_allclose(interpolate_to_grid(grid, at_grid, values),
                               leaves_to_grid(grid, at_grid, values), rtol=0, atol=1e-15)


def test_an_amr_equilibrium_feeds_envs_and_its_policy_is_nearly_unexploitable() -> None:
    import gymnasium

    from mfg_rl.benchmark import evaluate
    from mfg_rl.envs import equilibrium_policy

    eq = solve(problems.make("crowd-exit-1d", Nx=64, Nt=20), method="amr", progress=False)
    env = gymnasium.make("mfg_rl/CrowdExit1D-v0", equilibrium=eq)
    env.reset(seed=0)
    assert np.isfinite(env.step(env.action_space.sample())[1])
    # leaves up to 4x the grid's cells: u interpolated between centres, not a staircase (which scores 4.4)
    assert evaluate(equilibrium_policy(eq), eq)["exploitability"] < 0.1


@pytest.mark.parametrize("ndim", [1, 2])
def test_slab_transfers_of_u_and_m_are_adjoint(ndim: int) -> None:
    grid = Grid([(0.0, 1.0)] * ndim, (16,) * ndim)
    old = mixed_mesh(grid, 4)
    near = [np.linalg.norm(old.centres - c, axis=1) < 0.2 for c in (0.7, 0.3)]
    new = old.adapt(*near)  # refined near 0.7, coarsened near 0.3
    assert len(new) != len(old)
    rng = np.random.default_rng(7)
    m, u = rng.random(len(old)), rng.standard_normal(len(new))
    forward = LeafMap.between(old, new).transfer(m)  # Q m, as FP moves m into the next slab
    backward = LeafMap.between(new, old).transfer(u)  # P u, as HJB moves u into the previous slab
    assert (forward * new.volumes) @ u == pytest.approx((m * old.volumes) @ backward, rel=1e-13)


def test_slabs_on_one_mesh_are_the_uniform_solver() -> None:
    problem = problems.make("crowd-exit-1d", Nx=32, Nt=10)
    result = AMR(max_level=5, min_level=5, slabs=3, kernels="numpy").solve(problem, FixedPoint(), tol=1e-11)
    eq = solve(problem, coupling=FixedPoint(), backend="numpy", tol=1e-11, progress=False)
    u, m = result.on_grid()
    assert result.disc.edges.tolist() == [0, 3, 7, 10]
    np.testing.assert_allclose(u, eq.u.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(m, eq.m.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("name", "closed"), [("beach-bar-1d", True), ("crowd-exit-1d", False)])
def test_slab_meshes_adapt_apart_and_keep_mass_exact(name: str, closed: bool) -> None:
    problem = problems.make(name, Nx=32, Nt=12)
    result = AMR(max_level=6, min_level=3, budget=24, slabs=4, kernels="numpy").solve(problem, tol=1e-8)
    assert result.coupling.converged and len(result.rounds) >= 2
    meshes = result.meshes
    assert any(a != b for a, b in zip(meshes, meshes[1:], strict=False))  # the slabs' meshes differ
    assert max(len(mesh) for mesh in result.meshes) <= 24 and result.mean_leaves() <= 24
    assert result.transfer_mass_error < 1e-12
    disc = result.disc
    mass = disc.mass(result.m)
    assert abs(mass[0] - 1.0) < 1e-12 and (result.m >= 0.0).all()
    steps = disc.matrices(result.u, result.m)
    m_fp = disc.fp(steps)  # one FP sweep through every slab change
    fp_mass = disc.mass(m_fp)
    if closed:
        np.testing.assert_allclose(np.concatenate([mass, fp_mass]), 1.0, rtol=0, atol=1e-12)
    else:  # what leaves is the exits' outflow dt (A_n 1)^T V m^{n+1}, step by step
        out = [disc.dt * (steps[n] @ np.ones(disc.sizes[s]) - 1.0 / disc.dt)
               @ (meshes[s].volumes * disc.m_level(m_fp, n + 1)) for n, s in enumerate(disc.step_slab)]
        np.testing.assert_allclose(fp_mass[:-1] - fp_mass[1:], out, rtol=0, atol=1e-14)
        assert fp_mass[-1] < 0.99
    u, m = result.on_grid()
    np.testing.assert_allclose(m.reshape(len(m), -1).sum(axis=1) * problem.grid.cell_volume, mass, rtol=0,
                               atol=1e-12)


def test_an_adaptation_of_a_few_leaves_is_counted_exactly_and_skipped_below_settle_share() -> None:
    grid = Grid([(0.0, 1.0)] * 2, (16, 16))
    mesh = TreeMesh.from_grid(grid, min_level=2, max_level=4, kernels="numpy")  # 16 leaves of level 2
    one = mesh.refine(np.arange(len(mesh)) == 5)  # one leaf into its 4 children: 19 leaves
    assert len(one) == 19
    assert (changed_leaves(mesh, mesh), changed_leaves(mesh, one), changed_leaves(one, mesh)) == (0, 4, 1)
    assert AMR(max_level=4, min_level=2, settle_share=0.25).keeps([mesh, mesh], [mesh, one])  # 4 of 35
    assert not AMR(max_level=4, min_level=2, settle_share=0.2).keeps([mesh], [one])  # 4 of 19
    assert AMR(max_level=4, min_level=2, settle_share=0.0).keeps([one], [one])


def test_bad_slabs_or_round_tol_are_refused_before_work() -> None:
    with pytest.raises(ValueError, match=r"settle_share"):
        AMR(max_level=5, min_level=3, settle_share=1.0)
    with pytest.raises(ValueError, match="slabs"):
        AMR(max_level=5, min_level=3, slabs=0)
    with pytest.raises(ValueError, match="round_tol"):
        AMR(max_level=5, min_level=3, round_tol=0.0)
    with pytest.raises(ValueError, match=r"slabs must be an integer in \[1, Nt=4\]"):
        AMR(max_level=5, min_level=3, slabs=5).solve(problems.make("crowd-exit-1d", Nx=32, Nt=4))


def test_first_level_starts_finer_and_is_checked_before_work() -> None:
    problem = problems.make("crowd-exit-1d", Nx=64, Nt=12, sigma=0.05, m0_width=0.03)
    amr = AMR(max_level=6, min_level=3, first_level=5, tol=0.01, indicator="density", slabs=4,
              kernels="numpy")
    first = amr.resolved(problem).first_mesh(problem)
    assert len(first) == 32 and (first.level == 5).all() and first.root.min_level == 3
    result = amr.solve(problem, tol=1e-8)
    assert result.rounds[0][0] == 32 and result.coupling.converged and result.transfer_mass_error < 1e-12
    assert (np.concatenate([mesh.level for mesh in result.meshes]) < 5).any()  # coarsened below the start
    assert abs(result.disc.mass(result.m)[0] - 1.0) < 1e-12
    assert AMR(max_level=6, min_level=3).resolved(problem).first_level == 3  # default: min_level
    for bad in (2, 7):
        with pytest.raises(ValueError, match="first_level"):
            AMR(max_level=6, min_level=3, first_level=bad)
    with pytest.raises(ValueError, match="first_level"):  # below the default min_level, max_level - 2
        AMR(max_level=6, first_level=3).resolved(problem)


def test_density_indicator_marks_where_the_field_is() -> None:
    mesh = TreeMesh.uniform([(0.0, 1.0)], min_level=3, max_level=6, kernels="numpy")
    m = np.stack([np.exp(-((mesh.centres[:, 0] - c) / 0.05) ** 2) for c in (0.3, 0.4)])  # a crowd that moves
    eta = error_indicator(mesh, m, kind="density")
    np.testing.assert_allclose(eta, np.abs(m).max(axis=0) / np.abs(m).max(), rtol=1e-15)
    marks = mark(mesh, eta, above=0.01)
    np.testing.assert_array_equal(marks.refine, eta > 0.01)
    np.testing.assert_array_equal(marks.coarsen, eta < 0.0025)
    assert 0 < marks.refine.sum() < len(mesh) and marks.coarsen.any()
    with pytest.raises(ValueError, match="not both"):
        mark(mesh, eta, tol=1.0, above=0.01)
    with pytest.raises(ValueError, match="above must be"):
        mark(mesh, eta, above=0.0)


def test_density_marking_coarsens_through_levels_where_nobody_is() -> None:
    mesh = TreeMesh.uniform([(0.0, 1.0)], min_level=2, max_level=7, kernels="numpy")
    mesh = mesh.refine(mesh.level < 7)
    mesh = mesh.refine(np.ones(len(mesh), dtype=bool))  # uniform at level 4
    m = np.exp(-((mesh.centres[:, 0] - 0.3) / 0.03) ** 2)
    eta = error_indicator(mesh, m, kind="density")
    marks = mark(mesh, eta, above=0.01)
    once = mesh.adapt(marks.refine, marks.coarsen)
    through = coarsen_through(mesh, once, eta, 0.01)
    assert once.level.min() == 3 and through.level.min() == 2 and len(through) < len(once)
    np.testing.assert_array_equal(np.sort(through.centres[through.level == 5, 0]),
                                  np.sort(once.centres[once.level == 5, 0]))  # the refined leaves stay
    top = np.zeros(len(through))
    np.maximum.at(top, through.locate(mesh.centres), eta)
    assert top[through.level < 3].max() < 0.25 * 0.01  # coarsened only where the crowd is not
    assert top[through.level <= 3].max() < 0.01
    assert (eta[mesh.locate(through.centres[through.level == 5])] > 0.01).all()  # refined where marked


def test_density_marking_per_slab_refines_where_the_crowd_is_then() -> None:
    problem = problems.make("crowd-exit-1d", Nx=64, Nt=12, sigma=0.05, m0_width=0.03)
    result = AMR(max_level=6, min_level=3, tol=0.01, indicator="density", slabs=4,
                 kernels="numpy").solve(problem, tol=1e-8)
    disc = result.disc
    assert result.coupling.converged and result.transfer_mass_error < 1e-12
    assert result.mean_leaves() < 0.8 * 64 and any(a != b for a, b in zip(result.meshes, result.meshes[1:],
                                                                             strict=False))
    top = np.abs(result.m).max()
    for k in range(problem.time.Nt + 1):  # the crowd sits on the finest leaves of its slab's mesh
        mesh, m = result.meshes[disc.m_slab[k]], disc.m_level(result.m, k)
        assert m[mesh.level < 6].max() <= 0.02 * top  # marked over 0.01 top by the steering solve


def test_barycentric_finds_each_points_triangle_and_weights() -> None:
    from scipy.spatial import Delaunay

    from mfg_rl.solvers.amr import barycentric

    grid = Grid([(0.0, 1.0)] * 2, (16, 16))
    centres = mixed_mesh(grid, 4).centres
    triangles = centres[Delaunay(centres).simplices]
    points = np.random.default_rng(8).random((500, 2))
    triangle, weights = barycentric(triangles, points, chunk=10_000)  # several chunks
    inside = triangle >= 0
    assert 0 < inside.sum() < len(points) and (weights[inside] >= -1e-12).all()
    np.testing.assert_allclose(weights[inside].sum(axis=1), 1.0, atol=1e-13)
    np.testing.assert_allclose(np.einsum("pk,pkd->pd", weights[inside], triangles[triangle[inside]]),
                               points[inside], atol=1e-13)
    lo, hi = centres.min(axis=0), centres.max(axis=0)
    assert not inside[((points < lo) | (points > hi)).any(axis=1)].any()  # beyond the centres: none


def test_barycentric_picks_the_first_holding_triangle_as_a_full_scan() -> None:
    """The binned search returns what testing every (point, triangle) pair returns: points on
    vertices and edges (held by several triangles) take the first, points outside none."""
    from scipy.spatial import Delaunay

    from mfg_rl.solvers.amr import barycentric

    centres = mixed_mesh(Grid([(0.0, 1.0)] * 2, (16, 16)), 4).centres
    triangles = centres[Delaunay(centres).simplices]
    rng = np.random.default_rng(9)
    points = np.concatenate([rng.random((400, 2)) * 1.2 - 0.1, centres, triangles.mean(axis=1),
                             0.5 * (triangles[:, 0] + triangles[:, 1])])
    a, e1, e2 = triangles[:, 0], triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    d = points[:, None, :] - a  # every pair (P, S, 2)
    w1 = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
    w2 = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
    hit = (w1 >= -1e-12) & (w2 >= -1e-12) & (w1 + w2 <= 1.0 + 1e-12)
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    for chunk in (1 << 22, 500):
        triangle, weights = barycentric(triangles, points, chunk=chunk)
        np.testing.assert_array_equal(triangle, first)
        rows = np.flatnonzero(first >= 0)
        expected = np.stack([1.0 - w1[rows, first[rows]] - w2[rows, first[rows]], w1[rows, first[rows]],
                             w2[rows, first[rows]]], axis=1)
        np.testing.assert_allclose(weights[rows], expected, rtol=0, atol=1e-15)
    assert (hit.sum(axis=1) > 1).sum() > 100  # shared vertices and edges were tested


def test_anderson_loosens_the_tree_newton_steps_to_the_same_equilibrium() -> None:
    """``Anderson`` (inexact: Newton steps to ``FORCING`` times the coupling residual, as on the grid)
    and exact steps reach the same equilibrium to the coupling tolerance, with fewer Newton iterations."""
    from mfg_rl.solvers.coupling import Anderson

    problem = problems.make("crowd-2d", Nx=16, Ny=16, Nt=6)
    amr = AMR(max_level=4, min_level=2, tol=0.01, indicator="density", slabs=2, kernels="numpy")
    loose, exact = (amr.solve(problem, Anderson(inexact=flag), tol=1e-9) for flag in (True, False))
    assert [len(mesh) for mesh in loose.meshes] == [len(mesh) for mesh in exact.meshes]
    assert loose.coupling.converged and exact.coupling.converged
    np.testing.assert_allclose(loose.m, exact.m, rtol=0, atol=1e-7 * np.abs(exact.m).max())
    np.testing.assert_allclose(loose.u, exact.u, rtol=0, atol=1e-7 * np.abs(exact.u).max())
    assert loose.coupling.newton_iterations < exact.coupling.newton_iterations


def test_a_solve_on_the_same_meshes_keeps_the_steps_and_starts_from_u() -> None:
    """``SlabMFG(previous=...)`` keeps the ``TreeMFG`` (scheme, factors) of each unchanged slab, and
    ``TreeMarching(start=u)`` starts the first sweep's Newton at ``u``: from a converged solve, the
    first HJB sweep takes no Newton iteration and gives the same ``u``."""
    from mfg_rl.solvers.amr import TreeMarching
    from mfg_rl.solvers.amr_slabs import SlabMFG
    from mfg_rl.solvers.coupling import Anderson

    problem = problems.make("crowd-2d", Nx=16, Ny=16, Nt=6)
    result = AMR(max_level=4, min_level=2, tol=0.01, indicator="density", slabs=2,
                 kernels="numpy").solve(problem, Anderson(), tol=1e-10)
    old = result.disc
    again = SlabMFG(problem, result.meshes, old.edges, old.trees[0].m0, previous=old)
    assert all(new is kept for new, kept in zip(again.trees, old.trees, strict=True))
    coarser = [result.meshes[0], result.meshes[1].coarsen(np.ones(len(result.meshes[1]), dtype=bool))]
    assert coarser[1] != result.meshes[1]
    other = SlabMFG(problem, coarser, old.edges, old.trees[0].m0, previous=old)
    assert other.trees[0] is old.trees[0] and other.trees[1] is not old.trees[1]
    hjb = TreeMarching(result.u).hjb(again, result.m)
    assert hjb.newton_iterations == 0
    np.testing.assert_array_equal(hjb.u, result.u)
    assert TreeMarching().hjb(again, result.m).newton_iterations > 0


def test_a_solve_on_a_uniform_2d_mesh_runs_on_its_grid() -> None:
    """``AMR.grid_round``: the first steering solve, on a uniform 2D mesh, runs the grid's solver (the
    tree scheme there is the grid's, cell by cell): its ``(u, m)`` on the leaves is the tree solve's
    to the coupling tolerance, and callbacks see leaf fields; a 1D band or a mixed mesh stays on the tree."""
    from mfg_rl.solvers.amr import TreeMarching
    from mfg_rl.solvers.amr_slabs import SlabMFG, slab_edges
    from mfg_rl.solvers.callbacks import Snapshots
    from mfg_rl.solvers.coupling import Anderson, run_coupling

    problem = problems.make("crowd-2d", Nx=16, Ny=16, Nt=6)
    amr = AMR(max_level=4, min_level=2, first_level=3, tol=0.01, indicator="density", slabs=2,
              kernels="numpy").resolved(problem)
    mesh = amr.first_mesh(problem)
    disc = SlabMFG(problem, [mesh, mesh], slab_edges(6, 2), grid_to_leaves(problem.grid, mesh, problem.m0))
    assert AMR.on_grid(disc) and len(mesh) == 64
    seen = Snapshots()
    options = {"tol": 1e-11, "max_iter": 200, "allow_unconverged": False}
    on_grid = amr.grid_round(problem, disc, Anderson(), [seen], 1e-12, options)
    on_tree = run_coupling(disc, TreeMarching(), TreeMarching(), Anderson(), **options)
    assert on_grid.converged and on_tree.converged
    np.testing.assert_allclose(on_grid.m, on_tree.m, rtol=0, atol=1e-9 * np.abs(on_tree.m).max())
    np.testing.assert_allclose(on_grid.u, on_tree.u, rtol=0, atol=1e-9 * np.abs(on_tree.u).max())
    assert {u.shape for _, u, _ in seen.snapshots} == {(7, 64)}
    np.testing.assert_array_equal(seen.snapshots[-1][2], on_grid.m)
    mixed = mesh.refine(np.arange(len(mesh)) == 0)
    assert not AMR.on_grid(SlabMFG(problem, [mesh, mixed], slab_edges(6, 2), disc.m0))
    line = problems.make("crowd-exit-1d", Nx=32, Nt=4)
    uniform = TreeMesh.from_grid(line.grid, min_level=4, max_level=5, kernels="numpy")
    start = grid_to_leaves(line.grid, uniform, line.m0)
    assert not AMR.on_grid(SlabMFG(line, [uniform], slab_edges(4, 1), start))


def test_an_amr_solve_that_keeps_its_uniform_2d_mesh_is_that_grid_solve() -> None:
    """Marking that keeps the first mesh (nothing above ``tol``, nothing below ``min_level``): the
    steering solve settles and goes on to ``tol`` on the grid; its result is the uniform solve."""
    from mfg_rl.solvers.coupling import Anderson

    problem = problems.make("crowd-2d", Nx=16, Ny=16, Nt=6)
    result = AMR(max_level=4, min_level=3, tol=2.0, indicator="density", kernels="numpy").solve(
        problem, Anderson(), tol=1e-10)
    assert len(result.rounds) == 1 and result.coupling.converged and len(result.mesh) == 64
    grid = Grid(problem.grid.bounds, (8, 8), boundary=problem.grid.boundary)  # m0: the cell averages
    coarse = dataclasses.replace(problem, grid=grid, m0=problem.m0.reshape(8, 2, 8, 2).mean(axis=(1, 3)))
    eq = solve(coarse, coupling=Anderson(), backend="numpy", tol=1e-10, progress=False)
    np.testing.assert_allclose(leaves_to_grid(coarse.grid, result.mesh, result.m), eq.m.numpy(), rtol=0,
                               atol=1e-12)
