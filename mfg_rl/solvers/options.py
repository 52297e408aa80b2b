"""``solve``'s options, checked before any work: each alone, then together, then against what
the chosen iteration can reach. Every error names the parameter, its value and what would work,
and an option that the chosen policy, strategy or FP method would not use raises instead of
being dropped."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.backends import Backend, create_backend
from mfg_rl.backends.base import check_seed
from mfg_rl.checks import check_flag, check_int, check_optional, check_real, shown
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.amr import AMR, coupling_policy
from mfg_rl.solvers.auto import Auto
from mfg_rl.solvers.cache import cache_directory
from mfg_rl.solvers.callbacks import Callback
from mfg_rl.solvers.coupling import Anderson, FictitiousPlay, FixedPoint, check_damping
from mfg_rl.solvers.newton import Newton
from mfg_rl.solvers.particles import MAX_PARTICLES, ParticleFP
from mfg_rl.solvers.placement import Placement, place, work
from mfg_rl.solvers.registry import POLICIES, STRATEGIES
from mfg_rl.solvers.stencil import LinearSolver

FP_METHODS = ("fdm", "particles")
DEFAULT_PARTICLES = 100_000  # n_particles of fp="particles" when not given
HOOKS = ("on_start", "on_iteration", "on_end")


@dataclass(frozen=True)
class SolveOptions:
    """What ``solve`` runs with: the objects its checked options stand for."""

    method: str
    strategy: Any
    policy: Auto | FixedPoint | FictitiousPlay | Anderson | Newton
    particles: ParticleFP | None
    backend: Backend
    placement: Placement
    linear: LinearSolver
    callbacks: list[Callback]
    cache: Path | None
    tol: float
    max_iter: int
    newton_tol: float


def checked_options(problem: MFGProblem, method: Any, coupling: Any, fp: Any, backend: Any, tol: Any,
                    max_iter: Any, progress: Any, damping: Any, callbacks: Any, allow_unconverged: Any,
                    cache: Any, newton_tol: Any, n_particles: Any, seed: Any, linear: Any) -> SolveOptions:
    """``solve``'s arguments checked (its docstring says what each allows), or a ``TypeError`` /
    ``ValueError`` for the first one that is wrong."""
    if not isinstance(problem, MFGProblem):
        raise TypeError(f"problem must be an MFGProblem (problems.make(...) or MFGProblem(...)), "
                        f"got {shown(problem)}")
    strategy, method = _strategy(method)
    if not (isinstance(coupling, str) or isinstance(coupling, tuple(POLICIES.values()))):
        raise TypeError(f"coupling must be one of {', '.join(POLICIES)} or a policy object "
                        f"(Auto(), FixedPoint(), ...), got {shown(coupling)}")
    if not isinstance(fp, (str, ParticleFP)):
        raise TypeError(f"fp must be one of {', '.join(FP_METHODS)} or a ParticleFP, "
                        f"got {shown(fp)}")
    tol = check_real("tol", tol, 0.0, 1.0, open_low=True, open_high=True)
    max_iter = check_int("max_iter", max_iter, 1)
    check_flag("progress", progress)
    check_flag("allow_unconverged", allow_unconverged)
    damping = check_damping(damping)
    callbacks = _callbacks(callbacks)
    newton_tol = check_real("newton_tol", newton_tol, 0.0, 1e-3, open_low=True, open_high=True)
    n_particles = check_optional(check_int, "n_particles", n_particles, 2, MAX_PARTICLES)
    seed = None if seed is None else check_seed(seed)
    if linear is not None and not isinstance(linear, LinearSolver):
        raise TypeError(f"linear must be a mfg_rl.solvers.LinearSolver or None, got {shown(linear)}")
    policy = _policy(coupling, damping)
    particles = _particles(fp, n_particles, seed)
    placement = _placement(problem, strategy, particles, backend)
    backend = create_backend(placement.backend if backend is None else backend, device=placement.device)
    if isinstance(policy, Newton) and particles is not None:
        raise ValueError(f"coupling={shown(coupling)} needs fp='fdm': the Jacobian of particles is not "
                         "assembled; use coupling='auto' or 'anderson' with particles")
    if isinstance(policy, Auto) and particles is not None:
        policy = replace(policy, newton_phases=False)
    if isinstance(strategy, AMR):
        strategy, policy = _amr(strategy, problem, policy, particles, linear)
    linear = _linear(linear, problem)
    if callable(getattr(strategy, "check", None)):
        try:
            strategy.check(problem)
        except ValueError as exc:
            raise ValueError(f"method={shown(method)}: {exc}") from None

    lowest = 10.0 * float(np.finfo(backend.dtype_name).eps)
    if tol < lowest:
        raise ValueError(f"tol={tol:g} is below round-off in {backend.dtype_name} (10 eps = {lowest:.1e}); "
                         f"use tol >= {lowest:.1e}")
    if particles is not None:
        particles.check_tol(tol)
    if isinstance(policy, FictitiousPlay) and tol * max_iter < 1.0:
        raise ValueError(
            f"tol={tol:g} is out of reach of coupling='fictitious_play' in max_iter={max_iter} iterations: "
            f"its residual falls like 1/k, so it needs about 1/tol = {1 / tol:.0e}; use tol >= "
            f"1/max_iter = {1 / max_iter:.1e}, or coupling='auto' (or 'anderson') for tol={tol:g}"
        )
    return SolveOptions(method=method, strategy=strategy, policy=policy, particles=particles, backend=backend,
                        placement=placement, linear=linear, callbacks=callbacks, cache=cache_directory(cache),
                        tol=tol, max_iter=max_iter, newton_tol=newton_tol)


def _strategy(method: Any) -> tuple[Any, str]:
    """The trajectory strategy that ``method`` names (a fresh one) or is, and its name."""
    if isinstance(method, str):
        if method not in STRATEGIES:
            raise ValueError(f"method must be one of {', '.join(STRATEGIES)} or a strategy "
                             f"object, got {shown(method)}")
        return STRATEGIES[method](), method
    if isinstance(method, AMR):
        return method, method.name
    if isinstance(method, type) or not (callable(getattr(method, "hjb", None))
                                        and callable(getattr(method, "fp", None))):
        raise TypeError(f"method must be a name or a strategy object with hjb and fp (e.g. "
                        f"Parareal(slices=4)), got {shown(method)}")
    return method, method.name


def _amr(amr: AMR, problem: MFGProblem, policy: Any, particles: ParticleFP | None,
         linear: LinearSolver | None) -> tuple[AMR, FixedPoint | FictitiousPlay | Anderson]:
    """``amr`` with its defaults filled for ``problem`` and the policy it runs (``coupling_policy``:
    ``"auto"`` is Anderson alone, ``"newton"`` raises); particles and ``linear`` raise, as the tree
    steps are finite volumes solved by sparse LU."""
    if particles is not None:
        raise ValueError(f"method='amr' needs fp='fdm', got fp={particles.name!r}: the FP step on the tree "
                         "is the adjoint of its HJB Jacobian; drop fp")
    if linear is not None:
        raise ValueError(f"linear={linear!r} is not used by method='amr', whose tree steps are sparse LU "
                         "solves; drop linear")
    try:
        return amr.resolved(problem), coupling_policy(policy)
    except ValueError as exc:
        raise ValueError(f"method='amr': {exc}") from None


def _particles(fp: str | ParticleFP, n_particles: int | None, seed: int | None) -> ParticleFP | None:
    """The particle FP solver that ``fp`` asks for (None for finite differences).

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
        return fp
    if fp not in FP_METHODS:
        raise ValueError(f"fp must be one of {', '.join(FP_METHODS)} or a ParticleFP, "
                         f"got {shown(fp)}")
    if fp == "fdm":
        if given:
            name, value = given[0]
            raise ValueError(
                f"{name}={value!r} is only used by particles, not by fp='fdm'; pass fp='particles' "
                f"(or fp=ParticleFP(...)) to use it, or drop {name}"
            )
        return None
    return ParticleFP(DEFAULT_PARTICLES if n_particles is None else n_particles, 0 if seed is None else seed)


