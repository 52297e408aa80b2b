"""No host round trip inside a time step (issue 13 item 1), counted on torch CPU tensors.

A ``TorchDispatchMode`` sees every aten op a sweep dispatches; ``aten._local_scalar_dense``
is every ``.item()``/``float()``/``bool()`` of a tensor, which on an accelerator waits for
the device; ``Backend.to_numpy`` calls (a copy to the host there) are counted as well. One
sweep at two horizons: the host reads must not grow with ``Nt`` (a constant ceiling), and
the ops per time step stay under a ceiling the code reaches today (a fused step lowers it).

On a CPU a host read is free, so torch CPU tensors take the host's paths (LAPACK solves,
numpy views for particles, Newton checked every iteration). ``OffHost`` is torch on the
CPU taking an accelerator's paths instead (``on_host`` False: cyclic reduction, tensors
stepped as tensors, Newton unrolled), which is what these tests count; the host paths
are also counted, as the ceiling they are not held to.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mfg_rl import problems, solve
from mfg_rl.backends import create_backend
from mfg_rl.backends.torch_backend import TorchBackend
from mfg_rl.errors import SolverError
from mfg_rl.solvers import DiscreteMFG, Sequential
from mfg_rl.solvers.particles import ParticleFP
from mfg_rl.solvers.stencil import KRYLOV_READ_EVERY, LinearSolver, StencilMatrix

HORIZONS = (10, 40)  # Nt of each sweep
SCALAR = torch.ops.aten._local_scalar_dense.default


class Counter(TorchDispatchMode):
    """Counts dispatched aten ops and, among them, host reads of a tensor's value."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.syncs = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.ops += 1
        self.syncs += func is SCALAR
        return func(*args, **(kwargs or {}))


class OffHost(TorchBackend):
    """torch on the CPU taking an accelerator's code paths; counts its host copies."""

    copies = 0

    @property
    def on_host(self) -> bool:
        return False

    def to_numpy(self, x: Any) -> Any:
        self.copies += 1
        return super().to_numpy(x)


def counted(backend: OffHost, sweep: Any) -> tuple[int, int]:
    """``(host reads, ops)`` of ``sweep()``: scalar reads plus copies to the host, and aten ops."""
    backend.copies = 0
    with Counter() as counter:
        sweep()
    return counter.syncs + backend.copies, counter.ops


def fields(name: str, nt: int, backend: Any = None, **size: Any) -> tuple[DiscreteMFG, Any, Any]:
    """``(disc, u, m)`` at horizon ``nt``: ``m`` frozen at ``m0``, ``u`` its HJB solution."""
    disc = DiscreteMFG(problems.make(name, Nt=nt, **size), backend or OffHost(device="cpu"))
    m = disc.xp.stack([disc.m0] * (nt + 1))
    return disc, Sequential().hjb(disc, m).u, m


@pytest.mark.parametrize("warm", [False, True])
def test_hjb_sweep_reads_the_host_once(warm):
    """lq-1d (3 Newton iterations per step from u^{n+1}, the same at every step): cold, the
    ``FIRST_ROUNDS`` = 4 unrolled iterations per step; warm, rounds from the last sweep (3).
    One host read per sweep; under 360 ops per Newton round per step (measured ~345: a 1D
    solve by cyclic reduction is ~40 ops per log2(Nx) sweep, issue 13 item 2)."""
    for nt in HORIZONS:
        disc, _, m = fields("lq-1d", nt, Nx=51)
        if not warm:
            disc = DiscreteMFG(disc.problem, disc.backend)
        rounds = disc.newton_rounds
        reads, ops = counted(disc.backend, lambda d=disc, m=m: Sequential().hjb(d, m))
        assert reads == 1, (nt, reads)
        assert ops <= 360 * rounds * nt, (nt, ops / (rounds * nt))


def checked_sweep(disc: DiscreteMFG, m: Any) -> tuple[Any, int, float]:
    """``(u, Newton iterations, worst residual)`` of the backward sweep, each step's Newton
    checked on the host as it goes (``hjb_step``)."""
    f, levels, count, worst = disc.running_cost(m[1:]), [disc.terminal_cost(m[-1])], 0, 0.0
    for n in range(disc.Nt - 1, -1, -1):
        step = disc.hjb_step(levels[-1], m[n + 1], f[n], n)
        levels.append(step.u)
        count, worst = count + step.iterations, max(worst, step.residual)
    return torch.stack(levels[::-1]), count, worst


