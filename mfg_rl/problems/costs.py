"""Costs shared by the catalogue, as small picklable objects (no closures).

A cost is called as ``cost(x, m)`` (``mfg_rl.core.problem.CostFn``); keeping the catalogue's
costs module-level classes lets a problem, and an environment built on it, be pickled
(process-based vector envs, multiprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AffineCost:
    """``constant + weight * m(x)``: a cost affine in the local density (``weight = 0``: a constant).

    Example:
        >>> import numpy as np
        >>> AffineCost(constant=1.0, weight=2.0)(None, np.array([0.0, 0.5]))
        array([1., 2.])
    """

    constant: float
    weight: float

    def __call__(self, x: Any, m: Any) -> Any:
        return self.constant + self.weight * m


ZERO_COST = AffineCost(0.0, 0.0)
"""The zero cost (``0 m``, on the density's array and device): no terminal cost."""
