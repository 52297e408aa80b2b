"""The ``mfg-rl`` command, run in-process through ``main`` and as ``python -m mfg_rl``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mfg_rl import __version__
from mfg_rl.cli import main


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MFG_RL_BACKEND"} | env
    return subprocess.run(
        [sys.executable, "-m", "mfg_rl", *args],
        capture_output=True, text=True, timeout=300, env=environ, check=False,
    )


def test_version_subprocess() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mfg-rl {__version__}"


def test_version_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mfg-rl {__version__}"


def check_backends_table(out: str) -> None:
    lines = out.splitlines()
    assert lines[0].split() == ["backend", "devices", "default", "device", "dtype"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert set(rows) == {"torch", "jax", "numpy"}
    assert rows["torch"][1].startswith("cpu") and rows["torch"][-1] == "float64"
    assert rows["numpy"] == ["numpy", "cpu", "cpu", "float64"]
    assert rows["jax"][-1] == "float64"


def test_backends_subprocess() -> None:
    result = run("backends")
    assert result.returncode == 0, result.stderr
    check_backends_table(result.stdout)
    assert "create_backend() picks backend torch" in result.stdout
    assert "best installed (torch > jax > numpy)" in result.stdout


def test_backends_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MFG_RL_BACKEND", raising=False)
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    check_backends_table(out)
    assert "picks backend torch" in out and "best installed" in out


def test_backends_reports_environment_choice() -> None:
    result = run("backends", MFG_RL_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert "picks backend numpy on cpu (float64): set by MFG_RL_BACKEND" in result.stdout


def test_backends_bad_environment_fails_and_says_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "cupy")
    assert main(["backends"]) == 1
    assert "'cupy'" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "backends" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert run("no-such-command").returncode == 2
