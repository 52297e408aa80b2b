"""Monotone upwind (Godunov) discretisation of ``-nu Lap u + H(x, grad u, m)``.

Per axis, with one-sided differences ``p- = (u_i - u_{i-1})/h`` and ``p+ = (u_{i+1} - u_i)/h``,
the numerical Hamiltonian of ``H = w(m) |p|^2 / 2`` is (Achdou & Capuzzo-Dolcetta 2010)

    H_h = w/2 * sum_d [ max(p-, 0)^2 + min(p+, 0)^2 ],

non-decreasing in ``u_i`` and non-increasing in its neighbours: the scheme is monotone and
its Jacobian an M-matrix. Boundary faces use ghost values: ``u_ghost = u_0`` on no-flux
walls, ``u_ghost = 2 c - u_0`` on exits (``u = c`` on the face), wrap-around on periodic axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.stencil import StencilMatrix


class UpwindOperator:
    """The space part of the HJB step and its exact Jacobian, batched over leading dims."""

    def __init__(self, problem: MFGProblem, backend: Backend) -> None:
        grid = problem.grid
        self.xp = backend.xp
        self.ndim = grid.ndim
        self.nu = problem.nu
        self.h = grid.spacing
        self.exit_cost = float(problem.exit_cost)
        self.sides = []
        for d, (low, high) in enumerate(grid.boundary):
            if low == "periodic":
                self.sides.append(None)
                continue
            n = grid.shape[d]
            shape = [1] * grid.ndim
            shape[d] = n
            index = np.arange(n).reshape(shape)
            self.sides.append(
                (
                    backend.asarray(np.broadcast_to(index == 0, grid.shape), dtype=None) > 0.5,
                    backend.asarray(np.broadcast_to(index == n - 1, grid.shape), dtype=None) > 0.5,
                    1.0 if low == "no_flux" else -1.0,
                    1.0 if high == "no_flux" else -1.0,
                )
            )

    def neighbours(self, u: Any, d: int) -> tuple[Any, Any]:
        """``u_{i-1}`` and ``u_{i+1}`` along axis ``d`` (last ``ndim`` axes), with ghosts."""
        xp = self.xp
        axis = u.ndim - self.ndim + d
        u_minus, u_plus = xp.roll(u, 1, axis=axis), xp.roll(u, -1, axis=axis)
        side = self.sides[d]
        if side is not None:
            low, high, fold_low, fold_high = side
            ghost_low = u if fold_low > 0 else 2.0 * self.exit_cost - u
            ghost_high = u if fold_high > 0 else 2.0 * self.exit_cost - u
            u_minus = xp.where(low, ghost_low, u_minus)
            u_plus = xp.where(high, ghost_high, u_plus)
        return u_minus, u_plus

    def fold_ghosts(self, d: int, center: Any, c_minus: Any, c_plus: Any) -> tuple[Any, Any, Any]:
        """Fold the coefficients of ghost nodes along axis ``d`` into the diagonal.

        ``u_ghost = +-u_0`` (+ a constant on exits) makes the ghost's coefficient an
        extra ``+-c`` on the boundary node itself; periodic axes are left as they are.
        Returns ``(center, c_minus, c_plus)``.
        """
        side = self.sides[d]
        if side is None:
            return center, c_minus, c_plus
        xp = self.xp
        low, high, fold_low, fold_high = side
        center = center + xp.where(low, fold_low * c_minus, 0.0)
        center = center + xp.where(high, fold_high * c_plus, 0.0)
        return center, xp.where(low, 0.0, c_minus), xp.where(high, 0.0, c_plus)

    def apply(self, u: Any, w: Any) -> tuple[Any, StencilMatrix]:
        """``-nu Lap_h u + w H_h(u)`` and its Jacobian ``d/du`` (without a time term).

        ``u`` has shape ``(*batch, *grid.shape)``; ``w`` broadcasts against it.
        """
        xp = self.xp
        value = 0.0 * u
        center = 0.0 * u
        minus, plus = [], []
        for d in range(self.ndim):
            h = self.h[d]
            diffusion = self.nu / h**2
            u_minus, u_plus = self.neighbours(u, d)
            back = xp.maximum((u - u_minus) / h, 0.0)
            fwd = xp.minimum((u_plus - u) / h, 0.0)
            value = value + 0.5 * w * (back * back + fwd * fwd) - diffusion * (u_plus - 2.0 * u + u_minus)
            c_minus = -w * back / h - diffusion
            c_plus = w * fwd / h - diffusion
            center = center + w * (back - fwd) / h + 2.0 * diffusion
            center, c_minus, c_plus = self.fold_ghosts(d, center, c_minus, c_plus)
            minus.append(c_minus)
            plus.append(c_plus)
        return value, StencilMatrix(center, tuple(minus), tuple(plus))

    def gradient(self, u: Any) -> tuple[Any, ...]:
        """Upwind-consistent gradient used for the optimal control, one array per axis.

        ``p_d = max(p-, 0) + min(p+, 0)``: the one-sided slope the numerical Hamiltonian
        actually uses (zero where both point away), so ``alpha = -w p`` is the discrete
        optimal drift of the scheme.
        """
        xp = self.xp
        grads = []
        for d in range(self.ndim):
            u_minus, u_plus = self.neighbours(u, d)
            back = xp.maximum((u - u_minus) / self.h[d], 0.0)
            fwd = xp.minimum((u_plus - u) / self.h[d], 0.0)
            grads.append(back + fwd)
        return tuple(grads)
