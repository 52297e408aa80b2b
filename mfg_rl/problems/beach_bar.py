"""The beach bar: towels as close to the bar as possible, but not in the crowd.

The beach-bar process of Perrin et al., "Fictitious play for mean field games:
continuous time analysis and applications" (NeurIPS 2020), in continuous space. Agents
on a beach ``[0, 1)`` move at a kinetic cost and want to lie close to the bar at
``x_bar`` while avoiding crowded spots; the crowd aversion is the entropic
``log(m + eps)`` of the paper's reward ``-log mu(x)`` (``eps`` keeps it finite where
``m = 0``):

    f(x, m) = distance_cost * d(x, x_bar) + crowd_aversion * log(m(x) + eps),   g = 0
    -du/dt - nu u_xx + u_x^2 / (2 lambda) = f(x, m(t)),     u(T) = 0
     dm/dt - nu m_xx - (m u_x / lambda)_x = 0,              m(0) = m0,   nu = sigma^2 / 2

The beach is periodic by default, as in the paper (``d`` is the distance on the circle,
``min(|x - x_bar|, 1 - |x - x_bar|)``), or bounded by no-flux walls
(``boundary="no_flux"``, ``d = |x - x_bar|``). ``log`` is increasing, so the game is
monotone and its equilibrium unique. Without dynamics the crowd would settle where
``f`` is level, ``m + eps ~ exp(-distance_cost d / crowd_aversion)``: a bump at the bar
whose width is ``crowd_aversion / distance_cost``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from mfg_rl.checks import check_choice, check_real
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.costs import ZERO_COST
from mfg_rl.problems.registry import register

BOUNDARIES = ("periodic", "no_flux")


def beach_distance(x: Any, x_bar: float, periodic: bool) -> Any:
    """Distance to the bar: ``|x - x_bar|``, or its circular version on a periodic beach."""
    d = abs(x - x_bar)
    return 0.5 - abs(0.5 - d) if periodic else d


@dataclass(frozen=True)
class BeachCost:
    """``distance_cost d(x, x_bar) + crowd_aversion log(m + crowd_eps)``, a picklable ``CostFn``."""

    distance_cost: float
    x_bar: float
    periodic: bool
    crowd_aversion: float
    crowd_eps: float

    def __call__(self, x: Any, m: Any) -> Any:
        xp = array_namespace(m)
        distance = beach_distance(x, self.x_bar, self.periodic)
        return self.distance_cost * distance + self.crowd_aversion * xp.log(m + self.crowd_eps)


@register("beach-bar-1d")
def beach_bar_1d(
    Nx: int = 200,
    Nt: int = 100,
    *,
    T: float = 1.0,
    sigma: float = 0.2,
    control_cost: float = 1.0,
    x_bar: float = 0.5,
    distance_cost: float = 5.0,
    crowd_aversion: float = 1.0,
    crowd_eps: float = 0.01,
    boundary: str = "periodic",
    m0_center: float = 0.15,
    m0_width: float = 0.08,
) -> MFGProblem:
    """The beach bar on ``[0, 1)``: equations in the module docstring.

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0`` (``nu = sigma^2 / 2``).
        control_cost: ``lambda > 0``, kinetic cost ``lambda alpha^2 / 2``.
        x_bar: position of the bar, in ``[0, 1]``.
        distance_cost: ``>= 0``, cost per unit distance to the bar.
        crowd_aversion: ``>= 0``, weight of ``log(m + eps)``.
        crowd_eps: ``eps > 0``, floor inside the logarithm.
        boundary: ``"periodic"`` (a circular beach, the paper's torus) or ``"no_flux"``.
        m0_center: centre of the initial bump ``exp(-d(x, m0_center)^2 / (2 m0_width^2))``
            (``d`` the beach's distance), in ``[0, 1]``.
        m0_width: its width, ``> 0``.

    Example:
        >>> p = beach_bar_1d(Nx=100, Nt=10)
        >>> f = p.evaluate_cost(p.running_cost, p.m0)
        >>> f.shape, bool(f[50] < f[0])          # near the bar, away from the crowd
        ((100,), True)
    """
    params = dict(
        Nx=check_cells("Nx", Nx), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        control_cost=check_real("control_cost", control_cost, 0.0, open_low=True),
        x_bar=check_real("x_bar", x_bar, 0.0, 1.0),
        distance_cost=check_real("distance_cost", distance_cost, 0.0),
        crowd_aversion=check_real("crowd_aversion", crowd_aversion, 0.0),
        crowd_eps=check_real("crowd_eps", crowd_eps, 0.0, open_low=True),
        boundary=check_choice("boundary", boundary, BOUNDARIES),
        m0_center=check_real("m0_center", m0_center, 0.0, 1.0),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )
    periodic = boundary == "periodic"
    running_cost = BeachCost(params["distance_cost"], params["x_bar"], periodic, params["crowd_aversion"],
                             params["crowd_eps"])
    grid = Grid(bounds=[(0.0, 1.0)], shape=params["Nx"], boundary=boundary)
    (x,) = grid.coordinates()
    r = beach_distance(x, params["m0_center"], periodic)
    m0 = np.exp(-0.5 * (r / params["m0_width"]) ** 2)
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=params["T"], Nt=params["Nt"]),
        sigma=params["sigma"],
        running_cost=running_cost,
        terminal_cost=ZERO_COST,
        m0=normalised(m0, grid.cell_volume),
        hamiltonian=Hamiltonian(control_cost=params["control_cost"]),
        name="beach-bar-1d",
        params=params,
    )
