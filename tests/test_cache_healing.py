"""Equilibrium files that heal: checked loads, corrupt cache entries moved aside and recomputed,
durable atomic saves, stale temporary files cleaned, the umask respected."""

from __future__ import annotations

import io
import os
import pickle
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from mfg_rl import Equilibrium, create_backend, problems, solve
from mfg_rl.errors import EquilibriumFileError
from mfg_rl.paths import STALE_TEMP_AGE

pytestmark = pytest.mark.usefixtures("isolated_cache")

TINY = {"Nx": 11, "Nt": 5}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Equilibrium, bytes, str]:
    """A clean solve of the tiny problem, the bytes of its cache file and the file's name."""
    directory = tmp_path_factory.mktemp("clean")
    eq = solve(problems.make("lq-1d", **TINY), backend="numpy", progress=False, cache=directory)
    (file,) = directory.glob("*.npz")
    return eq, file.read_bytes(), file.name


def _rewritten(**changes: np.ndarray | None) -> Callable[[bytes], bytes]:
    """A corruption that rewrites a valid file with some arrays replaced (None drops one)."""

    def corrupt(good: bytes) -> bytes:
        with np.load(io.BytesIO(good)) as data:
            arrays = {key: data[key] for key in data.files}
        for key, change in changes.items():
            arrays.pop(key) if change is None else arrays.update({key: change(arrays[key])})
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    return corrupt


def _negative(m: np.ndarray) -> np.ndarray:
    m = m.copy()
    m[2, 3] = -1.0
    return m


CORRUPTIONS = {
    "garbage": (lambda good: b"not an equilibrium\n" * 20, "is not an .npz"),
    "truncated": (lambda good: good[: len(good) // 2], "is damaged"),
    "empty": (lambda good: b"", "is empty"),
    "nan": (_rewritten(m=lambda m: np.full_like(m, np.nan)), "m has 66 non-finite values"),
    "negative": (_rewritten(m=_negative), "m has negative densities"),
    "missing-array": (_rewritten(m=None), "lacks the array"),
    "shape": (_rewritten(u=lambda u: u[:, :-1]), r"u has shape \(6, 10\), expected \(6, 11\)"),
    "pickled": (_rewritten(m=lambda m: np.array([{"x": 1}], dtype=object)), "Object arrays"),
    "mass": (_rewritten(m=lambda m: 1.01 * m), "m has mass 1.01"),
    "metadata": (_rewritten(meta=lambda meta: np.array("{}")), "unsupported equilibrium file format"),
}


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_load_rejects_a_corrupt_file_naming_it(clean, tmp_path: Path, kind: str) -> None:
    corrupt, reason = CORRUPTIONS[kind]
    file = tmp_path / "eq.npz"
    file.write_bytes(corrupt(clean[1]))
    with pytest.raises(EquilibriumFileError, match=reason) as info:
        Equilibrium.load(file, backend="numpy")
    assert str(file) in str(info.value) and info.value.path == file
    assert isinstance(info.value, ValueError)


def test_load_allows_round_off_below_zero_and_the_error_pickles(clean, tmp_path: Path) -> None:
    """``m`` down to ``-sqrt(eps) max m`` is round-off, not corruption."""
    file = tmp_path / "eq.npz"
    file.write_bytes(_rewritten(m=lambda m: np.where(m < 1e-20, -1e-12 * m.max(), m))(clean[1]))
    assert Equilibrium.load(file, backend="numpy").m.numpy().min() < 0
    error = EquilibriumFileError(file, "is empty (0 bytes)")
    assert str(pickle.loads(pickle.dumps(error))) == str(error) == f"{file}: is empty (0 bytes)"


def test_load_accepts_a_float32_solve(tmp_path: Path) -> None:
    """Masses of a float32 solve are compared with float32 round-off."""
    backend = create_backend("numpy", dtype="float32")
    solve(problems.make("lq-1d", **TINY), backend=backend, tol=1e-5, progress=False, cache=tmp_path)
    (file,) = tmp_path.glob("*.npz")
    assert Equilibrium.load(file, backend="numpy").diagnostics.dtype == "float32"


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_solve_moves_a_corrupt_cache_entry_aside_and_recomputes(clean, tmp_path: Path, kind: str) -> None:
    eq, good, name = clean
    problem = problems.make("lq-1d", **TINY)
    (tmp_path / name).write_bytes(CORRUPTIONS[kind][0](good))
    with pytest.warns(UserWarning, match=f"{tmp_path / name}.*moved to {name}.corrupt-"):
        healed = solve(problem, backend="numpy", progress=False, cache=tmp_path)
    np.testing.assert_array_equal(healed.u.numpy(), eq.u.numpy())
    np.testing.assert_array_equal(healed.m.numpy(), eq.m.numpy())
    (aside,) = tmp_path.glob(f"{name}.corrupt-*")
    assert aside.read_bytes() == CORRUPTIONS[kind][0](good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = solve(problem, backend="numpy", progress=False, cache=tmp_path)
    np.testing.assert_array_equal(again.m.numpy(), eq.m.numpy())


def test_env_construction_heals_a_corrupt_cache_entry() -> None:
    """``gymnasium.make`` of an id whose cached equilibrium is damaged recomputes it."""
    gymnasium.make("mfg_rl/LQ1D-v0", **TINY).close()
    (file,) = Path(os.environ["MFG_RL_CACHE"]).glob("lq-1d-*.npz")
    file.write_bytes(b"")
    with pytest.warns(UserWarning, match=f"{file}: is empty"):
        env = gymnasium.make("mfg_rl/LQ1D-v0", **TINY)
    env.reset(seed=0)
    env.close()
    assert Equilibrium.load(file).diagnostics.converged


def test_failing_save_leaves_no_temp_file_and_keeps_the_old_file(clean, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    eq, good, name = clean

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        eq.save(tmp_path / "new" / "eq.npz")
    assert list((tmp_path / "new").iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / name).write_bytes(good)
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        eq.save(tmp_path / "old" / name)
    with pytest.raises(OSError, match="disk full"):
        solve(problems.make("lq-1d", **TINY), backend="numpy", progress=False, cache=tmp_path / "cache")
    assert [path.name for path in (tmp_path / "old").iterdir()] == [name]
    assert (tmp_path / "old" / name).read_bytes() == good
    assert list((tmp_path / "cache").iterdir()) == []


def test_save_syncs_the_file_before_the_rename_then_the_directory(clean, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def record_fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def record_replace(src: object, dst: object) -> None:
        events.append("replace")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    clean[0].save(tmp_path / "eq.npz")
    assert events == ["fsync file", "replace", "fsync dir"]


def test_stale_temp_files_are_removed_when_the_cache_is_used(tmp_path: Path) -> None:
    """Temporary files of killed saves older than ``STALE_TEMP_AGE`` go; fresh ones and other
    files stay."""
    old = time.time() - STALE_TEMP_AGE - 60
    stale = [tmp_path / "lq-1d-0123.npz.a1b2c3.tmp", tmp_path / "lq-1d-0123.npzh_y9cko2.tmp"]
    kept = [tmp_path / "lq-1d-4567.npz.d4e5f6.tmp", tmp_path / "notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    for path in stale + kept[1:]:
        os.utime(path, (old, old))
    solve(problems.make("lq-1d", **TINY), backend="numpy", progress=False, cache=tmp_path)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_file_mode_honours_the_umask(clean, tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = clean[0].save(tmp_path / "eq.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
