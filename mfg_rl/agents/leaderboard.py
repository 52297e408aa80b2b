"""The leaderboard: algorithms x envs x seeds, each run under a stated budget in its own process.

``leaderboard(algos, envs, seeds=4, out="leaderboard")`` trains every combination with
``mfg_rl.agents.train`` (one spawned process per run, ``jobs`` at a time, torch threads 1),
scores the zero-control and best-constant-drift baselines (``mfg_rl.benchmark.baselines``)
and writes into ``out``: ``runs/<key>.json`` per run (a failed run with its error),
``runs.json`` and ``runs.csv`` (every run), ``baselines.json``, ``leaderboard.md`` (the table)
and ``exploitability.png``. A second call with the same ``out`` keeps the runs already finished.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfg_rl.checks import check_int, shown
from mfg_rl.paths import atomic_write, checked_path

BUDGETS: dict[str, dict[str, int]] = {
    "ppo": {"LQ1D-v0": 1_000_000, "CrowdExit1D-v0": 1_000_000, "SantaFeBar-v0": 2_000_000,
            "BeachBar1D-v0": 2_000_000, "Crowd2D-v0": 500_000},
    "a2c": {"LQ1D-v0": 5_000_000, "CrowdExit1D-v0": 4_000_000, "SantaFeBar-v0": 5_000_000,
            "BeachBar1D-v0": 5_000_000, "Crowd2D-v0": 1_000_000},
    "sac": {"LQ1D-v0": 40_000, "CrowdExit1D-v0": 60_000, "SantaFeBar-v0": 60_000,
            "BeachBar1D-v0": 80_000, "Crowd2D-v0": 80_000},
    "dafp": {"LQ1D-v0": 400_000, "CrowdExit1D-v0": 400_000, "SantaFeBar-v0": 750_000,
             "BeachBar1D-v0": 750_000, "Crowd2D-v0": 200_000},
    "omd": {"LQ1D-v0": 500_000, "CrowdExit1D-v0": 3_000_000, "SantaFeBar-v0": 2_000_000,
            "BeachBar1D-v0": 2_000_000, "Crowd2D-v0": 1_500_000},
    "dafp-q": {"LQ1D-v0": 500_000, "CrowdExit1D-v0": 1_000_000, "SantaFeBar-v0": 1_000_000,
               "BeachBar1D-v0": 1_000_000, "Crowd2D-v0": 500_000},
    "fp-q": {"LQ1D-v0": 500_000, "CrowdExit1D-v0": 1_000_000, "SantaFeBar-v0": 1_000_000,
             "BeachBar1D-v0": 1_000_000, "Crowd2D-v0": 1_000_000},
}
"""Env steps per run (algo -> env name): about 1.5-2 minutes each on a 2-core CPU with one torch
thread and 128 agents at the default grids, from measured throughput (steps/s, evaluations
included): PPO 13k (LQ1D), 11k (CrowdExit1D), 23k (SantaFeBar, BeachBar1D), 5.6k (Crowd2D);
A2C 49-72k in 1D, 11k in 2D; SAC 350-800 (bound by its 32 updates per step); D-AFP about 3-4k in
1D (PPO best responses plus its evaluations and regression, LQ1D 377k steps in 93-122 s, SantaFeBar
755k in 156-174 s); OMD about 8-16k in 1D (LQ1D 256k in 28 s, SantaFeBar 1M in 62 s). The board of
2026-12-05 measured the CPU seconds of a run (median of 4 seeds): D-AFP 26-42 s in 1D, 27 s on Crowd2D;
OMD 37-70 s in 1D, 44 s on Crowd2D. OMD was still improving at the end of those budgets
(CrowdExit1D-v0 seed 0: 0.32 -> 0.088 over the last 500k of 3M steps), so it now runs 2-3M steps in
1D (3-6 minutes). On Crowd2D an OMD iteration (6,400 env steps) costs about 1.8 CPU s (400 updates,
the crowd of the last iterate) and a score of the mean of 10 iterates 2.8 s more, so OMD scores every
``eval_every = 5`` iterations: 1.5M steps took 444-464 CPU s on the board of 2026-12-05 (922-1040 s
when it scored every iteration). D-AFP-Q (``dafp-q``) runs an OMD iteration plus an outer iteration
(samples, 600 supervised steps, two scores) per crowd: LQ1D 500k best-response steps in 124-133 CPU s."""
DEFAULT_SEEDS = 4
MAX_SEEDS = 1_000


def algorithms() -> tuple[str, ...]:
    """The algorithms ``train`` knows, read from the registry (``mfg_rl.agents.algorithms``) at call time."""
    from mfg_rl.agents.algorithms import names

    return names()


def budget(algo: str, env_id: str) -> int:
    """``BUDGETS[algo][env name]``; for an algorithm or env missing there, what ``train(steps=None)``
    runs (the registry's ``default_steps``, else ``training.DEFAULT_STEPS``): add its row once measured."""
    from mfg_rl.agents.training import default_budget

    return BUDGETS.get(algo, {}).get(env_id.split("/")[-1]) or default_budget(algo, env_id)


@dataclass(frozen=True)
class RunSpec:
    """One run of the leaderboard: what ``train`` is called with."""

    algo: str
    env_id: str
    seed: int
    steps: int
    regime: str = "best-response"
    num_envs: int = 128
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """File name of the run, e.g. ``LQ1D-v0-ppo-seed0``."""
        return f"{self.env_id.split('/')[-1]}-{self.algo}-seed{self.seed}"


@dataclass
class Leaderboard:
    """What ``leaderboard`` produced: every run's record, the baselines per env, the table."""

    records: list[dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    table: str
    out: Path
    ran: int


def plan(
    algos: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    steps: int | None = None,
    *,
    num_envs: int = 128,
    env_kwargs: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[RunSpec]:
    """The runs of a leaderboard, checked before any work (``ValueError``/``TypeError`` naming the input).

    Args:
        algos: names from ``mfg_rl.agents.config.ALGORITHMS`` (default: all).
        envs: full env ids (default: every registered id).
        seeds: seeds ``0 .. seeds-1`` per (algo, env), in ``[1, MAX_SEEDS]``.
        steps: env steps of every run (default: ``budget(algo, env)``).
        num_envs, env_kwargs, overrides: passed to every ``train`` call (hyperparameter
            overrides an algorithm does not know make its runs fail, recorded as failed).

    Each algorithm learns in the first of its registered regimes (``best-response`` for PPO, A2C, SAC).
    """
    from mfg_rl.agents.algorithms import get
    from mfg_rl.envs.registration import env_ids

    algos = _selection("algos", algos, algorithms())
    envs = _selection("envs", envs, tuple(env_ids()))
    for name, value in (("env_kwargs", env_kwargs), ("overrides", overrides)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict or None, got {shown(value)}")
    seeds = check_int("seeds", seeds, 1, MAX_SEEDS)
    if steps is not None:
        steps = check_int("steps", steps, 1)
    num_envs = check_int("num_envs", num_envs, 1)
    return [RunSpec(algo, env, seed, steps or budget(algo, env), get(algo).regimes[0], num_envs,
                    dict(env_kwargs or {}), dict(overrides or {}))
            for env in envs for algo in algos for seed in range(seeds)]


def _selection(name: str, chosen: Sequence[str] | None, known: tuple[str, ...]) -> list[str]:
    """``chosen`` (default: all ``known``) as a list, else an error naming ``name`` and the choices."""
    if chosen is None:
        return list(known)
    if isinstance(chosen, str) or not isinstance(chosen, (list, tuple)):
        raise TypeError(f"{name} must be a list of names from {', '.join(known)}, got {shown(chosen)}")
    if not chosen or any(not isinstance(c, str) or c not in known for c in chosen):
        raise ValueError(f"{name} must be a non-empty selection of {', '.join(known)}; got {shown(chosen)}")
    return list(chosen)


def leaderboard(
    algos: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    seeds: int = DEFAULT_SEEDS,
    steps: int | None = None,
    *,
    jobs: int = 1,
    out: str | Path = "leaderboard",
    num_envs: int = 128,
    env_kwargs: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str | None = "cpu",
    progress: Callable[[str], None] | None = print,
) -> Leaderboard:
    """Run (or resume) the leaderboard and write its table, records and figure into ``out``.

    Final exploitability ``E = E_m0[J_pi(0) - u_br(0)]`` of each run (``train``'s ``after``), its
    history ``(env_steps, E)`` from the run's TensorBoard events (``benchmark/exploitability``),
    and per (env, algo) the median and range over seeds and ``median / min(E_zero, E_const)``.

    Args:
        algos, envs, seeds, steps, num_envs, env_kwargs, overrides: see ``plan``.
        jobs: runs at once, each its own spawned process (``>= 1``).
        out: output folder; a run finished there with the same settings is kept, not redone
            (a failed one is tried again).
        device: torch device of every run (``None``: ``train``'s default, CUDA when present).
        progress: called with one line per finished run (``None``: silent).

    Example:
        >>> board = leaderboard(["ppo"], ["mfg_rl/LQ1D-v0"], seeds=2, steps=3_000, num_envs=32,
        ...                     env_kwargs={"Nx": 51, "Nt": 10}, out=tmp)   # doctest: +SKIP
        >>> print(board.table)                                                # doctest: +SKIP
    """
    from mfg_rl.agents.leaderboard_report import write_report

    specs = plan(algos, envs, seeds, steps, num_envs=num_envs, env_kwargs=env_kwargs, overrides=overrides)
    jobs = check_int("jobs", jobs, 1)
    out = checked_path("out", out)
    say = progress or (lambda line: None)
    base = _baselines(sorted({s.env_id for s in specs}), specs[0].env_kwargs, out, say)
    done = {s.key: r for s in specs if (r := _finished(out, s)) is not None}
    todo = [s for s in specs if s.key not in done]
    say(f"leaderboard: {len(specs)} runs, {len(done)} already done in {out}, {len(todo)} to run "
        f"({jobs} at a time)")
    records = {**done, **_execute(todo, out, jobs, device, say)}
    ordered = [records[s.key] for s in specs]
    table = write_report(ordered, base, out)
    return Leaderboard(records=ordered, baselines=base, table=table, out=out, ran=len(todo))


def _finished(out: Path, spec: RunSpec) -> dict[str, Any] | None:
    """The stored record of ``spec`` when it completed with the same settings, else None."""
    path = out / "runs" / f"{spec.key}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    wanted = json.loads(json.dumps(asdict(spec)))  # as stored: tuples become lists
    same = all(record.get(k) == v for k, v in wanted.items())
    return record if same and record.get("status") == "ok" else None


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=1).encode()))


def _baselines(env_ids: list[str], env_kwargs: dict[str, Any], out: Path,
               say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Zero-control and best-constant baselines per env (kept in ``baselines.json`` across calls)."""
    import gymnasium

    import mfg_rl  # noqa: F401  (registers the ids)
    from mfg_rl.benchmark.baselines import baselines

    path = out / "baselines.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    for env_id in env_ids:
        if stored.get(env_id, {}).get("env_kwargs") == env_kwargs:
            continue
        start = time.perf_counter()
        env = gymnasium.make_vec(env_id, num_envs=1, device="cpu", **env_kwargs)
        game = env.unwrapped.game
        found = baselines(game.eq, game.max_action)
        env.close()
        stored[env_id] = {**found.as_dict(), "env_kwargs": env_kwargs, "max_action": game.max_action}
        say(f"baselines {env_id}: zero control {found.zero:.4g}, best constant drift "
            f"{[round(c, 4) for c in found.constant]} {found.constant_exploitability:.4g} "
            f"({found.evaluations} policies, {time.perf_counter() - start:.1f} s)")
        _write_json(path, stored)
    return {env_id: stored[env_id] for env_id in env_ids}


def _execute(specs: list[RunSpec], out: Path, jobs: int, device: str | None,
             say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Run ``specs``, ``jobs`` at a time, each in a fresh spawned process; every record is saved."""
    context = multiprocessing.get_context("spawn")
    lock, finished = threading.Lock(), []

    def one(spec: RunSpec) -> dict[str, Any]:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                record = pool.submit(run_one, spec, str(out), device).result()
            except BrokenProcessPool as exc:
                record = {**asdict(spec), "status": "failed", "error": f"the run's process died: {exc}"}
        _write_json(out / "runs" / f"{spec.key}.json", record)
        with lock:
            finished.append(spec.key)
            say(f"[{len(finished)}/{len(specs)}] {_progress_line(record)}")
        return record

    with ThreadPoolExecutor(max_workers=jobs) as threads:
        return {s.key: r for s, r in zip(specs, threads.map(one, specs), strict=True)}


def _progress_line(record: dict[str, Any]) -> str:
    head = f"{record['algo']} {record['env_id']} seed {record['seed']}"
    if record["status"] != "ok":
        return f"{head}: FAILED: {record['error']}"
    return (f"{head}: exploitability {record['initial_exploitability']:.4g} -> "
            f"{record['exploitability']:.4g} in {record['env_steps']:,} env steps, {record['seconds']:.1f} s "
            f"({record['cpu_seconds']:.1f} s CPU)")


def run_one(spec: RunSpec, out: str, device: str | None = "cpu") -> dict[str, Any]:
    """Train ``spec`` (in the calling process, torch threads 1) and return its record.

    The record holds the spec, ``status`` (``"ok"``/``"failed"`` with ``error``), the initial and
    final exploitability, env steps, ``seconds`` (wall time of the whole run), ``cpu_seconds`` (its
    CPU time: the wall time it would take on an idle core, whatever else shares the machine) and ``history``:
    ``[[env_steps, exploitability], ...]`` from the run's TensorBoard events.
    """
    import torch

    from mfg_rl.agents.training import train

    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    record: dict[str, Any] = asdict(spec)
    try:
        result = train(spec.env_id, algo=spec.algo, regime=spec.regime, steps=spec.steps,
                       num_envs=spec.num_envs, seed=spec.seed, device=device, progress=False,
                       logdir=Path(out) / "tensorboard" / f"seed{spec.seed}", env_kwargs=spec.env_kwargs,
                       **spec.overrides)
        final = result.after["exploitability"]
        if not math.isfinite(final):
            raise ValueError(f"final exploitability is {final}")
        record.update(status="ok", exploitability=final,
                      initial_exploitability=result.before["exploitability"], env_steps=result.env_steps,
                      fit_seconds=result.seconds, logdir=str(result.logdir),
                      history=exploitability_history(result.logdir))
    except Exception as exc:  # noqa: BLE001  (a failed run is a result: recorded, not raised)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=-4))
    record.update(seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu)
    return record


def exploitability_history(logdir: str | Path) -> list[list[float]]:
    """``[[env_steps, exploitability], ...]`` logged under ``benchmark/exploitability`` in ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    if "benchmark/exploitability" not in events.Tags()["scalars"]:
        return []
    return [[int(e.step), float(e.value)] for e in events.Scalars("benchmark/exploitability")]
