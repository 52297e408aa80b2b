"""The jax backend (optional extra ``mfg-rl[jax]``): float64 through ``jax_enable_x64``."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import sparse
from mfg_rl.backends.base import Array, Backend, check_seed, float_dtype_name
from mfg_rl.checks import shown


def import_jax() -> Any:
    """Import jax with 64-bit floats enabled, or say how to install it."""
    try:
        import jax
    except ImportError as exc:
        raise ImportError(
            "the jax backend needs jax: pip install 'mfg-rl[jax]' (or pip install jax)"
        ) from exc
    jax.config.update("jax_enable_x64", True)
    return jax


class JaxBackend(Backend):
    """Arrays are ``jax.Array`` on jax's default device (or ``device``)."""

    name = "jax"

    def __init__(self, device: str | None = None, dtype: Any = None) -> None:
        jax = import_jax()
        import jax.numpy as jnp

        dtype = jnp.dtype(float_dtype_name(dtype) or "float64").type
        if device is None:
            jax_device = jax.devices()[0]
        else:
            if not isinstance(device, str):
                raise TypeError(f"device must be a jax device name such as 'cpu' or 'gpu:0', "
                                f"got {shown(device)}")
            platform, _, index = device.partition(":")
            try:
                jax_device = jax.devices(platform)[int(index or 0)]
            except (RuntimeError, IndexError, ValueError) as exc:
                raise ValueError(f"jax has no device {device!r}: {exc}") from exc
        super().__init__(jnp, dtype, f"{jax_device.platform}:{jax_device.id}")
        self.jax_device = jax_device

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        import jax

        return jax.device_put(np.asarray(x, dtype=self.dtype if dtype is None else dtype), self.jax_device)

    def is_native(self, x: Any) -> bool:
        import jax

        return isinstance(x, jax.Array)

    def solve_tridiagonal(self, lower: Array, diag: Array, upper: Array, rhs: Array) -> Array:
        from jax.lax.linalg import tridiagonal_solve

        jnp = self.xp
        dl = jnp.concatenate([jnp.zeros_like(lower[..., :1]), lower[..., 1:]], axis=-1)
        du = jnp.concatenate([upper[..., :-1], jnp.zeros_like(upper[..., -1:])], axis=-1)
        shape = jnp.broadcast_shapes(dl.shape, diag.shape, du.shape, rhs.shape)
        args = [jnp.broadcast_to(a, shape) for a in (dl, diag, du)]
        return tridiagonal_solve(*args, jnp.broadcast_to(rhs, shape)[..., None])[..., 0]

    def solve_sparse(self, pattern: sparse.SparsePattern, values: Array, rhs: Array) -> Array:
        x = sparse.scipy_spsolve(pattern, np.asarray(values), np.asarray(rhs))
        return self.asarray(x, dtype=rhs.dtype)

    def generator(self, seed: int) -> Any:
        """A ``JaxGenerator``: a PRNG key on this device, split at every draw."""
        return JaxGenerator(check_seed(seed), self.jax_device)

    def normal(self, generator: Any, shape: tuple[int, ...]) -> Array:
        import jax

        return jax.random.normal(generator.split(), shape, dtype=self.dtype)

    def uniform(self, generator: Any, shape: tuple[int, ...]) -> Array:
        import jax

        return jax.random.uniform(generator.split(), shape, dtype=self.dtype)


class JaxGenerator:
    """Stateful wrapper of a jax PRNG key: ``split()`` returns a fresh subkey each call."""

    def __init__(self, seed: int, device: Any) -> None:
        import jax

        self.key = jax.device_put(jax.random.key(seed), device)

    def split(self) -> Any:
        import jax

        self.key, sub = jax.random.split(self.key)
        return sub
