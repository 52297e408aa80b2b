"""``JaxScan``: the time marching of ``Sequential``, compiled by XLA (optional extra ``mfg-rl[jax]``).

The same discrete equations as ``Sequential`` (``DiscreteMFG``, ``NumericalHamiltonian``,
``StencilSolver`` traced with ``jax.numpy`` as the array namespace), but each whole
trajectory is one compiled program:

- HJB: ``lax.scan`` backward over time levels; per step the one Newton of every strategy
  (``step_newton.newton``, the Sequential stopping rule) traced in ``lax.while_loop``; a
  per-step status code becomes a ``SolverError`` outside the compiled program.
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
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix
from mfg_rl.solvers.step_newton import CONVERGED, newton, raise_for_status
from mfg_rl.solvers.trajectory import HJBResult

INSTALL = 'method="jax-scan" needs jax: pip install "mfg-rl[jax]"'


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
    _register_stencil(jax)
    field = jax.ShapeDtypeStruct((disc.Nt + 1, *disc.problem.grid.shape), disc.backend.dtype)
    flag = jax.ShapeDtypeStruct((), bool)
    forcing = jax.ShapeDtypeStruct((), disc.backend.dtype)
    start = time.perf_counter()
    hjb = jax.jit(_hjb_sweep(disc)).lower(field, field, flag, forcing).compile()
    fp = jax.jit(_fp_sweep(disc)).lower(field, field).compile()
    summary = jax.jit(lambda u, m: (DiscreteMFG.outflow(disc, u, m), DiscreteMFG.mass(disc, m)))
    return Programs(hjb, fp, summary.lower(field, field).compile(), time.perf_counter() - start)


def _register_stencil(jax: Any) -> None:
    """Let ``StencilMatrix`` travel through ``lax`` loops (a pytree of its three fields)."""
    try:
        jax.tree_util.register_pytree_node(
            StencilMatrix, lambda a: ((a.center, a.minus, a.plus), None),
            lambda _, fields: StencilMatrix(*fields))
    except ValueError:  # registered by an earlier compile
        pass


# -- the traced sweeps (jax.numpy through disc.xp; the scheme is DiscreteMFG's) --------------
def _hjb_sweep(disc: DiscreteMFG) -> Any:
    """``(m, u_guess, use_guess, forcing) -> (u, (newton its, residual, status) per level, fp defect)``.

    Each step is ``step_newton.newton`` traced in ``lax.while_loop``, with the target and
    round-off floor of ``DiscreteMFG.step_target`` (``forcing`` 0 for exact steps).
    The FP defect of ``(u, m)`` (``DiscreteMFG.fp_defect``, the coupled residual's FP part)
    comes out of the same program: it is what the coupling loop asks for next.
    """
    import jax
    from jax import lax

    xp, problem = disc.xp, disc.problem

    def solve(jac: StencilMatrix, r: Any, error: Any) -> Any:
        return disc.linear.solve(jac, r)

    def sweep(m: Any, u_guess: Any, use_guess: Any, forcing: Any) -> tuple[Any, Any, Any, Any]:
        def cost(m_n: Any) -> Any:
            return problem.evaluate_cost(problem.running_cost, m_n, disc.points)

        f = jax.vmap(cost)(m[1:])
        u_T = disc.terminal_cost(m[-1])

        def step(u_next: Any, level: tuple) -> tuple[Any, tuple]:
            m_n, f_n, guess_n = level
            target, floor = disc.step_target(u_next, f_n, forcing)
            start = xp.where(use_guess, guess_n, u_next)
            out = newton(xp, disc.step_residual(u_next, m_n, f_n), solve, start, target=target, floor=floor,
                         max_iter=disc.max_newton, loop=lax.while_loop)
            return out.u, (out.u, out.iterations, out.error, out.status)

        _, (u, k, error, code) = lax.scan(step, u_T, (m[1:], f, u_guess[:-1]), reverse=True)
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

    The coupling loop takes the FP defect from ``JaxScan.hjb``'s result (its sweep computes
    it); ``fp_residual`` of other arguments goes through a jitted ``fp_defect``. (Op-by-op
    jax compiles every operation on first use: seconds for ``outflow`` alone.)
    """

    _defect: Any = None

    def fp_residual(self, u: Any, m: Any, steps: Any = None) -> float:
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

    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        program = self._programs(disc).hjb
        xp = disc.xp
        use_guess = xp.asarray(u_guess is not None)
        u, k, error, code, defect = program(m, m if u_guess is None else u_guess, use_guess,
                                            xp.asarray(forcing or 0.0, dtype=m.dtype))
        k, error, code = (np.asarray(a) for a in (k, error, code))
        failed = np.flatnonzero(code != CONVERGED)
        if failed.size:
            n = int(failed[-1])  # the first failure in marching order (backward in time)
            raise_for_status(int(code[n]), float(error[n]), f"at time index n={n}", disc.max_newton,
                             f"{disc.newton_tol:.1e} x (1 + max|u^(n+1)|)")
        return HJBResult(u, int(k.sum()), float(error.max()), fp_defect=defect)

    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None) -> Any:
        return self._programs(disc).fp(u, m)
