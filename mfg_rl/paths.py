"""Where mfg_rl keeps files on disk: one cache directory (a bottom module; any layer imports it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$MFG_RL_CACHE`` or ``~/.cache/mfg_rl``: solved equilibria, compiled kernels."""
    return Path(os.environ.get("MFG_RL_CACHE", Path.home() / ".cache" / "mfg_rl"))
