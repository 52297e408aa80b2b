"""``solve``: the one entry point from an ``MFGProblem`` to its ``Equilibrium``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem, SpacetimeField
from mfg_rl.core.monotonicity import uniqueness_note
from mfg_rl.solvers.amr import AMR
from mfg_rl.solvers.auto import Auto, run_auto
from mfg_rl.solvers.cache import load_cached
from mfg_rl.solvers.callbacks import Callback, ProgressBar
from mfg_rl.solvers.coupling import Anderson, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.equilibrium import Diagnostics, Equilibrium, SlabMeshes
from mfg_rl.solvers.newton import Newton, run_newton
from mfg_rl.solvers.options import checked_options
from mfg_rl.solvers.particles import ParticleFP, ParticleMFG
from mfg_rl.solvers.stencil import LinearSolver

log = logging.getLogger("mfg_rl.solvers")


def solve(
    problem: MFGProblem,
    method: str | Any = "sequential",
    coupling: str | Auto | FixedPoint | FictitiousPlay | Anderson | Newton = "auto",
    fp: str | ParticleFP = "fdm",
    backend: str | Backend | None = None,
    tol: float = 1e-8,
    max_iter: int = 500,
    progress: bool = True,
    *,
    damping: float = 1.0,
    callbacks: list[Callback] | None = None,
    allow_unconverged: bool = False,
    cache: bool | str | os.PathLike = False,
    newton_tol: float = 1e-12,
    n_particles: int | None = None,
    seed: int | None = None,
    linear: LinearSolver | None = None,
) -> Equilibrium:
    """Compute the Nash equilibrium of ``problem``.

    Args:
        problem: the game.
        method: trajectory strategy, ``"sequential"`` (time marching), ``"global"`` (one
            sparse space-time solve per trajectory), ``"global-krylov"`` (FGMRES) or
            ``"jax-scan"`` (the marching compiled with jax ``lax.scan``, 1D; needs
            ``mfg-rl[jax]``, runs on the jax backend; ``timings["compile"]`` apart),
            ``"parareal"`` (time-parallel, ``Parareal()`` defaults), ``"amr"`` (coupled solves on
            an adapted tree mesh, ``AMR()`` defaults; fixed point, Anderson or fictitious play,
            ``"auto"`` meaning Anderson alone; the result is resampled to the grid), or a strategy
            object such as ``Parareal(slices=16)`` or ``AMR(max_level=7, budget=60)``.
        coupling: ``"auto"`` (default: Anderson, switching to Newton and back when one
            stops progressing, every switch in ``diagnostics.switches``; ``mfg_rl.solvers.auto``),
            ``"fixed_point"`` (damped, see ``damping``), ``"anderson"`` (Anderson-accelerated
            fixed point: 2-5x fewer iterations on the catalogue), ``"fictitious_play"``
            (averaging, residual ``O(1/k)``: ``tol >= 1/max_iter``), ``"newton"`` (monolithic
            Newton on the coupled system, ``mfg_rl.solvers.newton``), or a policy object
            (``Auto(patience=30)``, ``FixedPoint(damping=0.5)``, ``Anderson(depth=3)``,
            ``Newton(warmup=2)``, ...), which carries its own options.
        fp: Fokker-Planck discretisation, ``"fdm"`` (adjoint finite differences),
            ``"particles"`` (``n_particles`` SDE paths, KDE density) or a ``ParticleFP``
            object, which carries its own particle count, seed, bandwidth and KDE method
            (``ParticleFP(50_000, seed=1, bandwidth="silverman")``). With particles the
            residual is the fixed-point defect of the seeded particle system
            (``ParticleMFG``); use ``tol`` about ``1/sqrt(n_particles)`` (the Monte Carlo
            error); ``tol < 1/n_particles`` raises ValueError.
        backend: ``"torch"``, ``"jax"``, ``"numpy"``, a ``Backend``, or None: placed by
            ``solvers.placement.place``: the strategy's own (jax for ``"jax-scan"``), else
            ``$MFG_RL_BACKEND``, else torch on a device where this machine's calibration
            (``mfg-rl calibrate``) measured it faster than numpy for this size, else numpy. The
            choice and why: ``eq.diagnostics.placement`` and the ``mfg_rl.solvers`` logger.
        tol: stop when the coupled residual (see ``Diagnostics``) is ``<= tol``, in
            ``[10 eps, 1)`` of the backend's dtype. An iteration that stalls at its round-off
            floor above ``tol`` stops there (``stopped_by="floor"``, a ``RuntimeWarning``).
        max_iter: coupling iterations before ``SolverError`` (>= 1).
        progress: show a tqdm progress bar (True or False).
        damping: first relaxation of ``"fixed_point"`` and ``"anderson"``, in (0, 1]; it is
            halved whenever the residual grows (``FixedPoint(adaptive=True)``). A value
            other than 1 with a policy that has no damping (``"fictitious_play"``,
            ``"newton"``) or with a policy object raises ValueError.
        callbacks: a list of extra ``Callback`` objects (return ``False`` to stop early).
        allow_unconverged: return a result flagged ``converged=False`` instead of raising
            when ``max_iter`` is reached.
        cache: False, True (``default_cache_dir()``) or a directory, created before any work:
            reuse an equilibrium saved for the same problem and options, and save new ones there;
            an entry that fails ``Equilibrium.load``'s checks is moved aside with a warning and
            recomputed.
        newton_tol: relative tolerance of the per-step Newton solves.
        n_particles: particles of ``fp="particles"``, an int >= 2 (default 100_000).
        seed: seed of ``fp="particles"``, an int >= 0 (default 0; same seed, same particles).
            Either given with ``fp="fdm"`` or with a ``ParticleFP`` object raises ValueError.
        linear: how the implicit steps of a 2D/3D grid solve their stencil systems, a
            ``LinearSolver`` (default: BiCGStab with the zebra line preconditioner, numba kernel
            where it applies). 1D steps are tridiagonal solves: given there, it raises ValueError.

    Raises:
        TypeError, ValueError: before any work (``solvers/options.py``), an option of the wrong
            kind or out of range, or one that the chosen policy, strategy or FP method does not
            use (it would otherwise be silently ignored); the message names the parameter, its
            value and what would work.

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("lq-1d", Nx=51, Nt=10), progress=False)
        >>> eq.diagnostics.converged, eq.u.shape
        (True, (11, 51))
    """
    checked = checked_options(problem, method, coupling, fp, backend, tol, max_iter, progress, damping,
                              callbacks, allow_unconverged, cache, newton_tol, n_particles, seed, linear)
    method, strategy, policy, particles = checked.method, checked.strategy, checked.policy, checked.particles
    backend, linear, tol, max_iter = checked.backend, checked.linear, checked.tol, checked.max_iter
    newton_tol = checked.newton_tol
    log.info("solve %s on %s:%s; %s", problem.name, backend.name, backend.device, checked.placement.reason)
    fp = "fdm" if particles is None else particles.name
    options = {"method": method, "coupling": policy.name, "fp": fp, "tol": tol,
               "damping": getattr(policy, "damping", None),
               "adaptive": getattr(policy, "adaptive", None), "newton_tol": newton_tol,
               "dtype": backend.dtype_name, "linear": linear.spec()}
    if getattr(strategy, "options", None):
        options["strategy"] = strategy.options
    if particles is not None:
        options.update(n_particles=particles.n_particles, seed=particles.seed, bandwidth=particles.bandwidth,
                       kde_method=particles.kde_method, particle_dtype=particles.dtype)
    cache_path = None if checked.cache is None else _cache_path(problem, options, checked.cache)
    cached = None if cache_path is None else load_cached(cache_path, problem, backend)
    if cached is not None:
        return cached

    start = time.perf_counter()
    loop_callbacks = checked.callbacks
    if progress:
        loop_callbacks.insert(0, ProgressBar(f"{problem.name} {method}/{policy.name}"))
    if isinstance(strategy, AMR):
        adaptive = strategy.solve(problem, policy, tol=tol, max_iter=max_iter, callbacks=loop_callbacks,
                                  allow_unconverged=allow_unconverged, newton_tol=newton_tol)
        result = adaptive.coupling
        u, m = (backend.from_host(field) for field in adaptive.on_grid())
        meshes = SlabMeshes(tuple(adaptive.meshes), tuple(int(edge) for edge in adaptive.edges))
        mass, outflow = adaptive.disc.mass(result.m), adaptive.disc.outflow(result.u, result.m)
        options = dict(options, strategy=dict(options["strategy"], leaves=adaptive.leaves_per_level(),
                                              rounds=[list(r) for r in adaptive.rounds]))
    else:
        discretise = getattr(strategy, "discretise", DiscreteMFG)
        disc = (discretise(problem, backend, newton_tol=newton_tol, linear=linear) if particles is None
                else ParticleMFG(problem, backend, particles, newton_tol=newton_tol, linear=linear))
        meshes = None
        run = run_newton if isinstance(policy, Newton) else run_coupling
        result = (run_auto if isinstance(policy, Auto) else run)(
            disc, strategy, particles or strategy, policy, tol=tol, max_iter=max_iter,
            callbacks=loop_callbacks, allow_unconverged=allow_unconverged,
        )
        u, m = result.u, result.m
        mass, outflow = backend.to_numpy(disc.mass(m)), backend.to_numpy(disc.outflow(u, m))
    mass = [float(v) for v in mass]
    exited = [0.0] + [float(v) for v in outflow.cumsum()]
    timings = dict(result.timings, **getattr(strategy, "timings", {}), total=time.perf_counter() - start)
    diagnostics = Diagnostics(
        method=method, coupling=policy.name, fp=fp, backend=backend.name, device=backend.device,
        dtype=backend.dtype_name, tol=tol, converged=result.converged, stopped_by=result.stopped_by,
        iterations=result.iterations, residual=result.residuals[-1], residuals=result.residuals,
        fp_residuals=result.fp_residuals, hjb_residuals=result.hjb_residuals,
        newton_iterations=result.newton_iterations, timings=timings, mass=mass,
        exited=exited, options=options, switches=result.switches,
        notes=[note] if (note := uniqueness_note(problem)) else [], placement=checked.placement.reason,
    )
    if result.stopped_by == "floor":
        warnings.warn(
            f"{policy.name} stalled at residual {result.best[0]:.2e}, the round-off floor of "
            f"{method}/{policy.name}, above tol={tol:g}; the result is as accurate as this iteration "
            f"gets (diagnostics.stopped_by='floor'); ask for tol >= {2 * result.best[0]:.0e}",
            RuntimeWarning, stacklevel=2,
        )
    eq = Equilibrium(
        u=SpacetimeField(u, problem.grid, problem.time),
        m=SpacetimeField(m, problem.grid, problem.time),
        problem=problem,
        diagnostics=diagnostics,
        meshes=meshes,
    )
    if cache_path is not None and result.converged:
        eq.save(cache_path)
    return eq


def _cache_path(problem: MFGProblem, options: dict[str, Any], directory: Path) -> Path:
    """The cache file of ``problem`` solved with ``options`` in ``directory``."""
    key = hashlib.sha256(json.dumps([problem.fingerprint(), options], sort_keys=True).encode())
    return directory / f"{problem.name}-{key.hexdigest()[:16]}.npz"
