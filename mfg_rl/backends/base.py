"""The backend contract: where arrays live and the few kernels that differ per library.

Solver code is written once against ``backend.xp`` (an array-API namespace) and the
kernels below; a backend overrides a kernel only where its library has a faster path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import interp as _interp
from mfg_rl.backends import kde as _kde
from mfg_rl.backends import sparse, tridiagonal
from mfg_rl.checks import shown

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

    def from_host(self, x: np.ndarray) -> Array:
        """A numpy array as an array of this backend, keeping its dtype (zero-copy where the
        memory can be shared)."""
        return self.asarray(x, dtype=x.dtype)

    def host_twin(self) -> Backend:
        """The backend for loops of many small operations on this one's arrays: numpy for
        torch tensors on the CPU (zero-copy views; numpy's per-operation overhead is about
        1 us, torch's about 5 us), this backend otherwise."""
        return self

    # -- kernels ----------------------------------------------------------------------
    def solve_tridiagonal(self, lower: Array, diag: Array, upper: Array, rhs: Array) -> Array:
        """Solve many independent tridiagonal systems ``A x = rhs`` at once.

        Row ``i`` of each system reads ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1]``;
        ``lower[..., 0]`` and ``upper[..., -1]`` are ignored. All inputs have shape
        ``(..., n)``; leading dimensions are a batch. Returns ``x`` of shape ``(..., n)``.
        """
        return tridiagonal.parallel_cyclic_reduction(self.xp, lower, diag, upper, rhs)

    def factor_tridiagonal(self, lower: Array, diag: Array, upper: Array) -> Any:
        """The batched tridiagonal systems of ``solve_tridiagonal``, kept for many right-hand sides.

        Returns an object whose ``.solve(rhs)`` equals ``solve_tridiagonal(lower, diag,
        upper, rhs)`` (``rhs`` of the broadcast shape ``(..., n)``). Host backends factorise
        once (LAPACK ``?gttrf``/``?gttrs``); this default re-solves per right-hand side.
        """
        return tridiagonal.TridiagonalFactor(self.solve_tridiagonal, lower, diag, upper)

    def solve_sparse(self, pattern: sparse.SparsePattern, values: Array, rhs: Array) -> Array:
        """Solve ``A x = rhs`` for a square sparse ``A`` given by a fixed pattern.

        ``pattern`` holds COO row/column indices (shape ``(nnz,)``) and the size ``n``;
        ``values`` has shape ``(nnz,)`` (duplicates are summed), ``rhs`` shape ``(n,)``.
        """
        return sparse.bicgstab_jacobi(self.xp, pattern, values, rhs)

    def kde(
        self,
        points: Array,
        weights: Array | None,
        grid: Any,
        bandwidth: float | tuple[float, ...] | str = "scott",
        method: str = "binned",
        reflect: bool = True,
    ) -> Array:
        """Gaussian kernel density of weighted particles at the cell centres of ``grid``.

        ``rho(x_i) = sum_p w_p prod_d K_d(x_i, p)`` with ``K_d`` a Gaussian of std
        ``sigma_d`` (float, per-axis tuple, or rule ``"scott"``/``"silverman"``) summed over
        its images (periodic wrap; mirror at ``"no_flux"`` walls when ``reflect``).
        ``points`` shape ``(N,)`` or ``(N, d)``, ``weights`` ``(N,)`` or ``None`` (uniform
        ``1/N``); returns shape ``grid.shape`` in this backend's dtype. ``method`` is
        ``"binned"`` (FFT) or ``"exact"``; see ``mfg_rl.backends.kde`` for accuracy.

        Example:
            >>> from mfg_rl.backends import create_backend
            >>> from mfg_rl.core import Grid
            >>> b = create_backend("numpy")
            >>> b.kde([0.3, 0.5, 0.6], None, Grid([(0.0, 1.0)], 8), bandwidth=0.1).shape
            (8,)
        """
        return _kde.kde(
            self.xp,
            _kde.as_backend_array(self, points, "points"),
            _kde.as_backend_array(self, weights, "weights"),
            grid,
            bandwidth=bandwidth,
            method=method,
            reflect=reflect,
        )

    def interp(self, grid: Any, values: Array, points: Array) -> Array:
        """Linear (bilinear in 2D) interpolation of ``values`` (shape ``grid.shape``) at points.

        ``points`` shape ``(N,)`` or ``(N, d)``; clamped to the outermost cell centres,
        wrapped on periodic axes. Returns shape ``(N,)``.

        Example:
            >>> from mfg_rl.backends import create_backend
            >>> from mfg_rl.core import Grid
            >>> b = create_backend("numpy")
            >>> b.interp(Grid([(0.0, 1.0)], 4), [0.0, 1.0, 2.0, 3.0], [0.25])
            array([0.5])
        """
        return _interp.interp(
            self.xp,
            grid,
            _kde.as_backend_array(self, values, "values"),
            _kde.as_backend_array(self, points, "points"),
        )

    # -- randomness -------------------------------------------------------------------
    def generator(self, seed: int) -> Any:
        """A random generator seeded with ``seed`` (an int >= 0) that draws on this device.

        Same seed, same numbers on the same backend and device kind. Here: numpy's PCG64
        (numpy backend, and the torch backend on the CPU).

        Example:
            >>> from mfg_rl.backends import create_backend
            >>> b = create_backend("numpy")
            >>> g = b.generator(0)
            >>> b.normal(g, (3,)).shape, float(b.uniform(b.generator(0), (2,)).max()) < 1.0
            ((3,), True)
        """
        return np.random.Generator(np.random.PCG64(check_seed(seed)))

    def normal(self, generator: Any, shape: tuple[int, ...]) -> Array:
        """Standard normal draws of ``shape`` in this backend's dtype; advances ``generator``."""
        return self.asarray(generator.standard_normal(shape, dtype=np.dtype(self.dtype_name)))

    def uniform(self, generator: Any, shape: tuple[int, ...]) -> Array:
        """Uniform draws on ``[0, 1)`` of ``shape`` in this backend's dtype; advances ``generator``."""
        return self.asarray(generator.random(shape, dtype=np.dtype(self.dtype_name)))


def check_seed(seed: Any) -> int:
    """``seed`` as an int in ``[0, 2**63)``, else ValueError naming it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


FLOAT_DTYPES = ("float32", "float64")


def float_dtype_name(dtype: Any) -> str | None:
    """``"float32"`` or ``"float64"`` for any spelling of them (a name, a numpy, torch or jax dtype or
    type), None for None (the backend's default); anything else raises naming ``dtype``."""
    if dtype is None:
        return None
    allowed = "float32 or float64 (a name, a numpy, torch or jax dtype) or None"
    if type(dtype).__module__.startswith("torch"):
        name = str(dtype).replace("torch.", "")
    else:
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"dtype must be {allowed}, got {shown(dtype)}") from None
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be {allowed}, got {shown(dtype)}")
    return name
