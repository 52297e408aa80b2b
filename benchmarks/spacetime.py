"""Space-time strategies against time marching: one table, measured in one run.

Rows per case: ``sequential`` (marching, damped fixed point), ``global`` (one sparse
space-time solve per trajectory, SuperLU), ``global-krylov`` (FGMRES, time-sweep
preconditioner), ``newton`` (monolithic Newton on the coupled system, started cold,
falling back to two marched fixed-point iterations at its first damped step; its note
gives the Newton steps, the FGMRES iterations and the seconds of fixed-point warmup),
``jax-scan`` (the marching compiled by XLA, on the jax backend;
its seconds exclude the one-off compile, shown in the note), all to the same ``tol``;
``ratio`` = sequential seconds / row seconds. ``peak MiB``: the process's resident memory during the row above
its value before (sampled every 5 ms from ``/proc/self/statm``, after ``malloc_trim``
hands freed heap back to the OS; memory that jax or torch keep in their own pools from an
earlier row is not counted again).

``parareal S=..`` rows: ``Parareal(slices=S)`` (one coarse implicit step per slice unless
``--coarse-factor``), its fine sweeps batched over slices in this one process (1D; 2D slices
by one thread per CPU core from 128x128 nodes, else one after the other), warm-started by
the coupling loop. Their note gives ``K``, the mean Parareal iterations per sweep in the
coupling loop (HJB/FP), ``K8``, the iterations a cold sweep (coarse start) at the sequential
equilibrium needs until every slice boundary value is within 1e-8 of the fine solution
(HJB/FP; ``= S`` is the finite termination), and ``model``, the modelled speedup of the
trajectory sweeps with ``S`` workers. After the rows, ``model P=16/64`` uses the same
measured costs with 16 and 64 workers and ``K`` of the largest ``S`` run. The model, per
sweep of each equation::

    T_par(P) = (K + s) n_c c_g + K ceil(Nt / P) c_f,    speedup = Nt c_f / T_par

with ``c_f`` the cost of one fine step measured in the sequential row (unbatched, one
worker), ``c_g`` of one coarse step measured in the Parareal row and ``n_c`` coarse steps
per sweep (``P - 1``: the last slice is never coarse-propagated; or ``(Nt - Nt/P) / r``);
``s = 1/P`` for warm starts (the first coarse propagations are independent) and 1 for a
coarse start sweep. Sweeps are weighted by their counts; the residual evaluations, the
rest of the coupling loop and communication costs are left out.
``--case name:Nx=..,Nt=..`` (repeatable) replaces the case list; ``--rows`` selects rows.
A row under 1 s is run ``1 + REPEATS`` times and its best time shown.

Cases: crowd-exit-1d at ``Nx=501, Nt=1000`` and crowd-2d at ``64x64, Nt=200``, plus
lq-1d at ``201x50`` and ``2001x1000`` (the equilibrium-solver performance goals).
``--quick`` uses small sizes. A row is stopped at ``--max-seconds`` (a callback ends the
coupling loop; the table says "stopped"); a global row, or a Newton row whose steps
factorise the coupled Jacobian (a local ``dF_u/dM``, e.g. congestion), whose sparse LUs,
predicted from ``t ~ 0.16 s (n / 2e4)^1.4`` per factorisation of ``n`` unknowns (measured
on this machine), exceed the limit is skipped and the table says so.

Usage::

    python benchmarks/spacetime.py --quick
    python benchmarks/spacetime.py --max-seconds 30 --backend numpy
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import threading
import time
from typing import Any

import numpy as np

from mfg_rl import SolverError, problems, solve
from mfg_rl.backends import create_backend
from mfg_rl.solvers.callbacks import Callback
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.newton import CoupledSystem
from mfg_rl.solvers.parareal import Parareal
from mfg_rl.solvers.trajectory import Sequential

ROWS = ("sequential", "global", "global-krylov", "newton", "jax-scan")
SLICES = (2, 4, 8, 16)
REPEATS = 4  # extra runs of a row under 1 s; its seconds are the best


class TimeLimit(Callback):
    """Stops the coupling loop once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self.hit = False

    def on_iteration(self, state: Any) -> bool:
        self.hit = time.perf_counter() - self.start > self.seconds
        return not self.hit


def cases(quick: bool) -> list[tuple[str, dict[str, int]]]:
    if quick:
        return [("crowd-exit-1d", {"Nx": 101, "Nt": 50}), ("crowd-2d", {"Nx": 16, "Ny": 16, "Nt": 10}),
                ("lq-1d", {"Nx": 201, "Nt": 50})]
    return [("crowd-exit-1d", {"Nx": 501, "Nt": 1000}), ("crowd-2d", {"Nx": 64, "Ny": 64, "Nt": 200}),
            ("lq-1d", {"Nx": 201, "Nt": 50}), ("lq-1d", {"Nx": 2001, "Nt": 1000})]


