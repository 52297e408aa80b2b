"""Sparse linear solves for the 2D implicit steps, on the arrays' own device.

A ``SparsePattern`` fixes the COO indices of a matrix once per grid; each Newton or FP
step only brings new values. On the host, scipy's SuperLU factorises; elsewhere a
Jacobi-preconditioned BiCGStab (``krylov.bicgstab``, written against the array namespace)
keeps tensors on their device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from mfg_rl.backends.krylov import bicgstab
from mfg_rl.errors import SolverError


@dataclass(frozen=True)
class SparsePattern:
    """COO structure of a square ``n x n`` matrix: ``rows``, ``cols`` int64 arrays (nnz,)."""

    rows: np.ndarray
    cols: np.ndarray
    n: int

    def transpose(self) -> SparsePattern:
        """The pattern of ``A^T`` (same values order)."""
        return SparsePattern(rows=self.cols, cols=self.rows, n=self.n)


def scipy_spsolve(pattern: SparsePattern, values: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Direct solve on the host by SuperLU (scipy). ``values`` (nnz,), ``rhs`` (n,)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    matrix = sp.csc_matrix((values, (pattern.rows, pattern.cols)), shape=(pattern.n, pattern.n))
    x = spsolve(matrix, rhs)
    if not np.all(np.isfinite(x)):
        raise SolverError("sparse direct solve returned non-finite values: singular matrix")
    return x


def _matvec(xp: Any, rows: Any, cols: Any, values: Any, x: Any, n: int) -> Any:
    contributions = values * xp.take(x, cols)
    out = xp.zeros(n, dtype=x.dtype, device=array_device(x))
    return _scatter_add(xp, out, rows, contributions)



def _scatter_add(xp: Any, out: Any, index: Any, values: Any) -> Any:
    from array_api_compat import is_jax_array, is_torch_array

    if is_torch_array(out):
        return out.index_add(0, index, values)
    if is_jax_array(out):
        return out.at[index].add(values)
    np.add.at(out, index, values)
    return out


def bicgstab_jacobi(
    xp: Any,
    pattern: SparsePattern,
    values: Any,
    rhs: Any,
    *,
    rtol: float = 1e-13,
    max_iter: int = 2000,
) -> Any:
    """``krylov.bicgstab`` on the COO matrix with a Jacobi preconditioner ``M = diag(A)``.

    Stops when ``||rhs - A x|| <= rtol ||rhs||``; raises ``SolverError`` otherwise.
    """
    device = array_device(rhs)
    rows = xp.asarray(pattern.rows, device=device)
    cols = xp.asarray(pattern.cols, device=device)
    n = pattern.n
    diagonal_mask = xp.asarray(pattern.rows == pattern.cols, device=device)
    diag = _scatter_add(
        xp, xp.zeros(n, dtype=rhs.dtype, device=device), rows, xp.where(diagonal_mask, values, 0.0)
    )
    inv_diag = 1.0 / diag
    result = bicgstab(
        xp, lambda v: _matvec(xp, rows, cols, values, v, n), rhs, precond=lambda v: inv_diag * v,
        rtol=rtol, max_iter=max_iter,
    )
    return result.x
