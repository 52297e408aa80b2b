"""The torch backend (default): CUDA, then MPS, then CPU; float64 unless asked.

On the CPU, solves hand zero-copy numpy views of the tensors to LAPACK/SuperLU; on an
accelerator they run as vectorised torch code on the device (parallel cyclic reduction,
BiCGStab), never moving tensors to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import sparse, tridiagonal
from mfg_rl.backends.base import Array, Backend, check_seed


def default_torch_device() -> str:
    """``"cuda"`` when available, then ``"mps"``, else ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class TorchBackend(Backend):
    """Arrays are ``torch.Tensor`` on ``device``."""

    name = "torch"

    def __init__(self, device: str | None = None, dtype: Any = None) -> None:
        import array_api_compat.torch as xp
        import torch

        torch_device = torch.device(default_torch_device() if device is None else device)
        if dtype is None:
            dtype = torch.float32 if torch_device.type == "mps" else torch.float64
        elif not isinstance(dtype, torch.dtype):
            asked = dtype
            dtype = {"float32": torch.float32, "float64": torch.float64}.get(np.dtype(dtype).name)
            if dtype is None:
                raise ValueError(f"dtype must be float32 or float64, got {asked!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        super().__init__(xp, dtype, str(torch_device))
        self.torch_device = torch_device

    @property
    def on_host(self) -> bool:
        return self.torch_device.type == "cpu"

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        import torch

        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = np.array(x)
        return torch.as_tensor(x, dtype=self.dtype if dtype is None else dtype, device=self.torch_device)

    def to_numpy(self, x: Array) -> np.ndarray:
        return x.detach().cpu().numpy()

    def is_native(self, x: Any) -> bool:
        import torch

        return isinstance(x, torch.Tensor)

    def from_host(self, x: np.ndarray) -> Array:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).to(self.torch_device)

    def host_twin(self) -> Backend:
        if not self.on_host:
            return self
        from mfg_rl.backends.numpy_backend import NumpyBackend

        return NumpyBackend(dtype=self.dtype_name)

    def solve_tridiagonal(self, lower: Array, diag: Array, upper: Array, rhs: Array) -> Array:
        if self.on_host:
            x = tridiagonal.lapack_gtsv(*(t.detach().numpy() for t in (lower, diag, upper, rhs)))
            return self.asarray(x, dtype=rhs.dtype)
        return super().solve_tridiagonal(lower, diag, upper, rhs)

    def factor_tridiagonal(self, lower: Array, diag: Array, upper: Array) -> Any:
        if self.on_host:
            return _HostTridiagonalFactor(*(t.detach().numpy() for t in (lower, diag, upper)))
        return super().factor_tridiagonal(lower, diag, upper)

    def solve_sparse(self, pattern: sparse.SparsePattern, values: Array, rhs: Array) -> Array:
        if self.on_host:
            x = sparse.scipy_spsolve(pattern, values.detach().numpy(), rhs.detach().numpy())
            return self.asarray(x, dtype=rhs.dtype)
        return super().solve_sparse(pattern, values, rhs)

    def generator(self, seed: int) -> Any:
        """numpy's PCG64 on the CPU (zero-copy draws); a ``torch.Generator`` on an accelerator."""
        if self.on_host:
            return super().generator(seed)
        import torch

        return torch.Generator(device=self.torch_device).manual_seed(check_seed(seed))

    def normal(self, generator: Any, shape: tuple[int, ...]) -> Array:
        import torch

        if self.on_host:
            return super().normal(generator, shape)
        return torch.randn(shape, generator=generator, dtype=self.dtype, device=self.torch_device)

    def uniform(self, generator: Any, shape: tuple[int, ...]) -> Array:
        import torch

        if self.on_host:
            return super().uniform(generator, shape)
        return torch.rand(shape, generator=generator, dtype=self.dtype, device=self.torch_device)


class _HostTridiagonalFactor(tridiagonal.LapackTridiagonalFactor):
    """``LapackTridiagonalFactor`` on zero-copy numpy views of CPU tensors."""

    def solve(self, rhs: Array) -> Array:
        import torch

        return torch.from_numpy(super().solve(rhs.detach().numpy())).to(rhs.dtype)

    def solve_entry(self, n: int, rhs: Array) -> Array:
        import torch

        return torch.from_numpy(super().solve_entry(n, rhs.detach().numpy())).to(rhs.dtype)
