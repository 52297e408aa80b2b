"""Rollouts on the batched env and generalised advantage estimation (GAE).

    delta_t = r_t + gamma V(s_{t+1}) (1 - done_t) - V(s_t)
    A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1},      R_t = A_t + V(s_t)

(Schulman et al. 2016). The env resets finished agents in the same step, so ``s_{t+1}``
of a finished agent is already a new episode's first observation and ``done_t`` cuts the
recursion; a truncated (not terminated) agent's reward gets ``gamma V(final_obs)`` added,
its bootstrap value. Tensors are time first: ``(n_steps, num_envs, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mfg_rl.agents.networks import ActorCritic


@dataclass
class Rollout:
    """One batch of experience, ``(n_steps, num_envs, ...)`` tensors, plus its advantages.

    ``clipped`` ``(n_steps, num_envs)`` bool: the env clipped that action to its box
    (``info["clipped"]``); ``clipped.float().mean()`` is the fraction of clipped actions.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    clipped: torch.Tensor
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def flat(self) -> dict[str, torch.Tensor]:
        """Time and env axes merged: ``(n_steps * num_envs, ...)`` per field."""
        names = ("obs", "actions", "log_probs", "values", "advantages", "returns")
        return {name: getattr(self, name).reshape(-1, *getattr(self, name).shape[2:]) for name in names}


@dataclass
class EpisodeStats:
    """Returns and lengths of the episodes that ended during a rollout (``(E,)`` tensors)."""

    returns: torch.Tensor
    lengths: torch.Tensor


def collect(env: Any, model: ActorCritic, obs: torch.Tensor, n_steps: int, gamma: float,
            generator: torch.Generator) -> tuple[Rollout, torch.Tensor, EpisodeStats]:
    """Run ``n_steps`` steps of ``model``'s stochastic policy from ``obs``.

    ``env`` is a ``TorchEpisodeStatistics``-wrapped ``MFGVectorEnv``. Returns the rollout,
    the observation to continue from, and the statistics of the episodes that ended.
    """
    fields: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "actions", "log_probs", "values",
                                                              "rewards", "dones", "clipped")}
    returns, lengths = [], []
    for _ in range(n_steps):
        actions, log_probs, values = model.sample(obs, generator)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        rewards = rewards.to(obs.dtype)
        if "final_obs" in info and bool(truncated.any()):  # the env only syncs when an episode ends
            final = info["final_obs"][truncated]
            with torch.no_grad():
                rewards = rewards.clone()
                rewards[truncated] += gamma * model.value(final)
        for key, value in (("obs", obs), ("actions", actions), ("log_probs", log_probs),
                           ("values", values), ("rewards", rewards), ("dones", terminated | truncated),
                           ("clipped", info["clipped"])):
            fields[key].append(value)
        if "_episode" in info:
            mask = info["_episode"]
            returns.append(info["episode"]["r"][mask])
            lengths.append(info["episode"]["l"][mask])
        obs = next_obs
    rollout = Rollout(**{k: torch.stack(v) for k, v in fields.items()})
    stats = EpisodeStats(torch.cat(returns) if returns else torch.zeros(0, dtype=torch.float64),
                         torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.int64))
    return rollout, obs, stats


@torch.no_grad()
def compute_gae(rollout: Rollout, last_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
    """Fill ``rollout.advantages`` and ``rollout.returns`` by the GAE recursion (backwards)."""
    n_steps = rollout.rewards.shape[0]
    advantages = torch.zeros_like(rollout.rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(n_steps)):
        alive = 1.0 - rollout.dones[t].to(rollout.rewards.dtype)
        delta = rollout.rewards[t] + gamma * next_value * alive - rollout.values[t]
        running = delta + gamma * gae_lambda * alive * running
        advantages[t] = running
        next_value = rollout.values[t]
    rollout.advantages = advantages
    rollout.returns = advantages + rollout.values
