"""The crowd-exit game as Gymnasium environments, with the PDE equilibrium as ground truth.

One agent with ``gymnasium.make``, 10^4 agents stepped together with ``gymnasium.make_vec``,
the equilibrium control as a policy, and its Monte Carlo return against ``-E_m0[u(0, x)]``.

Run: python examples/envs_tour.py            (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

import gymnasium
import torch

import mfg_rl  # noqa: F401  (registers the mfg_rl/ ids)
from mfg_rl.envs import TorchEpisodeStatistics, equilibrium_policy

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = dict(Nx=50, Nt=20) if tiny else dict(Nx=200, Nt=100)
solver = {"coupling": "anderson", "backend": "numpy"}

env = gymnasium.make("mfg_rl/CrowdExit1D-v0", render_mode="rgb_array", solve_options=solver, **size)
obs, info = env.reset(seed=0)
print("observation [t/T, x, m(t, x)]:", obs, "action space:", env.action_space)
obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
print(f"one step: reward {reward:.4f}, frame {env.render().shape}")

n = 1_000 if tiny else 10_000
envs = TorchEpisodeStatistics(gymnasium.make_vec("mfg_rl/CrowdExit1D-v0", num_envs=n, device="cpu",
                                                 solve_options=solver, **size))
policy = equilibrium_policy(envs)
obs, _ = envs.reset(seed=0)
returns, seen = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.bool)
while not bool(seen.all()):
    obs, reward, terminated, truncated, info = envs.step(policy.act(obs))
    if "episode" in info:
        first = info["_episode"] & ~seen
        returns[first] = info["episode"]["r"][first]
        seen |= info["_episode"]
eq = envs.unwrapped.equilibrium
value = -float((eq.u.numpy()[0] * eq.problem.m0).sum() * eq.problem.grid.cell_volume)
error = float(returns.std()) / n**0.5
print(f"equilibrium control over {n} agents: mean return {float(returns.mean()):.4f} +- {error:.4f}; "
      f"PDE -E[u(0)] = {value:.4f} (the gap is the O(dt) time-step error of both)")
