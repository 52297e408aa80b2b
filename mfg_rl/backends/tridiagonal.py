"""Batched tridiagonal solvers written once against an array-API namespace.

Parallel cyclic reduction (Hockney & Jesshope): ``ceil(log2 n)`` fully vectorised
sweeps, each eliminating the couplings at distance ``s = 1, 2, 4, ...``. No pivoting:
stable for the diagonally dominant M-matrices of implicit HJB/FP steps. Work
``O(n log n)`` per system, no Python loop over the batch or the unknowns.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device as array_device


def _shift(xp: Any, v: Any, s: int, fill: float, forward: bool) -> Any:
    """``v`` moved by ``s`` along the last axis; vacated entries set to ``fill``.

    forward=True returns ``w[i] = v[i - s]``; forward=False returns ``w[i] = v[i + s]``.
    """
    n = v.shape[-1]
    pad = xp.full((*v.shape[:-1], min(s, n)), fill, dtype=v.dtype, device=array_device(v))
    if s >= n:
        return pad
    if forward:
        return xp.concat([pad, v[..., : n - s]], axis=-1)
    return xp.concat([v[..., s:], pad], axis=-1)


def parallel_cyclic_reduction(xp: Any, lower: Any, diag: Any, upper: Any, rhs: Any) -> Any:
    """Solve ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1] = rhs[i]`` (shapes ``(..., n)``)."""
    n = diag.shape[-1]
    a = xp.concat([xp.zeros_like(lower[..., :1]), lower[..., 1:]], axis=-1)
    c = xp.concat([upper[..., :-1], xp.zeros_like(upper[..., -1:])], axis=-1)
    b, d = diag, rhs
    s = 1
    while s < n:
        b_prev, b_next = _shift(xp, b, s, 1.0, True), _shift(xp, b, s, 1.0, False)
        alpha = -a / b_prev
        gamma = -c / b_next
        a_prev, a_next = _shift(xp, a, s, 0.0, True), _shift(xp, a, s, 0.0, False)
        c_prev, c_next = _shift(xp, c, s, 0.0, True), _shift(xp, c, s, 0.0, False)
        d_prev, d_next = _shift(xp, d, s, 0.0, True), _shift(xp, d, s, 0.0, False)
        b = b + alpha * c_prev + gamma * a_next
        d = d + alpha * d_prev + gamma * d_next
        a = alpha * a_prev
        c = gamma * c_next
        s *= 2
    return d / b


def lapack_gtsv(lower: Any, diag: Any, upper: Any, rhs: Any) -> Any:
    """Batched solve on the host by one LAPACK ``?gtsv`` call (partial pivoting).

    The batch is laid end to end as one block-diagonal tridiagonal system: the
    couplings between consecutive systems are zero, so one O(batch * n) call solves all.
    Inputs are numpy arrays of shape ``(..., n)``.
    """
    import numpy as np
    from scipy.linalg.lapack import dgtsv, sgtsv

    diag = np.asarray(diag)
    shape = np.broadcast_shapes(lower.shape, diag.shape, upper.shape, rhs.shape)
    dtype = np.result_type(lower, diag, upper, rhs)

    def copy(x: Any) -> Any:  # LAPACK overwrites its inputs
        return np.array(x if x.shape == shape else np.broadcast_to(x, shape), dtype=dtype)

    low, up = copy(lower), copy(upper)
    low[..., 0] = 0.0
    up[..., -1] = 0.0
    d = copy(diag).reshape(-1)
    b = copy(rhs).reshape(-1, 1)
    if d.size == 1:  # LAPACK's gtsv rejects a 1x1 system
        if d[0] == 0:
            raise np.linalg.LinAlgError("tridiagonal system is singular: zero pivot at flat row 0")
        return (b[:, 0] / d).reshape(shape)
    gtsv = sgtsv if dtype == np.float32 else dgtsv
    _, _, _, x, info = gtsv(low.reshape(-1)[1:], d, up.reshape(-1)[:-1], b, True, True, True, True)
    if info > 0:
        raise np.linalg.LinAlgError(
            f"tridiagonal system is singular: zero pivot at flat row {info - 1}"
        )
    return x.reshape(shape)


class TridiagonalFactor:
    """A batch of tridiagonal systems kept for many right-hand sides: ``.solve(rhs)``.

    The generic form keeps the coefficients and calls ``solve`` (a batched tridiagonal
    kernel such as ``Backend.solve_tridiagonal``) per right-hand side; hosts with LAPACK
    use ``LapackTridiagonalFactor`` (factorised once). Shapes ``(..., n)``.
    """

    def __init__(self, solve: Any, lower: Any, diag: Any, upper: Any) -> None:
        self._solve = solve
        self.lower, self.diag, self.upper = lower, diag, upper

    def solve(self, rhs: Any) -> Any:
        return self._solve(self.lower, self.diag, self.upper, rhs)

    def solve_entry(self, n: int, rhs: Any) -> Any:
        """The system of batch entry ``n`` (first of >= 2 dimensions) alone: ``rhs`` of its shape."""
        return self._solve(self.lower[n], self.diag[n], self.upper[n], rhs)


class LapackTridiagonalFactor:
    """LAPACK ``?gttrf`` once (LU with partial pivoting), ``?gttrs`` per right-hand side.

    The batch is laid end to end as in ``lapack_gtsv``. Inputs are numpy arrays of shape
    ``(..., n)`` (broadcast against each other); ``solve(rhs)`` takes that shape. A zero
    pivot raises ``LinAlgError``; non-finite coefficients give NaN solutions (callers such
    as BiCGStab then report non-finite values).
    """

    def __init__(self, lower: Any, diag: Any, upper: Any) -> None:
        import numpy as np
        from scipy.linalg.lapack import get_lapack_funcs

        diag = np.asarray(diag)
        shape = np.broadcast_shapes(np.shape(lower), diag.shape, np.shape(upper))
        dtype = np.result_type(lower, diag, upper)
        low = np.array(np.broadcast_to(lower, shape), dtype=dtype)
        up = np.array(np.broadcast_to(upper, shape), dtype=dtype)
        low[..., 0] = 0.0
        up[..., -1] = 0.0
        d = np.array(np.broadcast_to(diag, shape), dtype=dtype).reshape(-1)
        self.shape, self.dtype, self.size = shape, dtype, d.size
        self._entries: dict[int, tuple] = {}  # factor slices of single batch entries (solve_entry)
        self.finite = bool(np.isfinite(d).all() and np.isfinite(low).all() and np.isfinite(up).all())
        if d.size == 1:  # LAPACK rejects a 1x1 system
            if d[0] == 0:
                raise np.linalg.LinAlgError("tridiagonal system is singular: zero pivot at flat row 0")
            self.factors = (d,)
            return
        gttrf, self._gttrs = get_lapack_funcs(("gttrf", "gttrs"), dtype=dtype)
        *factors, info = gttrf(low.reshape(-1)[1:], d, up.reshape(-1)[:-1])
        if info > 0 and self.finite:
            raise np.linalg.LinAlgError(f"tridiagonal system is singular: zero pivot at flat row {info - 1}")
        self.factors = tuple(factors)

    def solve(self, rhs: Any) -> Any:
        import numpy as np

        b = np.asarray(rhs, dtype=self.dtype)
        if b.shape != self.shape:
            b = np.broadcast_to(b, self.shape)
        if self.size == 1:
            return (b.reshape(-1) / self.factors[0]).reshape(self.shape)
        if not self.finite:  # as ?gtsv: non-finite coefficients give non-finite solutions, no error here
            return np.full(self.shape, np.nan, dtype=self.dtype)
        x, info = self._gttrs(*self.factors, b.reshape(-1))
        if info < 0:
            raise ValueError(f"?gttrs: argument {-info} is invalid")
        return x.reshape(self.shape)

    def solve_entry(self, n: int, rhs: Any) -> Any:
        """The system of batch entry ``n`` (first of >= 2 dimensions) alone: ``rhs`` of its shape.

        Pivoting never crosses the zero couplings between systems, so entry ``n``'s factors
        are the slice ``[n k, (n+1) k)`` of the batch's, its pivots shifted by ``n k``.
        """
        import numpy as np

        k = self.size // self.shape[0]
        b = np.asarray(rhs, dtype=self.dtype)
        if not self.finite:
            return np.full(b.shape, np.nan, dtype=self.dtype)
        if k == 1:  # 1x1 systems: no elimination, no interchange
            return np.asarray(b / self.factors[1 if self.size > 1 else 0][n])
        if n not in self._entries:
            a = n * k
            dl, d, du, du2, ipiv = self.factors
            self._entries[n] = (dl[a:a + k - 1], d[a:a + k], du[a:a + k - 1], du2[a:a + k - 2],
                                ipiv[a:a + k] - a)
        x, info = self._gttrs(*self._entries[n], b.reshape(-1))
        if info < 0:
            raise ValueError(f"?gttrs: argument {-info} is invalid")
        return x.reshape(b.shape)
