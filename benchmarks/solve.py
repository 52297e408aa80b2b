"""Wall-clock benchmark of ``mfg_rl.solve``: one table, measured in one run.

Cases (each in a fresh subprocess, so peak memory is that case's own):

- ``lq-1d`` at ``(Nx, Nt) = (201, 50), (501, 200), (1001, 500), (2001, 1000)``;
- ``crowd-2d`` at 32x32, 64x64, 128x128 with ``Nt = 50 * Nx / 64`` (the problem's default
  ``Nt = 50`` at its default 64x64, scaled with ``h`` so that ``dt / h`` stays fixed:
  Nt = 25, 50, 100);
- for the fitted exponents ``time ~ Nx^a`` (Nt = 50; Nx = 201, 501, 1001) and
  ``time ~ Nt^b`` (Nx = 201; Nt = 50, 200, 500) of ``lq-1d``, one axis varied at a time.

Columns: seconds, coupling iterations, Newton steps, peak memory (increase of the
child process's ``ru_maxrss`` over its value just before the solve, in MiB), per backend,
and for ``lq-1d`` a "textbook" baseline: the same solve (same scheme, same coupling loop)
where every Newton and FP step builds the full ``N x N`` matrix and calls
``np.linalg.solve`` (``O(N^3)`` per step instead of ``O(N)``), run only while its
time stays under ``--textbook-seconds`` (30; a run past it is stopped and larger sizes
skipped); ``ratio`` = baseline / solver seconds.
A case whose time, extrapolated from the previous size, exceeds ``--max-seconds`` is
skipped and the table says so.

First, the goal cases (``TARGETS``: lq-1d 201x50 < 50 ms, 2001x1000 < 3 s, crowd-2d
128x128 Nt=100 < 30 s, residual 1e-8): the best method for each next to the sequential
fixed-point baseline on the last ``--backend``, measured in the same run (a baseline past
``--max-seconds`` is stopped and reported as ``>``), with peak memory over the size of the
fields ``u``, ``m``. jax-scan cases solve once to compile, then time a second solve.

Usage::

    python benchmarks/solve.py                      # full run (tens of minutes)
    python benchmarks/solve.py --quick              # tiny sizes, seconds
    python benchmarks/solve.py --targets-only --backend numpy --max-seconds 300
    python benchmarks/solve.py --backend numpy --max-seconds 120
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

LQ_SIZES = [(201, 50), (501, 200), (1001, 500), (2001, 1000)]
LQ_NX_SWEEP = [(201, 50), (501, 50), (1001, 50)]
LQ_NT_SWEEP = [(201, 50), (201, 200), (201, 500)]
CROWD_SIZES = [(32, 25), (64, 50), (128, 100)]
# the performance goals: (problem, n, Nt, goal seconds, best method, coupling, backend)
TARGETS = [
    ("lq-1d", 201, 50, 0.05, "jax-scan", "fixed_point", "jax"),
    ("lq-1d", 2001, 1000, 3.0, "jax-scan", "anderson", "jax"),
    ("crowd-2d", 128, 100, 30.0, "sequential", "anderson", "numpy"),
]
QUICK_TARGETS = [
    ("lq-1d", 51, 10, 0.05, "jax-scan", "fixed_point", "jax"),
    ("lq-1d", 101, 20, 3.0, "jax-scan", "anderson", "jax"),
    ("crowd-2d", 12, 8, 30.0, "sequential", "anderson", "numpy"),
]
QUICK = {
    "lq": [(51, 10), (101, 20)],
    "nx": [(51, 10), (101, 10), (201, 10)],
    "nt": [(51, 10), (51, 20), (51, 40)],
    "crowd": [(8, 5), (12, 8)],
}


@dataclass(frozen=True)
class Case:
    """One solve: ``problem`` at ``(n, nt)`` (``n`` cells per axis) on ``backend``."""

    problem: str
    n: int
    nt: int
    backend: str
    textbook: bool = False
    method: str = "sequential"
    coupling: str = "fixed_point"

    @property
    def solver(self) -> str:
        return f"{self.method}/{self.coupling}/{self.backend}"

    @property
    def size(self) -> str:
        cells = f"{self.n}x{self.n}" if self.problem == "crowd-2d" else f"{self.n}"
        return f"{cells}, Nt={self.nt}"

    def work(self) -> float:
        """Predicted cost up to a constant: unknowns x steps (x N^2 for dense solves)."""
        unknowns = self.n ** (2 if self.problem == "crowd-2d" else 1)
        return unknowns * self.nt * (unknowns**2 if self.textbook else 1.0)


# -- the textbook baseline --------------------------------------------------------------
class TextbookSolver:
    """Stand-in for ``StencilSolver``: dense ``N x N`` matrix, ``np.linalg.solve``.

    ``A[i, i] = center_i``, ``A[i, i -/+ e_d] = minus[d]_i / plus[d]_i`` (indices wrap;
    wrapped coefficients are zero on non-periodic sides), on the host in numpy.
    """

    def __init__(self, grid: Any, backend: Any, *args: Any, **kwargs: Any) -> None:
        self.grid, self.backend = grid, backend
        index = np.arange(grid.size).reshape(grid.shape)
        self.rows = np.concatenate([index.ravel()] * (1 + 2 * grid.ndim))
        self.cols = np.concatenate(
            [index.ravel()]
            + [np.roll(index, s, axis=d).ravel() for d in range(grid.ndim) for s in (1, -1)]
        )

    def solve(self, matrix: Any, rhs: Any, **options: Any) -> Any:
        host = self.backend.to_numpy
        parts = [matrix.center] + [a for pair in zip(matrix.minus, matrix.plus, strict=True) for a in pair]
        values = np.concatenate([host(a).ravel() for a in parts])
        dense = np.zeros((self.grid.size, self.grid.size))
        np.add.at(dense, (self.rows, self.cols), values)
        x = np.linalg.solve(dense, host(rhs).ravel())
        return self.backend.asarray(x.reshape(self.grid.shape))


# -- one case, in a child process ---------------------------------------------------------
def run_case(case: Case) -> dict[str, Any]:
    """Solve ``case`` here and return its measurements."""
    import resource
    from unittest import mock

    import mfg_rl
    from mfg_rl import problems
    from mfg_rl.solvers import discrete

    if case.problem == "crowd-2d":
        problem = problems.make("crowd-2d", Nx=case.n, Ny=case.n, Nt=case.nt)
    else:
        problem = problems.make(case.problem, Nx=case.n, Nt=case.nt)
    backend = "numpy" if case.textbook else case.backend
    options = {"method": case.method, "coupling": case.coupling, "backend": backend, "progress": False}
    compile_seconds = 0.0
    if case.method == "jax-scan":  # compile this problem's programs once, outside the timing
        compile_seconds = mfg_rl.solve(problem, **options).diagnostics.timings.get("compile", 0.0)
    else:
        mfg_rl.solve(problems.make("lq-1d", Nx=21, Nt=4), backend=backend, progress=False)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    patch = mock.patch.object(discrete, "StencilSolver", TextbookSolver) if case.textbook else None
    start = time.perf_counter()
    if patch is not None:
        with patch:
            eq = mfg_rl.solve(problem, **options)
    else:
        eq = mfg_rl.solve(problem, **options)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = eq.diagnostics
    return {
        "seconds": seconds, "iterations": d.iterations, "newton": d.newton_iterations,
        "peak_mib": max(peak - before, 0) / 1024.0, "converged": d.converged,
        "residual": d.residual, "compile": compile_seconds,
    }


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def measure(case: Case, blas_threads: int, timeout: float | None = None) -> dict[str, Any]:
    """``run_case`` in a fresh interpreter (clean memory high-water mark).

    ``blas_threads > 0`` pins the BLAS/OpenMP thread pools of the child: on a small shared
    machine threaded OpenBLAS can stall a single 16k-element dot product for milliseconds.
    With ``timeout`` the child is stopped after that many seconds (plus 20 for imports).
    """
    env = dict(os.environ)
    if blas_threads > 0:
        env.update({name: str(blas_threads) for name in BLAS_THREADS})
    try:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--case", json.dumps(case.__dict__)],
            capture_output=True, text=True, check=False, env=env,
            timeout=None if timeout is None else timeout + 20.0,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"stopped after {timeout:g} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the table ----------------------------------------------------------------------------
class Runner:
    """Measures cases in order, skipping those predicted to exceed ``max_seconds``."""

    def __init__(self, max_seconds: float, textbook_seconds: float, blas_threads: int) -> None:
        self.max_seconds = max_seconds
        self.textbook_seconds = textbook_seconds
        self.blas_threads = blas_threads
        self.done: dict[Case, dict[str, Any]] = {}

    def predict(self, case: Case) -> float | None:
        """Seconds extrapolated from the largest measured case of the same kind (work^1.1);
        infinite when a smaller case of that kind already ran out of time; None for the
        textbook baseline, which is simply stopped at its limit."""
        same = [
            (c, r) for c, r in self.done.items()
            if (c.problem, c.solver, c.textbook) == (case.problem, case.solver, case.textbook)
        ]
        if any("skipped" in r and c.work() < case.work() for c, r in same):
            return math.inf
        same = [(c, r) for c, r in same if "seconds" in r]
        if case.textbook or not same:
            return None
        ref, result = max(same, key=lambda cr: cr[0].work())
        return result["seconds"] * (case.work() / ref.work()) ** 1.1

    def get(self, case: Case, stop_after: float | None = None) -> dict[str, Any]:
        """The measurement of ``case`` (cached); ``stop_after`` seconds stops the child."""
        if case in self.done:
            return self.done[case]
        limit = self.textbook_seconds if case.textbook else self.max_seconds
        flag = "--textbook-seconds" if case.textbook else "--max-seconds"
        predicted = self.predict(case)
        if predicted is not None and predicted > limit:
            why = "a smaller size ran out of time" if math.isinf(predicted) else (
                f"predicted {predicted:.0f} s > {flag}")
            result = {"skipped": f"skipped ({why})"}
        else:
            result = measure(case, self.blas_threads, limit if case.textbook else stop_after)
        self.done[case] = result
        print(f"  {case.problem:8s} {case.size:18s} {case.solver:30s} "
              f"{'textbook ' if case.textbook else ''}{_seconds(result)}", file=sys.stderr, flush=True)
        return result


def _seconds(result: dict[str, Any]) -> str:
    if "seconds" in result:
        return f"{result['seconds']:.2f}" + ("" if result["converged"] else " (unconverged)")
    return result.get("skipped") or f"error: {result['error']}"


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``log t`` against ``log size``."""
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--backend", action="append", choices=["numpy", "torch", "jax"],
                        help="backend(s) to time (default: numpy and torch)")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="skip a case whose predicted time exceeds this (default 900)")
    parser.add_argument("--textbook-seconds", type=float, default=30.0,
                        help="the same for the dense textbook baseline (default 30)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS/OpenMP threads per solve (default 1; 0 leaves the environment)")
    parser.add_argument("--targets-only", action="store_true",
                        help="only the goal cases (best method vs sequential baseline) and the lq-1d fits")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(Case(**json.loads(args.case)))))
        return
    backends = args.backend or ["numpy", "torch"]
    lq = QUICK["lq"] if args.quick else LQ_SIZES
    crowd = QUICK["crowd"] if args.quick else CROWD_SIZES
    nx_sweep = QUICK["nx"] if args.quick else LQ_NX_SWEEP
    nt_sweep = QUICK["nt"] if args.quick else LQ_NT_SWEEP
    runner = Runner(args.max_seconds, args.textbook_seconds, args.blas_threads)
    started = time.perf_counter()
    targets = []
    for problem, n, nt, goal, method, coupling, backend in (QUICK_TARGETS if args.quick else TARGETS):
        best = runner.get(Case(problem, n, nt, backend, method=method, coupling=coupling))
        baseline = runner.get(Case(problem, n, nt, backends[-1]), stop_after=args.max_seconds)
        targets.append((Case(problem, n, nt, backend, method=method, coupling=coupling), goal, best,
                        Case(problem, n, nt, backends[-1]), baseline))
    rows = []
    for problem, sizes in (("lq-1d", lq), ("crowd-2d", crowd)):
        if args.targets_only:
            break
        for backend in backends:
            for n, nt in sizes:
                case = Case(problem, n, nt, backend)
                result = runner.get(case)
                baseline = runner.get(Case(problem, n, nt, "numpy", True)) if problem == "lq-1d" else None
                rows.append((case, result, baseline))
    fits = {}
    for backend in backends:
        for axis, sweep, pick in (("Nx", nx_sweep, 0), ("Nt", nt_sweep, 1)):
            points = []
            for n, nt in sweep:
                result = runner.get(Case("lq-1d", n, nt, backend))
                if "seconds" in result:
                    points.append(((n, nt)[pick], result["seconds"]))
            fits[(backend, axis)] = (exponent(points), sweep, [runner.get(Case("lq-1d", n, nt, backend))
                                                                for n, nt in sweep])
    print_targets(targets, args)
    print_table(rows, fits, time.perf_counter() - started, args)


