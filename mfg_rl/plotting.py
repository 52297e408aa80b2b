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
                fig.colorbar(image, ax=ax, shrink=0.8)
    else:
        raise ValueError(f"plot_equilibrium draws 1D and 2D problems, got ndim={problem.ndim}")
    fig.suptitle(f"{problem.name}: {eq.diagnostics.iterations} iterations, "
                 f"residual {eq.diagnostics.residual:.1e}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
