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

import warnings
from typing import Any

import numpy as np

from mfg_rl.backends.interp import interp_levels
from mfg_rl.backends.torch_backend import checked_torch_device
from mfg_rl.checks import check_real
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
        max_action: the game's maximal speed, the bound of each control component
            ``|alpha_k| <= max_action``. With bounded controls (the Hamiltonian's ``max_speed``)
            the default is that speed, and ``|alpha| <= max_speed`` is enforced; otherwise it is
            twice the speed ``crowd_speed(0.999)`` that 99.9% of the equilibrium crowd stays
            under (at least 1). Either way a ``UserWarning`` says when the bound clips the
            equilibrium control of more than 0.1% of the crowd (its returns would then not be
            the PDE's). Both leave out the cells at an exit, where the scheme's control
            ``~ 2u/h`` is an artefact; the warning also every node within ``max_action dt`` of
            an exit, from which a clipped control still takes the agent out within the step.
            A given one must be a finite number > 0 whose control cost ``L`` fits float32.
    """

    def __init__(self, eq: Equilibrium, device: Any = "cpu", max_action: float | None = None) -> None:
        import torch

        problem: MFGProblem = eq.problem
        self.eq = eq
        self.problem = problem
        self.device = checked_torch_device(device)
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
            max_action = self.max_speed or max(1.0, 2.0 * self.crowd_speed(0.999))
        max_action = check_real("max_action", max_action, 0.0, open_low=True)
        if self.max_speed is not None and max_action > self.max_speed * (1.0 + 1e-12):
            raise ValueError(f"max_action={max_action:g} exceeds the Hamiltonian's max_speed="
                             f"{self.max_speed:g}: controls beyond it are not admissible; use max_action <= "
                             "max_speed")
        self._check_fastest_cost(max_action)
        self.max_action = float(max_action)
        clipped = self.clipped_fraction(self.max_action)
        if clipped > 1e-3:
            warnings.warn(f"max_action={self.max_action:g} clips the equilibrium control of {clipped:.2%} of "
                          f"the crowd, so the env's returns are not the PDE's; 99.9% of the crowd moves "
                          f"at most at {self.crowd_speed(0.999):.3g}: pass a max_action above it",
                          UserWarning, stacklevel=2)
        self.table = self._tensor(self._equilibrium_table())
        nodes = tuple(self._tensor(a) for a in self.grid.mesh())
        self.nodes = nodes[0] if self.ndim == 1 else nodes  # as the costs take them, float32 on device
        m0 = np.asarray(problem.m0, dtype=np.float64).reshape(-1)
        self._cdf = torch.as_tensor(np.cumsum(m0) / m0.sum(), dtype=torch.float64, device=self.device)

    def _check_fastest_cost(self, max_action: float) -> None:
        """ValueError when the cost of the fastest control, ``max_action`` along one axis, is not a
        finite float32 number at some node (the precision of the env's rewards)."""
        points = self.problem.points()
        alpha = max_action + 0.0 * (points if self.ndim == 1 else points[0])
        if self.ndim > 1:
            alpha = (alpha,) + tuple(0.0 * alpha for _ in range(self.ndim - 1))
        with np.errstate(all="ignore"):
            cost = np.asarray(self.problem.hamiltonian.lagrangian(points, alpha, 0.0 * self.problem.m0))
        if not np.all(np.abs(cost) <= np.finfo(np.float32).max):
            raise ValueError(f"max_action={max_action:g} makes the cost of the fastest control, "
                             f"L(x, max_action) = {np.max(np.abs(cost)):.3g}, overflow float32 (the env's "
                             f"rewards); use a smaller max_action (99.9% of the crowd moves at most at "
                             f"{self.crowd_speed(0.999):.3g})")

    @property
    def xp(self) -> Any:
        """The tables' array namespace (array_api_compat's torch); a property, so a ``Game`` pickles."""
        import array_api_compat.torch as xp

        return xp

    def _away_from_exits(self, reach: float = 0.0) -> np.ndarray:
        """Nodes farther than ``reach`` from every exit face and not in a cell at an exit,
        boolean ``grid.shape``.

        Next to an exit the scheme's control is ``~ u / distance``: a discretisation artefact
        that would otherwise set the action bound.
        """
        keep = np.ones(self.grid.shape, dtype=bool)
        for d, ((low_kind, high_kind), (lo, hi)) in enumerate(zip(self.grid.boundary, self.grid.bounds,
                                                                  strict=True)):
            x = self.grid.coordinates()[d]
            limit = max(reach, 0.5 * self.grid.spacing[d]) * (1.0 + 1e-9)
            near = np.zeros(x.shape, dtype=bool)
            if low_kind == "exit":
                near |= x - lo <= limit
            if high_kind == "exit":
                near |= hi - x <= limit
            shape = [1] * self.ndim
            shape[d] = x.size
            keep &= ~near.reshape(shape)
        return keep

    def _crowd_speeds(self, reach: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``(speed, weight)`` flat over all levels and the nodes ``_away_from_exits(reach)``: the
        equilibrium's ``max_k |alpha*_k|`` and the crowd's share there, ``m^n_i / sum m``."""
        away = self._away_from_exits(reach)
        speed = np.abs(self.controls).max(axis=-1)[:, away]
        mass = np.clip(self.eq.m.numpy(), 0.0, None)
        return speed.ravel(), (mass[:, away] / mass.sum()).ravel()

    def crowd_speed(self, fraction: float) -> float:
        """The speed ``max_k |alpha*_k|`` that ``fraction`` of the equilibrium crowd (weighted by
        ``m`` over all levels, exit cells left out) stays under, e.g. ``crowd_speed(0.999)``."""
        speed, weight = self._crowd_speeds()
        order = np.argsort(speed)
        index = np.searchsorted(np.cumsum(weight[order]), fraction * weight.sum())
        return float(speed[order][min(index, speed.size - 1)])

    def clipped_fraction(self, bound: float) -> float:
        """Share of the equilibrium crowd (weighted as in ``crowd_speed``) whose control has a
        component beyond ``bound``, left out the nodes within ``bound dt`` of an exit, from which
        the clipped control still takes the agent out within the step."""
        speed, weight = self._crowd_speeds(bound * self.dt)
        return float(weight[speed > bound * (1.0 + 1e-6)].sum())

    def _tensor(self, array: np.ndarray) -> Any:
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=self.device)

    def _equilibrium_table(self) -> np.ndarray:
        return self.crowd_table(self.eq.m.numpy())

    def crowd_table(self, m: np.ndarray) -> np.ndarray:
        """Channels ``(m, F)`` of a crowd ``m`` ``(Nt+1, *space)``: shape ``(Nt+1, *space, C)``.

        Every level is a sub-probability density, ``h^d sum_i m_i <= 1``, so ``m <= 1/h^d``: the
        bound of the density observation.
        """
        problem = self.problem
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (self.Nt + 1, *self.grid.shape) or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ValueError(
                f"crowd m must be a finite, non-negative array of shape {(self.Nt + 1, *self.grid.shape)}"
            )
        mass = m.reshape(m.shape[0], -1).sum(axis=1) * self.grid.cell_volume
        if np.any(mass > 1.0 + 1e-6):
            raise ValueError(f"crowd m must have mass h^d sum(m) <= 1 at every level, got up to "
                             f"{mass.max():.6g}")
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

    def admissible(self, action: Any, scale: float = 1.0) -> tuple[Any, Any]:
        """``(alpha, clipped)``: the control ``alpha = scale * action`` of ``action`` ``(N, d)``,
        clipped to ``[-max_action, max_action]^d`` (compared in the action's units, so an action
        exactly at the bound is not clipped) and, with a ``max_speed`` in 2D/3D, into the ball
        ``|alpha| <= max_speed``. ``clipped`` ``(N,)`` flags the actions that were changed."""
        import torch

        limit = self.max_action / scale
        clipped = torch.any(torch.abs(action) > limit, dim=1)
        alpha = torch.clamp(action, -limit, limit)
        if scale != 1.0:
            alpha = alpha * scale
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
