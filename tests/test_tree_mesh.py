"""The tree mesh (``core/tree_mesh.py``), its kernels (``backends/tree_numba.py`` against the
numpy twin ``backends/tree_numpy.py``), the transfer between meshes (``core/tree_transfer.py``)
and the error indicators and marking (``solvers/amr_marking.py``).

Brute-force references: the leaves painted on the finest grid (a label per finest cell) give
the tiling, the 2:1 balance, every face with its area and every boundary face; a scan over
all leaves gives the leaf of a point.
"""

from __future__ import annotations

from collections.abc import Callable

import numba  # noqa: F401  (a test dependency through the [all] extra: fail loudly without it)
import numpy as np
import pytest

from mfg_rl.backends.tree_indicators import indicator_jax, indicator_numpy
from mfg_rl.core import Grid
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.core.tree_root import TreeRoot
from mfg_rl.core.tree_transfer import LeafMap
from mfg_rl.solvers.amr_marking import error_indicator, mark


@pytest.fixture(scope="module", autouse=True)
def compiled_kernels() -> None:
    """Compile the numba kernels once for the module (~5 s the first time ever, then loaded from
    numba's disk cache in ~1 s), so that each test times its own work."""
    mesh = TreeMesh.uniform([(0.0, 1.0)], min_level=1, max_level=3, kernels="numba")
    mesh = mesh.refine(np.array([True, False]))
    mesh.coarsen(np.ones(len(mesh), dtype=bool))
    mesh.locate([0.5])
    assert len(mesh.faces) == 2 and len(mesh.families) == 1


CASES = [(1, False), (1, True), (2, False), (2, (True, False)), (2, True)]
CASE_IDS = ["1d", "1d-periodic", "2d", "2d-periodic-x", "2d-periodic"]


def new_mesh(ndim: int, periodic: bool | tuple[bool, bool], kernels: str, max_level: int = 6) -> TreeMesh:
    if ndim == 1:  # a root of 3 cells: Morton keys over a box that is not a power of two
        return TreeMesh.uniform([(-1.0, 2.0)], root_shape=3, min_level=2, max_level=max_level + 2,
                                periodic=periodic, kernels=kernels)
    return TreeMesh.uniform([(0.0, 1.0), (-1.0, 1.0)], root_shape=(1, 2), min_level=1, max_level=max_level,
                            periodic=periodic, kernels=kernels)


def random_meshes(ndim: int, periodic: bool | tuple[bool, bool], kernels: str, seed: int,
                  steps: int = 5) -> list[TreeMesh]:
    """A sequence of meshes, each refined and coarsened at random from the one before."""
    rng = np.random.default_rng(seed)
    meshes = [new_mesh(ndim, periodic, kernels)]
    for _ in range(steps):
        mesh = meshes[-1]
        meshes.append(mesh.adapt(rng.random(len(mesh)) < 0.4, rng.random(len(mesh)) < 0.5))
    return meshes


def raster(mesh: TreeMesh) -> np.ndarray:
    """Leaf index per cell of the finest grid (-1 where no leaf lies: must not happen)."""
    labels = np.full(mesh.root.finest_shape, -1, dtype=np.int64)
    for k, (level, coords) in enumerate(zip(mesh.level, mesh.coords, strict=True)):
        shift = mesh.root.max_level - level
        region = tuple(slice(c << shift, (c + 1) << shift) for c in coords)
        assert (labels[region] == -1).all(), "leaves overlap"
        labels[region] = k
    assert (labels >= 0).all(), "leaves leave a hole"
    return labels


