"""Shared construction of the environments: the equilibrium, the spaces, action checks."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mfg_rl.core import MFGProblem
from mfg_rl.envs.game import Game
from mfg_rl.solvers import Equilibrium, solve


def resolve_equilibrium(problem: str | MFGProblem | None, equilibrium: Equilibrium | None,
                        solve_options: dict[str, Any] | None, params: dict[str, Any]) -> Equilibrium:
    """The equilibrium an environment runs on.

    ``equilibrium`` is used as is; otherwise ``problem`` (a catalogue name with ``params``,
    or an ``MFGProblem``) is solved with ``mfg_rl.solve(..., cache=True)``: the first
    environment computes it, later ones load it from the on-disk cache.
    """
    from mfg_rl import problems

    if equilibrium is not None:
        if not isinstance(equilibrium, Equilibrium):
            raise TypeError(f"equilibrium must be an mfg_rl.Equilibrium, got {type(equilibrium).__name__}")
        if params:
            raise TypeError(f"problem parameters {sorted(params)} cannot be combined with equilibrium=")
        return equilibrium
    if isinstance(problem, str):
        problem = problems.make(problem, **params)
    elif isinstance(problem, MFGProblem):
        if params:
            raise TypeError(f"problem parameters {sorted(params)} cannot be combined with an MFGProblem")
    else:
        raise TypeError(f"problem must be a catalogue name or an MFGProblem, got {problem!r}")
    options = {"progress": False, "cache": True}
    options.update(solve_options or {})
    return solve(problem, **options)


def observation_space(game: Game) -> spaces.Box:
    """``[t/T, x_1..x_d, m(t, x)]`` in ``[0, 1] x box x [0, 1/h^d]``, float32.

    ``1/h^d`` (``h^d`` the cell volume) bounds every crowd the env can show: each is a
    sub-probability density on the grid (``Game.crowd_table``; the N-player KDE integrates to
    the fraction inside), and interpolation stays within its node values.
    """
    low = np.array([0.0, *game.low, 0.0], dtype=np.float32)
    high = np.array([1.0, *game.high, 1.0 / game.grid.cell_volume], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def action_space(game: Game, normalize_actions: bool) -> spaces.Box:
    """float32 ``[-1, 1]^d`` (the control is ``max_action`` times the action) or, with
    ``normalize_actions=False``, the control ``alpha`` itself in ``[-max_action, max_action]^d``."""
    bound = 1.0 if normalize_actions else game.max_action
    return spaces.Box(-bound, bound, shape=(game.ndim,), dtype=np.float32)


def action_scale(game: Game, normalize_actions: bool) -> float:
    """The control per unit of action: ``max_action`` for normalised actions, else 1."""
    if not isinstance(normalize_actions, bool):
        raise TypeError(f"normalize_actions must be True or False, got {normalize_actions!r}")
    return game.max_action if normalize_actions else 1.0


def checked_actions(action: Any, num_envs: int, ndim: int, device: Any) -> Any:
    """``action`` as a float32 ``(N, d)`` tensor on ``device``; ValueError on a bad shape or NaN.

    ``(N,)`` is accepted when ``d = 1``.
    """
    import torch

    try:
        tensor = torch.as_tensor(action, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"action must be an array of shape ({num_envs}, {ndim}) of floats: {exc}") from None
    if ndim == 1 and tuple(tensor.shape) == (num_envs,):
        tensor = tensor[:, None]
    if tuple(tensor.shape) != (num_envs, ndim):
        raise ValueError(f"action must have shape ({num_envs}, {ndim}), got {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("action must be finite (got NaN or inf)")
    return tensor
