"""A tour of the backends: the same batched tridiagonal solve on every installed library.

Each backend receives the same diagonally dominant systems (the shape of an implicit
HJB/FP step in 1D), solves all of them in one call and reports the residual
``max |A x - b|`` and the distance to the numpy reference solution.

Run:
    python examples/backends_tour.py          # MFG_RL_EXAMPLE_SIZE=tiny for a quick look
"""

from __future__ import annotations

import os
import time

import numpy as np

from mfg_rl import available_backends, create_backend

SIZES = {"tiny": (8, 33), "full": (256, 2001)}  # (batch, unknowns per system)


def tridiagonal_matvec(lower: np.ndarray, diag: np.ndarray, upper: np.ndarray,
                       x: np.ndarray) -> np.ndarray:
    """``A x`` for rows ``lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1]``."""
    y = diag * x
    y[..., 1:] += lower[..., 1:] * x[..., :-1]
    y[..., :-1] += upper[..., :-1] * x[..., 1:]
    return y


def main() -> None:
    size = os.environ.get("MFG_RL_EXAMPLE_SIZE", "full")
    if size not in SIZES:
        raise SystemExit(f"MFG_RL_EXAMPLE_SIZE must be one of {', '.join(SIZES)}, got {size!r}")
    batch, n = SIZES[size]
    rng = np.random.default_rng(seed=0)
    lower, upper = -rng.uniform(0.0, 1.0, (2, batch, n))
    diag = 2.0 + rng.uniform(0.0, 1.0, (batch, n))  # strictly diagonally dominant
    rhs = rng.standard_normal((batch, n))
    print(f"{batch} tridiagonal systems of {n} unknowns, solved in one call per backend\n")

    reference = None
    print(f"{'backend':8}  {'device':8}  {'dtype':8}  {'seconds':>9}  {'residual':>9}  {'vs numpy':>9}")
    for name in reversed(list(available_backends())):  # numpy first: it is the reference
        backend = create_backend(name)
        args = [backend.asarray(a) for a in (lower, diag, upper, rhs)]
        backend.solve_tridiagonal(*args)  # warm-up (jit compilation on jax)
        start = time.perf_counter()
        x = backend.to_numpy(backend.solve_tridiagonal(*args))
        seconds = time.perf_counter() - start
        residual = np.max(np.abs(tridiagonal_matvec(lower, diag, upper, x) - rhs))
        reference = x if reference is None else reference
        distance = np.max(np.abs(x - reference))
        print(f"{name:8}  {backend.device:8}  {backend.dtype_name:8}  {seconds:9.2e}  "
              f"{residual:9.1e}  {distance:9.1e}")
        assert residual < 1e-10, f"{name}: residual {residual:.3g} is too large"


if __name__ == "__main__":
    main()
