"""A policy of observations (any RL library's agent) as the benchmark's ``policy(t, x) -> alpha``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mfg_rl.envs.game import Game


class ObservedPolicy:
    """``alpha(t, x)``: ``act`` applied to the env's observation of ``(t, x)``, as the env applies it.

    The observation ``[t/T, x, m(t, x)]`` comes from ``game.observe`` (the env's current crowd)
    as float32 numpy ``(N, 2 + d)``; ``act`` returns actions ``(N, d)`` in the env's units
    (numpy, list or tensor), which become the control exactly as in the env's step
    (``Game.admissible``: clipped to the action box, times ``action_scale``), so
    ``mfg_rl.benchmark.evaluate`` scores the policy the env runs. Call with ``t`` ``(N,)`` and
    ``x`` ``(N,)`` in 1D or ``(N, d)``; returns ``alpha`` of ``x``'s shape.
    """

    def __init__(self, act: Callable[[Any], Any], game: Game, action_scale: float) -> None:
        self.act = act
        self.game = game
        self.action_scale = action_scale

    def __call__(self, t: Any, x: Any) -> Any:
        import torch

        device = self.game.device
        t = torch.as_tensor(t, dtype=torch.float32, device=device).reshape(-1)
        x = torch.as_tensor(x, dtype=torch.float32, device=device)
        points = x[:, None] if x.ndim == 1 else x
        obs = self.game.observe(t, points).cpu().numpy()
        action = torch.as_tensor(self.act(obs), dtype=torch.float32, device=device)
        alpha, _ = self.game.admissible(action.reshape(points.shape), self.action_scale)
        return alpha[:, 0] if x.ndim == 1 else alpha


def observed_policy(act: Callable[[Any], Any], env: Any) -> ObservedPolicy:
    """The benchmark's ``policy(t, x) -> alpha`` of ``act(obs) -> action`` acting in ``env``.

    ``env`` is an ``mfg_rl`` env, single or vector, possibly wrapped: its ``game`` and
    ``action_scale`` say what the actions mean.

    Example:
        >>> import gymnasium, mfg_rl
        >>> from mfg_rl.benchmark import evaluate
        >>> env = gymnasium.make("mfg_rl/LQ1D-v0", Nx=51, Nt=10)
        >>> policy = observed_policy(lambda obs: -obs[:, 1:2], env)      # a = -x, alpha = -4 x
        >>> score = evaluate(policy, env.unwrapped.equilibrium)            # doctest: +SKIP
        >>> # an SB3 model: observed_policy(lambda obs: model.predict(obs, deterministic=True)[0], env)
    """
    base = env.unwrapped
    if not isinstance(getattr(base, "game", None), Game):
        raise TypeError(f"env must be an mfg_rl env (single or vector), got {type(env).__name__}")
    return ObservedPolicy(act, base.game, base.action_scale)
