"""Before/after timing of torch CPU sweeps (issue 13 item 1): this tree against a git revision.

Each case runs in a fresh subprocess of each tree in turn (alternating, as
``benchmarks/regression.py`` does), best of ``--repeats``. ``host``: torch CPU tensors as
``create_backend("torch", device="cpu")`` gives them (host paths: LAPACK solves, Newton
checked every iteration, particles as numpy views). ``off-host``: the same tensors taking an
accelerator's paths (``on_host`` False: cyclic reduction, Newton unrolled with one host read
per sweep, particles stepped as tensors), the code a GPU runs, timed on the CPU.

Measured 2026-12-05 on the shared 2-core CPU, ``OMP_NUM_THREADS=1`` (with two threads
any torch op above the parallel grain, e.g. Anderson's one matmul, waited ~30 ms on the
loaded machine, in both trees), baseline 655fd40 vs 693be49 (issue 13 item 1)::

    case                                       before s    after s  after/before
    hjb sweep lq-1d 201x100 host                 0.1645     0.1583          0.96
    hjb sweep lq-1d 201x100 off-host             0.2619     0.3682          1.41
    fp sweep lq-1d 201x100 off-host              0.0707     0.0699          0.99
    particles 1e5 lq-1d 201x50 off-host          0.2157     0.2996          1.39
    solve lq-1d 201x50 anderson host             0.4784     0.4704          0.98
    solve lq-1d 201x50 anderson off-host         0.9987     1.2480          1.25

Off the host the sweep pays for reading nothing: every step runs the sweep's most Newton
iterations (3; the steps take 206 in all, the rounds 300: the 1.41), and a particle step
computes the wall folds and a finite check it used to skip after one read of the range.
On the CPU a read costs nothing, so host tensors keep the host paths (first and fifth rows).

2D rows, measured 2026-12-05 the same way, d10f315~1 vs d10f315 (2D Krylov solves off the
host read once per chunk of iterations; best of 2)::

    case                                       before s    after s  after/before
    hjb sweep crowd-2d 32x32x20 host             0.0568     0.0574          1.01
    fp sweep crowd-2d 32x32x20 host              0.0087     0.0083          0.95
    solve crowd-2d 16x16x5 anderson host         0.1885     0.1893          1.00
    hjb sweep crowd-2d 16x16x10 off-host         0.3383     0.4749          1.40
    fp sweep crowd-2d 16x16x10 off-host          0.1660     0.2105          1.27

The host rows are the same code (and numbers, bit for bit). Off the host the sweeps read the
host 1345 -> 165 (HJB's Krylov solves) and 604 -> 36 (FP) times and run 1.3x the operations:
a masked BiCGStab iteration computes both halves where the host's breaks after the first, and
the frame select and density projection are computed, not branched; on the CPU that is time.

Unrolled Newton in 2D sweeps too, each step's rounds capped at what it took in the last sweep,
measured 2026-12-05 the same way, d06486b~1 vs d06486b (best of 2)::

    case                                       before s    after s  after/before
    hjb sweep lq-1d 201x100 host                 0.0828     0.0748          0.90
    hjb sweep lq-1d 201x100 off-host             0.4371     0.2421          0.55
    solve lq-1d 201x50 anderson off-host         0.8771     0.9374          1.07
    hjb sweep crowd-2d 32x32x20 host             0.0574     0.0578          1.01
    solve crowd-2d 16x16x5 anderson host         0.1908     0.1905          1.00
    hjb sweep crowd-2d 16x16x10 off-host         0.4797     0.4795          1.00
    solve crowd-2d 16x16x5 anderson off-host     3.4148     4.0641          1.19

Host rows: the same code. The off-host lq-1d sweep runs each step's own count of rounds (206
in all), not the sweep's most at every step (300). The warm crowd-2d sweep reads the host
273 -> 156 times (outside its Krylov solves 118 -> 1) in the same time. A whole off-host
crowd-2d solve reads 2053 -> 1497 times but runs 391 Krylov solves for 316: steps whose count
grew since the last sweep are finished checked and the steps after them in the pass are
discarded, and idle rounds of steps whose count fell solve ``J du = 0`` (42, each ``first``
masked BiCGStab iterations): 1.2x the operations.

Usage::

    python benchmarks/sweeps.py --baseline 8ce93b8 --repeats 3
    python benchmarks/sweeps.py --baseline 8ce93b8 --after 693be49 --only host
"""

