"""Compact-stencil matrices on a grid and the upwind discretisation of the HJB operator.

A ``StencilMatrix`` stores, for every node ``i``, its diagonal entry and one entry per
axis and direction coupling ``i`` to ``i -/+ e_d`` (arrays of the grid's shape, possibly
with leading batch dimensions such as time). Coefficients that would leave a
non-periodic box are zero; periodic axes wrap. In 1D this is a tridiagonal matrix, in
2D the 5-point matrix. Its transpose is again a ``StencilMatrix``, which is how the
Fokker-Planck step becomes the exact adjoint of the linearised HJB step.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mfg_rl.backends import Backend, SparsePattern
from mfg_rl.backends.krylov import KrylovResult, bicgstab, bicgstab_while, cyclic_tridiagonal, not_converged
from mfg_rl.backends.shift import from_above, from_below
from mfg_rl.checks import check_choice, check_flag, check_int, check_real
from mfg_rl.core import Grid
from mfg_rl.solvers.step_newton import Chunked


@dataclass(frozen=True)
class StencilMatrix:
    """``(A x)_i = center_i x_i + sum_d minus[d]_i x_{i-e_d} + plus[d]_i x_{i+e_d}``.

    Shapes: ``center`` and each ``minus[d]``, ``plus[d]`` are ``(*batch, *grid.shape)``.
    """

    center: Any
    minus: tuple[Any, ...]
    plus: tuple[Any, ...]

    def space_axis(self, d: int, ndim: int) -> int:
        return self.center.ndim - ndim + d

    def matvec(self, xp: Any, x: Any) -> Any:
        """``A x`` for ``x`` of shape ``(*batch, *grid.shape)``."""
        ndim = len(self.minus)
        out = self.center * x
        for d in range(ndim):
            axis = self.space_axis(d, ndim)
            out = out + self.minus[d] * from_below(xp, x, axis) + self.plus[d] * from_above(xp, x, axis)
        return out

    def transpose(self, xp: Any) -> StencilMatrix:
        """``A^T``: the entry coupling ``i`` to ``i - e_d`` is ``plus[d]`` read at ``i - e_d``."""
        ndim = len(self.minus)
        minus = tuple(from_below(xp, self.plus[d], self.space_axis(d, ndim)) for d in range(ndim))
        plus = tuple(from_above(xp, self.minus[d], self.space_axis(d, ndim)) for d in range(ndim))
        return StencilMatrix(self.center, minus, plus)

    def at(self, n: int) -> StencilMatrix:
        """The matrix of batch entry ``n`` (first leading dimension)."""
        return StencilMatrix(self.center[n], tuple(a[n] for a in self.minus), tuple(a[n] for a in self.plus))


LINEAR_SOLVES = ("krylov", "direct")
KRYLOV_READ_EVERY = 2  # off-host 2D Krylov solves: iterations between host reads after the first chunk
PRECONDITIONERS = ("zebra", "adi", "jacobi")


@dataclass(frozen=True)
class LinearSolver:
    """How implicit steps solve their 2D/3D stencil systems (1D steps are always tridiagonal).

    The options of ``StencilSolver`` (see there), carried by ``solve(linear=...)`` to every
    discretisation of the solve: ``method`` ``"krylov"`` or ``"direct"``, ``preconditioner``
    ``"zebra"``, ``"adi"`` or ``"jacobi"``, ``rtol`` in (0, 1), ``max_iter >= 1`` and
    ``compiled`` (the numba zebra kernel where it applies).

    Example:
        >>> from mfg_rl import problems, solve
        >>> eq = solve(problems.make("crowd-2d", Nx=8, Ny=8, Nt=4), backend="numpy", progress=False,
        ...            linear=LinearSolver(preconditioner="adi", compiled=False))
        >>> eq.diagnostics.options["linear"]["preconditioner"]
        'adi'
    """

    method: str = "krylov"
    preconditioner: str = "zebra"
    rtol: float = 1e-12
    max_iter: int = 1000
    compiled: bool = True

    def __post_init__(self) -> None:
        check_choice("method", self.method, LINEAR_SOLVES)
        check_choice("preconditioner", self.preconditioner, PRECONDITIONERS)
        rtol = check_real("rtol", self.rtol, 0.0, 1.0, open_low=True, open_high=True)
        object.__setattr__(self, "rtol", rtol)
        object.__setattr__(self, "max_iter", check_int("max_iter", self.max_iter, 1))
        check_flag("compiled", self.compiled)

    def build(self, grid: Grid, backend: Backend) -> StencilSolver:
        """The solver of these options for ``grid`` on ``backend``."""
        return StencilSolver(grid, backend, self.method, preconditioner=self.preconditioner, rtol=self.rtol,
                             max_iter=self.max_iter, compiled=self.compiled)

    def spec(self) -> dict[str, Any]:
        """The options as a JSON-able dict (diagnostics and cache keys)."""
        return asdict(self)


class StencilSolver:
    """Solves ``A x = b`` for the stencil M-matrices of one grid on one backend.

    1D: the backend's batched tridiagonal kernel (periodic: Sherman-Morrison on top).
    2D/3D, ``linear="krylov"`` (default): right-preconditioned BiCGStab
    (``mfg_rl.backends.krylov``) with a line preconditioner, all on the arrays' device.
    ``linear="direct"``: the backend's sparse solve (SuperLU on the host) with a COO
    pattern fixed once per grid.

    Preconditioners (``M ~ A``, applied as ``M^{-1}``; ``D`` = diagonal, ``O_d`` = the
    couplings along axis ``d``, ``T_d = D + O_d`` tridiagonal along ``d``):

    - ``"zebra"`` (default): one red-black line Gauss-Seidel sweep. Lines run along the
      axis ``a`` with the strongest couplings (``sum |O_a|`` largest, e.g. the advection
      direction), coloured by the parity of their index along the next strongest axis
      ``c``: ``z_even = T_a^{-1} r`` on even lines, then ``z_odd = T_a^{-1} (r - A z_even)``
      on odd lines. Two half-size batched tridiagonal solves and one ``matvec``.
    - ``"adi"``: the approximate factorisation ``M = T_0 D^{-1} T_1 D^{-1} ... T_{d-1}``,
      i.e. ``M = A + O_0 D^{-1} O_1 + ...``: one full line solve per axis.
    - ``"jacobi"``: ``M = D``.

    Measured on crowd-2d matrices (numpy, BiCGStab to rtol 1e-10): zebra 13 (64x64) and
    21 (128x128) iterations, ADI 16 and 24, Jacobi 43 and 66; zebra is the fastest.

    ``compiled=True`` (default): 2D zebra
    solves whose arrays live on the host (numpy, torch on the CPU) and whose line axis is
    not periodic run as one numba kernel (``mfg_rl.backends.stencil_numba``: same
    preconditioner, same stopping rule, ~5-10x faster) when numba is installed; all
    other solves, and ``compiled=False``, take the generic array-API path.

    Krylov solves stop at ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` (default
    ``rtol=1e-12``) and raise ``SolverError`` with the iteration count otherwise. When
    ``b >= 0`` (a density step), the exact solution of an M-matrix system satisfies
    ``x >= 0`` and ``1^T (b - A x) = 0``; the Krylov result is projected onto both
    (negative round-off clipped, then ``x <- (1 + eps) x`` with ``eps = O(rtol)``), so
    Fokker-Planck steps keep ``m >= 0`` and conserve mass to round-off, not to ``rtol``.

    Attributes:
        solves, iterations: counters of Krylov solves and BiCGStab iterations.
    """

    def __init__(
        self,
        grid: Grid,
        backend: Backend,
        linear: str = "krylov",
        *,
        preconditioner: str = "zebra",
        rtol: float = 1e-12,
        max_iter: int = 1000,
        compiled: bool = True,
    ) -> None:
        self.options = LinearSolver(linear, preconditioner, rtol, max_iter, compiled)  # checks them
        self.grid = grid
        self.backend = backend
        self.linear = linear
        self.preconditioner = preconditioner
        self.rtol = rtol
        self.max_iter = max_iter
        self.compiled = compiled
        self.periodic = tuple(low == "periodic" for low, _ in grid.boundary)
        self.pattern = _pattern(grid) if grid.ndim > 1 and linear == "direct" else None
        self.solves = 0
        self.iterations = 0
        self.read_every = KRYLOV_READ_EVERY  # off-host 2D solves: BiCGStab iterations per host read
        self._expected: dict[float, int] = {}  # off-host 2D solves: their first chunk, per rtol
        self._count_lock = threading.Lock()  # solves may come from several threads (Parareal's 2D slices)

    def solve(
        self, matrix: StencilMatrix, rhs: Any, *, x0: Any = None, rtol: float | None = None,
        atol: Any = 0.0,
    ) -> Any:
        """``x`` with ``A x = rhs``; ``rhs`` of the grid's shape (1D: batch dims allowed).

        ``x0`` (initial guess), ``rtol`` (default: the solver's) and ``atol`` (a number, or a
        0-d array that off-host solves keep on the device) only matter for Krylov solves; 1D
        and direct solves are exact to round-off.
        """
        if self.grid.ndim == 1:
            lower, upper = matrix.minus[0], matrix.plus[0]
            if self.periodic[0]:
                return cyclic_tridiagonal(
                    self.backend.xp, self.backend.solve_tridiagonal, lower, matrix.center, upper, rhs
                )
            return self.backend.solve_tridiagonal(lower, matrix.center, upper, rhs)
        if self.linear == "direct":
            return self._solve_direct(matrix, rhs)
        return self._solve_krylov(matrix, rhs, x0, self.rtol if rtol is None else rtol, atol)

    def factor_levels(self, matrix: StencilMatrix) -> Callable[[int, Any], Any]:
        """``(n, rhs) -> A_n^{-1} rhs`` for the matrices ``A_n`` of a batch (leading axis),
        each solved many times: on a non-periodic 1D grid the backend factorises the whole
        batch once (LAPACK ``?gttrf`` on the host); elsewhere each call is a ``solve``."""
        if self.grid.ndim == 1 and not self.periodic[0]:
            return self.backend.factor_tridiagonal(matrix.minus[0], matrix.center, matrix.plus[0]).solve_entry
        return lambda n, rhs: self.solve(matrix.at(n), rhs)

    def _solve_direct(self, matrix: StencilMatrix, rhs: Any) -> Any:
        xp = self.backend.xp
        x = self.backend.solve_sparse(self.pattern, stencil_values(xp, matrix), xp.reshape(rhs, (-1,)))
        return xp.reshape(x, self.grid.shape)

    def _solve_krylov(self, matrix: StencilMatrix, rhs: Any, x0: Any, rtol: float, atol: Any) -> Any:
        """BiCGStab in a frame whose axes are permuted so that lines run along the last one."""
        xp, ndim = self.backend.xp, self.grid.ndim
        if _traced(self.backend, rhs):
            return self._solve_traced(matrix, rhs, x0, rtol, atol)
        if ndim == 2 and self.backend.host_twin().name != "numpy":
            return self._solve_off_host(matrix, rhs, x0, rtol, atol)
        atol = float(atol)  # on the host a read is free
        order = list(range(ndim))
        if self.preconditioner == "zebra":  # weakest axis first: colour second to last, lines last
            strength = [float(xp.sum(xp.abs(matrix.minus[d]) + xp.abs(matrix.plus[d]))) for d in order]
            order.sort(key=lambda d: strength[d])
        identity = order == sorted(order)
        periodic = tuple(self.periodic[d] for d in order)
        if self._use_compiled(periodic):  # the kernel reads the permuted frame itself
            result = self._solve_compiled(matrix, order, periodic, rhs, x0, rtol, atol)
            return self._project(result, rhs, lambda v: matrix.matvec(xp, v))

        def to_frame(a: Any) -> Any:  # permuted and C-contiguous, so lines are contiguous
            if identity:
                return a
            a = xp.permute_dims(a, tuple(order))
            return xp.reshape(xp.reshape(a, (-1,)), a.shape)

        frame = StencilMatrix(
            to_frame(matrix.center), tuple(to_frame(matrix.minus[d]) for d in order),
            tuple(to_frame(matrix.plus[d]) for d in order),
        )
        b = to_frame(rhs)
        result = bicgstab(
            xp, lambda v: frame.matvec(xp, v), b, precond=self._preconditioner(frame, periodic),
            x0=None if x0 is None else to_frame(x0), rtol=rtol, atol=atol, max_iter=self.max_iter,
        )
        x = self._project(result, b, lambda v: frame.matvec(xp, v))
        return x if identity else xp.permute_dims(x, tuple(order.index(d) for d in range(ndim)))

    def _solve_traced(self, matrix: StencilMatrix, rhs: Any, x0: Any, rtol: float, atol: float) -> Any:
        """The Krylov solve inside a jax trace (``method="jax-scan"``): ``_solve_on_device`` under
        ``lax.while_loop``, its frame picked by ``lax.switch`` on the coupling strengths. A solve
        that misses its tolerance returns NaN, which the traced caller's status check reports
        (no exception can leave a trace)."""
        from jax import lax

        xp, ndim = self.backend.xp, self.grid.ndim
        if ndim != 2:
            raise NotImplementedError(f"traced Krylov solves are 2D only, this grid is {ndim}D")
        x0 = xp.zeros_like(rhs) if x0 is None else x0

        def solve(swap: bool, center: Any, minus: tuple, plus: tuple, b: Any, guess: Any) -> Any:
            loops = (lax.while_loop, lax.while_loop)
            matrix = StencilMatrix(center, minus, plus)
            x, _, converged, _ = self._solve_on_device(swap, loops, matrix, b, guess, rtol, atol)
            return xp.where(converged, x, xp.nan)

        operands = (matrix.center, matrix.minus, matrix.plus, rhs, x0)
        if self.preconditioner != "zebra":
            return solve(False, *operands)
        branches = [lambda *a: solve(False, *a), lambda *a: solve(True, *a)]
        return lax.switch(xp.astype(self._lines_along_first(matrix), xp.int32), branches, *operands)

    def _solve_off_host(self, matrix: StencilMatrix, rhs: Any, x0: Any, rtol: float, atol: Any) -> Any:
        """The 2D Krylov solve of arrays off the host (an accelerator, eager jax): ``_solve_on_device``
        with its ``n`` iterations under ``Chunked(xp, k, first)``, ``k = read_every``, so the host reads

            1 + ceil(max(0, n - first) / k) + 2  <=  ceil(n / k) + 3

        times per solve: the chunks' conditions, the restart loop's one (``Chunked(xp, 1)``), and
        one status, the iteration count made negative when the solve missed its tolerance, which
        counts the solve and raises ``SolverError`` (``bicgstab``'s message; its residuals read
        then): the flag is read once per solve, not deferred (an FP sweep has no other status
        read). ``first``: the
        iterations of the last solve with this ``rtol`` (``k`` for the first), so that a solve like
        the last reads three times and runs no masked iteration (measured on crowd-2d 16x16: a
        fixed ``k = 8`` ran 1.8x the HJB sweep's operations for 4% fewer reads; a solve of ``b = 0``,
        a masked round of unrolled Newton, stops before its first iteration: three reads, and
        ``first`` masked iterations' work, and it leaves ``first`` as it was). The zebra frame is
        a device select between transposes on square grids whose axes are both periodic or both
        not; other grids read it (one more read per solve). Same ``x`` whatever the chunks.
        """
        xp = self.backend.xp
        swap: Any = self._lines_along_first(matrix) if self.preconditioner == "zebra" else False
        if not isinstance(swap, bool) and (self.grid.shape[0] != self.grid.shape[1]
                                           or self.periodic[0] != self.periodic[1]):
            swap = bool(swap)
        loops = (Chunked(xp, self.read_every, self._expected.get(rtol, self.read_every)), Chunked(xp, 1))
        x, iterations, converged, residual = self._solve_on_device(swap, loops, matrix, rhs, x0, rtol, atol)
        code = int(xp.where(converged, iterations, -1 - iterations))  # the count, negative: missed
        count = code if code >= 0 else -1 - code
        self._count(count)
        if count > 0:  # a solve with nothing to do (a masked Newton round's zero b) says nothing
            self._expected[rtol] = count
        if code < 0:
            norm_b = float(xp.sqrt(xp.sum(rhs * rhs)))
            raise not_converged(float(residual), norm_b, count, None, rtol, float(atol), self.max_iter)
        return x

    def _solve_on_device(self, swap: Any, loops: tuple[Any, Any], matrix: StencilMatrix, rhs: Any, x0: Any,
                         rtol: float, atol: float) -> tuple[Any, Any, Any, Any]:
        """``bicgstab_while`` (iterations and restarts under ``loops``) and ``project_on_device``, in
        the frame ``swap`` picks, with no host read of its own (2D).

        ``swap``: lines along axis 0 (the frame is the transpose) or along axis 1; a bool (a fixed
        frame: ``lax.switch``'s branches) or a 0-d bool array (a device select between the arrays and
        their transposes: square grids, both axes periodic or both not). Returns ``(x, iterations,
        converged, ||b - A x||_2)``, ``x`` of the grid's shape, the rest 0-d arrays.
        """
        xp = self.backend.xp

        def framed(kept: Any, other: Any) -> Any:  # ``kept``, or ``other`` transposed when swapped
            if swap is False:
                return kept
            flipped = xp.permute_dims(other, (1, 0))
            return flipped if swap is True else xp.where(swap, flipped, kept)

        frame = StencilMatrix(framed(matrix.center, matrix.center),
                              tuple(framed(matrix.minus[d], matrix.minus[1 - d]) for d in (0, 1)),
                              tuple(framed(matrix.plus[d], matrix.plus[1 - d]) for d in (0, 1)))
        periodic = self.periodic[::-1] if swap is True else self.periodic
        b = framed(rhs, rhs)

        def matvec(v: Any) -> Any:
            return frame.matvec(xp, v)

        x, residual, iterations, converged = bicgstab_while(
            xp, loops[0], matvec, b, precond=self._preconditioner(frame, periodic),
            x0=None if x0 is None else framed(x0, x0), rtol=rtol, atol=atol, max_iter=self.max_iter,
            restart_loop=loops[1],
        )
        x = project_on_device(xp, x, residual, b, matvec)
        return framed(x, x), iterations, converged, xp.sqrt(xp.sum(residual * residual))

    def _lines_along_first(self, matrix: StencilMatrix) -> Any:
        """Whether the zebra lines run along axis 0 (2D): its couplings ``sum |O_0|`` are the
        stronger (ties keep axis 1, as the host's stable sort does); a 0-d bool array."""
        xp = self.backend.xp
        strength = [xp.sum(xp.abs(matrix.minus[d]) + xp.abs(matrix.plus[d])) for d in (0, 1)]
        return strength[0] > strength[1]

    def _count(self, iterations: int) -> None:
        """One more Krylov solve of ``iterations`` iterations on the counters."""
        with self._count_lock:
            self.solves += 1
            self.iterations += iterations

    def _project(self, result: KrylovResult, b: Any, matvec: Callable[[Any], Any]) -> Any:
        """Count the solve; for ``b >= 0`` clip negative round-off and restore ``1^T (b - A x) = 0``."""
        xp = self.backend.xp
        self._count(result.iterations)
        x, residual = result.x, result.residual
        if float(xp.min(b)) >= 0.0:
            if float(xp.min(x)) < 0.0:
                x = xp.maximum(x, 0.0)
                residual = b - matvec(x)
            defect, total = float(xp.sum(residual)), float(xp.sum(b))
            if total > 0.0 and total - defect > 0.0:  # not when x is all clipped away (an emptied crowd)
                x = x * (1.0 + defect / (total - defect))
        return x

    def _use_compiled(self, periodic: tuple[bool, ...]) -> bool:
        """Whether this solve goes to the numba kernel (class docstring)."""
        if not (self.compiled and self.preconditioner == "zebra" and self.grid.ndim == 2):
            return False
        if periodic[1] or self.backend.host_twin().name != "numpy":
            return False
        from mfg_rl.backends import stencil_numba

        return stencil_numba.available()

    def _solve_compiled(
        self, matrix: StencilMatrix, order: list[int], periodic: tuple[bool, ...], rhs: Any, x0: Any,
        rtol: float, atol: float,
    ) -> KrylovResult:
        """``bicgstab_zebra_2d`` on host views of the arrays (torch CPU: zero-copy), in the
        grid's layout: with lines along axis 0 the kernel reads them transposed."""
        from mfg_rl.backends.stencil_numba import bicgstab_zebra_2d

        backend = self.backend
        host = backend.to_numpy
        lines, colour = order[1], order[0]
        result = bicgstab_zebra_2d(
            host(matrix.center), host(matrix.minus[colour]), host(matrix.plus[colour]),
            host(matrix.minus[lines]), host(matrix.plus[lines]), host(rhs), None if x0 is None else host(x0),
            periodic0=periodic[0], rtol=rtol, atol=atol, max_iter=self.max_iter, transposed=order != [0, 1],
        )
        if backend.name == "numpy":
            return result
        x, residual = backend.from_host(result.x), backend.from_host(result.residual)
        return KrylovResult(x, residual, result.iterations)

    # -- preconditioners -------------------------------------------------------------
    def _preconditioner(self, matrix: StencilMatrix, periodic: tuple[bool, ...]) -> Callable[[Any], Any]:
        """``r -> M^{-1} r`` for ``matrix`` in the solve's frame (see the class docstring)."""
        xp, ndim = self.backend.xp, self.grid.ndim
        diag = matrix.center
        if self.preconditioner == "jacobi":
            return lambda r: r / diag
        if self.preconditioner == "adi":

            def adi(r: Any) -> Any:
                z = self._lines(matrix, 0, r, periodic[0])
                for d in range(1, ndim):
                    z = self._lines(matrix, d, diag * z, periodic[d])
                return z

            return adi
        # zebra: lines along the last axis, coloured by parity along the one before
        line, colour = ndim - 1, ndim - 2
        n = diag.shape[colour]
        n_odd = n // 2

        def along(start: int, stop: int | None, step: int = 1) -> tuple[Any, ...]:
            return (Ellipsis, slice(start, stop, step), slice(None))

        even, odd = along(0, None, 2), along(1, None, 2)
        half_even = StencilMatrix(diag[even], tuple(a[even] for a in matrix.minus),
                                  tuple(a[even] for a in matrix.plus))
        half_odd = StencilMatrix(diag[odd], tuple(a[odd] for a in matrix.minus),
                                 tuple(a[odd] for a in matrix.plus))
        # odd line 2k+1 couples to even lines 2k (minus) and 2k+2 (plus; wraps to 0 when n is even)
        to_left, to_right = matrix.minus[colour][odd], matrix.plus[colour][odd]

        solve_even = self._line_solver(half_even, line, periodic[line])
        solve_odd = self._line_solver(half_odd, line, periodic[line])

        def zebra(r: Any) -> Any:
            z_even = solve_even(r[even])
            right = from_above(xp, z_even, colour) if n % 2 == 0 else z_even[along(1, None)]
            rhs_odd = r[odd] - to_left * z_even[along(0, n_odd)] - to_right * right
            z_odd = solve_odd(rhs_odd)
            if n_odd < n - n_odd:
                z_odd = xp.concat([z_odd, xp.zeros_like(z_even[along(0, 1)])], axis=colour)
            both = xp.stack([z_even, z_odd], axis=colour + 1)
            shape = (*both.shape[:colour], 2 * both.shape[colour], both.shape[-1])
            return xp.reshape(both, shape)[along(0, n)]

        return zebra

    def _line_solver(self, matrix: StencilMatrix, axis: int, periodic: bool) -> Callable[[Any], Any]:
        """``rhs -> T_axis^{-1} rhs`` for repeated use: lines along the last axis are factorised
        once (``backend.factor_tridiagonal``); periodic lines and other axes use ``_lines``."""
        if periodic or axis != self.grid.ndim - 1:
            return lambda rhs: self._lines(matrix, axis, rhs, periodic)
        return self.backend.factor_tridiagonal(matrix.minus[axis], matrix.center, matrix.plus[axis]).solve

    def _lines(self, matrix: StencilMatrix, axis: int, rhs: Any, periodic: bool) -> Any:
        """``T_axis^{-1} rhs``: the tridiagonal systems along ``axis``, batched over the rest."""
        xp = self.backend.xp
        last = self.grid.ndim - 1
        lower, diag, upper, b = (
            a if axis == last else xp.moveaxis(a, axis, last)
            for a in (matrix.minus[axis], matrix.center, matrix.plus[axis], rhs)
        )
        if periodic:
            x = cyclic_tridiagonal(xp, self.backend.solve_tridiagonal, lower, diag, upper, b)
        else:
            x = self.backend.solve_tridiagonal(lower, diag, upper, b)
        return x if axis == last else xp.moveaxis(x, last, axis)


def project_on_device(xp: Any, x: Any, residual: Any, b: Any, matvec: Callable[[Any], Any]) -> Any:
    """``StencilSolver._project`` as masked updates (no host read): for ``b >= 0``, ``x`` clipped at
    0 and scaled by ``1 + 1^T r / (1^T b - 1^T r)`` with ``r = b - A x`` (the clipped ``x``'s
    residual), so ``1^T (b - A x) = 0``; ``x`` as given otherwise. Arrays of one shape."""
    negative = xp.min(x) < 0.0
    x_clipped = xp.where(negative, xp.maximum(x, 0.0), x)
    residual = xp.where(negative, b - matvec(x_clipped), residual)
    defect, total = xp.sum(residual), xp.sum(b)
    kept = (total > 0.0) & (total - defect > 0.0)  # not when x is all clipped away (an emptied crowd)
    scale = xp.where(kept, 1.0 + defect / xp.where(kept, total - defect, 1.0), 1.0)
    return xp.where(xp.min(b) >= 0.0, x_clipped * scale, x)


def _traced(backend: Backend, x: Any) -> bool:
    """Whether ``x`` is a jax tracer (the solve is being compiled into a larger program)."""
    if backend.name != "jax":
        return False
    import jax

    return isinstance(x, jax.core.Tracer)


def _pattern(grid: Grid) -> SparsePattern:
    """The COO pattern of one stencil matrix on ``grid`` (``stencil_coo``)."""
    return SparsePattern(*stencil_coo(grid.shape, 1), grid.size)


def stencil_coo(shape: tuple[int, ...], blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """COO rows/cols of ``blocks`` block-diagonal stencil matrices on a grid of ``shape``.

    Entry order matches ``stencil_values``: entry kind (center, then minus/plus per axis),
    then block, then node. Neighbours wrap (their values are zero on non-periodic edges).
    """
    size = math.prod(shape)
    index = np.arange(size).reshape(shape)
    cols = [index.ravel()]
    for d in range(len(shape)):
        for shift in (1, -1):
            cols.append(np.roll(index, shift, axis=d).ravel())
    offset = (np.arange(blocks) * size)[None, :, None]
    local_cols = np.stack(cols)[:, None, :]
    rows = np.broadcast_to(index.ravel()[None, None, :] + offset, (len(cols), blocks, size))
    return rows.ravel().astype(np.int64), (local_cols + offset).ravel().astype(np.int64)


def stencil_values(xp: Any, matrix: StencilMatrix) -> Any:
    """Values of a batched ``StencilMatrix`` (shape ``(blocks, *grid)``) in ``stencil_coo`` order."""
    parts = [matrix.center] + [a for pair in zip(matrix.minus, matrix.plus, strict=True) for a in pair]
    return xp.concat([xp.reshape(a, (-1,)) for a in parts])
