"""``mfg-rl train`` and ``mfg-rl bench``: the real CLI with a tiny budget, and its TensorBoard logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfg_rl import cli

SCALARS = {
    "charts/episodic_return", "charts/episodic_length", "charts/steps_per_second",
    "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac",
    "losses/explained_variance",
    "benchmark/exploitability", "benchmark/value_gap", "benchmark/density_l1",
}


pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_train_cli_writes_the_scalars_the_table_and_the_report(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code = cli.main(["train", "mfg_rl/LQ1D-v0", "--steps", "960", "--num-envs", "32", "--seed", "1",
                     "--logdir", str(tmp_path), "--device", "cpu", "-p", "Nx=51", "-p", "Nt=10",
                     "--hparam", "update_epochs=2", "--hparam", "eval_every=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    for text in ("exploitability", "value gap", "density l1", "TensorBoard:", "report:", "960 env steps"):
        assert text in out, out
    (run,) = tmp_path.glob("LQ1D-v0-ppo-best-response/version_*")
    assert (run / "report.png").stat().st_size > 10_000
    assert (run / "checkpoints" / "last.ckpt").is_file()

    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert SCALARS <= tags, SCALARS - tags
    assert "report/control_and_density" in events.Tags()["images"]
    steps = [e.step for e in events.Scalars("losses/policy_loss")]
    assert steps == [320, 640, 960]  # against environment steps: one horizon (10) x 32 agents each
    assert [e.step for e in events.Scalars("benchmark/exploitability")] == [0, 640, 960]

    assert cli.main(["bench", str(run / "checkpoints" / "last.ckpt")]) == 0
    bench = capsys.readouterr().out
    assert "exploitability" in bench and "960 env steps" in bench and "initial policy" in bench


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["bench", str(tmp_path / "missing.ckpt")]) == 2  # a usage error: see test_cli_journey
    assert "mfg-rl bench: no checkpoint" in capsys.readouterr().err
    assert cli.main(["train", "mfg_rl/LQ1D-v0", "--steps", "0", "--logdir", str(tmp_path)]) == 1
    assert "steps must be an integer >= 1" in capsys.readouterr().err
    assert cli.main(["train", "mfg_rl/LQ1D-v0", "--hparam", "bogus=1", "--logdir", str(tmp_path)]) == 1
    assert "unknown hyperparameters" in capsys.readouterr().err