@pytest.mark.parametrize("rounds", [1, 2, 3, 4, 7])
def test_unrolled_sweep_gives_the_checked_sweep_bit_for_bit(rounds):
    """lq-1d needs 3 iterations per step. With fewer rounds the first step is finished under
    the checked loop and the sweep goes on from the next with twice the rounds (one pass
    and one read per doubling, plus the finished step's reads); with more, the masked
    iterations leave converged steps as they are. Same u, counts and residual either way."""
    disc, _, m = fields("lq-1d", 10, Nx=51)
    assert disc.unrolled_newton and not DiscreteMFG(disc.problem, create_backend("torch")).unrolled_newton
    disc.newton_rounds = rounds
    reads, _ = counted(disc.backend, lambda: Sequential().hjb(disc, m))
    disc.newton_rounds = rounds
    got = Sequential().hjb(disc, m)
    u, count, worst = checked_sweep(disc, m)
    assert torch.equal(got.u, u) and (got.newton_iterations, got.residual) == (count, worst) == (30, worst)
    # short: two passes, the finished step's 3 - rounds + 1 status reads and 4 for its result
    assert reads == (1 if rounds >= 3 else 2 + (3 - rounds + 1) + 4), reads
    assert disc.newton_rounds == 3


def test_unrolled_sweep_raises_as_the_checked_one():
    """A non-finite crowd, and a Newton budget below what a step needs: the same
    ``SolverError``, naming the same step, as the checked sweep."""
    disc, _, m = fields("lq-1d", 10, Nx=51)
    broken = m.clone()
    broken[4, 20] = float("nan")
    tight = DiscreteMFG(disc.problem, disc.backend, max_newton=2)
    for case, crowd in ((disc, broken), (tight, m)):
        with pytest.raises(SolverError) as checked:
            checked_sweep(case, crowd)
        with pytest.raises(SolverError) as unrolled:
            Sequential().hjb(case, crowd)
        assert str(unrolled.value) == str(checked.value)
        assert "at time index n=" in str(checked.value)


def test_fp_sweep_reads_nothing():
    """The 1D FP sweep: no host read; under 260 ops per step (measured ~245, cyclic reduction)."""
    for nt in HORIZONS:
        disc, u, m = fields("lq-1d", nt, Nx=51)
        reads, ops = counted(disc.backend, lambda d=disc, u=u, m=m: Sequential().fp(d, u, m))
        assert reads == 0, (nt, reads)
        assert ops <= 260 * nt, (nt, ops / nt)


@pytest.mark.parametrize(("name", "size"), [("lq-1d", dict(Nx=51)), ("crowd-exit-1d", dict(Nx=51)),
                                            ("crowd-2d", dict(Nx=12))])
@pytest.mark.parametrize("bandwidth", [0.05, "scott"])
def test_particle_sweep_reads_the_host_a_fixed_number_of_times(name, size, bandwidth):
    """Particles stepped as tensors: counts, bandwidth sums and the finite checks stay on the
    device, read once at the end of the sweep. A rule's bandwidth sets the kernel's reach, a
    host number: one more read per step (the step's moments), plus the first bandwidth and
    the rule's two-pass fallback where the binned moments cancel (crowd-exit-1d), at most
    two per step in all. Ops: under 125 per step and axis (measured 89-115)."""
    for nt in HORIZONS:
        disc, u, m = fields(name, nt, **size)
        fp = ParticleFP(2000, seed=3, bandwidth=bandwidth)
        reads, ops = counted(disc.backend, lambda d=disc, u=u, m=m, fp=fp: fp.simulate(d, u, m))
        ceiling = 1 if isinstance(bandwidth, float) else 2 * nt
        assert reads <= ceiling, (nt, reads)
        assert ops <= 125 * disc.problem.grid.ndim * nt, (nt, ops / nt)


