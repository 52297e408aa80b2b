"""The registry of learning algorithms: one ``Algorithm`` entry per learner, read by ``train``,
checkpoints, the CLI and the leaderboard.

An entry says where the learner's Lightning module lives (imported only when training starts),
its hyperparameters (a dataclass of ``mfg_rl.agents.config`` with its documented defaults and
range checks), the network a checkpoint holds, the env's action convention, the regimes it
learns in and its default budget. Adding an algorithm is one module file and one entry here.

Example:
    >>> from mfg_rl.agents.algorithms import get, names
    >>> names()[:3]
    ('ppo', 'a2c', 'sac')
    >>> get("sac").normalize_actions
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from mfg_rl.agents import config


@dataclass(frozen=True)
class Algorithm:
    """What the library needs to know about one learner.

    Attributes:
        name: the ``algo`` of ``train`` and ``mfg-rl train --algo``.
        summary: one line for ``--help`` and the leaderboard.
        module: ``"package.module:Class"`` of its ``LightningModule`` (lazy: Lightning is heavy).
        hyperparameters: the dataclass of its hyperparameters; ``defaults`` replace some of its fields.
        check: validates a hyperparameter instance (``ValueError`` naming the field); returns it.
        networks: ``"package.module:function"`` building the checkpoint's network from
            ``(params, obs_dim, act_dim, max_action)`` (import it without Lightning).
        normalize_actions: the env's action convention: ``False`` the raw control ``alpha``,
            ``True`` actions in ``[-1, 1]^d`` (``mfg_rl.agents.checkpoints.make_env``).
        regimes: the crowds it learns against (``mfg_rl.agents.regimes.REGIMES``).
        default_steps: its env-step budget when ``train(steps=None)``; ``None``: per env
            (``mfg_rl.agents.training.DEFAULT_STEPS``).
    """

    name: str
    summary: str
    module: str
    hyperparameters: type
    check: Callable[[Any], Any]
    networks: str
    normalize_actions: bool = False
    regimes: tuple[str, ...] = ("best-response", "fictitious-play")
    defaults: dict[str, Any] = field(default_factory=dict)
    default_steps: int | None = None

    def default_parameters(self) -> Any:
        """The documented defaults: the dataclass with ``defaults`` applied."""
        return dataclasses.replace(self.hyperparameters(), **self.defaults)

    def module_class(self) -> type:
        """The ``LightningModule`` class (imports Lightning)."""
        return _load(self.module)

    def build_networks(self, params: Any, obs_dim: int, act_dim: int, max_action: float) -> Any:
        """The network that checkpoints hold, for ``params`` and the env's spaces."""
        return _load(self.networks)(params, obs_dim, act_dim, max_action)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


REGISTRY: dict[str, Algorithm] = {
    "ppo": Algorithm(
        "ppo", "proximal policy optimisation (clipped ratio, GAE), on-policy",
        "mfg_rl.agents.module:ActorCriticModule", config.Hyperparameters, config.check_actor_critic,
        "mfg_rl.agents.networks:actor_critic"),
    "a2c": Algorithm(
        "a2c", "advantage actor-critic (one RMSprop step per rollout), on-policy",
        "mfg_rl.agents.module:ActorCriticModule", config.Hyperparameters, config.check_a2c,
        "mfg_rl.agents.networks:actor_critic", defaults=config.A2C_DEFAULTS),
    "sac": Algorithm(
        "sac", "soft actor-critic (twin critics, entropy tuning, device replay), off-policy",
        "mfg_rl.agents.sac:SACModule", config.SACHyperparameters, config.check_sac,
        "mfg_rl.agents.networks:sac_networks", normalize_actions=True, regimes=("best-response",),
        default_steps=100_000),
    "dafp": Algorithm(
        "dafp", "deep averaged fictitious play (PPO best responses, supervised average policy, PDE or "
        "model-free crowd)", "mfg_rl.agents.dafp:DAFPModule", config.DAFPHyperparameters, config.check_dafp,
        "mfg_rl.agents.average_policy:dafp_networks", regimes=("fictitious-play",)),
    "omd": Algorithm(
        "omd", "deep Munchausen online mirror descent (softmax over a grid of actions, Q regression), "
        "crowd of its last iterate",
        "mfg_rl.agents.omd:OMDModule", config.OMDHyperparameters, config.check_omd,
        "mfg_rl.agents.softmax_q:softmax_q_networks", regimes=("fictitious-play",)),
    "dafp-q": Algorithm(
        "dafp-q", "deep averaged fictitious play with soft Q-learning best responses (softmax over a grid "
        "of actions), supervised average policy, PDE or model-free crowd",
        "mfg_rl.agents.dafp_q:DAFPQModule", config.DAFPQHyperparameters, config.check_dafp_q,
        "mfg_rl.agents.average_policy:dafp_q_networks", regimes=("fictitious-play",)),
    "fp-q": Algorithm(
        "fp-q", "fictitious play with soft Q-learning best responses (softmax over a grid of actions), "
        "their exact crowd-weighted average on the grid, PDE or model-free crowd",
        "mfg_rl.agents.dafp_q:DAFPQModule", config.DAFPQHyperparameters, config.check_dafp_q,
        "mfg_rl.agents.average_policy:dafp_q_networks", regimes=("fictitious-play",),
        defaults=config.FPQ_DEFAULTS),
}


def names() -> tuple[str, ...]:
    """The registered algorithms, in registration order."""
    return tuple(REGISTRY)


def get(name: str) -> Algorithm:
    """The entry of ``name``; ``ValueError`` naming the registered ones otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"algo must be one of {', '.join(REGISTRY)}, got {name!r}")
    return REGISTRY[name]