def raster_faces(mesh: TreeMesh) -> tuple[dict, dict]:
    """``{(minus, plus, axis): area}`` of the interior faces and ``{(leaf, axis, side): area}`` of the
    boundary faces, summed from the finest grid's faces between different leaves."""
    labels, root = raster(mesh), mesh.root
    fine_area = [np.prod([root.width(root.max_level)[e] for e in range(mesh.ndim) if e != d]) for d in
                 range(mesh.ndim)]
    interior: dict = {}
    boundary: dict = {}
    for d in range(mesh.ndim):
        low, high = labels, np.roll(labels, -1, axis=d)
        valid = np.ones(labels.shape, dtype=bool)
        if not root.periodic[d]:
            edge = [slice(None)] * mesh.ndim
            edge[d] = -1
            valid[tuple(edge)] = False
            for side, index in ((0, 0), (1, -1)):
                edge[d] = index
                for leaf in labels[tuple(edge)].ravel():
                    boundary[(int(leaf), d, side)] = boundary.get((int(leaf), d, side), 0.0) + fine_area[d]
        pairs = valid & (low != high)
        for a, b in zip(low[pairs], high[pairs], strict=True):
            interior[(int(a), int(b), d)] = interior.get((int(a), int(b), d), 0.0) + fine_area[d]
    return interior, boundary


