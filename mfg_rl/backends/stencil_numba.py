"""One compiled call for a whole zebra-preconditioned BiCGStab solve of a 2D 5-point system.

The numpy path (``mfg_rl.backends.krylov.bicgstab`` with the zebra preconditioner of
``StencilSolver``) spends most of its time in per-operation overhead: ~40 numpy calls per
iteration on arrays of 1e3..1e5 entries. ``bicgstab_zebra_2d`` runs the same iteration as
one numba kernel on the host:

    (A x)_{ij} = center x_{ij} + minus0 x_{i-1,j} + plus0 x_{i+1,j} + minus1 x_{i,j-1} + plus1 x_{i,j+1}

with the same right preconditioner (lines along axis 1, even lines ``z = T^{-1} r`` first,
then odd lines ``z = T^{-1} (r - minus0 z_{i-1} - plus0 z_{i+1})``), the same stopping rule
``||b - A x||_2 <= max(rtol ||b||_2, atol)`` checked on the recomputed residual, and the
same restarts. The line tridiagonals are factorised once per solve (Thomas, no pivoting:
the matrices are diagonally dominant M-matrices).

The kernel works on a red-black, transposed copy of the arrays (the lines of one colour
side by side), so that each line sweep, the stencil and the vector updates are
contiguous loops the compiler vectorises; inner products are summed per column (no
reassociation, no ``fastmath``) and fused into the loops that form their operands. Work
arrays are kept per thread and shape (fresh ones cost page faults worth a whole solve).
Measured against the numpy path on crowd-2d Fokker-Planck steps (``benchmarks/stencil_solve.py``,
one core): 8x at 32x32 and 64x64, 7x at 128x128 and 256x256, same iteration counts +-2.

Serial on purpose. ``parallel=True`` (numba's OpenMP layer, 2 threads) was measured per
kernel: the stencil product gains at 128x128 (20 -> 12 us) but not at 64x64 (4.8 -> 4.7),
the line solves lose at both (9 -> 13 us, 33 -> 42 us: half-length vectors per thread
plus the fork/join), and vector updates lose at 64x64 (2.1 -> 3.1 us); with ~10 parallel
regions per iteration the whole solve would not gain enough to pay for threads that the
rest of the program (torch, other processes) competes for.

numba is an optional dependency (``mfg-rl[numba]``): it is imported on first use, and the
kernels are compiled once per dtype (float32, float64) and cached on disk (first compile
~15 s; loading the cache ~0.5 s per process).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.backends.krylov import KrylovResult
from mfg_rl.errors import SolverError
from mfg_rl.paths import default_cache_dir


@functools.cache
def available() -> bool:
    """Whether numba can be imported (the kernels then compile on first use)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def bicgstab_zebra_2d(
    center: Any, minus0: Any, plus0: Any, minus1: Any, plus1: Any, rhs: Any, x0: Any = None, *,
    periodic0: bool, rtol: float = 1e-10, atol: float = 0.0, max_iter: int = 500,
    max_restarts: int = 3, transposed: bool = False,
) -> KrylovResult:
    """Solve the 2D 5-point system ``A x = rhs`` by zebra-preconditioned BiCGStab, compiled.

    Args:
        center, minus0, plus0, minus1, plus1: coefficients, numpy arrays of shape
            ``(n0, n1)``. Those that would leave the box are ignored (they must be zero),
            except that axis 0 wraps when ``periodic0``; axis 1 is never periodic.
        rhs: ``b``, shape ``(n0, n1)``.
        x0: initial guess (zero when None).
        periodic0: whether axis 0 is periodic.
        rtol, atol, max_iter, max_restarts: as in ``mfg_rl.backends.krylov.bicgstab``.
        transposed: every array (inputs, ``x``, ``residual``) is given and returned
            transposed, shape ``(n1, n0)``: the kernel reads them in that order while it
            copies them into its layout, so a caller whose lines run along its axis 0 needs
            no transposed copies.

    Returns:
        ``KrylovResult`` with numpy ``x`` and ``residual = b - A x`` of shape ``(n0, n1)`` in
        the inputs' dtype (float32 or float64; scalars and inner products in float64).

    Raises:
        SolverError: as ``bicgstab``: non-finite residual or the bound not met in
        ``max_iter`` iterations, with the iteration count.

    Example:
        >>> import numpy as np
        >>> c, o = np.full((4, 5), 4.0), np.full((4, 5), -1.0)
        >>> ends = [o.copy() for _ in range(4)]
        >>> ends[0][0], ends[1][-1], ends[2][:, 0], ends[3][:, -1] = 0, 0, 0, 0
        >>> res = bicgstab_zebra_2d(c, *ends, np.ones((4, 5)), periodic0=False, rtol=1e-12)
        >>> res.x.shape, bool(np.linalg.norm(res.residual) <= 1e-12 * np.sqrt(20))
        ((4, 5), True)
    """
    arrays = (center, minus0, plus0, minus1, plus1, rhs) + (() if x0 is None else (x0,))
    dtype = np.result_type(*arrays)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    c, m0, p0, m1, p1, b = (np.ascontiguousarray(a, dtype=dtype) for a in arrays[:6])
    if c.ndim != 2 or any(a.shape != c.shape for a in (m0, p0, m1, p1, b)):
        raise ValueError(f"expected arrays of one shape (n0, n1), got {[np.shape(a) for a in arrays]}")
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=dtype, order="C", copy=True)
    if x.shape != b.shape:
        raise ValueError(f"x0 has shape {x.shape}, expected {b.shape}")
    r = np.empty_like(b)
    work = _workspace(b.shape[::-1] if transposed else b.shape, dtype)
    iteration, cycles, residual, norm_b, target = _compiled()(
        c, m0, p0, m1, p1, b, x, r, work, x0 is not None, bool(periodic0), float(rtol), float(atol),
        int(max_iter), int(max_restarts), bool(transposed),
    )
    if residual <= target:
        return KrylovResult(x, r, int(iteration))
    why = "diverged (non-finite residual)" if not math.isfinite(residual) else "did not converge"
    raise SolverError(
        f"BiCGStab {why} after {iteration} iterations ({max(cycles - 1, 0)} restarts): relative residual "
        f"{residual / max(norm_b, 1e-300):.3e}, asked ||b - A x|| <= {target:.3e} "
        f"(rtol={rtol:g}, atol={atol:g}, max_iter={max_iter}; compiled zebra kernel)"
    )