def field_mib(case: Case) -> float:
    """Memory of the two fields ``u``, ``m`` (float64, ``(Nt+1) x N`` each) in MiB."""
    unknowns = case.n ** (2 if case.problem == "crowd-2d" else 1)
    return 2 * (case.nt + 1) * unknowns * 8 / 2**20


def print_targets(targets: list[tuple], args: Any) -> None:
    """The goal cases: best method and the sequential baseline, measured in this run."""
    header = ["problem", "size", "goal s", "best (method/coupling/backend)", "seconds", "compile s",
              "residual", "it", "peak MiB", "peak/fields", "met", "baseline", "baseline s", "speed-up"]
    lines = []
    for case, goal, best, base_case, base in targets:
        ok = "seconds" in best
        cells = [case.problem, case.size, f"{goal:g}", case.solver, _seconds(best),
                 f"{best['compile']:.1f}" if ok else "-", f"{best['residual']:.1e}" if ok else "-",
                 str(best["iterations"]) if ok else "-", f"{best['peak_mib']:.0f}" if ok else "-",
                 f"{best['peak_mib'] / field_mib(case):.1f}" if ok else "-",
                 ("yes" if best["seconds"] < goal and best["converged"] else "no") if ok else "-",
                 base_case.solver]
        if "seconds" in base and ok:
            cells += [_seconds(base), f"{base['seconds'] / best['seconds']:.1f}x"]
        elif ok and "skipped" in base:
            cells += [f"> {args.max_seconds:g} s", f"> {args.max_seconds / best['seconds']:.1f}x"]
        else:
            cells += [_seconds(base), "-"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    print("goals (best method vs the sequential fixed-point baseline; jax-scan compile excluded, shown "
          "apart; peak/fields = peak MiB over the size of u and m)")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for cells in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    print()


def print_table(rows: list[tuple[Case, dict, dict | None]], fits: dict, total: float, args: Any) -> None:
    import platform

    import mfg_rl

    header = ["problem", "size", "backend", "seconds", "coupling it", "Newton", "peak MiB",
              "textbook s", "ratio"]
    lines = []
    for case, result, baseline in rows:
        cells = [case.problem, case.size, case.backend, _seconds(result)]
        if "seconds" in result:
            cells += [str(result["iterations"]), str(result["newton"]), f"{result['peak_mib']:.0f}"]
        else:
            cells += ["-", "-", "-"]
        if baseline is None:
            cells += ["-", "-"]
        elif "seconds" in baseline and "seconds" in result:
            cells += [f"{baseline['seconds']:.2f}", f"{baseline['seconds'] / result['seconds']:.1f}x"]
        else:
            cells += [f"> {args.textbook_seconds:g} s" if "skipped" in baseline
                      else _seconds(baseline), "-"]
        lines.append(cells)
    widths = [max([len(h)] + [len(c[i]) for c in lines]) for i, h in enumerate(header)]
    print(f"mfg_rl {mfg_rl.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"BLAS threads {args.blas_threads or 'default'}, tol 1e-8; crowd-2d Nt = 50 * Nx / 64; "
          f"total {total:.0f} s")
    if lines:
        print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        print("-|-".join("-" * w for w in widths))
        for cells in lines:
            print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
        print()
    for (backend, axis), (slope, sweep, results) in fits.items():
        sizes = ", ".join(f"({n}, {nt})" for n, nt in sweep)
        text = "n/a" if slope is None or not math.isfinite(slope) else f"{slope:.2f}"
        times = ", ".join(f"{r['seconds']:.3f}" if "seconds" in r else "-" for r in results)
        peaks = ", ".join(f"{r['peak_mib']:.0f}" if "seconds" in r else "-" for r in results)
        print(f"lq-1d {backend} sequential: time ~ {axis}^{text}   (fit over (Nx, Nt) = {sizes}: "
              f"{times} s; peak {peaks} MiB)")
    skipped = [c for c in rows if "skipped" in c[1] or (c[2] is not None and "skipped" in c[2])]
    if skipped:
        print(f"skipped: cases whose predicted time exceeded --max-seconds={args.max_seconds:g} "
              f"(textbook: --textbook-seconds={args.textbook_seconds:g})")


if __name__ == "__main__":
    main()
