"""Every kernel on every installed backend against the numpy/scipy reference.

Tridiagonal and sparse solves against dense ``numpy.linalg.solve``; exact KDE against a
plain numpy image sum and against ``scipy.stats.gaussian_kde``; binned KDE against exact
within the tolerance its module documents; interpolation against scipy's
``RegularGridInterpolator``. float64 to round-off, float32 with looser tolerances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator
from scipy.stats import gaussian_kde

from mfg_rl.backends import SparsePattern, available_backends, create_backend, sparse, tridiagonal
from mfg_rl.core import Grid

BACKENDS = list(available_backends())
# jax compiles each eager op once per shape: the KDE tests share these shapes to stay fast
N, N1, N2 = 300, 40, (24, 30)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():  # noqa: ANN201
    """Kernels are compared here, not timed: one thread spares a busy 2-core runner."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DTYPES = {"float64": (np.float64, 1e-12), "float32": (np.float32, 2e-4)}


@pytest.fixture(scope="module", params=BACKENDS)
def backend64(request: pytest.FixtureRequest):  # noqa: ANN201 - a Backend
    return create_backend(request.param, device="cpu" if request.param == "torch" else None)


def make_backend(name: str, dtype: str):  # noqa: ANN201 - a Backend
    return create_backend(name, device="cpu" if name == "torch" else None, dtype=dtype)


def rel_err(result: np.ndarray, reference: np.ndarray) -> float:
    """``max|result - reference| / max|reference|`` (max-norm relative error)."""
    return float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))


# -- tridiagonal ----------------------------------------------------------------------------
def tridiagonal_system(batch: tuple[int, ...], n: int, seed: int = 0):  # noqa: ANN201
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-1.0, 1.0, (*batch, n))
    upper = rng.uniform(-1.0, 1.0, (*batch, n))
    diag = 2.5 + rng.uniform(0.0, 1.0, (*batch, n))  # strictly diagonally dominant
    rhs = rng.normal(size=(*batch, n))
    return lower, diag, upper, rhs


def dense_tridiagonal_solve(lower, diag, upper, rhs) -> np.ndarray:  # noqa: ANN001
    n = diag.shape[-1]
    flat = [a.reshape(-1, n) for a in (lower, diag, upper, rhs)]
    out = []
    for lo, d, up, b in zip(*flat, strict=True):
        matrix = np.diag(d) + np.diag(lo[1:], -1) + np.diag(up[:-1], 1)
        out.append(np.linalg.solve(matrix, b))
    return np.array(out).reshape(rhs.shape)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
@pytest.mark.parametrize("name", BACKENDS)
def test_tridiagonal_solves_match_dense(name: str, batch: tuple[int, ...], dtype: str) -> None:
    np_dtype, tol = DTYPES[dtype]
    backend = make_backend(name, dtype)
    system = tridiagonal_system(batch, 16)
    reference = dense_tridiagonal_solve(*system)
    args = [backend.asarray(a.astype(np_dtype)) for a in system]
    for solve in (
        backend.solve_tridiagonal,
        lambda *a: tridiagonal.parallel_cyclic_reduction(backend.xp, *a),
    ):
        x = backend.to_numpy(solve(*args))
        assert x.shape == reference.shape
        assert x.dtype == np_dtype
        assert rel_err(x, reference) <= tol


# -- sparse ---------------------------------------------------------------------------------
def sparse_system(nx: int = 7, ny: int = 6, seed: int = 1):  # noqa: ANN201
    """A non-symmetric, diagonally dominant 5-point operator with duplicated COO entries."""
    rng = np.random.default_rng(seed)
    n = nx * ny
    rows, cols, vals = [], [], []
    for i in range(nx):
        for j in range(ny):
            k = i * ny + j
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= i + di < nx and 0 <= j + dj < ny:
                    rows.append(k)
                    cols.append((i + di) * ny + (j + dj))
                    vals.append(-rng.uniform(0.2, 1.0))
            rows += [k, k]  # the diagonal in two pieces: duplicates are summed
            cols += [k, k]
            vals += [3.0, 2.0 + rng.uniform()]
    pattern = SparsePattern(rows=np.array(rows), cols=np.array(cols), n=n)
    dense = np.zeros((n, n))
    np.add.at(dense, (pattern.rows, pattern.cols), vals)
    return pattern, np.array(vals), rng.normal(size=n), dense


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", BACKENDS)
def test_sparse_solves_match_dense(name: str, dtype: str) -> None:
    np_dtype, tol = DTYPES[dtype]
    backend = make_backend(name, dtype)
    pattern, values, rhs, dense = sparse_system()
    reference = np.linalg.solve(dense, rhs)
    vals, b = backend.asarray(values.astype(np_dtype)), backend.asarray(rhs.astype(np_dtype))
    x = backend.to_numpy(backend.solve_sparse(pattern, vals, b))
    assert rel_err(x, reference) <= tol
    rtol = 1e-13 if dtype == "float64" else 1e-6
    y = backend.to_numpy(sparse.bicgstab_jacobi(backend.xp, pattern, vals, b, rtol=rtol))
    assert rel_err(y, reference) <= tol


