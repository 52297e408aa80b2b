"""Figures of an equilibrium: heat maps of u and m over (t, x) in 1D, snapshots in 2D.

matplotlib is imported when a figure is asked for, with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def plot_equilibrium(eq: Any, path: str | os.PathLike, snapshots: int = 4) -> Path:
    """Write a PNG of ``eq`` (an ``Equilibrium``) to ``path`` and return the path.

    1D: two heat maps, ``u(t, x)`` and ``m(t, x)``, time upward. 2D: ``m`` at
    ``snapshots`` evenly spaced times (top row) and ``u`` at the same times (bottom row).
    An adaptive solve (``eq.meshes``, ``method="amr"``) has its tree meshes drawn over ``m``: in 1D
    each slab's leaf boundaries over the slab's times, in 2D each snapshot's leaves.

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("lq-1d", Nx=41, Nt=10), progress=False)
        >>> plot_equilibrium(eq, "/tmp/lq.png").suffix
        '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    problem = eq.problem
    u, m = eq.u.numpy(), eq.m.numpy()
    times = problem.time.times()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if problem.ndim == 1:
        x = problem.grid.coordinates()[0]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, data, title in ((axes[0], u, "value u(t, x)"), (axes[1], m, "density m(t, x)")):
            image = ax.pcolormesh(x, times, data, shading="nearest", cmap="viridis")
            ax.set(xlabel="x", ylabel="t", title=title)
            fig.colorbar(image, ax=ax)
        if eq.meshes is not None:
            _draw_slab_edges(axes[1], eq.meshes, times)
    elif problem.ndim == 2:
        (lo_x, hi_x), (lo_y, hi_y) = problem.grid.bounds
        levels = np.linspace(0, problem.time.Nt, snapshots).round().astype(int)
        fig, axes = plt.subplots(2, snapshots, figsize=(3.2 * snapshots, 6), constrained_layout=True)
        for col, n in enumerate(levels):
            for row, (data, name) in enumerate(((m, "m"), (u, "u"))):
                ax = axes[row, col]
                image = ax.imshow(data[n].T, origin="lower", extent=(lo_x, hi_x, lo_y, hi_y),
                                  cmap="viridis", aspect="auto")
                ax.set_title(f"{name} at t={times[n]:.2f}")
                if name == "m" and eq.meshes is not None:
                    mesh = eq.meshes.meshes[eq.meshes.slab_of_level(int(n))]
                    _draw_leaves(ax, mesh)
                    ax.set_title(f"m at t={times[n]:.2f}, {len(mesh)} leaves")
                fig.colorbar(image, ax=ax, shrink=0.8)
    else:
        raise ValueError(f"plot_equilibrium draws 1D and 2D problems, got ndim={problem.ndim}")
    fig.suptitle(f"{problem.name}: {eq.diagnostics.iterations} iterations, "
                 f"residual {eq.diagnostics.residual:.1e}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_leaves(ax: Any, mesh: Any) -> None:
    """The leaves of a 2D ``TreeMesh`` as white rectangle outlines on ``ax``."""
    from matplotlib.collections import PolyCollection

    lo = np.asarray(mesh.centres) - 0.5 * np.asarray(mesh.sizes)
    hi = lo + np.asarray(mesh.sizes)
    corners = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], axis=1), hi,
                        np.stack([lo[:, 0], hi[:, 1]], axis=1)], axis=1)  # (M, 4, 2)
    ax.add_collection(PolyCollection(corners, facecolors="none", edgecolors="white", linewidths=0.2,
                                     alpha=0.6))


def _draw_slab_edges(ax: Any, meshes: Any, times: np.ndarray) -> None:
    """The leaf boundaries of each 1D slab mesh as white segments over the slab's times on ``ax``."""
    from matplotlib.collections import LineCollection

    segments = []
    for mesh, start, stop in zip(meshes.meshes, meshes.edges[:-1], meshes.edges[1:], strict=True):
        lo = np.asarray(mesh.centres)[:, 0] - 0.5 * np.asarray(mesh.sizes)[:, 0]
        segments.extend([(x, times[start]), (x, times[stop])] for x in lo[1:])
    ax.add_collection(LineCollection(segments, colors="white", linewidths=0.3, alpha=0.6))
