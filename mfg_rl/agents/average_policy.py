"""The average policy of deep averaged fictitious play (D-AFP) and what it is made of, without Lightning.

- ``AveragePolicy``: the deterministic control ``alpha_bar(t, x)`` of the policies played so far,
  a tanh MLP of ``(t/T, x)`` only (the density part of the observation is the crowd of the outer
  iteration a sample came from, so it means something else in every iteration).
- ``GridAverage``: the same average without learning it (``average="grid"``): the exact
  crowd-weighted mean of the best responses' controls on the game's grid.
- ``DAFPNetworks``: the best response (PPO's ``ActorCritic``, or soft Q-networks) beside the
  average policy; its ``act`` is the average policy's, so checkpoints and ``ObservationPolicy``
  give the average policy.
- ``Reservoir``: uniform reservoir sampling of ``(t/T, x, alpha)`` rows on the device (Vitter's
  algorithm R): after ``n`` rows were offered, each is kept with probability ``capacity / n``, so
  the buffer weighs every best response alike, as the fictitious-play average does.
- ``play_horizon`` and ``crowd_histogram``: one horizon of agents playing a control, and the
  model-free crowd of their positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mfg_rl.agents.networks import ActorCritic, RunningNormalizer, mlp
from mfg_rl.core import Grid


class AveragePolicy(nn.Module):
    """``alpha_bar(t, x) = clip(mu(normalise(t/T, x)), +-max_action)``, ``(B, d)`` from observations
    ``(B, 2 + d)`` ``[t/T, x, m]`` (the density column is ignored)."""

    def __init__(self, act_dim: int, hidden: tuple[int, ...], max_action: float) -> None:
        super().__init__()
        self.state_dim = 1 + act_dim
        self.normalizer = RunningNormalizer(self.state_dim)
        self.mean = mlp(self.state_dim, act_dim, hidden, head_gain=0.01)
        self.max_action = float(max_action)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The unclipped control of observations ``(B, 2 + d)`` (or states ``(B, 1 + d)``)."""
        return self.mean(self.normalizer(obs[:, : self.state_dim]))

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self(obs), -self.max_action, self.max_action)


