"""A quadtree that follows a crowd's front: adapt to the error indicator, count leaves per level.

The density is a disc of people with a sharp edge (m = 1 inside |x - c| < 0.3, falling to 0
over a width of ~0.03) and the value a smooth ramp across it; each cycle computes the
gradient-jump indicator of both, marks leaves for a target error under a cell budget, adapts
the mesh (2:1 balanced) and carries m over conservatively (the same mass to round-off).

Run: python examples/amr_front.py          (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

import numpy as np

from mfg_rl.core import Grid
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.core.tree_transfer import LeafMap
from mfg_rl.solvers.amr_marking import error_indicator, mark

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
grid = Grid([(0.0, 2.0), (0.0, 1.0)], (64, 32), boundary="no_flux")
mesh = TreeMesh.from_grid(grid, min_level=2, max_level=6 if tiny else 9)  # root: 2 x 1 squares


def fields(mesh: TreeMesh) -> tuple[np.ndarray, np.ndarray]:
    """``u`` and ``m`` at the leaves' centres."""
    x, y = mesh.centres.T
    edge = np.hypot(x - 0.8, y - 0.5) - 0.3
    return np.tanh(3.0 * (x - 1.0)), 0.5 * (1.0 - np.tanh(edge / 0.03))


for cycle in range(6 if tiny else 12):
    u, m = fields(mesh)
    eta = error_indicator(mesh, u, m)
    marks = mark(mesh, eta, tol=0.5, budget=2_000 if tiny else 60_000)
    new = mesh.adapt(marks.refine, marks.coarsen)
    carried = LeafMap.between(mesh, new).transfer(m)  # what a solver does with its m
    assert abs(carried @ new.volumes - m @ mesh.volumes) <= 1e-12 * (m @ mesh.volumes)
    print(f"cycle {cycle:2d}: {len(mesh):6d} leaves, sum eta = {eta.sum():.3e}, "
          f"{marks.refine.sum():5d} to refine, {marks.coarsen.sum():5d} to coarsen")
    if new == mesh:
        break
    mesh = new

print(f"{mesh}\nleaves per level:")
for level, count in enumerate(mesh.leaves_per_level()):
    if count:
        print(f"  level {level:2d}  width {mesh.root.width(level)[0]:.5f}  {count:6d} leaves")
uniform = np.prod(mesh.root.finest_shape)
print(f"{len(mesh)} leaves against {uniform} cells of the uniform finest grid ({len(mesh) / uniform:.1%})")
