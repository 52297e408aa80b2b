"""RGB frames of the crowd with the agents on it (``render_mode="rgb_array"``).

A frame is a matplotlib figure drawn by Agg (no pyplot, so no global state) into an
``(HEIGHT, WIDTH, 3)`` uint8 array: axes in the problem's coordinates, a colour bar of the
density, the time in the title, and every agent drawn at its own time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WIDTH, HEIGHT, DPI = 640, 480, 100
AGENTS_DRAWN = 512
AGENT_STYLE = dict(edgecolors="black", linewidths=0.6, zorder=3)
# fixed rectangles (figure fractions): the constrained layout engine made a frame 1.5x slower
LAYOUTS = {  # plot, then its colour bars
    0: ((0.10, 0.11, 0.85, 0.80),),
    1: ((0.09, 0.11, 0.72, 0.80), (0.84, 0.11, 0.025, 0.80)),
    2: ((0.08, 0.11, 0.64, 0.80), (0.75, 0.11, 0.025, 0.80), (0.865, 0.11, 0.025, 0.80)),
}


def frame(density: np.ndarray, times: np.ndarray, x: np.ndarray, bounds: list[tuple[float, float]],
          T: float) -> np.ndarray:
    """``figure(...)`` drawn by Agg: HWC uint8 of shape ``(HEIGHT, WIDTH, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure(density, times, x, bounds, T))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure(density: np.ndarray, times: np.ndarray, x: np.ndarray, bounds: list[tuple[float, float]],
           T: float) -> Any:
    """The crowd and the agents as a matplotlib ``Figure`` of ``WIDTH x HEIGHT`` pixels.

    ``density`` is the crowd at ``L`` equally spaced times over ``[0, T]``, shape ``(L, *space)``
    (the frozen crowd, ``L = Nt + 1``), or only now, ``(1, *space)`` (the N-player crowd, one
    shared clock); ``times`` ``(N,)`` and ``x`` ``(N, d)`` are the agents' times and positions
    (the first ``AGENTS_DRAWN`` are drawn); ``bounds`` the box, one ``(low, high)`` per axis.

    1D: the heat map of ``m`` over ``(t, x)`` with each agent a white dot at its own ``(t, x)``
    (a dashed line marks the time when the agents share one), or for the crowd of now its
    profile ``m(x)`` with the agents as ticks on the ``x`` axis. 2D: the heat map of ``m`` over
    ``(x, y)`` at the agents' most common time, the agents coloured by their own time when
    their times differ. Density colour scales run from 0 to the maximum of what is shown.
    """
    from matplotlib.figure import Figure

    density = np.asarray(density, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)[:AGENTS_DRAWN]
    x = np.asarray(x, dtype=np.float64)[:AGENTS_DRAWN]
    result = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    size = 40 if len(x) == 1 else 14
    if len(bounds) == 1 and density.shape[0] > 1:
        _spacetime(result, density, times, x[:, 0], bounds[0], T, size)
    elif len(bounds) == 1:
        _profile(result.add_axes(LAYOUTS[0][0]), density[0], times, x[:, 0], bounds[0], T)
    else:
        _room(result, density, times, x, bounds, T, size)
    return result


def _shared(times: np.ndarray, T: float) -> bool:
    """Whether the agents (at least one) share one time."""
    return bool(times.size) and float(np.ptp(times)) <= 1e-9 * max(T, 1.0)


def _title(times: np.ndarray, T: float) -> str:
    """``t = ...`` when the agents share a time, else the range of their times."""
    if times.size == 0:
        return f"no agent inside (T = {T:g})"
    if _shared(times, T):
        return f"t = {float(times[0]):.3g} of T = {T:g}"
    return f"{times.size} agents at t in [{float(times.min()):.3g}, {float(times.max()):.3g}] (T = {T:g})"


def _spacetime(figure: Any, density: np.ndarray, times: np.ndarray, x: np.ndarray,
               bounds: tuple[float, float], T: float, size: float) -> None:
    plot, bar = LAYOUTS[1]
    axes = figure.add_axes(plot)
    half = 0.5 * T / (density.shape[0] - 1)
    image = axes.imshow(density.T, origin="lower", aspect="auto", interpolation="nearest", cmap="viridis",
                        extent=(-half, T + half, *bounds), vmin=0.0)
    figure.colorbar(image, cax=figure.add_axes(bar), label="density m(t, x)")
    if _shared(times, T):
        axes.axvline(float(times[0]), color="0.85", linestyle="--", linewidth=1.0)
    axes.scatter(times, x, color="white", s=size, **AGENT_STYLE)
    axes.set(xlabel="time t", ylabel="position x", title=_title(times, T), xlim=(-half, T + half),
             ylim=bounds)


def _profile(axes: Any, m: np.ndarray, times: np.ndarray, x: np.ndarray, bounds: tuple[float, float],
             T: float) -> None:
    nodes = bounds[0] + (np.arange(m.size) + 0.5) * (bounds[1] - bounds[0]) / m.size
    axes.fill_between(nodes, m, color="#3b528b", alpha=0.35)
    axes.plot(nodes, m, color="#3b528b", label="crowd density m(t, x)")
    axes.plot(x, np.zeros_like(x), "|", color="black", markersize=14, label="agents")
    axes.set(xlabel="position x", ylabel="density m(t, x)", title=f"N-player crowd, {_title(times, T)}",
             xlim=bounds, ylim=(0.0, 1.1 * max(float(m.max()), 1e-12)))
    axes.legend(loc="upper right")


def _room(figure: Any, density: np.ndarray, times: np.ndarray, x: np.ndarray,
          bounds: list[tuple[float, float]], T: float, size: float) -> None:
    spread = bool(times.size) and not _shared(times, T)
    plot, *bars = LAYOUTS[2 if spread else 1]
    axes = figure.add_axes(plot)
    levels = density.shape[0]
    if levels == 1 or times.size == 0:
        level = 0
    else:
        indices = np.clip(np.rint(times / T * (levels - 1)).astype(int), 0, levels - 1)
        level = int(np.bincount(indices, minlength=levels).argmax())
    (x0, x1), (y0, y1) = bounds
    image = axes.imshow(density[level].T, origin="lower", interpolation="nearest", cmap="viridis",
                        extent=(x0, x1, y0, y1), vmin=0.0, vmax=max(float(density[level].max()), 1e-12))
    figure.colorbar(image, cax=figure.add_axes(bars[0]), label="density m(t, x, y)")
    title = _title(times, T) if levels > 1 else f"N-player crowd, {_title(times, T)}"
    if spread:
        agents = axes.scatter(x[:, 0], x[:, 1], c=times, cmap="autumn", vmin=0.0, vmax=T, s=size,
                              **AGENT_STYLE)
        figure.colorbar(agents, cax=figure.add_axes(bars[1]), label="agent's time t")
        if levels > 1:
            title = f"m at t = {level * T / (levels - 1):.3g}; {title}"
    else:
        axes.scatter(x[:, 0], x[:, 1], color="white", s=size, **AGENT_STYLE)
    axes.set(xlabel="x", ylabel="y", title=title, xlim=(x0, x1), ylim=(y0, y1), aspect="equal")
