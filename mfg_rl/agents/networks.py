"""The actor-critic networks: observation normaliser, Gaussian actor, value critic.

    obs_n  = clip((obs - mean) / sqrt(var + eps), -c, c)          (running statistics)
    alpha  ~ N(mu_theta(obs_n), diag(exp(log_std))^2)            (log_std state-independent)
    V(obs) = v_phi(obs_n)

Separate actor and critic MLPs (64x64 tanh), orthogonal initialisation with gain sqrt(2)
for hidden layers, 0.01 for the actor head and 1 for the critic head: the defaults of
CleanRL's ``ppo_continuous_action.py`` and Stable-Baselines3 (Engstrom et al. 2020,
"Implementation matters in deep policy gradients").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    """Running mean and variance of observations (Chan et al. parallel update), as buffers.

    The statistics live in ``state_dict()`` so they go into checkpoints with the weights.
    ``update`` takes a batch ``(B, D)``; under data parallelism pass ``reduce`` (summing a
    tensor over processes) so that every process keeps the same statistics.
    """

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor, reduce: Any = None) -> None:
        x = batch.reshape(-1, self.mean.numel()).to(torch.float64)
        # [count, sum, sum of squares] summed over processes, then moments of the batch
        moments = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), (x * x).sum(0)])
        if reduce is not None:
            moments = reduce(moments)
        size = self.mean.numel()
        n, total, squares = moments[0], moments[1 : 1 + size], moments[1 + size :]
        batch_mean = total / n
        batch_var = torch.clamp(squares / n - batch_mean**2, min=0.0)
        count = self.count + n
        delta = batch_mean - self.mean
        self.mean.add_(delta * n / count)
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / count
        self.var.copy_(m2 / count)
        self.count.copy_(count)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt(self.var + self.eps).to(obs.dtype)
        return torch.clamp((obs - self.mean.to(obs.dtype)) / scale, -self.clip, self.clip)


def layer(inputs: int, outputs: int, gain: float = math.sqrt(2.0)) -> nn.Linear:
    """A linear layer with orthogonal weights of ``gain`` and zero bias."""
    linear = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


def mlp(inputs: int, outputs: int, hidden: tuple[int, ...], head_gain: float) -> nn.Sequential:
    sizes = (inputs, *hidden)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [layer(a, b), nn.Tanh()]
    return nn.Sequential(*layers, layer(sizes[-1], outputs, head_gain))


class ActorCritic(nn.Module):
    """Gaussian policy with state-independent log-std and a value function, on normalised obs.

    Args:
        obs_dim: observation size ``2 + d``.
        act_dim: action size ``d``.
        hidden: hidden layer widths of both MLPs.
        log_std_init: initial ``log_std`` of every action component.
        max_action: bound the deterministic action ``mu`` is clipped to (as the env does).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (64, 64),
                 log_std_init: float = 0.0, max_action: float = math.inf) -> None:
        super().__init__()
        self.normalizer = RunningNormalizer(obs_dim)
        self.actor = mlp(obs_dim, act_dim, hidden, head_gain=0.01)
        self.critic = mlp(obs_dim, 1, hidden, head_gain=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        self.max_action = float(max_action)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(obs)``, shape ``(B,)``."""
        return self.critic(self.normalizer(obs))[:, 0]

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return self._normal(self.actor(self.normalizer(obs)))

    def _normal(self, mean: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def _heads(self, obs: torch.Tensor) -> tuple[torch.distributions.Normal, torch.Tensor]:
        """The policy and ``V(obs)`` from one normalisation of ``obs``."""
        z = self.normalizer(obs)
        return self._normal(self.actor(z)), self.critic(z)[:, 0]

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(log pi(a|obs), entropy, V(obs))``, each ``(B,)``, for the loss."""
        dist, value = self._heads(obs)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), value

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(actions, log_probs, values)`` for a rollout; noise from ``generator`` only."""
        dist, value = self._heads(obs)
        noise = torch.randn(dist.mean.shape, generator=generator, device=obs.device, dtype=obs.dtype)
        actions = dist.mean + dist.stddev * noise
        return actions, dist.log_prob(actions).sum(-1), value

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic control: the mean ``mu(obs)`` clipped to ``max_action``, ``(B, d)``."""
        mean = self.actor(self.normalizer(obs))
        return torch.clamp(mean, -self.max_action, self.max_action)


