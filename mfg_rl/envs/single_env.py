"""``MFGEnv``: one representative agent in the equilibrium crowd, as a ``gymnasium.Env``."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from mfg_rl.core import MFGProblem
from mfg_rl.envs import construction, render
from mfg_rl.envs.agents_batch import AgentBatch
from mfg_rl.envs.game import Game
from mfg_rl.solvers import Equilibrium


class MFGEnv(gymnasium.Env):
    """A representative agent of a mean-field game, living in its Nash equilibrium crowd.

    State ``(t, x)``; action ``a`` in float32 ``Box(-1, 1, (d,))``, the control
    ``alpha = a_max a`` (``a_max = max_action``, the game's maximal speed; with
    ``normalize_actions=False`` the action is ``alpha`` itself, in ``[-a_max, a_max]^d``);
    out-of-bound actions are clipped and counted in ``info["clipped"]`` and
    ``self.clipped_actions``; dynamics ``dX = alpha dt + sigma dW`` by Euler-Maruyama at
    the solver's ``dt = T/Nt`` with the problem's walls (reflection, wrap, exit); reward
    per step ``-(L(alpha) + f(x, m)) dt`` and ``-g(x, m(T))`` at the horizon (see
    ``mfg_rl.envs.agents_batch``). ``terminated`` at ``T`` or on leaving through an exit
    (which pays ``exit_cost``). Observation float32 ``[t/T, x_1..x_d, m(t, x)]``.
    Following the equilibrium control, the expected return from ``x ~ m0`` is
    ``-E_m0[u(0, x)]`` (up to the time-step error).

    Args: as ``MFGVectorEnv`` (without ``num_envs``, ``population``, ``device``,
    ``autoreset_mode``: one agent on the CPU, numpy in and out).

    Example:
        >>> import gymnasium, mfg_rl
        >>> env = gymnasium.make("mfg_rl/LQ1D-v0", Nx=51, Nt=10)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> obs.shape, obs.dtype.name
        ((3,), 'float32')
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        problem: str | MFGProblem = "lq-1d",
        render_mode: str | None = None,
        equilibrium: Equilibrium | None = None,
        max_action: float | None = None,
        solve_options: dict[str, Any] | None = None,
        normalize_actions: bool = True,
        **params: Any,
    ) -> None:
        construction.check_render_mode(render_mode)
        eq = construction.resolve_equilibrium(problem, equilibrium, solve_options, params)
        self.game = Game(eq, "cpu", max_action)
        self.action_scale = construction.action_scale(self.game, normalize_actions)
        self.normalize_actions = normalize_actions
        self.batch = AgentBatch(self.game, 1, action_scale=self.action_scale)
        self.render_mode = render_mode
        self.observation_space = construction.observation_space(self.game)
        self.action_space = construction.action_space(self.game, normalize_actions)
        self.clipped_actions = 0
        self._running = False
        self._seeded = False

    @property
    def equilibrium(self) -> Equilibrium:
        return self.game.eq

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Draw the agent from ``m0`` at ``t = 0``; ``seed`` seeds numpy and the torch generator."""
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        elif not self._seeded:
            self.batch.seed(int(self.np_random.integers(2**62)))
        self._seeded = True
        self.batch.reset()
        self._running = True
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("the episode is over (or never started): call reset()")
        tensor = construction.checked_actions(action, 1, self.game.ndim, "cpu", single=True)
        result = self.batch.step(tensor)
        clipped = bool(result.clipped[0])
        self.clipped_actions += int(clipped)
        terminated = bool(result.terminated[0])
        self._running = not terminated
        info = {"clipped": clipped, "clipped_total": self.clipped_actions, "exited": bool(result.exited[0])}
        return self._observation(), float(result.reward[0]), terminated, False, info

    def _observation(self) -> np.ndarray:
        return self.batch.observation()[0].numpy().astype(np.float32)

    def render(self) -> np.ndarray | None:
        """The density over ``(t, x)`` (1D) or at ``t`` (2D) with the agent on it, HWC uint8
        ``(render.HEIGHT, render.WIDTH, 3)``: axes, colour bar, the time in the title."""
        if self.render_mode != "rgb_array":
            return None
        return render.frame(self.game.table[..., 0].numpy(), self.batch.level.numpy() * self.game.dt,
                            self.batch.x.numpy(), self.game.grid.bounds, self.game.T)