# -- KDE: exact against plain formulas --------------------------------------------------------
def images_1d(p: np.ndarray, bounds: tuple[float, float], sides: tuple[str, str], reflect: bool):
    """Image positions and signs of particles ``p`` under one axis' boundary (enough of them)."""
    lo, hi = bounds
    length = hi - lo
    if sides == ("periodic", "periodic"):
        return [p + k * length for k in range(-20, 21)]
    lo_wall, hi_wall = reflect and sides[0] == "no_flux", reflect and sides[1] == "no_flux"
    if lo_wall and hi_wall:
        return [p + 2 * k * length for k in range(-20, 21)] + [
            2 * lo - p + 2 * k * length for k in range(-20, 21)
        ]
    out = [p]
    if lo_wall:
        out.append(2 * lo - p)
    if hi_wall:
        out.append(2 * hi - p)
    return out


def numpy_kde(points, weights, grid: Grid, sigma, reflect: bool) -> np.ndarray:  # noqa: ANN001
    """Direct numpy sum of Gaussians over every image, separable per axis."""
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    factors = []
    for k, (x, s) in enumerate(zip(grid.coordinates(), sigma, strict=True)):
        g = sum(
            np.exp(-0.5 * ((x[None, :] - img[:, None]) / s) ** 2)
            for img in images_1d(points[:, k], grid.bounds[k], grid.boundary[k], reflect)
        )
        factors.append(g / (math.sqrt(2 * math.pi) * s))
    if grid.ndim == 1:
        return weights @ factors[0]
    return np.einsum("p,pi,pj->ij", weights, *factors)


GRIDS = [
    Grid([(0.0, 1.0)], N1, boundary="no_flux"),
    Grid([(-2.0, 3.0)], N1, boundary="periodic"),
    Grid([(0.0, 2.0)], N1, boundary=[("no_flux", "exit")]),
    Grid([(0.0, 1.0), (-1.0, 1.0)], N2, boundary=["no_flux", "periodic"]),
    Grid([(0.0, 1.0), (0.0, 2.0)], N2, boundary=[("exit", "no_flux"), "no_flux"]),
]


@pytest.mark.parametrize("reflect", [True, False])
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.ndim}D-{g.boundary}")
def test_exact_kde_matches_numpy_image_sum(backend64, grid: Grid, reflect: bool) -> None:
    rng = np.random.default_rng(2)
    lo, hi = np.array(grid.bounds).T
    # particles inside and some outside the box (they are folded or leave, as the sides say)
    points = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), (N, grid.ndim))
    weights = rng.uniform(0.0, 1.0, N)
    for sigma in [tuple(0.05 * (hi - lo)), tuple(0.7 * (hi - lo))]:  # narrow, and wider than a period
        reference = numpy_kde(points, weights, grid, sigma, reflect)
        pts = points[:, 0] if grid.ndim == 1 else points
        rho = backend64.kde(pts, weights, grid, bandwidth=sigma, method="exact", reflect=reflect)
        assert rho.shape == grid.shape
        assert rel_err(backend64.to_numpy(rho), reference) <= 1e-10


