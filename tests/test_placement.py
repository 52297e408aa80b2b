"""Placement of ``solve(backend=None)``: numpy unless this machine's calibration measured a torch
device faster for the solve's kind and size (issue 13 item 3)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mfg_rl import problems, solve
from mfg_rl.solvers.calibration import calibrate, crossover
from mfg_rl.solvers.jax_scan import JaxScan
from mfg_rl.solvers.placement import load_calibration, place, work

LQ = problems.make("lq-1d", Nx=51, Nt=10)  # work 51 x 11 = 561


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MFG_RL_CACHE", str(tmp_path))
    monkeypatch.delenv("MFG_RL_BACKEND", raising=False)
    return tmp_path


def forged(crossovers: dict[str, int | None]) -> dict:
    return {"cpu": {"device": "cpu", "crossover": crossovers, "date": "2026-12-04"}}


def test_work_is_unknowns_times_levels() -> None:
    assert work(LQ) == ("fdm-1d", 561)
    assert work(problems.make("crowd-2d", Nx=8, Ny=6, Nt=4)) == ("fdm-2d", 8 * 6 * 5)
    assert work(LQ, n_particles=1000) == ("particles", 11_000)


def test_without_a_calibration_the_solve_runs_on_numpy_and_says_why(cache: Path) -> None:
    chosen = place(LQ)
    assert (chosen.backend, chosen.device) == ("numpy", None)
    assert "mfg-rl calibrate" in chosen.reason
    eq = solve(LQ, progress=False)
    assert eq.diagnostics.backend == "numpy" and eq.diagnostics.placement == chosen.reason
    assert "placed: numpy" in eq.diagnostics.summary()


def test_a_calibrated_device_takes_the_work_above_its_crossover() -> None:
    assert place(LQ, calibration=forged({"fdm-1d": 562})).backend == "numpy"
    above = place(LQ, calibration=forged({"fdm-1d": 561}))
    assert (above.backend, above.device) == ("torch", "cpu") and "crossover 5.61e+02" in above.reason
    never = place(LQ, calibration=forged({"fdm-1d": None}))
    assert never.backend == "numpy" and "cpu never faster" in never.reason
    other_kind = place(LQ, calibration=forged({"fdm-2d": 1}))
    assert other_kind.backend == "numpy"


def test_solve_follows_the_stored_calibration_and_an_argument_overrides_it(cache: Path) -> None:
    (cache / "placement.json").write_text(json.dumps(forged({"fdm-1d": 100})))
    eq = solve(LQ, progress=False)
    assert (eq.diagnostics.backend, eq.diagnostics.device) == ("torch", "cpu")
    assert eq.diagnostics.placement.startswith("torch on cpu")
    reference = solve(LQ, progress=False, backend="numpy")
    assert reference.diagnostics.placement == "asked for by argument"
    assert abs(eq.u.numpy() - reference.u.numpy()).max() < 1e-9


def test_environment_and_strategy_come_before_the_calibration(cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calibration = forged({"fdm-1d": 1})
    assert place(LQ, JaxScan(), calibration=calibration).backend == "jax"
    monkeypatch.setenv("MFG_RL_BACKEND", "numpy")
    chosen = place(LQ, calibration=calibration)
    assert chosen.backend == "numpy" and "MFG_RL_BACKEND" in chosen.reason


def test_an_unreadable_calibration_is_reported_and_ignored(cache: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    (cache / "placement.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="mfg_rl.solvers"):
        assert load_calibration() == {}
    assert "ignoring" in caplog.text and "mfg-rl calibrate" in caplog.text
    assert place(LQ).backend == "numpy"


@pytest.mark.parametrize(("rows", "expected"), [
    ([(10, 1.0, 2.0), (100, 1.0, 0.5), (1000, 1.0, 0.1)], 100),
    ([(10, 1.0, 0.5), (100, 1.0, 2.0), (1000, 1.0, 0.1)], 1000),  # faster at every larger size only
    ([(10, 1.0, 0.5), (100, 1.0, 0.5)], 10),
    ([(10, 1.0, 0.5), (100, 1.0, 2.0)], None),
])
def test_crossover_is_where_the_device_stays_faster(rows: list, expected: int | None) -> None:
    assert crossover(rows) == expected


def test_calibrate_times_a_ladder_and_stores_it(cache: Path) -> None:
    ladder = {"fdm-1d": [("lq-1d", {"Nx": 21, "Nt": 4}), ("lq-1d", {"Nx": 41, "Nt": 8})],
              "particles": [("lq-1d", {"Nx": 21, "Nt": 4, "n_particles": 200})]}
    lines: list[str] = []
    entries = calibrate(["cpu"], kinds=["fdm-1d", "particles"], ladder=ladder, report=lines.append)
    entry = entries["cpu"]
    assert len(entry["table"]) == len(lines) == 3
    assert set(entry["crossover"]) == {"fdm-1d", "particles"}
    assert entry["crossover"]["fdm-1d"] in (None, 21 * 5, 41 * 9)
    rows = [(r["work"], r["numpy_s"], r["device_s"]) for r in entry["table"] if r["kind"] == "fdm-1d"]
    assert entry["crossover"]["fdm-1d"] == crossover(rows)
    assert load_calibration() == json.loads(json.dumps(entries))


def test_calibrate_refuses_bad_input_before_timing(cache: Path) -> None:
    with pytest.raises(ValueError, match="kinds must be among"):
        calibrate(["cpu"], kinds=["fdm-3d"])
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        calibrate(["cpu"], repeats=0)
    with pytest.raises((ValueError, RuntimeError)):
        calibrate(["nodevice"])
    assert not (cache / "placement.json").exists()


def test_cli_calibrate_refuses_bad_devices_and_kinds(cache: Path, capsys: pytest.CaptureFixture) -> None:
    from mfg_rl import cli

    assert cli.main(["calibrate", "--devices", "gpu0"]) == 2
    assert "--devices 'gpu0' is not a torch device" in capsys.readouterr().err
    assert cli.main(["calibrate", "--devices", "cpu", "--kinds", "fdm-3d"]) == 1
    assert "kinds must be among fdm-1d, fdm-2d, particles" in capsys.readouterr().err
    assert not (cache / "placement.json").exists()


def test_cli_backends_says_how_solves_are_placed(cache: Path, capsys: pytest.CaptureFixture) -> None:
    from mfg_rl import cli

    assert cli.main(["backends"]) == 0
    assert "places a solve by its size: on numpy (no calibration here" in capsys.readouterr().out
    (cache / "placement.json").write_text(json.dumps(forged({"fdm-1d": None, "particles": 2020})))
    assert cli.main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "torch on cpu (2026-12-04): fdm-1d never, particles from work 2.02e+03; numpy below" in out
