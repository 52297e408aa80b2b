"""The crowd an agent learns against: the frozen equilibrium, or fictitious play without the PDE.

- ``"best-response"``: the env's crowd is the PDE equilibrium ``m*``; the agent learns the
  best response to it, which is the equilibrium control.
- ``"fictitious-play"``: the crowd starts as the one induced by the initial policy and, every
  ``fp_every`` iterations, becomes the average of the crowds induced by the policies so far,

      m_bar_k = m_bar_{k-1} + (m^{pi_k} - m_bar_{k-1}) / (k + 1),     m_bar_0 = m^{pi_0},

  with ``m^{pi}`` from the Fokker-Planck of ``mfg_rl.benchmark.evaluate`` (the "FP solver"
  variant; ``m_bar_k`` is the crowd of the averaged policy). The agent keeps learning the
  best response to ``m_bar_k``, so it learns the equilibrium itself; ``m*`` is used only as
  the yardstick (exploitability, value gap, density distance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

REGIMES = ("best-response", "fictitious-play")


def check_regime(regime: str, algo: str | None = None) -> str:
    """``regime`` if it is one of ``REGIMES`` (and one ``algo`` learns in); ``ValueError`` otherwise."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {', '.join(REGIMES)}, got {regime!r}")
    if algo is not None:
        from mfg_rl.agents.algorithms import get

        allowed = get(algo).regimes
        if regime not in allowed:
            raise ValueError(f"regime={regime!r}: {algo} learns in {', '.join(map(repr, allowed))} only")
    return regime


class FictitiousPlay:
    """The running average ``m_bar`` of induced crowds, and how many policies it holds."""

    def __init__(self) -> None:
        self.count = 0
        self.m_bar: np.ndarray | None = None

    def add(self, m_pi: np.ndarray) -> np.ndarray:
        """Fold the crowd of one more policy into the average; returns ``m_bar``."""
        m_pi = np.asarray(m_pi, dtype=np.float64)
        if self.m_bar is None:
            self.m_bar = m_pi.copy()
        else:
            self.m_bar = self.m_bar + (m_pi - self.m_bar) / (self.count + 1)
        self.count += 1
        return self.m_bar

    def state_dict(self) -> dict[str, Any]:
        """Count and ``m_bar`` (a float64 torch tensor: checkpoints load with ``weights_only``)."""
        import torch

        m_bar = None if self.m_bar is None else torch.from_numpy(self.m_bar.copy())
        return {"count": self.count, "m_bar": m_bar}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        import torch

        m_bar = state["m_bar"]
        if isinstance(m_bar, torch.Tensor):
            m_bar = m_bar.cpu().numpy()
        self.m_bar = None if m_bar is None else np.array(m_bar, dtype=np.float64)
