"""The upwind transport operator of a given drift: how a fixed policy moves values and mass.

For a feedback control ``alpha = (alpha_0, .., alpha_{d-1})`` on the grid, with one-sided
differences ``D-_d J = (J_i - J_{i-e_d})/h_d`` and ``D+_d J = (J_{i+e_d} - J_i)/h_d``,

    A(alpha) J = -nu Lap_h J - sum_d [ max(alpha_d, 0) D+_d J + min(alpha_d, 0) D-_d J ],

the generator of the controlled diffusion, upwinded so that ``I/dt + A`` is an M-matrix for
every drift. Ghost nodes are those of ``NumericalHamiltonian`` (no-flux, periodic, exits with
``J = exit_cost`` on the face), so ``A(alpha)`` at the scheme's optimal control equals the
HJB Newton Jacobian wherever one one-sided slope is active, and ``A(alpha)^T`` drives the
Fokker-Planck step exactly like ``DiscreteMFG.fp_matrices``. With exits the operator is
affine: ``A(alpha) J = matrix(alpha) J + apply(0, alpha)``.
"""

from __future__ import annotations

from typing import Any

from mfg_rl.backends import Backend
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.numerical_hamiltonian import NumericalHamiltonian
from mfg_rl.solvers.stencil import StencilMatrix


class TransportOperator:
    """``A(alpha)`` and its matrix, batched over leading dimensions (e.g. time).

    ``alpha`` is a tuple of ``ndim`` arrays of shape ``(*batch, *grid.shape)``, one per axis.
    """

    def __init__(self, problem: MFGProblem, backend: Backend) -> None:
        self.xp = backend.xp
        self.upwind = NumericalHamiltonian(problem, backend)
        self.ndim = problem.grid.ndim
        self.nu = problem.nu
        self.h = problem.grid.spacing

    def _check(self, alpha: tuple[Any, ...]) -> None:
        if len(alpha) != self.ndim:
            raise ValueError(f"alpha must have one component per axis ({self.ndim}), got {len(alpha)}")

    def apply(self, J: Any, alpha: tuple[Any, ...]) -> Any:
        """``A(alpha) J`` with ghost values (affine on exits); ``J`` of shape ``(*batch, *grid.shape)``."""
        self._check(alpha)
        xp = self.xp
        value = 0.0 * J
        for d in range(self.ndim):
            h = self.h[d]
            J_minus, J_plus = self.upwind.neighbours(J, d)
            forward = xp.maximum(alpha[d], 0.0) * (J_plus - J) / h
            backward = xp.minimum(alpha[d], 0.0) * (J - J_minus) / h
            value = value - self.nu / h**2 * (J_plus - 2.0 * J + J_minus) - forward - backward
        return value

    def matrix(self, alpha: tuple[Any, ...]) -> StencilMatrix:
        """The linear part of ``A(alpha)`` as a ``StencilMatrix`` (ghosts folded in)."""
        self._check(alpha)
        xp = self.xp
        center = 0.0 * alpha[0]
        minus, plus = [], []
        for d in range(self.ndim):
            h = self.h[d]
            diffusion = self.nu / h**2
            right, left = xp.maximum(alpha[d], 0.0) / h, xp.minimum(alpha[d], 0.0) / h
            center = center + right - left + 2.0 * diffusion
            center, c_minus, c_plus = self.upwind.fold_ghosts(d, center, left - diffusion, -right - diffusion)
            minus.append(c_minus)
            plus.append(c_plus)
        return StencilMatrix(center, tuple(minus), tuple(plus))
