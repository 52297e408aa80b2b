"""The linear algebra of the implicit steps on a tree: the Newton matrices ``J = I/dt + A`` (M, M)
and their solves, ``J x = b`` (HJB Newton) and ``J^T x = b`` (the FP step, its exact adjoint).

- ``Tridiagonal``: a 1D tree without periodic ends (three bands, LAPACK ``gtsv``).
- ``CSCSlots`` and ``SparseLU``: any other tree. The pattern of ``J`` is fixed per mesh (the
  diffusion's entries, the drift's two-point entries and the diagonal), so it is built once in CSC
  form with a slot per entry; a Newton iteration only sums its values into the slots
  (``np.bincount``) instead of building and converting a scipy matrix. ``SparseLU`` factorises
  on first use (SuperLU, ``MMD_AT_PLUS_A`` ordering, no pivoting: ``J`` is an M-matrix whose rows
  are strictly diagonally dominant by ``1/dt``, so elimination without pivoting is stable) and keeps
  the factors: ``J^T x = b`` reuses the LU of ``J`` (``trans="T"``). The ordering is structural, so
  the pattern keeps the first one and later factorisations skip it (``CSCSlots.order``).
- ``ChordSolve``: the linear solve of one HJB Newton iteration reusing factors (an inexact Newton
  step, Dembo, Eisenstat & Steihaug 1982, with lazy Jacobian updates). It solves with the last
  factorised matrix - at first the previous coupling sweep's ``J_n``, factorised by its FP step -
  and keeps that correction ``du`` while its linear residual with the current Jacobian is small,
  ``max|J du - R| <= CHORD_RATE max|R|`` (one product with ``J``); otherwise it factorises ``J``.
  Newton's stopping rule is unchanged, so the step is solved to the same tolerance; a
  factorisation costs ~30 solves with its factors on a 2D tree of 1e3 leaves.
- ``adjoint_solve``: the FP step's ``J^T x = b`` by iterative refinement with the step's last
  factors, to the backward error of a direct solve (mass moves by round-off), or by ``J``'s own
  LU when refinement stalls. Near the coupling's fixed point most steps then factorise nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dgtsv
from scipy.sparse.linalg import splu

from mfg_rl.backends import tree_step_numba
from mfg_rl.errors import SolverError

CHORD_RATE = 0.1  # forcing term: a reused factorisation's correction must solve J du = R to 10 %
ROUND_OFF = 16  # an adjoint solve is done when its defect is this many eps of sum |A|^T |x|
MAX_REFINEMENTS = 8


class Tridiagonal:
    """A tridiagonal matrix (M, M) by its bands: ``A[i, i-1] = lower[i]``, ``A[i, i] = diag[i]``,
    ``A[i, i+1] = upper[i]`` (``lower[0]`` and ``upper[-1]`` unused, zero); arrays (M,)."""

    factored = False  # gtsv factorises and solves at once: there are no factors to reuse

    def __init__(self, lower: np.ndarray, diag: np.ndarray, upper: np.ndarray) -> None:
        self.lower, self.diag, self.upper = lower, diag, upper
        self.shape = (len(diag), len(diag))

    @functools.cached_property
    def T(self) -> Tridiagonal:  # noqa: N802 (the matrix convention)
        """The transpose: its lower band is ``A[i-1, i]``, its upper band ``A[i+1, i]`` (made once)."""
        zero = np.zeros(1)
        return Tridiagonal(np.concatenate([zero, self.upper[:-1]]), self.diag,
                           np.concatenate([self.lower[1:], zero]))

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        out = self.diag * v
        out[1:] += self.lower[1:] * v[:-1]
        out[:-1] += self.upper[:-1] * v[1:]
        return out

    def rmatvec(self, v: np.ndarray) -> np.ndarray:
        """``A^T v`` (M,)."""
        return self.T @ v

    def toarray(self) -> np.ndarray:
        """The dense matrix (M, M)."""
        return np.diag(self.diag) + np.diag(self.lower[1:], -1) + np.diag(self.upper[:-1], 1)

    def solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``A^-1 rhs`` (``A^-T rhs`` if ``transpose``) (M,) by LAPACK ``gtsv`` (partial pivoting);
        SolverError if ``A`` is singular."""
        if transpose:
            return self.T.solve(rhs)
        if len(rhs) == 1:
            return rhs / self.diag
        *_, x, info = dgtsv(self.lower[1:], self.diag, self.upper[:-1], rhs)
        if info != 0:
            raise SolverError(f"tree step: the tridiagonal Jacobian is singular (gtsv info={info})")
        return x


