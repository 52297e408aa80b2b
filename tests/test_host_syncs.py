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

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mfg_rl import problems
from mfg_rl.backends import create_backend
from mfg_rl.backends.torch_backend import TorchBackend
from mfg_rl.errors import SolverError
from mfg_rl.solvers import DiscreteMFG, Sequential
from mfg_rl.solvers.particles import ParticleFP

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
