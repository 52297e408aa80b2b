"""The GPU path in one table: device vs host (numpy) on the same machine, with issue 13's targets.

Rows: solves (lq-1d 201x50 by the default placement, numpy and forced on the device; crowd-2d
128x128 Nt=100; lq-1d 2001x1000), a particle FP sweep (N = 1e7 and 1e8 particles x 100 steps),
the binned KDE of 1e8 particles on 1024 nodes, and the batched env at N = 1e6 agents. Every
timed piece has a wall-clock cap (``--cap`` seconds): a solve still running at the cap stops
and is shown as ``>cap`` with the iterations it reached, so the whole table fits one device call
(under 4 minutes on an H200). Host columns are numpy on this machine's CPU; a host figure
marked ``~`` is scaled linearly from a smaller N. ``--quick`` shrinks every size (a smoke test
that runs on a CPU-only machine with ``--device cpu``).

Usage::

    python benchmarks/gpu.py                      # on a machine with CUDA
    python benchmarks/gpu.py --device cpu --quick # the same rows, tiny, anywhere
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mfg_rl import create_backend, problems, solve
from mfg_rl.solvers import DiscreteMFG
from mfg_rl.solvers.callbacks import Callback
from mfg_rl.solvers.particles import ParticleFP


class Cap(Callback):
    """Stops a coupling loop once ``seconds`` have passed (the row then reads ``>cap``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start, self.hit = seconds, time.perf_counter(), False

    def on_iteration(self, state: Any) -> bool:
        self.hit = time.perf_counter() - self.start > self.seconds
        return not self.hit


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def solve_seconds(name: str, params: dict[str, Any], backend: Any, cap: float) -> tuple[float, str]:
    """Wall time of a converged solve (after a warm-up on a tiny grid), or ``>cap`` and its iterations."""
    solve(problems.make(name, **{k: min(v, 16) for k, v in params.items()}), backend=backend,
          progress=False, cache=False)
    limit = Cap(cap)
    start = time.perf_counter()
    eq = solve(problems.make(name, **params), backend=backend, progress=False, cache=False,
               callbacks=[limit], allow_unconverged=True)
    seconds = time.perf_counter() - start
    note = f"{eq.diagnostics.iterations} it, {eq.diagnostics.backend}:{eq.diagnostics.device}"
    return seconds, (f">{cap:.0f}s: " if limit.hit else "") + note


def particle_seconds(backend: Any, n: int, steps: int) -> float:
    """One particle FP sweep of lq-1d (201 nodes, exact u) with ``n`` particles over ``steps`` steps."""
    problem = problems.make("lq-1d", Nx=201, Nt=steps)
    (x,), times = problem.grid.coordinates(), problem.time.times()
    u = backend.asarray(np.stack([problem.exact.u(t, x) for t in times]))
    m = backend.asarray(np.stack([problem.exact.m(t, x) for t in times]))
    disc = DiscreteMFG(problem, backend)
    ParticleFP(min(n, 10_000), seed=0).simulate(disc, u, m)
    sync(backend.device)
    start = time.perf_counter()
    ParticleFP(n, seed=0, dtype="float32").simulate(disc, u, m)
    sync(backend.device)
    return time.perf_counter() - start


def kde_seconds(backend: Any, n: int, nodes: int) -> float:
    """Best of three binned KDEs of ``n`` standard normal particles on ``nodes`` nodes of [-6, 6]."""
    from mfg_rl.core import Grid

    grid = Grid([(-6.0, 6.0)], nodes, boundary="no_flux")
    generator = torch.Generator(device=backend.device if backend.name == "torch" else "cpu").manual_seed(0)
    points = torch.randn(n, generator=generator, device=generator.device, dtype=torch.float32)
    x = points if backend.name == "torch" else points.numpy()
    best = float("inf")
    for _ in range(4):
        start = time.perf_counter()
        backend.kde(x, None, grid, method="binned", reflect=False)
        sync(backend.device)
        best = min(best, time.perf_counter() - start)
    return best


def env_rate(device: str, num_envs: int, steps: int = 20) -> float:
    """Agent-steps/s of the batched LQ1D env stepping the equilibrium control (median step)."""
    import gymnasium

    import mfg_rl  # noqa: F401  (registers the ids)
    from mfg_rl.envs import equilibrium_policy

    envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=num_envs, device=device)
    policy = equilibrium_policy(envs)
    obs, _ = envs.reset(seed=0)
    times = []
    for _ in range(steps + 1):
        sync(device)
        start = time.perf_counter()
        obs, *_ = envs.step(policy.act(obs))
        sync(device)
        times.append(time.perf_counter() - start)
    envs.close()
    return num_envs / float(np.median(times[1:]))


