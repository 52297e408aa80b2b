"""``SACModule``: soft actor-critic (Haarnoja et al. 2018) as a Lightning module on the batched env.

Every env step of all ``N`` agents goes into a replay of preallocated device tensors, then
``gradient_steps`` updates on minibatches ``(s, a, r, s', k)`` drawn uniformly from it
(``k = 1 - terminated``; a truncated agent's ``s'`` is its final observation):

    y      = r + gamma k (min_j Q'_j(s', a') - alpha log pi(a'|s')),   a' ~ pi(.|s')
    L_Q    = sum_j E[(Q_j(s, a) - y)^2] / 2
    L_pi   = E[alpha log pi(a~|s) - min_j Q_j(s, a~)],                 a~ ~ pi(.|s)
    L_alpha = -E[log alpha (log pi(a~|s) + H_target)],                 H_target = -d
    Q'_j  <- (1 - tau) Q'_j + tau Q_j

Actions are the env's normalised ``[-1, 1]^d`` (``normalize_actions=True``; the tanh squash
fits that box exactly, and ``H_target = -d`` is set for it); the control is
``alpha = max_action * a`` (``SACNetworks``). The first ``learning_starts`` transitions are
uniform random actions. An iteration is ``n_steps`` env steps (default one horizon); it logs
once, with one host sync, the means over its updates of the losses, ``alpha``, the entropy
``-log pi``, ``Q``, and the critic's and actor's gradient norms, plus the replay size and the
episodic return; the replay goes into checkpoints, so a resumed run continues the same run.
Setup, checkpoints of the env and counters, scoring and logging are ``ActorCriticModule``'s.
One process (no DDP); crowd frozen at the equilibrium (``regime="best-response"``).
"""

from __future__ import annotations

from typing import Any

import torch

from mfg_rl.agents.module import ActorCriticModule


