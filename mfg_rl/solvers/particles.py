"""Fokker-Planck by particles: Euler-Maruyama paths of the optimal SDE, KDE density on the grid.

    X^{n+1}_p = X^n_p + dt alpha^n(X^n_p) + sqrt(2 nu dt) Z^n_p,      Z^n_p ~ N(0, I)
    m^{n+1}   = KDE of the particles still inside (weight 1/N each),    m^0 = m0

with ``alpha^n = -g(m^{n+1}) grad_h u^n`` the discrete optimal control of the scheme (upwind
gradient, ``Equilibrium.control``), interpolated linearly from the grid; step ``n -> n+1``
uses ``u^n`` as the adjoint FP does. Particles start as samples of ``m0`` (piecewise
constant in cells). Boundaries: reflection at no-flux walls, wrap on periodic axes,
removal at exits with the removed weight summed. The KDE density is rescaled to carry
exactly the mass inside (kernel tails through an exit would be lost otherwise), so
``mass inside + mass exited = 1`` to round-off.

Memory is ``O(N + Nt M)``: positions are overwritten every step unless ``store_paths``.
Written once against the backend: ``backend.xp``, the binned KDE's trusted fast path
(``kde_binned.BoxLattice``: the particles are folded into the box, so no validation) and
``backend.normal``/``uniform`` (noise drawn on the backend's device). Torch tensors on a
CPU step as zero-copy numpy views (``Backend.host_twin``): a step is some 500 operations
on cache-sized chunks, where torch's per-operation dispatch cost 15-25% at N = 1e6; the
numbers are the same (the host generator is numpy's for both).

The step is one pass over the particles, in chunks of ``STEP_CHUNK_HOST`` on a CPU (all
of them on an accelerator or with jax) so that its temporaries stay in cache: positions
are kept in the KDE lattice's units, where one split ``s = bin + f`` serves both the
drift's linear interpolation and the linear binning; the bandwidth rule's moments come
from the bin sums (plus ``sum f^2``), not from extra passes. Host draws of step ``n + 1``
are made on a helper thread during step ``n`` (same numbers, same order). With
``dtype="float32"`` positions, drift and noise are float32 (the noise drawn in the
backend's dtype, so the stream is the same); densities are accumulated in the backend's.

Host reads: on the host they are free and made where convenient. Off it (an accelerator,
jax) a step reads nothing: particle counts, bandwidth sums and the finite checks stay on
the device and are read once, at the end of the sweep (``_check_sweep``); a bandwidth
rule's binned moments are read once per step, as the kernel's reach is a host number
(``tests/test_host_syncs.py`` counts them). Walls and exits: ``particle_walls``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device
from array_api_compat import is_jax_array, is_torch_array

from mfg_rl.backends.arrays import rows_of
from mfg_rl.backends.bandwidth import rule_factor
from mfg_rl.backends.base import check_seed
from mfg_rl.backends.kde import METHODS, RULES, axis_kinds, rule_bandwidth
from mfg_rl.backends.kde_binned import BoxLattice
from mfg_rl.checks import check_choice, check_flag, check_int, check_optional, check_real, shown
from mfg_rl.errors import SolverError
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.particle_noise import PrefetchedNoise
from mfg_rl.solvers.particle_walls import fold, fold_on_device

MIN_BANDWIDTH_CELLS = 0.5  # a rule's bandwidth is floored at half a cell (narrower kernels alias)
STEP_CHUNK_HOST = 2**15  # particles per step chunk on a CPU: in cache; torch runs such ops on one thread
DTYPES = ("float32", "float64")
MAX_PARTICLES = 2**30
"""Most particles of a solve: their float64 positions alone then take 8 GiB per axis."""


@dataclass
class ParticleRun:
    """One particle FP solve.

    Attributes:
        m: density, backend array ``(Nt+1, *space)``; ``m[0] = m0``.
        inside, exited: mass inside / mass that left by ``t_n``, numpy ``(Nt+1,)``.
        bandwidth: KDE ``sigma_d`` per level ``1..Nt``, list of per-axis tuples.
        positions: final positions, ``(N,)`` in 1D else ``(N, d)``.
        alive: ``(N,)`` 1.0 inside / 0.0 exited, or None on a box without exits.
        paths: positions at every level ``(Nt+1, N[, d])`` when ``store_paths``, else None.
    """

    m: Any
    inside: np.ndarray
    exited: np.ndarray
    bandwidth: list[tuple[float, ...]]
    positions: Any
    alive: Any
    paths: Any = None


class ParticleFP:
    """FP trajectory solver by ``n_particles`` SDE paths (module doc); an FP-only strategy.

    Args:
        n_particles: ``1 <= N <= MAX_PARTICLES`` (>= 2 with a bandwidth rule).
        seed: int >= 0; same seed, same particles on the same backend.
        bandwidth: KDE ``sigma`` (float, grid units) or ``"scott"``/``"silverman"``.
        kde_method: ``"binned"`` (FFT, default) or ``"exact"``.
        store_paths: keep positions at every level in ``ParticleRun.paths``.
        dtype: particle positions' dtype, ``"float32"``/``"float64"``, or None for the
            backend's. Densities are accumulated in the backend's dtype and the noise is
            drawn in it (the same stream): float32 particles differ from float64 ones by
            round-off only (measured 1e-7..2e-6 in density L1, N = 2e4..5e4, 10..40
            steps) and move half the bytes: about 1.2x faster at N = 1e7 on a CPU, the
            same at 1e6, where the draws (float64 PCG64) bound a step.

    Example:
        >>> from mfg_rl import problems
        >>> from mfg_rl.backends import create_backend
        >>> from mfg_rl.solvers import DiscreteMFG, Sequential
        >>> p = problems.make("lq-1d", Nx=51, Nt=10)
        >>> disc = DiscreteMFG(p, create_backend("numpy"))
        >>> m = disc.xp.stack([disc.m0] * 11)
        >>> u = Sequential().hjb(disc, m).u
        >>> run = ParticleFP(10_000, seed=1).simulate(disc, u, m)
        >>> run.m.shape, round(float(run.inside[-1] + run.exited[-1]), 12)
        ((11, 51), 1.0)
    """

    name = "particles"

    def __init__(self, n_particles: int = 100_000, seed: int = 0, *, bandwidth: float | str = "scott",
                 kde_method: str = "binned", store_paths: bool = False, dtype: str | None = None) -> None:
        n_particles = check_int("n_particles", n_particles, 1, MAX_PARTICLES)
        if isinstance(bandwidth, str):
            check_choice("bandwidth", bandwidth, RULES)
            if n_particles < 2:
                raise ValueError(f"bandwidth rule {bandwidth!r} needs n_particles >= 2, got {n_particles}")
        else:
            try:
                bandwidth = check_real("bandwidth", bandwidth, 0.0, open_low=True)
            except TypeError:
                raise TypeError(f"bandwidth must be a float > 0 or one of {', '.join(map(repr, RULES))}, "
                                f"got {shown(bandwidth)}") from None
        check_choice("kde_method", kde_method, METHODS)
        check_flag("store_paths", store_paths)
        check_optional(check_choice, "dtype", dtype, DTYPES)
        self.n_particles = int(n_particles)
        self.seed = check_seed(seed)
        self.bandwidth = bandwidth
        self.kde_method = kde_method
        self.store_paths = store_paths
        self.dtype = dtype
        self._last: tuple[Any, Any, Any, ParticleRun] | None = None

    def check_tol(self, tol: float) -> None:
        """ValueError when ``tol`` is below one particle's mass ``1/N``, which no seeded particle
        system resolves (a sensible ``tol`` is about ``1/sqrt(N)``, the Monte Carlo error)."""
        n = self.n_particles
        if tol < 1.0 / n:
            raise ValueError(f"tol={tol:g} is out of reach of fp='particles' with n_particles={n}: below one "
                             f"particle's mass 1/n_particles = {1.0 / n:g}; use tol >= {1.0 / n:g}, "
                             "typically "
                             f"~1/sqrt(n_particles) = {n ** -0.5:.1e}, or more particles")

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None) -> Any:
        """Density ``(Nt+1, *space)`` of the particles driven by ``u`` (``m``: congestion).
        ``forcing`` and ``steps`` (the FDM options of the coupling loop) do not apply."""
        return self.simulate(disc, u, m).m

    def simulate(self, disc: DiscreteMFG, u: Any, m: Any) -> ParticleRun:
        """Run the particles for ``u``, ``m`` of shape ``(Nt+1, *space)`` (module doc).

        The last ``(disc, u, m) -> run`` is kept: a second call with the same array objects
        (the coupling loop's residual, then its FP step) returns it without recomputing.
        """
        last = self._last
        if last is not None and last[0] is disc and last[1] is u and last[2] is m:
            return last[3]
        run = self._simulate(disc, u, m)
        self._last = (disc, u, m, run)
        return run

    # -- the stepper -------------------------------------------------------------------
    def _simulate(self, disc: DiscreteMFG, u: Any, m: Any) -> ParticleRun:
        # the step is hundreds of small operations: torch CPU tensors step as numpy views
        outer = disc.backend
        backend = outer.host_twin()
        xp, grid = backend.xp, disc.problem.grid
        n, dt, dim = self.n_particles, disc.dt, grid.ndim
        dtype = backend.dtype if self.dtype is None else getattr(xp, self.dtype)
        generator = backend.generator(self.seed)
        m0 = backend.from_host(outer.to_numpy(disc.m0)) if backend is not outer else disc.m0
        cols = self._sample_m0(backend, m0, grid, generator)
        alive = xp.ones(n, dtype=dtype, device=array_device(cols[0])) if grid.has_exit() else None
        sigma = self._sigma(xp, cols, alive, float(n), grid, None)
        # particles move in the lattice units of the binned KDE (BoxLattice): s = (x - lo)/h + const
        lattice = BoxLattice(grid, axis_kinds(grid, reflect=True))
        cols = [xp.astype(lattice.to_units(xp, c, k), dtype) for k, c in enumerate(cols)]
        # dt alpha^n / h on the lattice (alpha the scheme's control), one table (BoxLattice.table) per axis
        controls = disc.scheme.control(u[:-1], m[1:])
        drifts = [(dt / h) * a for a, h in zip(controls, grid.spacing, strict=True)]
        if backend is not outer:
            drifts = [backend.from_host(outer.to_numpy(a)) for a in drifts]
        tables = [[xp.astype(t, dtype) for t in lattice.table(xp, a)] for a in drifts]
        scales = [math.sqrt(2.0 * disc.problem.nu * dt) / h for h in grid.spacing]
        chunk = _step_chunk(cols[0])
        bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
        chunks = [([rows_of(xp, c, a, b, n) for c in cols], rows_of(xp, alive, a, b, n)) for a, b in bounds]
        located = [lattice.locate(xp, part) for part, _ in chunks]
        levels, counts, paths, sigmas = [m0], [float(n)], [], []
        # off numpy the host reads nothing per step but the rule's moments (their sums fix the
        # kernel's reach); counts, bandwidth sums and the finite checks are read once, at the end
        deferred = backend.name != "numpy"
        broken = False  # non-finite positions seen (a 0-d array when deferred)
        noisy_steps = disc.Nt if scales[0] > 0.0 else 0
        with PrefetchedNoise(backend, generator, bounds, scales, dtype, noisy_steps) as noise:
            for step in range(disc.Nt):
                if self.store_paths:
                    paths.append(_join(xp, lattice, chunks, n)[0])
                draws, rows = noise.next(), [[t[step] for t in table] for table in tables]
                parts, count, squares = [], 0.0, [0.0] * dim
                for c, (a, b) in enumerate(bounds):
                    part, alive_c = chunks[c]
                    moved = []
                    for k in range(dim):
                        move = lattice.interpolate(xp, rows[k], located[c])
                        if draws is not None:
                            move = move + draws[k][c]
                        moved.append(part[k] + move)
                    if deferred:
                        alive_c, bad = fold_on_device(xp, lattice.box, grid.boundary, moved, alive_c)
                        broken = broken | bad
                    else:
                        alive_c = fold(xp, lattice.box, grid.boundary, moved, alive_c)
                    located[c] = lattice.locate(xp, moved)
                    parts.append(lattice.bin(xp, located[c], alive_c, backend.dtype))
                    count += float(b - a) if alive_c is None else _total(xp, alive_c, backend.dtype, deferred)
                    if isinstance(self.bandwidth, str):
                        for k, (_, frac) in enumerate(located[c]):
                            square = frac * frac if alive_c is None else alive_c * frac * frac
                            squares[k] += _total(xp, square, backend.dtype, deferred)  # exact: 0/1 weights
                    chunks[c] = (moved, alive_c)
                sums = parts[0] if len(parts) == 1 else \
                    [xp.sum(xp.stack([p[j] for p in parts]), axis=0) for j in range(len(parts[0]))]
                moments = None
                if isinstance(self.bandwidth, str) or self.kde_method != "binned":
                    count, moments = self._read_step(backend, lattice, sums, squares, count)
                sigma = self._rule_sigma(xp, lattice, moments, count, chunks, n, grid, sigma)
                sigmas.append(sigma)
                if self.kde_method == "binned":
                    levels.append(self._density(backend, m0, disc.cell_volume, lattice, sums, count, sigma))
                else:
                    levels.append(self._exact_density(backend, m0, disc.problem.grid, disc.cell_volume,
                                                      _join(xp, lattice, chunks, n), count, sigma))
                counts.append(count)
        points, alive = _join(xp, lattice, chunks, n)
        if self.store_paths:
            paths.append(points)
        density = xp.stack(levels)
        counts_np = _check_sweep(backend, density, counts, broken)
        paths = xp.stack(paths) if self.store_paths else None
        if backend is not outer:
            density, points, alive, paths = (None if a is None else outer.from_host(a)
                                             for a in (density, points, alive, paths))
        return ParticleRun(density, counts_np / n, (n - counts_np) / n, sigmas, points, alive, paths)

    def _sample_m0(self, backend: Any, m0: Any, grid: Any, generator: Any) -> list[Any]:
        """N samples of ``m0`` read as constant in each cell: one ``(N,)`` array per axis."""
        xp = backend.xp
        cdf = xp.cumulative_sum(xp.reshape(m0, (-1,)))
        draw = backend.uniform(generator, (self.n_particles,)) * cdf[-1]
        flat = xp.clip(xp.searchsorted(cdf, draw, side="right"), max=grid.size - 1)
        cols = [None] * grid.ndim
        for k in range(grid.ndim - 1, -1, -1):
            size, (lo, _), h = grid.shape[k], grid.bounds[k], grid.spacing[k]
            index = flat % size
            flat = flat // size
            offset = backend.uniform(generator, (self.n_particles,))
            cols[k] = lo + (xp.astype(index, draw.dtype) + offset) * h
        return cols

    def _sigma(self, xp: Any, cols: list[Any], alive: Any, count: float, grid: Any,
               previous: tuple[float, ...] | None) -> tuple[float, ...]:
        """KDE bandwidth per axis: the given float, or the rule (kept when < 2 remain)."""
        if not isinstance(self.bandwidth, str):
            return (float(self.bandwidth),) * grid.ndim
        if previous is not None and count < 2.0:
            return previous
        sigma = rule_bandwidth(xp, cols, alive, self.bandwidth)
        return tuple(max(s, MIN_BANDWIDTH_CELLS * h) for s, h in zip(sigma, grid.spacing, strict=True))

    def _read_step(self, backend: Any, lattice: BoxLattice, sums: list[Any], squares: list[Any],
                   count: Any) -> tuple[float, list[float] | None]:
        """The step's count and (rule bandwidths) binned moments on the host, in one transfer
        when they are device arrays: ``(count, moment_sums values or None)``."""
        rule = isinstance(self.bandwidth, str)
        if not any(map(backend.is_native, [count, *squares])):  # host floats: nothing to move
            return count, [float(v) for v in lattice.moment_sums(backend.xp, sums, squares)] if rule else None
        xp = backend.xp
        values = [xp.astype(xp.asarray(count, device=array_device(sums[0])), sums[0].dtype)]
        if rule:
            values += lattice.moment_sums(xp, sums, squares)
        host = [float(v) for v in backend.to_numpy(xp.stack(values))]
        return host[0], host[1:] if rule else None

    def _rule_sigma(self, xp: Any, lattice: BoxLattice, moments: list[float] | None, count: float,
                    chunks: list, n: int, grid: Any, previous: tuple[float, ...]) -> tuple[float, ...]:
        """``_sigma`` from the binned moments (``BoxLattice.moment_sums`` read by ``_read_step``),
        no pass over the particles.

        The rule is scale-free, so the 0/1 ``alive`` weights give ``n_eff = count``; when the
        moments would cancel, the two-pass rule runs on all particles instead.
        """
        if not isinstance(self.bandwidth, str) or count < 2.0:
            return self._sigma(xp, [], None, count, grid, previous)
        moments = lattice.moments_of(moments)
        if any(math.isnan(var) for _, var in moments):
            points, alive = _join(xp, lattice, chunks, n)
            return self._sigma(xp, _columns(xp, points, grid.ndim), alive, count, grid, None)
        unbias = 1.0 - 1.0 / count
        factor = rule_factor(self.bandwidth, grid.ndim, count, unbias)
        sigma = [factor * math.sqrt(var / unbias) for _, var in moments]
        return tuple(max(s, MIN_BANDWIDTH_CELLS * h) for s, h in zip(sigma, grid.spacing, strict=True))

    def _density(self, backend: Any, m0: Any, cell_volume: float, lattice: BoxLattice, sums: list[Any],
                 count: Any, sigma: tuple[float, ...]) -> Any:
        """KDE on the grid (reflecting no-flux walls), rescaled to integrate to ``count / N``
        (``count`` a float, or a 0-d array the host does not read)."""
        xp = backend.xp
        if not backend.is_native(count):
            if count == 0.0:
                return 0.0 * m0
            rho = lattice.density(xp, sums, sigma, backend.dtype, array_device(m0))
            return rho * ((count / self.n_particles) / (xp.sum(rho) * cell_volume))
        rho = lattice.density(xp, sums, sigma, backend.dtype, array_device(m0))
        # ``float / tensor`` is ``tensor.reciprocal() * float`` in torch: the host path's very numbers
        scaled = rho * ((count / self.n_particles) * (1.0 / (xp.sum(rho) * cell_volume)))
        return xp.where(count == 0.0, 0.0 * m0, scaled)

    def _exact_density(self, backend: Any, m0: Any, grid: Any, cell_volume: float, joined: tuple[Any, Any],
                       count: float, sigma: tuple[float, ...]) -> Any:
        """``_density`` by the validated ``backend.kde`` (``kde_method="exact"``)."""
        xp, (points, alive) = backend.xp, joined
        if count == 0.0:
            return 0.0 * m0
        weights = None if alive is None else xp.astype(alive, backend.dtype) * (1.0 / self.n_particles)
        rho = backend.kde(xp.astype(points, backend.dtype), weights, grid, bandwidth=sigma, method="exact",
                          reflect=True)
        total = xp.sum(rho) * cell_volume
        return rho * ((count / self.n_particles) / total)


def _step_chunk(x: Any) -> int:
    """Particles per chunk of a step: cache-sized on a CPU, all of them for jax and devices."""
    if is_jax_array(x) or (is_torch_array(x) and x.device.type != "cpu"):
        return max(1, int(x.shape[0]))
    return STEP_CHUNK_HOST


def _join(xp: Any, lattice: BoxLattice, chunks: list, n: int) -> tuple[Any, Any]:
    """Positions (``_points`` layout, grid units) and ``alive`` (or None) of all particles."""
    if len(chunks) == 1:
        cols, alive = chunks[0]
    else:
        cols = [xp.concat([part[k] for part, _ in chunks]) for k in range(len(chunks[0][0]))]
        alive = None if chunks[0][1] is None else xp.concat([a for _, a in chunks])
    return _points(xp, [lattice.from_units(xp, c, k) for k, c in enumerate(cols)]), alive


def _columns(xp: Any, points: Any, dim: int) -> list[Any]:
    return [points] if dim == 1 else [points[:, k] for k in range(dim)]


def _points(xp: Any, cols: list[Any]) -> Any:
    """``(N,)`` in 1D, ``(N, d)`` else: the layout ``backend.kde`` and ``interp`` take."""
    return cols[0] if len(cols) == 1 else xp.stack(cols, axis=1)


def _total(xp: Any, x: Any, dtype: Any, deferred: bool) -> Any:
    """``sum x``: a float read by the host, or (``deferred``) a 0-d array of ``dtype`` on the device."""
    return xp.astype(xp.sum(x), dtype) if deferred else float(xp.sum(x))


def _check_sweep(backend: Any, density: Any, counts: list[Any], broken: Any) -> np.ndarray:
    """The sweep's one look: ``SolverError`` on non-finite positions or densities, else the
    particles inside at each level as a numpy array ``(Nt+1,)``."""
    xp = backend.xp
    if not backend.is_native(broken) and not any(map(backend.is_native, counts)):
        if not bool(xp.all(xp.isfinite(density))):
            raise SolverError("particle FP produced non-finite densities (NaN drift or positions)")
        return np.array(counts)
    dev, dtype = array_device(density), density.dtype
    flags = [xp.astype(xp.asarray(broken, device=dev), dtype),
             xp.astype(~xp.all(xp.isfinite(density)), dtype)]
    values = backend.to_numpy(xp.stack([*flags, *(xp.asarray(c, dtype=dtype, device=dev) for c in counts)]))
    if values[0]:
        raise SolverError("particle FP produced non-finite positions (NaN or infinite drift)")
    if values[1]:
        raise SolverError("particle FP produced non-finite densities (NaN drift or positions)")
    return np.array([float(v) for v in values[2:]])


class ParticleMFG(DiscreteMFG):
    """The discrete MFG whose FP is the particle system of ``particles`` (for ``run_coupling``).

    With a fixed seed the particle FP is a deterministic map ``Phi(u, m)`` (common random
    numbers), so its coupled residual is the fixed-point defect
    ``max_n h^d sum_i |m^n_i - Phi(u, m)^n_i|`` (a mass, like the FDM residual); it says
    how far ``m`` is from the particle equilibrium, whose distance to the PDE equilibrium
    is the Monte Carlo and KDE error, ``O(N^(-2/5))`` in L1 with Scott's rule.
    ``outflow`` counts the particles that left. Extra arguments go to ``DiscreteMFG``.
    """

    def __init__(self, problem: Any, backend: Any, particles: ParticleFP, **kwargs: Any) -> None:
        super().__init__(problem, backend, **kwargs)
        self.particles = particles

    def fp_residual(self, u: Any, m: Any, steps: Any = None) -> float:
        xp = self.xp
        defect = xp.abs(m - self.particles.simulate(self, u, m).m)
        per_level = xp.sum(xp.reshape(defect, (defect.shape[0], -1)), axis=1) * self.cell_volume
        return float(xp.max(per_level))

    def outflow(self, u: Any, m: Any) -> Any:
        return self.backend.asarray(np.diff(self.particles.simulate(self, u, m).exited))

