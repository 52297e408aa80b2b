"""``train``: the library's main job, PPO / A2C / SAC on an MFG env with TensorBoard logs and checkpoints."""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfg_rl.agents.algorithms import get as get_algorithm
from mfg_rl.agents.config import hyperparameters
from mfg_rl.agents.regimes import check_regime
from mfg_rl.agents.resume import RunSettings, check_resume

DEFAULT_STEPS = {"mfg_rl/LQ1D-v0": 1_000_000, "mfg_rl/CrowdExit1D-v0": 1_500_000}
"""Default budgets (env steps): about two minutes on a 2-core laptop CPU."""
FALLBACK_STEPS = 1_000_000
SCORES = ("exploitability", "value_gap", "density_l1")


def default_budget(algo: str, env_id: str) -> int:
    """The env steps of ``train(steps=None)``: the algorithm's ``default_steps``, else
    ``DEFAULT_STEPS[env_id]``, else ``FALLBACK_STEPS``."""
    return get_algorithm(algo).default_steps or DEFAULT_STEPS.get(env_id, FALLBACK_STEPS)


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        policy: the learned deterministic control, ``policy(t, x) -> alpha`` (benchmark convention).
        model: the ``ActorCritic`` network (with its observation normaliser).
        before, after: scores of the initial and the final policy (``Score.as_dict()``);
            ``None`` on DDP ranks other than 0 for ``after``.
        env_steps, iterations, seconds: work done (all ranks) and wall time of the fit.
        logdir: the TensorBoard run directory; ``checkpoint``: the last checkpoint;
        report: the PNG of learned vs equilibrium control and density (rank 0).
    """

    env_id: str
    algo: str
    regime: str
    policy: Any
    model: Any
    before: dict[str, float] | None
    after: dict[str, float] | None
    env_steps: int
    iterations: int
    seconds: float
    logdir: Path
    checkpoint: Path
    report: Path | None

    def summary(self) -> str:
        """The end-of-run table: scores before/after, time, and where the files are."""
        rows = [("", "before", "after")]
        for key in SCORES:
            before = "-" if self.before is None else f"{self.before[key]:.4e}"
            after = "-" if self.after is None else f"{self.after[key]:.4e}"
            rows.append((key.replace("_", " "), before, after))
        width = max(len(r[0]) for r in rows)
        lines = [f"{self.env_id}  {self.algo}  {self.regime}  {self.env_steps:,} env steps  "
                 f"{self.iterations} iterations  {self.seconds:.1f} s"]
        lines += [f"  {a.ljust(width)}  {b:>11}  {c:>11}" for a, b, c in rows]
        if self.before and self.after and self.after["exploitability"] > 0:
            ratio = self.before["exploitability"] / self.after["exploitability"]
            lines.append(f"  exploitability reduced {ratio:.1f}x")
        lines.append(f"TensorBoard: tensorboard --logdir {self.logdir}")
        lines.append(f"checkpoint:  {self.checkpoint}")
        if self.report is not None:
            lines.append(f"report:      {self.report}")
        return "\n".join(lines)


def _accelerator(device: Any) -> tuple[str, Any]:
    """Lightning ``(accelerator, devices)`` from a torch device (``None``: CUDA, MPS, CPU)."""
    import torch

    from mfg_rl.backends.torch_backend import default_torch_device

    device = torch.device(default_torch_device() if device is None else device)
    if device.type == "cuda":
        return "gpu", ([device.index] if device.index is not None else None)
    return device.type, None


def _log_location(logdir: str | Path, run_name: str, ckpt_path: str | Path | None) -> dict[str, Any]:
    """Where TensorBoard writes: a new ``logdir/run_name/version_k``, or, when resuming a
    checkpoint of ``.../version_k/checkpoints/``, that same run (its steps continue)."""
    if ckpt_path is not None:
        run = Path(ckpt_path).resolve().parent
        if run.name == "checkpoints" and run.parent.name.startswith("version_"):
            run = run.parent
            return {"save_dir": str(run.parent.parent), "name": run.parent.name, "version": run.name}
    return {"save_dir": str(logdir), "name": run_name}


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for text in ("The number of training batches", "does not have many workers", "Checkpoint directory",
                 "`training_step` returned `None`", "GPU available but not used",
                 "You defined a `validation_step`", "LightningModule.configure_optimizers",
                 "isinstance(treespec, LeafSpec)", "litlogger", "weights_only",
                 "callbacks used to create the checkpoint"):
        warnings.filterwarnings("ignore", message=f".*{re.escape(text)}")


def train(
    env_id: str = "mfg_rl/LQ1D-v0",
    algo: str = "ppo",
    regime: str | None = None,
    steps: int | None = None,
    num_envs: int = 128,
    seed: int = 0,
    logdir: str | Path = "runs",
    device: Any = None,
    progress: bool = True,
    ckpt_path: str | Path | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    devices: int | str = 1,
    strategy: str = "auto",
    num_nodes: int = 1,
    ckpt_every: int = 10,
    callbacks: list[Any] | None = None,
    trainer_options: dict[str, Any] | None = None,
    cpu_threads: int | None = 1,
    **overrides: Any,
) -> TrainResult:
    """Train ``algo`` on ``env_id`` for ``steps`` env steps; log to TensorBoard, checkpoint, score.

    The budget becomes ``ceil(steps / (n_steps * num_envs * world_size))`` iterations
    (``n_steps`` defaults to one horizon ``Nt``). The initial and final policies are scored
    with ``mfg_rl.benchmark.evaluate`` (exploitability, value gap, density L1), and every
    ``eval_every`` iterations in between.

    Args:
        env_id: registered id, e.g. ``"mfg_rl/LQ1D-v0"``; ``env_kwargs`` go to ``make_vec``
            (``Nx=51, Nt=10, solve_options=...``).
        algo: a name of ``mfg_rl.agents.algorithms`` (``"ppo"``, ``"a2c"``, ``"sac"``, ...);
            ``**overrides`` replace fields of its hyperparameters (``Hyperparameters`` for ppo/a2c,
            ``SACHyperparameters`` for sac).
        regime: ``"best-response"`` (crowd frozen at the equilibrium) or ``"fictitious-play"``
            (crowd = average of the crowds the agent's policies induce; see ``regimes``);
            ``None``: the algorithm's first registered regime (best-response for ppo, a2c and sac;
            fictitious-play for the mean-field learners, whose crowd is their own).
        steps: env-step budget (default: the algorithm's ``default_steps``, else ``DEFAULT_STEPS[env_id]``,
            else 1e6).
        num_envs: agents per process; ``seed``: seed of weights, env (``seed + rank``) and sampling.
        logdir: root of the TensorBoard runs (``logdir/<env>-<algo>-<regime>/version_k``).
        device: torch device of env and networks (default: CUDA, MPS, CPU).
        progress: show a progress bar over env steps.
        ckpt_path: resume this checkpoint (same run: step counters, normaliser, env RNG); a
            checkpoint of another env, problem, algo, regime, ``num_envs`` or ``hidden`` is refused
            (``ValueError`` naming each difference).
        devices, strategy, num_nodes: Lightning's data parallelism, e.g. ``devices=2,
            strategy="ddp"`` (gloo on CPU): one process per device, envs seeded by rank.
        ckpt_every: write ``checkpoints/last.ckpt`` every this many iterations (and at the end).
        callbacks, trainer_options: extra Lightning callbacks / ``Trainer`` keyword arguments.
        cpu_threads: torch intra-op threads while training on a CPU (restored afterwards;
            ``None``: leave as is). One is fastest: a 64x64 MLP and per-step env updates are
            latency bound, and extra threads only synchronise (8x slower on a busy 2-core
            machine); scale out with processes (``devices=2, strategy="ddp"``) instead.

    Example:
        >>> from mfg_rl.agents import train
        >>> result = train("mfg_rl/LQ1D-v0", steps=2_000, num_envs=100, progress=False,
        ...                env_kwargs={"Nx": 51, "Nt": 10}, logdir=tmp)   # doctest: +SKIP
        >>> print(result.summary())                                          # doctest: +SKIP
    """
    import torch

    entry = get_algorithm(algo)
    regime = check_regime(entry.regimes[0] if regime is None else regime, algo)
    params = hyperparameters(algo, overrides)
    if steps is None:
        steps = default_budget(algo, env_id)
    for name, value in (("steps", steps), ("num_envs", num_envs), ("ckpt_every", ckpt_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    env_kwargs = dict(env_kwargs or {})
    if ckpt_path is not None:
        check_resume(ckpt_path, RunSettings(env_id, env_kwargs, algo, regime, num_envs, params.hidden))

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    _quiet_lightning()

    from mfg_rl.agents.checkpoints import make_env
    from mfg_rl.agents.progress import StepProgress

    probe = make_env(env_id, 1, "cpu", env_kwargs)
    game = probe.unwrapped.game
    spaces = (2 + game.ndim, game.ndim, game.max_action)
    batch = (params.n_steps or game.Nt) * num_envs
    probe.close()

    accelerator, device_ids = _accelerator(device)
    run_name = f"{env_id.split('/')[-1]}-{algo}-{regime}"
    logger = TensorBoardLogger(**_log_location(logdir, run_name, ckpt_path), default_hp_metric=False)
    checkpointing = ModelCheckpoint(filename="last", monitor=None, save_top_k=1, every_n_epochs=ckpt_every,
                                    enable_version_counter=False, save_on_train_epoch_end=True)
    extra = [checkpointing, *(callbacks or [])]
    if progress:
        extra.append(StepProgress())
    options = dict(accelerator=accelerator, devices=device_ids or devices, strategy=strategy,
                   num_nodes=num_nodes, logger=logger, callbacks=extra, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
                   log_every_n_steps=1, max_epochs=1)
    options.update(trainer_options or {})
    trainer = pl.Trainer(**options)
    iterations = max(1, math.ceil(steps / (batch * trainer.world_size)))
    trainer.fit_loop.max_epochs = iterations
    with torch.random.fork_rng(devices=[]):
        module = entry.module_class()(env_id, algo, regime, num_envs, seed, iterations, env_kwargs, spaces,
                              **overrides)
    threads = torch.get_num_threads()
    if cpu_threads is not None and accelerator == "cpu":
        torch.set_num_threads(cpu_threads)
    start = time.perf_counter()
    try:
        trainer.fit(module, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    logdir_path = Path(trainer.log_dir)
    checkpoint = logdir_path / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(checkpoint)
    after, report = None, None
    if trainer.global_rank == 0:
        from mfg_rl.agents.reporting import save_report

        score = module.score()
        after = score.as_dict()
        report = save_report(module.policy(), module.game, score, logdir_path / "report.png")
        logger.experiment.flush()
    return TrainResult(env_id=env_id, algo=algo, regime=regime, policy=module.policy(), model=module.model,
                       before=module.initial, after=after, env_steps=module.env_steps,
                       iterations=module.iteration, seconds=seconds, logdir=logdir_path,
                       checkpoint=checkpoint, report=report)
