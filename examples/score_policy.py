"""Score two policies on the linear-quadratic MFG: doing nothing, and the equilibrium control.

Run: python examples/score_policy.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

import numpy as np
import torch

from mfg_rl import problems, solve
from mfg_rl.benchmark import evaluate

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
problem = problems.make("lq-1d", Nx=41 if tiny else 201, Nt=10 if tiny else 50)
eq = solve(problem, progress=not tiny)
x_nodes, dt = problem.grid.coordinates()[0], problem.time.dt


def zero_policy(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def equilibrium_policy(t: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """``eq.control(n)`` at ``n = round(t / dt)``, interpolated linearly between nodes."""
    return np.interp(x.double().numpy(), x_nodes, eq.control(round(float(t[0]) / dt)))


for name, policy in (("zero", zero_policy), ("equilibrium", equilibrium_policy)):
    score = evaluate(policy, eq)
    print(f"{name:>12}: " + ", ".join(f"{key} {value:.3e}" for key, value in score.items()))
