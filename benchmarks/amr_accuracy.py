"""Issue 15's target for AMR: the error of the uniform grid at AMR's finest level, with <= 30 % of
its cells and <= 50 % of its wall time, in one run.

One problem, one time grid (``Nt`` fixed, so only space is refined). Solved by ``solve`` on:

- uniform grids at tree levels ``L`` and ``L + 1`` (``method="sequential"``, Anderson);
- ``AMR(max_level=L + 1, min_level=L - 1, budget=...)`` (``method=AMR``, Anderson: what
  ``coupling="auto"`` runs on a tree); ``--coarsest``, ``--first``, ``--slabs``, ``--indicator``,
  ``--amr-tol`` (then no budget), ``--round-tol`` and ``--settle-share`` set its options. Its
  cells are leaves per time step, averaged over the steps (each slab has its own mesh);
- a uniform reference at level ``L + 3``, two levels finer than AMR's finest (``--reference-gap``
  levels finer; 1 where two finer would not fit a 2-core CPU's time).

With ``--oracle SHARE``, one more row: a single solve on per-slab meshes refined where the
reference's ``m`` exceeds ``SHARE`` of its largest value (``--oracle-slabs`` slabs), the mesh an
indicator that knew the answer would pick: a bound on what marking can reach at that cell count.

Error of ``m``: ``max_n sum_cells vol |m^n - <m_ref^n>|`` (L1 in space, max over time), with
``<m_ref>`` the reference's cell averages on the solution's own cells (its grid or its leaves,
``grid_to_leaves``, conservative); error of ``u`` the same in the max norm. Seconds: wall time of
``solve`` alone (best of ``--repeat`` runs), two threads at most; iterations: coupling iterations
(AMR: of all its coupled solves). The sharp-front variants lower ``sigma`` and the width of ``m0``;
``--front`` (crowd-exit-1d, crowd-2d) is a compact crowd walking to the exit (no crowd aversion,
little congestion, no time cost), the problems of the README's table. ``--cache DIR`` keeps the
reference solves between runs.

Usage::

    python benchmarks/amr_accuracy.py                                  # crowd-exit-1d, sharp front, L = 7
    python benchmarks/amr_accuracy.py --slabs 10 --indicator density --amr-tol 0.01 --coarsest 5 --oracle 0.01
    python benchmarks/amr_accuracy.py --problem crowd-2d --level 4 --Nt 20
    python benchmarks/amr_accuracy.py --front --level 12 --Nt 100 --slabs 20 --indicator density \\
        --amr-tol 0.0015 --coarsest 3 --first 10 --round-tol 1e-2 --repeat 3 --cache /tmp/amr
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402

from mfg_rl import problems, solve  # noqa: E402
from mfg_rl.core.tree_mesh import TreeMesh  # noqa: E402
from mfg_rl.solvers.amr import AMR, TreeMarching, grid_to_leaves  # noqa: E402
from mfg_rl.solvers.amr_slabs import SlabMFG, slab_edges  # noqa: E402
from mfg_rl.solvers.coupling import Anderson, run_coupling  # noqa: E402

SHARP = {"crowd-exit-1d": {"sigma": 0.05, "m0_width": 0.03}, "crowd-2d": {"sigma": 0.1, "m0_width": 0.05}}
FRONT = {"crowd-exit-1d": {"sigma": 0.02, "m0_width": 0.02, "m0_center": 0.5, "crowd_aversion": 0.0,
                           "congestion": 0.05, "time_cost": 0.0},
         "crowd-2d": {"sigma": 0.05, "m0_width": 0.05, "m0_center": (0.5, 0.5), "crowd_aversion": 0.0,
                      "congestion": 0.05, "time_cost": 0.0}}


def make(name: str, level: int, nt: int, params: dict) -> problems.MFGProblem:
    """``name`` on the uniform grid of tree ``level`` (root cells near square, one per unit span)."""
    probe = problems.make(name, Nt=nt, **params)
    spans = [hi - lo for lo, hi in probe.grid.bounds]
    shape = [max(1, round(s / min(spans))) << level for s in spans]
    sizes = {"Nx": shape[0]} if len(shape) == 1 else {"Nx": shape[0], "Ny": shape[1]}
    return problems.make(name, Nt=nt, **sizes, **params)


def timed(repeat: int, run):
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return out, best


def solved_reference(problem: problems.MFGProblem, tol: float, cache: str | None) -> tuple[np.ndarray, ...]:
    """``(u, m, seconds)`` of the uniform solve of ``problem`` (arrays (Nt+1, *shape)), loaded from
    ``cache/<name>-<hash of shape, Nt, parameters, tol>.npz`` when it was saved there (seconds then NaN)."""
    key = f"{problem.name}-{problem.grid.shape}-{problem.time.Nt}-{sorted(problem.params.items())}-{tol:g}"
    name = f"{problem.name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    path = None if cache is None else os.path.join(cache, name)
    if path is not None and os.path.exists(path):
        with np.load(path) as saved:
            return saved["u"], saved["m"], math.nan
    eq, seconds = timed(1, lambda: solve(problem, coupling="anderson", tol=tol, progress=False))
    u, m = eq.u.numpy(), eq.m.numpy()
    if path is not None:
        os.makedirs(cache, exist_ok=True)
        np.savez(path, u=u, m=m)
    return u, m, seconds


def errors(reference, ref_problem, u_meshes: list[TreeMesh], m_meshes: list[TreeMesh], u: np.ndarray,
           m: np.ndarray) -> tuple[float, float]:
    """``(L1 error of m, max error of u)``: time level ``k`` on the leaves of ``m_meshes[k]`` (of
    ``u_meshes[k]``), its first ``M`` entries, against the reference's cell averages there
    (``reference``: its ``(u, m)``)."""
    (ref_u, ref_m), grid = reference, ref_problem.grid
    err_m = max(float(np.abs(m[k, : len(mesh)] - grid_to_leaves(grid, mesh, ref_m[k])) @ mesh.volumes)
                for k, mesh in enumerate(m_meshes))
    err_u = max(float(np.abs(u[k, : len(mesh)] - grid_to_leaves(grid, mesh, ref_u[k])).max())
                for k, mesh in enumerate(u_meshes))
    return err_m, err_u


def oracle_meshes(reference, ref_problem, problem, coarsest: int, finest: int, edges: np.ndarray,
                  share: float) -> list[TreeMesh]:
    """Per slab, the uniform ``coarsest`` mesh refined level by level up to ``finest`` on the leaves
    where the reference's ``m`` (its largest over the slab's time levels) exceeds ``share`` of its
    largest value: the mesh an indicator that knew the answer would pick."""
    m_ref = reference[1]
    m_ref = m_ref.reshape(len(m_ref), -1)
    centres = np.stack([a.ravel() for a in ref_problem.grid.mesh()], axis=1)
    meshes = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        peak = m_ref[start: stop + 1].max(axis=0)
        mesh = TreeMesh.from_grid(problem.grid, min_level=coarsest, max_level=finest, kernels="numpy")
        for _ in range(finest - coarsest):
            top = np.zeros(len(mesh))
            np.maximum.at(top, mesh.locate(centres), peak)  # the reference's cells are finer than any leaf
            mesh = mesh.refine((top > share * m_ref.max()) & (mesh.level < finest))
        meshes.append(mesh)
    return meshes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="crowd-exit-1d")
    parser.add_argument("--level", type=int, default=7, help="L: coarser uniform level; AMR finest L + 1")
    parser.add_argument("--Nt", type=int, default=50)
    parser.add_argument("--share", type=float, default=0.3, help="AMR budget, share of the level L + 1 cells")
    parser.add_argument("--adaptations", type=int, default=4)
    parser.add_argument("--slabs", type=int, default=1, help="AMR time slabs, one mesh each")
    parser.add_argument("--round-tol", type=float, default=AMR.round_tol,
                        help="AMR: tolerance of the solves that steer an adaptation")
    parser.add_argument("--settle-share", type=float, default=AMR.settle_share,
                        help="AMR: skip an adaptation that changes at most this share of the leaves")
    parser.add_argument("--reference-gap", type=int, default=2,
                        help="the reference is this many levels finer than AMR's finest (default 2)")
    parser.add_argument("--indicator", default="jump", help="AMR indicator: jump, gradient or density")
    parser.add_argument("--amr-tol", type=float, default=None,
                        help="AMR tol (density: refine over AMR_TOL x max m); given, no budget")
    parser.add_argument("--coarsest", type=int, default=None, help="AMR min_level (default L - 1)")
    parser.add_argument("--first", type=int, default=None, help="AMR first_level (default: min_level)")
    parser.add_argument("--oracle", type=float, default=None,
                        help="also solve once on meshes refined where the reference's m > ORACLE x max")
    parser.add_argument("--oracle-slabs", type=int, default=10, help="time slabs of the oracle meshes")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cache", default=None, help="folder that keeps the reference solves between runs")
    parser.add_argument("--smooth", action="store_true", help="catalogue parameters, no sharp front")
    parser.add_argument("--front", action="store_true", help="the compact travelling crowd (FRONT)")
    args = parser.parse_args()
    params = {} if args.smooth else (FRONT if args.front else SHARP).get(args.problem, {})
    level = args.level
    ref_problem = make(args.problem, level + 1 + args.reference_gap, args.Nt, params)
    *reference, ref_seconds = solved_reference(ref_problem, args.tol, args.cache)
    print(f"{args.problem} {params or '(catalogue parameters)'}, Nt={args.Nt}, tol={args.tol:g}; "
          f"reference: uniform level {level + 1 + args.reference_gap}, {ref_problem.grid.size} cells, "
          f"{ref_seconds:.1f} s")
    rows = []
    for lv in (level, level + 1):
        problem = make(args.problem, lv, args.Nt, params)
        eq, seconds = timed(args.repeat, lambda p=problem: solve(p, coupling="anderson", tol=args.tol,
                                                                  progress=False))
        mesh = TreeMesh.from_grid(problem.grid, max_level=lv, min_level=lv, kernels="numpy")
        u, m = (grid_to_leaves(problem.grid, mesh, field.numpy()) for field in (eq.u, eq.m))  # a reordering
        same = [mesh] * (args.Nt + 1)
        rows.append((f"uniform L={lv}", problem.grid.size, *errors(reference, ref_problem, same, same, u, m),
                     seconds, eq.diagnostics.iterations))
    problem = make(args.problem, level + 1, args.Nt, params)
    coarsest = level - 1 if args.coarsest is None else args.coarsest
    args.coarsest = coarsest
    budget = None if args.amr_tol is not None else max(1, int(args.share * rows[1][1]))
    amr = AMR(max_level=level + 1, min_level=coarsest, tol=args.amr_tol, budget=budget,
              indicator=args.indicator, adaptations=args.adaptations, slabs=args.slabs,
              round_tol=args.round_tol, first_level=args.first, settle_share=args.settle_share)

    def adaptive():  # what solve(method=amr, coupling="auto") runs, with the final mesh kept
        out = amr.solve(problem, Anderson(), tol=args.tol)
        out.on_grid()
        return out

    result, seconds = timed(args.repeat, adaptive)
    disc = result.disc
    rows.append((f"AMR {args.coarsest}..{level + 1}", result.mean_leaves(),
                 *errors(reference, ref_problem, [result.meshes[s] for s in disc.u_slab],
                         [result.meshes[s] for s in disc.m_slab], result.u, result.m), seconds,
                 sum(r[1] for r in result.rounds)))
    if args.oracle is not None:
        edges = slab_edges(args.Nt, args.oracle_slabs)
        meshes = oracle_meshes(reference, ref_problem, problem, coarsest, level + 1, edges, args.oracle)
        disc = SlabMFG(problem, meshes, edges, grid_to_leaves(problem.grid, meshes[0], problem.m0))
        record, seconds = timed(args.repeat, lambda: run_coupling(
            disc, TreeMarching(), TreeMarching(), Anderson(), tol=args.tol, max_iter=500, inexact=False))
        mean = float(np.mean([disc.sizes[s] for s in disc.step_slab]))
        rows.append((f"oracle S={args.oracle_slabs}", mean, *errors(
            reference, ref_problem, [meshes[s] for s in disc.u_slab], [meshes[s] for s in disc.m_slab],
            record.u, record.m), seconds, record.iterations))
    print(f"{'':16s} {'cells':>7s} {'L1 err m':>10s} {'max err u':>10s} {'seconds':>8s} {'iters':>6s} "
          f"{'ms/iter/cell':>12s}")
    for name, n, em, eu, s, it in rows:
        print(f"{name:16s} {n:7.1f} {em:10.3e} {eu:10.3e} {s:8.2f} {it:6d} {1e3 * s / it / n:12.4f}")
    fine, adaptive = rows[1], rows[2]
    if args.oracle is not None:
        print(f"oracle: per slab, {coarsest}..{level + 1} refined where the reference's m > {args.oracle:g} "
              "x its max (one solve on meshes that know the answer: a bound on what marking can reach)")
    print(f"AMR / uniform L={level + 1}: cells {adaptive[1] / fine[1]:.0%} (target <= 30 %), "
          f"seconds {adaptive[4] / fine[4]:.0%} (target <= 50 %), error of m {adaptive[2] / fine[2]:.2f}x "
          f"(target <= 1)")
    print(f"AMR leaves per level per step (mean) {result.leaves_per_level()}; rounds (mean leaves, "
          f"iterations, residual): {[(round(n, 1), k, float(f'{r:.1e}')) for n, k, r in result.rounds]}")


if __name__ == "__main__":
    main()
