"""The leaderboard (mfg_rl.agents.leaderboard, `mfg-rl leaderboard`): runs, table, resume, failures, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mfg_rl.agents.leaderboard import BUDGETS, algorithms, budget, leaderboard, plan
from mfg_rl.cli import main

LQ = "mfg_rl/LQ1D-v0"
TINY = {"env_kwargs": {"Nx": 51, "Nt": 10}, "num_envs": 32, "steps": 640}  # 2 iterations of 32 x 10 steps


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    out = tmp_path_factory.mktemp("leaderboard")
    lines: list[str] = []
    result = leaderboard(["ppo"], [LQ], seeds=2, out=out, progress=lines.append, **TINY)
    return result, lines


def stored_runs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def test_table_rows_and_medians_come_from_the_runs(board) -> None:
    result, lines = board
    runs = stored_runs(result.out)
    assert [(r["seed"], r["status"]) for r in runs] == [(0, "ok"), (1, "ok")]
    assert result.ran == 2 and sum(line.startswith("[") for line in lines) == 2
    final = [r["exploitability"] for r in runs]
    median = float(np.median(final))
    best = json.loads((result.out / "baselines.json").read_text())[LQ]["best"]
    rows = [line for line in result.table.splitlines() if line.startswith("| LQ1D-v0 |")]
    assert [row.split(" | ")[1] for row in rows][::2] == ["zero control", "ppo"]
    ppo = rows[-1].split(" | ")
    assert ppo[2] == "0,1" and ppo[3] == "640" and ppo[4] == f"{runs[0]['env_steps']:,}"
    assert ppo[5] == f"{median:.3e}" and ppo[6] == f"{min(final):.2e} - {max(final):.2e}"
    assert ppo[7] == f"{median / best:.3g}"
    rebounds = [max(1.0, max(e / min(v for _, v in r["history"][:k]) for k, (_, e) in
                             enumerate(r["history"]) if k)) for r in runs]
    assert ppo[8] == f"{float(np.median(rebounds)):.2g}"
    assert (result.out / "leaderboard.md").read_text().strip() == result.table
    for run in runs:  # history from the TensorBoard events: initial score at step 0, final at the end
        steps, values = np.array(run["history"]).T
        assert steps[0] == 0 and steps[-1] == run["env_steps"] and np.all(np.diff(steps) > 0)
        assert values[0] == pytest.approx(run["initial_exploitability"], rel=1e-6)
        assert values[-1] == pytest.approx(run["exploitability"], rel=1e-6)
    csv_lines = (result.out / "runs.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("algo,env_id,seed")
    assert (result.out / "exploitability.png").stat().st_size > 10_000


@pytest.mark.parametrize("values, expected", [
    ([3.0, 2.0, 1.0, 0.5], 1.0),        # monotone: never above its best so far
    ([3.0, 1.0, 2.5, 0.2, 0.6], 3.0),   # the largest rise is 0.2 -> 0.6
    ([1.0, 4.0, 0.1], 4.0),             # rising from the start counts
    ([0.7], 1.0),
])
def test_rebound_is_the_largest_rise_above_the_best_so_far(values, expected) -> None:
    from mfg_rl.agents.leaderboard_report import rebound

    assert rebound([[10 * k, v] for k, v in enumerate(values)]) == pytest.approx(expected)


def test_second_invocation_resumes_without_rerunning(board) -> None:
    result, _ = board
    before = {p.name: p.stat().st_mtime_ns for p in (result.out / "runs").glob("*.json")}
    lines: list[str] = []
    again = leaderboard(["ppo"], [LQ], seeds=2, out=result.out, progress=lines.append, **TINY)
    assert again.ran == 0 and again.table == result.table
    assert "2 already done" in lines[0] and not any(line.startswith("[") for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in (result.out / "runs").glob("*.json")} == before
    more = plan(["ppo"], [LQ], seeds=3, **TINY)  # one more seed: only it would run
    missing = [s.key for s in more if not (result.out / "runs" / f"{s.key}.json").exists()]
    assert missing == ["LQ1D-v0-ppo-seed2"]


def test_a_failing_run_is_recorded_with_its_error(board, tmp_path) -> None:
    result, _ = board
    (tmp_path / "baselines.json").write_text((result.out / "baselines.json").read_text())
    lines: list[str] = []
    failed = leaderboard(["ppo"], [LQ], seeds=1, out=tmp_path, overrides={"num_minibatches": 0},
                         progress=lines.append, **TINY)
    (record,) = stored_runs(tmp_path)
    assert record["status"] == "failed" and "num_minibatches" in record["error"]
    assert record["overrides"] == {"num_minibatches": 0}
    assert "FAILED" in lines[-1] and "num_minibatches" in lines[-1]
    assert "| ppo | none (1 failed) |" in failed.table and "Failed runs:" in failed.table


def test_cli_prints_the_table_of_a_finished_leaderboard(board, capsys) -> None:
    result, _ = board
    code = main(["leaderboard", "--algos", "ppo", "--envs", "lq-1d", "--seeds", "2", "--steps", "640",
                 "--num-envs", "32", "-p", "Nx=51", "-p", "Nt=10", "--out", str(result.out), "--quiet"])
    assert code == 0
    assert capsys.readouterr().out.startswith(result.table)


@pytest.mark.parametrize(("args", "words"), [
    (["--algos", "ppo,nope"], "algos must be"),
    (["--envs", "LQ1"], "unknown environment"),
    (["--seeds", "0"], "seeds must be"),
    (["--seeds", "two"], "invalid int"),
    (["--steps", "0"], "steps must be"),
    (["--jobs", "0"], "--jobs must be"),
])
def test_cli_rejects_bad_input_before_work(args, words, tmp_path, capsys) -> None:
    out = tmp_path / "never"
    assert main(["leaderboard", *args, "--out", str(out)]) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


def test_budgets_and_algorithms_come_from_the_registry() -> None:
    from mfg_rl.agents.algorithms import names
    from mfg_rl.agents.training import FALLBACK_STEPS

    assert algorithms() == names()
    assert budget("ppo", LQ) == BUDGETS["ppo"]["LQ1D-v0"]
    assert budget("ppo", "mfg_rl/NotInTheTable-v0") == FALLBACK_STEPS  # train's own default
    assert all(budget(a, LQ) >= 1 for a in algorithms())
    specs = plan(None, [LQ], seeds=4)
    assert len(specs) == 4 * len(names()) and {s.seed for s in specs} == {0, 1, 2, 3}