def test_particle_sweep_on_device_raises_as_on_the_host():
    """Non-finite drift: the tensors' path reads it once, at the end of the sweep, and raises
    the host path's ``SolverError``."""
    for backend in (OffHost(device="cpu"), create_backend("torch", device="cpu")):
        disc, u, m = fields("lq-1d", 10, backend, Nx=51)
        u = u.clone()
        u[1, 15:36] = float("nan")
        with pytest.raises(SolverError, match="non-finite positions"):
            ParticleFP(500, seed=1, bandwidth=0.05).simulate(disc, u, m)


# -- 2D sweeps: Krylov solves read the host once per chunk of iterations (StencilSolver._solve_off_host)
HORIZONS_2D = (3, 6)  # Nt of each 2D sweep


def crowd_2d(nt: int, backend: Any = None, **options: Any) -> tuple[DiscreteMFG, Any, Any]:
    """``fields`` of crowd-2d on a 12x12 grid (square: the zebra frame is a device select)."""
    disc, u, m = fields("crowd-2d", nt, backend, Nx=12, Ny=12)
    return (DiscreteMFG(disc.problem, disc.backend, **options) if options else disc), u, m


def recorded(disc: DiscreteMFG) -> list[int]:
    """The iteration counts of the Krylov solves ``disc`` runs from now on, one per solve."""
    counts: list[int] = []
    count = disc.linear._count
    disc.linear._count = lambda n: (counts.append(n), count(n))[-1]
    return counts


