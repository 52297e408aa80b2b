"""Fokker-Planck by particles: Euler-Maruyama paths of the optimal SDE, KDE density on the grid.

    X^{n+1}_p = X^n_p + dt alpha^n(X^n_p) + sqrt(2 nu dt) Z^n_p,      Z^n_p ~ N(0, I)
    m^{n+1}   = KDE of the particles still inside (weight 1/N each),    m^0 = m0

with ``alpha^n = -w(m^{n+1}) grad_h u^n`` the discrete optimal control of the scheme (upwind
gradient, ``Equilibrium.control``), interpolated linearly from the grid; step ``n -> n+1``
uses ``u^n`` as the adjoint FP does. Particles start as samples of ``m0`` (piecewise
constant in cells). Boundaries: reflection at no-flux walls, wrap on periodic axes,
removal at exits with the removed weight summed. The KDE density is rescaled to carry
exactly the mass inside (kernel tails through an exit would be lost otherwise), so
``mass inside + mass exited = 1`` to round-off.

Memory is ``O(N + Nt M)``: positions are overwritten every step unless ``store_paths``.
Written once against the backend: ``backend.xp``, ``backend.kde``, the interpolation kernel
and ``backend.normal``/``uniform`` (noise drawn on the backend's device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from mfg_rl.backends.base import check_seed
from mfg_rl.backends.interp import interp
from mfg_rl.backends.kde import METHODS, RULES, rule_bandwidth
from mfg_rl.errors import SolverError
from mfg_rl.solvers.discrete import DiscreteMFG

MIN_BANDWIDTH_CELLS = 0.5  # a rule's bandwidth is floored at half a cell (narrower kernels alias)


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
        n_particles: N >= 1 (>= 2 with a bandwidth rule).
        seed: int >= 0; same seed, same particles on the same backend.
        bandwidth: KDE ``sigma`` (float, grid units) or ``"scott"``/``"silverman"``.
        kde_method: ``"binned"`` (FFT, default) or ``"exact"``.
        store_paths: keep positions at every level in ``ParticleRun.paths``.

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
                 kde_method: str = "binned", store_paths: bool = False) -> None:
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
            raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
        allowed = f"a float > 0 or one of {', '.join(RULES)}"
        if isinstance(bandwidth, str):
            if bandwidth not in RULES:
                raise ValueError(f"bandwidth must be {allowed}, got {bandwidth!r}")
            if n_particles < 2:
                raise ValueError(f"bandwidth rule {bandwidth!r} needs n_particles >= 2, got {n_particles}")
        elif isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) \
                or not 0 < bandwidth < math.inf:
            raise ValueError(f"bandwidth must be {allowed}, got {bandwidth!r}")
        if kde_method not in METHODS:
            raise ValueError(f"kde_method must be one of {', '.join(METHODS)}, got {kde_method!r}")
        if not isinstance(store_paths, bool):
            raise ValueError(f"store_paths must be True or False, got {store_paths!r}")
        self.n_particles = int(n_particles)
        self.seed = check_seed(seed)
        self.bandwidth = bandwidth
        self.kde_method = kde_method
        self.store_paths = store_paths
        self._last: tuple[Any, Any, Any, ParticleRun] | None = None

    def fp(self, disc: DiscreteMFG, u: Any, m: Any) -> Any:
        """Density ``(Nt+1, *space)`` of the particles driven by ``u`` (``m``: congestion)."""
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
        backend, xp, grid = disc.backend, disc.xp, disc.problem.grid
        n, dt = self.n_particles, disc.dt
        generator = backend.generator(self.seed)
        cols = self._sample_m0(disc, generator)
        grads = disc.operator.gradient(u[:-1])
        w = disc.weight(m[1:])
        shift = [(-dt) * w * g for g in grads]  # dt alpha^n, one (Nt, *space) array per axis
        scale = math.sqrt(2.0 * disc.problem.nu * dt)
        alive = xp.ones(n, dtype=cols[0].dtype, device=array_device(cols[0])) if grid.has_exit() else None
        sigma = self._sigma(xp, cols, alive, float(n), grid, None)
        levels, counts, paths, sigmas = [disc.m0], [float(n)], [], []
        for step in range(disc.Nt):
            points = _points(xp, cols)
            if self.store_paths:
                paths.append(points)
            for k in range(grid.ndim):
                move = interp(xp, grid, shift[k][step], points, check_finite=False)
                if scale > 0.0:
                    move = move + scale * backend.normal(generator, (n,))
                cols[k] = cols[k] + move
            alive = _boundaries(xp, grid, cols, alive)
            count = float(n) if alive is None else float(xp.sum(alive))  # exact: sum of 0/1
            sigma = self._sigma(xp, cols, alive, count, grid, sigma)
            sigmas.append(sigma)
            levels.append(self._density(disc, cols, alive, count, sigma))
            counts.append(count)
        points = _points(xp, cols)
        if self.store_paths:
            paths.append(points)
        density = xp.stack(levels)
        if not bool(xp.all(xp.isfinite(density))):
            raise SolverError("particle FP produced non-finite densities (NaN drift or positions)")
        counts_np = np.array(counts)
        return ParticleRun(density, counts_np / n, (n - counts_np) / n, sigmas, points, alive,
                           xp.stack(paths) if self.store_paths else None)

    def _sample_m0(self, disc: DiscreteMFG, generator: Any) -> list[Any]:
        """N samples of ``m0`` read as constant in each cell: one ``(N,)`` array per axis."""
        backend, xp, grid = disc.backend, disc.xp, disc.problem.grid
        cdf = xp.cumulative_sum(xp.reshape(disc.m0, (-1,)))
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

    def _density(self, disc: DiscreteMFG, cols: list[Any], alive: Any, count: float,
                 sigma: tuple[float, ...]) -> Any:
        """KDE on the grid (reflecting no-flux walls), rescaled to integrate to ``count / N``."""
        xp = disc.xp
        if count == 0.0:
            return 0.0 * disc.m0
        weights = None if alive is None else alive * (1.0 / self.n_particles)
        rho = disc.backend.kde(_points(xp, cols), weights, disc.problem.grid, bandwidth=sigma,
                               method=self.kde_method, reflect=True)
        total = xp.sum(rho) * disc.cell_volume
        return rho * ((count / self.n_particles) / total)



def _points(xp: Any, cols: list[Any]) -> Any:
    """``(N,)`` in 1D, ``(N, d)`` else: the layout ``backend.kde`` and ``interp`` take."""
    return cols[0] if len(cols) == 1 else xp.stack(cols, axis=1)


def _boundaries(xp: Any, grid: Any, cols: list[Any], alive: Any) -> Any:
    """Fold ``cols`` back into the box in place; return ``alive`` with exited particles at 0.

    Periodic axes wrap; no-flux walls reflect (both walls: the exact fold of the reflection
    group, whatever the overshoot); particles beyond an exit side are removed and parked on
    the face so that they stay in the KDE's range with weight 0.
    """
    for k, ((lo, hi), (low, high)) in enumerate(zip(grid.bounds, grid.boundary, strict=True)):
        c, length = cols[k], hi - lo
        if lo <= float(xp.min(c)) and float(xp.max(c)) <= hi:
            continue
        if low == "periodic":
            cols[k] = lo + xp.remainder(c - lo, length)
            continue
        if low == high == "no_flux":
            r = xp.remainder(c - lo, 2.0 * length)
            cols[k] = lo + xp.where(r > length, 2.0 * length - r, r)
            continue
        if low == "no_flux":
            c = xp.where(c < lo, 2.0 * lo - c, c)
        if high == "no_flux":
            c = xp.where(c > hi, 2.0 * hi - c, c)
        out = (c < lo) | (c > hi)
        alive = xp.where(out, 0.0, alive)
        cols[k] = xp.clip(c, min=lo, max=hi)
    return alive


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

    def fp_residual(self, u: Any, m: Any) -> float:
        xp = self.xp
        defect = xp.abs(m - self.particles.simulate(self, u, m).m)
        per_level = xp.sum(xp.reshape(defect, (defect.shape[0], -1)), axis=1) * self.cell_volume
        return float(xp.max(per_level))

    def outflow(self, u: Any, m: Any) -> Any:
        return self.backend.asarray(np.diff(self.particles.simulate(self, u, m).exited))


def particle_solver(fp: str, n_particles: Any, seed: Any, tol: float) -> ParticleFP | None:
    """``solve``'s particle options, checked before work: a ``ParticleFP`` or None for FDM.

    A solve cannot resolve the fixed point below one particle's mass: ``tol < 1/N`` raises
    ValueError (a sensible ``tol`` is about ``1/sqrt(N)``, the Monte Carlo error).
    """
    particles = ParticleFP(n_particles, seed)
    if fp != "particles":
        return None
    if isinstance(tol, (int, float)) and tol < 1.0 / particles.n_particles:
        raise ValueError(
            f"tol={tol:g} is below what n_particles={particles.n_particles} can resolve (one "
            f"particle's mass, {1.0 / particles.n_particles:g}); use tol >= 1/n_particles, "
            f"typically ~1/sqrt(n_particles) = {particles.n_particles ** -0.5:.1e}"
        )
    return particles
