"""Checks of the ``mfg-rl`` command line before any work starts, each failing with one line and the fix.

A check raises ``UsageError`` (``mfg-rl`` prints it on stderr and exits with 2): an env id or
problem name with the nearest valid one, a torch device that does not exist here, a path that
cannot be written, a file that is not a ``train`` checkpoint, a resume that would mix two runs.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A command-line argument that cannot be used as given; the message says the fix."""


# -- problems and environments ---------------------------------------------------------------


def env_of_problem() -> dict[str, str]:
    """Catalogue problem -> its registered env id (problems without one are absent)."""
    from mfg_rl.envs.registration import ENVIRONMENTS, NAMESPACE

    return {problem: f"{NAMESPACE}/{name}" for name, problem in ENVIRONMENTS.items()}


def _nearest(text: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``text`` (case-insensitive, ``difflib``), or None."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(text.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def env_id(text: str) -> str:
    """The registered env id meant by ``text``: an env id (with or without ``mfg_rl/``) or a
    catalogue problem that has an env; else ``UsageError`` naming the nearest valid one."""
    from mfg_rl import problems
    from mfg_rl.envs.registration import NAMESPACE, env_ids

    ids = env_ids()
    by_problem = env_of_problem()
    if text in ids:
        return text
    if f"{NAMESPACE}/{text}" in ids:
        return f"{NAMESPACE}/{text}"
    if text in by_problem:
        return by_problem[text]
    if text in problems.names():
        raise UsageError(f"problem {text!r} has no environment (only `mfg-rl solve {text}`); train takes "
                         f"one of {', '.join(ids)} or its problem ({', '.join(sorted(by_problem))})")
    bare = {i.split("/", 1)[1]: i for i in ids}
    guess = _nearest(text, [*ids, *bare, *by_problem])
    if guess is None:
        raise UsageError(f"unknown environment {text!r}; use one of {', '.join(ids)} (or its problem name; "
                         "`mfg-rl list` shows both)")
    meant = bare.get(guess) or by_problem.get(guess) or guess
    raise UsageError(f"unknown environment {text!r}; did you mean {meant}? (`mfg-rl list` shows every id)")


def problem_name(text: str) -> str:
    """The catalogue problem meant by ``text`` (a problem name or an env id); else ``UsageError``
    naming the nearest problem."""
    from mfg_rl import problems
    from mfg_rl.envs.registration import NAMESPACE

    names = problems.names()
    if text in names:
        return text
    by_env = {env: problem for problem, env in env_of_problem().items()}
    for key in (text, f"{NAMESPACE}/{text}"):
        if key in by_env:
            return by_env[key]
    guess = _nearest(text, [*names, *by_env])
    hint = f"did you mean {by_env.get(guess, guess)}?" if guess else f"use one of {', '.join(names)}"
    raise UsageError(f"unknown problem {text!r}; {hint} (`mfg-rl list` shows every problem)")


# -- devices, paths, checkpoints ---------------------------------------------------------------


def device(text: str | None, option: str = "--device") -> str | None:
    """``text`` when it names a torch device present on this machine (None: the best one)."""
    if text is None:
        return None
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        hint = f" (a GPU is {option} cuda)" if "gpu" in text.lower() else ""
        raise UsageError(f"{option} {text!r} is not a torch device{hint}; use cpu, cuda, cuda:N or "
                         "mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise UsageError(f"{option} {text}: CUDA is not available here (torch {torch.__version__}, "
                             f"{built}); use {option} cpu, or leave {option} out to pick the best device")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"{option} {text}: this machine has {count} CUDA device(s), cuda:0 to "
                             f"cuda:{count - 1}; pick one of them")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{option} mps: Apple's MPS is not available here; use {option} cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{option} {text}: mfg-rl runs on cpu, cuda or mps, not {dev.type}")
    return text


def writable_file(path: str | None, option: str) -> str | None:
    """``path`` when a file can be written there (its folder is created if missing); None passes."""
    if path is None:
        return None
    target = Path(path)
    if path.endswith(("/", os.sep)) or target.is_dir():
        raise UsageError(f"{option} takes a file name, got the folder {path}; e.g. {option} "
                         f"{target / ('equilibrium' + _suffix(option))}")
    _writable_folder(target.parent, option, f"{option} {path}")
    return path


def writable_folder(path: str, option: str) -> str:
    """``path`` when it is (or can be made) a folder this process can write in."""
    _writable_folder(Path(path), option, f"{option} {path}")
    return path


def _writable_folder(folder: Path, option: str, said: str) -> None:
    """Create ``folder`` if missing and write a temporary file in it (permissions alone do not
    tell: root passes ``os.access`` on read-only file systems such as ``/proc``)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{said}: cannot write in {folder} ({reason}); choose a writable path for "
                         f"{option}") from None


def _suffix(option: str) -> str:
    return ".png" if option == "--plot" else ".npz"


def checkpoint(path: str, option: str | None = None) -> dict[str, Any]:
    """The checkpoint at ``path`` (``agents.resume.read_checkpoint``); a missing or unreadable file
    is a ``UsageError`` that says which file to pass."""
    from mfg_rl.agents.resume import read_checkpoint

    try:
        return read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc) if option is None else f"{option}: {exc}") from None


def resume(path: str, asked: Any, command: str) -> None:
    """``UsageError`` when the checkpoint at ``path`` is another run than ``asked``
    (``agents.resume.RunSettings``): it names each difference and the command that resumes it."""
    from mfg_rl.agents.resume import differences, recorded_settings

    recorded = recorded_settings(checkpoint(path, "--ckpt-path"))
    diff = differences(recorded, asked)
    if not diff:
        return
    said = "; ".join(f"{_flag(name)} {_shown(name, old)} (asked {_shown(name, new)})"
                     for name, (old, new) in diff.items())
    params = " ".join(f"-p {k}={v}" for k, v in recorded.env_kwargs.items())
    hidden = "" if "hidden" not in diff else f" --hparam hidden={','.join(map(str, recorded.hidden))}"
    again = (f"mfg-rl {command} {recorded.env_id} --algo {recorded.algo} --regime {recorded.regime} "
             f"--num-envs {recorded.num_envs} {params}{hidden} --ckpt-path {path}").replace("  ", " ")
    raise UsageError(f"--ckpt-path {path} is another run: it was trained with {said}; resume it with "
                     f"`{again}`, or leave out --ckpt-path to start a new run")


def _flag(name: str) -> str:
    return {"env_id": "env", "env_kwargs": "problem parameters", "num_envs": "--num-envs",
            "hidden": "hidden"}.get(name, f"--{name}")


def _shown(name: str, value: Any) -> str:
    if name == "env_kwargs":
        return " ".join(f"{k}={v}" for k, v in value.items()) or "(defaults)"
    if name == "hidden":
        return ",".join(map(str, value))
    return str(value)
