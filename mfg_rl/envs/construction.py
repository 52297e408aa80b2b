"""Shared construction of the environments: the equilibrium, the spaces, action checks."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from gymnasium import spaces

from mfg_rl.checks import check_choice, check_flag, check_optional, check_real_entries, shown
from mfg_rl.core import MFGProblem
from mfg_rl.envs.game import Game
from mfg_rl.errors import SolverError
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
            raise TypeError(f"equilibrium must be an mfg_rl.Equilibrium or None, got {shown(equilibrium)}")
        if params:
            raise TypeError(f"problem parameters {sorted(params)} cannot be combined with equilibrium=")
        if solve_options is not None:
            raise TypeError("solve_options cannot be combined with equilibrium=, which is already solved; "
                            "drop solve_options")
        return equilibrium
    if isinstance(problem, str):
        problem = problems.make(problem, **params)
    elif isinstance(problem, MFGProblem):
        if params:
            raise TypeError(f"problem parameters {sorted(params)} cannot be combined with an MFGProblem")
    else:
        raise TypeError(f"problem must be a catalogue name or an MFGProblem, got {shown(problem)}")
    options = {"progress": False, "cache": True, **_checked_solve_options(solve_options)}
    try:
        return solve(problem, **options)
    except (TypeError, ValueError, SolverError) as exc:
        if not solve_options:
            raise
        error = next(kind for kind in (SolverError, TypeError, ValueError) if isinstance(exc, kind))
        raise error(f"solving {problem.name} with solve_options={shown(solve_options)}: {exc}") from None


def _checked_solve_options(solve_options: Any) -> dict[str, Any]:
    """``solve_options``: None or a dict of ``mfg_rl.solve``'s keyword arguments."""
    if solve_options is None:
        return {}
    allowed = [name for name in inspect.signature(solve).parameters if name != "problem"]
    if not isinstance(solve_options, dict):
        raise TypeError(f"solve_options must be None or a dict of mfg_rl.solve's arguments "
                        f"({', '.join(allowed)}), got {shown(solve_options)}")
    unknown = [key for key in solve_options if key not in allowed]
    if unknown:
        raise TypeError(f"solve_options has {', '.join(map(shown, unknown))}, not arguments of mfg_rl.solve; "
                        f"allowed: {', '.join(allowed)}")
    return solve_options


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
    check_flag("normalize_actions", normalize_actions)
    return game.max_action if normalize_actions else 1.0


def check_render_mode(render_mode: Any) -> None:
    """None or ``"rgb_array"``, the render modes of the environments."""
    check_optional(check_choice, "render_mode", render_mode, ("rgb_array",))


def checked_actions(action: Any, num_envs: int, ndim: int, device: Any, *, single: bool = False) -> Any:
    """``action`` as a float32 ``(N, d)`` tensor on ``device``; TypeError for entries that are not
    real numbers (None, strings, bools, complex numbers), ValueError for a bad shape or NaN/inf.

    Shapes: ``(N, d)``, or ``(N,)`` when ``d = 1``; with ``single``, one agent's ``(d,)`` (a number
    when ``d = 1``). Finite values beyond float32 are clamped to its range (the env clips them to
    the action box anyway).
    """
    import torch

    shape = (ndim,) if single else (num_envs, ndim)
    if action is None or isinstance(action, (str, bytes, dict)):
        raise TypeError(f"action must be an array of shape {shape} of real numbers, got {shown(action)}")
    check_real_entries("action", action)
    if isinstance(action, torch.Tensor):
        if action.device.type == "meta":
            raise ValueError(f"action must hold values, got a tensor on the meta device of shape "
                             f"{tuple(action.shape)}")
        action = action.detach()
    try:
        if not isinstance(action, (torch.Tensor, np.ndarray)) or (isinstance(action, np.ndarray)
                                                                  and action.dtype.kind == "O"):
            action = np.asarray(action, dtype=np.float64)
        tensor = torch.as_tensor(action, device=device)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"action must be an array of shape {shape} of finite real numbers: {exc}") from None
    if tensor.dtype != torch.float32:
        tensor = tensor.to(torch.float64)
    if ndim == 1 and tuple(tensor.shape) == shape[:-1]:
        tensor = tensor.reshape(shape)
    if tuple(tensor.shape) != shape:
        raise ValueError(f"action must have shape {shape}, got {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("action must be finite (got NaN or inf)")
    if tensor.dtype != torch.float32:
        limit = float(torch.finfo(torch.float32).max)
        tensor = tensor.clamp(-limit, limit).to(torch.float32)
    return tensor.reshape(num_envs, ndim)
