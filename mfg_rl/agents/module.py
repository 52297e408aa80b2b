"""``ActorCriticModule``: PPO / A2C as a Lightning module on the natively batched MFG env.

One training epoch is one iteration: collect ``n_steps`` transitions of every agent
(``rollout.collect``), update the observation normaliser, compute GAE, then
``update_epochs`` passes of minibatch updates (manual optimisation). The env lives on the
module's device; everything random goes through explicit generators whose states, with
the env's (agents, crowd, RNG), the step counters, the fictitious-play crowd and the
normaliser (a buffer of the model), go into every checkpoint: ``fit(..., ckpt_path=...)``
continues the same run exactly.

Each iteration logs to TensorBoard once, with one host sync: the losses, entropy, ``grad_norm``
(total L2 norm of the gradients before clipping) and, for PPO, ``approx_kl``,
``old_approx_kl`` and ``clipfrac``, each the mean over the iteration's optimiser steps; the
explained variance, the fraction of actions the env clipped to its box, the episodic return
and length. The run's hyperparameters go to the HPARAMS tab (``hparams_tab``).

Under DDP each rank steps its own agents (seeded ``seed + rank``); gradients are averaged by
DDP and the normaliser statistics summed over ranks, so parameters stay identical.
This module imports Lightning: load it through ``mfg_rl.agents.train``.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch

from mfg_rl.agents import hparams_tab, reporting
from mfg_rl.agents.algorithms import get as get_algorithm
from mfg_rl.agents.checkpoints import make_env
from mfg_rl.agents.config import hyperparameters
from mfg_rl.agents.losses import actor_critic_loss, explained_variance
from mfg_rl.agents.networks import ObservationPolicy
from mfg_rl.agents.regimes import FictitiousPlay, check_regime
from mfg_rl.agents.rollout import collect, compute_gae


class ActorCriticModule(pl.LightningModule):
    """PPO or A2C on ``env_id`` (see ``mfg_rl.agents.train`` for the arguments)."""

    def __init__(self, env_id: str, algo: str = "ppo", regime: str = "best-response", num_envs: int = 128,
                 seed: int = 0, iterations: int = 1, env_kwargs: dict[str, Any] | None = None,
                 spaces: tuple[int, int, float] = (3, 1, 1.0), **overrides: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.env_id, self.algo, self.regime = env_id, algo, check_regime(regime, algo)
        self.num_envs, self.seed, self.iterations = num_envs, seed, iterations
        self.env_kwargs = dict(env_kwargs or {})
        self.params = hyperparameters(algo, overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self.build_model(*spaces)
        self.generator: torch.Generator | None = None
        self.env: Any = None
        self.obs: torch.Tensor | None = None
        self.fp = FictitiousPlay()
        self.iteration = 0
        self.env_steps = 0
        self.initial: dict[str, float] | None = None
        self.latest: dict[str, float] | None = None
        self._restored: dict[str, Any] | None = None
        self._clock = time.perf_counter()

    def build_model(self, obs_dim: int, act_dim: int, max_action: float) -> torch.nn.Module:
        """The networks of the algorithm's registry entry, built under the run's seed."""
        return get_algorithm(self.algo).build_networks(self.params, obs_dim, act_dim, max_action)

    # -- setup, checkpoints ----------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.env is None:
            device = self.trainer.strategy.root_device
            from mfg_rl.envs import TorchEpisodeStatistics

            env = make_env(self.env_id, self.num_envs, device, self.env_kwargs,
                           get_algorithm(self.algo).normalize_actions)
            self.env = TorchEpisodeStatistics(env)
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed + 7919 * self.global_rank)

    @property
    def game(self) -> Any:
        return self.env.unwrapped.game

    @property
    def learner(self) -> torch.nn.Module:
        """The actor-critic that ``training_step`` updates: ``model`` itself, unless a subclass's
        ``model`` holds more networks (D-AFP: the best response, beside the average policy)."""
        return self.model

    @property
    def update_rule(self) -> str:
        """The loss of ``training_step`` (``mfg_rl.agents.losses``): ``"ppo"`` or ``"a2c"``."""
        return self.algo

    def policy(self) -> ObservationPolicy:
        """The deterministic learned control as ``policy(t, x) -> alpha`` (benchmark convention)."""
        return ObservationPolicy(self.model, self.game)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.params
        if p.optimizer == "rmsprop":
            return torch.optim.RMSprop(self.learner.parameters(), lr=p.learning_rate, alpha=0.99, eps=1e-5)
        return torch.optim.Adam(self.learner.parameters(), lr=p.learning_rate, eps=1e-5)

    def on_fit_start(self) -> None:
        if self._restored is not None:
            self._load_run_state(self._restored)
            self._restored = None
        elif self.obs is None:
            self.obs, _ = self.env.reset(seed=self.seed + self.global_rank)
            score = self.score()
            self.initial = score.as_dict()
            if self.regime == "fictitious-play":
                self._set_crowd(self.fp.add(score.m_pi))
            self._log_scores(score, figure=True)
        if self.global_rank == 0 and self.logger is not None:
            hparams_tab.start_session(self.logger.experiment, hparams_tab.run_hparams(self))
        self._clock = time.perf_counter()

    def on_fit_end(self) -> None:
        if self.global_rank == 0 and self.logger is not None:
            hparams_tab.end_session(self.logger.experiment)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        local = {"env": self.env.unwrapped.state_dict(), "obs": self.obs,
                 "generator": self.generator.get_state(),
                 "episode_stats": self.env.state_dict()}
        ranks = [local]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, local)
        checkpoint["mfg_rl"] = {
            "ranks": ranks, "iteration": self.iteration, "env_steps": self.env_steps,
            "fictitious_play": self.fp.state_dict(), "initial": self.initial, "latest": self.latest,
            "crowd": self.game.table[..., 0].cpu(), "env_id": self.env_id,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored = checkpoint["mfg_rl"]

    def _load_run_state(self, state: dict[str, Any]) -> None:
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.initial, self.latest = state["initial"], state["latest"]
        self.fp.load_state_dict(state["fictitious_play"])
        ranks = state["ranks"]
        if len(ranks) != self.trainer.world_size:
            raise ValueError(f"checkpoint was written by {len(ranks)} processes, resuming on "
                             f"{self.trainer.world_size}: the envs' states cannot be matched")
        local = ranks[self.global_rank]
        self.env.reset(seed=self.seed + self.global_rank)  # allocates the statistics, then overwrite
        self.env.unwrapped.load_state_dict(local["env"])
        self.env.load_state_dict(local["episode_stats"])
        self.obs = local["obs"].to(self.device)
        self.generator.set_state(local["generator"])

    # -- one iteration ---------------------------------------------------------------------
    def train_dataloader(self) -> Any:
        return torch.utils.data.DataLoader([0], batch_size=1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        p, model = self.params, self.learner
        optimizer = self.optimizers()
        lr = p.learning_rate * (1.0 - self.iteration / self.iterations) if p.anneal_lr else p.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        n_steps = p.n_steps or self.game.Nt
        rollout, self.obs, episodes = collect(self.env, model, self.obs, n_steps, p.gamma, self.generator)
        model.normalizer.update(rollout.obs, reduce=self._sum_over_ranks)
        with torch.no_grad():
            last_value = model.value(self.obs)
        compute_gae(rollout, last_value, p.gamma, p.gae_lambda)
        data = rollout.flat()
        size = data["obs"].shape[0]
        minibatch = max(1, size // p.num_minibatches)
        stats: dict[str, torch.Tensor] = {}
        sums: dict[str, torch.Tensor] = {}  # over the update's optimiser steps, on the device
        steps_taken = 0
        for _ in range(p.update_epochs):
            order = torch.randperm(size, generator=self.generator, device=self.generator.device)
            for start in range(0, minibatch * p.num_minibatches, minibatch):
                index = order[start : start + minibatch]
                minibatch_data = {k: v[index] for k, v in data.items()}
                loss, stats = actor_critic_loss(self.update_rule, model, minibatch_data, p)
                optimizer.zero_grad()
                self.manual_backward(loss)
                stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), p.max_grad_norm)
                optimizer.step()
                sums = {k: sums[k] + v if k in sums else v for k, v in stats.items()}
                steps_taken += 1
            if p.target_kl is not None and float(stats["approx_kl"]) > p.target_kl:
                break
        self.iteration += 1
        self.env_steps += size * self.trainer.world_size
        scalars: dict[str, torch.Tensor | float] = {f"losses/{k}": v / steps_taken for k, v in sums.items()}
        scalars["losses/explained_variance"] = explained_variance(data["values"], data["returns"])
        scalars["charts/learning_rate"] = lr
        scalars["charts/action_std"] = model.log_std.detach().exp().mean()
        scalars["charts/clipped_action_fraction"] = rollout.clipped.float().mean()
        if episodes.returns.numel():
            scalars["charts/episodic_return"] = episodes.returns.mean()
            scalars["charts/episodic_length"] = episodes.lengths.float().mean()
        self._end_iteration(scalars, size)

    def _log_iteration(self, scalars: dict[str, torch.Tensor | float], size: int) -> None:
        """Log ``scalars`` (one host sync) and the speed over ``size`` env steps per process."""
        scalars = _to_host(scalars)
        now = time.perf_counter()
        scalars["charts/steps_per_second"] = size * self.trainer.world_size / max(now - self._clock, 1e-9)
        self._write(scalars)

    def _end_iteration(self, scalars: dict[str, torch.Tensor | float], size: int) -> None:
        """Log the iteration; score every ``eval_every`` iterations and at the end; update the
        fictitious-play crowd."""
        p = self.params
        self._log_iteration(scalars, size)
        fp_update = self.regime == "fictitious-play" and self.iteration % p.fp_every == 0
        if fp_update or self.iteration % p.eval_every == 0 or self.iteration == self.iterations:
            score = self.score()
            self._log_scores(score, figure=self.iteration == self.iterations)
            if fp_update:
                self._set_crowd(self.fp.add(score.m_pi))
                self._write({"charts/fictitious_play_iterations": float(self.fp.count)})
        self._clock = time.perf_counter()

    # -- helpers ---------------------------------------------------------------------------
    def _sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.trainer.world_size == 1:
            return tensor
        return self.trainer.strategy.reduce(tensor.to(self.device), reduce_op="sum").to(tensor.device)

    def _set_crowd(self, m: Any) -> None:
        self.env.unwrapped.set_crowd(m)
        self.obs = self.env.unwrapped.batch.observation()

    def score(self) -> Any:
        """``mfg_rl.benchmark.evaluate`` of the current deterministic policy against ``m*``."""
        from mfg_rl.benchmark import evaluate

        return evaluate(self.policy(), self.game.eq, backend="numpy", device=self.game.device)

    def _log_scores(self, score: Any, figure: bool) -> None:
        self.latest = score.as_dict()
        self._write({f"benchmark/{k}": score[k] for k in ("exploitability", "value_gap", "density_l1")})
        if figure and self.global_rank == 0 and self.logger is not None:
            import matplotlib.pyplot as plt

            fig = reporting.figure(self.policy(), self.game, score)
            self.logger.experiment.add_figure("report/control_and_density", fig, self.env_steps)
            plt.close(fig)

    def _write(self, scalars: dict[str, float]) -> None:
        """Scalars to TensorBoard against environment steps (rank 0; DDP ranks agree)."""
        if self.global_rank != 0 or self.logger is None:
            return
        writer = self.logger.experiment
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, self.env_steps)


def _to_host(scalars: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """``scalars`` as floats; its 0-d tensors are read in one host sync (float32, as TensorBoard stores)."""
    names = [name for name, value in scalars.items() if isinstance(value, torch.Tensor)]
    values = torch.stack([scalars[name].to(torch.float32) for name in names]).tolist() if names else []
    return {**scalars, **dict(zip(names, values, strict=True))}
