"""The El Farol (Santa Fe) bar: go if the bar will not be crowded, stay home if it will.

Each agent carries a preference ``x in [0, 1]`` for going out, which it steers at a cost,
``dX = alpha dt + sigma dW``, with no-flux walls at 0 and 1. An agent at ``x`` goes with
probability ``go(x)``, a logistic step at ``x = 1/2`` of width ``w = go_width``; the
attendance is coupled to the whole crowd and the payoff of going drops from
``G = payoff_good`` to ``B = payoff_crowded`` when attendance reaches the threshold
``theta``, smoothed over ``eps = smoothing``; staying home pays 0. Costs are payoffs
with the sign flipped:

    go(x) = (1 + tanh((x - 1/2) / (2 w))) / 2
    A(m)  = int_0^1 go(x) m(x) dx                                    (attendance, in [0, 1])
    P(A)  = (G + B) / 2 - (G - B) / 2 * tanh((A - theta) / eps)       (P -> G below, B above)
    f(x, m) = -go(x) P(A(m)),    g = 0,    H(p) = p^2 / (2 lambda)

    -du/dt - nu u_xx + H(u_x) = f(x, m(t)),     u(T) = 0
     dm/dt - nu m_xx - (m u_x / lambda)_x = 0,  m(0) = m0,   nu = sigma^2 / 2

As ``eps -> 0`` the payoff is the game's step (``G`` if ``A < theta``, ``B`` if
``A >= theta``); ``eps > 0`` makes the coupling Lipschitz so the fixed point is well
defined. ``P`` is decreasing in ``A``, so ``int (f(m1) - f(m2)) (m1 - m2) dx
= -(P(A1) - P(A2)) (A1 - A2) >= 0``: the game is monotone and its equilibrium unique.
A crowd that would under-fill the bar drifts towards going (``f < 0`` grows with ``x``),
one that would over-fill it drifts home, and attendance is pushed towards the
indifference level ``A* = theta + eps artanh((G + B) / (G - B))`` (``P(A*) = 0``;
0.6 + 0.35 eps for the defaults): the El Farol outcome of a bar filled to capacity.

Defaults: ``control_cost = 10`` puts the cost of changing one's mind on the scale of the
payoffs (with ``lambda = 1`` agents swing so hard that the damped fixed point needs
hundreds of iterations); ``smoothing = 0.05`` switches the payoff over attendances
``theta +- 0.1``. At ``Nx = 200, Nt = 100`` the default solver converges to 1e-8 in about
115 fixed-point iterations and attendance settles at about 0.61.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from mfg_rl.checks import check_real
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.costs import ZERO_COST
from mfg_rl.problems.registry import register


def go_probability(x: Any, go_width: float) -> Any:
    """``go(x) = (1 + tanh((x - 1/2) / (2 w))) / 2``, the chance that an agent at ``x`` goes."""
    xp = array_namespace(x)
    return 0.5 + 0.5 * xp.tanh((x - 0.5) / (2.0 * go_width))


def attendance(x: Any, m: Any, go_width: float, cell_volume: float) -> Any:
    """``A(m) = int go(x) m(x) dx`` over the last axis of ``m`` (kept, size 1, for broadcasting)."""
    xp = array_namespace(x, m)
    return xp.sum(go_probability(x, go_width) * m, axis=-1, keepdims=True) * cell_volume


@dataclass(frozen=True)
class BarCost:
    """``f(x, m) = -go(x) P(A(m))`` of the module docstring, a picklable ``CostFn``.

    ``h`` is the cell width of the attendance integral.
    """

    payoff_good: float
    payoff_crowded: float
    threshold: float
    smoothing: float
    go_width: float
    h: float

    def __call__(self, x: Any, m: Any) -> Any:
        xp = array_namespace(x, m)
        good, crowded = self.payoff_good, self.payoff_crowded
        a = attendance(x, m, self.go_width, self.h)
        switch = xp.tanh((a - self.threshold) / self.smoothing)
        payoff = 0.5 * (good + crowded) - 0.5 * (good - crowded) * switch
        return -go_probability(x, self.go_width) * payoff


@register("santa-fe-bar")
def santa_fe_bar(
    Nx: int = 200,
    Nt: int = 100,
    *,
    T: float = 1.0,
    sigma: float = 0.2,
    control_cost: float = 10.0,
    threshold: float = 0.6,
    payoff_good: float = 10.0,
    payoff_crowded: float = -5.0,
    smoothing: float = 0.05,
    go_width: float = 0.1,
    m0_center: float = 0.5,
    m0_width: float = 0.2,
) -> MFGProblem:
    """The Santa Fe bar game on preferences ``x in [0, 1]``: equations in the module docstring.

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0`` on the preference (``nu = sigma^2 / 2``).
        control_cost: ``lambda > 0``, cost ``lambda alpha^2 / 2`` of changing one's mind.
        threshold: ``theta in (0, 1)``, the attendance at which the bar is crowded.
        payoff_good: ``G``, payoff rate of going to an uncrowded bar.
        payoff_crowded: ``B < G``, payoff rate of going to a crowded bar.
        smoothing: ``eps > 0``, width in attendance of the switch from ``G`` to ``B``.
        go_width: ``w > 0``, width of the step ``go(x)`` around ``x = 1/2``.
        m0_center: centre of the initial Gaussian of preferences, in ``(0, 1)``.
        m0_width: its standard deviation, ``> 0``.

    Example:
        >>> import numpy as np
        >>> p = santa_fe_bar(Nx=100, Nt=10)
        >>> crowded = np.where(p.grid.coordinates()[0] > 0.5, 1.8, 0.2)  # attendance ~0.9
        >>> bool(p.evaluate_cost(p.running_cost, crowded)[-1] > 0)       # going costs
        True
    """
    params = dict(
        Nx=check_cells("Nx", Nx), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        control_cost=check_real("control_cost", control_cost, 0.0, open_low=True),
        threshold=check_real("threshold", threshold, 0.0, 1.0, open_low=True, open_high=True),
        payoff_good=check_real("payoff_good", payoff_good),
        payoff_crowded=check_real("payoff_crowded", payoff_crowded),
        smoothing=check_real("smoothing", smoothing, 0.0, open_low=True),
        go_width=check_real("go_width", go_width, 0.0, open_low=True),
        m0_center=check_real("m0_center", m0_center, 0.0, 1.0, open_low=True, open_high=True),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )
    good, crowded = params["payoff_good"], params["payoff_crowded"]
    if not crowded < good:
        raise ValueError(
            f"payoff_crowded must be < payoff_good (a crowded bar pays less), "
            f"got payoff_crowded={crowded}, payoff_good={good}"
        )
    grid = Grid(bounds=[(0.0, 1.0)], shape=params["Nx"], boundary="no_flux")
    running_cost = BarCost(good, crowded, params["threshold"], params["smoothing"], params["go_width"],
                           grid.cell_volume)
    (x,) = grid.coordinates()
    m0 = np.exp(-0.5 * ((x - params["m0_center"]) / params["m0_width"]) ** 2)
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=params["T"], Nt=params["Nt"]),
        sigma=params["sigma"],
        running_cost=running_cost,
        terminal_cost=ZERO_COST,
        m0=normalised(m0, grid.cell_volume),
        hamiltonian=Hamiltonian(control_cost=params["control_cost"]),
        name="santa-fe-bar",
        params=params,
    )
