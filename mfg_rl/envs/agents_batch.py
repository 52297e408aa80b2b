"""A batch of representative agents moving in a crowd: the one stepper both environments use.

For each agent at level ``n`` and position ``X`` (``(N, d)``), with control ``alpha`` the
action times ``action_scale``, clipped to ``[-a_max, a_max]^d``:

    reward = -( L(X, alpha, m^n(X)) + F^n(X) ) dt                        (running cost)
    X'     = X + alpha dt + sigma sqrt(dt) xi,   xi ~ N(0, I)            (Euler-Maruyama)
    reward -= g(X')  when n + 1 = Nt;   reward -= exit_cost  when X' left through an exit

with ``m, F`` read from the ``Game`` table and ``L`` the Hamiltonian's Lagrangian
(the equilibrium crowd, or the agents' own
density by KDE in the N-player game). An agent's expected return from ``(t_n, x)``
following the equilibrium control is ``-u(t_n, x)`` up to the time-step error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mfg_rl.backends.bandwidth import check_bandwidth
from mfg_rl.checks import check_choice, check_int
from mfg_rl.envs.game import Game

POPULATIONS = ("equilibrium", "empirical")
MAX_AGENTS = 2**30
"""Most agents of a batch: their state then takes over 20 GiB."""


@dataclass
class StepResult:
    """What one step produced, all ``(N,)`` tensors: float32 rewards, bool flags."""

    reward: Any
    terminated: Any
    exited: Any
    clipped: Any


class AgentBatch:
    """State and dynamics of ``num_agents`` agents on ``game.device``.

    In ``population="equilibrium"`` each agent lives in the frozen equilibrium crowd and
    has its own clock (agents that finish are reset independently). In
    ``population="empirical"`` the crowd is the agents' own KDE density: all agents share
    one clock, and an agent that exits is absorbed (no further reward, weight 0 in the
    density) until the horizon ends everyone's episode together.
    """

    def __init__(self, game: Game, num_agents: int, population: str = "equilibrium",
                 bandwidth: Any = "scott", action_scale: float = 1.0) -> None:
        import torch

        num_agents = check_int("num_envs", num_agents, 1, MAX_AGENTS)
        check_choice("population", population, POPULATIONS)
        check_bandwidth(bandwidth, game.grid)
        self.game = game
        self.n = num_agents
        self.population = population
        self.bandwidth = bandwidth
        self.action_scale = action_scale
        self.device = game.device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0)
        self.x = torch.zeros(num_agents, game.ndim, dtype=torch.float32, device=self.device)
        self.level = torch.zeros(num_agents, dtype=torch.int64, device=self.device)
        self.inside = torch.ones(num_agents, dtype=torch.bool, device=self.device)
        self.clock = 0  # the shared level of the N-player game (host-side: no device sync per step)
        self.table = game.table
        self.here = tuple(torch.zeros(num_agents, dtype=torch.float32, device=self.device)
                          for _ in range(game.table.shape[-1]))  # (m, F[, W]) at each agent

    @property
    def empirical(self) -> bool:
        return self.population == "empirical"

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: positions, clocks, crowd, RNG state."""
        import torch

        return {"x": self.x.clone(), "level": self.level.clone(), "inside": self.inside.clone(),
                "here": torch.stack(self.here, dim=1), "table": self.table.clone(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s state (agents, crowd, random stream)."""
        for key in ("x", "level", "inside", "table"):
            value = state[key]
            if tuple(value.shape) != tuple(getattr(self, key).shape) and key != "table":
                raise ValueError(f"state {key!r} has shape {tuple(value.shape)}, "
                                 f"expected {tuple(getattr(self, key).shape)}")
            setattr(self, key, value.to(self.device))
        self.here = tuple(state["here"].to(self.device).unbind(1))
        self.clock = int(self.level[0])
        self.generator.set_state(state["generator"])

    def reset(self, mask: Any = None) -> None:
        """Draw new agents from ``m0`` at ``t = 0`` (all, or where ``mask`` is True)."""

        if mask is None:
            self.x = self.game.sample_initial(self.n, self.generator)
            self.level.zero_()
            self.clock = 0
            self.inside.fill_(True)
        else:
            count = int(mask.sum())
            if count == 0:
                return
            self.x[mask] = self.game.sample_initial(count, self.generator)
            self.level[mask] = 0
            self.inside[mask] = True
        self._refresh(mask)

    def _refresh(self, mask: Any) -> None:
        """Recompute the crowd channels at the agents (all of them in the N-player game)."""
        if self.empirical:
            weights = self.inside.to(self.x.dtype) / self.n
            terminal = self.clock == self.game.Nt
            self.table = self.game.empirical_table(self.x, weights, terminal, self.bandwidth)
            self.here = self.game.lookup(self.table, self.level * 0, self.x)
        elif mask is None or bool(mask.all()):
            self.here = self.game.lookup(self.table, self.level, self.x)
        else:
            for channel, value in zip(self.here, self.game.lookup(self.table, self.level[mask], self.x[mask]),
                                      strict=True):
                channel[mask] = value

    def observation(self) -> Any:
        """``(N, 2 + d)`` float32: ``[t/T, x_1..x_d, m(t, x)]``."""
        import torch

        time = (self.level.to(torch.float32) / self.game.Nt)[:, None]
        return torch.cat([time, self.x, self.here[0][:, None]], dim=1)

    def step(self, action: Any, hold: Any = None) -> StepResult:
        """Advance every agent by ``dt`` under ``action`` ``(N, d)`` (already validated).

        Agents where ``hold`` ``(N,)`` is True stay where they are (a reset step of
        ``AutoresetMode.NEXT_STEP``): their action is ignored, reward 0, not terminated.
        """
        import torch

        game = self.game
        alpha, clipped = game.admissible(action, self.action_scale)
        if hold is not None:
            alpha = torch.where(hold[:, None], 0.0, alpha)
            clipped = clipped & ~hold
        reward = game.lagrangian(self.x, alpha, self.here[0]).add_(self.here[1]).mul_(-game.dt)
        moved = torch.randn(self.x.shape, generator=self.generator, device=self.device, dtype=self.x.dtype)
        moved = moved.mul_(game.sigma * game.dt**0.5).add_(alpha, alpha=game.dt).add_(self.x)
        x_new, exited = game.apply_walls(self.x, moved, self.generator)
        if self.empirical:
            active = self.inside
            reward = torch.where(active, reward, 0.0)
            exited = exited & active
            x_new = torch.where(active[:, None], x_new, self.x)
            self.inside = active & ~exited
        if hold is not None:
            x_new = torch.where(hold[:, None], self.x, x_new)
            exited = exited & ~hold
        self.x = x_new
        self.level = self.level + 1 if hold is None else self.level + (~hold).to(self.level.dtype)
        self.clock += 1
        self._refresh(None)
        final = self.level >= game.Nt
        terminated = final if self.empirical else final | exited
        paying = final & (self.inside if self.empirical else ~exited)  # no host sync: a where is cheaper
        reward = reward - torch.where(paying, self.here[1], 0.0)
        if game.exit_cost != 0.0:
            reward = reward - torch.where(exited, game.exit_cost, 0.0)
        if hold is not None:
            reward = torch.where(hold, 0.0, reward)
        return StepResult(reward=reward, terminated=terminated, exited=exited, clipped=clipped)
