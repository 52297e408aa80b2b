"""Scoring policies against the PDE equilibrium (DESIGN.md, layer 7).

``evaluate(policy, eq_or_problem)`` returns a ``Score``: exploitability, value gap to
``u(0, .)`` and L1 distance of the induced crowd to ``m``, all from the solvers' scheme.
``baselines(eq, max_action)`` scores the zero control and the best constant drift;
``induced_crowd(policy, eq)`` is the crowd a policy induces (``evaluate``'s Fokker-Planck alone).
"""

from mfg_rl.benchmark.baselines import Baselines, ConstantPolicy, baselines
from mfg_rl.benchmark.exploitability import Policy, evaluate, induced_crowd
from mfg_rl.benchmark.score import Score

__all__ = ["Baselines", "ConstantPolicy", "Policy", "Score", "baselines", "evaluate", "induced_crowd"]
