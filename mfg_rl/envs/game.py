"""What an environment needs from an equilibrium: tables on the device, sampling, walls.

The environments see the game through a ``Game``: the equilibrium crowd tabulated on the
grid as float32 tensors on one torch device, with channels gathered per node so that one
lookup per step serves the observation and the reward,

    table[n, i, :] = ( m^n_i,  F^n_i ),   F^n = f(., m^{n+1}) (n < Nt), F^Nt = g(., m^Nt),

and the control cost ``L(x, alpha, m)`` of the problem's Hamiltonian (``lagrangian``, read at
the agents' crowd ``m``)

(the solvers' time pairing: the step from ``t_n`` to ``t_{n+1}`` pays the running cost of
the crowd at ``t_{n+1}``), plus the boundary rules of the problem's box and the initial
law ``m0`` to sample from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mfg_rl.backends.interp import interp_levels
from mfg_rl.core import MFGProblem
from mfg_rl.solvers import Equilibrium


def equilibrium_controls(eq: Equilibrium) -> np.ndarray:
    """The equilibrium feedback at every level, shape ``(Nt+1, *space, d)`` (float64)."""
    controls = eq.controls()
    return controls[..., None] if eq.problem.ndim == 1 else np.moveaxis(controls, 1, -1)


class Game:
    """An equilibrium's crowd, costs and box as torch tensors on ``device``.

    Args:
        eq: the computed equilibrium.
        device: torch device of the tables and of the agents.
        max_action: bound of each action component; default ``2 max|alpha*|`` over the
            equilibrium (at least 1) at nodes not next to an exit, so the equilibrium control
            is admissible everywhere except in the cell at an exit, where clipping it still
            takes the agent out within the step. With bounded controls (the Hamiltonian's
            ``max_speed``) it is that speed, and ``|alpha| <= max_speed`` is enforced.
    """

    def __init__(self, eq: Equilibrium, device: Any = "cpu", max_action: float | None = None) -> None:
        import torch

        problem: MFGProblem = eq.problem
        self.eq = eq
        self.problem = problem
        self.device = torch.device(device)
        self.grid = problem.grid
        self.ndim = problem.ndim
        self.T = problem.time.T
        self.Nt = problem.time.Nt
        self.dt = problem.time.dt
        self.sigma = problem.sigma
        self.exit_cost = problem.exit_cost
        self.low = [b[0] for b in self.grid.bounds]
        self.high = [b[1] for b in self.grid.bounds]
        self.controls = equilibrium_controls(eq)
        self.max_speed = problem.hamiltonian.max_speed
        if max_action is None:
            max_action = self.max_speed or max(
                1.0, 2.0 * float(np.abs(self.controls[:, self._away_from_exits()]).max()))
        if not (isinstance(max_action, (int, float)) and math.isfinite(max_action) and max_action > 0):
            raise ValueError(f"max_action must be a finite number > 0, got {max_action!r}")
        if self.max_speed is not None and max_action > self.max_speed * (1.0 + 1e-12):
            raise ValueError(f"max_action={max_action:g} exceeds the Hamiltonian's max_speed="
                             f"{self.max_speed:g}: controls beyond it are not admissible; use max_action <= "
                             "max_speed")
        self.max_action = float(max_action)
        self.table = self._tensor(self._equilibrium_table())
        nodes = tuple(self._tensor(a) for a in self.grid.mesh())
        self.nodes = nodes[0] if self.ndim == 1 else nodes  # as the costs take them, float32 on device
        m0 = np.asarray(problem.m0, dtype=np.float64).reshape(-1)
        self._cdf = torch.as_tensor(np.cumsum(m0) / m0.sum(), dtype=torch.float64, device=self.device)

    @property
    def xp(self) -> Any:
        """The tables' array namespace (array_api_compat's torch); a property, so a ``Game`` pickles."""
        import array_api_compat.torch as xp

        return xp

    def _away_from_exits(self) -> np.ndarray:
        """Nodes not next to an exit face, boolean ``grid.shape``.

        Next to an exit the scheme's control is ``~ 2 u / h`` (the exit is half a cell away):
        a discretisation artefact that would otherwise set the action bound.
        """
        keep = np.ones(self.grid.shape, dtype=bool)
        for d, (low_kind, high_kind) in enumerate(self.grid.boundary):
            index = [slice(None)] * self.ndim
            for kind, end in ((low_kind, 0), (high_kind, -1)):
                if kind == "exit":
                    index[d] = end
                    keep[tuple(index)] = False
        return keep

    def _tensor(self, array: np.ndarray) -> Any:
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=self.device)

    def _equilibrium_table(self) -> np.ndarray:
        return self.crowd_table(self.eq.m.numpy())

    def crowd_table(self, m: np.ndarray) -> np.ndarray:
        """Channels ``(m, F)`` of a crowd ``m`` ``(Nt+1, *space)``: shape ``(Nt+1, *space, C)``."""
        problem = self.problem
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (self.Nt + 1, *self.grid.shape) or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ValueError(
                f"crowd m must be a finite, non-negative array of shape {(self.Nt + 1, *self.grid.shape)}"
            )
        cost = np.empty_like(m)
        for n in range(self.Nt):
            cost[n] = problem.evaluate_cost(problem.running_cost, m[n + 1])
        cost[-1] = problem.evaluate_cost(problem.terminal_cost, m[-1])
        return np.stack([m, cost], axis=-1)

    def set_crowd(self, m: Any) -> None:
        """Replace the frozen crowd by ``m`` ``(Nt+1, *space)`` (e.g. a fictitious-play average)."""
        self.table = self._tensor(self.crowd_table(np.asarray(m)))

    def observe(self, t: Any, x: Any, table: Any = None) -> Any:
        """Observations ``[t/T, x, m(t, x)]`` ``(N, 2 + d)`` for any times ``(N,)`` and positions ``(N, d)``.

        ``t`` is rounded to the nearest level; the density is read from ``table`` (default:
        the current frozen crowd). Lets a policy of observations act as a policy of ``(t, x)``.
        """
        import torch

        table = self.table if table is None else table
        level = torch.clamp(torch.round(t * (self.Nt / self.T)).to(torch.int64), 0, table.shape[0] - 1)
        density = self.lookup(table, level, x)[0]
        return torch.cat([(level.to(torch.float32) / self.Nt)[:, None], x, density[:, None]], dim=1)

    # -- the crowd at the agents ------------------------------------------------------
    def lagrangian(self, x: Any, alpha: Any, m: Any) -> Any:
        """The running control cost ``L(x, alpha, m)`` of the agents: ``x``, ``alpha`` ``(N, d)``,
        ``m`` ``(N,)`` their crowd; shape ``(N,)``."""
        if self.ndim == 1:
            return self.problem.hamiltonian.lagrangian(x[:, 0], alpha[:, 0], m)
        return self.problem.hamiltonian.lagrangian(tuple(x.unbind(1)), tuple(alpha.unbind(1)), m)

    def admissible(self, action: Any) -> tuple[Any, Any]:
        """``(alpha, clipped)``: ``action`` ``(N, d)`` clipped to ``[-max_action, max_action]^d`` and,
        with a ``max_speed`` in 2D/3D, into the ball ``|alpha| <= max_speed``."""
        import torch

        limit = self.max_action
        clipped = torch.any(torch.abs(action) > limit, dim=1)
        alpha = torch.clamp(action, -limit, limit)
        if self.max_speed is not None and self.ndim > 1:
            norm = torch.linalg.vector_norm(alpha, dim=1, keepdim=True)
            outside = norm > self.max_speed
            alpha = torch.where(outside, alpha * (self.max_speed / torch.clamp(norm, min=1e-30)), alpha)
            clipped = clipped | outside[:, 0]
        return alpha, clipped

    def lookup(self, table: Any, level: Any, x: Any) -> Any:
        """``table[level](x)`` per agent: C tensors ``(N,)`` from ``level`` ``(N,)`` and ``x`` ``(N, d)``."""
        points = x[:, 0] if self.ndim == 1 else x
        return interp_levels(self.xp, self.grid, table, level, points)

    def empirical_table(self, x: Any, weights: Any, terminal: bool, bandwidth: Any = "scott") -> Any:
        """One-level table ``(1, *space, C)`` of the agents' own crowd (KDE of weighted positions).

        ``x`` ``(N, d)``; ``weights`` ``(N,)`` are ``1/N`` for agents still inside and 0 for those
        who left. A bandwidth rule is floored at one cell, ``sigma_d >= h_d``, so it is defined
        for 0 or 1 agent inside; the density is rescaled to integrate to the fraction inside,
        ``sum_i m_i |cell| = sum w`` (kernel mass beyond an exit is given back, as the particle
        FP does), which is zero once everyone has left. No host sync beyond the KDE's own.
        ``terminal`` puts ``g`` in the cost channel.
        """
        import torch

        from mfg_rl.backends.kde import kde

        problem = self.problem
        points = x[:, 0] if self.ndim == 1 else x
        floor = self.grid.spacing if isinstance(bandwidth, str) else None
        m = kde(self.xp, points, weights, self.grid, bandwidth=bandwidth, method="binned",
                min_bandwidth=floor)
        mass = torch.sum(m) * self.grid.cell_volume
        inside = torch.sum(weights)
        m = m * torch.where(mass > 0, inside / torch.clamp(mass, min=torch.finfo(m.dtype).tiny), 0.0)
        cost = problem.terminal_cost if terminal else problem.running_cost
        f = problem.evaluate_cost(cost, m, self.nodes)
        return torch.stack([m, f], dim=-1)[None]

    # -- agents' states ---------------------------------------------------------------
    def sample_initial(self, n: int, generator: Any) -> Any:
        """``n`` positions drawn from ``m0`` (cell by its mass, uniform inside it): ``(n, d)``."""
        import torch

        u = torch.rand(n, generator=generator, device=self.device, dtype=torch.float64)
        flat = torch.clamp(torch.searchsorted(self._cdf, u, right=True), max=self._cdf.numel() - 1)
        jitter = torch.rand(n, self.ndim, generator=generator, device=self.device, dtype=torch.float64)
        columns = []
        for d in reversed(range(self.ndim)):
            size = self.grid.shape[d]
            index = flat % size
            flat = flat // size
            columns.append(self.low[d] + (index + jitter[:, d]) * self.grid.spacing[d])
        return torch.stack(columns[::-1], dim=1).to(torch.float32)

    def apply_walls(self, x_old: Any, x_new: Any, generator: Any) -> tuple[Any, Any]:
        """Boundary rules after an Euler-Maruyama step: ``(x, exited)``, shapes ``(N, d)``, ``(N,)``.

        Periodic axes wrap; no-flux walls reflect (folding, exact for reflected Brownian
        motion); exits absorb an agent that crossed, or that crossed within the step
        with the Brownian-bridge probability ``exp(-2 d_0 d_1 / (sigma^2 dt))`` (``d``:
        distances to the exit before and after), which removes the O(sqrt dt) bias of
        checking only at the grid times. Exited agents sit on the exit face.
        """
        import torch

        exited = torch.zeros(x_new.shape[0], dtype=torch.bool, device=self.device)
        if self.ndim == 1 and not self.grid.has_exit():
            return self._wall_column(x_new[:, 0], 0)[:, None], exited
        columns = []
        for d, (low_kind, high_kind) in enumerate(self.grid.boundary):
            lo, hi = self.low[d], self.high[d]
            x = x_new[:, d]
            if low_kind == high_kind and low_kind != "exit":
                columns.append(self._wall_column(x, d))
                continue
            for kind, face, inside in ((low_kind, lo, x_old[:, d] - lo), (high_kind, hi, hi - x_old[:, d])):
                after = (x - face) if face == lo else (face - x)
                if kind == "exit":
                    crossed = after <= 0.0
                    if self.sigma > 0:
                        rate = -2.0 / (self.sigma**2 * self.dt)
                        chance = torch.exp(rate * torch.clamp(inside, min=0.0) * torch.clamp(after, min=0.0))
                        draw = torch.rand(x.shape[0], generator=generator, device=self.device)
                        crossed = crossed | (draw < chance)
                    exited = exited | crossed
                    x = torch.where(crossed, torch.full_like(x, face), x)
                else:
                    x = torch.where(after < 0.0, 2.0 * face - x, x)
            columns.append(torch.clamp(x, lo, hi))
        return torch.stack(columns, dim=1), exited

    def _wall_column(self, x: Any, d: int) -> Any:
        """Axis ``d`` without exits: wrap (periodic) or fold into ``[lo, hi]`` (two walls)."""
        import torch

        lo, length = self.low[d], self.high[d] - self.low[d]
        if self.grid.boundary[d][0] == "periodic":
            return torch.remainder(x - lo, length).add_(lo)
        y = torch.remainder(x - lo, 2.0 * length)
        return torch.where(y > length, 2.0 * length - y, y).add_(lo)
