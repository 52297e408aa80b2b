"""``OMDModule``: deep Munchausen online mirror descent (D-MOMD) as a Lightning module on the batched env.

Perolat et al. 2021 ("Scaling up mean field games with online mirror descent"), in the deep
Munchausen form of Lauriere et al. 2022 ("Scalable deep RL algorithms for mean field games").
Actions are the ``K^d`` points of a grid in ``[-max_action, max_action]^d`` (game units; ``K = 21``
in 1D, ``11 x 11`` in 2D), the policy is ``pi_k = softmax(Q_k / tau)`` over them
(``mfg_rl.agents.softmax_q``). Outer iteration ``k``:

1. the crowd ``m_k`` is the one ``pi_k`` induces: the Fokker-Planck solution of its deterministic
   mean action ``E_{pi_k}[a]`` (``mfg_rl.benchmark.induced_crowd``, or the ``m_pi`` of the iteration's
   score while that scores ``pi_k`` itself), set with ``env.set_crowd``;
2. ``n_steps`` env steps of all agents against ``m_k``, actions drawn from ``pi_k`` mixed with
   ``epsilon`` uniform ones, go into a device replay emptied every iteration (its rewards are ``m_k``'s);
3. ``gradient_steps`` regressions of ``Q_{k+1}`` (warm-started from ``Q_k``) on the Munchausen target

       y = r + alpha tau max(log pi_k(a|s), l0) + gamma k sum_a' pi_k(a'|s') (Q'(s',a') - tau log pi_k(a'|s'))

   (``Q'`` the target network, copied from ``Q_{k+1}`` every ``target_update_every`` updates), so
   that ``softmax(Q_{k+1} / tau) ~ pi_k^alpha exp(q_{k+1} / tau)`` without storing past Q's; the
   ``pi_k`` terms are computed once per replay row, the target's once per update.

Rewards are divided by ``dt`` (reward rates), so that ``tau`` means the same on every time grid. The
policy scored, returned and checkpointed is the mean over the last ``average_last`` iterates (the
last tenth of the run at most) of the deterministic mean action of their softmax policies
(``SoftmaxQNetworks.act``); the crowd of step 1 is the last iterate's alone
(``benchmark.induced_crowd``). Every iteration logs the regression loss, the entropy of ``pi_{k+1}``
on the replay's states and ``charts/omd_iterations``; every ``eval_every`` iterations and at the
end, ``benchmark/exploitability`` (of that mean, against env steps). The replay is refilled every
iteration, so a checkpoint (networks and the remembered iterates, optimiser, env, crowd, RNG) at an
iteration's end resumes the same run. One process; ``regime="fictitious-play"`` only (the crowd is
the agent's own, from the PDE's Fokker-Planck). The policy reads the crowd's density in its
observation, so the final score (against the crowd of the last iterate) differs a little from the
last logged one (against the crowd it was trained on).

Example:
    >>> from mfg_rl.agents import train
    >>> result = train("mfg_rl/SantaFeBar-v0", algo="omd", regime="fictitious-play",
    ...                steps=384_000)   # doctest: +SKIP
    >>> result.after["exploitability"]   # 2.26 -> 0.065 in about 25 s (seed 0)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import torch

from mfg_rl.agents.module import ActorCriticModule
from mfg_rl.agents.networks import ObservationPolicy
from mfg_rl.agents.sac import Replay
from mfg_rl.agents.softmax_q import LastIterate, munchausen_target


class OMDModule(ActorCriticModule):
    """D-MOMD on ``env_id`` (see ``mfg_rl.agents.train`` for the arguments, ``OMDHyperparameters``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replay: Replay | None = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.learner.q.parameters(), lr=self.params.learning_rate)

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(f"omd runs on one process (asked {self.trainer.world_size}); use devices=1")
        super().setup(stage)
        if self.replay is None:
            obs_dim = self.hparams.spaces[0]
            capacity = (self.params.n_steps or self.game.Nt) * self.num_envs
            self.replay = Replay(capacity, obs_dim, 1, self.num_envs, self.trainer.strategy.root_device)
        self.reward_scale = 1.0 / self.game.dt

    # -- one outer iteration: collect against m_k with pi_k, fit Q_{k+1} ---------------------------
    def training_step(self, batch: Any, batch_idx: int) -> None:
        p, model = self.params, self.learner
        model.start_iteration()
        self.replay.position = self.replay.size = 0
        returns, lengths = [], []
        steps = p.n_steps or self.game.Nt
        for _ in range(steps):
            obs = self.obs
            index = self._sample_actions(obs)
            self.obs, rewards, terminated, _, info = self.env.step(model.actions[index])
            next_obs = self.obs
            if "final_obs" in info:
                next_obs = torch.where(info["_final_obs"][:, None], info["final_obs"], self.obs)
            self.replay.add(obs, index[:, None].float(), rewards * self.reward_scale, next_obs,
                            (~terminated).float())
            if "_episode" in info:
                returns.append(info["episode"]["r"][info["_episode"]])
                lengths.append(info["episode"]["l"][info["_episode"]])
        policy_terms = self._policy_terms()
        sums: dict[str, torch.Tensor] = {}
        for update in range(p.gradient_steps):
            if update % p.target_update_every == 0:
                model.target.load_state_dict(model.q.state_dict())
            rows = self.replay.draw(p.batch_size, self.generator)
            stats = self._update(self.replay.rows(rows), *(term[rows] for term in policy_terms))
            sums = {k: sums[k] + v if k in sums else v for k, v in stats.items()}
        size = steps * self.num_envs
        self.iteration += 1
        self.env_steps += size
        scalars: dict[str, torch.Tensor | float] = {
            f"losses/{k}": v / p.gradient_steps for k, v in sums.items()}
        scalars["charts/learning_rate"] = p.learning_rate
        if returns:
            scalars["charts/episodic_return"] = torch.cat(returns).mean()
            scalars["charts/episodic_length"] = torch.cat(lengths).float().mean()
        self._end_iteration(scalars, size)

    @torch.no_grad()
    def _sample_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """Grid indices ``(N,)`` from ``pi_k``, each replaced by a uniform one with chance ``epsilon``."""
        probs = self.learner.log_policy(obs, self.learner.previous).exp()
        index = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        count = probs.shape[1]
        uniform = torch.randint(count, index.shape, generator=self.generator, device=obs.device)
        explore = torch.rand(index.shape, generator=self.generator, device=obs.device) < self.params.epsilon
        return torch.where(explore, uniform, index)

    @torch.no_grad()
    def _policy_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``log pi_k(a|s)`` ``(R,)`` of the action taken and ``log pi_k(.|s')`` ``(R, K^d)`` of every
        row of the replay: ``pi_k`` is frozen over the iteration, so its two forward passes run once
        per row here instead of once per draw in each of the ``gradient_steps`` updates."""
        model = self.learner
        every_row = torch.arange(self.replay.size, device=self.replay.data.device)
        obs, index, _, next_obs, _ = self.replay.rows(every_row)
        log_pi = model.log_policy(obs, model.previous).gather(1, index.long())[:, 0]
        return log_pi, model.log_policy(next_obs, model.previous)

    def _update(self, batch: tuple[torch.Tensor, ...], log_pi_taken: torch.Tensor,
                log_pi_next: torch.Tensor) -> dict[str, torch.Tensor]:
        """One regression step of ``Q_{k+1}`` on the Munchausen target, with ``pi_k``'s terms of the
        batch's rows (``_policy_terms``); detached 0-d stats."""
        p, model = self.params, self.learner
        obs, index, rewards, next_obs, alive = batch
        index = index[:, 0].long()
        with torch.no_grad():
            target = munchausen_target(rewards, log_pi_taken, log_pi_next, model.target(next_obs), alive,
                                       p.gamma, p.tau, p.munchausen_alpha, p.log_policy_clip)
        q_all = model.q(obs)
        loss = 0.5 * (q_all.gather(1, index[:, None])[:, 0] - target).square().mean()
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.q.parameters(), p.max_grad_norm or torch.inf)
        optimizer.step()
        with torch.no_grad():
            log_new = torch.log_softmax(q_all.detach() / p.tau, dim=-1)
            entropy = -(log_new.exp() * log_new).sum(-1).mean()
        return {"q_loss": loss.detach(), "entropy": entropy, "q_values": q_all.detach().mean(),
                "grad_norm": grad_norm}

    def _end_iteration(self, scalars: dict[str, torch.Tensor | float], size: int) -> None:
        """Log ``scalars``; remember ``pi_{k+1}``, score the mean of the last iterates (every
        ``eval_every`` iterations and at the end) and make the crowd ``pi_{k+1}`` induces the next
        iteration's ``m``."""
        self._log_iteration({**scalars, "charts/omd_iterations": float(self.iteration)}, size)
        self.learner.remember()
        last = self.iteration == self.iterations
        score = self.score() if last or self.iteration % self.params.eval_every == 0 else None
        if score is not None:
            self._log_scores(score, figure=last)
        if score is not None and self.learner.window == 1:  # the mean is the last iterate: its crowd
            crowd = score.m_pi
        else:
            from mfg_rl.benchmark import induced_crowd

            crowd = induced_crowd(ObservationPolicy(LastIterate(self.learner), self.game), self.game.eq,
                                  device=self.game.device)
        self._set_crowd(crowd)
        self._clock = time.perf_counter()
