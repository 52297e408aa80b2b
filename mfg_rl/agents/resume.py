"""Resuming a run: read a ``train`` checkpoint safely and refuse to continue it as another run.

A checkpoint records what its run was (``RunSettings``: env id, problem parameters, algorithm,
regime, agents per process, network widths). Resuming it with other settings would continue a
different run from its state: a2c weights relabelled as ppo, the agents of one game stepped in
another (or an ``IndexError`` on another grid). ``check_resume`` names every difference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mfg_rl.agents.config import hyperparameters

RUN_FIELDS = {"env_id", "algo", "regime", "num_envs", "seed", "iterations", "env_kwargs", "spaces"}
"""Hyperparameters of ``ActorCriticModule`` that say what the run is, not how it learns."""


@dataclass(frozen=True)
class RunSettings:
    """What makes a run that run: resuming needs every field equal."""

    env_id: str
    env_kwargs: dict[str, Any]
    algo: str
    regime: str
    num_envs: int
    hidden: tuple[int, ...]


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The dictionary of a ``train`` checkpoint, loaded with ``weights_only`` (nothing in it runs code).

    Raises ``FileNotFoundError`` when there is no file, ``ValueError`` naming the file when it is
    not a readable torch file or not written by ``mfg_rl.agents.train``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (a directory)" if path.is_dir() else ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's warnings about pickle protocols of foreign files
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure to read means: not a checkpoint
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}); pass the .ckpt "
                         "file written by mfg-rl train (runs/<env>-<algo>-<regime>/version_<k>/checkpoints/"
                         "last.ckpt)") from None
    hp = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not isinstance(hp, dict) or "mfg_rl" not in state or not {"env_id", "algo"} <= set(hp):
        raise ValueError(f"{path} is a torch file but not an mfg_rl.agents checkpoint (no run state); pass "
                         "the .ckpt file written by mfg-rl train")
    return state


def recorded_settings(state: dict[str, Any]) -> RunSettings:
    """The ``RunSettings`` a checkpoint (``read_checkpoint``'s dictionary) was written with."""
    hp = state["hyper_parameters"]
    overrides = {k: v for k, v in hp.items() if k not in RUN_FIELDS}
    return RunSettings(env_id=hp["env_id"], env_kwargs=dict(hp.get("env_kwargs") or {}), algo=hp["algo"],
                       regime=hp.get("regime", "best-response"), num_envs=int(hp["num_envs"]),
                       hidden=tuple(hyperparameters(hp["algo"], overrides).hidden))


def differences(recorded: RunSettings, asked: RunSettings) -> dict[str, tuple[Any, Any]]:
    """``field -> (recorded, asked)`` for every field of ``RunSettings`` that differs."""
    return {f.name: (getattr(recorded, f.name), getattr(asked, f.name)) for f in fields(RunSettings)
            if getattr(recorded, f.name) != getattr(asked, f.name)}


def check_resume(checkpoint: str | Path, asked: RunSettings) -> None:
    """``ValueError`` naming each setting in which ``checkpoint``'s run differs from ``asked``.

    Example:
        >>> check_resume("runs/LQ1D-v0-a2c-best-response/version_0/checkpoints/last.ckpt",
        ...              RunSettings("mfg_rl/LQ1D-v0", {}, "ppo", "best-response", 128, (64, 64)))
        ... # doctest: +SKIP
        ValueError: cannot resume ...: it was trained with algo='a2c' (asked 'ppo'); ...
    """
    diff = differences(recorded_settings(read_checkpoint(checkpoint)), asked)
    if diff:
        said = "; ".join(f"{name}={old!r} (asked {new!r})" for name, (old, new) in diff.items())
        raise ValueError(f"cannot resume {checkpoint}: it was trained with {said}; resume it with its own "
                         "settings, or start a new run without a checkpoint")
