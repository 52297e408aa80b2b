"""``MFGVectorEnv``: N agents of a mean-field game as one natively batched Gymnasium env."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mfg_rl.checks import check_int, check_optional
from mfg_rl.core import MFGProblem
from mfg_rl.envs import construction, render
from mfg_rl.envs.agents_batch import AgentBatch
from mfg_rl.envs.game import Game
from mfg_rl.solvers import Equilibrium


class MFGVectorEnv(VectorEnv):
    """``num_envs`` representative agents of an MFG, stepped together on a torch device.

    Observations ``(N, 2 + d)`` float32 ``[t/T, x, m(t, x)]``, actions ``(N, d)`` in
    ``[-1, 1]`` (``(N,)`` accepted in 1D; the control is ``alpha = max_action * action``),
    rewards ``(N,)`` float32, flags ``(N,)`` bool: torch tensors on ``device`` in and out (numpy
    actions are accepted; ``mfg_rl.envs.TorchToNumpy`` gives numpy out, ``mfg_rl.envs.SB3VecEnv``
    an SB3 ``VecEnv``). ``info["clipped"]`` flags actions outside the box (clipped to it).

    Autoreset (gymnasium's ``AutoresetMode``, in ``metadata["autoreset_mode"]``):
    ``SAME_STEP`` (default, SB3's convention) resets finished agents within the step that
    ends them, ``info["final_obs"]`` holding their last observations and
    ``info["_final_obs"]`` saying whose; ``NEXT_STEP`` (gymnasium's default, needed by its
    observation wrappers such as ``NormalizeObservation``) returns the last observation and
    resets those agents on the next step, which ignores their action and returns reward 0,
    ``terminated = truncated = False`` and their first observation.

    Args:
        problem: catalogue name (``"lq-1d"``, ...) or an ``MFGProblem``; ``**params`` go to
            the catalogue factory (e.g. ``Nx=101``).
        num_envs: number of agents, ``1 <= N <= 2**30``.
        device: torch device (default: CUDA, then MPS, then CPU).
        max_episode_steps: truncate episodes after this many steps (default: none; every
            episode terminates at the horizon ``T`` or at an exit).
        render_mode: ``None`` or ``"rgb_array"``.
        population: ``"equilibrium"`` (frozen crowd from the solver) or ``"empirical"`` (the
            agents' own density by KDE: the N-player game, one shared clock).
        equilibrium: a computed ``Equilibrium`` to use instead of solving ``problem``.
        max_action: the game's maximal speed per axis (``Game``; the registered ids set a
            documented one, ``mfg_rl.envs.registration.MAX_SPEED``).
        normalize_actions: actions in ``[-1, 1]^d`` scaled by ``max_action`` (default), or
            ``False``: the raw control ``alpha`` in ``[-max_action, max_action]^d``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP`` (or their
            values ``"SameStep"``, ``"NextStep"``).
        solve_options: extra keyword arguments of ``mfg_rl.solve``.
        bandwidth: KDE bandwidth of the empirical crowd: a rule name (``"scott"``,
            ``"silverman"``; floored at one cell, so defined for any number of agents inside)
            or a float. The crowd's density integrates to the fraction of agents still inside.

    Example:
        >>> import gymnasium, torch, mfg_rl
        >>> envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=4, device="cpu", Nx=51, Nt=10)
        >>> obs, info = envs.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = envs.step(torch.zeros(4, 1))
        >>> tuple(obs.shape), reward.dtype
        ((4, 3), torch.float32)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        problem: str | MFGProblem = "lq-1d",
        num_envs: int = 1,
        device: Any = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        population: str = "equilibrium",
        equilibrium: Equilibrium | None = None,
        max_action: float | None = None,
        solve_options: dict[str, Any] | None = None,
        bandwidth: Any = "scott",
        normalize_actions: bool = True,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        **params: Any,
    ) -> None:
        import torch

        from mfg_rl.backends.torch_backend import default_torch_device

        construction.check_render_mode(render_mode)
        max_episode_steps = check_optional(check_int, "max_episode_steps", max_episode_steps, 1, 2**62)
        modes = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP)
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            mode = None
        if mode not in modes:
            raise ValueError(f"autoreset_mode must be one of {', '.join(str(m) for m in modes)} (or "
                             f"{', '.join(repr(m.value) for m in modes)}), got {autoreset_mode!r}")
        eq = construction.resolve_equilibrium(problem, equilibrium, solve_options, params)
        self.game = Game(eq, default_torch_device() if device is None else device, max_action)
        self.action_scale = construction.action_scale(self.game, normalize_actions)
        self.normalize_actions = normalize_actions
        self.batch = AgentBatch(self.game, num_envs, population, bandwidth, self.action_scale)
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs = num_envs
        self.device = self.game.device
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = construction.observation_space(self.game)
        self.single_action_space = construction.action_space(self.game, normalize_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._clipped = torch.zeros((), dtype=torch.int64, device=self.device)  # summed without a host sync
        self._pending: Any = None  # NEXT_STEP: agents that finished last step, reset by this one
        self._ready = False

    @property
    def clipped_actions(self) -> int:
        """Actions clipped to the action box since construction, over all agents."""
        return int(self._clipped)

    @property
    def equilibrium(self) -> Equilibrium:
        return self.game.eq

    def set_crowd(self, m: Any) -> None:
        """Freeze the crowd to ``m`` ``(Nt+1, *space)`` (equilibrium mode): rewards and density
        observations follow it from the next step (a fictitious-play outer loop sets it)."""
        if self.batch.empirical:
            raise ValueError("set_crowd needs population='equilibrium' (the empirical crowd is the agents')")
        self.game.set_crowd(m)
        self.batch.table = self.game.table
        if self._ready:
            self.batch.here = self.game.lookup(self.batch.table, self.batch.level, self.batch.x)

    def state_dict(self) -> dict[str, Any]:
        """The env's full state (agents, crowd, RNG, counters) for checkpoints."""
        return {"batch": self.batch.state_dict(), "clipped_actions": self.clipped_actions,
                "ready": self._ready, "pending": None if self._pending is None else self._pending.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from ``state_dict()``: same agents, same crowd, same random stream."""
        self.batch.load_state_dict(state["batch"])
        if not self.batch.empirical:
            self.game.table = self.batch.table
        self._clipped.fill_(int(state["clipped_actions"]))
        self._ready = bool(state["ready"])
        pending = state.get("pending")
        self._pending = None if pending is None else pending.to(self.device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Draw all agents from ``m0`` at ``t = 0``; ``seed`` seeds numpy and the torch generator."""
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        elif not self._ready:
            self.batch.seed(int(self.np_random.integers(2**62)))
        self.batch.reset()
        self._pending = None
        self._ready = True
        return self.batch.observation(), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        import torch

        if not self._ready:
            raise RuntimeError("call reset() before step()")
        action = construction.checked_actions(actions, self.num_envs, self.game.ndim, self.device)
        hold, self._pending = self._pending, None
        if hold is not None:
            if self.batch.empirical:  # one shared clock: everyone finished, everyone restarts
                self.batch.reset()
                reward = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device)
                flags = torch.zeros(4, self.num_envs, dtype=torch.bool, device=self.device)
                return self.batch.observation(), reward, flags[0], flags[1], {"clipped": flags[2],
                                                                               "exited": flags[3]}
            self.batch.reset(hold)
        result = self.batch.step(action, hold)
        terminated = result.terminated
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = (self.batch.level >= self.max_episode_steps) & ~terminated  # steps since reset
        self._clipped += result.clipped.sum()
        obs = self.batch.observation()
        info: dict[str, Any] = {"clipped": result.clipped, "exited": result.exited}
        done = terminated | truncated
        if bool(done.any()):
            if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
                self._pending = done
            else:
                info["final_obs"] = obs.clone()
                info["_final_obs"] = done
                self.batch.reset(None if self.batch.empirical else done)
                obs = self.batch.observation()
        return obs, result.reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The crowd's density with the agents still inside on it, each at its own time, HWC uint8
        ``(render.HEIGHT, render.WIDTH, 3)`` in ``"rgb_array"`` mode (see ``render.frame``)."""
        if self.render_mode != "rgb_array":
            return None
        inside = self.batch.inside.cpu().numpy()
        times = self.batch.level.cpu().numpy()[inside] * self.game.dt
        density = self.batch.table[..., 0].cpu().numpy()  # all levels, or the N-player crowd now
        return render.frame(density, times, self.batch.x.cpu().numpy()[inside], self.game.grid.bounds,
                            self.game.T)