@pytest.mark.parametrize("rule", ["scott", "silverman", 0.3])
def test_exact_kde_matches_scipy_gaussian_kde_1d(backend64, rule: object) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=N)
    w = rng.uniform(0.5, 1.5, N)
    grid = Grid([(-7.0, 7.0)], N1, boundary="exit")  # nothing reflected
    bw_method = rule if isinstance(rule, str) else rule / np.sqrt(np.cov(x, aweights=w))
    reference = gaussian_kde(x, bw_method=bw_method, weights=w)(grid.coordinates()[0])
    rho = backend64.kde(x, w / w.sum(), grid, bandwidth=rule, method="exact", reflect=False)
    assert rel_err(backend64.to_numpy(rho), reference) <= 1e-10


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_exact_kde_matches_scipy_gaussian_kde_2d(backend64, rule: str) -> None:
    # scipy's kernel covariance is factor^2 * cov(sample); whiten the sample so that cov = I,
    # where scipy's full covariance and our per-axis bandwidth coincide
    rng = np.random.default_rng(4)
    x = rng.normal(size=(N, 2)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    w = rng.uniform(0.5, 1.5, N)
    mean = np.average(x, axis=0, weights=w)
    chol = np.linalg.cholesky(np.cov(x.T, aweights=w))
    z = np.linalg.solve(chol, (x - mean).T).T
    grid = Grid([(-5.0, 5.0), (-4.0, 4.0)], N2, boundary="exit")
    nodes = np.stack([m.ravel() for m in grid.mesh()])
    reference = gaussian_kde(z.T, bw_method=rule, weights=w)(nodes).reshape(grid.shape)
    rho = backend64.kde(z, w, grid, bandwidth=rule, method="exact", reflect=False) / w.sum()
    assert rel_err(backend64.to_numpy(rho), reference) <= 1e-10


# -- KDE: binned against exact; mass ----------------------------------------------------------
@pytest.fixture(scope="module")
def normal_sample_1d():  # noqa: ANN201
    """N = 1e5 standard normal particles on 1024 nodes of [-6, 6]: the documented case."""
    x = np.random.default_rng(5).normal(size=100_000)
    grid = Grid([(-6.0, 6.0)], 1024, boundary="no_flux")
    # any backend's exact sum will do (they agree to round-off, tested above): torch is fastest
    exact = create_backend("torch", device="cpu").kde(x, None, grid, method="exact").numpy()
    return x, grid, exact


def test_binned_kde_matches_exact_within_documented_tolerance(backend64, normal_sample_1d) -> None:
    x, grid, exact = normal_sample_1d
    binned = backend64.to_numpy(backend64.kde(x, None, grid, method="binned"))
    assert rel_err(binned, exact) <= 1e-3  # the kde module's stated tolerance (measured ~4e-5)


def test_binned_kde_matches_exact_2d(backend64) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20_000, 2))
    w = rng.uniform(0.0, 2.0, 20_000)
    # Scott's sigma ~ 0.2 spans >= 3 cells on both axes
    grid = Grid([(-5.0, 5.0), (-4.0, 4.0)], (160, 128), boundary=["no_flux", "periodic"])
    exact = create_backend("numpy").kde(x, w, grid, method="exact")
    binned = backend64.to_numpy(backend64.kde(x, w, grid, method="binned"))
    # 1.4e-3 measured: 20k particles give a rougher density than the documented 1e5 (8e-4)
    assert rel_err(binned, exact) <= 2e-3


@pytest.mark.parametrize("method", ["exact", "binned"])
@pytest.mark.parametrize("grid", GRIDS[:2] + GRIDS[3:4], ids=lambda g: f"{g.ndim}D-{g.boundary}")
def test_reflected_kde_preserves_mass(backend64, grid: Grid, method: str) -> None:
    rng = np.random.default_rng(7)
    lo, hi = np.array(grid.bounds).T
    # crowded against the walls, some particles even past them
    points = lo + (hi - lo) * rng.beta(0.3, 0.3, (N, grid.ndim)) * 1.1 - 0.05 * (hi - lo)
    weights = rng.uniform(0.0, 1.0, N)
    pts = points[:, 0] if grid.ndim == 1 else points
    h = np.array(grid.spacing)
    # from 1.5 cells (the nodes' quadrature of a Gaussian then errs by 2 exp(-2 pi^2 1.5^2)
    # ~ 1e-19) to twice the box: mass is preserved to round-off
    for sigma in [1.5 * h, 0.3 * (hi - lo), 2.0 * (hi - lo)]:
        rho = backend64.kde(pts, weights, grid, bandwidth=tuple(sigma), method=method, reflect=True)
        mass = float(backend64.to_numpy(rho).sum() * grid.cell_volume)
        assert mass == pytest.approx(weights.sum(), rel=1e-10)
        assert float(backend64.to_numpy(rho).min()) >= 0.0


def test_mass_leaves_without_reflection(backend64) -> None:
    grid = Grid([(0.0, 1.0)], N1, boundary="no_flux")
    x = np.full(N, 0.0)  # all on the wall: half the kernel lies outside
    for method in ("exact", "binned"):
        rho = backend64.kde(x, None, grid, bandwidth=0.1, method=method, reflect=False)
        assert float(backend64.to_numpy(rho).sum()) * grid.cell_volume == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("method", ["exact", "binned"])
