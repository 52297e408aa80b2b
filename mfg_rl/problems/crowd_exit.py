"""A crowd leaving a 1D corridor through one or two exits, slowed by congestion.

On ``Omega = (0, 1)`` with ``nu = sigma^2 / 2`` and the congested Hamiltonian
``H(p, m) = |p|^2 / (2 lambda (1 + c m))`` (``lambda = control_cost``, ``c = congestion``):

    -du/dt - nu u_xx + H(u_x, m) = time_cost + crowd_aversion * m,   u(T) = terminal_penalty
     dm/dt - nu m_xx - (m u_x / (lambda (1 + c m)))_x = 0,           m(0) = m0

On an exit side ``u = 0`` (leaving is free) and ``m = 0`` (agents who reach it are gone);
the other side is a no-flux wall. Every unit of time inside costs ``time_cost``, crowded
places cost ``crowd_aversion * m`` and whoever is still inside at ``T`` pays
``terminal_penalty``, so agents hurry to the exit but spread out and slow down in the
crowd. The couplings are monotone (increasing in ``m``), so the equilibrium is unique.
The mass inside, ``int m dx``, decreases in time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.checks import check_choice, check_real
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.costs import AffineCost
from mfg_rl.problems.registry import register

EXITS = {"right": ("no_flux", "exit"), "left": ("exit", "no_flux"), "both": ("exit", "exit")}


def crowd_costs(time_cost: float, crowd_aversion: float,
                terminal_penalty: float) -> tuple[AffineCost, AffineCost]:
    """Running cost ``time_cost + crowd_aversion m`` and terminal cost ``terminal_penalty``."""
    return AffineCost(time_cost, crowd_aversion), AffineCost(terminal_penalty, 0.0)


def crowd_problem(name: str, grid: Grid, m0: np.ndarray, params: dict[str, Any]) -> MFGProblem:
    """The crowd-leaving game on ``grid`` (exits from its boundary) with validated ``params``."""
    running_cost, terminal_cost = crowd_costs(
        params["time_cost"], params["crowd_aversion"], params["terminal_penalty"]
    )
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=params["T"], Nt=params["Nt"]),
        sigma=params["sigma"],
        running_cost=running_cost,
        terminal_cost=terminal_cost,
        m0=normalised(m0, grid.cell_volume),
        hamiltonian=Hamiltonian(control_cost=params["control_cost"], congestion=params["congestion"]),
        exit_cost=0.0,
        name=name,
        params=params,
    )


@register("crowd-exit-1d")
def crowd_exit_1d(
    Nx: int = 200,
    Nt: int = 100,
    *,
    T: float = 2.0,
    sigma: float = 0.2,
    exits: str = "right",
    control_cost: float = 1.0,
    congestion: float = 0.5,
    crowd_aversion: float = 1.0,
    time_cost: float = 1.0,
    terminal_penalty: float = 10.0,
    m0_center: float = 0.3,
    m0_width: float = 0.08,
) -> MFGProblem:
    """Evacuation of a corridor ``(0, 1)``: equations in the module docstring.

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0`` (``nu = sigma^2 / 2``).
        exits: ``"right"`` (exit at ``x = 1``), ``"left"`` (at ``x = 0``) or ``"both"``;
            a side without exit is a no-flux wall.
        control_cost: ``lambda > 0``, kinetic cost ``lambda (1 + c m) |alpha|^2 / 2``.
        congestion: ``c >= 0``, how much density slows agents (0: none).
        crowd_aversion: ``>= 0``, weight of the local crowd cost ``m``.
        time_cost: ``>= 0``, cost per unit time spent inside.
        terminal_penalty: ``>= 0``, cost of still being inside at ``T``.
        m0_center: centre of the initial Gaussian bump, in ``(0, 1)``.
        m0_width: its standard deviation, ``> 0`` (normalised to mass 1 on the grid).

    Example:
        >>> p = crowd_exit_1d(Nx=50, Nt=10)
        >>> p.grid.shape, p.grid.boundary
        ((50,), (('no_flux', 'exit'),))
    """
    params = dict(
        Nx=check_cells("Nx", Nx), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        exits=check_choice("exits", exits, tuple(EXITS)),
        control_cost=check_real("control_cost", control_cost, 0.0, open_low=True),
        congestion=check_real("congestion", congestion, 0.0),
        crowd_aversion=check_real("crowd_aversion", crowd_aversion, 0.0),
        time_cost=check_real("time_cost", time_cost, 0.0),
        terminal_penalty=check_real("terminal_penalty", terminal_penalty, 0.0),
        m0_center=check_real("m0_center", m0_center, 0.0, 1.0, open_low=True, open_high=True),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )
    grid = Grid(bounds=[(0.0, 1.0)], shape=params["Nx"], boundary=[EXITS[exits]])
    (x,) = grid.coordinates()
    m0 = np.exp(-0.5 * ((x - params["m0_center"]) / params["m0_width"]) ** 2)
    return crowd_problem("crowd-exit-1d", grid, m0, params)
