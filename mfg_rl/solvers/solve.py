"""``solve``: the one entry point from an ``MFGProblem`` to its ``Equilibrium``."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.backends import ENV_VAR, Backend, create_backend
from mfg_rl.core import MFGProblem, SpacetimeField
from mfg_rl.core.monotonicity import uniqueness_note
from mfg_rl.paths import default_cache_dir
from mfg_rl.solvers.auto import Auto, run_auto
from mfg_rl.solvers.cache import load_cached
from mfg_rl.solvers.callbacks import Callback, ProgressBar
from mfg_rl.solvers.coupling import Anderson, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.equilibrium import Diagnostics, Equilibrium
from mfg_rl.solvers.newton import Newton, run_newton
from mfg_rl.solvers.particles import ParticleFP, ParticleMFG, particle_solver
from mfg_rl.solvers.registry import POLICIES, STRATEGIES
from mfg_rl.solvers.stencil import LinearSolver

log = logging.getLogger("mfg_rl.solvers")

FP_METHODS = ("fdm", "particles")
DEFAULT_PARTICLES = 100_000  # n_particles of fp="particles" when not given


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
            ``"parareal"`` (time-parallel, ``Parareal()`` defaults), or a strategy object
            such as ``Parareal(slices=16)`` (``mfg_rl.solvers.parareal``).
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
        backend: ``"torch"``, ``"jax"``, ``"numpy"``, a ``Backend``, or None: the strategy's own
            (jax for ``"jax-scan"``), else ``$MFG_RL_BACKEND``, else numpy, the fastest place for
            a solve today (``benchmarks/placement.py``: torch is 3-4x slower on the CPU, and
            20x on CUDA for lq-1d, issue 13).
        tol: stop when the coupled residual (see ``Diagnostics``) is ``<= tol``, in
            ``[10 eps, 1)`` of the backend's dtype. An iteration that stalls at its round-off
            floor above ``tol`` stops there (``stopped_by="floor"``, a ``RuntimeWarning``).
        max_iter: coupling iterations before ``SolverError`` (>= 1).
        progress: show a tqdm progress bar.
        damping: first relaxation of ``"fixed_point"`` and ``"anderson"``, in (0, 1]; it is
            halved whenever the residual grows (``FixedPoint(adaptive=True)``). A value
            other than 1 with a policy that has no damping (``"fictitious_play"``,
            ``"newton"``) or with a policy object raises ValueError.
        callbacks: extra ``Callback`` objects (return ``False`` to stop early).
        allow_unconverged: return a result flagged ``converged=False`` instead of raising
            when ``max_iter`` is reached.
        cache: False, True (``default_cache_dir()``) or a directory: reuse an equilibrium
            saved for the same problem and options, and save new ones there; an entry that
            fails ``Equilibrium.load``'s checks is moved aside with a warning and recomputed.
        newton_tol: relative tolerance of the per-step Newton solves.
        n_particles: particles of ``fp="particles"``, an int >= 2 (default 100_000).
        seed: seed of ``fp="particles"``, an int >= 0 (default 0; same seed, same particles).
            Either given with ``fp="fdm"`` or with a ``ParticleFP`` object raises ValueError.
        linear: how the implicit steps of a 2D/3D grid solve their stencil systems, a
            ``LinearSolver`` (default: BiCGStab with the zebra line preconditioner, numba kernel
            where it applies). 1D steps are tridiagonal solves: given there, it raises ValueError.

    Raises:
        ValueError: an option out of range, or one that the chosen policy, strategy or
            FP method does not use (it would otherwise be silently ignored); the message
            names the parameter, its value and what would work.

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("lq-1d", Nx=51, Nt=10), progress=False)
        >>> eq.diagnostics.converged, eq.u.shape
        (True, (11, 51))
    """
    if not isinstance(problem, MFGProblem):
        raise TypeError(f"problem must be an MFGProblem, got {type(problem).__name__}")
    if isinstance(method, str):
        if method not in STRATEGIES:
            raise ValueError(f"method must be one of {', '.join(STRATEGIES)}, got {method!r}")
        strategy = STRATEGIES[method]()
    elif callable(getattr(method, "hjb", None)) and callable(getattr(method, "fp", None)):
        strategy, method = method, method.name
    else:
        raise TypeError(f"method must be a name or a strategy object with hjb and fp, got {method!r}")
    particles = _particles(fp, n_particles, seed, tol)
    policy = _policy(coupling, damping)
    if isinstance(policy, Newton) and particles is not None:
        raise ValueError("coupling='newton' needs fp='fdm' (the Jacobian of particles is not assembled)")
    if isinstance(policy, Auto) and particles is not None:
        policy = replace(policy, newton_phases=False)
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0.0 < tol < 1.0):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if isinstance(policy, FictitiousPlay) and tol * max_iter < 1.0:
        raise ValueError(
            f"tol={tol:g} is out of reach of fictitious_play in max_iter={max_iter} iterations: its "
            f"residual falls like 1/k, so it needs about 1/tol = {1 / tol:.0e}; use tol >= "
            f"1/max_iter = {1 / max_iter:.1e}, or coupling='auto' (or 'anderson') for tol={tol:g}"
        )
    if not 0.0 < newton_tol < 1e-3:
        raise ValueError(f"newton_tol must be in (0, 1e-3), got {newton_tol!r}")
    linear = _linear(linear, problem)
    backend = create_backend(_placement(strategy) if backend is None else backend)
    lowest = 10.0 * float(np.finfo(backend.dtype_name).eps)
    if tol < lowest:
        raise ValueError(f"tol={tol:g} is below round-off in {backend.dtype_name} (10 eps = {lowest:.1e}); "
                         f"use tol >= {lowest:.1e}")
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
    cache_path = _cache_path(problem, options, cache)
    cached = None if cache_path is None else load_cached(cache_path, problem, backend)
    if cached is not None:
        return cached

    start = time.perf_counter()
    discretise = getattr(strategy, "discretise", DiscreteMFG)
    disc = (discretise(problem, backend, newton_tol=newton_tol, linear=linear) if particles is None
            else ParticleMFG(problem, backend, particles, newton_tol=newton_tol, linear=linear))
    loop_callbacks = list(callbacks or [])
    if progress:
        loop_callbacks.insert(0, ProgressBar(f"{problem.name} {method}/{policy.name}"))
    run = run_auto if isinstance(policy, Auto) else run_newton if isinstance(policy, Newton) else run_coupling
    result = run(
        disc, strategy, particles or strategy, policy, tol=tol, max_iter=max_iter,
        callbacks=loop_callbacks, allow_unconverged=allow_unconverged,
    )
    mass = [float(v) for v in backend.to_numpy(disc.mass(result.m))]
    outflow = backend.to_numpy(disc.outflow(result.u, result.m))
    exited = [0.0] + [float(v) for v in outflow.cumsum()]
    timings = dict(result.timings, **getattr(strategy, "timings", {}), total=time.perf_counter() - start)
    diagnostics = Diagnostics(
        method=method, coupling=policy.name, fp=fp, backend=backend.name, device=backend.device,
        dtype=backend.dtype_name, tol=tol, converged=result.converged, stopped_by=result.stopped_by,
        iterations=result.iterations, residual=result.residuals[-1], residuals=result.residuals,
        fp_residuals=result.fp_residuals, hjb_residuals=result.hjb_residuals,
        newton_iterations=result.newton_iterations, timings=timings, mass=mass,
        exited=exited, options=options, switches=result.switches,
        notes=[note] if (note := uniqueness_note(problem)) else [],
    )
    if result.stopped_by == "floor":
        warnings.warn(
            f"{policy.name} stalled at residual {result.best[0]:.2e}, the round-off floor of "
            f"{method}/{policy.name}, above tol={tol:g}; the result is as accurate as this iteration "
            f"gets (diagnostics.stopped_by='floor'); ask for tol >= {2 * result.best[0]:.0e}",
            RuntimeWarning, stacklevel=2,
        )
    eq = Equilibrium(
        u=SpacetimeField(result.u, problem.grid, problem.time),
        m=SpacetimeField(result.m, problem.grid, problem.time),
        problem=problem,
        diagnostics=diagnostics,
    )
    if cache_path is not None and result.converged:
        eq.save(cache_path)
    return eq


