"""The coupling loop between HJB and FP, with its relaxation policy as a small object.

Each iteration solves HJB for the current crowd ``m^k``, measures the residual of the
discrete coupled system at ``(u(m^k), m^k)`` (the HJB part is solved to Newton
tolerance, the FP part is evaluated exactly), solves FP for ``u(m^k)`` and relaxes:

    fixed point:       m^{k+1} = (1 - theta_k) m^k + theta_k FP(u(m^k))   (theta adaptive)
    fictitious play:   m^{k+1} = m^k + (FP(u(m^k)) - m^k) / (k + 2)
    Anderson:          an extrapolation from the last few iterates (see ``Anderson``)

With ``inexact`` (Anderson's default) the step solves are loosened (their ``forcing`` argument):
iteration ``k`` asks them for an accuracy ``FORCING`` times the previous coupling residual
(``FORCING`` alone at the first); the residual that decides convergence is measured
exactly, so the result meets ``tol`` as with exact solves, with fewer Newton and Krylov
iterations (crowd-2d 32x32: 25% less time, same coupling iterations).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mfg_rl.checks import check_flag, check_int, check_real
from mfg_rl.errors import SolverError
from mfg_rl.solvers.callbacks import Callback, IterationState
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.trajectory import TrajectorySolver


def check_damping(value: Any, name: str = "damping") -> float:
    """A relaxation factor ``theta`` in (0, 1], else an error naming ``name``."""
    return check_real(name, value, 0.0, 1.0, open_low=True)


MIN_DAMPING = 1.0 / 64  # the smallest relaxation an adaptive policy halves down to, unless asked


def check_min_damping(value: Any, damping: float) -> float:
    """``min_damping`` in (0, damping]; None gives ``min(MIN_DAMPING, damping)``."""
    return min(MIN_DAMPING, damping) if value is None else check_real("min_damping", value, 0.0, damping,
                                                                      open_low=True)


@dataclass
class FixedPoint:
    """Damped fixed point (Picard): ``m <- (1 - theta) m + theta FP(u(m))``.

    ``damping`` is the first ``theta`` in (0, 1]. With ``adaptive=True`` the policy halves
    ``theta`` (down to ``min_damping``, default ``min(1/64, damping)``) whenever the residual
    grows, which keeps the undamped speed on contractive problems and converges on strongly
    coupled ones.
    """

    damping: float = 1.0
    adaptive: bool = True
    min_damping: float | None = None
    name: str = "fixed_point"
    theta: float = field(init=False)
    patience: ClassVar[int] = 30  # iterations without progress that mean a floor (``Progress``)

    def __post_init__(self) -> None:
        self.damping = check_damping(self.damping)
        self.adaptive = check_flag("adaptive", self.adaptive)
        self.min_damping = check_min_damping(self.min_damping, self.damping)
        self.theta = self.damping

    def reset(self) -> None:
        self.theta = self.damping

    def update(self, m: Any, m_new: Any, iteration: int, residuals: list[float]) -> Any:
        if self.adaptive and len(residuals) >= 2 and residuals[-1] > residuals[-2]:
            self.theta = max(0.5 * self.theta, self.min_damping)
        return m + self.theta * (m_new - m)


@dataclass(frozen=True)
class FictitiousPlay:
    """Fictitious play: the crowd is the running average of best-response crowds.

    Its residual falls like ``1/k`` (the average forgets its start as ``1/k``): ``tol`` needs
    about ``1/tol`` iterations, so ``solve`` refuses a ``tol`` below ``1/max_iter`` up front.
    Use it to study learning dynamics; ``"auto"`` or ``"anderson"`` to reach ``1e-8``.
    """

    name: str = "fictitious_play"
    patience: ClassVar[None] = None  # O(1/k) progress: no floor detection

    def reset(self) -> None:
        """Fictitious play keeps no state."""

    def update(self, m: Any, m_new: Any, iteration: int, residuals: list[float]) -> Any:
        return m + (m_new - m) / (iteration + 2)


@dataclass
class Anderson:
    """Anderson acceleration (Walker & Ni 2011) of the damped fixed point ``m -> FP(u(m))``.

    With residuals ``r_j = G(m_j) - m_j`` of the last ``depth + 1`` iterates, ``gamma``
    minimises ``|r_k - dR gamma|`` and ``m <- (m_k - dM gamma) + theta (r_k - dR gamma)``.
    ``theta`` starts at ``damping`` and halves (down to ``min_damping``, default
    ``min(1/64, damping)``) whenever the residual grows (the history is then cleared); a step
    that would make ``m`` negative falls back to the damped step.
    ``inexact``: let the coupling loop loosen the step solves (module docstring); the
    extrapolation tolerates that noise, while the adaptive plain fixed point does not
    (it reads small residual bumps as divergence and damps), so only Anderson does so.
    """

    depth: int = 5
    damping: float = 1.0
    min_damping: float | None = None
    inexact: bool = True
    name: str = "anderson"
    history: list[tuple[Any, Any]] = field(default_factory=list, repr=False)
    theta: float = field(init=False)
    patience: ClassVar[int] = 30

    def __post_init__(self) -> None:
        self.depth = check_int("depth", self.depth, 1, 50)
        self.damping = check_damping(self.damping)
        self.min_damping = check_min_damping(self.min_damping, self.damping)
        self.inexact = check_flag("inexact", self.inexact)
        self.theta = self.damping

    def reset(self) -> None:
        self.history = []
        self.theta = self.damping

    def update(self, m: Any, m_new: Any, iteration: int, residuals: list[float]) -> Any:
        import numpy as np
        from array_api_compat import array_namespace, is_torch_array

        xp = array_namespace(m)
        if len(residuals) >= 2 and residuals[-1] > residuals[-2]:
            self.history = []
            self.theta = max(0.5 * self.theta, self.min_damping)
        self.history = (self.history + [(m, m_new - m)])[-(self.depth + 1):]
        plain = m + self.theta * (m_new - m)
        if len(self.history) < 2:
            return plain
        ms = [pair[0] for pair in self.history]
        rs = [pair[1] for pair in self.history]
        # D = [dr_0 .. dr_{k-1}] as rows: D [D; r]^T holds the Gram matrix D D^T and the right-hand
        # side D r, one matmul on the arrays' device, read by the host in one transfer
        d_r = xp.stack([xp.reshape(rs[j + 1] - rs[j], (-1,)) for j in range(len(rs) - 1)])
        products = xp.matmul(d_r, xp.matrix_transpose(xp.concat([d_r, xp.reshape(rs[-1], (1, -1))])))
        products = np.asarray(products.cpu() if is_torch_array(products) else products, dtype=float)
        gamma = np.linalg.lstsq(products[:, :-1], products[:, -1], rcond=1e-12)[0]
        m_bar, r_bar = ms[-1], rs[-1]
        for j, coefficient in enumerate(gamma):
            m_bar = m_bar - float(coefficient) * (ms[j + 1] - ms[j])
            r_bar = r_bar - float(coefficient) * (rs[j + 1] - rs[j])
        candidate = m_bar + self.theta * r_bar
        if not bool(xp.all(candidate >= 0.0)):
            self.history = [self.history[-1]]
            return plain
        return candidate


FORCING = 1e-3  # step-solve accuracy relative to the coupling residual (inexact Picard)
PROGRESS = 0.9  # progress: a residual below this fraction of the best so far


@dataclass
class Progress:
    """Whether an iteration still progresses: a new best residual (by 10 %) within ``patience`` iterations.

    ``update(r)`` after each iteration returns True once ``patience`` iterations in a row
    failed to bring the residual below ``PROGRESS`` times the best so far.
    """

    patience: int
    best: float = math.inf
    waited: int = 0

    def update(self, residual: float) -> bool:
        if residual <= PROGRESS * self.best or self.best == math.inf:
            self.best, self.waited = residual, 0
        else:
            self.best = min(self.best, residual)
            self.waited += 1
        return self.waited >= self.patience


def attainable_floor(dtype: str) -> float:
    """The residual below which a stalled iteration is at round-off: ``0.1 sqrt(eps)``
    (1.5e-9 in float64; measured floors: fixed point 4e-12, Parareal(slices=4) 1e-10)."""
    return 0.1 * math.sqrt(float(np.finfo(dtype).eps))


@dataclass
class CouplingResult:
    """Output of ``run_coupling``: fields on the backend and the loop's record."""

    u: Any
    m: Any
    converged: bool
    stopped_by: str
    iterations: int
    residuals: list[float] = field(default_factory=list)
    fp_residuals: list[float] = field(default_factory=list)
    hjb_residuals: list[float] = field(default_factory=list)
    newton_iterations: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    best: tuple[float, Any, Any] = (math.inf, None, None)
    switches: list[dict[str, Any]] = field(default_factory=list)

    def observe(self, state: IterationState, callbacks: list[Callback]) -> bool:
        """Record one iteration's residuals (and the best iterate) and tell the callbacks; True
        when the loop stops here (residual below tol, or a callback returned False)."""
        if state.residual < self.best[0]:
            self.best = (state.residual, state.u, state.m)
        self.residuals.append(state.residual)
        self.fp_residuals.append(state.fp_residual)
        self.hjb_residuals.append(state.hjb_residual)
        stop = [callback.on_iteration(state) is False for callback in callbacks]
        if state.residual <= state.tol:
            self.converged, self.stopped_by = True, "tol"
            return True
        if any(stop):
            self.stopped_by = "callback"
            return True
        return False


