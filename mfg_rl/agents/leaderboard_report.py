"""The leaderboard's outputs from its run records: the table, the CSV/JSON of runs and the figure.

A record is what ``leaderboard.run_one`` returns (a dict: the run's spec, ``status``,
``exploitability``, ``env_steps``, ``seconds``, ``history``); baselines are
``Baselines.as_dict()`` per env id.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.paths import atomic_write

CSV_COLUMNS = ("algo", "env_id", "seed", "steps", "regime", "num_envs", "status", "initial_exploitability",
               "exploitability", "env_steps", "seconds", "cpu_seconds", "fit_seconds", "error", "env_kwargs",
               "overrides", "history")


def rebound(history: list[list[float]]) -> float:
    """How far a run's exploitability rose back: ``max_k E_k / min_{j<k} E_j`` over its history
    ``[(env_steps, E), ...]``, at least 1 (1: it never rose above its best so far).

    Example:
        >>> rebound([[0, 2.0], [10, 0.5], [20, 1.0], [30, 0.4]])
        2.0
    """
    values = np.array([e for _, e in history], dtype=float)
    if len(values) < 2:
        return 1.0
    best_before = np.minimum.accumulate(values)[:-1]
    return float(max(1.0, np.max(values[1:] / best_before)))


def summary_rows(records: list[dict[str, Any]], baselines: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (env, algo), in the order of ``records``: seeds, median and range of the final
    exploitability over the completed seeds, ``ratio = median / min(zero, constant)``, median
    wall and CPU seconds and env steps, the median ``rebound`` of the histories (how monotone
    training was), failed seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["env_id"], record["algo"]), []).append(record)
    rows = []
    for (env_id, algo), runs in groups.items():
        ok = [r for r in runs if r["status"] == "ok"]
        values = np.array([r["exploitability"] for r in ok], dtype=float)
        row: dict[str, Any] = {
            "env_id": env_id, "algo": algo, "budget": runs[0]["steps"],
            "seeds": [r["seed"] for r in ok], "failed": [r["seed"] for r in runs if r["status"] != "ok"],
        }
        if ok:
            median = float(np.median(values))
            row.update(median=median, min=float(values.min()), max=float(values.max()),
                       ratio=median / baselines[env_id]["best"],
                       seconds=float(np.median([r["seconds"] for r in ok])),
                       cpu_seconds=float(np.median([r["cpu_seconds"] for r in ok])),
                       env_steps=int(np.median([r["env_steps"] for r in ok])),
                       rebound=float(np.median([rebound(r["history"]) for r in ok])))
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], baselines: dict[str, dict[str, Any]]) -> str:
    """The table: per env its two baselines, then each algorithm's row (``rebound``: median over
    seeds of how far exploitability rose back above its best so far, ``rebound(history)``)."""
    lines = [
        "| env | algo | seeds | budget (env steps) | env steps | exploitability (median) | min - max "
        "| median / best baseline | rebound (median) | wall s (median) | CPU s (median) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    shown_envs: set[str] = set()
    for row in rows:
        env_id, name = row["env_id"], row["env_id"].split("/")[-1]
        if env_id not in shown_envs:
            shown_envs.add(env_id)
            base = baselines[env_id]
            drift = ", ".join(f"{c:.3g}" for c in base["constant"])
            for label, value in (("zero control", base["zero"]),
                                 (f"best constant drift ({drift})", base["constant_exploitability"])):
                ratio = value / base["best"]
                lines.append(f"| {name} | {label} | - | - | - | {value:.3e} | - | {ratio:.3g} | - | - | - |")
        failed = f" ({len(row['failed'])} failed)" if row["failed"] else ""
        seeds = ",".join(map(str, row["seeds"])) or "none"
        if "median" not in row:
            lines.append(f"| {name} | {row['algo']} | {seeds}{failed} | {row['budget']:,} |{' - |' * 7}")
            continue
        lines.append(
            f"| {name} | {row['algo']} | {seeds}{failed} | {row['budget']:,} | {row['env_steps']:,} "
            f"| {row['median']:.3e} | {row['min']:.2e} - {row['max']:.2e} | {row['ratio']:.3g} "
            f"| {row['rebound']:.2g} | {row['seconds']:.0f} | {row['cpu_seconds']:.0f} |"
        )
    return "\n".join(lines)


def write_report(records: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], out: Path) -> str:
    """Write ``runs.json``, ``runs.csv``, ``leaderboard.md`` and ``exploitability.png`` into ``out``;
    return the markdown (table, then the errors of failed runs)."""
    rows = summary_rows(records, baselines)
    failures = [f"- {r['env_id']} {r['algo']} seed {r['seed']}: {r['error']}"
                for r in records if r["status"] != "ok"]
    text = markdown(rows, baselines)
    if failures:
        text += "\n\nFailed runs:\n" + "\n".join(failures)
    _write_text(out / "leaderboard.md", text + "\n")
    _write_text(out / "runs.json", json.dumps(records, indent=1))
    table = io.StringIO()
    writer = csv.DictWriter(table, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in record.items()})
    _write_text(out / "runs.csv", table.getvalue())
    figure(records, baselines, out / "exploitability.png")
    return text


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def figure(records: list[dict[str, Any]], baselines: dict[str, dict[str, Any]], path: Path) -> Path:
    """Exploitability vs env steps, one panel per env (log y): per algorithm the median over seeds
    with a min-max band (histories interpolated onto the shortest one's steps); baselines dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env_id"] for r in records))
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.6), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for algo in dict.fromkeys(r["algo"] for r in records if r["env_id"] == env_id):
            histories = [np.array(r["history"], dtype=float) for r in records if r["env_id"] == env_id
                         and r["algo"] == algo and r["status"] == "ok" and r["history"]]
            if not histories:
                continue
            steps = min(histories, key=len)[:, 0]
            curves = np.array([np.interp(steps, h[:, 0], h[:, 1]) for h in histories])
            line, = ax.plot(steps, np.median(curves, axis=0), label=f"{algo} ({len(histories)} seeds)")
            ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2)
        base = baselines[env_id]
        ax.axhline(base["zero"], color="gray", linestyle=":", label="zero control")
        ax.axhline(base["constant_exploitability"], color="black", linestyle="--",
                   label="best constant drift")
        ax.set_yscale("log")
        ax.set_title(env_id.split("/")[-1])
        ax.set_xlabel("env steps")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("exploitability")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