@pytest.mark.parametrize("name", BACKENDS)
def test_float32_kde(name: str, method: str) -> None:
    backend = make_backend(name, "float32")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(N, 2))
    grid = Grid([(-5.0, 5.0), (-4.0, 4.0)], N2, boundary="no_flux")
    reference = create_backend("numpy").kde(x, None, grid, method=method)
    rho = backend.kde(x.astype(np.float32), None, grid, method=method)
    out = backend.to_numpy(rho)
    assert out.dtype == np.float32
    assert rel_err(out, reference) <= 1e-4
    assert float(out.sum()) * grid.cell_volume == pytest.approx(1.0, rel=1e-4)


def test_uniform_weights_equal_explicit_weights(backend64) -> None:
    x = np.random.default_rng(9).uniform(0.0, 1.0, N)
    grid = Grid([(0.0, 1.0)], N1)
    for method in ("exact", "binned"):
        a = backend64.to_numpy(backend64.kde(x, None, grid, bandwidth=0.05, method=method))
        b = backend64.to_numpy(backend64.kde(x, np.full(N, 1 / N), grid, bandwidth=0.05, method=method))
        assert rel_err(a, b) <= 1e-12


# -- interpolation ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", BACKENDS)
def test_interp_matches_scipy(name: str, dtype: str) -> None:
    np_dtype, _ = DTYPES[dtype]
    tol = 1e-12 if dtype == "float64" else 1e-5
    backend = make_backend(name, dtype)
    rng = np.random.default_rng(10)
    grid = Grid([(0.0, 2.0), (-1.0, 1.0)], N2, boundary=["periodic", "exit"])
    values = rng.normal(size=grid.shape)
    points = rng.uniform([-3.0, -1.5], [5.0, 1.5], (N, 2))
    xs, ys = grid.coordinates()
    # reference: periodic axis extended by one node each side, other axis clamped
    xe = np.concatenate([xs[-1:] - 2.0, xs, xs[:1] + 2.0])
    ve = np.concatenate([values[-1:], values, values[:1]])
    wrapped = np.column_stack([np.mod(points[:, 0], 2.0), np.clip(points[:, 1], ys[0], ys[-1])])
    reference = RegularGridInterpolator((xe, ys), ve)(wrapped)
    out = backend.to_numpy(backend.interp(grid, values.astype(np_dtype), points.astype(np_dtype)))
    assert out.shape == (N,) and out.dtype == np_dtype
    assert rel_err(out, reference) <= tol
    # 1D, clamped on both sides; nodes are reproduced exactly
    g1 = Grid([(0.0, 1.0)], N1, boundary="no_flux")
    v1 = rng.normal(size=N1)
    x1 = g1.coordinates()[0]
    probe = np.concatenate([x1, [-1.0, 2.0], rng.uniform(0.0, 1.0, N - N1 - 2)])
    ref1 = np.interp(probe, x1, v1)  # numpy clamps to the end values too
    out1 = backend.to_numpy(backend.interp(g1, v1.astype(np_dtype), probe.astype(np_dtype)))
    assert rel_err(out1, ref1) <= tol


