"""Where mfg_rl keeps files on disk and how it writes them (a bottom module; any layer imports it)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("mfg_rl")

STALE_TEMP_AGE = 3600.0
"""Seconds after which a temporary file of ``atomic_write`` counts as left by a killed process."""


def default_cache_dir() -> Path:
    """``$MFG_RL_CACHE`` or ``~/.cache/mfg_rl``: solved equilibria, compiled kernels."""
    return Path(os.environ.get("MFG_RL_CACHE", Path.home() / ".cache" / "mfg_rl"))


def checked_path(name: str, value: object) -> Path:
    """``value`` as a ``Path``: a non-empty ``str`` or ``os.PathLike`` without NUL characters, else a
    TypeError/ValueError naming ``name``."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {value!r:.60}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text or "\0" in text:
        raise ValueError(f"{name} must be a non-empty file path without NUL characters, got {value!r:.60}")
    return Path(text)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` all or nothing: ``write(file)`` fills ``<name>.<random>.tmp`` beside it,
    which is fsynced and renamed over ``path``; the directory is fsynced where the OS allows.

    The file gets mode ``0o666 & ~umask`` (the kernel applies the umask when it creates the
    temporary file); the temporary file is removed on any failure. Returns the path.
    """
    path = checked_path("path", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return path


def remove_stale_temps(directory: str | os.PathLike, pattern: str, max_age: float = STALE_TEMP_AGE) -> None:
    """Delete the files matching ``pattern`` in ``directory`` last modified over ``max_age``
    seconds ago: temporary files of writers that were killed before their rename."""
    cutoff = time.time() - max_age
    for tmp in Path(directory).glob(pattern):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                log.info("removed stale temporary file %s", tmp)
        except OSError:  # removed by another process meanwhile, or not ours to remove
            continue


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; skipped where directories cannot be opened or
    synced (Windows, some network file systems)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
