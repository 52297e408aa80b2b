"""The numpy backend: the plain host reference every accelerated kernel is checked against."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import sparse, tridiagonal
from mfg_rl.backends.base import Array, Backend, float_dtype_name
from mfg_rl.checks import shown


class NumpyBackend(Backend):
    """Arrays are numpy arrays on the host; solves go to LAPACK and SuperLU."""

    name = "numpy"

    def __init__(self, device: str | None = None, dtype: Any = None) -> None:
        import array_api_compat.numpy as xp

        if not (device is None or (isinstance(device, str) and device == "cpu")):
            raise ValueError(f"device for the numpy backend must be 'cpu' or None, got {shown(device)}")
        super().__init__(xp, np.dtype(float_dtype_name(dtype) or "float64").type, "cpu")

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        return np.asarray(x, dtype=self.dtype if dtype is None else dtype)

    def is_native(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def solve_tridiagonal(self, lower: Array, diag: Array, upper: Array, rhs: Array) -> Array:
        return tridiagonal.lapack_gtsv(lower, diag, upper, rhs)

    def factor_tridiagonal(self, lower: Array, diag: Array, upper: Array) -> Any:
        return tridiagonal.LapackTridiagonalFactor(lower, diag, upper)

    def solve_sparse(self, pattern: sparse.SparsePattern, values: Array, rhs: Array) -> Array:
        return sparse.scipy_spsolve(pattern, values, rhs)
