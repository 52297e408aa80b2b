"""Evacuation of a corridor with non-quadratic control costs: bounded walking speed, power laws.

The ``crowd-exit-1d`` game without congestion, on ``Omega = (0, 1)`` with an exit at ``x = 1``
and ``nu = sigma^2 / 2``, for three Hamiltonians of ``mfg_rl.core``:

    -du/dt - nu u_xx + H(u_x) = time_cost + crowd_aversion * m,   u(T) = terminal_penalty
     dm/dt - nu m_xx - (m dH/dp(u_x))_x = 0,                      m(0) = m0

- ``crowd-walk-1d``: quadratic cost ``lambda alpha^2 / 2`` with a maximal walking speed,
  ``|alpha| <= max_speed`` (``BoundedControlHamiltonian``: ``H`` quadratic, then linear);
- ``crowd-power-1d``: ``L = lambda |alpha|^q' / q'`` (``PowerLawHamiltonian``, ``H = c |p|^q / q``);
- ``crowd-relativistic-1d``: ``H = sqrt(1 + (p / lambda)^2) - 1`` given as a plain function
  (``CustomHamiltonian``, derivatives by autodiff): speeds below 1, smoothly.

On the exit ``u = 0`` and ``m = 0``; the other side is a no-flux wall. The couplings are
monotone in ``m``, so each equilibrium is unique.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.checks import check_real
from mfg_rl.core import (
    BoundedControlHamiltonian,
    CustomHamiltonian,
    Grid,
    IsotropicHamiltonian,
    MFGProblem,
    PowerLawHamiltonian,
    TimeGrid,
)
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.crowd_exit import crowd_costs
from mfg_rl.problems.registry import register


def _corridor(name: str, hamiltonian: IsotropicHamiltonian, params: dict[str, Any]) -> MFGProblem:
    grid = Grid(bounds=[(0.0, 1.0)], shape=params["Nx"], boundary=[("no_flux", "exit")])
    (x,) = grid.coordinates()
    m0 = np.exp(-0.5 * ((x - params["m0_center"]) / params["m0_width"]) ** 2)
    running_cost, terminal_cost = crowd_costs(params["time_cost"], params["crowd_aversion"],
                                              params["terminal_penalty"])
    return MFGProblem(grid=grid, time=TimeGrid(T=params["T"], Nt=params["Nt"]), sigma=params["sigma"],
                      running_cost=running_cost, terminal_cost=terminal_cost,
                      m0=normalised(m0, grid.cell_volume), hamiltonian=hamiltonian, name=name, params=params)


def _common(Nx: int, Nt: int, T: float, sigma: float, control_cost: float, crowd_aversion: float,
            time_cost: float, terminal_penalty: float, m0_center: float, m0_width: float) -> dict[str, Any]:
    return dict(
        Nx=check_cells("Nx", Nx), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        control_cost=check_real("control_cost", control_cost, 0.0, open_low=True),
        crowd_aversion=check_real("crowd_aversion", crowd_aversion, 0.0),
        time_cost=check_real("time_cost", time_cost, 0.0),
        terminal_penalty=check_real("terminal_penalty", terminal_penalty, 0.0),
        m0_center=check_real("m0_center", m0_center, 0.0, 1.0, open_low=True, open_high=True),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )


@register("crowd-walk-1d")
def crowd_walk_1d(Nx: int = 200, Nt: int = 100, *, T: float = 2.0, sigma: float = 0.2, max_speed: float = 0.6,
                  control_cost: float = 1.0, crowd_aversion: float = 1.0, time_cost: float = 1.0,
                  terminal_penalty: float = 10.0, m0_center: float = 0.3,
                  m0_width: float = 0.08) -> MFGProblem:
    """Evacuation at a bounded walking speed ``|alpha| <= max_speed`` (module docstring).

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0``. max_speed: ``> 0``, the fastest walk.
        control_cost: ``lambda > 0``, effort ``lambda alpha^2 / 2`` below the maximal speed.
        crowd_aversion: ``>= 0``, weight of the crowd cost ``m``. time_cost: ``>= 0`` per unit time.
        terminal_penalty: ``>= 0``, cost of being inside at ``T``.
        m0_center: centre of the initial bump in ``(0, 1)``; m0_width: its width ``> 0``.

    Example:
        >>> p = crowd_walk_1d(Nx=50, Nt=10)
        >>> p.hamiltonian.max_speed
        0.6
    """
    params = _common(Nx, Nt, T, sigma, control_cost, crowd_aversion, time_cost, terminal_penalty, m0_center,
                     m0_width)
    params["max_speed"] = check_real("max_speed", max_speed, 0.0, open_low=True)
    hamiltonian = BoundedControlHamiltonian(max_speed=params["max_speed"],
                                            control_cost=params["control_cost"])
    return _corridor("crowd-walk-1d", hamiltonian, params)


@register("crowd-power-1d")
def crowd_power_1d(Nx: int = 200, Nt: int = 100, *, T: float = 2.0, sigma: float = 0.2, power: float = 3.0,
                   control_cost: float = 1.0, crowd_aversion: float = 1.0, time_cost: float = 1.0,
                   terminal_penalty: float = 10.0, m0_center: float = 0.3,
                   m0_width: float = 0.08) -> MFGProblem:
    """Evacuation with the power-law effort ``lambda |alpha|^q' / q'`` (``H = c |p|^q / q``).

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0``. power: ``q > 1`` of ``H`` (``q = 2``: quadratic; ``q = 3``:
            effort ``|alpha|^1.5``).
        control_cost: ``lambda > 0``.
        crowd_aversion: ``>= 0``, weight of the crowd cost ``m``. time_cost: ``>= 0`` per unit time.
        terminal_penalty: ``>= 0``, cost of being inside at ``T``.
        m0_center: centre of the initial bump in ``(0, 1)``; m0_width: its width ``> 0``.

    Example:
        >>> crowd_power_1d(Nx=50, Nt=10).hamiltonian.power
        3.0
    """
    params = _common(Nx, Nt, T, sigma, control_cost, crowd_aversion, time_cost, terminal_penalty, m0_center,
                     m0_width)
    params["power"] = check_real("power", power, 1.0, open_low=True)
    hamiltonian = PowerLawHamiltonian(power=params["power"], control_cost=params["control_cost"])
    return _corridor("crowd-power-1d", hamiltonian, params)


class Relativistic:
    """``H(x, p, m) = sqrt(1 + (p / lambda)^2) - 1`` as a plain picklable function of arrays."""

    def __init__(self, control_cost: float) -> None:
        self.control_cost = control_cost

    def __call__(self, x: Any, p: Any, m: Any) -> Any:
        return (1.0 + (p / self.control_cost) ** 2) ** 0.5 - 1.0


@register("crowd-relativistic-1d")
def crowd_relativistic_1d(Nx: int = 200, Nt: int = 100, *, T: float = 2.0, sigma: float = 0.2,
                          control_cost: float = 1.0, crowd_aversion: float = 1.0, time_cost: float = 1.0,
                          terminal_penalty: float = 10.0, m0_center: float = 0.3,
                          m0_width: float = 0.08) -> MFGProblem:
    """Evacuation with ``H = sqrt(1 + (p / lambda)^2) - 1``, a user-style ``CustomHamiltonian``.

    Its speed ``|alpha*| = |p| / (lambda sqrt(lambda^2 + p^2))`` stays below ``1 / lambda``.

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0``. control_cost: ``lambda > 0``.
        crowd_aversion: ``>= 0``, weight of the crowd cost ``m``. time_cost: ``>= 0`` per unit time.
        terminal_penalty: ``>= 0``, cost of being inside at ``T``.
        m0_center: centre of the initial bump in ``(0, 1)``; m0_width: its width ``> 0``.

    Example:
        >>> crowd_relativistic_1d(Nx=50, Nt=10).hamiltonian.max_speed
        1.0
    """
    params = _common(Nx, Nt, T, sigma, control_cost, crowd_aversion, time_cost, terminal_penalty, m0_center,
                     m0_width)
    hamiltonian = CustomHamiltonian(Relativistic(params["control_cost"]), name="relativistic",
                                    max_speed=1.0 / params["control_cost"])
    return _corridor("crowd-relativistic-1d", hamiltonian, params)
