"""``DAFPModule``: deep averaged fictitious play (Lauriere et al. 2022, "Scalable deep reinforcement
learning algorithms for mean field games") as a Lightning module on the batched env, and
``AveragedFictitiousPlay``, its outer loop (steps 2-4), which ``mfg_rl.agents.dafp_q`` shares.

Outer iteration ``k`` (every ``fp_every`` iterations of the best response's learner, and at the end
of the budget):

1. best response: ``fp_every`` iterations of the library's PPO (``ActorCriticModule.training_step``,
   warm-started from the previous best response) against the frozen crowd ``m_bar_k`` (``dafp-q``:
   of soft Q-learning);
2. samples: ``sample_agents`` agents play the best response's deterministic control ``alpha_k``
   for one horizon; every ``(t/T, x, alpha_k(obs))`` of an agent in the domain is offered to the
   reservoir (``average_policy.Reservoir``: each best response weighs alike);
3. the average policy by supervised learning, ``average_steps`` Adam steps on the MSE
   ``E_reservoir |alpha_bar(t, x) - alpha_j|^2``, whose minimiser is the mean of the controls
   played at ``(t, x)``, each best response weighted by how often it visits ``(t, x)``;
4. the crowd ``m_bar_{k+1}`` of the average policy: ``crowd="pde"`` the scheme's Fokker-Planck
   (``evaluate(alpha_bar).m_pi``), ``crowd="model-free"`` the histogram of ``crowd_agents``
   agents playing ``alpha_bar`` in the env (``average_policy.crowd_histogram``); then
   ``env.set_crowd(m_bar_{k+1})``. ``m_bar_0`` is the crowd of the initial average policy.

With ``average="grid"`` (``algo="fp-q"``) steps 2-3 are exact instead of learnt: the best
response's control ``alpha_k`` at the grid's nodes and its crowd ``m_k`` (the ``m_pi`` of its score,
or model-free the histogram of ``crowd_agents`` agents playing it) go into
``average_policy.GridAverage``, ``alpha_bar = sum_j m_j alpha_j / sum_j m_j``: the control of the
mixture of the best responses' crowds, the average that fictitious play's theory is about. No
samples, no reservoir, no regression: what is left of the noise is the best responses'.

The policy it returns, scores and checkpoints is the average policy (``DAFPNetworks.act``). Each
outer iteration logs, against env steps (the samples and the model-free crowd count): the average
policy's ``benchmark/*`` scores, ``benchmark/best_response_exploitability``,
``charts/fictitious_play_iterations`` and, with the learnt average, ``losses/average_policy_loss``
(mean over the supervised steps) and ``charts/reservoir_size``. Reservoir, sampling envs,
supervised optimiser (or the grid average's sums) and counters go into checkpoints: a resumed run
continues the same run. One process (no DDP).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from mfg_rl.agents.algorithms import get as get_algorithm
from mfg_rl.agents.average_policy import Reservoir, crowd_histogram, play_horizon
from mfg_rl.agents.checkpoints import make_env
from mfg_rl.agents.module import ActorCriticModule
from mfg_rl.agents.networks import ObservationPolicy

SAMPLER_SEED = 104_729
"""Offset of the sampling envs' seeds from the run's (their agents are not the learner's)."""


class AveragedFictitiousPlay:
    """D-AFP's outer loop (steps 2-4 above), mixed in before a Lightning module whose ``learner``
    (``model.best_response``, with ``act(obs) -> alpha``) learns the best responses in its
    ``training_step``; the module's ``model`` holds the ``average`` policy (``DAFPNetworks``) and
    its ``params`` the fields of ``AveragePolicyHyperparameters`` and ``fp_every``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.average_optimizer = None
        if self.params.average == "network":
            self.average_optimizer = torch.optim.Adam(self.model.average.parameters(),
                                                      lr=self.params.average_learning_rate)
        self.sampler: Any = None
        self.crowd_env: Any = None
        self.reservoir: Reservoir | None = None
        self.outer = 0

    @property
    def learner(self) -> torch.nn.Module:
        """The best response."""
        return self.model.best_response

    def best_response_policy(self) -> ObservationPolicy:
        """The best response's deterministic control to the current crowd, ``policy(t, x) -> alpha``."""
        return ObservationPolicy(self.learner, self.game)

    # -- setup, checkpoints ----------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(f"{self.algo} runs on one process (asked {self.trainer.world_size}); "
                             "use devices=1")
        super().setup(stage)
        p = self.params
        if p.average == "grid" and not self.model.average.started:
            self.model.average.start(self.game.grid, self.game.Nt)
        if self.sampler is None and self.crowd_env is None:
            device = self.trainer.strategy.root_device
            normalize = get_algorithm(self.algo).normalize_actions
            if p.average == "network":
                self.sampler = make_env(self.env_id, p.sample_agents, device, self.env_kwargs, normalize)
                width = 1 + 2 * self.game.ndim  # [t/T, x, alpha]
                self.reservoir = Reservoir(p.buffer_size, width, device)
            if p.crowd == "model-free":
                self.crowd_env = make_env(self.env_id, p.crowd_agents, device, self.env_kwargs, normalize)

    def on_fit_start(self) -> None:
        fresh = self._restored is None and self.obs is None
        if fresh:
            self._reset_samplers()
        super().on_fit_start()  # fresh: scores the initial average policy, crowd m_bar_0 = its PDE crowd
        if fresh and self.params.crowd == "model-free":
            self._set_crowd(self._model_free_crowd())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        reservoir, optimizer = self.reservoir, self.average_optimizer
        checkpoint["mfg_rl"]["dafp"] = {
            "outer": self.outer, "reservoir": None if reservoir is None else reservoir.state_dict(),
            "samplers": [env.unwrapped.state_dict() for env in self._samplers()],
            "average_optimizer": None if optimizer is None else optimizer.state_dict()}

    def _load_run_state(self, state: dict[str, Any]) -> None:
        super()._load_run_state(state)
        own = state["dafp"]
        self.outer = int(own["outer"])
        if self.reservoir is not None:
            self.reservoir.load_state_dict(own["reservoir"])
        self._reset_samplers()  # allocates, then overwrite
        for env, env_state in zip(self._samplers(), own["samplers"], strict=True):
            env.unwrapped.load_state_dict(env_state)
        if self.average_optimizer is not None:
            self.average_optimizer.load_state_dict(own["average_optimizer"])

    def _samplers(self) -> list[Any]:
        """The envs beside the learner's: best-response samples, and the model-free crowd's agents."""
        return [env for env in (self.sampler, self.crowd_env) if env is not None]

    def _reset_samplers(self) -> None:
        for offset, env in enumerate(self._samplers(), start=1):
            env.reset(seed=self.seed + offset * SAMPLER_SEED)

    def _set_crowd(self, m: Any) -> None:
        super()._set_crowd(m)
        for env in self._samplers():
            env.set_crowd(m)

    # -- the outer iteration ---------------------------------------------------------------
    def _end_iteration(self, scalars: dict[str, torch.Tensor | float], size: int) -> None:
        """Log PPO's ``scalars``; every ``fp_every`` iterations and at the end, one outer iteration."""
        if self.iteration % self.params.fp_every == 0 or self.iteration == self.iterations:
            scalars = {**scalars, **self._outer_iteration()}
        self._log_iteration(scalars, size)
        self._clock = time.perf_counter()

    def _outer_iteration(self) -> dict[str, torch.Tensor | float]:
        from mfg_rl.benchmark import evaluate

        best = evaluate(self.best_response_policy(), self.game.eq, backend="numpy", device=self.game.device)
        scalars = self._average_on_grid(best.m_pi) if self.params.average == "grid" else self._fit_average()
        self.outer += 1
        score = self.score()
        self._set_crowd(score.m_pi if self.params.crowd == "pde" else self._model_free_crowd())
        self._log_scores(score, figure=self.iteration == self.iterations)
        return {"benchmark/best_response_exploitability": best["exploitability"],
                "charts/fictitious_play_iterations": float(self.outer), **scalars}

    def _fit_average(self) -> dict[str, torch.Tensor | float]:
        """Steps 2-3 with ``average="network"``: the best response's samples into the reservoir, then
        ``average_steps`` supervised steps of the average policy."""
        p, d = self.params, self.game.ndim
        obs, inside = play_horizon(self.sampler, self.learner.act)
        self.env_steps += self.game.Nt * p.sample_agents
        states = obs[:-1][inside[:-1]]  # levels where an action is taken, agents in the domain
        rows = torch.cat([states[:, : 1 + d], self.learner.act(states)], dim=1)
        average = self.model.average
        average.normalizer.update(rows[:, : 1 + d])
        self.reservoir.add(rows, self.generator)
        loss_sum = torch.zeros((), device=rows.device)
        for _ in range(p.average_steps):
            batch = self.reservoir.sample(p.average_batch_size, self.generator)
            loss = (average(batch[:, : 1 + d]) - batch[:, 1 + d :]).square().sum(1).mean()
            self.average_optimizer.zero_grad()
            loss.backward()
            self.average_optimizer.step()
            loss_sum = loss_sum + loss.detach()
        return {"losses/average_policy_loss": loss_sum / p.average_steps,
                "charts/reservoir_size": float(self.reservoir.size)}

    def _average_on_grid(self, m_best: np.ndarray) -> dict[str, torch.Tensor | float]:
        """Steps 2-3 with ``average="grid"``: the best response's control on the grid's nodes goes into
        ``GridAverage``, weighed by its crowd: ``m_best`` (its PDE crowd) or, model-free, the histogram
        of ``crowd_agents`` agents playing it."""
        from mfg_rl.benchmark.exploitability import policy_controls

        policy = self.best_response_policy()
        alpha = np.stack(policy_controls(policy, self.game.problem, torch.device(self.game.device)), axis=-1)
        if self.params.crowd == "model-free":
            obs, inside = play_horizon(self.crowd_env, self.learner.act)
            self.env_steps += self.game.Nt * self.params.crowd_agents
            m_best = crowd_histogram(self.game, obs, inside)
        self.model.average.add(m_best, alpha)
        return {}

    def _model_free_crowd(self) -> np.ndarray:
        """The histogram crowd of ``crowd_agents`` agents playing the average policy for one horizon."""
        obs, inside = play_horizon(self.crowd_env, self.model.act)
        self.env_steps += self.game.Nt * self.params.crowd_agents
        return crowd_histogram(self.game, obs, inside).cpu().numpy()


class DAFPModule(AveragedFictitiousPlay, ActorCriticModule):
    """D-AFP with PPO best responses on ``env_id`` (see ``mfg_rl.agents.train``; ``DAFPHyperparameters``)."""

    @property
    def update_rule(self) -> str:
        return "ppo"