def _policy(coupling: str | Any, damping: float) -> Auto | FixedPoint | FictitiousPlay | Anderson | Newton:
    """The coupling policy that ``coupling`` names, with ``damping`` where the policy has one.

    ``damping`` other than its default 1 raises where it would be ignored: a policy without
    damping, or a policy object (which carries its own).
    """
    if isinstance(coupling, str):
        if coupling not in POLICIES:
            raise ValueError(f"coupling must be one of {', '.join(POLICIES)} or a policy object, "
                             f"got {shown(coupling)}")
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
    if damping != 1.0:
        kind = type(coupling).__name__
        where = (f"{kind}(damping={damping!r})" if _has_damping(type(coupling))
                 else f"a policy with damping ({kind} has none)")
        raise ValueError(
            f"damping={damping!r} is not used with coupling={kind}(...), a policy object that "
            f"carries its own options; pass {where} instead, or drop damping"
        )
    return coupling


def _placement(problem: MFGProblem, strategy: Any, particles: ParticleFP | None, backend: Any) -> Placement:
    """Where the solve runs: ``backend`` when given, else ``placement.place`` (size and calibration)."""
    n_particles = None if particles is None else particles.n_particles
    if backend is None:
        return place(problem, strategy, n_particles)
    kind, amount = work(problem, n_particles)
    name = backend.name if isinstance(backend, Backend) else backend
    return Placement(str(name), None, "asked for by argument", amount, kind)


def _linear(linear: LinearSolver | None, problem: MFGProblem) -> LinearSolver:
    """The linear solver options; given for a 1D grid (tridiagonal steps) they raise."""
    if linear is None:
        return LinearSolver()
    if problem.grid.ndim == 1:
        raise ValueError(f"linear={linear!r} is not used on a 1D grid, whose implicit steps are tridiagonal "
                         "solves; drop linear")
    return linear


def _callbacks(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list: None, or a list or tuple of objects with the ``Callback`` hooks."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects (with {', '.join(HOOKS)}), "
                        f"got {shown(callbacks)}")
    for i, callback in enumerate(callbacks):
        if isinstance(callback, type) or not all(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise TypeError(f"callbacks[{i}] must be a Callback object (with {', '.join(HOOKS)}; subclass "
                            f"mfg_rl.solvers.Callback), got {shown(callback)}")
    return list(callbacks)


def _has_damping(policy: type) -> bool:
    return "damping" in inspect.signature(policy).parameters
