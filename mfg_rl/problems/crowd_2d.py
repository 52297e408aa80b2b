"""A crowd evacuating the square room ``(0, 1)^2`` through one of its walls.

The 2D version of ``crowd-exit-1d``. With ``nu = sigma^2 / 2``, ``lambda = control_cost``,
``c = congestion`` and ``H(p, m) = |p|^2 / (2 lambda (1 + c m))``:

    -du/dt - nu Lap u + H(grad u, m) = time_cost + crowd_aversion * m,   u(T) = terminal_penalty
     dm/dt - nu Lap m - div(m grad u / (lambda (1 + c m))) = 0,          m(0) = m0

One whole side of the room is the exit (``u = 0``, ``m = 0``: agents who reach it have
left; there is no obstacle); the three other sides are no-flux walls. ``m0`` is a
Gaussian blob ``exp(-|x - m0_center|^2 / (2 m0_width^2))`` normalised to mass 1. The
problem is symmetric under ``y -> 1 - y`` when the exit is ``"right"`` or ``"left"``
and ``m0_center[1] = 1/2`` (the defaults), and under ``x -> 1 - x`` when the exit is
``"top"`` or ``"bottom"`` and ``m0_center[0] = 1/2``.
Axis 0 is ``x`` and axis 1 is ``y`` (arrays of shape ``(Nx, Ny)``, ``indexing="ij"``).
"""

from __future__ import annotations

import numpy as np

from mfg_rl.checks import check_choice, check_real
from mfg_rl.core import Grid, MFGProblem
from mfg_rl.problems.checks import check_cells
from mfg_rl.problems.crowd_exit import crowd_problem
from mfg_rl.problems.registry import register

WALL = ("no_flux", "no_flux")
EXIT_SIDES = {
    "right": (("no_flux", "exit"), WALL),  # x = 1
    "left": (("exit", "no_flux"), WALL),  # x = 0
    "top": (WALL, ("no_flux", "exit")),  # y = 1
    "bottom": (WALL, ("exit", "no_flux")),  # y = 0
}


@register("crowd-2d")
def crowd_2d(
    Nx: int = 64,
    Ny: int = 64,
    Nt: int = 50,
    *,
    T: float = 2.0,
    sigma: float = 0.2,
    exit_side: str = "right",
    control_cost: float = 1.0,
    congestion: float = 0.5,
    crowd_aversion: float = 1.0,
    time_cost: float = 1.0,
    terminal_penalty: float = 10.0,
    m0_center: tuple[float, float] = (0.3, 0.5),
    m0_width: float = 0.1,
) -> MFGProblem:
    """Evacuation of the room ``(0, 1)^2``: equations in the module docstring.

    Args:
        Nx, Ny: cells along ``x`` and ``y``, each ``>= 3``. Nt: time steps, ``>= 1``.
        T: horizon ``> 0``. sigma: noise ``>= 0`` (``nu = sigma^2 / 2``).
        exit_side: the wall that is an exit: ``"right"`` (``x = 1``), ``"left"``
            (``x = 0``), ``"top"`` (``y = 1``) or ``"bottom"`` (``y = 0``).
        control_cost: ``lambda > 0``, kinetic cost ``lambda (1 + c m) |alpha|^2 / 2``.
        congestion: ``c >= 0``, how much density slows agents (0: none).
        crowd_aversion: ``>= 0``, weight of the local crowd cost ``m``.
        time_cost: ``>= 0``, cost per unit time spent inside.
        terminal_penalty: ``>= 0``, cost of still being in the room at ``T``.
        m0_center: ``(x, y)`` centre of the initial blob, each in ``(0, 1)``.
        m0_width: its standard deviation, ``> 0``.

    Example:
        >>> p = crowd_2d(Nx=16, Ny=12, Nt=5)
        >>> p.grid.shape, p.grid.boundary[0]
        ((16, 12), ('no_flux', 'exit'))
    """
    try:
        cx, cy = m0_center
    except (TypeError, ValueError):
        raise ValueError(
            f"m0_center must be a pair (x, y) in (0, 1)^2, got {m0_center!r}"
        ) from None
    params = dict(
        Nx=check_cells("Nx", Nx), Ny=check_cells("Ny", Ny), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        exit_side=check_choice("exit_side", exit_side, tuple(EXIT_SIDES)),
        control_cost=check_real("control_cost", control_cost, 0.0, open_low=True),
        congestion=check_real("congestion", congestion, 0.0),
        crowd_aversion=check_real("crowd_aversion", crowd_aversion, 0.0),
        time_cost=check_real("time_cost", time_cost, 0.0),
        terminal_penalty=check_real("terminal_penalty", terminal_penalty, 0.0),
        m0_center=(
            check_real("m0_center[0]", cx, 0.0, 1.0, open_low=True, open_high=True),
            check_real("m0_center[1]", cy, 0.0, 1.0, open_low=True, open_high=True),
        ),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )
    grid = Grid(
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        shape=(params["Nx"], params["Ny"]),
        boundary=EXIT_SIDES[exit_side],
    )
    x, y = grid.mesh()
    (cx, cy), width = params["m0_center"], params["m0_width"]
    m0 = np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / (width * width))
    return crowd_problem("crowd-2d", grid, m0, params)