class Replay:
    """Ring buffer of transitions, one preallocated ``(capacity, 2 o + d + 2)`` tensor on ``device``.

    A row is ``[s (o), a (d), r, s' (o), k]``; ``add`` writes ``N`` rows with one ``index_copy_``,
    ``sample`` gathers ``B`` rows with one index and returns views of the fields.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, num_envs: int, device: Any) -> None:
        self.data = torch.zeros(capacity, 2 * obs_dim + act_dim + 2, device=device)
        self.sizes = (obs_dim, act_dim, 1, obs_dim, 1)
        self.offsets = torch.arange(num_envs, device=device)
        self.position = 0
        self.size = 0

    @property
    def capacity(self) -> int:
        return self.data.shape[0]

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
            alive: torch.Tensor) -> None:
        """Store ``N`` transitions: ``obs``, ``next_obs`` ``(N, o)``, ``actions`` ``(N, d)``, ``rewards``,
        ``alive`` ``(N,)``."""
        rows = torch.cat([obs, actions, rewards[:, None], next_obs, alive[:, None]], dim=1)
        self.data.index_copy_(0, (self.offsets + self.position) % self.capacity, rows.to(self.data.dtype))
        self.position = (self.position + rows.shape[0]) % self.capacity
        self.size = min(self.size + rows.shape[0], self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(s, a, r, s', k)`` of ``batch_size`` uniform draws (with replacement)."""
        return self.rows(self.draw(batch_size, generator))

    def draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` uniform row indices ``(B,)`` (with replacement), for ``rows``."""
        return torch.randint(self.size, (batch_size,), generator=generator, device=self.data.device)

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(s, a, r, s', k)`` of the rows ``index`` ``(B,)``."""
        s, a, r, s2, k = self.data[index].split(self.sizes, dim=1)
        return s, a, r[:, 0], s2, k[:, 0]

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data[: self.size].cpu(), "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.position = int(state["size"]), int(state["position"])
        self.data[: self.size] = state["data"].to(self.data.device)


class SACModule(ActorCriticModule):
    """SAC on ``env_id`` (see ``mfg_rl.agents.train`` for the arguments, ``SACHyperparameters``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params.buffer_size < self.num_envs:
            raise ValueError(f"buffer_size={self.params.buffer_size} is below num_envs={self.num_envs}: one "
                             "env step of all agents must fit in the replay")
        act_dim = self.hparams.spaces[1]
        target = self.params.target_entropy
        self.target_entropy = float(-act_dim if target is None else target)
        self.replay: Replay | None = None

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        model, lr = self.model, self.params.learning_rate
        return [torch.optim.Adam(model.actor.parameters(), lr=lr),
                torch.optim.Adam(model.critics.parameters(), lr=lr),
                torch.optim.Adam([model.log_alpha], lr=lr)]

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError(f"sac runs on one process (asked {self.trainer.world_size}); use devices=1")
        super().setup(stage)
        if self.replay is None:
            obs_dim, act_dim, _ = self.hparams.spaces
            self.replay = Replay(self.params.buffer_size, obs_dim, act_dim, self.num_envs,
                                 self.trainer.strategy.root_device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mfg_rl"]["replay"] = self.replay.state_dict()

    def _load_run_state(self, state: dict[str, Any]) -> None:
        super()._load_run_state(state)
        self.replay.load_state_dict(state["replay"])

    # -- one iteration: n_steps env steps, each followed by gradient_steps updates ---------------
    def training_step(self, batch: Any, batch_idx: int) -> None:
        p = self.params
        sums: dict[str, torch.Tensor] = {}
        returns, lengths = [], []
        updates = 0
        for _ in range(p.n_steps or self.game.Nt):
            obs = self.obs
            with torch.no_grad():
                if self.replay.size < p.learning_starts:
                    actions = 2.0 * torch.rand(obs.shape[0], self.model.act_dim, generator=self.generator,
                                               device=obs.device) - 1.0
                else:
                    actions, _ = self.model.sample(obs, self._noise(obs.shape[0]))
            self.obs, rewards, terminated, _, info = self.env.step(actions)
            next_obs = self.obs
            if "final_obs" in info:
                next_obs = torch.where(info["_final_obs"][:, None], info["final_obs"], self.obs)
            self.replay.add(obs, actions, rewards, next_obs, (~terminated).float())
            if "_episode" in info:
                returns.append(info["episode"]["r"][info["_episode"]])
                lengths.append(info["episode"]["l"][info["_episode"]])
            if self.replay.size >= max(p.learning_starts, p.batch_size):
                for _ in range(p.gradient_steps):
                    stats = self._update(self.replay.sample(p.batch_size, self.generator))
                    sums = {k: sums[k] + v if k in sums else v for k, v in stats.items()}
                    updates += 1
        size = (p.n_steps or self.game.Nt) * self.num_envs
        self.iteration += 1
        self.env_steps += size
        scalars: dict[str, torch.Tensor | float] = {
            f"losses/{k}": v / updates for k, v in sums.items() if not k.startswith("charts/")}
        scalars.update({k: v / updates for k, v in sums.items() if k.startswith("charts/")})
        scalars["charts/learning_rate"] = p.learning_rate
        scalars["charts/replay_size"] = float(self.replay.size)
        scalars["charts/updates"] = float(updates)
        if returns:
            scalars["charts/episodic_return"] = torch.cat(returns).mean()
            scalars["charts/episodic_length"] = torch.cat(lengths).float().mean()
        self._end_iteration(scalars, size)

    def _noise(self, rows: int) -> torch.Tensor:
        return torch.randn(rows, self.model.act_dim, generator=self.generator, device=self.generator.device)

    def _update(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """One gradient step of critics, actor and temperature, then Polyak; detached 0-d stats."""
        p, model = self.params, self.model
        actor_opt, critic_opt, alpha_opt = self.optimizers()
        obs, actions, rewards, next_obs, alive = batch
        alpha = model.log_alpha.exp().detach()
        with torch.no_grad():
            next_actions, next_log_prob = model.sample(next_obs, self._noise(obs.shape[0]))
            next_q = model.q_values(next_obs, next_actions, target=True).min(0).values
            target = rewards + p.gamma * alive * (next_q - alpha * next_log_prob)
        q = model.q_values(obs, actions)
        critic_loss = 0.5 * (q - target).square().mean(1).sum()
        critic_opt.zero_grad()
        self.manual_backward(critic_loss)
        critic_norm = torch.nn.utils.clip_grad_norm_(model.critics.parameters(), p.max_grad_norm or torch.inf)
        critic_opt.step()

        new_actions, log_prob = model.sample(obs, self._noise(obs.shape[0]))
        actor_loss = (alpha * log_prob - model.q_values(obs, new_actions).min(0).values).mean()
        actor_opt.zero_grad()
        self.manual_backward(actor_loss)
        actor_norm = torch.nn.utils.clip_grad_norm_(model.actor.parameters(), p.max_grad_norm or torch.inf)
        actor_opt.step()

        log_prob = log_prob.detach()
        alpha_loss = -(model.log_alpha * (log_prob + self.target_entropy)).mean()
        if p.autotune:
            alpha_opt.zero_grad()
            self.manual_backward(alpha_loss)
            alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(model.targets.parameters()), list(model.critics.parameters()), p.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "alpha_loss": alpha_loss.detach(), "entropy": -log_prob.mean(), "q_values": q.detach().mean(),
                "critic_grad_norm": critic_norm, "actor_grad_norm": actor_norm, "charts/alpha": alpha}
