"""An attractive crowd: agents like company, so the game is not monotone.

Agents on ``[0, 1]`` (no-flux walls) steer with ``dX = alpha dt + sigma dW`` towards a
target ``x_T`` they pay to miss at ``T``; the running cost rewards density, which pulls
the crowd together:

    f(x, m) = -a m(x),    g(x) = (x - x_T)^2,    H(p) = p^2 / 2,
    m0 ~ exp(-(x - c0)^2 / (2 s0^2))

``int (f(m1) - f(m2)) (m1 - m2) dx = -a ||m1 - m2||^2 < 0``: the Lasry-Lions condition
fails, uniqueness is not guaranteed (``Diagnostics.notes`` says so), and the damped fixed
point does not converge on defaults (it stalls near 4e-6 after 500 iterations), nor does
Newton from a cold start (a local minimum of the residual at 3e-3); Anderson does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.checks import check_real
from mfg_rl.core import Grid, Hamiltonian, MFGProblem, TimeGrid
from mfg_rl.problems.checks import check_cells, normalised
from mfg_rl.problems.costs import AffineCost
from mfg_rl.problems.registry import register


@dataclass(frozen=True)
class DistanceToTarget:
    """``g(x) = (x - target)^2`` (independent of ``m``; shaped like ``m``)."""

    target: float

    def __call__(self, x: Any, m: Any) -> Any:
        return (x - self.target) ** 2 + 0.0 * m


@register("attractive-1d")
def attractive_1d(
    Nx: int = 51,
    Nt: int = 50,
    *,
    T: float = 1.0,
    sigma: float = 0.2,
    attraction: float = 0.1,
    target: float = 0.8,
    m0_center: float = 0.3,
    m0_width: float = 0.158,
) -> MFGProblem:
    """The attractive crowd of the module docstring.

    Args:
        Nx: cells, ``>= 3``. Nt: time steps, ``>= 1``. T: horizon ``> 0``.
        sigma: noise ``>= 0`` (``nu = sigma^2 / 2``).
        attraction: ``a >= 0``, the reward per unit of density (``f = -a m``).
        target: ``x_T`` in ``[0, 1]``, where agents want to be at ``T``.
        m0_center: ``c0`` in ``(0, 1)``. m0_width: ``s0 > 0``.

    Example:
        >>> p = attractive_1d(Nx=21, Nt=4)
        >>> float(p.evaluate_cost(p.running_cost, p.m0).max()) < 0  # company pays
        True
    """
    params = dict(
        Nx=check_cells("Nx", Nx), Nt=check_cells("Nt", Nt, 1),
        T=check_real("T", T, 0.0, open_low=True), sigma=check_real("sigma", sigma, 0.0),
        attraction=check_real("attraction", attraction, 0.0),
        target=check_real("target", target, 0.0, 1.0),
        m0_center=check_real("m0_center", m0_center, 0.0, 1.0, open_low=True, open_high=True),
        m0_width=check_real("m0_width", m0_width, 0.0, open_low=True),
    )
    grid = Grid(bounds=[(0.0, 1.0)], shape=params["Nx"], boundary="no_flux")
    (x,) = grid.coordinates()
    m0 = np.exp(-0.5 * ((x - params["m0_center"]) / params["m0_width"]) ** 2)
    return MFGProblem(
        grid=grid,
        time=TimeGrid(T=params["T"], Nt=params["Nt"]),
        sigma=params["sigma"],
        running_cost=AffineCost(0.0, -params["attraction"]),
        terminal_cost=DistanceToTarget(params["target"]),
        m0=normalised(m0, grid.cell_volume),
        hamiltonian=Hamiltonian(),
        name="attractive-1d",
        params=params,
    )
