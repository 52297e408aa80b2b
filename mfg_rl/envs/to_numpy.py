"""``TorchToNumpy``: a torch vector env, on any device, seen through numpy arrays.

Gymnasium ships ``NumpyToTorch`` and ``JaxToNumpy`` but no torch-to-numpy wrapper; this is
the missing direction, so that gymnasium's numpy vector wrappers (``RecordEpisodeStatistics``,
``NormalizeObservation``, ``NormalizeReward``, ``ClipAction``, ``DictInfoToList``, ...) run on
the natively batched env.
"""

from __future__ import annotations

from typing import Any

from gymnasium.vector import VectorEnv, VectorWrapper


def to_numpy(value: Any) -> Any:
    """A torch tensor (any device) as a numpy array, a dict's values converted recursively,
    anything else as it is."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    return value


class TorchToNumpy(VectorWrapper):
    """Observations, rewards, flags and info of a torch vector env as numpy; actions to torch.

    Outputs leave the device by ``.cpu().numpy()`` (no copy on the CPU, one transfer per array
    on CUDA). Actions (numpy arrays, lists or tensors) become tensors on ``device``. Spaces,
    ``metadata`` and so the autoreset mode are the env's: build the env with
    ``autoreset_mode=AutoresetMode.NEXT_STEP`` for gymnasium's observation wrappers.

    Args:
        env: a vector env speaking torch, e.g. ``gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=N)``.
        device: torch device of the env's actions (default: the env's ``device``, else the CPU).

    Example:
        >>> import gymnasium, numpy as np, mfg_rl
        >>> from gymnasium.vector import AutoresetMode
        >>> from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics
        >>> envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=4, device="cpu", Nx=51, Nt=10,
        ...                           autoreset_mode=AutoresetMode.NEXT_STEP)
        >>> envs = NormalizeObservation(RecordEpisodeStatistics(TorchToNumpy(envs)))
        >>> obs, info = envs.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = envs.step(np.zeros((4, 1), dtype=np.float32))
        >>> type(obs).__name__, obs.shape, reward.dtype.name
        ('ndarray', (4, 3), 'float32')
    """

    def __init__(self, env: VectorEnv, device: Any = None) -> None:
        import torch

        super().__init__(env)
        self.device = torch.device(getattr(env.unwrapped, "device", "cpu") if device is None else device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return to_numpy(obs), to_numpy(info)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        import torch

        tensor = torch.as_tensor(actions, device=self.device)
        obs, reward, terminated, truncated, info = self.env.step(tensor)
        return to_numpy(obs), to_numpy(reward), to_numpy(terminated), to_numpy(truncated), to_numpy(info)

