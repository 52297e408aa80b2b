"""The training report: learned control vs equilibrium control, induced vs equilibrium density.

A 1D game gets two panels of curves at a few times ``t``; a 2D game gets, at the final
and middle times, heat maps of the control magnitude ``|alpha|`` and of the densities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def _controls(policy: Any, game: Any, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Learned and equilibrium control at time level ``level`` on the grid nodes, ``(*space, d)``."""
    grid = game.grid
    nodes = np.stack([a.reshape(-1) for a in grid.mesh()], axis=-1)
    x = torch.as_tensor(nodes[:, 0] if game.ndim == 1 else nodes, dtype=torch.float32)
    t = torch.full((x.shape[0],), level * game.dt, dtype=torch.float32)
    with torch.no_grad():
        learned = policy(t, x).detach().cpu().double().numpy().reshape(*grid.shape, game.ndim)
    return learned, game.controls[level]


def figure(policy: Any, game: Any, score: Any) -> Any:
    """A matplotlib figure (Agg-safe) comparing ``policy`` and its crowd ``score.m_pi`` with ``m*``."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    m_eq = game.eq.m.numpy()
    levels = sorted({0, game.Nt // 2, game.Nt - 1})
    title = (f"exploitability {score.exploitability:.3e}   value gap {score.value_gap:+.3e}   "
             f"density L1 {score.density_l1:.3e}")
    if game.ndim == 1:
        x = game.grid.coordinates()[0]
        fig, (ax_u, ax_m) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        support = m_eq.max(axis=0) > 1e-3 * m_eq.max()
        shown = []
        for i, n in enumerate(levels):
            learned, exact = _controls(policy, game, n)
            shown += [exact[support, 0], learned[support, 0]]
            color = f"C{i}"
            ax_u.plot(x, exact[:, 0], color=color, ls="--", label=f"equilibrium t={n * game.dt:.2f}")
            ax_u.plot(x, learned[:, 0], color=color, label=f"learned t={n * game.dt:.2f}")
        for i, n in enumerate(sorted({0, game.Nt // 2, game.Nt})):
            ax_m.plot(x, m_eq[n], color=f"C{i}", ls="--", label=f"m* t={n * game.dt:.2f}")
            ax_m.plot(x, score.m_pi[n], color=f"C{i}", label=f"induced t={n * game.dt:.2f}")
        if support.any():
            low, high = x[support].min(), x[support].max()
            pad = 0.1 * (high - low)
            ax_u.set_xlim(low - pad, high + pad)
            ax_m.set_xlim(low - pad, high + pad)
            values = np.concatenate(shown)
            lo, hi = float(values.min()), float(values.max())
            ax_u.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
        ax_u.set(xlabel="x", ylabel="control alpha(t, x)", title="learned vs equilibrium control")
        ax_m.set(xlabel="x", ylabel="density m(t, x)", title="induced vs equilibrium density")
        ax_u.legend(fontsize=7)
        ax_m.legend(fontsize=7)
    else:
        fig, axes = plt.subplots(2, 2, figsize=(9, 8), constrained_layout=True)
        n = game.Nt // 2
        learned, exact = _controls(policy, game, n)
        panels = ((np.linalg.norm(learned, axis=-1), f"|alpha| learned, t={n * game.dt:.2f}"),
                  (np.linalg.norm(exact, axis=-1), f"|alpha*| equilibrium, t={n * game.dt:.2f}"),
                  (score.m_pi[-1], "induced density at T"), (m_eq[-1], "equilibrium density at T"))
        for ax, (field, name) in zip(axes.flat, panels, strict=True):
            image = ax.imshow(field.T, origin="lower", aspect="auto")
            fig.colorbar(image, ax=ax)
            ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    return fig


def save_report(policy: Any, game: Any, score: Any, path: str | Path) -> Path:
    """Write ``figure(...)`` to ``path`` (PNG); returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = figure(policy, game, score)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
