"""Gymnasium environments built on a computed equilibrium (DESIGN.md layer 5).

``import mfg_rl`` registers the ids ``mfg_rl/LQ1D-v0``, ``mfg_rl/CrowdExit1D-v0``,
``mfg_rl/SantaFeBar-v0``, ``mfg_rl/BeachBar1D-v0`` and ``mfg_rl/Crowd2D-v0``:
``gymnasium.make(id, **problem_params)`` gives one agent (``MFGEnv``),
``gymnasium.make_vec(id, num_envs=N, device=...)`` N agents stepped together as torch
tensors (``MFGVectorEnv``). Actions are in ``[-1, 1]^d``, the control ``max_action`` times
the action (``normalize_actions=False``: the control itself). Adapters: ``SB3VecEnv`` (an
SB3 ``VecEnv``), ``TorchToNumpy`` (numpy out, for gymnasium's vector wrappers with
``autoreset_mode=AutoresetMode.NEXT_STEP``), ``observed_policy`` (any agent of observations
scored by ``mfg_rl.benchmark``). The classes load on first use.
"""

from importlib import import_module
from typing import Any

from mfg_rl.envs.registration import ENVIRONMENTS, env_ids, register_envs

_LAZY = {
    "MFGEnv": "mfg_rl.envs.single_env",
    "MFGVectorEnv": "mfg_rl.envs.vector_env",
    "EquilibriumPolicy": "mfg_rl.envs.policy",
    "equilibrium_policy": "mfg_rl.envs.policy",
    "TorchEpisodeStatistics": "mfg_rl.envs.wrappers",
    "first_episode_returns": "mfg_rl.envs.wrappers",
    "TorchToNumpy": "mfg_rl.envs.to_numpy",
    "SB3VecEnv": "mfg_rl.envs.sb3",
    "ObservedPolicy": "mfg_rl.envs.observed",
    "observed_policy": "mfg_rl.envs.observed",
    "Game": "mfg_rl.envs.game",
}

__all__ = ["ENVIRONMENTS", "env_ids", "register_envs", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mfg_rl.envs' has no attribute {name!r}")
