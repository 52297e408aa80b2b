"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A fresh equilibrium cache for the module (``MFG_RL_CACHE``) and one torch thread."""
    import torch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MFG_RL_CACHE", str(tmp_path_factory.mktemp("cache")))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test reads and writes a cache of its own session (``MFG_RL_CACHE``), never the
    user's: solved equilibria are shared by the session's tests, and a placement calibration
    of this machine (``mfg-rl calibrate``) does not move the tests' solves off numpy."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MFG_RL_CACHE", str(tmp_path_factory.mktemp("session-cache")))
        yield