def _particles(fp: Any, n_particles: Any, seed: Any, tol: float) -> ParticleFP | None:
    """The particle FP solver that ``fp`` asks for (None for finite differences), checked.

    ``n_particles`` and ``seed`` are None unless the caller gave them; they are used by
    ``fp="particles"`` only, so given with ``"fdm"`` or a ``ParticleFP`` they raise.
    """
    given = [(name, value) for name, value in (("n_particles", n_particles), ("seed", seed))
             if value is not None]
    if isinstance(fp, ParticleFP):
        if given:
            name, value = given[0]
            raise ValueError(
                f"{name}={value!r} is not used with fp=ParticleFP(...), which carries its own "
                f"{name}={getattr(fp, name)!r}; set it on the object (ParticleFP({name}=...)) or pass "
                f"fp='particles', {name}={value!r}"
            )
        particle_solver("particles", fp.n_particles, fp.seed, tol)  # the tol >= 1/n_particles check
        return fp
    if not isinstance(fp, str):
        raise TypeError(f"fp must be one of {', '.join(FP_METHODS)} or a ParticleFP, got {fp!r}")
    if fp not in FP_METHODS:
        raise ValueError(f"fp must be one of {', '.join(FP_METHODS)} or a ParticleFP, got {fp!r}")
    if fp == "fdm":
        if given:
            name, value = given[0]
            raise ValueError(
                f"{name}={value!r} is only used by particles, not by fp='fdm'; pass fp='particles' "
                f"(or fp=ParticleFP(...)) to use it, or drop {name}"
            )
        return None
    n_particles = DEFAULT_PARTICLES if n_particles is None else n_particles
    return particle_solver(fp, n_particles, 0 if seed is None else seed, tol)


