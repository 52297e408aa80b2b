"""create_backend: the default choice, its overrides, dtypes, and the log line saying why."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from mfg_rl import available_backends, create_backend
from mfg_rl.backends import Backend

INSTALLED = list(available_backends())


@pytest.fixture(autouse=True)
def no_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the automatic choice, whatever the calling shell exports."""
    monkeypatch.delenv("MFG_RL_BACKEND", raising=False)


def test_all_three_backends_are_installed_here() -> None:
    # CI installs mfg-rl[all]; a missing one would silently shrink the backend matrix
    assert INSTALLED == ["torch", "jax", "numpy"]
    assert available_backends()["torch"][0] == "cpu"
    assert available_backends()["numpy"] == ["cpu"]


def test_default_is_torch_float64_on_cpu_without_gpu() -> None:
    backend = create_backend()
    expected = "cuda" if torch.cuda.is_available() else "cpu"  # no MPS on CI machines
    assert backend.name == "torch"
    assert backend.device == expected
    assert backend.dtype is torch.float64
    assert backend.dtype_name == "float64"
    x = backend.asarray([1.0, 2.0])
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
    assert x.device.type == expected


@pytest.mark.parametrize("name", INSTALLED)
def test_environment_variable_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", name)
    backend = create_backend()
    assert backend.name == name
    assert backend.dtype_name == "float64"


def test_environment_variable_is_case_and_space_insensitive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "  NumPy ")
    assert create_backend().name == "numpy"


def test_argument_beats_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "numpy")
    assert create_backend("torch").name == "torch"


def test_empty_environment_variable_means_automatic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "")
    assert create_backend().name == "torch"


@pytest.mark.parametrize("name", ["cupy", "", "torch:cuda", 3])
def test_bad_names_raise_listing_allowed(name: object) -> None:
    with pytest.raises(ValueError, match="torch, jax, numpy") as info:
        create_backend(name)  # type: ignore[arg-type]
    assert repr(name) in str(info.value)


def test_bad_environment_variable_raises_listing_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "cupy")
    with pytest.raises(ValueError, match=r"torch, jax, numpy.*'cupy'"):
        create_backend()


@pytest.mark.parametrize("name", INSTALLED)
@pytest.mark.parametrize("dtype", ["float32", np.float32])
def test_float32_when_asked(name: str, dtype: object) -> None:
    backend = create_backend(name, dtype=dtype)
    assert backend.dtype_name == "float32"
    x = backend.asarray([0.1, 0.2])
    assert backend.is_native(x)
    assert backend.to_numpy(x).dtype == np.float32


def test_float32_torch_dtype() -> None:
    assert create_backend("torch", dtype=torch.float32).dtype is torch.float32


@pytest.mark.parametrize("name", INSTALLED)
@pytest.mark.parametrize("dtype", ["int32", "float16", torch.int64])
def test_other_dtypes_are_refused(name: str, dtype: object) -> None:
    if name != "torch" and isinstance(dtype, torch.dtype):
        dtype = "int64"
    with pytest.raises((ValueError, TypeError), match="float32 or float64"):
        create_backend(name, dtype=dtype)


def test_numpy_backend_refuses_a_device() -> None:
    with pytest.raises(ValueError, match="device"):
        create_backend("numpy", device="cuda")


@pytest.mark.parametrize("name", INSTALLED)
def test_a_backend_instance_passes_through(name: str) -> None:
    backend = create_backend(name, dtype="float32")
    assert isinstance(backend, Backend)
    assert create_backend(backend) is backend
    assert name in repr(backend).lower() and "float32" in repr(backend)


@pytest.mark.parametrize("name", INSTALLED)
def test_round_trip_through_numpy(name: str) -> None:
    backend = create_backend(name)
    values = np.linspace(0.0, 1.0, 7)
    x = backend.asarray(values)
    assert backend.is_native(x) and not (name != "numpy" and backend.is_native(values))
    np.testing.assert_array_equal(backend.to_numpy(x), values)


def test_log_line_says_what_and_why_automatic(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mfg_rl.backends"):
        create_backend()
    (record,) = [r for r in caplog.records if r.name == "mfg_rl.backends"]
    message = record.getMessage()
    assert record.levelno == logging.INFO
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for word in ("torch", device, "float64", "best installed"):
        assert word in message


def test_log_line_says_why_environment(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MFG_RL_BACKEND", "numpy")
    with caplog.at_level(logging.INFO, logger="mfg_rl.backends"):
        create_backend(dtype="float32")
    message = caplog.records[-1].getMessage()
    for word in ("numpy", "cpu", "float32", "MFG_RL_BACKEND"):
        assert word in message


def test_log_line_says_why_argument(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mfg_rl.backends"):
        create_backend("torch")
    message = caplog.records[-1].getMessage()
    assert "torch" in message and "argument" in message


def test_instance_pass_through_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    backend = create_backend("numpy")
    with caplog.at_level(logging.INFO, logger="mfg_rl.backends"):
        create_backend(backend)
    assert not caplog.records
