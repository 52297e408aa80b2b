"""``solve``: the one entry point from an ``MFGProblem`` to its ``Equilibrium``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from mfg_rl.backends import Backend, create_backend
from mfg_rl.core import MFGProblem, SpacetimeField
from mfg_rl.paths import default_cache_dir
from mfg_rl.solvers.callbacks import Callback, ProgressBar
from mfg_rl.solvers.coupling import POLICIES, Anderson, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.equilibrium import Diagnostics, Equilibrium
from mfg_rl.solvers.newton import Newton, run_newton
from mfg_rl.solvers.particles import ParticleMFG, particle_solver
from mfg_rl.solvers.trajectory import STRATEGIES

log = logging.getLogger("mfg_rl.solvers")

FP_METHODS = ("fdm", "particles")


def solve(
    problem: MFGProblem,
    method: str | Any = "sequential",
    coupling: str | FixedPoint | FictitiousPlay | Anderson = "fixed_point",
    fp: str = "fdm",
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
    n_particles: int = 100_000,
    seed: int = 0,
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
        coupling: ``"fixed_point"`` (damped, see ``damping``), ``"anderson"`` (Anderson-
            accelerated fixed point: 2-5x fewer iterations on the catalogue),
            ``"fictitious_play"``, ``"newton"`` (monolithic Newton on the coupled system,
            ``mfg_rl.solvers.newton``), or a policy object.
        fp: Fokker-Planck discretisation, ``"fdm"`` (adjoint finite differences) or
            ``"particles"`` (``n_particles`` SDE paths, KDE density; see ``ParticleFP``). With
            particles the residual is the fixed-point defect of the seeded particle system
            (``ParticleMFG``); use ``tol`` about ``1/sqrt(n_particles)`` (the Monte Carlo
            error); ``tol < 1/n_particles`` raises ValueError.
        backend: ``"torch"``, ``"jax"``, ``"numpy"``, a ``Backend``, or None (best installed).
        tol: stop when the coupled residual (see ``Diagnostics``) is ``<= tol``, in (0, 1).
        max_iter: coupling iterations before ``SolverError`` (>= 1).
        progress: show a tqdm progress bar.
        damping: first relaxation of the fixed point, in (0, 1]; it is halved whenever
            the residual grows (``FixedPoint(adaptive=True)``).
        callbacks: extra ``Callback`` objects (return ``False`` to stop early).
        allow_unconverged: return a result flagged ``converged=False`` instead of raising
            when ``max_iter`` is reached.
        cache: False, True (``default_cache_dir()``) or a directory: reuse an equilibrium
            saved for the same problem and options, and save new ones there.
        newton_tol: relative tolerance of the per-step Newton solves.
        n_particles: particles of ``fp="particles"``, an int >= 2.
        seed: seed of ``fp="particles"``, an int >= 0 (same seed, same particles).

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
    if fp not in FP_METHODS:
        raise ValueError(f"fp must be one of {', '.join(FP_METHODS)}, got {fp!r}")
    particles = particle_solver(fp, n_particles, seed, tol)
    if isinstance(coupling, str):
        if coupling not in POLICIES:
            raise ValueError(f"coupling must be one of {', '.join(POLICIES)}, got {coupling!r}")
        policy = FixedPoint(damping) if coupling == "fixed_point" else POLICIES[coupling]()
    elif isinstance(coupling, tuple(POLICIES.values())):
        policy = coupling
    else:
        raise TypeError(f"coupling must be a name or one of {', '.join(POLICIES)} policies, got {coupling!r}")
    if isinstance(policy, Newton) and particles is not None:
        raise ValueError("coupling='newton' needs fp='fdm' (the Jacobian of particles is not assembled)")
    if not (isinstance(tol, (int, float)) and 0.0 < tol < 1.0):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not 0.0 < newton_tol < 1e-3:
        raise ValueError(f"newton_tol must be in (0, 1e-3), got {newton_tol!r}")
    backend = create_backend(getattr(strategy, "backend", None) if backend is None else backend)
    options = {"method": method, "coupling": policy.name, "fp": fp, "tol": tol,
               "damping": getattr(policy, "damping", None),
               "adaptive": getattr(policy, "adaptive", None), "newton_tol": newton_tol,
               "dtype": backend.dtype_name}
    if getattr(strategy, "options", None):
        options["strategy"] = strategy.options
    if particles is not None:
        options.update(n_particles=particles.n_particles, seed=particles.seed)
    cache_path = _cache_path(problem, options, cache)
    if cache_path is not None and cache_path.exists():
        log.info("loading cached equilibrium %s", cache_path)
        return Equilibrium.load(cache_path, problem=problem, backend=backend)

    start = time.perf_counter()
    discretise = getattr(strategy, "discretise", DiscreteMFG)
    disc = (discretise(problem, backend, newton_tol=newton_tol) if particles is None
            else ParticleMFG(problem, backend, particles, newton_tol=newton_tol))
    loop_callbacks = list(callbacks or [])
    if progress:
        loop_callbacks.insert(0, ProgressBar(f"{problem.name} {method}/{policy.name}"))
    run = run_newton if isinstance(policy, Newton) else run_coupling
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
        exited=exited, options=options,
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


def _cache_path(problem: MFGProblem, options: dict[str, Any], cache: Any) -> Path | None:
    if cache is False or cache is None:
        return None
    directory = default_cache_dir() if cache is True else Path(cache)
    key = hashlib.sha256(json.dumps([problem.fingerprint(), options], sort_keys=True).encode())
    return directory / f"{problem.name}-{key.hexdigest()[:16]}.npz"
