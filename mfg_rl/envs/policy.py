"""The PDE's optimal control as a policy: the baseline every learned policy is compared with."""

from __future__ import annotations

from typing import Any

from mfg_rl.envs.game import Game, equilibrium_controls
from mfg_rl.solvers import Equilibrium


class EquilibriumPolicy:
    """``alpha*(t, x) = -w(m) grad u`` of an equilibrium, linearly interpolated in ``x``.

    ``t`` is rounded to the nearest time level ``t_n`` (the solver's control at level ``n``
    drives the step from ``t_n`` to ``t_{n+1}``). Call with torch tensors ``t`` ``(N,)`` and
    ``x`` ``(N,)`` (1D) or ``(N, d)``; returns float32 ``alpha`` of ``x``'s shape on ``device``.
    ``act(obs)`` gives an env's actions ``alpha / action_scale`` from its observations
    ``[t/T, x, m]``: ``action_scale`` is the env's control per unit of action (its
    ``max_action`` when actions are normalised, as by default); ``equilibrium_policy(env)``
    sets it from the env.

    Example:
        >>> import torch
        >>> from mfg_rl import problems, solve
        >>> policy = EquilibriumPolicy(solve(problems.make("lq-1d", Nx=51, Nt=10), progress=False))
        >>> tuple(policy(torch.zeros(3), torch.tensor([-1.0, 0.0, 1.0])).shape)
        (3,)
    """

    def __init__(self, eq: Equilibrium, device: Any = "cpu", action_scale: float = 1.0) -> None:
        import array_api_compat.torch as xp
        import torch

        self.problem = eq.problem
        self.xp = xp
        self.device = torch.device(device)
        self.ndim = eq.problem.ndim
        self.T = eq.problem.time.T
        self.Nt = eq.problem.time.Nt
        self.table = torch.as_tensor(equilibrium_controls(eq), dtype=torch.float32, device=self.device)
        if not (isinstance(action_scale, (int, float)) and action_scale > 0):
            raise ValueError(f"action_scale must be a number > 0, got {action_scale!r}")
        self.action_scale = float(action_scale)

    def __call__(self, t: Any, x: Any) -> Any:
        import torch

        from mfg_rl.backends.interp import interp_levels

        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1)
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        level = torch.clamp(torch.round(t * (self.Nt / self.T)).to(torch.int64), 0, self.Nt)
        alpha = interp_levels(self.xp, self.problem.grid, self.table, level, x)
        return alpha[0] if self.ndim == 1 and x.ndim == 1 else torch.stack(alpha, dim=1)

    def act(self, obs: Any) -> Any:
        """Actions ``alpha / action_scale`` ``(N, d)`` from observations ``(N, 2 + d)``."""
        obs = obs if obs.ndim == 2 else obs[None]
        x = obs[:, 1 : 1 + self.ndim]
        alpha = self(obs[:, 0] * self.T, x[:, 0] if self.ndim == 1 else x).reshape(obs.shape[0], self.ndim)
        return alpha if self.action_scale == 1.0 else alpha / self.action_scale


def equilibrium_policy(source: Any, device: Any = None) -> EquilibriumPolicy:
    """The equilibrium control of an ``Equilibrium``, an environment, or a registered env id.

    From an env (or an id, through ``gymnasium.make``) ``act`` returns that env's actions
    (normalised by its ``action_scale``); from an ``Equilibrium`` it returns the control itself.

    Example:
        >>> import mfg_rl
        >>> from mfg_rl.envs import equilibrium_policy
        >>> policy = equilibrium_policy("mfg_rl/LQ1D-v0", device="cpu")
        >>> policy.Nt, policy.action_scale
        (50, 4.0)
    """
    import gymnasium

    scale = 1.0
    if isinstance(source, str):
        env = gymnasium.make(source)
        source, scale = env.unwrapped.equilibrium, env.unwrapped.action_scale
        env.close()
    elif isinstance(source, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        game: Game = source.unwrapped.game
        device = game.device if device is None else device
        source, scale = game.eq, source.unwrapped.action_scale
    if not isinstance(source, Equilibrium):
        raise TypeError(f"equilibrium_policy needs an Equilibrium, an mfg_rl env or env id, got {source!r}")
    return EquilibriumPolicy(source, "cpu" if device is None else device, scale)
