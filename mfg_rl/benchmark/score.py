"""``Score``: what ``evaluate`` measures about a policy, scalars first, fields on the side."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

SCALARS = (
    "exploitability", "value_gap", "density_l1", "density_l1_T",
    "policy_value", "best_response_value", "equilibrium_value",
)


@dataclass(frozen=True, eq=False)
class Score(Mapping[str, float]):
    """A policy scored against the equilibrium; reads as a mapping of its scalars.

    With ``E[v] = h^d sum_i m0_i v_i`` (expectation over the initial crowd):

    Attributes:
        exploitability: ``E[J_pi(0) - u_br(0)] >= 0``: what one agent gains by deviating
            from the policy while the crowd follows it (0 exactly at a Nash equilibrium).
        value_gap: ``E[J_pi(0) - u_eq(0)]`` (signed).
        density_l1: ``max_n h^d sum_i |m_pi^n - m_eq^n|``; ``density_l1_T`` the same at ``T``.
        policy_value, best_response_value, equilibrium_value: ``E[J_pi(0)]``,
            ``E[u_br(0)]``, ``E[u_eq(0)]``.
        m_pi: crowd induced by the policy, numpy ``(Nt+1, *space)``.
        J_pi: cost-to-go of the policy in that crowd, same shape.
        u_br: best-response value function in that crowd, same shape.

    Example:
        >>> s = Score(0.1, 0.2, 0.3, 0.3, 1.2, 1.1, 1.0, *(np.zeros((2, 3)),) * 3)
        >>> s["exploitability"], sorted(s.as_dict()) == sorted(SCALARS)
        (0.1, True)
    """

    exploitability: float
    value_gap: float
    density_l1: float
    density_l1_T: float
    policy_value: float
    best_response_value: float
    equilibrium_value: float
    m_pi: np.ndarray = field(repr=False)
    J_pi: np.ndarray = field(repr=False)
    u_br: np.ndarray = field(repr=False)

    def __getitem__(self, key: str) -> float:
        if key not in SCALARS:
            raise KeyError(f"{key!r} is not a score; scores are {', '.join(SCALARS)} (fields are attributes)")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(SCALARS)

    def __len__(self) -> int:
        return len(SCALARS)

    def as_dict(self) -> dict[str, float]:
        """The scalar scores as a plain ``dict`` (for logging)."""
        return {key: getattr(self, key) for key in SCALARS}