def _policy(coupling: Any, damping: Any) -> FixedPoint | FictitiousPlay | Anderson | Newton:
    """The coupling policy that ``coupling`` names, with ``damping`` where the policy has one.

    ``damping`` other than its default 1 raises where it would be ignored: a policy without
    damping, or a policy object (which carries its own).
    """
    if isinstance(coupling, str):
        if coupling not in POLICIES:
            raise ValueError(f"coupling must be one of {', '.join(POLICIES)}, got {coupling!r}")
        cls = POLICIES[coupling]
        if _has_damping(cls):
            return cls(damping=damping)
        if damping != 1.0:
            damped = [name for name, kind in POLICIES.items() if _has_damping(kind)]
            raise ValueError(
                f"damping={damping!r} is not used by coupling={coupling!r}, which has no damping; "
                f"use coupling={' or '.join(map(repr, damped))}, or drop damping"
            )
        return cls()
    if isinstance(coupling, tuple(POLICIES.values())):
        if damping != 1.0:
            kind = type(coupling).__name__
            where = (f"{kind}(damping={damping!r})" if _has_damping(type(coupling))
                     else f"a policy with damping ({kind} has none)")
            raise ValueError(
                f"damping={damping!r} is not used with coupling={kind}(...), a policy object that "
                f"carries its own options; pass {where} instead, or drop damping"
            )
        return coupling
    raise TypeError(f"coupling must be a name or one of {', '.join(POLICIES)} policies, got {coupling!r}")


def _placement(strategy: Any) -> str:
    """The backend of ``solve(backend=None)``: the strategy's, ``$MFG_RL_BACKEND``, or numpy."""
    return getattr(strategy, "backend", None) or os.environ.get(ENV_VAR, "").strip() or "numpy"


def _linear(linear: Any, problem: MFGProblem) -> LinearSolver:
    """``solve``'s linear solver options, checked: given for a 1D grid (tridiagonal steps) they raise."""
    if linear is None:
        return LinearSolver()
    if not isinstance(linear, LinearSolver):
        raise TypeError(f"linear must be a mfg_rl.solvers.LinearSolver or None, got {linear!r}")
    if problem.grid.ndim == 1:
        raise ValueError(f"linear={linear!r} is not used on a 1D grid, whose implicit steps are tridiagonal "
                         "solves; drop linear")
    return linear


def _has_damping(policy: type) -> bool:
    return "damping" in inspect.signature(policy).parameters


def _cache_path(problem: MFGProblem, options: dict[str, Any], cache: Any) -> Path | None:
    if cache is False or cache is None:
        return None
    directory = default_cache_dir() if cache is True else Path(cache)
    key = hashlib.sha256(json.dumps([problem.fingerprint(), options], sort_keys=True).encode())
    return directory / f"{problem.name}-{key.hexdigest()[:16]}.npz"