class ObservationPolicy:
    """A policy of observations turned into the benchmark's ``policy(t, x) -> alpha``.

    ``t`` ``(N,)``, ``x`` ``(N,)`` in 1D or ``(N, d)``; the density part of the observation is
    read from ``game``'s current crowd (``game.observe``), as the agent saw it in training;
    ``model.act(obs)`` (``ActorCritic``, ``SACNetworks``) gives the control in the game's units.
    """

    def __init__(self, model: nn.Module, game: Any) -> None:
        self.model = model
        self.game = game

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        device = self.game.device
        t = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1)
        x = torch.as_tensor(x, dtype=torch.float32, device=device)
        points = x[:, None] if x.ndim == 1 else x
        param = next(self.model.parameters())
        obs = self.game.observe(t, points).to(param.device)
        alpha = self.model.act(obs).to(device)
        return alpha[:, 0] if x.ndim == 1 else alpha


def relu_mlp(inputs: int, outputs: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """ReLU MLP with PyTorch's default initialisation (as SB3's and CleanRL's SAC)."""
    sizes = (inputs, *hidden)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], outputs))


class SACNetworks(nn.Module):
    """SAC's tanh-squashed Gaussian actor, twin critics, their Polyak targets and the temperature.

        a = tanh(mu(s) + sigma(s) eps),  eps ~ N(0, I),   log sigma clamped to [-5, 2]
        log pi(a|s) = log N(u; mu, sigma^2) - sum log(1 - tanh(u)^2)

    Actions ``a`` are in ``[-1, 1]^d``, the env's normalised actions; the control is
    ``alpha = max_action * a``. Critics ``Q_k(s, a)``, ``k = 1, 2``, take the normalised action.

    Args:
        obs_dim, act_dim: sizes ``2 + d`` and ``d``.
        hidden: hidden widths of the actor and of each critic.
        max_action: the env's control bound, for ``act`` (the benchmark's units).
        init_alpha: initial temperature (``log_alpha`` is the learned parameter).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256),
                 max_action: float = 1.0, init_alpha: float = 1.0) -> None:
        super().__init__()
        self.actor = relu_mlp(obs_dim, 2 * act_dim, hidden)
        self.critics = nn.ModuleList([relu_mlp(obs_dim + act_dim, 1, hidden) for _ in range(2)])
        self.targets = nn.ModuleList([relu_mlp(obs_dim + act_dim, 1, hidden) for _ in range(2)])
        self.targets.load_state_dict(self.critics.state_dict())
        self.targets.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))
        self.act_dim = act_dim
        self.max_action = float(max_action)

    def _mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(-5.0, 2.0)

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparametrised ``(a, log pi(a|s))``, ``(B, d)`` and ``(B,)``, from standard normal ``noise``
        ``(B, d)``."""
        mean, log_std = self._mean_log_std(obs)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u)
        gauss = -0.5 * noise.square() - log_std - 0.5 * math.log(2.0 * math.pi)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        jacobian = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
        return action, (gauss - jacobian).sum(-1)

    def q_values(self, obs: torch.Tensor, action: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``(Q_1, Q_2)`` stacked, ``(2, B)``; ``target``: from the Polyak targets."""
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([q(x)[:, 0] for q in (self.targets if target else self.critics)])

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic control ``max_action * tanh(mu(s))``, ``(B, d)``, in the game's units."""
        return self.max_action * torch.tanh(self._mean_log_std(obs)[0])


def actor_critic(params: Any, obs_dim: int, act_dim: int, max_action: float) -> ActorCritic:
    """PPO's and A2C's network for ``params`` (``Hyperparameters``) and the env's spaces."""
    return ActorCritic(obs_dim, act_dim, params.hidden, params.log_std_init, max_action)


def sac_networks(params: Any, obs_dim: int, act_dim: int, max_action: float) -> SACNetworks:
    """SAC's networks for ``params`` (``SACHyperparameters``) and the env's spaces."""
    return SACNetworks(obs_dim, act_dim, params.hidden, max_action, params.init_alpha)