class PeakRSS:
    """Peak resident memory (MiB) of this process above its value at entry, sampled on a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss() - self.start)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        try:  # hand freed heap memory back to the OS, so the baseline is what is live
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.start = self.rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss() - self.start)


def run_row(problem: Any, row: str | Parareal, backend: str, tol: float,
            max_seconds: float) -> dict[str, Any]:
    unknowns = 2 * problem.grid.size * problem.time.Nt
    lu_seconds = 6 * 0.16 * (unknowns / 2e4) ** 1.4
    if row == "newton" and lu_seconds > max_seconds and newton_uses_lu(problem, backend):
        return {"note": f"skipped: LU of {unknowns:.1e} unknowns predicted > {max_seconds:g} s"}
    if row == "global" and 8 * 0.16 * (unknowns / 4e4) ** 1.4 > max_seconds:  # LU per Newton step, FP
        return {"note": f"skipped: one iteration's LUs of {unknowns / 2:.1e} unknowns predicted "
                        f"> {max_seconds:g} s"}
    method, coupling = (("sequential", "newton") if row == "newton" else (row, "fixed_point"))
    compile_seconds = 0.0
    if row == "jax-scan":
        backend = "jax"
        try:  # compile once (the programs are cached), so the timed solve is the run alone
            start = time.perf_counter()
            solve(problem, method=method, backend=backend, tol=tol, progress=False, max_iter=1,
                  allow_unconverged=True)
            compile_seconds = time.perf_counter() - start
        except ImportError as exc:
            return {"note": f"skipped: {exc}"}
    limit = TimeLimit(max_seconds)
    with PeakRSS() as memory:
        start = time.perf_counter()
        try:
            eq = solve(problem, method=method, coupling=coupling, backend=backend, tol=tol, progress=False,
                       callbacks=[limit], max_iter=2000)
        except SolverError as exc:  # a row that fails says so; the table goes on
            return {"note": f"failed after {time.perf_counter() - start:.1f} s: {exc}"}
        seconds = time.perf_counter() - start
    for _ in range(REPEATS if seconds < 1.0 else 0):  # short rows: best of several, as timing noise is ~2x
        start = time.perf_counter()
        solve(problem, method=method, coupling=coupling, backend=backend, tol=tol, progress=False,
              max_iter=2000)
        seconds = min(seconds, time.perf_counter() - start)
    d = eq.diagnostics
    note = "converged" if d.converged else ("stopped at limit" if limit.hit else "not converged")
    if row == "jax-scan":
        note += f" (compile + 1 iteration {compile_seconds:.1f} s)"
    if row == "newton":
        t = d.timings
        note += (f" ({t['newton_steps']:.0f} Newton steps, {t['linear_iterations']:.0f} FGMRES, "
                 f"warmup {t['warmup']:.2f} s)")
    return {"seconds": seconds, "iterations": d.iterations, "residual": d.residual, "note": note,
            "m": eq.m.numpy(), "u": eq.u.numpy(), "timings": d.timings, "converged": d.converged,
            "peak": memory.peak}


def newton_uses_lu(problem: Any, backend: str) -> bool:
    """Whether Newton's steps factorise the coupled Jacobian (its local ``dF_u/dM`` is not zero
    at the cold start) instead of inverting it by two sweeps."""
    disc = DiscreteMFG(problem, create_backend(backend))
    M = disc.xp.stack([disc.m0] * disc.Nt)
    U = disc.xp.stack([disc.terminal_cost(disc.m0)] * disc.Nt)
    um = CoupledSystem(disc).blocks(U, M)[1]
    return float(disc.xp.max(disc.xp.abs(um))) != 0.0


def sweeps(r: dict[str, Any]) -> dict[str, int]:
    """HJB and FP sweeps of a coupling run (the converged last iteration runs no FP)."""
    return {"hjb": r["iterations"], "fp": r["iterations"] - int(r["converged"])}


def fine_costs(base: dict[str, Any], Nt: int) -> dict[str, float]:
    """Seconds of one fine step per equation, from the sequential row."""
    n = sweeps(base)
    return {e: base["timings"][e] / max(1, n[e] * Nt) for e in ("hjb", "fp")}


def modelled_speedup(strategy: Parareal, workers: int, Nt: int, c_f: dict[str, float]) -> float:
    """Speedup of the sweeps with ``workers`` slices (model in the module docstring)."""
    serial = parallel = 0.0
    coarse = (workers - 1 if strategy.coarse_factor is None
              else math.ceil((Nt - Nt / workers) / strategy.coarse_factor))
    for e in ("hjb", "fp"):
        counts = strategy.iterations[e]
        if not counts:
            continue
        K = sum(counts) / len(counts)
        c_g = strategy.seconds[f"{e}_coarse"] / max(1, strategy.steps[f"{e}_coarse"])
        start = 1.0 / workers if strategy.warm_start else 1.0
        serial += len(counts) * Nt * c_f[e]
        parallel += len(counts) * ((K + start) * coarse * c_g + K * math.ceil(Nt / workers) * c_f[e])
    return serial / parallel


def iterations_to(problem: Any, backend: str, slices: int, coarse_factor: int | None, base: dict[str, Any],
                  tol: float = 1e-8) -> tuple[int, int]:
    """Iterations of one cold Parareal sweep (HJB, FP) at the sequential equilibrium until
    all slice boundary values are within ``tol`` of the fine (Sequential) trajectory."""
    bk = create_backend(backend)
    disc = DiscreteMFG(problem, bk)
    u, m = bk.asarray(base["u"]), bk.asarray(base["m"])
    strategy = Parareal(slices, coarse_factor, tol=1e-300, warm_start=False)
    counts = []
    for equation, fine in (("hjb", u), ("fp", Sequential().fp(disc, u, m))):
        strategy.hjb(disc, m) if equation == "hjb" else strategy.fp(disc, u, m)
        levels = strategy.boundary_levels(disc.Nt, equation)
        exact = bk.to_numpy(fine)[levels]
        errors = [max([np.abs(bk.to_numpy(v) - exact[i]).max() for i, v in enumerate(U)], default=0.0)
                  for U in strategy.boundaries]
        counts.append(next((k + 1 for k, e in enumerate(errors) if e <= tol), slices))
    return counts[0], counts[1]


def print_row(label: str, row: str, r: dict[str, Any], base: dict[str, Any], note: str = "") -> None:
    if "seconds" not in r:
        dashes = f"{'-':>9}{'-':>7}{'-':>10}{'-':>7}{'-':>9}  {'-':>9}"
        print(f"{label:<26}{row:<15}{dashes}  {r['note']}", flush=True)
        return
    ratio = base["seconds"] / r["seconds"] if base.get("note") == "converged" else float("nan")
    diff = abs(r["m"] - base["m"]).max() if "m" in base else float("nan")
    print(f"{label:<26}{row:<15}{r['seconds']:>9.3f}{r['iterations']:>7d}{r['residual']:>10.1e}"
          f"{ratio:>7.2f}{r['peak']:>9.0f}  {diff:>9.1e}  {r['note']}{note}", flush=True)


def parareal_rows(problem: Any, label: str, base: dict[str, Any], args: argparse.Namespace) -> None:
    """The ``parareal S=..`` rows of one case and its modelled speedups for 16 and 64 workers."""
    Nt = problem.time.Nt
    c_f = fine_costs(base, Nt) if base.get("converged") else None
    last = None
    for slices in SLICES:
        row = f"parareal S={slices}"
        if slices > Nt:
            print_row(label, row, {"note": f"skipped: S > Nt={Nt}"}, base)
            continue
        strategy = Parareal(slices, args.coarse_factor)
        r = run_row(problem, strategy, args.backend, args.tol, args.max_seconds)
        K = "/".join(f"{sum(c) / max(1, len(c)):.1f}" for c in strategy.iterations.values())
        note = f"  K={K}"
        if c_f is not None:
            k8 = iterations_to(problem, args.backend, slices, args.coarse_factor, base)
            note += f" K8={k8[0]}/{k8[1]} model={modelled_speedup(strategy, slices, Nt, c_f):.2f}"
            last = strategy
        print_row(label, row, r, base, note)
    if last is not None:
        models = ", ".join(f"P={p}: {modelled_speedup(last, p, Nt, c_f):.2f}" if p <= Nt else f"P={p}: P > Nt"
                           for p in (16, 64))
        print(f"{label:<26}{'model':<15}  sweeps with K of S={last.slices}: {models}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per-row limit")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--rows", default=",".join(ROWS + ("parareal",)),
                        help="comma-separated rows to run (sequential always runs)")
    parser.add_argument("--case", action="append", default=None,
                        help="name:Nx=..,Nt=.. (repeatable) instead of the built-in cases")
    parser.add_argument("--coarse-factor", type=int, default=None,
                        help="fine steps per Parareal coarse step (default: one per slice)")
    args = parser.parse_args()
    selected = set(args.rows.split(",")) | {"sequential"}
    header = (f"{'case':<26}{'row':<15}{'seconds':>9}{'iters':>7}{'residual':>10}{'ratio':>7}"
              f"{'peak MiB':>9}  {'|m-m_seq|':>9}  note")
    print(f"backend={args.backend} tol={args.tol:g} max_seconds={args.max_seconds:g} "
          f"coarse_factor={args.coarse_factor}")
    print(header)
    print("-" * len(header))
    chosen = cases(args.quick) if not args.case else [
        (c.split(":")[0], {k: int(v) for k, v in (kv.split("=") for kv in c.split(":")[1].split(","))})
        for c in args.case]
    tiny = problems.make("lq-1d", Nx=21, Nt=4)  # imports and first calls, outside the timed rows
    for method, coupling in (("sequential", "fixed_point"), ("global", "fixed_point"),
                             ("sequential", "newton")):
        solve(tiny, method=method, coupling=coupling, backend=args.backend, progress=False)
    for name, params in chosen:
        problem = problems.make(name, **params)
        space = "x".join(str(v) for k, v in params.items() if k != "Nt")
        label = f"{name} {space} Nt={params['Nt']}"
        base: dict[str, Any] = {}
        for row in ROWS:
            if row not in selected:
                continue
            r = run_row(problem, row, args.backend, args.tol, args.max_seconds)
            if row == "sequential":
                base = r
            print_row(label, row, r, base)
        if "parareal" in selected:
            parareal_rows(problem, label, base, args)


if __name__ == "__main__":
    main()
