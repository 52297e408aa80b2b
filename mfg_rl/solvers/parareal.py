"""``Parareal``: time-parallel trajectories, a cheap coarse sweep corrected by fine slices.

The horizon is cut into ``S`` slices of (nearly) equal numbers of fine steps. With ``U_j``
the value at the start of slice ``j`` (in the sweep's direction: backward for HJB, from
``u^Nt = g(m^Nt)``; forward for FP, from ``m0``), ``F_j`` the fine propagator over slice
``j`` (the ``Sequential`` steps, same ``dt``) and ``G_j`` the coarse one (the same implicit
step of ``DiscreteMFG`` with ``dt_c = r dt``, coupling fields sampled at the middle of each
coarse step), the iteration (Lions, Maday & Turinici 2001) is

    U_{j+1}^{k+1} = G_j(U_j^{k+1}) + F_j(U_j^k) - G_j(U_j^k).

All ``F_j`` of one iteration run together: 1D slices are stacked as a leading batch
dimension, so each fine step is one batched Newton step (HJB; the stopping test is over the
whole batch) or one batched tridiagonal solve (FP) for all slices; 2D slices (the stencil
Krylov solver is unbatched) are swept concurrently by ``workers`` threads, which run in
parallel where the work releases the GIL (the compiled numba line solves, numpy and torch
kernels). After ``k`` iterations the first
``k`` slices are exact (finite termination: ``K = S`` gives the fine solution); they are
frozen and no longer propagated. The iteration stops when the largest change of slice
start values is ``<= tol * (1 + max|U|)`` (or the coupling loop's ``forcing`` when
that is looser: an inexact coupling iteration needs no exact sweep) and raises
``SolverError`` with the counts after ``max_iter`` iterations. The trajectory returned is
the fine one of the last iteration; its jumps at slice boundaries are added to the HJB
residual, and the FP defect of the coupling loop sees them, so the coupled residual stays
honest.

With ``warm_start=True`` (default) the start values come from the trajectory the coupling
loop passes in (the previous ``u``, the current crowd ``m``) instead of a coarse sweep;
and, while the caller's trajectory is far from the new one, the sweep is solved only to
``forcing`` times that distance (inexact Picard); near the equilibrium the tolerance is
``tol`` again and two iterations usually suffice.

Cost: ``K`` iterations do ``K`` coarse sweeps (serial over slices) and ``K`` fine sweeps
(parallel over slices), so ``K << S`` is needed for a speedup with ``S`` workers;
``benchmarks/spacetime.py`` measures ``K`` and models the speedup. HJB and FP are
parallelised separately inside the coupling loop; treating the coupled forward-backward
system in one Parareal (ParaOpt, Gander, Kwok & Salomon 2020) is not done here.

Example:
    >>> from mfg_rl import problems, solve
    >>> from mfg_rl.solvers.parareal import Parareal
    >>> eq = solve(problems.make("lq-1d", Nx=41, Nt=16), method=Parareal(slices=4), progress=False)
    >>> eq.diagnostics.converged
    True
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mfg_rl.checks import check_flag, check_int, check_optional, check_real
from mfg_rl.core import MFGProblem
from mfg_rl.errors import SolverError
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.stencil import StencilMatrix
from mfg_rl.solvers.trajectory import HJBResult

THREADED_NODES = 128 * 128  # default: 2D slices on threads from this grid size (``Parareal.workers``)


class Parareal:
    """Trajectory solver by Parareal over ``slices`` time slices.

    Args:
        slices: number of time slices ``S`` (>= 1; at most ``Nt``). ``S = 1`` is ``Sequential``.
        coarse_factor: fine steps per coarse step ``r`` (>= 1); None: one coarse step per slice.
        tol: stop when ``max_j |U_j^k - U_j^{k-1}| <= tol (1 + max|U|)``, in (0, 1).
        max_iter: iterations before ``SolverError`` (>= 1); None: ``S`` (exact by then).
        warm_start: start the boundary values from the trajectory the caller passes.
        forcing: warm-started sweeps stop at ``max(tol, forcing * c_1)`` with ``c_1`` the
            first iteration's change (how far the caller's trajectory was): inexact sweeps
            while the coupling loop is far from its fixed point, ``tol`` near it. None: ``tol``.
            The default 1e-3 (as the coupling loop's own ``FORCING``) kept the coupling
            iteration counts of Sequential on lq-1d; 0.1 cut the sweeps further on
            crowd-exit-1d but tripled the coupling iterations of lq-1d (201x1000).
        workers: threads sweeping unbatched (2D) slices at once (>= 1). None: the CPU count
            on grids of at least ``THREADED_NODES`` nodes, else 1 (2 threads on 2 cores:
            128x128 HJB fine sweeps 1.96x faster, FP 1.3x; 64x64 coupled solves 8% slower,
            their Python-bound upwind evaluation holding the GIL). 1D slices are batched
            and ignore it.

    Attributes:
        iterations: ``{"hjb": [K, ...], "fp": [K, ...]}``, one entry per sweep.
        steps, seconds: fine slice-steps and coarse steps taken and their seconds, per
            equation (keys ``hjb_fine``, ``hjb_coarse``, ``fp_fine``, ``fp_coarse``).
        timings: seconds in ``parareal_fine`` and ``parareal_coarse`` (merged by ``solve``).
        changes: relative boundary changes of the last sweep's iterations.
        boundaries: the last sweep's boundary values ``[U_1..U_{S-1}]`` per iteration (sweep
            order; fine levels ``boundary_levels``), e.g. to count iterations to a tolerance.
    """

    name = "parareal"

    def __init__(self, slices: int = 8, coarse_factor: int | None = None, *, tol: float = 1e-10,
                 max_iter: int | None = None, warm_start: bool = True,
                 forcing: float | None = 1e-3, workers: int | None = None) -> None:
        slices = check_int("slices", slices, 1)
        coarse_factor = check_optional(check_int, "coarse_factor", coarse_factor, 1)
        tol = check_real("tol", tol, 0.0, 1.0, open_low=True, open_high=True)
        max_iter = check_optional(check_int, "max_iter", max_iter, 1)
        warm_start = check_flag("warm_start", warm_start)
        forcing = check_optional(check_real, "forcing", forcing, 0.0, 1.0, open_low=True, open_high=True)
        workers = check_optional(check_int, "workers", workers, 1)
        self.slices = slices
        self.coarse_factor = coarse_factor
        self.tol = float(tol)
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.forcing = forcing
        self.workers = workers
        self.options = {"slices": slices, "coarse_factor": coarse_factor, "tol": self.tol,
                        "max_iter": max_iter, "warm_start": warm_start, "forcing": forcing,
                        "workers": workers}
        self.iterations: dict[str, list[int]] = {"hjb": [], "fp": []}
        self.steps = {"hjb_fine": 0, "hjb_coarse": 0, "fp_fine": 0, "fp_coarse": 0}
        self.seconds = dict.fromkeys(self.steps, 0.0)
        self.boundaries: list[list[Any]] = []
        self.changes: list[float] = []
        self._lock = threading.Lock()  # the counters above, updated from the sweeping threads

    def __repr__(self) -> str:
        return "Parareal(" + ", ".join(f"{k}={v!r}" for k, v in self.options.items()) + ")"

    @property
    def timings(self) -> dict[str, float]:
        return {"parareal_fine": self.seconds["hjb_fine"] + self.seconds["fp_fine"],
                "parareal_coarse": self.seconds["hjb_coarse"] + self.seconds["fp_coarse"]}

    def check(self, problem: MFGProblem) -> None:
        """ValueError, before any work, when ``problem`` has fewer time steps than slices."""
        if self.slices > problem.time.Nt:
            raise ValueError(f"{self!r} has slices={self.slices} > Nt={problem.time.Nt}, the problem's time "
                             f"steps; use slices <= {problem.time.Nt}")

    # -- time layout -----------------------------------------------------------------
    def bounds(self, Nt: int) -> list[int]:
        """Fine level indices ``0 = n_0 < ... < n_S = Nt`` of the slice boundaries."""
        if self.slices > Nt:
            raise ValueError(f"slices must be <= Nt={Nt}, got {self.slices}")
        return [(j * Nt) // self.slices for j in range(self.slices + 1)]

    def boundary_levels(self, Nt: int, equation: str) -> list[int]:
        """Fine levels of the boundary values ``U_1..U_{S-1}`` in sweep order."""
        n_b = self.bounds(Nt)
        return [n_b[self.slices - q] if equation == "hjb" else n_b[q] for q in range(1, self.slices)]

    def coarse_steps(self, a: int, b: int) -> list[tuple[int, int]]:
        """Coarse steps ``(start, length)`` in fine steps covering levels ``[a, b]``."""
        count = 1 if self.coarse_factor is None else max(1, math.ceil((b - a) / self.coarse_factor))
        edges = [a + round(i * (b - a) / count) for i in range(count + 1)]
        return [(lo, hi - lo) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]

    def view(self, disc: DiscreteMFG, length: int) -> DiscreteMFG:
        """``disc`` with ``dt`` of ``length`` fine steps: the same scheme, a coarser step."""
        return disc.with_dt(disc.dt * length)

    # -- HJB: backward ---------------------------------------------------------------
    def hjb(self, disc: DiscreteMFG, m: Any, u_guess: Any = None, forcing: float | None = None) -> HJBResult:
        """HJB backward from ``g(m^Nt)`` by Parareal; ``u_guess`` seeds Newton and the warm start."""
        xp = disc.xp
        f = disc.running_cost(m[1:])
        crowd = m[1:]  # level n of a step pairs with m^{n+1}
        n_b = self.bounds(disc.Nt)
        S = self.slices
        # slice q in sweep order is time slice j = S-1-q, from level n_{j+1} down to n_j
        first = [n_b[S - q] for q in range(S)]
        length = [n_b[S - q] - n_b[S - 1 - q] for q in range(S)]
        stats = {"newton": 0, "residual": 0.0}

        def coarse(q: int, u: Any) -> Any:
            steps = self.coarse_steps(n_b[S - 1 - q], n_b[S - q])
            for start, size in reversed(steps):
                n = start + (size - 1) // 2
                guess = None if u_guess is None else u_guess[start]
                u = self.view(disc, size).hjb_step(u, crowd[n], f[n], n, guess, forcing).u
            self.steps["hjb_coarse"] += len(steps)
            return u

        def step(rows: list[int], i: int, u: Any) -> Any:
            levels = [first[q] - 1 - i for q in rows]
            guess = None if u_guess is None else pick(xp, u_guess, levels, u)
            result = disc.hjb_step(u, pick(xp, crowd, levels, u), pick(xp, f, levels, u), levels[0], guess,
                                   forcing)
            with self._lock:
                stats["newton"] += result.iterations
                stats["residual"] = max(stats["residual"], result.residual)
                self.steps["hjb_fine"] += len(rows)
            return result.u

        start = None
        if self.warm_start and u_guess is not None:
            start = [u_guess[n_b[S - q]] for q in range(S)]
        u_T = disc.terminal_cost(m[-1])
        pieces, jump, K = self._iterate(disc, u_T, start, coarse, step, length, "hjb", forcing)
        levels = [u_T]
        for q in range(S):
            levels.extend(pieces[q])
        u = xp.stack(levels[::-1])
        return HJBResult(u, stats["newton"], max(stats["residual"], jump))

    # -- FP: forward -----------------------------------------------------------------
    def fp(self, disc: DiscreteMFG, u: Any, m: Any, forcing: float | None = None, steps: Any = None) -> Any:
        """FP forward from ``m0`` by Parareal; ``m`` supplies congestion and the warm start."""
        xp = disc.xp
        matrices = disc.fp_matrices(u, m)
        n_b = self.bounds(disc.Nt)
        length = [n_b[q + 1] - n_b[q] for q in range(self.slices)]

        operators: dict[tuple[int, int], tuple[DiscreteMFG, StencilMatrix]] = {}  # u, m fixed here

        def coarse(q: int, x: Any) -> Any:
            steps = self.coarse_steps(n_b[q], n_b[q + 1])
            for start, size in steps:
                if (start, size) not in operators:
                    n = start + (size - 1) // 2
                    view = self.view(disc, size)
                    operators[start, size] = view, view.fp_matrices(u[n:n + 2], m[n:n + 2]).at(0)
                view, matrix = operators[start, size]
                x = view.fp_step(matrix, x, forcing=forcing)
            self.steps["fp_coarse"] += len(steps)
            return x

        def step(rows: list[int], i: int, x: Any) -> Any:
            index = [n_b[q] + i for q in rows]
            batch = StencilMatrix(pick(xp, matrices.center, index, x),
                                  tuple(pick(xp, a, index, x) for a in matrices.minus),
                                  tuple(pick(xp, a, index, x) for a in matrices.plus))
            with self._lock:
                self.steps["fp_fine"] += len(rows)
            return disc.fp_step(batch, x, forcing=forcing)

        start = [m[n_b[q]] for q in range(self.slices)] if self.warm_start else None
        pieces, _, _ = self._iterate(disc, disc.m0, start, coarse, step, length, "fp", forcing)
        levels = [disc.m0]
        for q in range(self.slices):
            levels.extend(pieces[q])
        return xp.stack(levels)

    # -- the Parareal iteration, in sweep order ----------------------------------------
    def _iterate(self, disc: DiscreteMFG, x0: Any, start: list[Any] | None,
                 coarse: Callable[[int, Any], Any], step: Callable[[list[int], int, Any], Any],
                 length: list[int], equation: str,
                 forcing: float | None) -> tuple[list[list[Any]], float, int]:
        """Slice start values ``U_0 = x0, U_1..U_{S-1}`` by Parareal (sweep order); returns
        the fine levels of every slice (start excluded), the largest boundary jump and ``K``.
        The last slice's end feeds no slice, so it is never coarse-propagated."""
        xp = disc.xp
        S = self.slices
        max_iter = S if self.max_iter is None else self.max_iter
        tol = max(self.tol, forcing or 0.0)  # inexact coupling iterations
        clock = time.perf_counter()
        U = [x0]
        if start is None:  # initial coarse sweep: U_{j+1} = G_j(U_j)
            for q in range(S - 1):
                U.append(coarse(q, U[q]))
            G_old = U[1:]
        else:  # start values from the caller's trajectory; their G_j(U_j) are independent
            U = [x0] + list(start[1:S])
            G_old = [coarse(q, U[q]) for q in range(S - 1)]
        self.seconds[f"{equation}_coarse"] += time.perf_counter() - clock
        pieces: list[list[Any]] = [[] for _ in range(S)]
        change = float("inf")
        self.changes, self.boundaries = [], []
        for k in range(1, max_iter + 1):
            clock = time.perf_counter()
            rows = list(range(k - 1, S))  # slices before k-1 are exact and frozen
            ends = self._fine(disc, rows, [U[q] for q in rows], step, length, pieces)
            self.seconds[f"{equation}_fine"] += time.perf_counter() - clock
            clock = time.perf_counter()
            new = U[:k] + [ends[0]][:S - k]  # slice k starts from the exact end of slice k-1
            for i, q in enumerate(rows[1:-1], start=1):
                g = coarse(q, new[q])
                new.append(g + ends[i] - G_old[q])
                G_old[q] = g
            self.seconds[f"{equation}_coarse"] += time.perf_counter() - clock
            scale = 1.0 + max(float(xp.max(xp.abs(v))) for v in new)
            change = max([float(xp.max(xp.abs(new[q] - U[q]))) for q in range(k, S)], default=0.0) / scale
            jump = max([float(xp.max(xp.abs(ends[i - 1] - U[q]))) for i, q in enumerate(rows[1:], start=1)],
                       default=0.0)
            U = new
            if k == 1 and start is not None and self.forcing is not None:
                tol = max(tol, self.forcing * change)  # inexact while the caller is far off
            self.changes.append(change)
            self.boundaries.append(U[1:S])
            if k == S or change <= tol:
                self.iterations[equation].append(k)
                return pieces, jump, k
        raise SolverError(
            f"Parareal ({equation}) did not converge: boundary change {change:.3e} > tol={tol:.1e} "
            f"after max_iter={max_iter} iterations with slices={S} (exact after {S} iterations)"
        )

    def _fine(self, disc: DiscreteMFG, rows: list[int], starts: list[Any],
              step: Callable[[list[int], int, Any], Any], length: list[int],
              pieces: list[list[Any]]) -> list[Any]:
        """Fine sweeps of slices ``rows`` from ``starts``: batched over slices in 1D, one
        slice per task on ``workers`` threads in 2D/3D. Stores each slice's levels in
        ``pieces``; returns the end values."""
        xp = disc.xp
        for q in rows:
            pieces[q] = []
        if disc.problem.grid.ndim > 1:
            def sweep(q: int, x: Any) -> Any:
                for i in range(length[q]):
                    x = step([q], i, x)
                    pieces[q].append(x)
                return x

            workers = self.workers
            if workers is None:
                workers = (os.cpu_count() or 1) if disc.problem.grid.size >= THREADED_NODES else 1
            if workers == 1 or len(rows) == 1:
                return [sweep(q, x) for q, x in zip(rows, starts, strict=True)]
            with ThreadPoolExecutor(min(workers, len(rows))) as pool:
                return list(pool.map(sweep, rows, starts))
        current = dict(zip(rows, starts, strict=True))
        for i in range(max(length[q] for q in rows)):
            active = [q for q in rows if length[q] > i]
            out = step(active, i, xp.stack([current[q] for q in active]))
            for r, q in enumerate(active):
                current[q] = out[r]
                pieces[q].append(out[r])
        return [current[q] for q in rows]


def pick(xp: Any, a: Any, levels: list[int], like: Any) -> Any:
    """``a[levels]`` stacked as a batch when ``like`` is batched, else the single level."""
    if like.ndim == a.ndim - 1:
        return a[levels[0]]
    return xp.stack([a[n] for n in levels])

