"""Compact-stencil matrices on a grid and the upwind discretisation of the HJB operator.

A ``StencilMatrix`` stores, for every node ``i``, its diagonal entry and one entry per
axis and direction coupling ``i`` to ``i -/+ e_d`` (arrays of the grid's shape, possibly
with leading batch dimensions such as time). Coefficients that would leave a
non-periodic box are zero; periodic axes wrap. In 1D this is a tridiagonal matrix, in
2D the 5-point matrix. Its transpose is again a ``StencilMatrix``, which is how the
Fokker-Planck step becomes the exact adjoint of the linearised HJB step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.backends import Backend, SparsePattern
from mfg_rl.core import Grid


@dataclass(frozen=True)
class StencilMatrix:
    """``(A x)_i = center_i x_i + sum_d minus[d]_i x_{i-e_d} + plus[d]_i x_{i+e_d}``.

    Shapes: ``center`` and each ``minus[d]``, ``plus[d]`` are ``(*batch, *grid.shape)``.
    """

    center: Any
    minus: tuple[Any, ...]
    plus: tuple[Any, ...]

    def space_axis(self, d: int, ndim: int) -> int:
        return self.center.ndim - ndim + d

    def matvec(self, xp: Any, x: Any) -> Any:
        """``A x`` for ``x`` of shape ``(*batch, *grid.shape)``."""
        ndim = len(self.minus)
        out = self.center * x
        for d in range(ndim):
            axis = self.space_axis(d, ndim)
            out = out + self.minus[d] * xp.roll(x, 1, axis=axis)
            out = out + self.plus[d] * xp.roll(x, -1, axis=axis)
        return out

    def transpose(self, xp: Any) -> StencilMatrix:
        """``A^T``: the entry coupling ``i`` to ``i - e_d`` is ``plus[d]`` read at ``i - e_d``."""
        ndim = len(self.minus)
        minus = tuple(xp.roll(self.plus[d], 1, axis=self.space_axis(d, ndim)) for d in range(ndim))
        plus = tuple(xp.roll(self.minus[d], -1, axis=self.space_axis(d, ndim)) for d in range(ndim))
        return StencilMatrix(self.center, minus, plus)

    def at(self, n: int) -> StencilMatrix:
        """The matrix of batch entry ``n`` (first leading dimension)."""
        return StencilMatrix(self.center[n], tuple(a[n] for a in self.minus), tuple(a[n] for a in self.plus))


class StencilSolver:
    """Solves ``A x = b`` for stencil matrices of one grid on one backend.

    1D non-periodic: batched tridiagonal kernel; 1D periodic: Sherman-Morrison on top of
    it; 2D/3D: the backend's sparse solve with a COO pattern fixed once per grid.
    """

    def __init__(self, grid: Grid, backend: Backend) -> None:
        self.grid = grid
        self.backend = backend
        self.periodic_1d = grid.ndim == 1 and grid.boundary[0][0] == "periodic"
        self.pattern = None if grid.ndim == 1 else _pattern(grid)

    def solve(self, matrix: StencilMatrix, rhs: Any) -> Any:
        """``x`` with ``A x = rhs``; ``rhs`` of the grid's shape (1D: batch dims allowed)."""
        if self.grid.ndim == 1:
            lower, upper = matrix.minus[0], matrix.plus[0]
            if self.periodic_1d:
                return self._solve_cyclic(lower, matrix.center, upper, rhs)
            return self.backend.solve_tridiagonal(lower, matrix.center, upper, rhs)
        xp = self.backend.xp
        values = xp.concat(
            [xp.reshape(matrix.center, (-1,))]
            + [xp.reshape(a, (-1,)) for pair in zip(matrix.minus, matrix.plus, strict=True) for a in pair]
        )
        x = self.backend.solve_sparse(self.pattern, values, xp.reshape(rhs, (-1,)))
        return xp.reshape(x, self.grid.shape)

    def _solve_cyclic(self, lower: Any, diag: Any, upper: Any, rhs: Any) -> Any:
        """Cyclic tridiagonal solve (Sherman-Morrison; Numerical Recipes ``cyclic``).

        The corners are ``A[0, n-1] = lower[0]`` and ``A[n-1, 0] = upper[n-1]``.
        """
        xp = self.backend.xp
        top_right, bottom_left = lower[..., :1], upper[..., -1:]
        gamma = -diag[..., :1]
        n = diag.shape[-1]
        first = xp.reshape(xp.arange(n, device=_device(diag)) == 0, (1,) * (diag.ndim - 1) + (n,))
        last = xp.reshape(xp.arange(n, device=_device(diag)) == n - 1, first.shape)
        zeros = xp.zeros_like(diag)
        corner = bottom_left * top_right / gamma
        diag_mod = diag - xp.where(first, gamma + zeros, zeros) - xp.where(last, corner + zeros, zeros)
        u = xp.where(first, gamma + zeros, xp.where(last, bottom_left + zeros, zeros))
        both = self.backend.solve_tridiagonal(
            xp.stack([lower, lower]), xp.stack([diag_mod, diag_mod]),
            xp.stack([upper, upper]), xp.stack([rhs + zeros, u]),
        )
        x, z = both[0], both[1]
        factor = (x[..., :1] + top_right * x[..., -1:] / gamma) / (
            1.0 + z[..., :1] + top_right * z[..., -1:] / gamma
        )
        return x - factor * z


def _device(x: Any) -> Any:
    from array_api_compat import device

    return device(x)


def _pattern(grid: Grid) -> SparsePattern:
    """COO indices in the order center, (minus, plus) per axis; neighbours wrap (their
    coefficient is zero where the box is not periodic)."""
    index = np.arange(grid.size).reshape(grid.shape)
    rows = [index.ravel()]
    cols = [index.ravel()]
    for d in range(grid.ndim):
        for shift in (1, -1):
            rows.append(index.ravel())
            cols.append(np.roll(index, shift, axis=d).ravel())
    return SparsePattern(
        np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64), grid.size
    )
