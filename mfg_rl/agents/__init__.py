"""Learning agents (DESIGN.md layer 7): PPO, A2C, SAC, D-AFP and OMD as Lightning modules on the batched env.

``train(env_id, algo="ppo", regime="best-response", steps=..., ...) -> TrainResult`` is the
main job (also ``mfg-rl train``); ``bench(checkpoint)`` re-scores a saved agent (``mfg-rl
bench``). Lightning is imported only when training starts: ``import mfg_rl.agents`` is light.

Files, each one idea: ``algorithms`` (the registry: one entry per learner, read by ``train``, the
CLI, checkpoints and the leaderboard), ``config`` (hyperparameters and their references), ``networks``
(normaliser, Gaussian actor, critic; SAC's squashed actor and twin critics), ``rollout``
(collection, GAE), ``losses`` (PPO/A2C), ``regimes`` (best response, fictitious play), ``module``
(the LightningModule, with ``progress``), ``sac`` (SAC's module and its device replay), ``dafp``
(deep averaged fictitious play) with ``average_policy`` (its average network, reservoir and
model-free crowd),
``training`` (``train``, the entry point), ``checkpoints`` (saved agents back to policies,
``bench``), ``resume`` (checkpoints read safely; a resume that would mix two runs is refused),
``reporting`` (the figure), ``hparams_tab`` (hyperparameters in TensorBoard's HPARAMS tab),
``leaderboard`` (algorithms x envs x seeds, each run in its own process; ``mfg-rl leaderboard``)
and ``leaderboard_report`` (its table, CSV/JSON and figure).

Example:
    >>> from mfg_rl.agents import train                                    # doctest: +SKIP
    >>> result = train("mfg_rl/LQ1D-v0", steps=500_000)                    # doctest: +SKIP
    >>> print(result.summary())                                            # doctest: +SKIP
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "train": "mfg_rl.agents.training",
    "TrainResult": "mfg_rl.agents.training",
    "DEFAULT_STEPS": "mfg_rl.agents.training",
    "bench": "mfg_rl.agents.checkpoints",
    "load_agent": "mfg_rl.agents.checkpoints",
    "LoadedAgent": "mfg_rl.agents.checkpoints",
    "Hyperparameters": "mfg_rl.agents.config",
    "SACHyperparameters": "mfg_rl.agents.config",
    "defaults": "mfg_rl.agents.config",
    "ActorCritic": "mfg_rl.agents.networks",
    "ObservationPolicy": "mfg_rl.agents.networks",
    "REGIMES": "mfg_rl.agents.regimes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mfg_rl.agents' has no attribute {name!r}")