class GridAverage(nn.Module):
    """Fictitious play's average control, exact on the game's grid: at level ``n`` and node ``i``

        alpha_bar^n_i = sum_j m^n_{j,i} alpha^n_{j,i} / sum_j m^n_{j,i},

    the mean control of the agents of every best response ``alpha_j``, each best response's crowd
    ``m_j`` weighing alike (the policy whose crowd is ``sum_j m_j / k``); where no best response's
    crowd has been, the latest one's control. ``act`` reads it at observations ``(B, 2 + d)``
    ``[t/T, x, m]``: the nearest level, linear in ``x`` (``mfg_rl.backends.interp``), so at the
    grid's nodes it is the table itself. The sums ``mass`` ``(Nt, *space)`` and ``flux`` ``(Nt,
    *space, d)`` (float64), the ``control`` table ``(Nt, *space, d)`` and the grid go into state dicts.

    Example:
        >>> import numpy as np, torch
        >>> from mfg_rl.core import Grid
        >>> average = GridAverage(act_dim=1, max_action=2.0)
        >>> average.start(Grid([(0.0, 1.0)], 4), Nt=2)
        >>> m = np.ones((3, 4)); alpha = np.full((2, 4, 1), 1.0)
        >>> average.add(m, alpha); average.add(3.0 * m, np.full((2, 4, 1), -1.0))
        >>> average.act(torch.tensor([[0.0, 0.3, 1.0]]))            # (1 * 1 + 3 * (-1)) / 4
        tensor([[-0.5000]])
    """

    def __init__(self, act_dim: int, max_action: float) -> None:
        super().__init__()
        self.act_dim, self.max_action = int(act_dim), float(max_action)
        self.grid: Grid | None = None
        self.register_buffer("mass", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("flux", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("control", torch.zeros(0))

    def start(self, grid: Grid, Nt: int) -> None:
        """Empty sums on ``grid`` with ``Nt`` levels of control; the control is zero until ``add``."""
        if grid.ndim != self.act_dim:
            raise ValueError(f"grid must have act_dim={self.act_dim} axes, got {grid.ndim}")
        self.grid = grid
        device = self.control.device
        self.mass = torch.zeros((Nt, *grid.shape), dtype=torch.float64, device=device)
        self.flux = torch.zeros((Nt, *grid.shape, self.act_dim), dtype=torch.float64, device=device)
        self.control = torch.zeros((Nt, *grid.shape, self.act_dim), device=device)

    @property
    def started(self) -> bool:
        return self.grid is not None

    @torch.no_grad()
    def add(self, m: Any, alpha: Any) -> None:
        """Average in a best response: its crowd ``m`` ``(Nt+1, *space)`` and control ``alpha``
        ``(Nt, *space, d)`` (arrays or tensors); ``alpha^n`` is weighed by ``m^n``, where it acts."""
        m = torch.as_tensor(m, dtype=torch.float64, device=self.mass.device)
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=self.mass.device)
        levels, space = self.mass.shape[0], tuple(self.mass.shape[1:])
        if tuple(m.shape) != (levels + 1, *space) or alpha.shape != self.flux.shape:
            raise ValueError(f"m and alpha must have shapes {(levels + 1, *space)} and "
                             f"{tuple(self.flux.shape)}, got {tuple(m.shape)} and {tuple(alpha.shape)}")
        m = m[:-1]
        self.mass += m
        self.flux += m[..., None] * alpha
        visited = (self.mass > 0.0)[..., None]
        self.control = torch.where(visited, self.flux / torch.where(visited, self.mass[..., None], 1.0),
                                   alpha).to(self.control.dtype)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The average control ``(B, d)`` at observations ``(B, 2 + d)``, clipped to ``+-max_action``."""
        import array_api_compat.torch as xp

        from mfg_rl.backends.interp import interp_levels

        if self.grid is None:
            raise RuntimeError("GridAverage.act before start: no grid yet")
        levels = self.control.shape[0]
        level = torch.clamp(torch.round(obs[:, 0] * levels).to(torch.int64), 0, levels - 1)
        x = obs[:, 1 : 1 + self.act_dim].to(self.control.dtype)
        alpha = interp_levels(xp, self.grid, self.control, level, x[:, 0] if self.act_dim == 1 else x)
        return torch.clamp(torch.stack(alpha, dim=1), -self.max_action, self.max_action)

    def get_extra_state(self) -> dict[str, Any]:
        grid = self.grid
        return {} if grid is None else {"bounds": grid.bounds, "shape": grid.shape, "boundary": grid.boundary}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.grid = Grid(state["bounds"], state["shape"], state["boundary"]) if state else None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in ("mass", "flux", "control"):  # sized by the grid: take the saved shapes
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args)


class DAFPNetworks(nn.Module):
    """The best response ``best_response`` (``ActorCritic`` for ``dafp``, ``SoftmaxQNetworks`` for
    ``dafp-q``) and the ``average`` policy (``AveragePolicy``, or ``GridAverage``); ``act`` is the
    average policy's control (what D-AFP returns, scores and checkpoints)."""

    def __init__(self, best_response: nn.Module, average: AveragePolicy | GridAverage) -> None:
        super().__init__()
        self.best_response = best_response
        self.average = average

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The average policy's deterministic control, ``(B, d)``, in the game's units."""
        return self.average.act(obs)


def dafp_networks(params: Any, obs_dim: int, act_dim: int, max_action: float) -> DAFPNetworks:
    """D-AFP's networks for ``params`` (``DAFPHyperparameters``) and the env's spaces."""
    best_response = ActorCritic(obs_dim, act_dim, params.hidden, params.log_std_init, max_action)
    return DAFPNetworks(best_response, average_policy(params, act_dim, max_action))


def dafp_q_networks(params: Any, obs_dim: int, act_dim: int, max_action: float) -> DAFPNetworks:
    """D-AFP-Q's networks for ``params`` (``DAFPQHyperparameters``): OMD's softmax Q-networks as the
    best response, beside the average policy."""
    from mfg_rl.agents.softmax_q import softmax_q_networks

    best_response = softmax_q_networks(params, obs_dim, act_dim, max_action)
    return DAFPNetworks(best_response, average_policy(params, act_dim, max_action))


def average_policy(params: Any, act_dim: int, max_action: float) -> AveragePolicy | GridAverage:
    """The average policy that ``params.average`` names: ``"network"`` learnt, ``"grid"`` exact."""
    if params.average == "grid":
        return GridAverage(act_dim, max_action)
    return AveragePolicy(act_dim, params.average_hidden, max_action)


class Reservoir:
    """Reservoir of ``(state, alpha)`` rows, one preallocated ``(capacity, width)`` tensor on ``device``."""

    def __init__(self, capacity: int, width: int, device: Any) -> None:
        self.data = torch.zeros(capacity, width, device=device)
        self.seen = 0  # rows offered so far
        self.size = 0

    @property
    def capacity(self) -> int:
        return self.data.shape[0]

    def add(self, rows: torch.Tensor, generator: torch.Generator) -> None:
        """Offer ``rows`` ``(B, width)``: row ``j`` (the ``n``-th offered, from 0) takes slot ``n`` while
        there is room, else a uniform slot in ``[0, n]`` when that is below the capacity (the later
        row wins a slot drawn twice, as in the sequential algorithm)."""
        count = rows.shape[0]
        number = torch.arange(self.seen, self.seen + count, device=rows.device, dtype=torch.float64)
        draw = torch.rand(count, generator=generator, device=rows.device, dtype=torch.float64)
        slot = torch.where(number < self.capacity, number, torch.floor(draw * (number + 1.0))).to(torch.int64)
        keep = slot < self.capacity
        slot, order = slot[keep], torch.arange(count, device=rows.device)[keep]
        winner = torch.full((self.capacity,), -1, dtype=torch.int64, device=rows.device)
        winner.scatter_reduce_(0, slot, order, reduce="amax")
        filled = torch.nonzero(winner >= 0)[:, 0]
        self.data[filled] = rows[winner[filled]].to(self.data.dtype)
        self.seen += count
        self.size = min(self.seen, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` rows drawn uniformly (with replacement)."""
        index = torch.randint(self.size, (batch_size,), generator=generator, device=self.data.device)
        return self.data[index]

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data[: self.size].cpu(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])
        self.size = min(self.seen, self.capacity)
        self.data[: self.size] = state["data"].to(self.data.device)


