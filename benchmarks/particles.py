"""Benchmark of the particle Fokker-Planck (``ParticleFP``) against an MFG_PDE-style baseline.

Particle-steps per second (``N * Nt / seconds``, KDE included) on ``lq-1d`` (201 nodes,
no-flux walls, exact ``u``) for N = 1e4..1e7 on each backend, against the way the MFG_PDE
library does it: numpy random normals, ``np.interp`` of the drift and
``scipy.stats.gaussian_kde`` evaluated at the nodes, every step. The baseline is run for
the N where it is predicted (from two timed steps) to stay under ``--baseline-limit``
seconds. Runs predicted above ``--limit`` seconds are timed on fewer steps and scaled
linearly in Nt (marked ``*``); so is the baseline, from its two-step probe. Each backend
runs with float64 particles and, for numpy and torch, float32 particles (``dtype=``;
densities stay float64). Target on a CPU: N = 1e6, Nt = 100 under 2 s.

Usage::

    python benchmarks/particles.py            # N = 1e4..1e7 (about 3 minutes on 2 CPU cores)
    python benchmarks/particles.py --quick    # tiny sizes, seconds
    python benchmarks/particles.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from scipy.stats import gaussian_kde

from mfg_rl import problems
from mfg_rl.backends import available_backends, create_backend
from mfg_rl.solvers import DiscreteMFG
from mfg_rl.solvers.particles import ParticleFP


def sync(backend: Any) -> None:
    """Wait for an asynchronous device (CUDA)."""
    if backend.name == "torch" and backend.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def particle_seconds(backend: Any, n: int, nt: int, dtype: str | None = None) -> float:
    """Wall time of one ``ParticleFP`` solve of ``lq-1d`` with ``nt`` steps (after a warm-up)."""
    problem = problems.make("lq-1d", Nx=201, Nt=nt)
    (x,), times = problem.grid.coordinates(), problem.time.times()
    u = backend.asarray(np.stack([problem.exact.u(t, x) for t in times]))
    m = backend.asarray(np.stack([problem.exact.m(t, x) for t in times]))
    disc = DiscreteMFG(problem, backend)
    # warm-up: imports; jax compiles each eager op once per shape, so it warms up at this N
    ParticleFP(n if backend.name == "jax" else 1000, seed=0).simulate(disc, u, m)
    start = time.perf_counter()
    ParticleFP(n, seed=0, dtype=dtype).simulate(disc, u, m)
    sync(backend)
    return time.perf_counter() - start


def baseline_seconds(n: int, nt: int) -> float:
    """MFG_PDE style: numpy normals, np.interp drift, reflection, gaussian_kde per step."""
    problem = problems.make("lq-1d", Nx=201, Nt=nt)
    (x,), times, (lo, hi) = problem.grid.coordinates(), problem.time.times(), problem.grid.bounds[0]
    drift = np.stack([problem.exact.control(t, x) for t in times])
    dt, sigma = problem.time.dt, problem.sigma
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    cells = rng.choice(x.size, size=n, p=problem.m0 / problem.m0.sum())
    particles = x[cells] + (rng.random(n) - 0.5) * problem.grid.spacing[0]
    for step in range(nt):
        noise = sigma * np.sqrt(dt) * rng.standard_normal(n)
        particles = particles + np.interp(particles, x, drift[step]) * dt + noise
        particles = np.where(particles < lo, 2 * lo - particles, particles)
        particles = np.where(particles > hi, 2 * hi - particles, particles)
        density = gaussian_kde(particles)(x)
        density /= density.sum() * problem.grid.spacing[0]
    return time.perf_counter() - start


def fmt(seconds: float, estimated: bool) -> str:
    return f"{seconds:8.3f}{'*' if estimated else ' '}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--device", default=None, help="torch device (default: best available)")
    parser.add_argument("--nt", type=int, default=100, help="time steps (default 100)")
    parser.add_argument("--limit", type=float, default=20.0, help="longest full particle run, seconds")
    parser.add_argument("--baseline-limit", type=float, default=60.0, help="longest baseline run, seconds")
    args = parser.parse_args()
    sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6, 10**7]
    nt = 5 if args.quick else args.nt
    names = [b for b in ("torch", "numpy", "jax") if b in available_backends()]
    configs = [(name, dtype) for name in names for dtype in ((None, "float32") if name != "jax" else (None,))]
    print(f"lq-1d, 201 nodes, Nt = {nt}, densities float64; {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'backend':<14}{'dtype':>8}{'N':>10}{'Nt':>5}{'seconds':>10}{'steps/s':>12}{'baseline s':>12}"
          f"{'ratio':>8}")
    baseline_probe = 0.0
    for n in sizes:
        base, base_est = None, False
        if baseline_probe * 10 <= args.baseline_limit:  # the two-step probe itself stays affordable
            baseline_probe = baseline_seconds(n, 2)
            base = baseline_probe / 2 * nt
            base_est = base > args.baseline_limit
            if not base_est:
                base = baseline_seconds(n, nt)
        for name, dtype in configs:
            backend = create_backend(name, device=args.device if name == "torch" else None)
            steps = nt
            probe = particle_seconds(backend, n, 2, dtype) / 2 * nt
            if probe > args.limit:
                steps = max(2, int(nt * args.limit / probe))
            seconds = particle_seconds(backend, n, steps, dtype) * nt / steps
            estimated = steps < nt
            rate = n * nt / seconds
            base_txt = "-" if base is None else fmt(base, base_est)
            ratio = "-" if base is None else f"{base / seconds:7.1f}x"
            print(f"{name + ':' + backend.device:<14}{dtype or 'float64':>8}{n:>10.0e}{nt:>5}"
                  f"{fmt(seconds, estimated):>10}{rate:>12.2e}{base_txt:>12}{ratio:>8}", flush=True)
    print("* timed on fewer steps and scaled linearly in Nt; '-': baseline would exceed its limit")


if __name__ == "__main__":
    main()