class CSCSlots:
    """The CSC pattern (M, M) of entries at ``(rows, cols)`` (K,), duplicates summed (``indices``,
    ``indptr`` and ``columns``, the column of each stored entry, (nnz,)): ``slots`` (K,)
    sends entry ``k`` to ``data[slots[k]]``; ``diagonal`` (M,) holds the slots of ``(i, i)``, which
    the pattern always contains. ``compiled``: ``SparseLU``'s products on this pattern run the numba
    twins of ``backends/tree_step_numba.py`` (the same sums in the same order).

    ``order`` (M,): the fill-reducing order of the pattern (SuperLU's ``MMD_AT_PLUS_A``, structural),
    kept by the first factorisation (``keep_order``), so that later ones factorise the permuted
    matrix ``B[order[i], order[j]] = A[i, j]`` in its natural order: the same LU, without the
    ordering's cost (40 % of a factorisation at 5200 unknowns)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, size: int, compiled: bool = False) -> None:
        self.compiled = compiled
        every = np.arange(size)
        keys = np.concatenate([cols, every]) * size + np.concatenate([rows, every])  # column-major
        unique, slots = np.unique(keys, return_inverse=True)
        self.size, self.nnz = size, len(unique)
        self.indices = (unique % size).astype(np.int32)
        self.columns = unique // size  # the column of each stored entry (nnz,)
        self.indptr = np.searchsorted(self.columns, np.arange(size + 1)).astype(np.int32)
        self.slots, self.diagonal = slots[: len(rows)], slots[len(rows):]
        self.order: np.ndarray | None = None

    def keep_order(self, order: np.ndarray) -> None:
        """Keep ``order`` (M,) and the CSC pattern of the permuted matrix: ``permuted_indices``,
        ``permuted_indptr``, and ``source`` (nnz,), the entry of ``data`` behind each of its entries."""
        rows, cols = order[self.indices], order[self.columns]
        self.source = np.argsort(cols * self.size + rows)
        self.permuted_indices = rows[self.source].astype(np.int32)
        self.permuted_indptr = np.searchsorted(cols[self.source], np.arange(self.size + 1)).astype(np.int32)
        self.inverse = np.argsort(order)
        self.order = order

    def gather(self, values: np.ndarray) -> np.ndarray:
        """The CSC data (nnz,) of the entries ``values`` (K,) (``rows``, ``cols`` order), summed."""
        return np.bincount(self.slots, values, minlength=self.nnz)


class SparseLU:
    """The matrix (M, M) of CSC ``data`` on ``pattern``, with its LU factors made on the first solve
    and kept (module docstring)."""

    def __init__(self, pattern: CSCSlots, data: np.ndarray) -> None:
        self.pattern, self.data = pattern, data
        self.shape = (pattern.size, pattern.size)
        self._lu: Any = None
        self._order: np.ndarray | None = None  # the pattern's order when the factors were made
        self._matrix: sp.csc_matrix | None = None

    @property
    def matrix(self) -> sp.csc_matrix:
        """The scipy CSC matrix, built on first use (most Newton Jacobians are never factorised)."""
        if self._matrix is None:
            self._matrix = sp.csc_matrix((self.data, self.pattern.indices, self.pattern.indptr),
                                         shape=self.shape)
        return self._matrix

    @property
    def factored(self) -> bool:
        """Whether the LU factors exist (a solve with this matrix costs no factorisation)."""
        return self._lu is not None

    @property
    def T(self) -> sp.csr_matrix:  # noqa: N802 (the matrix convention)
        return self.matrix.T

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        pattern = self.pattern
        if pattern.compiled:
            return tree_step_numba.matvec(pattern.indptr, pattern.indices, self.data, v)
        return np.bincount(self.pattern.indices, self.data * v[self.pattern.columns], minlength=self.shape[0])

    def rmatvec(self, v: np.ndarray, absolute: bool = False) -> np.ndarray:
        """``A^T v`` (M,), or ``|A|^T v`` if ``absolute``."""
        pattern = self.pattern
        if pattern.compiled:
            return tree_step_numba.rmatvec(pattern.indptr, pattern.indices, self.data, v, absolute)
        data = np.abs(self.data) if absolute else self.data
        return np.bincount(self.pattern.columns, data * v[self.pattern.indices], minlength=self.shape[0])

    def toarray(self) -> np.ndarray:
        return self.matrix.toarray()

    def solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``A^-1 rhs`` (``A^-T rhs`` if ``transpose``) (M,); SolverError if ``A`` is singular.

        With the pattern's ``order`` ``p`` the factors are those of ``B[p_i, p_j] = A[i, j]``:
        ``x = (B^-1 rhs[p^-1])[p]``, the same for ``B^-T``."""
        if self._lu is None:
            self._lu = self._factorise()
        trans = "T" if transpose else "N"
        if self._order is None:
            return self._lu.solve(rhs, trans=trans)
        return self._lu.solve(rhs[self.pattern.inverse], trans=trans)[self._order]

    def _factorise(self) -> Any:
        """SuperLU's factors, without pivoting (module docstring): of ``A`` ordered by
        ``MMD_AT_PLUS_A`` the first time on a pattern (which keeps that order, ``CSCSlots``), then of
        the permuted matrix in its natural order."""
        pattern = self.pattern
        self._order = pattern.order
        options = {"diag_pivot_thresh": 0.0, "relax": 1, "panel_size": 1}
        try:
            if pattern.order is None:
                lu = splu(self.matrix, permc_spec="MMD_AT_PLUS_A", **options)
                if np.array_equal(lu.perm_r, lu.perm_c):  # no pivoting: a symmetric order
                    pattern.keep_order(lu.perm_c)
                return lu
            permuted = sp.csc_matrix((self.data[pattern.source], pattern.permuted_indices,
                                      pattern.permuted_indptr), shape=self.shape)
            return splu(permuted, permc_spec="NATURAL", **options)
        except RuntimeError as error:
            raise SolverError(f"tree step: the sparse Jacobian is singular ({error})") from None


