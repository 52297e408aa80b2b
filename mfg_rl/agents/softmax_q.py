"""A softmax policy over a fixed grid of actions, its Q-networks and the Munchausen target.

The games' controls are continuous, ``alpha`` in ``[-max_action, max_action]^d``; mirror descent
needs a softmax over actions, so the actions are the ``K^d`` points of a grid with ``K`` points per
axis (``K = 21`` in 1D: ``-max_action, ..., max_action`` in steps of ``max_action / 10``) and

    pi(a|s) = softmax_a(Q(s, a) / tau),      control(s) = E_pi[a] = sum_a pi(a|s) a

The deterministic control, in the game's units, is the policy's mean action (inside the box);
the control OMD returns is its mean over the last ``average_last`` iterates. ``Q`` is a dueling
network (``DuelingQ``): the softmax sees only its advantage head.
This module holds no Lightning: checkpoints load through ``mfg_rl.agents.checkpoints.load_agent``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from mfg_rl.agents.networks import relu_mlp


def action_grid(actions_per_axis: int, act_dim: int, max_action: float) -> torch.Tensor:
    """The ``K^d`` grid actions ``(K^d, d)`` in game units, the last axis varying fastest.

    Example:
        >>> action_grid(3, 1, 2.0)[:, 0].tolist()
        [-2.0, 0.0, 2.0]
    """
    axis = torch.linspace(-max_action, max_action, actions_per_axis)
    return torch.tensor(list(itertools.product(axis.tolist(), repeat=act_dim)), dtype=torch.float32)


class DuelingQ(nn.Module):
    """``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)`` (Wang et al. 2016): a ReLU trunk ``(B, obs_dim) ->
    (B, hidden[-1])``, a value head ``(B, 1)`` and an advantage head ``(B, K^d)``.

    The games' ``Q`` is a sum of about ``Nt`` reward rates, tens to hundreds, while the gap between
    neighbouring grid actions is ``lambda (max_action / 10)^2 / 2`` or less (0.05 on SantaFeBar-v0);
    ``softmax(Q / tau)`` does not depend on ``V``, so a separate head keeps the error of that bulk out
    of the policy (SantaFeBar-v0, seed 0, 2M env steps: 0.020 with one 64 x 64 ReLU head, 0.010
    with this network at 128 x 128).

    Example:
        >>> q = DuelingQ(3, 5, (8, 8))
        >>> out = q(torch.zeros(2, 3))
        >>> out.shape, bool(torch.allclose(out.mean(-1), q.value(q.trunk(torch.zeros(2, 3)))[:, 0]))
        (torch.Size([2, 5]), True)
    """

    def __init__(self, obs_dim: int, count: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*relu_mlp(obs_dim, hidden[-1], hidden[:-1]), nn.ReLU())
        self.value = nn.Linear(hidden[-1], 1)
        self.advantage = nn.Linear(hidden[-1], count)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(-1, keepdim=True)


class SoftmaxQNetworks(nn.Module):
    """Q-network over the grid actions, the frozen ``Q_k`` of the previous iterate and a target copy.

    ``q`` is ``Q_{k+1}`` being fitted; ``previous`` is ``Q_k``, whose softmax is ``pi_k`` (the policy
    that collects, whose crowd is set, and whose log-probabilities enter the Munchausen target);
    ``target`` is the bootstrap copy of ``q``; ``iterates`` keep the last ``average_last`` fitted
    ``q`` (``remember``), whose mean control is ``act``. All are ``DuelingQ`` ``(B, 2 + d) -> (B, K^d)``.

    Args:
        obs_dim, act_dim: sizes ``2 + d`` and ``d``.
        hidden: hidden widths of each MLP.
        max_action: the control bound (the grid's extent), in game units.
        actions_per_axis: ``K``, odd so that the zero control is a grid action.
        tau: softmax temperature (in the units of ``Q``).
        average_last: how many iterates ``act`` averages (1: the last one).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], max_action: float,
                 actions_per_axis: int, tau: float, average_last: int = 1) -> None:
        super().__init__()
        self.register_buffer("actions", action_grid(actions_per_axis, act_dim, max_action))
        count = self.actions.shape[0]
        self.q = DuelingQ(obs_dim, count, hidden)
        self.previous = DuelingQ(obs_dim, count, hidden)
        self.target = DuelingQ(obs_dim, count, hidden)
        self.iterates = nn.ModuleList(DuelingQ(obs_dim, count, hidden) for _ in range(average_last))
        for frozen in (self.previous, self.target, *self.iterates):
            frozen.load_state_dict(self.q.state_dict())
            frozen.requires_grad_(False)
        self.remembered = 0
        self.tau = float(tau)
        self.act_dim = act_dim
        self.max_action = float(max_action)

    def log_policy(self, obs: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """``log softmax(Q(obs) / tau)`` ``(B, K^d)`` of ``network`` (default: the fitted ``q``)."""
        return torch.log_softmax((network or self.q)(obs) / self.tau, dim=-1)

    def start_iteration(self) -> None:
        """``pi_k <- softmax(q / tau)`` and the target to ``q``: the outer iteration's frozen copies."""
        self.previous.load_state_dict(self.q.state_dict())
        self.target.load_state_dict(self.q.state_dict())

    def remember(self) -> None:
        """Keep the fitted ``q`` as the newest of the last ``average_last`` iterates (a ring)."""
        self.iterates[self.remembered % len(self.iterates)].load_state_dict(self.q.state_dict())
        self.remembered += 1

    @torch.no_grad()
    def iterate_act(self, obs: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """The control ``E_pi[a]`` ``(B, d)`` of the softmax of ``network`` (default: the fitted ``q``)."""
        return self.log_policy(obs, network).exp() @ self.actions

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic control ``(B, d)``, in game units: the mean of ``iterate_act`` over the
        last ``min(average_last, max(1, k // 10))`` of the ``k`` remembered iterates (the last tenth
        of a run, so that a short run does not average in its first, worse iterates; the fitted ``q``
        alone before the first ``remember``)."""
        if self.window == 1:
            return self.iterate_act(obs)
        size, newest = len(self.iterates), self.remembered - 1
        kept = [self.iterates[(newest - j) % size] for j in range(self.window)]
        return torch.stack([self.iterate_act(obs, q) for q in kept]).mean(0)

    @property
    def window(self) -> int:
        """How many iterates ``act`` averages now: ``min(average_last, max(1, k // 10))``."""
        return min(len(self.iterates), max(1, self.remembered // 10))

    def get_extra_state(self) -> dict[str, int]:
        return {"remembered": self.remembered}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.remembered = int(state["remembered"])


class LastIterate:
    """The current iterate of ``SoftmaxQNetworks`` as a policy of observations (``act``), for
    ``ObservationPolicy``: the policy whose crowd OMD sets, beside the averaged one it returns."""

    def __init__(self, networks: SoftmaxQNetworks) -> None:
        self.networks = networks

    def parameters(self) -> Any:
        return self.networks.q.parameters()

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.networks.iterate_act(obs)


def munchausen_target(rewards: torch.Tensor, log_pi_taken: torch.Tensor, log_pi_next: torch.Tensor,
                      q_next: torch.Tensor, alive: torch.Tensor, gamma: float, tau: float, alpha: float,
                      log_policy_clip: float) -> torch.Tensor:
    """The Munchausen mirror-descent regression target ``y`` ``(B,)``:

    y = r + alpha tau max(log pi_k(a|s), l0) + gamma k sum_a' pi_k(a'|s') (Q'(s',a') - tau log pi_k(a'|s'))

    ``rewards``, ``log_pi_taken`` (``log pi_k`` of the action taken), ``alive`` (``k = 1 -
    terminated``) ``(B,)``; ``log_pi_next``, ``q_next`` (the target network) ``(B, A)``; ``l0`` is
    ``log_policy_clip`` (OpenSpiel: ``log 1e-6``; Vieillard et al. 2020 clip ``tau log pi`` at -1,
    in the units of clipped Atari rewards). At the regression's fixed point ``Q_{k+1} = q_{k+1} +
    alpha tau log pi_k``, with ``q_{k+1}`` the entropy-regularised Q of ``pi_k`` against the crowd, so
    ``softmax(Q_{k+1} / tau) ~ pi_k^alpha exp(q_{k+1} / tau)``: the mirror-descent step.
    """
    bonus = alpha * tau * torch.clamp(log_pi_taken, min=log_policy_clip)
    soft_value = (log_pi_next.exp() * (q_next - tau * log_pi_next)).sum(-1)
    return rewards + bonus + gamma * alive * soft_value


def softmax_q_networks(params: Any, obs_dim: int, act_dim: int, max_action: float) -> SoftmaxQNetworks:
    """OMD's networks for ``params`` (``OMDHyperparameters``) and the env's spaces."""
    per_axis = params.actions_per_axis or (21 if act_dim == 1 else 11)
    return SoftmaxQNetworks(obs_dim, act_dim, params.hidden, max_action, per_axis, params.tau,
                            params.average_last)
