"""Preconditioned Krylov solvers written once against an array-API namespace ``xp``.

The operator and the preconditioner are callables on arrays of any shape (a grid field
``(*grid.shape)`` or a flat vector ``(n,)``); every step is a whole-array operation, so
the iteration runs where the arrays live (CPU, CUDA, MPS) with no host round trip other
than the scalar inner products that steer it.

``bicgstab`` is right-preconditioned BiCGStab (van der Vorst 1992): it solves
``A M^{-1} y = b``, ``x = M^{-1} y``, so the residual it monitors is the true residual
``b - A x`` of the original system. It stops when

    ||b - A x||_2 <= max(rtol ||b||_2, atol),

checks that bound once more on the explicitly recomputed residual (the recursively
updated one drifts by round-off), restarts from the current iterate when they
disagree, and raises ``SolverError`` with the iteration count when ``max_iter`` is spent.

``fgmres`` is flexible restarted GMRES (Saad 1993): the preconditioner may change from one
iteration to the next (an inner iterative solve, a time sweep with inexact spatial
blocks); the small Hessenberg least-squares problems are solved on the host.

``cyclic_tridiagonal`` extends a batched tridiagonal kernel to periodic lines
(Sherman-Morrison), which is what line preconditioners on periodic axes need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from mfg_rl.errors import SolverError

Operator = Callable[[Any], Any]


@dataclass(frozen=True)
class KrylovResult:
    """``x`` (shape of ``rhs``), its true residual ``b - A x``, and the iterations spent."""

    x: Any
    residual: Any
    iterations: int


def _dot(xp: Any, a: Any, b: Any) -> float:
    """``sum(a * b)`` over all entries, as a Python float.

    Elementwise product and sum rather than ``vecdot``/``vector_norm``: numpy sends those
    to threaded BLAS, which on a loaded machine costs milliseconds per call at n ~ 1e4.
    """
    return float(xp.sum(a * b))


def _norm(xp: Any, a: Any) -> float:
    return math.sqrt(_dot(xp, a, a))


def bicgstab(
    xp: Any,
    matvec: Operator,
    rhs: Any,
    *,
    precond: Operator | None = None,
    x0: Any = None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int = 500,
    max_restarts: int = 3,
) -> KrylovResult:
    """Solve ``A x = rhs`` by right-preconditioned BiCGStab.

    Args:
        xp: array-API namespace of ``rhs``.
        matvec: ``v -> A v`` on arrays shaped like ``rhs``.
        rhs: ``b``, any shape.
        precond: ``v -> M^{-1} v`` (``M ~ A`` cheap to invert, a fixed linear map);
            identity when None.
        x0: initial guess (zero when None).
        rtol, atol: stop when ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
        max_iter: total iterations (each costs two ``matvec`` and two ``precond``).
        max_restarts: restarts allowed when the recursive residual has drifted from
            the true one or the recurrence broke down (``rho = 0``).

    Returns:
        ``KrylovResult``; ``x`` and ``residual`` are shaped like ``rhs``.

    Raises:
        SolverError: non-finite residual, or the bound not met in ``max_iter`` iterations;
        the message gives the iteration count and the relative residual reached.
    """
    apply_m: Operator = precond if precond is not None else (lambda v: v)
    norm_b = _norm(xp, rhs)
    target = max(rtol * norm_b, atol)
    x = xp.zeros_like(rhs) if x0 is None else x0
    r = rhs if x0 is None else rhs - matvec(x)
    residual = _norm(xp, r)
    iteration, cycles = 0, 0
    while residual > target and math.isfinite(residual) and iteration < max_iter and cycles <= max_restarts:
        x, iteration = _bicgstab_cycle(xp, matvec, apply_m, x, r, target, iteration, max_iter)
        cycles += 1
        r = rhs - matvec(x)
        residual = _norm(xp, r)
    if residual <= target:
        return KrylovResult(x, r, iteration)
    raise not_converged(residual, norm_b, iteration, max(cycles - 1, 0), rtol, atol, max_iter)


def not_converged(residual: float, norm_b: float, iterations: int, restarts: int | None, rtol: float,
                  atol: float, max_iter: int) -> SolverError:
    """The ``SolverError`` of a BiCGStab solve that ended at ``||b - A x||_2 = residual`` above
    ``max(rtol ||b||_2, atol)`` after ``restarts`` restarts (None: not counted)."""
    why = "diverged (non-finite residual)" if not math.isfinite(residual) else "did not converge"
    restarted = "" if restarts is None else f" ({restarts} restarts)"
    return SolverError(
        f"BiCGStab {why} after {iterations} iterations{restarted}: relative residual "
        f"{residual / max(norm_b, 1e-300):.3e}, asked ||b - A x|| <= {max(rtol * norm_b, atol):.3e} "
        f"(rtol={rtol:g}, atol={atol:g}, max_iter={max_iter})"
    )


def _bicgstab_cycle(
    xp: Any, matvec: Operator, apply_m: Operator, x: Any, r: Any, target: float, iteration: int,
    max_iter: int,
) -> tuple[Any, int]:
    """BiCGStab from ``(x, r = b - A x)`` with shadow residual ``r``; returns ``(x, iteration)``.

    Returns when the recursive residual meets ``target``, on breakdown, or at ``max_iter``.
    """
    r_hat = r
    rho = alpha = omega = 1.0
    v = p = xp.zeros_like(r)
    while iteration < max_iter:
        iteration += 1
        rho_new = _dot(xp, r_hat, r)
        if rho_new == 0.0 or omega == 0.0:
            break
        beta = (rho_new / rho) * (alpha / omega)
        rho = rho_new
        p = r + beta * (p - omega * v)
        p_hat = apply_m(p)
        v = matvec(p_hat)
        r_hat_v = _dot(xp, r_hat, v)
        if r_hat_v == 0.0:
            break
        alpha = rho / r_hat_v
        s = r - alpha * v
        x = x + alpha * p_hat
        s_norm = _norm(xp, s)
        if s_norm <= target or not math.isfinite(s_norm):
            break
        s_hat = apply_m(s)
        t = matvec(s_hat)
        t_t = _dot(xp, t, t)
        omega = _dot(xp, t, s) / t_t if t_t > 0.0 else 0.0
        x = x + omega * s_hat
        r = s - omega * t
        r_norm = _norm(xp, r)
        if r_norm <= target or not math.isfinite(r_norm):
            break
    return x, iteration


def fgmres(
    xp: Any, matvec: Callable[[Any], Any], rhs: Any, precond: Callable[[Any], Any], *,
    rtol: float, restart: int, max_iter: int,
) -> tuple[Any, int]:
    """Flexible restarted GMRES (Saad 1993) for ``A x = rhs`` with a varying preconditioner.

    ``x = x0 + Z y`` with ``z_j = M_j^{-1} v_j`` and ``y`` minimising ``|beta e1 - H y|``.
    Arrays of any shape; returns ``(x, iterations)``. Raises ``SolverError`` when
    ``||rhs - A x|| <= rtol ||rhs||`` is not met in ``max_iter`` iterations.
    """
    def dot(a: Any, b: Any) -> float:
        return _dot(xp, a, b)

    target = rtol * math.sqrt(dot(rhs, rhs))
    x = xp.zeros_like(rhs)
    total = 0
    while True:
        r = rhs - matvec(x) if total else rhs
        beta = math.sqrt(dot(r, r))
        if beta <= target:
            return x, total
        if total >= max_iter or not math.isfinite(beta):
            raise SolverError(
                f"FGMRES did not converge in {total} iterations: relative residual "
                f"{beta / max(target / rtol, 1e-300):.3e} > rtol={rtol:.1e} (max_iter={max_iter})"
            )
        basis, directions = [r / beta], []
        hessenberg = np.zeros((restart + 1, restart))
        g = np.zeros(restart + 1)
        g[0] = beta
        y = np.zeros(0)
        for j in range(restart):
            z = precond(basis[j])
            v = matvec(z)
            directions.append(z)
            for i in range(j + 1):
                hessenberg[i, j] = dot(v, basis[i])
                v = v - hessenberg[i, j] * basis[i]
            hessenberg[j + 1, j] = math.sqrt(dot(v, v))
            total += 1
            y = np.linalg.lstsq(hessenberg[: j + 2, : j + 1], g[: j + 2], rcond=None)[0]
            estimate = float(np.linalg.norm(hessenberg[: j + 2, : j + 1] @ y - g[: j + 2]))
            if estimate <= 0.5 * target or hessenberg[j + 1, j] == 0.0 or total >= max_iter:
                break
            basis.append(v / hessenberg[j + 1, j])
        for coefficient, z in zip(y, directions, strict=True):
            x = x + float(coefficient) * z


def cyclic_tridiagonal(
    xp: Any, solve: Callable[[Any, Any, Any, Any], Any], lower: Any, diag: Any, upper: Any, rhs: Any
) -> Any:
    """Batched periodic tridiagonal solve by Sherman-Morrison (Numerical Recipes ``cyclic``).

    Row ``i`` reads ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1] = rhs[i]`` with indices
    mod ``n``: the corners are ``A[0, n-1] = lower[0]`` and ``A[n-1, 0] = upper[n-1]``.
    Shapes ``(..., n)`` (leading dimensions are a batch); ``solve`` is a batched
    non-periodic tridiagonal kernel (e.g. ``backend.solve_tridiagonal``), called once on
    a batch twice as large. Returns ``x`` of shape ``(..., n)``.
    """
    top_right, bottom_left = lower[..., :1], upper[..., -1:]
    gamma = -diag[..., :1]
    n = diag.shape[-1]
    index = xp.arange(n, device=array_device(diag))
    first = xp.reshape(index == 0, (1,) * (diag.ndim - 1) + (n,))
    last = xp.reshape(index == n - 1, first.shape)
    zeros = xp.zeros_like(diag)
    corner = bottom_left * top_right / gamma
    diag_mod = diag - xp.where(first, gamma + zeros, zeros) - xp.where(last, corner + zeros, zeros)
    u = xp.where(first, gamma + zeros, xp.where(last, bottom_left + zeros, zeros))
    both = solve(
        xp.stack([lower, lower]), xp.stack([diag_mod, diag_mod]),
        xp.stack([upper, upper]), xp.stack([rhs + zeros, u]),
    )
    x, z = both[0], both[1]
    factor = (x[..., :1] + top_right * x[..., -1:] / gamma) / (
        1.0 + z[..., :1] + top_right * z[..., -1:] / gamma
    )
    return x - factor * z


def bicgstab_while(
    xp: Any,
    while_loop: Callable[[Callable[[Any], Any], Callable[[Any], Any], Any], Any],
    matvec: Operator,
    rhs: Any,
    *,
    precond: Operator | None = None,
    x0: Any = None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int = 500,
    max_restarts: int = 3,
    restart_loop: Callable[[Callable[[Any], Any], Callable[[Any], Any], Any], Any] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """``bicgstab`` with its loops written as ``while_loop(cond, body, state)``, so that it traces.

    The same iteration, restarts and stopping rule, steered by 0-d arrays instead of host
    floats: with ``jax.lax.while_loop`` the solve compiles into the caller's program (no host
    round trip); with ``step_newton.Chunked(xp, k)`` eager arrays are read once every ``k``
    iterations. A branch that ``bicgstab`` takes with ``break`` is a masked update here.
    ``restart_loop`` runs the loop over restarts (default ``while_loop``; ``Chunked(xp, 1)``
    under a ``Chunked`` iteration, whose masked restarts would each cost a whole cycle).

    Returns:
        ``(x, residual, iterations, converged)``: ``x`` and ``b - A x`` shaped like ``rhs``,
        the iteration count and whether ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` (0-d
        arrays; a caller inside a trace cannot raise, it must report ``converged``).
    """
    apply_m: Operator = precond if precond is not None else (lambda v: v)

    def dot(a: Any, b: Any) -> Any:
        return xp.sum(a * b)

    norm_b = xp.sqrt(dot(rhs, rhs))
    target = xp.maximum(rtol * norm_b, atol)
    x = xp.zeros_like(rhs) if x0 is None else x0
    r = rhs if x0 is None else rhs - matvec(x)
    zero = xp.zeros_like(norm_b)  # scalars where the arrays live (a device, or a trace)
    one = zero + 1.0
    count, false = xp.zeros_like(norm_b, dtype=xp.int32), xp.zeros_like(norm_b, dtype=xp.bool)

    def cycle(x: Any, r: Any, iteration: Any) -> tuple[Any, Any]:
        def going(s: tuple) -> Any:
            return (~s[-1]) & (s[-2] < max_iter)

        def step(s: tuple) -> tuple:
            x, r, p, v, rho, alpha, omega, it, _ = s
            it = it + 1
            rho_new = dot(r0, r)
            broken = (rho_new == 0.0) | (omega == 0.0)
            beta = (rho_new / xp.where(broken, one, rho)) * (alpha / xp.where(broken, one, omega))
            p = r + beta * (p - omega * v)
            p_hat = apply_m(p)
            v = matvec(p_hat)
            r0_v = dot(r0, v)
            broken = broken | (r0_v == 0.0)
            alpha = rho_new / xp.where(broken, one, r0_v)
            s_ = r - alpha * v
            x_half = x + alpha * p_hat
            s_norm = xp.sqrt(dot(s_, s_))
            half = (s_norm <= target) | ~xp.isfinite(s_norm)
            s_hat = apply_m(s_)
            t = matvec(s_hat)
            t_t = dot(t, t)
            omega = xp.where(t_t > 0.0, dot(t, s_) / xp.where(t_t > 0.0, t_t, one), zero)
            x_full = x_half + omega * s_hat
            r_full = s_ - omega * t
            r_norm = xp.sqrt(dot(r_full, r_full))
            done = broken | half | (r_norm <= target) | ~xp.isfinite(r_norm)
            x = xp.where(broken, x, xp.where(half, x_half, x_full))
            r = xp.where(broken | half, r, r_full)
            return x, r, p, v, rho_new, alpha, omega, it, done

        r0 = r
        state = (x, r, xp.zeros_like(r), xp.zeros_like(r), one, one, one, iteration, false)
        out = while_loop(going, step, state)
        return out[0], out[-2]

    def unfinished(s: tuple) -> Any:
        _, _, residual, iteration, cycles = s
        return (residual > target) & xp.isfinite(residual) & (iteration < max_iter) & (cycles <= max_restarts)

    def restart(s: tuple) -> tuple:
        x, r, _, iteration, cycles = s
        x, iteration = cycle(x, r, iteration)
        r = rhs - matvec(x)
        return x, r, xp.sqrt(dot(r, r)), iteration, cycles + 1

    state = (x, r, xp.sqrt(dot(r, r)), count, count)
    x, r, residual, iteration, _ = (restart_loop or while_loop)(unfinished, restart, state)
    return x, r, iteration, residual <= target