from __future__ import annotations

import argparse

from ab_trees import checkouts, compare  # benchmarks/ab_trees.py: the alternating A/B runner

CROWD_2D = {"name": "crowd-2d", "Nx": 16, "Ny": 16}
CASES = {
    "hjb sweep lq-1d 201x100 host": ("hjb", "host", {"Nx": 201, "Nt": 100}),
    "hjb sweep lq-1d 201x100 off-host": ("hjb", "off", {"Nx": 201, "Nt": 100}),
    "fp sweep lq-1d 201x100 off-host": ("fp", "off", {"Nx": 201, "Nt": 100}),
    "particles 1e5 lq-1d 201x50 off-host": ("particles", "off", {"Nx": 201, "Nt": 50}),
    "solve lq-1d 201x50 anderson host": ("solve", "host", {"Nx": 201, "Nt": 50}),
    "solve lq-1d 201x50 anderson off-host": ("solve", "off", {"Nx": 201, "Nt": 50}),
    "hjb sweep crowd-2d 32x32x20 host": ("hjb", "host", {**CROWD_2D, "Nx": 32, "Ny": 32, "Nt": 20}),
    "fp sweep crowd-2d 32x32x20 host": ("fp", "host", {**CROWD_2D, "Nx": 32, "Ny": 32, "Nt": 20}),
    "solve crowd-2d 16x16x5 anderson host": ("solve", "host", {**CROWD_2D, "Nt": 5}),
    "hjb sweep crowd-2d 16x16x10 off-host": ("hjb", "off", {**CROWD_2D, "Nt": 10}),
    "fp sweep crowd-2d 16x16x10 off-host": ("fp", "off", {**CROWD_2D, "Nt": 10}),
    "solve crowd-2d 16x16x5 anderson off-host": ("solve", "off", {**CROWD_2D, "Nt": 5}),
}

CHILD = """
import json, sys, time
from mfg_rl import problems, solve
from mfg_rl.backends.torch_backend import TorchBackend
from mfg_rl.solvers import DiscreteMFG, Sequential
from mfg_rl.solvers.particles import ParticleFP

class OffHost(TorchBackend):
    on_host = property(lambda self: False)

kind, where, params = json.loads(sys.argv[1])
backend = TorchBackend(device="cpu") if where == "host" else OffHost(device="cpu")
problem = problems.make(params.pop("name", "lq-1d"), **params)
disc = DiscreteMFG(problem, backend)
m = disc.xp.stack([disc.m0] * (problem.time.Nt + 1))
u = Sequential().hjb(disc, m).u  # warm: the next sweep's rounds are known
work = {
    "hjb": lambda: Sequential().hjb(disc, m),
    "fp": lambda: Sequential().fp(disc, u, m),
    "particles": lambda: ParticleFP(100_000, seed=0, bandwidth=0.02).simulate(disc, u, m),
    "solve": lambda: solve(problem, backend=backend, coupling="anderson", progress=False),
}[kind]
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    work()
    best = min(best, time.perf_counter() - start)
print(json.dumps(best))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--after", default="", help="a git revision to time instead of this tree")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = parser.parse_args()
    cases = {name: case for name, case in CASES.items() if args.only in name}
    with checkouts(args.baseline, args.after) as trees:
        print(f"baseline {args.baseline} vs {args.after or 'this tree'}, torch on the CPU, "
              f"best of {args.repeats} x 3 runs")
        compare(trees, CHILD, cases, args.repeats, width=40, digits=4)


if __name__ == "__main__":
    main()