class ChordSolve:
    """``(J, R, error) -> du`` for ``step_newton.newton``: an inexact Newton step with the last
    factorised matrix ``F`` (``start`` first, when it is factorised), ``du = F^-1 R``, kept when
    ``max|J du - R| <= CHORD_RATE max|R|``; otherwise ``J`` is factorised and ``du = J^-1 R``."""

    def __init__(self, start: Any = None) -> None:
        self.factor = start if start is not None and start.factored else None

    def __call__(self, jacobian: Any, residual: np.ndarray, error: Any) -> np.ndarray:
        if self.factor is not None and self.factor.factored:
            step = self.factor.solve(residual)
            if np.abs(jacobian @ step - residual).max() <= CHORD_RATE * np.abs(residual).max():
                return step
        self.factor = jacobian
        return jacobian.solve(residual)


def adjoint_solve(matrix: Any, rhs: np.ndarray, factor: Any = None, guess: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, Any]:
    """``(x, F)``: ``x`` (M,) with ``matrix^T x = rhs`` and ``F`` the factorised matrix it used.

    With a factorised ``factor`` (the step's last factors, e.g. its final Newton iteration's):
    iterative refinement ``x <- x + F^-T (rhs - A^T x)`` (Wilkinson) from ``x_0 = F^-T rhs``, or from
    ``x_0 = guess + F^-T (rhs - A^T guess)`` with a ``guess`` (M,) (the last coupling iterate: its
    defect is small near the fixed point), while each sweep cuts
    ``sum|rhs - A^T x|`` at least ``1 / CHORD_RATE``-fold, until it is round-off,
    ``<= ROUND_OFF eps sum |A|^T |x_0|`` (the backward error of a direct solve: the FP step's mass
    then moves by round-off, as with ``A``'s own LU). It gives up as soon as its rate cannot reach
    that within ``MAX_REFINEMENTS`` sweeps; then, or without a factor, ``A``'s own LU.
    """
    if factor is not None and factor is not matrix and factor.factored:
        x = factor.solve(rhs, transpose=True) if guess is None else \
            guess + factor.solve(rhs - matrix.rmatvec(guess), transpose=True)
        floor = ROUND_OFF * np.finfo(float).eps * matrix.rmatvec(np.abs(x), absolute=True).sum()
        defect = rhs - matrix.rmatvec(x)
        size = np.abs(defect).sum()
        for k in range(MAX_REFINEMENTS):
            if size <= floor:
                return x, factor
            x = x + factor.solve(defect, transpose=True)
            defect = rhs - matrix.rmatvec(x)
            size, before = np.abs(defect).sum(), size
            left = MAX_REFINEMENTS - 1 - k  # sweeps left; at this rate, would they reach the floor?
            slow = size > floor and np.log(size / floor) > left * np.log(before / size)
            if size > CHORD_RATE * before or slow:
                break
    return matrix.solve(rhs, transpose=True), matrix