def row(label: str, target: str, host: str, device: str, ratio: str, met: str) -> None:
    print(f"{label:38s} {target:>12s} {host:>22s} {device:>30s} {ratio:>9s} {met:>5s}", flush=True)


def timed_row(label: str, target: float | None, host: Callable[[], float] | None, device: Callable[[], float],
              scale: float = 1.0) -> None:
    """A row of seconds: host (scaled by ``scale`` when timed on a smaller N), device, ratio, target."""
    h = host() * scale if host is not None else None
    d = device()
    shown_host = "-" if h is None else ("~" if scale != 1.0 else "") + f"{h:.4f} s"
    row(label, "-" if target is None else f"<= {target:g} s", shown_host, f"{d:.4f} s",
        "-" if h is None else f"{d / h:.2f}x", "-" if target is None else ("yes" if d <= target else "NO"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--cap", type=float, default=30.0, help="seconds before a solve row stops")
    args = parser.parse_args()
    device, quick = args.device, args.quick
    host, dev = create_backend("numpy"), create_backend("torch", device=device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else device
    print(f"device: torch {torch.__version__} on {name}; host: numpy; {time.strftime('%Y-%m-%d')}"
          f"{' (quick sizes)' if quick else ''}")
    row("work", "target", "host (numpy)", f"device ({device})", "dev/host", "met")

    lq = {"Nx": 51, "Nt": 10} if quick else {"Nx": 201, "Nt": 50}
    h, _ = solve_seconds("lq-1d", lq, host, args.cap)
    start = time.perf_counter()
    placed = solve(problems.make("lq-1d", **lq), progress=False, cache=False)
    p = time.perf_counter() - start
    row(f"solve lq-1d {lq['Nx']}x{lq['Nt']} default placement", "<= numpy", f"{h:.3f} s",
        f"{p:.3f} s ({placed.diagnostics.backend})", f"{p / h:.2f}x", "yes" if p <= 1.1 * h else "NO")
    d, note = solve_seconds("lq-1d", lq, dev, args.cap)
    row(f"solve lq-1d {lq['Nx']}x{lq['Nt']} forced device", "<= 0.5 s", f"{h:.3f} s", f"{d:.3f} s ({note})",
        f"{d / h:.2f}x", "yes" if d <= 0.5 and ">" not in note else "NO")
    for case, params, target in (
        ("crowd-2d", {"Nx": 16, "Ny": 16, "Nt": 10} if quick else {"Nx": 128, "Ny": 128, "Nt": 100}, 3.0),
        ("lq-1d", {"Nx": 101, "Nt": 50} if quick else {"Nx": 2001, "Nt": 1000}, None),
    ):
        h, host_note = solve_seconds(case, params, host, args.cap)
        d, note = solve_seconds(case, params, dev, args.cap)
        size = "x".join(str(params[k]) for k in ("Nx", "Ny") if k in params) + f" Nt={params['Nt']}"
        row(f"solve {case} {size}", "-" if target is None else f"<= {target:g} s",
            f"{h:.2f} s" + (" (>cap)" if ">" in host_note else ""), f"{d:.2f} s ({note})", f"{d / h:.2f}x",
            "-" if target is None else ("yes" if d <= target and ">" not in note else "NO"))

    for n, target in ((10**4, None), (10**5, None)) if quick else ((10**7, 0.3), (10**8, 3.0)):
        small = min(n, 10**6)
        timed_row(f"particle FP sweep N={n:.0e} x 100", target,
                  (lambda s=small: particle_seconds(host, s, 100)) if n <= 10**7 else None,
                  lambda n=n: particle_seconds(dev, n, 100), scale=n / small)
    n = 10**5 if quick else 10**8
    timed_row(f"binned KDE N={n:.0e} -> 1024 nodes", 0.002 if not quick else None,
              lambda: kde_seconds(host, min(n, 10**7), 1024), lambda: kde_seconds(dev, n, 1024),
              scale=n / min(n, 10**7))
    agents = 10**4 if quick else 10**6
    rate = env_rate(device, agents)
    row(f"batched env N={agents:.0e} agent-steps/s", ">= 1e9", "-", f"{rate:.3e}", "-",
        "-" if quick else ("yes" if rate >= 1e9 else "NO"))


if __name__ == "__main__":
    main()
