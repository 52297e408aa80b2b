"""Scoring policies against the PDE equilibrium (DESIGN.md, layer 7).

``evaluate(policy, eq_or_problem)`` returns a ``Score``: exploitability, value gap to
``u(0, .)`` and L1 distance of the induced crowd to ``m``, all from the solvers' scheme.
"""

from mfg_rl.benchmark.exploitability import Policy, evaluate
from mfg_rl.benchmark.score import Score

__all__ = ["Policy", "Score", "evaluate"]
