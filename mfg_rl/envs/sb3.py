"""``SB3VecEnv``: a gymnasium vector env, the natively batched one included, as an SB3 ``VecEnv``.

Stable-Baselines3 steps its own ``VecEnv`` API: numpy in and out, ``dones`` instead of
``terminated``/``truncated``, one info dict per env with ``"terminal_observation"`` and
``"TimeLimit.truncated"``, finished envs reset within the step. A gymnasium vector env with
``AutoresetMode.SAME_STEP`` (the native env's default) has the same semantics, so this
adapter only converts. Needs ``pip install mfg-rl[sb3]``; imported on first use of
``mfg_rl.envs.SB3VecEnv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from mfg_rl.envs.to_numpy import to_numpy


class SB3VecEnv(VecEnv):
    """``env``'s ``num_envs`` agents as one Stable-Baselines3 ``VecEnv``.

    Observations ``(N, *obs_shape)`` float32, rewards ``(N,)`` float32, dones ``(N,)`` bool as
    numpy (tensors leave their device, CPU or CUDA, by ``.cpu().numpy()``); SB3's numpy actions
    go back to the env's device when the env speaks torch. An agent that finishes is reset in
    the same step; its info holds ``"terminal_observation"`` and ``"TimeLimit.truncated"``
    (truncated, not terminated), what SB3 bootstraps from; other info keys are not copied
    (wrap with SB3's ``VecMonitor`` for episode returns). ``seed(s)`` seeds the next reset
    with ``s`` (a batched env takes one seed). Attributes and methods (``get_attr``,
    ``env_method``) are the vector env's, the same for every index.

    Args:
        env: a gymnasium ``VectorEnv`` with ``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``:
            ``gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=128)`` (torch, any device), or a
            ``SyncVectorEnv`` made with ``vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}``.

    Example:
        >>> import gymnasium, mfg_rl
        >>> from stable_baselines3 import PPO
        >>> venv = SB3VecEnv(gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=128, device="cpu"))
        >>> model = PPO("MlpPolicy", venv, n_steps=50).learn(12_800)          # doctest: +SKIP
    """

    def __init__(self, env: VectorEnv) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(f"env must be a gymnasium VectorEnv, got {type(env).__name__}")
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"env must reset finished agents in the same step, as SB3 does: its "
                             f"metadata['autoreset_mode'] is {mode!r}, needs AutoresetMode.SAME_STEP (the "
                             "native env's default; SyncVectorEnv(..., "
                             "autoreset_mode=AutoresetMode.SAME_STEP))")
        self.env = env
        self._actions: Any = None
        self._device: Any = None  # the env's torch device once it returned tensors; None: numpy env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        """All agents afresh: seeded by the last ``seed(s)`` (then forgotten), with its options."""
        options = self._options[0] or None
        obs, _ = self.env.reset(seed=self._seeds[0], options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._device = getattr(obs, "device", None)
        return to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        if self._device is None:
            self._actions = actions
        else:
            import torch

            self._actions = torch.as_tensor(actions, device=self._device)

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        terminated, truncated = to_numpy(terminated), to_numpy(truncated)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = to_numpy(info["final_obs"])
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = np.asarray(final[i])
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return to_numpy(obs), np.asarray(to_numpy(reward), dtype=np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def _owner(self, name: str) -> Any:
        """The env, or under gymnasium wrappers the base env, that has attribute ``name``."""
        return self.env if hasattr(self.env, name) else self.env.unwrapped

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self._owner(attr_name), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self._owner(attr_name), attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        result = getattr(self._owner(method_name), method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False for every index: the agents live in one vector env, not in wrapped single envs."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The env's frame: one for the natively batched env (all agents in it), one per env else."""
        frames = self.env.render()
        return list(frames) if isinstance(frames, (tuple, list)) else [frames]
