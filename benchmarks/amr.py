"""Benchmark of the tree-mesh kernels: numba against the numpy twin, in one run.

The mesh is a quadtree on the unit square refined around a circle (a front) from level 6,
one level at a time, until it has 1e5 leaves (``--leaves`` sets the target). On it:

- refine: split the 10 % of the leaves nearest the circle (``refine`` kernel, no balance);
- balance: 2:1 balance of that split mesh (``balance`` kernel);
- refine + balance: ``TreeMesh.refine`` (both kernels and the new mesh);
- coarsen: ``TreeMesh.coarsen`` with every leaf flagged (each complete family that keeps
  the balance merges);
- faces: the interior and boundary face lists (``faces`` kernel);
- locate: the leaves of 1e6 uniform random points (``TreeMesh.locate``, Morton keys and a
  binary search per point);
- transfer: cell averages to the refined mesh (``LeafMap``, numpy for both rows).

The targets of issue 15: refine/coarsen/balance of a 1e5-leaf quadtree under 0.1 s, locating
1e6 points under 0.5 s. Times are the best of a few runs after a warm-up (numba compiles on
first use, or loads its disk cache), one thread.

Usage::

    python benchmarks/amr.py                    # ~1e5 leaves, 1e6 points (about a minute)
    python benchmarks/amr.py --quick            # ~1e4 leaves, 1e5 points
"""

from __future__ import annotations

import argparse

import numpy as np
from kernels import best_time  # benchmarks/kernels.py: best of a few runs

from mfg_rl.core.tree_mesh import TreeMesh, tree_kernels
from mfg_rl.core.tree_transfer import LeafMap

TARGETS = {"refine + balance": 0.1, "refine": 0.1, "balance": 0.1, "coarsen": 0.1, "locate": 0.5}


def front_mesh(leaves: int, kernels: str) -> TreeMesh:
    """Refine the leaves within three leaf widths of the circle |x - (1/2, 1/2)| = 0.3, one
    level at a time from level 6, until the mesh has at least ``leaves`` leaves."""
    mesh = TreeMesh.uniform([(0.0, 1.0), (0.0, 1.0)], min_level=6, max_level=16, kernels=kernels)
    while len(mesh) < leaves:
        distance = np.abs(np.linalg.norm(mesh.centres - 0.5, axis=1) - 0.3)
        mesh = mesh.refine((distance < 3.0 * mesh.sizes[:, 0]) & (mesh.level == mesh.level.max()))
    return mesh


def rows(mesh: TreeMesh, points: np.ndarray, budget: float) -> dict[str, tuple[float, int]]:
    """``{operation: (seconds, leaves or points)}`` on ``mesh`` with its own kernels."""
    k = tree_kernels(mesh.kernels)
    level, coords, top = np.array(mesh.level), np.array(mesh.coords), mesh.root.max_level
    shape, periodic = np.array(mesh.root.root_shape), np.array(mesh.root.periodic)
    distance = np.abs(np.linalg.norm(mesh.centres - 0.5, axis=1) - 0.3)
    flags = distance <= np.quantile(distance, 0.1)
    split_level, split_coords = k.refine(level, coords, flags)
    everything = np.ones(len(mesh), dtype=bool)
    refined = mesh.refine(flags)
    values = np.sin(7 * mesh.centres[:, 0]) * mesh.centres[:, 1]
    keys = np.array(mesh.keys)
    return {
        "refine": (best_time(lambda: k.refine(level, coords, flags), budget), len(mesh)),
        "balance": (best_time(lambda: k.balance(split_level, split_coords, shape, top, periodic), budget),
                    len(split_level)),
        "refine + balance": (best_time(lambda: mesh.refine(flags), budget), len(mesh)),
        "coarsen": (best_time(lambda: mesh.coarsen(everything), budget), len(mesh)),
        "faces": (best_time(lambda: k.faces(level, coords, keys, shape, top, periodic), budget), len(mesh)),
        "locate": (best_time(lambda: mesh.locate(points), budget), len(points)),
        "transfer": (best_time(lambda: LeafMap.between(mesh, refined).transfer(values), budget),
                     len(refined)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~1e4 leaves and 1e5 points")
    parser.add_argument("--leaves", type=int, default=None, help="target leaf count (default 1e5)")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per row and twin")
    args = parser.parse_args()
    leaves = args.leaves or (10_000 if args.quick else 100_000)
    n_points = 100_000 if args.quick else 1_000_000
    points = np.random.default_rng(0).random((n_points, 2))
    fast = front_mesh(leaves, "numba")
    slow = TreeMesh.from_leaves(fast.root, fast.level, fast.coords, kernels="numpy")
    print(f"quadtree around a circle: {len(fast)} leaves, levels {fast.level.min()}..{fast.level.max()}, "
          f"{len(fast.faces)} faces ({int(fast.faces.hanging.sum())} hanging); {n_points} points")
    timed = {"numba": rows(fast, points, args.budget), "numpy": rows(slow, points, args.budget)}
    print(f"{'operation':<17} {'size':>9} {'numba ms':>9} {'numpy ms':>9} {'ratio':>6} {'target ms':>9} "
          f"{'numba':>6} {'numpy':>6}")
    for name, (fast_s, size) in timed["numba"].items():
        slow_s = timed["numpy"][name][0]
        target = TARGETS.get(name)
        met = ("", "") if target is None else tuple("yes" if s < target else "NO" for s in (fast_s, slow_s))
        print(f"{name:<17} {size:>9d} {fast_s * 1e3:>9.2f} {slow_s * 1e3:>9.2f} {slow_s / fast_s:>6.1f} "
              f"{'' if target is None else f'{target * 1e3:.0f}':>9} {met[0]:>6} {met[1]:>6}")


if __name__ == "__main__":
    main()
