"""The Newton iteration of implicit HJB steps, written once for every strategy and backend.

Newton on ``R(u) = 0`` with the exact Jacobian: ``u <- u - J(u)^{-1} R(u)``. One stopping
rule for all: stop (converged) when ``error(u) <= target`` or when the correction is
round-off (``max|du| <= floor``: nothing more is attainable, e.g. ``newton_tol=1e-30``); stop
(failed) on a non-finite error or after ``max_iter`` corrections. The loop is a primitive
handed in, and the status is a 0-d array code whichever it is:

- ``python_loop``: the host reads the status once per iteration (arrays on the host, where
  that is free);
- ``Unrolled(rounds)``: ``rounds`` iterations with no host look of Newton's own (arrays on an
  accelerator: ``DiscreteMFG.unrolled_newton``; a 2D step's Krylov solves read theirs); the body is masked,
  ``u <- where(running, u - du, u)`` with ``du`` solving ``J du = where(running, R, 0)``, so a
  step that stopped stays exactly where it stopped and its linear solve has nothing to do (a
  Krylov solve stops before its first iteration), and one still ``RUNNING`` afterwards is
  resumed by ``newton(..., iterations=k)`` under ``python_loop`` on the same path (the host
  looks once per sweep, not per iteration);
- ``jax.lax.while_loop`` inside compiled sweeps (the same body traces).

``Chunked(xp, k)`` (any body, masked by the loop) reads the status once every ``k`` iterations:
the off-host 2D Krylov solves (``StencilSolver``) run ``krylov.bicgstab_while`` under it.

An optional backtracking line search halves a correction until the error decreases (the
whole-horizon Newton of ``GlobalSpacetime`` uses it; not with ``Unrolled``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mfg_rl.errors import SolverError

RUNNING, CONVERGED, NON_FINITE, EXHAUSTED = 0, 1, 2, 3
ROUND_OFF = 16  # a correction below this many eps of the solution's scale is round-off
LINE_SEARCH_HALVINGS = 20

Residual = Callable[[Any], tuple[Any, Any, Any]]  # u -> (R(u), J(u), error(u) as a 0-d array)
LinearSolve = Callable[[Any, Any, Any], Any]  # (J, R, error) -> du with J du = R
Loop = Callable[[Callable[[tuple], Any], Callable[[tuple], tuple], tuple], tuple]


def python_loop(cond: Callable[[tuple], Any], body: Callable[[tuple], tuple], carry: tuple) -> tuple:
    """``while cond(carry): carry = body(carry)`` on the host (the ``lax.while_loop`` contract)."""
    while bool(cond(carry)):
        carry = body(carry)
    return carry


class Unrolled:
    """``rounds`` calls of ``body``, ``cond`` never read: no host look. For bodies that leave a
    carry whose ``cond`` is false unchanged (``newton``'s masked body), this is ``python_loop``
    stopped after ``rounds`` iterations, status still on the device."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def __call__(self, cond: Callable[[tuple], Any], body: Callable[[tuple], tuple], carry: tuple) -> tuple:
        for _ in range(self.rounds):
            carry = body(carry)
        return carry


class Chunked:
    """``python_loop`` that reads ``cond`` on the host once per chunk of calls of ``body``: a first
    chunk of ``first`` calls (default ``every``), then chunks of ``every``.

    Between reads each call is masked leaf by leaf, ``carry <- where(cond(carry), body(carry),
    carry)``, so a carry that finished inside a chunk stays exactly as it finished (any body,
    unlike ``Unrolled``; the leaves are arrays of ``xp``). ``cond`` is not read before the first
    chunk: a carry finished on entry costs ``first`` masked calls and one read. A loop of ``n``
    iterations reads the host ``1 + ceil(max(0, n - first) / every)`` times; same final carry as
    ``python_loop`` whatever the chunks (its bodies are free of side effects).
    """

    def __init__(self, xp: Any, every: int, first: int | None = None) -> None:
        if every < 1 or (first is not None and first < 1):
            raise ValueError(f"every and first must be >= 1, got {every} and {first}")
        self.xp, self.every = xp, every
        self.first = every if first is None else first

    def __call__(self, cond: Callable[[tuple], Any], body: Callable[[tuple], tuple], carry: tuple) -> tuple:
        where = self.xp.where

        def masked(c: tuple) -> tuple:
            going = cond(c)
            return tuple(where(going, new, old) for new, old in zip(body(c), c, strict=True))

        chunk = self.first
        while True:
            for _ in range(chunk):
                carry = masked(carry)
            if not bool(cond(carry)):
                return carry
            chunk = self.every


def round_off_floor(xp: Any, dtype: Any, scale: Any) -> Any:
    """The smallest meaningful correction of a solution of size ``scale``."""
    return ROUND_OFF * xp.finfo(dtype).eps * scale


@dataclass
class NewtonOutcome:
    """Where Newton stopped: ``u``, the Jacobian ``J(u)``, the error there, corrections taken
    and the status code (``CONVERGED``, ``NON_FINITE`` or ``EXHAUSTED``, or ``RUNNING`` after
    an ``Unrolled`` loop; 0-d arrays or ints)."""

    u: Any
    jacobian: Any
    error: Any
    iterations: Any
    status: Any


def newton(xp: Any, residual: Residual, solve: LinearSolve, start: Any, *, target: Any, floor: Any,
           max_iter: int, loop: Loop = python_loop, line_search: bool = False,
           iterations: Any = None) -> NewtonOutcome:
    """Newton from ``start`` under the one stopping rule (module docstring).

    ``residual(u) -> (R, J, error)``; ``solve(J, R, error) -> du``; ``target`` and ``floor``
    are numbers or 0-d arrays; ``loop`` runs ``(cond, body, carry)``. Batched ``u`` works when
    ``error`` is the batch's worst. ``iterations``: corrections already taken (resuming a
    ``RUNNING`` outcome from its ``u`` continues exactly where it stopped).
    """
    if line_search and isinstance(loop, Unrolled):
        raise ValueError("line_search needs a loop that reads its condition, not Unrolled")

    def status(error: Any, k: Any, done: Any) -> Any:
        return xp.where(~xp.isfinite(error), NON_FINITE,
                        xp.where((error <= target) | done, CONVERGED,
                                 xp.where(k >= max_iter, EXHAUSTED, RUNNING)))

    masked = isinstance(loop, Unrolled)  # other loops stop at the first carry that is not RUNNING

    def body(carry: tuple) -> tuple:
        k, u, r, jac, error, code = carry
        running = code == RUNNING
        du = solve(jac, xp.where(running, r, 0.0) if masked else r, error)  # masked: nothing to solve
        done = xp.max(xp.abs(du)) <= floor  # u is as exact as it gets
        if line_search:
            du = _backtrack(xp, residual, u, du, error, target, loop)
        if not masked:
            u = u - du
            r, jac, error = residual(u)
            return k + 1, u, r, jac, error, status(error, k + 1, done)
        u = xp.where(running, u - du, u)
        r, jac, error = residual(u)  # unchanged u: the same r, J and error, bit for bit
        k = k + xp.astype(running, xp.int32)
        return k, u, r, jac, error, xp.where(running, status(error, k, done), code)

    r, jac, error = residual(start)
    k = xp.zeros_like(error, dtype=xp.int32)  # where the error lives (a device, or a trace)
    if iterations is not None:
        k = k + iterations
    carry = (k, start, r, jac, error, status(error, k, error != error))
    k, u, _, jac, error, code = loop(lambda c: c[-1] == RUNNING, body, carry)
    return NewtonOutcome(u, jac, error, k, code)


def _backtrack(xp: Any, residual: Residual, u: Any, du: Any, error: Any, target: Any, loop: Loop) -> Any:
    """``du`` halved until ``error(u - du) < error`` or ``<= target`` (at most 20 halvings)."""

    def worse(carry: tuple) -> Any:
        i, step = carry
        trial = residual(u - step)[2]
        return (i < LINE_SEARCH_HALVINGS) & ~((trial < error) | (trial <= target))

    return loop(worse, lambda c: (c[0] + 1, 0.5 * c[1]), (xp.zeros_like(error, dtype=xp.int32), du))[1]


def raise_for_status(status: int, error: float, where: str, max_iter: int, target: str,
                     hint: Callable[[], str] | None = None) -> None:
    """``SolverError`` for a failed Newton (``status`` from ``newton``), naming ``where``;
    ``hint()`` (called only on failure) adds what may cause it."""
    if status == NON_FINITE:
        raise SolverError(f"HJB Newton produced non-finite values {where} (non-finite input, or a "
                          "2D linear solve that missed its tolerance)")
    if status == EXHAUSTED:
        cause = hint() if hint is not None else ""
        raise SolverError(f"HJB Newton did not converge {where}: residual {error:.3e} after {max_iter} "
                          f"iterations (tolerance {target}){'; ' + cause if cause else ''}")
