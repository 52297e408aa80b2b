"""``import mfg_rl`` stays light: no optional heavy library, and fast once torch is loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("lightning", "pytorch_lightning", "tensorboard", "jax", "numba")

PROBE = f"""
import json, sys, time
import torch  # the one heavy dependency mfg_rl needs; its own import time is not ours
start = time.perf_counter()
import mfg_rl
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def probe() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_loads_no_optional_heavy_library() -> None:
    assert probe()["loaded"] == []


def test_import_after_torch_takes_under_a_second() -> None:
    seconds = min(probe()["seconds"] for _ in range(2))  # the best of two: a cold disk is not us
    assert seconds < 1.0, f"import mfg_rl took {seconds:.2f} s after torch"
