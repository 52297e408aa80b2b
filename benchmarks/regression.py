"""Before/after timing of the README's CPU cases: this tree against a git revision, same run.

The revision is checked out into a temporary git worktree; each case runs in a fresh
subprocess of each tree in turn (alternating, so both see the same machine load), best of
``--repeats``. Columns: seconds before, seconds after, ratio after/before (> 1.10 is flagged:
the project's allowance for a refactor is 10 %).

Cases: ``lq-1d`` 201x50 (fixed point, newton, jax-scan after compile), ``crowd-exit-1d``
default (anderson), ``crowd-2d`` 64x64 Nt=50 (anderson) and, without ``--quick``, 128x128 Nt=100
(anderson, the README's 27 s row).

Usage::

    python benchmarks/regression.py --baseline HEAD~1
    python benchmarks/regression.py --baseline 353bffd --quick --repeats 3
    python benchmarks/regression.py --baseline 353bffd --only crowd-exit --repeats 5
"""

from __future__ import annotations

import argparse

from ab_trees import checkouts, compare  # benchmarks/ab_trees.py: the alternating A/B runner

CASES = {
    "lq-1d 201x50 fixed_point": ("lq-1d", {"Nx": 201, "Nt": 50}, {"coupling": "fixed_point"}),
    "lq-1d 201x50 newton": ("lq-1d", {"Nx": 201, "Nt": 50}, {"coupling": "newton"}),
    "lq-1d 201x50 jax-scan": ("lq-1d", {"Nx": 201, "Nt": 50}, {"method": "jax-scan", "backend": "jax"}),
    "crowd-exit-1d 200x100 anderson": ("crowd-exit-1d", {}, {"coupling": "anderson"}),
    "crowd-2d 64x64 Nt=50 anderson": ("crowd-2d", {"Nx": 64, "Ny": 64, "Nt": 50}, {"coupling": "anderson"}),
    "crowd-2d 128x128 Nt=100 anderson": ("crowd-2d", {"Nx": 128, "Ny": 128, "Nt": 100},
                                         {"coupling": "anderson"}),
}
QUICK = [name for name in CASES if "128x128" not in name]

CHILD = """
import json, sys, time
from mfg_rl import problems, solve
name, params, options = json.loads(sys.argv[1])
options = {"backend": "numpy", "progress": False, **options}
problem = problems.make(name, **params)
if options.get("method") == "jax-scan":
    solve(problem, **options)  # compile once, time the second solve
start = time.perf_counter()
solve(problem, **options)
print(json.dumps(time.perf_counter() - start))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="leave out the 128x128 crowd")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = parser.parse_args()
    cases = {name: CASES[name] for name in (QUICK if args.quick else CASES) if args.only in name}
    with checkouts(args.baseline) as trees:
        print(f"baseline {args.baseline} vs this tree, best of {args.repeats}")
        compare(trees, CHILD, cases, args.repeats, flag_above=1.10)


if __name__ == "__main__":
    main()
