"""``JaxScan``: the time marching of ``Sequential``, compiled by XLA (optional extra ``mfg-rl[jax]``).

The same discrete equations as ``Sequential`` (``DiscreteMFG``, ``UpwindOperator``,
``StencilSolver`` traced with ``jax.numpy`` as the array namespace), but each whole
trajectory is one compiled program:

- HJB: ``lax.scan`` backward over time levels; per step a ``lax.while_loop`` Newton with the
  exact Jacobian, stopping on ``dt max|R| <= newton_tol (1 + max|u^{n+1}|)`` (the Sequential
  test) or after ``max_newton`` updates; a per-step status code becomes a ``SolverError``
  outside the compiled program.
- FP: ``lax.scan`` forward with the transposed step matrices ``J_n^T``.
- the coupled FP residual, compiled too.

The coupling loop (``run_coupling``: damping, Anderson, callbacks, stopping) stays in
Python and drives the compiled sweeps: one dispatch per sweep, so Python's per-operation
overhead disappears. Programs are compiled ahead of time (``jit(...).lower(...).compile()``),
timed (``Diagnostics.timings["compile"]``) and kept in a small per-process cache keyed by the
problem's fingerprint and the Newton options: a second solve of the same problem reuses them.

1D and 2D grids (no-flux, exit and periodic boundaries; 3D raises ``NotImplementedError``).
2D linear solves are ``StencilSolver``'s zebra BiCGStab traced too (``krylov.bicgstab_while``:
the same iteration steered by 0-d arrays in ``lax.while_loop``); one that misses its
tolerance returns NaN, which the step's status turns into a ``SolverError``. On a CPU they
are not faster than the numpy path (XLA's batched tridiagonal solve is ~0.2 ms per zebra
half-sweep at 128x128, numba's whole iteration ~0.1 ms): the 2D scan is for accelerators
and for one compiled program, not for CPU speed.

Example:
    >>> from mfg_rl import problems, solve
    >>> eq = solve(problems.make("lq-1d", Nx=51, Nt=10), method="jax-scan", progress=False)
    >>> eq.diagnostics.converged, "compile" in eq.diagnostics.timings
    (True, True)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem
from mfg_rl.errors import SolverError
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix
from mfg_rl.solvers.trajectory import HJBResult

INSTALL = 'method="jax-scan" needs jax: pip install "mfg-rl[jax]"'

# Newton status codes of one HJB step (checked in this order, as in DiscreteMFG.hjb_step)
RUNNING, CONVERGED, NON_FINITE, EXHAUSTED = 0, 1, 2, 3

CACHE_SIZE = 8
_PROGRAMS: OrderedDict[tuple, Programs] = OrderedDict()


def import_jax() -> Any:
    """jax with 64-bit floats enabled, or ImportError saying how to install it."""
    try:
        from mfg_rl.backends.jax_backend import import_jax as _import
        return _import()
    except ImportError as exc:
        raise ImportError(INSTALL) from exc


@dataclass
class Programs:
    """The compiled sweeps of one discrete problem and the seconds spent compiling them."""

    hjb: Any
    fp: Any
    summary: Any
    compile_seconds: float


def _key(disc: DiscreteMFG) -> tuple:
    """Problem fingerprint and Newton options, computed once per ``disc`` (hashing costs time)."""
    key = disc.__dict__.get("_jax_scan_key")
    options = (disc.newton_tol, disc.max_newton, disc.linear.rtol, disc.linear.max_iter)
    if key is None or key[1:5] != options:
        backend = disc.backend
        key = (disc.problem.fingerprint(), *options, backend.dtype_name, backend.device, type(disc).__name__)
        disc.__dict__["_jax_scan_key"] = key
    return key


def programs(disc: DiscreteMFG) -> tuple[Programs, bool]:
    """The compiled sweeps for ``disc``, from the cache or freshly compiled; ``(programs, cached)``."""
    key = _key(disc)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key], True
    found = compile_programs(disc)
    _PROGRAMS[key] = found
    while len(_PROGRAMS) > CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return found, False


def clear_cache() -> None:
    """Forget every compiled program (the next solve compiles again)."""
    _PROGRAMS.clear()


def compile_programs(disc: DiscreteMFG) -> Programs:
    """Trace and compile the HJB sweep, FP sweep and FP residual of ``disc`` (ahead of time)."""
    jax = import_jax()
    if disc.backend.name != "jax":
        raise ValueError(f"JaxScan needs a DiscreteMFG on the jax backend, got {disc.backend.name!r}")
    if disc.problem.grid.ndim > 2:
        raise NotImplementedError(
            f'method="jax-scan" supports 1D and 2D grids; this grid is {disc.problem.grid.ndim}D: '
            'use method="sequential" or "global-krylov"'
        )
    field = jax.ShapeDtypeStruct((disc.Nt + 1, *disc.problem.grid.shape), disc.backend.dtype)
    flag = jax.ShapeDtypeStruct((), bool)
    floor = jax.ShapeDtypeStruct((), disc.backend.dtype)
    start = time.perf_counter()
    hjb = jax.jit(_hjb_sweep(disc)).lower(field, field, flag, floor).compile()
    fp = jax.jit(_fp_sweep(disc)).lower(field, field).compile()
    summary = jax.jit(lambda u, m: (DiscreteMFG.outflow(disc, u, m), DiscreteMFG.mass(disc, m)))
    return Programs(hjb, fp, summary.lower(field, field).compile(), time.perf_counter() - start)


# -- the traced sweeps (jax.numpy through disc.xp; the scheme is DiscreteMFG's) --------------
def _hjb_sweep(disc: DiscreteMFG) -> Any:
    """``(m, u_guess, use_guess, floor) -> (u, (newton its, residual, status) per level, fp defect)``.

    Newton stops at ``dt max|R| <= max(newton_tol (1 + max|u^{n+1}|), floor)``; ``floor`` is
    the coupling loop's forcing (``DiscreteMFG.forcing``), 0 for exact steps.
    The FP defect of ``(u, m)`` (``DiscreteMFG.fp_defect``, the coupled residual's FP part)
    comes out of the same program: it is what the coupling loop asks for next.
    """
    import jax
    from jax import lax

    xp, dt, problem = disc.xp, disc.dt, disc.problem
    tol, cap = disc.newton_tol, disc.max_newton

    def newton(u_next: Any, w: Any, f: Any, start: Any, floor: Any) -> tuple[Any, Any, Any, Any]:
        target = xp.maximum(tol * (1.0 + xp.max(xp.abs(u_next))), floor)

        def residual(u: Any) -> tuple[Any, tuple, Any]:
            value, jac = disc.operator.apply(u, w)
            r = (u - u_next) / dt + value - f
            return r, (jac.center + 1.0 / dt, jac.minus, jac.plus), xp.max(xp.abs(r)) * dt

        def status(error: Any, k: Any) -> Any:
            return xp.where(~xp.isfinite(error), NON_FINITE,
                            xp.where(error <= target, CONVERGED, xp.where(k >= cap, EXHAUSTED, RUNNING)))

        def body(carry: tuple) -> tuple:
            k, u, r, jac, _, _ = carry
            u = u - disc.linear.solve(StencilMatrix(*jac), r)
            r, jac, error = residual(u)
            return k + 1, u, r, jac, error, status(error, k + 1)

        r, jac, error = residual(start)
        carry = (xp.asarray(0), start, r, jac, error, status(error, 0))
        k, u, _, _, error, code = lax.while_loop(lambda c: c[-1] == RUNNING, body, carry)
        return u, k, error, code

    def sweep(m: Any, u_guess: Any, use_guess: Any, floor: Any) -> tuple[Any, Any, Any, Any]:
        def cost(m_n: Any) -> Any:
            return problem.evaluate_cost(problem.running_cost, m_n, disc.points)

        f = jax.vmap(cost)(m[1:])
        w = disc.weight(m[1:])
        u_T = disc.terminal_cost(m[-1])

        def step(u_next: Any, level: tuple) -> tuple[Any, tuple]:
            w_n, f_n, guess_n = level
            u, k, error, code = newton(u_next, w_n, f_n, xp.where(use_guess, guess_n, u_next), floor)
            return u, (u, k, error, code)

        _, (u, k, error, code) = lax.scan(step, u_T, (w, f, u_guess[:-1]), reverse=True)
        u = xp.concat([u, u_T[None]])
        return u, k, error, code, disc.fp_defect(u, m)

    return sweep


def _fp_sweep(disc: DiscreteMFG) -> Any:
    """``(u, m) -> m_new``: ``m^0 = m0``, ``J_n^T m^{n+1} = m^n / dt`` marched forward."""
    from jax import lax

    xp = disc.xp

    def sweep(u: Any, m: Any) -> Any:
        matrices = disc.fp_matrices(u, m)

        def step(m_prev: Any, matrix: tuple) -> tuple[Any, Any]:
            m_next = disc.fp_step(StencilMatrix(*matrix), m_prev)
            return m_next, m_next

        _, levels = lax.scan(step, disc.m0, (matrices.center, matrices.minus, matrices.plus))
        return xp.concat([disc.m0[None], levels])

    return sweep


# -- the strategy ---------------------------------------------------------------------------
class ScanMFG(DiscreteMFG):
    """``DiscreteMFG`` on the jax backend whose residual, outflow and mass run compiled.

    ``fp_residual(u, m)`` right after ``JaxScan.hjb`` returned ``u`` for ``m`` is the defect
    that sweep computed; other arguments go through a jitted ``fp_defect``. (Op-by-op jax
    compiles every operation on first use: seconds for ``outflow`` alone.)
    """

    last: tuple[Any, Any, Any] | None = None  # (u, m, fp defect) of the last HJB sweep
    _defect: Any = None

    def fp_residual(self, u: Any, m: Any) -> float:
        if self.last is not None and self.last[0] is u and self.last[1] is m:
            return float(self.last[2])
        if self._defect is None:
            import jax

            self._defect = jax.jit(self.fp_defect)
        return float(self._defect(u, m))

    def outflow(self, u: Any, m: Any) -> Any:
        return programs(self)[0].summary(u, m)[0]

    def mass(self, m: Any) -> Any:
        return programs(self)[0].summary(m, m)[1]


class JaxScan:
    """Trajectory solver: ``Sequential``'s marching as compiled ``lax.scan`` sweeps (jax, x64).

    ``solve(problem, method="jax-scan")`` runs on the jax backend (``backend=None`` picks it;
    another backend raises ValueError). ``timings["compile"]`` holds the seconds spent
    compiling in this solve (0 when the programs came from the cache).

    Attributes:
        timings: ``{"compile": seconds}`` of the programs this solver compiled.
        cached: whether the last programs came from the cache.
    """

    name = "jax-scan"
    backend = "jax"

    def __init__(self) -> None:
        import_jax()
        self.timings: dict[str, float] = {"compile": 0.0}
        self.cached = False

    def discretise(self, problem: MFGProblem, backend: Backend, **options: Any) -> ScanMFG:
        """The discrete problem on ``backend`` (must be jax), with its programs compiled now."""
        if backend.name != "jax":
            raise ValueError(
                f'method="jax-scan" runs on the jax backend, got backend={backend.name!r}: '
                'pass backend="jax" or None'
            )
        disc = ScanMFG(problem, backend, **options)
        self._programs(disc)
        return disc

    def _programs(self, disc: DiscreteMFG) -> Programs:
        found, self.cached = programs(disc)
        if not self.cached:
            self.timings["compile"] += found.compile_seconds
        return found

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None) -> HJBResult:
        program = self._programs(disc).hjb
        xp = disc.xp
        use_guess = xp.asarray(u_guess is not None)
        floor = xp.asarray(0.0 if disc.forcing is None else disc.forcing * disc.forcing_scale,
                           dtype=m.dtype)
        u, k, error, code, defect = program(m, m if u_guess is None else u_guess, use_guess, floor)
        if isinstance(disc, ScanMFG):
            disc.last = (u, m, defect)
        k, error, code = (np.asarray(a) for a in (k, error, code))
        failed = np.flatnonzero(code != CONVERGED)
        if failed.size:
            n = int(failed[-1])  # the first failure in marching order (backward in time)
            if code[n] == NON_FINITE:
                raise SolverError(f"HJB Newton produced non-finite values at time index n={n} (non-finite "
                                  "input, or a 2D linear solve that missed its tolerance)")
            raise SolverError(
                f"HJB Newton did not converge at time index n={n}: residual {float(error[n]):.3e} after "
                f"{disc.max_newton} iterations (tolerance {disc.newton_tol:.1e} x (1 + max|u^(n+1)|))"
            )
        return HJBResult(u, int(k.sum()), float(error.max()))

    def fp(self, disc: DiscreteMFG, u: Any, m: Any) -> Any:
        return self._programs(disc).fp(u, m)
