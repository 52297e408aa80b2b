"""Benchmark of the backend kernels against their scipy baselines, in one run.

1. Batched tridiagonal solve (``backend.solve_tridiagonal``) for batch 1..1e4 and size
   1e2..1e4 (at most 1e7 unknowns) on every installed backend, against
   ``scipy.linalg.solve_banded`` called in a Python loop over the batch.
2. Gaussian KDE of N = 1e4..1e6 standard-normal particles on 512, 1024 and 4096 nodes of
   [-6, 6] (Scott's bandwidth, no reflection: the same estimate scipy computes), exact and
   binned on every backend, against ``scipy.stats.gaussian_kde`` evaluated at the nodes;
   with the max-norm relative error of binned against exact.

Times are the best of a few runs after a warm-up (jax compiles on first use). Runs that
would take long are timed on a subsample and scaled linearly in N (marked ``*``).

Usage::

    python benchmarks/kernels.py             # full table (a few minutes on 2 CPU cores)
    python benchmarks/kernels.py --quick     # tiny sizes, seconds
    python benchmarks/kernels.py --device cuda --threads 4
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg import solve_banded
from scipy.stats import gaussian_kde

from mfg_rl.backends import available_backends, create_backend
from mfg_rl.core import Grid

SCIPY_LIMIT_S = 25.0  # scipy runs predicted longer than this are timed on a subsample
EXACT_PAIRS = 5e7  # exact KDE runs beyond N * M = EXACT_PAIRS are timed on a subsample
ERROR_PAIRS = 1.1e9  # the full exact reference for the error column only up to this N * M


def sync(backend: Any, x: Any) -> Any:
    """Wait for the device (jax is asynchronous, CUDA too)."""
    if backend.name == "jax":
        x.block_until_ready()
    elif backend.name == "torch" and backend.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return x


def best_time(fn: Callable[[], Any], budget: float = 1.0, repeats: int = 5, warmup: bool = True) -> float:
    """Best wall time of ``fn`` over up to ``repeats`` runs within about ``budget`` seconds."""
    if warmup:
        fn()  # compilation (jax), caches
    best = math.inf
    start = time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        if time.perf_counter() - start > budget:
            break
    return best


def fmt_time(seconds: float, estimated: bool = False) -> str:
    star = "*" if estimated else " "
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.1f} us{star}"
    if seconds < 1.0:
        return f"{seconds * 1e3:7.2f} ms{star}"
    return f"{seconds:7.2f} s {star}"


def make_backends(device: str | None) -> list[Any]:
    out = []
    for name in available_backends():
        out.append(create_backend(name, device=device if name == "torch" else None))
    return out


# -- tridiagonal ----------------------------------------------------------------------------
def bench_tridiagonal(backends: list[Any], batches: list[int], sizes: list[int]) -> None:
    rng = np.random.default_rng(0)
    head = f"{'batch':>6} {'n':>6} | {'scipy loop':>11} |"
    head += "".join(f" {b.name + ' (' + b.device + ')':>20} {'speedup':>8} |" for b in backends)
    print("\nBatched tridiagonal solve  (baseline: scipy.linalg.solve_banded in a Python loop)")
    print(head)
    print("-" * len(head))
    for n in sizes:
        for batch in batches:
            if batch * n > 1e7:
                continue
            lower = rng.uniform(-1, 1, (batch, n))
            upper = rng.uniform(-1, 1, (batch, n))
            diag = 2.5 + rng.uniform(0, 1, (batch, n))
            rhs = rng.normal(size=(batch, n))
            bands = np.zeros((batch, 3, n))
            bands[:, 0, 1:] = upper[:, :-1]
            bands[:, 1] = diag
            bands[:, 2, :-1] = lower[:, 1:]

            def scipy_loop(bands: np.ndarray = bands, rhs: np.ndarray = rhs) -> None:
                for k in range(rhs.shape[0]):
                    solve_banded((1, 1), bands[k], rhs[k], check_finite=False)

            base = best_time(scipy_loop, budget=2.0, repeats=3)
            row = f"{batch:>6} {n:>6} | {fmt_time(base):>11} |"
            for backend in backends:
                args = [backend.asarray(a) for a in (lower, diag, upper, rhs)]
                t = best_time(lambda b=backend, a=args: sync(b, b.solve_tridiagonal(*a)))
                row += f" {fmt_time(t):>20} {base / t:>7.1f}x |"
            print(row, flush=True)


# -- KDE ------------------------------------------------------------------------------------
def scipy_kde_time(x: np.ndarray, nodes: np.ndarray, per_pair: float) -> tuple[float, bool]:
    """Time of gaussian_kde on the nodes; on a subsample scaled by N if it would be slow."""
    n = x.size
    if per_pair * n * nodes.size <= SCIPY_LIMIT_S:
        kde = gaussian_kde(x)
        return best_time(lambda: kde(nodes), budget=2.0, repeats=3, warmup=False), False
    sub = max(1000, int(SCIPY_LIMIT_S / 4 / (per_pair * nodes.size)))
    # same kernel width as on the full sample: Scott's factor of n, on the subsample's data
    factor = n ** (-0.2) * x.std(ddof=1) / x[:sub].std(ddof=1)
    kde = gaussian_kde(x[:sub], bw_method=factor)
    t = best_time(lambda: kde(nodes), budget=2.0, repeats=2, warmup=False)
    return t * n / sub, True


def bench_kde(backends: list[Any], sizes: list[int], grids: list[int]) -> dict[str, float]:
    rng = np.random.default_rng(1)
    data = rng.normal(size=max(sizes))
    calibrate = gaussian_kde(data[:2000])
    probe = np.linspace(-6, 6, 512)
    per_pair = best_time(lambda: calibrate(probe), repeats=3) / (2000 * 512)
    print(
        "\nGaussian KDE, standard-normal particles on [-6, 6], Scott's bandwidth, no reflection"
        "\n(baseline: scipy.stats.gaussian_kde evaluated on the nodes; speedup = scipy / ours;"
        "\n err = max|binned - exact| / max|exact| (nan: exact reference skipped, N*M > "
        f"{ERROR_PAIRS:.1e});\n * = timed on a subsample, scaled linearly in N)"
    )
    head = (
        f"{'N':>8} {'M':>5} {'backend':>8} | {'scipy':>11} | {'exact':>11} {'speedup':>8} |"
        f" {'binned':>11} {'speedup':>9} | {'err':>8}"
    )
    print(head)
    print("-" * len(head))
    headline: dict[str, float] = {}
    for m in grids:
        grid = Grid([(-6.0, 6.0)], m, boundary="no_flux")
        nodes = grid.coordinates()[0]
        for n in sizes:
            x = data[:n]
            base, base_est = scipy_kde_time(x, nodes, per_pair)
            exact_ref = None
            for backend in backends:
                xb = backend.asarray(x)
                pairs = n * m
                sub = n if pairs <= EXACT_PAIRS else max(1000, int(EXACT_PAIRS / m))
                xs = backend.asarray(x[:sub])
                sigma = backend.to_numpy(xb).std(ddof=1) * n ** (-0.2)  # Scott on the full sample

                def exact(b: Any = backend, p: Any = xs, s: float = sigma, g: Grid = grid) -> Any:
                    return sync(b, b.kde(p, None, g, bandwidth=s, method="exact", reflect=False))

                t_exact = best_time(exact, budget=0.5, repeats=2) * n / sub

                def binned(b: Any = backend, p: Any = xb, g: Grid = grid) -> Any:
                    return sync(b, b.kde(p, None, g, method="binned", reflect=False))

                t_binned = best_time(binned, budget=2.0)
                if exact_ref is None and pairs <= ERROR_PAIRS:  # one per row, first backend
                    exact_ref = backend.to_numpy(backend.kde(xb, None, grid, method="exact", reflect=False))
                rho = backend.to_numpy(binned())
                err = math.nan
                if exact_ref is not None:
                    err = float(np.max(np.abs(rho - exact_ref)) / np.max(exact_ref))
                print(
                    f"{n:>8.0e} {m:>5} {backend.name:>8} | {fmt_time(base, base_est):>11} |"
                    f" {fmt_time(t_exact, sub < n):>11} {base / t_exact:>7.1f}x |"
                    f" {fmt_time(t_binned):>11} {base / t_binned:>8.0f}x | {err:8.1e}",
                    flush=True,
                )
                if n == 10**6 and m == 1024:
                    headline[backend.name] = base / t_binned
                    headline[backend.name + "_err"] = err
                    headline["scipy_estimated"] = float(base_est)
    return headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: single-threaded like scipy's loops)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = make_backends(device)
    print("backends:", ", ".join(f"{b.name} on {b.device} ({b.dtype_name})" for b in backends))
    print(f"torch threads: {torch.get_num_threads()}")
    if args.quick:
        bench_tridiagonal(backends, [1, 100], [100, 1000])
        bench_kde(backends, [10**4], [512])
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
        return
    bench_tridiagonal(backends, [1, 10, 100, 1000, 10**4], [100, 1000, 10**4])
    headline = bench_kde(backends, [10**4, 10**5, 10**6], [512, 1024, 4096])
    if headline:
        names = [b.name for b in backends if b.name in headline]
        best = max(names, key=headline.get)
        note = " (scipy time extrapolated from a subsample)" if headline["scipy_estimated"] else ""
        goal = "met" if headline[best] >= 1000 and headline[best + "_err"] <= 1e-3 else "NOT met"
        each = ", ".join(f"{k} {headline[k]:.0f}x (err {headline[k + '_err']:.1e})" for k in names)
        print(
            "\nGoal: binned KDE of 1e6 particles on 1024 nodes >= 1000x faster than scipy's"
            f" gaussian_kde and within 1e-3 of exact: {goal} ({best}){note}\n  {each}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