WORK_ARRAYS = 17  # layout arrays of one solve: 6 inputs, x, r, 2 line factors, 7 BiCGStab vectors
_local = threading.local()


def _workspace(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """Work arrays for ``shape``, kept per thread for the last few shapes: allocating ~16
    fresh arrays of 1e5 entries costs more than a 128x128 solve (page faults)."""
    cache = getattr(_local, "work", None)
    if cache is None:
        cache = _local.work = {}
    key = (shape, np.dtype(dtype).str)
    work = cache.pop(key, None)
    if work is None:
        n0, n1 = shape
        work = np.zeros((WORK_ARRAYS, 2, n1 + 2, (n0 + 1) // 2 + 2), dtype=dtype)
        while len(cache) >= 4:
            del cache[next(iter(cache))]
    cache[key] = work  # most recently used last
    return work


_compile_lock = threading.Lock()


def _point_numba_cache() -> None:
    """numba caches compiled kernels next to this module; where that is read-only (a system
    install) point it at ``default_cache_dir()/numba``, so that the ~15 s compile is paid
    once, not in every process. Only before numba is imported and when the user has not
    chosen (``NUMBA_CACHE_DIR``)."""
    if "numba" in sys.modules or "NUMBA_CACHE_DIR" in os.environ or os.access(Path(__file__).parent, os.W_OK):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(default_cache_dir() / "numba")


@functools.cache
def _compiled() -> Any:
    """The jitted ``_solve``: its helpers are jitted first and the module's names rebound to
    them, so that ``_solve`` calls compiled code (compiled once per dtype, cached on disk)."""
    _point_numba_cache()
    import numba

    with _compile_lock:
        jit = numba.njit(cache=True, fastmath=False, nogil=True)
        names = globals()
        for name in _HELPERS:
            if not isinstance(names[name], numba.core.dispatcher.Dispatcher):
                names[name] = jit(names[name])
        return jit(_solve)


# -- kernels: plain Python, compiled by ``_compiled`` ----------------------------------------
_HELPERS = ("_to_layout", "_from_layout", "_ghosts", "_factor", "_zebra", "_matvec", "_rows", "_dot", "_dot2",
            "_update_s", "_update_r", "_residual", "_cycle")
# Layout. The kernels work on red-black, transposed copies: a field ``a`` of shape (n0, n1)
# is stored as ``a_l[colour, 1 + j, 1 + k] = a[2 k + colour, j]``, shape (2, n1 + 2, h + 2)
# with h = ceil(n0 / 2). Every line sweep is then a loop over j of contiguous, vectorisable
# loops over all lines k of one colour, and the axis-0 neighbours of a line are the other
# colour at k or k -+ 1. Rows j = 0 and n1 + 1 are zero (axis 1 is not periodic) so that
# the line sweeps and the stencil need no special first or last row; the columns around
# the lines of each colour are ghosts: zero, or the wrapped values along a periodic axis 0
# (``_ghosts``). Vectors that enter inner products keep zero ghosts.


def _solve(c, m0, p0, m1, p1, b, x, r, work, has_x0, periodic0, rtol, atol, max_iter, max_restarts,  # noqa: ANN001, ANN202
           transposed):
    """The whole solve; ``x`` (initial guess, read when ``has_x0``) and ``r`` are overwritten
    with the answer and ``b - A x``; ``work`` holds ``WORK_ARRAYS`` layout arrays.
    Returns ``(iterations, cycles, ||b - A x||, ||b||, target)``."""
    n0 = c.shape[1] if transposed else c.shape[0]
    cl, m0l, p0l, m1l, p1l, bl = work[0], work[1], work[2], work[3], work[4], work[5]
    xl, rl, inv_den, upper = work[6], work[7], work[8], work[9]
    _to_layout(c, cl, transposed)
    _to_layout(m0, m0l, transposed)
    _to_layout(p0, p0l, transposed)
    _to_layout(m1, m1l, transposed)
    _to_layout(p1, p1l, transposed)
    _to_layout(b, bl, transposed)
    if has_x0:
        _to_layout(x, xl, transposed)
    else:
        xl[:] = 0.0
    _factor(cl, m1l, p1l, inv_den, upper, n0)
    acc = np.zeros((2, cl.shape[2]))
    norm_b = math.sqrt(_dot(bl, bl, acc))
    target = max(rtol * norm_b, atol)
    if has_x0:
        _residual(rl, bl, xl, cl, m0l, p0l, m1l, p1l, n0, periodic0)
    else:
        rl[:] = bl
    residual = math.sqrt(_dot(rl, rl, acc))
    iteration, cycles = 0, 0
    while residual > target and math.isfinite(residual) and iteration < max_iter and cycles <= max_restarts:
        iteration = _cycle(cl, m0l, p0l, m1l, p1l, inv_den, upper, xl, rl, work[10:], acc, n0, periodic0,
                           target, iteration, max_iter)
        cycles += 1
        _residual(rl, bl, xl, cl, m0l, p0l, m1l, p1l, n0, periodic0)
        residual = math.sqrt(_dot(rl, rl, acc))
    _from_layout(xl, x, transposed)
    _from_layout(rl, r, transposed)
    return iteration, cycles, residual, norm_b, target


def _to_layout(a, out, transposed):  # noqa: ANN001, ANN202
    """``a`` (n0, n1), or its transpose given as (n1, n0), into ``out`` in the layout, zero padding."""
    out[:] = 0.0
    if transposed:
        n1, n0 = a.shape
        for j in range(n1):
            for i in range(n0):
                out[i % 2, j + 1, i // 2 + 1] = a[j, i]
        return
    n0, n1 = a.shape
    for i in range(n0):
        colour, k = i % 2, i // 2 + 1
        for j in range(n1):
            out[colour, j + 1, k] = a[i, j]


def _from_layout(al, out, transposed):  # noqa: ANN001, ANN202
    """The inverse of ``_to_layout``, written into ``out`` ((n0, n1), or (n1, n0) transposed)."""
    if transposed:
        n1, n0 = out.shape
        for j in range(n1):
            for i in range(n0):
                out[j, i] = al[i % 2, j + 1, i // 2 + 1]
        return
    n0, n1 = out.shape
    for i in range(n0):
        colour, k = i % 2, i // 2 + 1
        for j in range(n1):
            out[i, j] = al[colour, j + 1, k]


def _ghosts(x, n0, periodic0):  # noqa: ANN001, ANN202
    """Fill the ghost columns of ``x`` with the wrapped lines (periodic axis 0; else no-op)."""
    if not periodic0:
        return
    n1, h = x.shape[1] - 2, x.shape[2] - 2
    last = (n0 - 1) % 2  # colour of line n0 - 1, which sits at column h of its colour
    for j in range(1, n1 + 1):
        x[1, j, 0] = x[last, j, h]  # line -1: minus neighbour of line 0
        if n0 % 2 == 0:
            x[0, j, h + 1] = x[0, j, 1]  # line n0 (even slot): plus neighbour of line n0 - 1
        else:
            x[1, j, h] = x[0, j, 1]  # line n0 (odd slot): plus neighbour of line n0 - 1


def _residual(r, b, x, c, m0, p0, m1, p1, n0, periodic0):  # noqa: ANN001, ANN202
    """``r = b - A x`` (ghosts of ``r`` stay zero)."""
    _ghosts(x, n0, periodic0)
    _matvec(r, x, c, m0, p0, m1, p1, n0)
    n1, h = x.shape[1] - 2, x.shape[2] - 2
    for colour in range(2):
        lines = h if colour == 0 else n0 // 2
        for j in range(1, n1 + 1):
            for k in range(1, lines + 1):
                r[colour, j, k] = b[colour, j, k] - r[colour, j, k]


def _cycle(c, m0, p0, m1, p1, inv_den, upper, x, r0, work, acc, n0, periodic0, target, iteration, max_iter):  # noqa: ANN001, ANN202
    """``_bicgstab_cycle`` of ``krylov.py`` from ``(x, r0 = b - A x)``, updating ``x`` in place;
    ``work`` holds 7 layout arrays.

    ``s`` overwrites ``r`` (``r`` is not needed once ``s = r - alpha v`` is formed), and the
    inner products are summed in the loops that form their operands."""
    size = r0.size
    r, r_hat, p, v, t, p_hat, s_hat = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    r[:] = r0
    r_hat[:] = r0
    for a in (p, v, t, p_hat, s_hat):
        a[:] = 0.0
    fr, fp, fv = r.reshape(size), p.reshape(size), v.reshape(size)
    rho = alpha = omega = 1.0
    rho_new = _dot(r_hat, r, acc)
    while iteration < max_iter:
        iteration += 1
        if rho_new == 0.0 or omega == 0.0:
            break
        beta = (rho_new / rho) * (alpha / omega)
        rho = rho_new
        for q in range(size):
            fp[q] = fr[q] + beta * (fp[q] - omega * fv[q])
        _zebra(p_hat, p, m0, p0, m1, inv_den, upper, n0, periodic0)
        _ghosts(p_hat, n0, periodic0)
        _matvec(v, p_hat, c, m0, p0, m1, p1, n0)
        r_hat_v = _dot(r_hat, v, acc)
        if r_hat_v == 0.0:
            break
        alpha = rho / r_hat_v
        s_norm = math.sqrt(_update_s(r, v, x, p_hat, alpha, acc))
        if s_norm <= target or not math.isfinite(s_norm):
            break
        _zebra(s_hat, r, m0, p0, m1, inv_den, upper, n0, periodic0)
        _ghosts(s_hat, n0, periodic0)
        _matvec(t, s_hat, c, m0, p0, m1, p1, n0)
        t_t, t_s = _dot2(t, r, acc)
        omega = t_s / t_t if t_t > 0.0 else 0.0
        r_r, rho_new = _update_r(r, t, x, s_hat, r_hat, omega, acc)
        r_norm = math.sqrt(r_r)
        if r_norm <= target or not math.isfinite(r_norm):
            break
    return iteration


def _rows(a):  # noqa: ANN001, ANN202
    """A layout array as (rows, width): inner products sum each column's entries in
    ``acc[., k]`` (a vectorisable loop without reassociation), then the columns."""
    return a.reshape((a.shape[0] * a.shape[1], a.shape[2]))


def _dot(a, b, acc):  # noqa: ANN001, ANN202
    """``sum(a * b)`` in float64."""
    fa, fb = _rows(a), _rows(b)
    acc[0, :] = 0.0
    for q in range(fa.shape[0]):
        for k in range(fa.shape[1]):
            acc[0, k] += float(fa[q, k]) * float(fb[q, k])
    return acc[0].sum()


def _dot2(t, s, acc):  # noqa: ANN001, ANN202
    """``(t . t, t . s)`` in one pass."""
    ft, fs = _rows(t), _rows(s)
    acc[:, :] = 0.0
    for q in range(ft.shape[0]):
        for k in range(ft.shape[1]):
            tk = float(ft[q, k])
            acc[0, k] += tk * tk
            acc[1, k] += tk * float(fs[q, k])
    return acc[0].sum(), acc[1].sum()


def _update_s(r, v, x, p_hat, alpha, acc):  # noqa: ANN001, ANN202
    """``s = r - alpha v`` (into ``r``), ``x += alpha p_hat``; returns ``s . s``."""
    fr, fv, fx, fp = _rows(r), _rows(v), _rows(x), _rows(p_hat)
    acc[0, :] = 0.0
    for q in range(fr.shape[0]):
        for k in range(fr.shape[1]):
            sk = fr[q, k] - alpha * fv[q, k]
            fr[q, k] = sk
            fx[q, k] = fx[q, k] + alpha * fp[q, k]
            acc[0, k] += float(fr[q, k]) * float(fr[q, k])
    return acc[0].sum()


def _update_r(r, t, x, s_hat, r_hat, omega, acc):  # noqa: ANN001, ANN202
    """``x += omega s_hat``, ``r = s - omega t`` (``s`` in ``r``); returns ``(r . r, r_hat . r)``."""
    fr, ft, fx, fs, fh = _rows(r), _rows(t), _rows(x), _rows(s_hat), _rows(r_hat)
    acc[:, :] = 0.0
    for q in range(fr.shape[0]):
        for k in range(fr.shape[1]):
            fx[q, k] = fx[q, k] + omega * fs[q, k]
            fr[q, k] = fr[q, k] - omega * ft[q, k]
            rk = float(fr[q, k])
            acc[0, k] += rk * rk
            acc[1, k] += float(fh[q, k]) * rk
    return acc[0].sum(), acc[1].sum()


def _matvec(out, x, c, m0, p0, m1, p1, n0):  # noqa: ANN001, ANN202
    """``out = A x`` in the layout (ghosts of ``x`` filled), summed in the order of
    ``StencilMatrix.matvec``: center, axis-0 minus and plus, axis-1 minus and plus."""
    n1, h = x.shape[1] - 2, x.shape[2] - 2
    for j in range(1, n1 + 1):  # even lines 2k: odd neighbours k - 1 and k
        for k in range(1, h + 1):
            out[0, j, k] = (c[0, j, k] * x[0, j, k] + m0[0, j, k] * x[1, j, k - 1] + p0[0, j, k] * x[1, j, k]
                            + m1[0, j, k] * x[0, j - 1, k] + p1[0, j, k] * x[0, j + 1, k])
    for j in range(1, n1 + 1):  # odd lines 2k + 1: even neighbours k and k + 1
        for k in range(1, n0 // 2 + 1):
            out[1, j, k] = (c[1, j, k] * x[1, j, k] + m0[1, j, k] * x[0, j, k] + p0[1, j, k] * x[0, j, k + 1]
                            + m1[1, j, k] * x[1, j - 1, k] + p1[1, j, k] * x[1, j + 1, k])


def _factor(c, m1, p1, inv_den, upper, n0):  # noqa: ANN001, ANN202
    """Thomas (LU without pivoting) factors of every line ``T_i = tridiag(m1[i], c[i], p1[i])``:
    ``inv_den = 1 / d`` and ``upper = p1 / d`` with ``d_j = c_j - m1_j upper_{j-1}``."""
    n1, h = c.shape[1] - 2, c.shape[2] - 2
    inv_den[:] = 0.0
    upper[:] = 0.0
    for colour in range(2):
        lines = h if colour == 0 else n0 // 2
        for j in range(1, n1 + 1):
            for k in range(1, lines + 1):
                den = float(c[colour, j, k]) - float(m1[colour, j, k]) * float(upper[colour, j - 1, k])
                inv = 1.0 / den
                inv_den[colour, j, k] = inv
                upper[colour, j, k] = float(p1[colour, j, k]) * inv


def _zebra(z, y, m0, p0, m1, inv_den, upper, n0, periodic0):  # noqa: ANN001, ANN202
    """``z = M^{-1} y`` in the layout: even lines ``z_i = T_i^{-1} y_i``, then odd lines
    ``z_i = T_i^{-1} (y_i - m0_i z_{i-1} - p0_i z_{i+1})`` (both neighbours even lines; past
    the end: line 0 when ``periodic0``, else none). Thomas: forward
    ``z_j = (f_j - m1_j z_{j-1}) / d_j``, back ``z_j -= upper_j z_{j+1}``."""
    n1, h = y.shape[1] - 2, y.shape[2] - 2
    for j in range(1, n1 + 1):
        for k in range(1, h + 1):
            z[0, j, k] = (y[0, j, k] - m1[0, j, k] * z[0, j - 1, k]) * inv_den[0, j, k]
    for j in range(n1 - 1, 0, -1):
        for k in range(1, h + 1):
            z[0, j, k] = z[0, j, k] - upper[0, j, k] * z[0, j + 1, k]
    lines = n0 // 2
    if periodic0 and n0 % 2 == 0:
        for j in range(1, n1 + 1):
            z[0, j, h + 1] = z[0, j, 1]
    for j in range(1, n1 + 1):
        for k in range(1, lines + 1):
            rhs = y[1, j, k] - m0[1, j, k] * z[0, j, k] - p0[1, j, k] * z[0, j, k + 1]
            z[1, j, k] = (rhs - m1[1, j, k] * z[1, j - 1, k]) * inv_den[1, j, k]
    for j in range(n1 - 1, 0, -1):
        for k in range(1, lines + 1):
            z[1, j, k] = z[1, j, k] - upper[1, j, k] * z[1, j + 1, k]