@torch.no_grad()
def play_horizon(env: Any, act: Any, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every agent of the vector ``env`` plays ``act(obs) -> action`` for one horizon from ``m0``.

    Returns ``(obs, inside)``: the observations at levels ``0..Nt``, ``(Nt+1, N, 2 + d)`` (the last
    level from ``final_obs``), and whether each agent is still in the domain there, ``(Nt+1, N)``
    (an agent that exits during step ``n`` is out from level ``n`` on). ``env`` is reset first.
    """
    obs, _ = env.reset(seed=seed)
    levels, inside = [obs], [torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device)]
    for _ in range(env.unwrapped.game.Nt):
        obs, _, _, _, info = env.step(act(obs))
        here = obs
        if "final_obs" in info:
            here = torch.where(info["_final_obs"][:, None], info["final_obs"], obs)
        levels.append(here)
        inside.append(inside[-1] & ~info["exited"])
    return torch.stack(levels), torch.stack(inside)


def crowd_histogram(game: Any, obs: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The model-free crowd: per level, the histogram of the agents inside over the grid's cells,

        m^n_i = #{agents inside, x in cell i at level n} / (N h^d),   shape (Nt+1, *space),

    float64 on the observations' device, of ``play_horizon``'s ``(obs, inside)``. Each level
    integrates to the fraction of agents inside; its error is the sampling error,
    ``std(m^n_i) = sqrt(m^n_i (1 - h^d m^n_i) / (N h^d))``, plus the env's time stepping against the scheme's.
    """
    grid = game.grid
    levels, count = obs.shape[0], obs.shape[1]
    flat = torch.zeros(levels, count, dtype=torch.int64, device=obs.device)
    for d, (size, h) in enumerate(zip(grid.shape, grid.spacing, strict=True)):
        cell = torch.floor((obs[..., 1 + d].to(torch.float64) - game.low[d]) / h).to(torch.int64)
        flat = flat * size + torch.clamp(cell, 0, size - 1)
    cells = int(torch.tensor(grid.shape).prod())
    flat = flat + cells * torch.arange(levels, device=obs.device)[:, None]
    counts = torch.zeros(levels * cells, dtype=torch.float64, device=obs.device)
    counts.index_add_(0, flat.reshape(-1), inside.reshape(-1).to(torch.float64))
    return counts.reshape(levels, *grid.shape) / (count * grid.cell_volume)
