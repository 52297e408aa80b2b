"""The torch backend (default): CUDA, then MPS, then CPU; float64 unless asked.

On the CPU, solves hand zero-copy numpy views of the tensors to LAPACK/SuperLU; on an
accelerator they run as vectorised torch code on the device (parallel cyclic reduction,
BiCGStab), never moving tensors to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import sparse, tridiagonal
from mfg_rl.backends.base import Array, Backend, check_seed, float_dtype_name
from mfg_rl.checks import shown


def default_torch_device() -> str:
    """``"cuda"`` when available, then ``"mps"``, else ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def torch_devices() -> list[str]:
    """The torch devices of this machine: ``"cpu"``, then ``"cuda:<i>"`` and ``"mps"`` when present."""
    import torch

    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def checked_torch_device(device: Any) -> Any:
    """``device`` (None: ``default_torch_device()``) as a ``torch.device`` this machine has; anything
    else raises naming ``device`` and the devices there are (``"cuda"`` without CUDA, ``"meta"``, ...)."""
    import torch

    if device is None:
        return torch.device(default_torch_device())
    here = torch_devices()
    allowed = (f"None, a torch.device or a name such as 'cpu', 'cuda', 'cuda:0' or 'mps' (this machine has "
               f"{here})")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be {allowed}, got {shown(device)}")
    try:
        found = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be {allowed}, got {shown(device)}") from None
    name = found.type if found.index is None else f"{found.type}:{found.index}"
    if not (found.type == "cpu" or name in here
            or (found.index is None and any(d.startswith(f"{found.type}:") for d in here))):
        raise ValueError(f"device={shown(device)} is not available here ({here}); pass one of them")
    return found


class TorchBackend(Backend):
    """Arrays are ``torch.Tensor`` on ``device``."""

    name = "torch"

    def __init__(self, device: str | None = None, dtype: Any = None) -> None:
        import array_api_compat.torch as xp
        import torch

        torch_device = checked_torch_device(device)
        name = float_dtype_name(dtype) or ("float32" if torch_device.type == "mps" else "float64")
        super().__init__(xp, getattr(torch, name), str(torch_device))
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