def run_coupling(
    disc: DiscreteMFG,
    hjb_solver: TrajectorySolver,
    fp_solver: TrajectorySolver,
    policy: FixedPoint | FictitiousPlay | Anderson,
    *,
    tol: float,
    max_iter: int,
    callbacks: list[Callback] = (),
    allow_unconverged: bool = False,
    m_init: Any = None,
    inexact: bool | None = None,
    stop_on_stall: bool = False,
    patience: int | None = None,
) -> CouplingResult:
    """Iterate HJB/FP until the coupled residual is below ``tol``.

    ``inexact``: solve the steps only as accurately as the iteration needs (module
    docstring); False solves them to ``disc.newton_tol``; None (default) asks the policy
    (its ``inexact`` attribute, False when absent).

    Stalls (``Progress`` over ``patience`` iterations, default the policy's): below
    ``attainable_floor`` the loop stops with ``stopped_by="floor"`` (``tol`` is under what
    the iteration can reach); elsewhere it stops with ``stopped_by="stalled"`` when
    ``stop_on_stall`` (``"auto"`` then switches strategy) and goes on otherwise. Raises
    ``SolverError`` on NaN, on divergence (residual above 1e6 times its first value; a
    stall under ``stop_on_stall``) and, unless ``allow_unconverged``, when ``max_iter`` is
    reached.
    """
    xp = disc.xp
    policy.reset()
    patience = policy.patience if patience is None else patience
    progress = None if patience is None else Progress(patience)
    floor = attainable_floor(disc.backend.dtype_name)
    if inexact is None:
        inexact = bool(getattr(policy, "inexact", False))
    m = xp.stack([disc.m0] * (disc.Nt + 1)) if m_init is None else m_init
    record = CouplingResult(u=None, m=m, converged=False, stopped_by="max_iter", iterations=0)
    timings = {"hjb": 0.0, "fp": 0.0, "residual": 0.0}
    for callback in callbacks:
        callback.on_start(max_iter, tol)
    try:
        for k in range(max_iter):
            forcing = FORCING * (record.residuals[-1] if record.residuals else 1.0) if inexact else None
            start = time.perf_counter()
            hjb = hjb_solver.hjb(disc, m, record.u, forcing)
            timings["hjb"] += time.perf_counter() - start
            start = time.perf_counter()
            fp_residual = (disc.fp_residual(hjb.u, m, hjb.steps) if hjb.fp_defect is None
                           else float(hjb.fp_defect))
            timings["residual"] += time.perf_counter() - start
            residual = max(fp_residual, hjb.residual)
            record.u, record.m, record.iterations = hjb.u, m, k + 1
            record.newton_iterations += hjb.newton_iterations
            first = record.residuals[0] if record.residuals else residual
            if residual != residual:
                raise SolverError(f"coupling iteration {k}: residual is NaN")
            if stop_on_stall and residual > 1e6 * max(first, tol):  # divergence
                record.stopped_by = "stalled"
                break
            if residual > 1e6 * max(first, tol):
                raise SolverError(
                    f"coupling iteration {k}: residual {residual:.3e} grew from "
                    f"{first:.3e}; the {policy.name} iteration diverges "
                    "(try a smaller damping)"
                )
            state = IterationState(k, residual, fp_residual, hjb.residual, hjb.u, m, max_iter, tol)
            if record.observe(state, callbacks):
                break
            if progress is not None and progress.update(residual):
                if progress.best <= floor:
                    record.stopped_by = "floor"
                    break
                if stop_on_stall:
                    record.stopped_by = "stalled"
                    break
            start = time.perf_counter()
            m_new = fp_solver.fp(disc, hjb.u, m, forcing, hjb.steps)
            timings["fp"] += time.perf_counter() - start
            if not bool(xp.all(xp.isfinite(m_new))):
                raise SolverError(f"coupling iteration {k}: FP produced non-finite densities")
            m = policy.update(m, m_new, k, record.residuals)
    finally:
        for callback in callbacks:
            callback.on_end(record.converged)
    record.timings = timings
    if not record.converged and record.stopped_by == "max_iter" and not allow_unconverged:
        raise SolverError(
            f"{policy.name} did not converge in max_iter={max_iter} iterations: residual "
            f"{record.residuals[-1]:.3e} > tol={tol:.1e} (coupling='auto' switches to Newton where "
            "this stalls; or raise max_iter, change damping, or pass allow_unconverged=True to get "
            "the flagged result)"
        )
    return record
