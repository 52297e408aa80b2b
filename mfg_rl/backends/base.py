"""The backend contract: where arrays live and the few kernels that differ per library.

Solver code is written once against ``backend.xp`` (an array-API namespace) and the
kernels below; a backend overrides a kernel only where its library has a faster path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import sparse, tridiagonal

Array = Any


class Backend:
    """Base class of the numpy, torch and jax backends.

    Attributes:
        name: ``"numpy"``, ``"torch"`` or ``"jax"``.
        device: where arrays live (``"cpu"``, ``"cuda:0"``, ``"mps"``).
        dtype: the library's floating dtype (float64 unless asked).
        xp: array-API namespace of the library (``array_api_compat``).
    """

    name: str = "base"

    def __init__(self, xp: Any, dtype: Any, device: str) -> None:
        self.xp = xp
        self.dtype = dtype
        self.device = device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype_name})"

    @property
    def dtype_name(self) -> str:
        try:
            return np.dtype(self.dtype).name
        except TypeError:
            return str(self.dtype).replace("torch.", "")

    # -- conversion -------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """``x`` as an array of this backend on its device (float dtype unless given)."""
        raise NotImplementedError

    def to_numpy(self, x: Array) -> np.ndarray:
        """A host numpy copy (or view, on CPU) of a backend array."""
        return np.asarray(x)

    def is_native(self, x: Any) -> bool:
        """Whether ``x`` is already an array of this backend."""
        raise NotImplementedError

    # -- kernels ----------------------------------------------------------------------
    def solve_tridiagonal(self, lower: Array, diag: Array, upper: Array, rhs: Array) -> Array:
        """Solve many independent tridiagonal systems ``A x = rhs`` at once.

        Row ``i`` of each system reads ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1]``;
        ``lower[..., 0]`` and ``upper[..., -1]`` are ignored. All inputs have shape
        ``(..., n)``; leading dimensions are a batch. Returns ``x`` of shape ``(..., n)``.
        """
        return tridiagonal.parallel_cyclic_reduction(self.xp, lower, diag, upper, rhs)

    def solve_sparse(self, pattern: sparse.SparsePattern, values: Array, rhs: Array) -> Array:
        """Solve ``A x = rhs`` for a square sparse ``A`` given by a fixed pattern.

        ``pattern`` holds COO row/column indices (shape ``(nnz,)``) and the size ``n``;
        ``values`` has shape ``(nnz,)`` (duplicates are summed), ``rhs`` shape ``(n,)``.
        """
        return sparse.bicgstab_jacobi(self.xp, pattern, values, rhs)