def test_interp_of_kde_is_consistent_across_backends() -> None:
    """The pipeline particle -> density -> value at particles agrees on every backend."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0.0, 1.0, (N, 2))
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], N2)
    results = []
    for name in BACKENDS:
        b = create_backend(name, device="cpu" if name == "torch" else None)
        rho = b.kde(x, None, grid, bandwidth=0.05)
        results.append(b.to_numpy(b.interp(grid, rho, x)))
    for other in results[1:]:
        assert rel_err(other, results[0]) <= 1e-12


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"points": np.zeros((5, 2))}, ValueError, "shape"),
        ({"points": np.array([0.1, np.nan, 0.3])}, ValueError, "finite"),
        ({"weights": np.array([1.0, -1.0, 1.0])}, ValueError, ">= 0"),
        ({"weights": np.array([1.0, np.inf, 1.0])}, ValueError, "finite"),
        ({"weights": np.ones(4)}, ValueError, "shape"),
        ({"bandwidth": 0.0}, ValueError, "positive"),
        ({"bandwidth": -1.0}, ValueError, "positive"),
        ({"bandwidth": "normal"}, ValueError, "scott"),
        ({"bandwidth": (0.1, 0.1)}, ValueError, "1 positive"),
        ({"bandwidth": None}, TypeError, "bandwidth"),
        ({"method": "fft"}, ValueError, "exact, binned"),
        ({"reflect": "yes"}, TypeError, "reflect"),
        ({"points": np.array(["a", "b", "c"])}, TypeError, "real numbers"),
        ({"points": np.array([0.5, 0.5, 0.5])}, ValueError, "bandwidth"),  # zero spread: rule fails
        ({"grid": "grid"}, TypeError, "Grid"),
    ],
)
def test_kde_rejects_bad_input(backend64, kwargs: dict, error: type, match: str) -> None:
    args = {
        "points": np.array([0.1, 0.5, 0.3]),
        "weights": None,
        "grid": Grid([(0.0, 1.0)], 16),
        "bandwidth": "scott",
        "method": "binned",
        "reflect": True,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        backend64.kde(**args)


def test_interp_rejects_bad_input(backend64) -> None:
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], (8, 8))
    with pytest.raises(ValueError, match="grid's shape"):
        backend64.interp(grid, np.zeros((8, 7)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        backend64.interp(grid, np.zeros((8, 8)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        backend64.interp(grid, np.zeros((8, 8)), np.array([[0.5, np.nan]]))


@pytest.mark.parametrize(
    "grid",
    [
        Grid([(-1.0, 2.0)], 40, boundary="no_flux"),
        Grid([(0.0, 1.0)], 32, boundary="periodic"),
        Grid([(0.0, 1.0)], 30, boundary=[("no_flux", "exit")]),
        Grid([(0.0, 1.0)], 30, boundary="exit"),
        Grid([(-1.0, 1.0), (0.0, 2.0)], (20, 24), boundary=["no_flux", "periodic"]),
    ],
    ids=lambda g: f"{g.ndim}D-{g.boundary}",
)
def test_box_lattice_fast_path_equals_validated_kde_and_interp(backend64, grid: Grid) -> None:
    """The trusted binned path (points inside the box) is the validated ``kde``/``interp`` to round-off."""
    from mfg_rl.backends.interp import interp
    from mfg_rl.backends.kde import axis_kinds, kde
    from mfg_rl.backends.kde_binned import BoxLattice

    xp, rng = backend64.xp, np.random.default_rng(11)
    lo, hi = np.array(grid.bounds).T
    points = lo + (hi - lo) * rng.beta(0.4, 0.4, (N, grid.ndim))
    points[:3] = lo  # on the faces: the lattice's ends
    points[3:6] = hi
    weights = rng.uniform(0.0, 1.0, N)
    sigma = tuple(2.0 * h for h in grid.spacing)
    pts = points[:, 0] if grid.ndim == 1 else points
    reference = backend64.to_numpy(kde(xp, backend64.asarray(pts), backend64.asarray(weights), grid,
                                       bandwidth=sigma, method="binned", reflect=True))
    lattice = BoxLattice(grid, axis_kinds(grid, reflect=True))
    cols = [lattice.to_units(xp, backend64.asarray(points[:, k]), k) for k in range(grid.ndim)]
    located = lattice.locate(xp, cols)
    half = N // 2  # sums of chunks are the sums of all
    first = lattice.bin(xp, [(j[:half], f[:half]) for j, f in located], backend64.asarray(weights[:half]),
                        backend64.dtype)
    second = lattice.bin(xp, [(j[half:], f[half:]) for j, f in located], backend64.asarray(weights[half:]),
                         backend64.dtype)
    sums = [a + b for a, b in zip(first, second, strict=True)]
    from array_api_compat import device

    fast = backend64.to_numpy(lattice.density(xp, sums, sigma, backend64.dtype, device(sums[0])))
    assert rel_err(fast, reference) <= 1e-12
    # weighted moments from the bins: exact up to round-off
    w = weights / weights.sum()
    squares = [float(xp.sum(backend64.asarray(weights) * f * f)) for _, f in located]
    for k, (mean, var) in enumerate(lattice.moments(xp, sums, squares)):
        np.testing.assert_allclose(mean, w @ points[:, k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(var, w @ (points[:, k] - w @ points[:, k]) ** 2, rtol=1e-10)
    # the lattice table interpolates as interp does
    values = rng.normal(size=(2, *grid.shape))
    table = lattice.table(xp, backend64.asarray(values))
    fast_interp = backend64.to_numpy(lattice.interpolate(xp, [t[1] for t in table], located))
    np.testing.assert_allclose(fast_interp, backend64.to_numpy(interp(xp, grid, backend64.asarray(values[1]),
                                                                      backend64.asarray(pts))),
                               rtol=0, atol=1e-12)
    back = [backend64.to_numpy(lattice.from_units(xp, c, k)) for k, c in enumerate(cols)]
    np.testing.assert_allclose(np.stack(back, axis=1), points, rtol=0, atol=1e-13)
