"""The PPO and A2C losses on one minibatch, with the diagnostics worth logging.

PPO (Schulman et al. 2017), with ``r = pi(a|s) / pi_old(a|s)`` and normalised advantages ``A``:

    L_pi = E[ max(-A r, -A clip(r, 1 - eps, 1 + eps)) ]
    L_V  = E[ max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2) ] / 2
    L    = L_pi - c_H H[pi] + c_V L_V

A2C (Mnih et al. 2016) is the same with ``L_pi = -E[A log pi(a|s)]`` and ``L_V = E[(V - R)^2] / 2``.
PPO's ratio diagnostics, as CleanRL logs them: ``old_approx_kl = E[-log r]``, ``approx_kl =
E[(r - 1) - log r]`` (Schulman's low-variance estimator of KL(pi_old || pi), >= 0 term by
term), ``clipfrac`` the fraction of ratios outside ``[1 - eps, 1 + eps]``; A2C has no ratio.
"""

from __future__ import annotations

import torch

from mfg_rl.agents.config import Hyperparameters
from mfg_rl.agents.networks import ActorCritic


def actor_critic_loss(algo: str, model: ActorCritic, batch: dict[str, torch.Tensor],
                      params: Hyperparameters) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(loss, stats)`` of ``algo`` on ``batch`` (fields of ``Rollout.flat()``); ``stats`` are
    detached 0-d tensors on the device (losses, entropy; PPO adds the ratio diagnostics)."""
    log_prob, entropy, value = model.evaluate_actions(batch["obs"], batch["actions"])
    advantages = batch["advantages"]
    if params.norm_adv and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio_stats: dict[str, torch.Tensor] = {}
    if algo == "ppo":
        log_ratio = log_prob - batch["log_probs"]
        ratio = log_ratio.exp()
        clipped = torch.clamp(ratio, 1.0 - params.clip_coef, 1.0 + params.clip_coef)
        policy_loss = torch.max(-advantages * ratio, -advantages * clipped).mean()
        with torch.no_grad():
            ratio_stats = {"old_approx_kl": (-log_ratio).mean(),
                           "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
                           "clipfrac": ((ratio - 1.0).abs() > params.clip_coef).float().mean()}
    else:
        policy_loss = -(advantages * log_prob).mean()
    if params.clip_vloss:
        value_clipped = batch["values"] + torch.clamp(value - batch["values"], -params.clip_coef,
                                                      params.clip_coef)
        value_loss = 0.5 * torch.max((value - batch["returns"]) ** 2,
                                     (value_clipped - batch["returns"]) ** 2).mean()
    else:
        value_loss = 0.5 * ((value - batch["returns"]) ** 2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss - params.ent_coef * entropy_mean + params.vf_coef * value_loss
    stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
             "entropy": entropy_mean.detach(), **ratio_stats}
    return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """``1 - Var[R - V] / Var[R]``, a 0-d tensor on the device (NaN when the returns do not vary)."""
    var = returns.var()
    return torch.where(var == 0.0, torch.full_like(var, float("nan")), 1.0 - (returns - values).var() / var)