def krylov_ceiling(counts: list[int], k: int) -> int:
    """Host reads of off-host solves of ``counts`` iterations at ``k`` per chunk: each at most
    ``ceil(n / k) + 3`` (first chunk, later chunks, restart loop, status)."""
    return sum(-(-n // k) + 3 for n in counts)


def swapped(matrix: StencilMatrix) -> StencilMatrix:
    """The 2D system with its axes exchanged (solution ``x.T``): the other zebra frame."""
    def t(a: Any) -> Any:
        return a.T.contiguous()

    return StencilMatrix(t(matrix.center), (t(matrix.minus[1]), t(matrix.minus[0])),
                         (t(matrix.plus[1]), t(matrix.plus[0])))


@pytest.mark.parametrize("size", [dict(Nx=12, Ny=12), dict(Nx=12, Ny=8)])
def test_2d_krylov_solve_reads_once_per_chunk(size):
    """One FP step's solve (rtol 1e-12) on fresh solvers (first chunk ``k``): exactly
    ``ceil(n / k) + 2`` reads (the chunks, the restart loop, the status) in both zebra frames
    (crowd-2d's matrix takes lines along axis 0; with its axes exchanged, along axis 1), the
    same ``x`` bit for bit whatever ``k``, and the host's (numba) solve to 1e-10 relative. A
    12x8 grid cannot select the frame on the device: one read more, and one frame."""
    disc, u, m = fields("crowd-2d", 3, **size)
    matrix, rhs = disc.fp_matrices(u, m).at(0), disc.m0 / disc.dt
    host = DiscreteMFG(disc.problem, create_backend("torch", device="cpu")).linear.solve(matrix, rhs)
    square = size["Nx"] == size["Ny"]
    for flip in (False, True) if square else (False,):
        a, b, expected = (swapped(matrix), rhs.T.contiguous(), host.T) if flip else (matrix, rhs, host)
        solutions = []
        for k in (1, 3, 8):
            solver = DiscreteMFG(disc.problem, OffHost(device="cpu")).linear
            solver.read_every = k
            solve = functools.partial(solver.solve, a, b)
            reads, _ = counted(solver.backend, lambda f=solve, out=solutions: out.append(f()))
            n = solver.iterations
            assert n > 3 and reads == -(-n // k) + 2 + (not square), (flip, k, n, reads)
        assert all(torch.equal(x, solutions[0]) for x in solutions)
        assert torch.allclose(solutions[0], expected, rtol=0.0, atol=1e-10 * float(expected.abs().max()))


@pytest.mark.parametrize("equation", ["hjb", "fp"])
def test_2d_sweep_reads_the_host_per_krylov_chunk(equation):
    """crowd-2d 12x12 at two horizons: each Krylov solve of ``n`` iterations reads the host
    at most ``ceil(n / k) + 3`` times and at least 3 (``krylov_ceiling``), the ceiling per
    solve does not grow with ``Nt`` (the sum grows with the solves). The HJB sweep (the second
    on this crowd: unrolled) adds its one status read; the FP sweep has none. Before the chunked
    solve every BiCGStab iteration read its dot products (here 570 and 156 reads at Nt=3, five
    times the ceiling). Ops: under 1100 per Krylov iteration (measured ~600-950)."""
    k = KRYLOV_READ_EVERY
    for nt in HORIZONS_2D:
        disc, u, m = crowd_2d(nt)
        counts = recorded(disc)
        if equation == "hjb":
            Sequential().hjb(disc, m)  # sets each solve's first chunk
            counts.clear()
            reads, ops = counted(disc.backend, lambda d=disc, m=m: Sequential().hjb(d, m))
            reads -= 1
        else:
            reads, ops = counted(disc.backend, lambda d=disc, u=u, m=m: Sequential().fp(d, u, m))
        assert len(counts) >= nt and 3 * len(counts) <= reads <= krylov_ceiling(counts, k), (nt, reads)
        assert reads < sum(counts), (nt, reads, sum(counts))
        assert ops <= 1100 * sum(counts), (nt, ops / sum(counts))


def test_2d_sweeps_off_the_host_agree_with_the_host():
    """The off-host 2D sweeps (chunked BiCGStab, device-side projection) against the host's
    (numba zebra BiCGStab): u to 1e-10 and m to 1e-8 relative (Newton stops at 1e-12 of the
    step's scale, FP solves at rtol 1e-12; the two Krylov codes round differently)."""
    nt = HORIZONS_2D[0]
    off, _, m = crowd_2d(nt)
    host, _, _ = crowd_2d(nt, create_backend("torch", device="cpu"))
    u_off, u_host = Sequential().hjb(off, m).u, Sequential().hjb(host, m).u
    assert torch.allclose(u_off, u_host, rtol=0.0, atol=1e-10 * float(u_host.abs().max()))
    m_off, m_host = Sequential().fp(off, u_host, m), Sequential().fp(host, u_host, m)
    assert torch.allclose(m_off, m_host, rtol=0.0, atol=1e-8 * float(m_host.abs().max()))


@pytest.mark.parametrize("equation", ["hjb", "fp"])
def test_2d_sweep_off_the_host_raises_when_krylov_misses(equation):
    """One BiCGStab iteration allowed: the off-host solve reads its status once and raises the
    host's ``SolverError`` (no NaN carried on)."""
    disc, u, m = crowd_2d(HORIZONS_2D[0], linear=LinearSolver(max_iter=1))
    with pytest.raises(SolverError, match=r"BiCGStab did not converge after 1 iterations: relative residual"):
        Sequential().hjb(disc, m) if equation == "hjb" else Sequential().fp(disc, u, m)


def split_reads(disc: DiscreteMFG, sweep: Any) -> tuple[int, int]:
    """``(reads outside the Krylov solves, reads inside them)`` of ``sweep()`` on ``disc``."""
    backend, solve, inside = disc.backend, disc.linear.solve, [0]
    backend.copies = 0
    with Counter() as counter:
        def reads() -> int:
            return counter.syncs + backend.copies

        def krylov(*args: Any, **kwargs: Any) -> Any:
            start = reads()
            try:
                return solve(*args, **kwargs)
            finally:
                inside[0] += reads() - start

        disc.linear.solve = krylov
        try:
            sweep()
        finally:
            del disc.linear.solve
    return reads() - inside[0], inside[0]


def swept(disc: DiscreteMFG, m: Any) -> tuple[Any, int, int]:
    """``(HJBResult, reads outside the Krylov solves, reads inside them)`` of one HJB sweep."""
    out: list = []
    outside, inside = split_reads(disc, lambda: out.append(Sequential().hjb(disc, m)))
    return out[0], outside, inside


def test_2d_hjb_sweep_reads_newton_once():
    """crowd-2d 12x12 at two horizons. A first sweep runs Newton checked (``unrolled_sweep``: a
    pass would run the steps after one that outran its rounds for nothing, at a Krylov solve a
    round) and reads, besides its Krylov solves, once per iteration and 6 times per step. The
    next sweep unrolls each step's Newton to what it took and reads its statuses once: outside
    the Krylov solves 1 read whatever ``Nt`` (before: iterations + 7 per step, every sweep;
    here 42 and 75), its solves as many and as read as the checked sweep's, and the same ``u``
    bit for bit."""
    for nt in HORIZONS_2D:
        disc, _, m = crowd_2d(nt)
        fresh = DiscreteMFG(disc.problem, disc.backend)
        assert not fresh.unrolled_sweep and fresh.unrolled_newton
        checked, newton, krylov_checked = swept(fresh, m)
        assert fresh.unrolled_sweep and newton == checked.newton_iterations + 6 * nt, (nt, newton)
        counts = recorded(fresh)
        unrolled, newton, krylov = swept(fresh, m)
        assert newton == 1, (nt, newton)
        assert len(counts) == unrolled.newton_iterations == checked.newton_iterations
        assert krylov <= krylov_checked, (nt, krylov, krylov_checked)
        assert torch.equal(unrolled.u, checked.u) and unrolled.residual == checked.residual


@pytest.mark.parametrize("shift", [-2, -1, 2])
def test_2d_unrolled_sweep_with_wrong_rounds_gives_the_checked_sweep(shift):
    """Caps from the last sweep off by ``shift``: too few (steps finished under the checked loop,
    the sweep resumed with more slack) or too many (idle rounds: Krylov solves of ``b = 0``, no
    iteration, three reads each). Same ``u``, counts and residual as the checked sweep, bit for bit."""
    disc, _, m = crowd_2d(HORIZONS_2D[0])
    u, count, worst = checked_sweep(disc, m)
    disc.record_newton([max(1, k + shift) for k in disc.newton_counts[::-1]])
    counts = recorded(disc)
    got = Sequential().hjb(disc, m)
    assert torch.equal(got.u, u) and (got.newton_iterations, got.residual) == (count, worst)
    idle = [n for n in counts if n == 0]
    assert len(idle) == (disc.Nt * shift if shift > 0 else 0), counts


def test_2d_sweep_off_the_host_agrees_with_the_host_in_a_solve():
    """A whole off-host solve of crowd-2d 12x12 (Nt=3; its sweeps unrolled after the first)
    against the host's: u and m to 1e-12 relative (measured 9e-17 and 6e-17: each step's Newton
    stops at 1e-12 of its scale, quadratically, and the coupling takes the same 19 iterations;
    the Krylov codes round differently)."""
    problem = problems.make("crowd-2d", Nx=12, Ny=12, Nt=HORIZONS_2D[0])
    off = solve(problem, backend=OffHost(device="cpu"), progress=False)
    host = solve(problem, backend=create_backend("torch", device="cpu"), progress=False)
    for a, b in ((off.u.data, host.u.data), (off.m.data, host.m.data)):
        assert torch.allclose(a, b, rtol=0.0, atol=1e-12 * float(b.abs().max()))


@pytest.mark.parametrize("case", ["non-finite", "tight", "krylov"])
def test_2d_unrolled_sweep_raises_as_the_checked_one(case):
    """A non-finite crowd, a Newton budget below what a step needs, one BiCGStab iteration
    allowed: the unrolled sweep (caps from a sweep that went well) raises the checked sweep's
    ``SolverError``, word for word."""
    disc, _, m = crowd_2d(HORIZONS_2D[0])
    crowd = m.clone()
    if case == "non-finite":
        crowd[2, 5, 5] = float("nan")
    options = {"tight": dict(max_newton=2), "krylov": dict(linear=LinearSolver(max_iter=1))}.get(case, {})
    broken = DiscreteMFG(disc.problem, disc.backend, **options)
    with pytest.raises(SolverError) as checked:
        checked_sweep(broken, crowd)
    broken.record_newton(disc.newton_counts[::-1])
    assert broken.unrolled_sweep
    with pytest.raises(SolverError) as unrolled:
        Sequential().hjb(broken, crowd)
    assert str(unrolled.value) == str(checked.value)