@pytest.mark.parametrize(("ndim", "periodic"), CASES, ids=CASE_IDS)
def test_numba_and_numpy_twins_identical(ndim: int, periodic: bool) -> None:
    rng = np.random.default_rng(7)
    fast_meshes = random_meshes(ndim, periodic, "numba", 3)
    for fast, slow in zip(fast_meshes, random_meshes(ndim, periodic, "numpy", 3), strict=True):
        assert fast.kernels == "numba" and slow.kernels == "numpy"
        assert fast == slow
        for name in ("keys", "families"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        for a, b in zip(fast._face_lists, slow._face_lists, strict=True):
            np.testing.assert_array_equal(a, b)
        points = np.array([lo for lo, _ in fast.root.bounds]) + rng.random((500, ndim)) * [
            hi - lo for lo, hi in fast.root.bounds]
        np.testing.assert_array_equal(fast.locate(points), slow.locate(points))
        flags = rng.random(len(fast)) < 0.7
        assert fast.coarsen(flags) == slow.coarsen(flags)


@pytest.mark.parametrize(("ndim", "periodic"), CASES, ids=CASE_IDS)
def test_random_refinements_stay_2to1_balanced_tilings(ndim: int, periodic: bool) -> None:
    for mesh in random_meshes(ndim, periodic, "numba", 11, steps=6)[1:]:
        labels = raster(mesh)
        level = mesh.level[labels]
        for d in range(ndim):
            step = np.abs(np.diff(level, axis=d, append=np.take(level, [0], axis=d)))
            if not mesh.root.periodic[d]:
                step = np.delete(step, -1, axis=d)
            assert step.max(initial=0) <= 1
        assert mesh.volumes.sum() == pytest.approx(mesh.root.volume, rel=1e-14)
    assert max(len(m) for m in random_meshes(ndim, periodic, "numba", 11, steps=6)) > 40


@pytest.mark.parametrize(("ndim", "periodic"), CASES, ids=CASE_IDS)
def test_faces_are_the_faces_of_the_finest_grid_raster(ndim: int, periodic: bool) -> None:
    for mesh in random_meshes(ndim, periodic, "numba", 5)[1:]:
        interior, boundary = raster_faces(mesh)
        faces = mesh.faces
        seen = list(zip(faces.minus.tolist(), faces.plus.tolist(), faces.axis.tolist(), strict=True))
        assert len(set(seen)) == len(seen) == len(interior), "every interior face once"
        for key, area in zip(seen, faces.area, strict=True):
            assert area == pytest.approx(interior[key], rel=1e-14)
        np.testing.assert_array_equal(faces.hanging, mesh.level[faces.minus] != mesh.level[faces.plus])
        assert faces.hanging.any() == (len(np.unique(mesh.level)) > 1)
        b = mesh.boundary_faces
        keys = zip(b.leaf.tolist(), b.axis.tolist(), b.side.tolist(), strict=True)
        found = dict(zip(keys, b.area, strict=True))
        assert found.keys() == boundary.keys()
        for key, area in found.items():
            assert area == pytest.approx(boundary[key], rel=1e-14)
        for d in range(ndim):  # the areas on each side of every leaf add up to that side's measure
            side = np.prod(np.delete(mesh.sizes, d, axis=1), axis=1)
            on = faces.axis == d
            for leaves, bside in ((faces.minus[on], 1), (faces.plus[on], 0)):
                total = np.bincount(leaves, faces.area[on], len(mesh))
                at = (b.axis == d) & (b.side == bside)
                total += np.bincount(b.leaf[at], b.area[at], len(mesh))
                np.testing.assert_allclose(total, side, rtol=1e-14)
        normal = 0.5 * (mesh.sizes[faces.minus, faces.axis] + mesh.sizes[faces.plus, faces.axis])
        np.testing.assert_array_equal(faces.normal_distance, normal)
        assert (faces.distance >= faces.normal_distance).all()


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize(("ndim", "periodic"), [(1, False), (2, True)], ids=["1d", "2d-periodic"])
def test_locate_agrees_with_a_scan_over_leaves(ndim: int, periodic: bool, kernels: str) -> None:
    rng = np.random.default_rng(3)
    mesh = random_meshes(ndim, periodic, kernels, 9)[-1]
    lo = np.array([lo for lo, _ in mesh.root.bounds])
    hi = np.array([hi for _, hi in mesh.root.bounds])
    fine = mesh.root.width(mesh.root.max_level)
    points = np.concatenate([
        lo + rng.random((3000, ndim)) * (hi - lo),
        lo + rng.integers(0, np.array(mesh.root.finest_shape) + 1, (500, ndim)) * fine,  # on faces, corners
        hi[None, :], lo[None, :],
    ])
    low = lo + mesh.coords * mesh.sizes
    high = lo + (mesh.coords + 1) * mesh.sizes
    p = points[:, None, :]
    scan = np.all((p >= low) & ((p < high) | ((p == hi) & (high == hi))), axis=2)  # faces belong above
    assert (scan.sum(axis=1) == 1).all()
    found = mesh.locate(points)
    np.testing.assert_array_equal(found, np.argmax(scan, axis=1))
    if ndim == 1:
        np.testing.assert_array_equal(mesh.locate(points[:, 0]), found)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize(("ndim", "periodic"), CASES, ids=CASE_IDS)
def test_refine_then_coarsen_returns_the_original_mesh(ndim: int, periodic: bool, kernels: str) -> None:
    rng = np.random.default_rng(21)
    for mesh in random_meshes(ndim, periodic, kernels, 13, steps=4):
        refined = mesh.refine(rng.random(len(mesh)) < 0.3)
        new = refined.level != mesh.level[LeafMap.between(mesh, refined).start]
        assert refined.coarsen(new) == mesh


@pytest.mark.parametrize(("ndim", "periodic"), CASES, ids=CASE_IDS)
def test_transfer_conserves_the_integral_both_ways(ndim: int, periodic: bool) -> None:
    rng = np.random.default_rng(4)
    meshes = random_meshes(ndim, periodic, "numba", 17, steps=6)
    for old, new in zip(meshes[:-1], meshes[1:], strict=True):
        values = rng.standard_normal((3, len(old))) * 10 ** rng.uniform(-3, 3, (3, 1))
        there = LeafMap.between(old, new).transfer(values)
        back = LeafMap.between(new, old).transfer(there)
        for a, mesh_a, b, mesh_b in ((values, old, there, new), (there, new, back, old)):
            total = np.abs(a) @ mesh_a.volumes
            np.testing.assert_allclose(b @ mesh_b.volumes, a @ mesh_a.volumes, rtol=0,
                                       atol=1e-12 * total.max())
    mesh = meshes[2]
    refined = mesh.refine(np.ones(len(mesh), dtype=bool))
    values = rng.random(len(mesh))
    down = LeafMap.between(mesh, refined)
    np.testing.assert_array_equal(down.transfer(values), values[down.start])  # a copy into children
    up = LeafMap.between(refined, mesh)
    np.testing.assert_allclose(up.transfer(down.transfer(values)), values, rtol=1e-15)
    new_leaf, old_leaf, weight = LeafMap.between(refined, mesh).pairs
    np.testing.assert_allclose(np.bincount(new_leaf, weight), 1.0, rtol=1e-15)


@pytest.mark.parametrize(("ndim", "periodic"), [(1, False), (2, False)], ids=["1d", "2d"])
def test_interpolate_is_exact_on_linear_functions(ndim: int, periodic: bool) -> None:
    """``interpolate`` with the exact gradient carries ``u = c + k . x`` to every new leaf exactly:
    children by the gradient, parents by the mean of their children (the value at their centre);
    ``transfer`` alone leaves the children at their parent's value, wrong by ``k . (x - x_parent)``."""
    slope = np.array([2.0, -3.0][:ndim])
    meshes = random_meshes(ndim, periodic, "numba", 23, steps=4)
    for old, new in zip(meshes[:-1], meshes[1:], strict=True):
        values = 0.5 + old.centres @ slope
        leaf_map = LeafMap.between(old, new)
        exact = 0.5 + new.centres @ slope
        gradients = np.broadcast_to(slope, (2, len(old), ndim))
        np.testing.assert_allclose(leaf_map.interpolate(np.stack([values, values]), gradients),
                                   np.stack([exact, exact]), rtol=0, atol=1e-12)
        children = (leaf_map.stop - leaf_map.start == 1) & (old.level[leaf_map.start] < new.level)
        assert children.any()
        assert np.abs(leaf_map.transfer(values) - exact)[children].min() > 1e-3


def front_mesh(kind: str) -> TreeMesh:
    """A few adaptation cycles on a sharp front ``x + y = 1`` (u: a tanh, m: a step)."""
    mesh = TreeMesh.uniform([(0.0, 1.0), (0.0, 1.0)], min_level=3, max_level=7, kernels="numba")
    for _ in range(6):
        x, y = mesh.centres.T
        u = np.tanh((x + y - 1.0) / 0.01)
        m = np.where(x + y < 1.0, 2.0, 0.0)
        marks = mark(mesh, error_indicator(mesh, u, m, kind=kind), tol=1e-2)
        mesh = mesh.adapt(marks.refine, marks.coarsen)
    return mesh


@pytest.mark.parametrize("kind", ["jump", "gradient"])
def test_indicators_refine_at_a_sharp_front_not_in_the_flat_part(kind: str) -> None:
    mesh = front_mesh(kind)
    distance = np.abs(mesh.centres.sum(axis=1) - 1.0) / np.sqrt(2)
    finest = mesh.level == mesh.root.max_level
    assert finest.sum() >= 100
    assert distance[finest].max() < 0.06  # within six front widths
    far = distance > 0.2
    assert (mesh.level[far] <= mesh.root.min_level + 1).all()
    assert len(mesh) < 0.25 * np.prod(mesh.root.finest_shape)


@pytest.mark.parametrize("kind", ["jump", "gradient"])
def test_jax_indicator_equals_numpy(kind: str) -> None:
    rng = np.random.default_rng(8)
    for mesh in (random_meshes(2, (True, False), "numba", 2, steps=4)[-1],
                 random_meshes(1, False, "numba", 2)[-1]):
        f = mesh.faces
        args = (f.minus, f.plus, f.axis, f.area, f.normal_distance, mesh.volumes, mesh.sizes, kind)
        values = np.sin(7 * mesh.centres.sum(axis=1)) + rng.standard_normal((2, len(mesh)))
        reference = indicator_numpy(values, *args)
        np.testing.assert_allclose(indicator_jax(values, *args), reference, rtol=1e-12,
                                   atol=1e-12 * reference.max())
        compiled = error_indicator(mesh, values[0], values[1], kind=kind, kernel="jax")
        plain = error_indicator(mesh, values[0], values[1], kind=kind)
        np.testing.assert_allclose(compiled, plain, rtol=1e-12, atol=1e-14)


def test_indicator_formulas_on_a_uniform_line() -> None:
    mesh = TreeMesh.uniform([(0.0, 1.0)], min_level=5, max_level=5, kernels="numpy")
    x, h = mesh.centres[:, 0], mesh.sizes[0, 0]
    inner = slice(2, -2)
    gradient = error_indicator(mesh, 3.0 * x, kind="gradient", weights=[1.0])
    np.testing.assert_allclose(gradient[inner], h * h * 3.0 / 4, rtol=1e-12)  # |K| h |v'| / 4
    jump = error_indicator(mesh, 2.5 * x**2, kind="jump", weights=[1.0])
    np.testing.assert_allclose(jump[inner], h * h * 5.0, rtol=1e-9)  # |K| h |v''|
    assert error_indicator(mesh, np.ones((4, len(mesh)))).max() == 0.0


def test_budget_marks_the_worst_leaves_and_is_met() -> None:
    mesh = random_meshes(2, False, "numba", 6)[-1]
    x, y = mesh.centres.T
    eta = error_indicator(mesh, np.exp(-((x - 0.3) ** 2 + y**2) / 0.02))
    for budget in (len(mesh) + 50, len(mesh) + 400, len(mesh) // 2):
        marks = mark(mesh, eta, budget=budget)
        adapted = mesh.adapt(marks.refine, marks.coarsen)
        assert len(adapted) <= budget
        refinable = ~marks.refine & (mesh.level < mesh.root.max_level)
        if marks.refine.any():
            assert eta[marks.refine].min() >= eta[refinable].max(initial=0.0)
    assert len(adapted) < len(mesh)  # the last budget is below the mesh: it coarsened
    assert not mark(mesh, eta, tol=eta.sum()).refine.any()  # the target is met: nothing to refine
    tol = mark(mesh, eta, tol=0.1 * eta.sum())
    both = mark(mesh, eta, tol=0.1 * eta.sum(), budget=len(mesh) + 30)
    assert tol.refine.sum() > both.refine.sum() > 0
    assert (both.refine <= tol.refine).all() and len(mesh.adapt(both.refine, both.coarsen)) <= len(mesh) + 30


def test_geometry_and_constructors() -> None:
    grid = Grid([(0.0, 2.0), (-1.0, 0.0)], (8, 4), boundary=(("periodic", "periodic"), ("no_flux", "exit")))
    mesh = TreeMesh.from_grid(grid, min_level=2, max_level=5, kernels="numpy")
    assert mesh.root.root_shape == (2, 1) and mesh.root.periodic == (True, False)
    assert len(mesh) == 32 and mesh.volumes.sum() == pytest.approx(2.0)
    np.testing.assert_allclose(np.sort(np.unique(mesh.centres[:, 0])), grid.coordinates()[0])
    again = TreeMesh.from_leaves(mesh.root, mesh.level, mesh.coords)
    assert again == mesh and again.kernels == "numba"
    assert mesh.leaves_per_level().tolist() == [0, 0, 32, 0, 0, 0]
    with pytest.raises(ValueError, match="read-only"):
        mesh.level[0] = 3


def line(min_level: int = 0) -> TreeMesh:
    return TreeMesh.uniform([(0, 1)], min_level=min_level, max_level=3)


ROOT = TreeRoot([(0, 1)], 1, 0, 3)
BAD: list[tuple[Callable[[], object], type, str]] = [
    (lambda: TreeMesh.uniform([(0, 1)], min_level=3, max_level=2), ValueError, "max_level must be .*>= 3"),
    (lambda: TreeMesh.uniform([(0, 1)], min_level=-1, max_level=2), ValueError, "min_level"),
    (lambda: TreeMesh.uniform([(0, 1)], max_level=2.0), TypeError, "max_level"),
    (lambda: TreeMesh.uniform([(0, 1), (0, 1)], max_level=32), ValueError, "max_level must be <= 31"),
    (lambda: TreeMesh.uniform([(0, 1), (0, 1), (0, 1)], max_level=2), ValueError, "1D or 2D box"),
    (lambda: TreeMesh.uniform([(0, 1, 2)], max_level=2), ValueError, r"bounds\[0\] must be a \(lo, hi\)"),
    (lambda: TreeMesh.uniform(1.0, max_level=2), TypeError, "bounds"),
    (lambda: TreeMesh.uniform([(0, np.inf)], max_level=2), ValueError, r"bounds\[0\]\[1\] must be a finite"),
    (lambda: TreeMesh.uniform([(0, np.nan)], max_level=2), ValueError, r"bounds\[0\]\[1\]"),
    (lambda: TreeMesh.uniform([(1, 0)], max_level=2), ValueError, "lo < hi"),
    (lambda: TreeMesh.uniform([(0, 1)], root_shape=0, max_level=2), ValueError, "root_shape"),
    (lambda: TreeMesh.uniform([(0, 1)], max_level=2, kernels="cuda"), ValueError, "kernels"),
    (lambda: TreeMesh.uniform([(0, 1)], max_level=2, periodic="yes"), TypeError, "periodic"),
    (lambda: line().locate([1.5]), ValueError, "points must be finite and inside"),
    (lambda: line().locate([np.nan]), ValueError, "points"),
    (lambda: line().locate(np.zeros((2, 2))), ValueError, r"points must have shape \(N, 1\)"),
    (lambda: line().refine([True, False]), ValueError, r"flags must have shape \(1,\)"),
    (lambda: line().refine(np.array([1])), TypeError, "flags must be a boolean"),
    (lambda: line().coarsen(np.zeros((1, 1), bool)), ValueError, "flags"),
    (lambda: line().adapt(None, [True, True]), ValueError, "coarsen must have shape"),
    (lambda: TreeMesh.from_grid("grid", max_level=2), TypeError, "grid"),
    (lambda: TreeMesh.from_leaves(ROOT, [1, 1], [[0], [0]]), ValueError, "overlap"),
    (lambda: TreeMesh.from_leaves(ROOT, [1, 3, 3, 2], [[0], [4], [5], [3]]), ValueError, "balanced"),
    (lambda: TreeMesh.from_leaves(ROOT, [1], [[0]]), ValueError, "tiling"),
    (lambda: TreeMesh.from_leaves(ROOT, [4, 4], [[0], [1]]), ValueError, r"level must lie in \[0, 3\]"),
    (lambda: mark(line(), [0.0], budget=0), ValueError, "budget must be .*>= 1"),
    (lambda: mark(line(min_level=2), np.zeros(4), budget=3), ValueError, "budget must be an integer >= 4"),
    (lambda: mark(line(), [0.0], budget=2.5), TypeError, "budget"),
    (lambda: mark(line(), [0.0], tol=-1.0), ValueError, "tol"),
    (lambda: mark(line(), [0.0]), ValueError, "tol .* budget"),
    (lambda: mark(line(), [0.0, 1.0], tol=1.0), ValueError, r"eta must have shape"),
    (lambda: mark(line(), [-1.0], tol=1.0), ValueError, "eta must be finite"),
    (lambda: error_indicator(line(), np.zeros(3)), ValueError, r"fields\[0\]"),
    (lambda: error_indicator(line(), [0.0], kind="hessian"), ValueError, "kind"),
    (lambda: error_indicator(line(), [0.0], kernel="torch"), ValueError, "kernel"),
    (lambda: LeafMap.between(line(), TreeMesh.uniform([(0, 2)], max_level=3)), ValueError, "share one"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_raises_naming_the_parameter(call: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
