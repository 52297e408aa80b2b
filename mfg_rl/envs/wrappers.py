"""Episode statistics for vector envs that speak torch (gymnasium's own wrapper needs numpy)."""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper


class TorchEpisodeStatistics(VectorWrapper):
    """Adds ``info["episode"] = {"r": returns, "l": lengths, "t": elapsed seconds}`` on episode ends.

    Tensors are ``(N,)`` on the env's device, valid where ``info["_episode"]`` is True (the
    same masking convention as gymnasium's ``RecordEpisodeStatistics``). Also keeps the last
    ``buffer_length`` finished returns and lengths in ``return_queue``/``length_queue``.
    Under ``AutoresetMode.NEXT_STEP`` the reset step after an episode's end counts for no episode.

    Example:
        >>> import gymnasium, torch, mfg_rl
        >>> envs = TorchEpisodeStatistics(
        ...     gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=2, device="cpu", Nx=51, Nt=3))
        >>> _ = envs.reset(seed=0)
        >>> for _ in range(3):
        ...     *_, info = envs.step(torch.zeros(2, 1))
        >>> info["episode"]["l"].tolist()
        [3, 3]
    """

    def __init__(self, env: VectorEnv, buffer_length: int = 100) -> None:
        import collections

        super().__init__(env)
        self._next_step = env.metadata.get("autoreset_mode") == AutoresetMode.NEXT_STEP
        self._resetting: Any = None  # NEXT_STEP: agents whose step is a reset, not a transition
        self.return_queue: collections.deque = collections.deque(maxlen=buffer_length)
        self.length_queue: collections.deque = collections.deque(maxlen=buffer_length)
        self._returns: Any = None
        self._lengths: Any = None
        self._start: Any = None

    def state_dict(self) -> dict[str, Any]:
        """Running returns and lengths of the unfinished episodes (for checkpoints)."""
        resetting = None if self._resetting is None else self._resetting.clone()
        return {"returns": self._returns.clone(), "lengths": self._lengths.clone(), "resetting": resetting}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the episodes of ``state_dict()`` (call after ``reset``)."""
        device = self._returns.device
        self._returns = state["returns"].to(device)
        self._lengths = state["lengths"].to(device)
        resetting = state.get("resetting")
        self._resetting = None if resetting is None else resetting.to(device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        import time

        import torch

        obs, info = self.env.reset(seed=seed, options=options)
        self._returns = torch.zeros(self.num_envs, dtype=torch.float64, device=obs.device)
        self._lengths = torch.zeros(self.num_envs, dtype=torch.int64, device=obs.device)
        self._start = torch.full((self.num_envs,), time.perf_counter(), dtype=torch.float64)
        self._resetting = None
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        import time

        import torch

        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self._resetting is None:
            self._returns = self._returns + rewards.to(torch.float64)
            self._lengths = self._lengths + 1
        else:
            counted = ~self._resetting
            self._returns = self._returns + torch.where(counted, rewards.to(torch.float64), 0.0)
            self._lengths = self._lengths + counted.to(self._lengths.dtype)
            self._resetting = None
        done = terminated | truncated
        if bool(done.any()):
            now = time.perf_counter()
            info["episode"] = {
                "r": torch.where(done, self._returns, torch.zeros_like(self._returns)),
                "l": torch.where(done, self._lengths, torch.zeros_like(self._lengths)),
                "t": torch.where(done.cpu(), now - self._start, torch.zeros_like(self._start)),
            }
            info["_episode"] = done
            self.return_queue.extend(self._returns[done].tolist())
            self.length_queue.extend(self._lengths[done].tolist())
            self._returns = torch.where(done, torch.zeros_like(self._returns), self._returns)
            self._lengths = torch.where(done, torch.zeros_like(self._lengths), self._lengths)
            self._start = torch.where(done.cpu(), torch.full_like(self._start, now), self._start)
            if self._next_step:
                self._resetting = done
        return obs, rewards, terminated, truncated, info


def first_episode_returns(env: VectorEnv, act: Any, seed: int) -> Any:
    """The return of every agent's first episode, ``(N,)`` float64 on the env's device.

    ``act(obs) -> actions`` is applied until each of the ``N`` agents has finished one episode
    (later episodes of agents that finished early are ignored): the Monte Carlo estimate of a
    policy's value from ``m0`` that the tests and ``benchmarks/env_vs_pde.py`` compare with the PDE.

    Example:
        >>> import gymnasium, torch, mfg_rl
        >>> envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=3, device="cpu", Nx=51, Nt=3)
        >>> first_episode_returns(envs, lambda obs: torch.zeros(3, 1), seed=0).shape
        torch.Size([3])
    """
    import torch

    stats = TorchEpisodeStatistics(env)
    obs, _ = stats.reset(seed=seed)
    device = obs.device
    returns = torch.zeros(env.num_envs, dtype=torch.float64, device=device)
    seen = torch.zeros(env.num_envs, dtype=torch.bool, device=device)
    while not bool(seen.all()):
        obs, *_, info = stats.step(act(obs))
        if "episode" in info:
            new = info["_episode"] & ~seen
            returns[new] = info["episode"]["r"][new].to(torch.float64)
            seen |= info["_episode"]
    return returns
