"""The numerical Hamiltonian: the one owner of the upwind scheme for ``-nu Lap u + H(x, grad u, m)``.

Per axis, with one-sided differences ``p- = (u_i - u_{i-1})/h`` and ``p+ = (u_{i+1} - u_i)/h``,
the upwind squared slope and the numerical Hamiltonian of an isotropic ``H = psi(x, |p|^2, m)``
(``mfg_rl.core.hamiltonians``) are (Achdou & Capuzzo-Dolcetta 2010 for the quadratic case)

    S_h = sum_d [ max(p-, 0)^2 + min(p+, 0)^2 ],        H_h = psi(x, S_h, m),

non-decreasing in ``u_i`` and non-increasing in its neighbours (``psi`` non-decreasing): the
scheme is monotone and its Jacobian an M-matrix. With ``g = 2 dpsi/ds`` at ``S_h`` the
Jacobian row is ``g`` times that of ``S_h / 2``, the optimal control ``alpha_d = -g P_d``
(``P_d = max(p-, 0) + min(p+, 0)``, the slope the scheme uses) and the Hessian
``d2 psi(S_h) = g Hess(S_h / 2) + 2 dg/ds D(S_h/2) D(S_h/2)^T``. Boundary faces use ghost
values: ``u_ghost = u_0`` on no-flux walls, ``u_ghost = 2 c - u_0`` on exits (``u = c`` on the
face), wrap-around on periodic axes. Everything is batched over leading dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mfg_rl.backends import Backend
from mfg_rl.backends.shift import first, from_above, from_below, last
from mfg_rl.core import MFGProblem
from mfg_rl.solvers.stencil import StencilMatrix


class NumericalHamiltonian:
    """Value, Jacobian, Hessian, optimal control and Lagrangian of the upwind scheme of ``problem``.

    Arrays ``u`` and ``m`` have shape ``(*batch, *grid.shape)`` (``m`` the crowd paired with
    ``u``'s level, broadcasting against it); results have ``u``'s shape.

    Example:
        >>> import numpy as np
        >>> from mfg_rl import create_backend, problems
        >>> problem = problems.make("lq-1d", Nx=11, Nt=4)
        >>> scheme = NumericalHamiltonian(problem, create_backend("numpy"))
        >>> value, jacobian = scheme.apply(np.zeros(11), problem.m0)
        >>> float(abs(value).max()), jacobian.center.shape
        (0.0, (11,))
    """

    def __init__(self, problem: MFGProblem, backend: Backend) -> None:
        grid = problem.grid
        self.xp = backend.xp
        self.hamiltonian = problem.hamiltonian
        self.ndim = grid.ndim
        self.nu = problem.nu
        self.h = grid.spacing
        self.points = problem.points(backend)
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

    # -- ghosts ------------------------------------------------------------------------
    def neighbours(self, u: Any, d: int) -> tuple[Any, Any]:
        """``u_{i-1}`` and ``u_{i+1}`` along axis ``d`` (last ``ndim`` axes), with ghosts."""
        xp = self.xp
        axis = u.ndim - self.ndim + d
        side = self.sides[d]
        if side is None:
            return from_below(xp, u, axis), from_above(xp, u, axis)
        _, _, fold_low, fold_high = side
        low, high = first(u, axis), last(u, axis)
        ghost_low = low if fold_low > 0 else 2.0 * self.exit_cost - low
        ghost_high = high if fold_high > 0 else 2.0 * self.exit_cost - high
        return from_below(xp, u, axis, ghost_low), from_above(xp, u, axis, ghost_high)

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

    # -- slopes ------------------------------------------------------------------------
    def slopes(self, u: Any) -> tuple[list[tuple[Any, Any, Any, Any]], Any]:
        """Per axis ``(u_minus, u_plus, max(p-, 0), min(p+, 0))`` and ``S_h``."""
        xp = self.xp
        axes, s = [], 0.0
        for d in range(self.ndim):
            u_minus, u_plus = self.neighbours(u, d)
            back = xp.maximum((u - u_minus) / self.h[d], 0.0)
            fwd = xp.minimum((u_plus - u) / self.h[d], 0.0)
            axes.append((u_minus, u_plus, back, fwd))
            s = s + back * back + fwd * fwd
        return axes, s

    def bind(self, m: Any) -> Callable[[Any], tuple[Any, Any]]:
        """``s -> (psi, g)`` on the nodes with the crowd ``m`` fixed (``IsotropicHamiltonian.bind``)."""
        return self.hamiltonian.bind(self.points, m)

    def apply(self, u: Any, m: Any, bound: Callable[[Any], tuple[Any, Any]] | None = None,
              ) -> tuple[Any, StencilMatrix]:
        """``-nu Lap_h u + H_h(u, m)`` and its Jacobian ``d/du`` (without a time term); ``bound``:
        ``bind(m)`` when the caller evaluates many ``u`` in one crowd (a Newton step)."""
        axes, s = self.slopes(u)
        value, g = (self.bind(m) if bound is None else bound)(s)
        return self._assemble(u, axes, s, g, value)

    def jacobian(self, u: Any, g: Any, *, diffusion: bool = True) -> StencilMatrix:
        """The Jacobian of ``-nu Lap_h u + H_h`` with the speed factor ``g`` given (e.g. ``g + m dg/dm``);
        ``diffusion=False`` leaves out the Laplacian."""
        axes, s = self.slopes(u)
        return self._assemble(u, axes, s, g, None, self.nu if diffusion else 0.0)[1]

    def _assemble(self, u: Any, axes: list, s: Any, g: Any, psi: Any,
                  nu: float | None = None) -> tuple[Any, StencilMatrix]:
        nu = self.nu if nu is None else nu
        value = 0.0 * u if psi is None else psi  # psi has u's shape (it is built from S_h)
        center = 0.0 * u
        minus, plus = [], []
        for d, (u_minus, u_plus, back, fwd) in enumerate(axes):
            h = self.h[d]
            diffusion = nu / h**2
            if psi is not None:
                value = value - diffusion * (u_plus - 2.0 * u + u_minus)
            c_minus = -g * back / h - diffusion
            c_plus = g * fwd / h - diffusion
            center = center + g * (back - fwd) / h + 2.0 * diffusion
            center, c_minus, c_plus = self.fold_ghosts(d, center, c_minus, c_plus)
            minus.append(c_minus)
            plus.append(c_plus)
        return value, StencilMatrix(center, tuple(minus), tuple(plus))

    # -- derivatives in m (congestion) ---------------------------------------------------
    def value_dm(self, u: Any, m: Any) -> Any:
        """``d H_h / dm`` at fixed ``u`` (node by node; 0 without congestion)."""
        _, s = self.slopes(u)
        return self.hamiltonian.value_dm(self.points, s, m) + 0.0 * u

    def speed(self, u: Any, m: Any) -> tuple[Any, Any, Any]:
        """``(g, dg/ds, dg/dm)`` at ``S_h(u)``, arrays of ``u``'s shape."""
        _, s = self.slopes(u)
        ham, x = self.hamiltonian, self.points
        zero = 0.0 * u
        return (ham.speed(x, s, m) + zero, ham.speed_ds(x, s, m) + zero, ham.speed_dm(x, s, m) + zero)

    # -- the control and its cost --------------------------------------------------------
    def control(self, u: Any, m: Any) -> tuple[Any, ...]:
        """The scheme's optimal control ``alpha_d = -g(S_h) P_d``, one array per axis."""
        axes, s = self.slopes(u)
        g = self.hamiltonian.speed(self.points, s, m)
        return tuple(-g * (back + fwd) for _, _, back, fwd in axes)

    def lagrangian(self, alpha: tuple[Any, ...], m: Any) -> Any:
        """``L(x, alpha, m)`` on the nodes."""
        return self.hamiltonian.lagrangian(self.points, alpha if self.ndim > 1 else alpha[0], m)

    # -- second derivatives ---------------------------------------------------------------
    def slope_jacobian(self, u: Any) -> StencilMatrix:
        """``D(S_h / 2)``: row ``i`` holds ``d(S_h,i / 2) / du`` (ghosts folded)."""
        return self.jacobian(u, 1.0, diffusion=False)

    def hessian(self, u: Any, q: Any) -> StencilMatrix:
        """``sum_i q_i Hess_u (S_h,i / 2)``, batched: the quadratic part of the scheme's Hessian.

        Each active one-sided difference adds ``q_i / h^2 (e_i - e_j)(e_i - e_j)^T`` for its
        pair ``(i, j)``; on an exit the ghost ``2c - u_i`` makes it ``4 q_i / h^2`` on the diagonal.
        """
        xp = self.xp
        center = 0.0 * u
        minus, plus = [], []
        for d in range(self.ndim):
            axis = u.ndim - self.ndim + d
            h2 = self.h[d] ** 2
            u_minus, u_plus = self.neighbours(u, d)
            side = self.sides[d]
            ghost = 0.0 * u
            g_minus = xp.where(u - u_minus > 0.0, q / h2, 0.0)
            g_plus = xp.where(u_plus - u < 0.0, q / h2, 0.0)
            if side is not None:
                low, high, fold_low, fold_high = side
                if fold_low < 0:
                    ghost = ghost + xp.where(low, 4.0 * g_minus, 0.0)
                if fold_high < 0:
                    ghost = ghost + xp.where(high, 4.0 * g_plus, 0.0)
                g_minus = xp.where(low, 0.0, g_minus)
                g_plus = xp.where(high, 0.0, g_plus)
            from_next = from_above(xp, g_minus, axis)  # pair (i, i+1) seen from i+1
            from_prev = from_below(xp, g_plus, axis)  # pair (i-1, i) seen from i-1
            center = center + g_minus + g_plus + from_next + from_prev + ghost
            minus.append(-g_minus - from_prev)
            plus.append(-g_plus - from_next)
        return StencilMatrix(center, tuple(minus), tuple(plus))

