"""Where ``solve(backend=None)`` runs: numpy on the host, or torch on a device above a measured crossover.

The work of a solve is ``W = unknowns x (Nt + 1)`` (grid cells, or particles for
``fp="particles"``), in one of three kinds: ``"fdm-1d"``, ``"fdm-2d"``, ``"particles"``. A
device (torch on CUDA or MPS, or torch on the CPU) is chosen when a calibration measured on
this machine says it beats numpy for that kind from a work ``W_c`` on and ``W >= W_c``;
otherwise numpy, which measured fastest for every catalogue solve on the machines without a
calibration (``benchmarks/placement.py``). ``calibrate()`` (``mfg-rl calibrate``) times numpy
and each torch device on a ladder of sizes of each kind and stores the crossovers in
``<cache>/placement.json``, keyed by the device's name, so another GPU never reuses them.

The order: the strategy's own backend (``JaxScan``), then ``$MFG_RL_BACKEND``, then the
calibration, then numpy. The choice and its reason land in ``eq.diagnostics.placement`` and on
the ``mfg_rl.solvers`` logger.

Example:
    >>> from mfg_rl import problems
    >>> from mfg_rl.solvers.placement import place
    >>> place(problems.make("lq-1d", Nx=51, Nt=10), calibration={}).backend
    'numpy'
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mfg_rl.backends import ENV_VAR
from mfg_rl.core import MFGProblem
from mfg_rl.paths import atomic_write, default_cache_dir

log = logging.getLogger("mfg_rl.solvers")

KINDS = ("fdm-1d", "fdm-2d", "particles")
FILE_NAME = "placement.json"
LADDER: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "fdm-1d": [("lq-1d", {"Nx": 201, "Nt": 50}), ("lq-1d", {"Nx": 801, "Nt": 200}),
               ("lq-1d", {"Nx": 2001, "Nt": 500})],
    "fdm-2d": [("crowd-2d", {"Nx": 32, "Ny": 32, "Nt": 20}), ("crowd-2d", {"Nx": 64, "Ny": 64, "Nt": 50}),
               ("crowd-2d", {"Nx": 128, "Ny": 128, "Nt": 100})],
    "particles": [("lq-1d", {"Nx": 101, "Nt": 20, "n_particles": 10_000}),
                  ("lq-1d", {"Nx": 101, "Nt": 50, "n_particles": 200_000}),
                  ("lq-1d", {"Nx": 201, "Nt": 100, "n_particles": 2_000_000})],
}
"""The sizes ``calibrate`` times per kind: small to large, a few seconds each on numpy."""
ITERATIONS = 2
"""Coupling iterations per timed solve: the per-iteration cost is what placement compares."""


@dataclass(frozen=True)
class Placement:
    """Where a solve runs and why: ``backend`` (``"numpy"``, ``"torch"``, ``"jax"``), ``device``
    (``None``: the backend's default), ``reason`` (one sentence), ``work`` and ``kind``."""

    backend: str
    device: str | None
    reason: str
    work: int = 0
    kind: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def work(problem: MFGProblem, n_particles: int | None = None) -> tuple[str, int]:
    """``(kind, W)``: the kind of solve and its work ``unknowns x (Nt + 1)``."""
    steps = problem.time.Nt + 1
    if n_particles is not None:
        return "particles", int(n_particles) * steps
    cells = 1
    for n in problem.grid.shape:
        cells *= int(n)
    return f"fdm-{problem.grid.ndim}d", cells * steps


def calibration_path() -> Path:
    """``<cache>/placement.json`` (``$MFG_RL_CACHE`` or ``~/.cache/mfg_rl``)."""
    return default_cache_dir() / FILE_NAME


def load_calibration(path: str | Path | None = None) -> dict[str, Any]:
    """The stored calibrations, ``{device key: entry}``; ``{}`` when there is none. A file that
    cannot be read is reported on the logger and ignored (placement falls back to numpy)."""
    path = Path(path) if path is not None else calibration_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("placement: ignoring %s (%s); run `mfg-rl calibrate` to rewrite it", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def device_key(device: str) -> str:
    """A calibration's key: ``"cpu"``, ``"mps"``, or ``"cuda:<device name>"`` (another GPU model
    is another key)."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        return f"cuda:{torch.cuda.get_device_name(index)}"
    return device


def _devices() -> list[str]:
    """The torch devices of this machine, fastest first (one CUDA device: the default one)."""
    from mfg_rl.backends.torch_backend import torch_devices

    found = torch_devices()
    return [d for kind in ("cuda:0", "mps", "cpu") for d in found if d == kind]


def place(problem: MFGProblem, strategy: Any = None, n_particles: int | None = None,
          calibration: Mapping[str, Any] | None = None) -> Placement:
    """The placement of ``solve(problem, backend=None)`` (module docstring for the order).

    Args:
        problem: the problem to solve; its grid and horizon give the work.
        strategy: the trajectory strategy (its ``backend`` attribute, if any, wins).
        n_particles: the particle count for ``fp="particles"`` (``None``: a grid FP).
        calibration: the stored calibrations (default: ``load_calibration()``).
    """
    kind, amount = work(problem, n_particles)
    own = getattr(strategy, "backend", None)
    if own:
        return Placement(own, None, f"the strategy {type(strategy).__name__} runs on {own}", amount, kind)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Placement(env, None, f"set by ${ENV_VAR}", amount, kind)
    calibration = load_calibration() if calibration is None else calibration
    below = []
    for device in _devices() if calibration else []:
        entry = calibration.get(device_key(device))
        crossover = None if entry is None else entry.get("crossover", {}).get(kind)
        if crossover is not None and amount >= crossover:
            return Placement("torch", device, f"torch on {device}: {kind} work {amount:.2e} >= the crossover "
                             f"{crossover:.2e} measured on {entry.get('date', '?')}", amount, kind)
        if entry is not None:
            below.append(f"{device} " + ("never faster" if crossover is None else f"from {crossover:.2e}"))
    found = "; ".join(below) or "no calibration of this machine's torch devices; `mfg-rl calibrate` measures"
    return Placement("numpy", None, f"numpy: {kind} work {amount:.2e} ({found})", amount, kind)


def crossover(rows: Sequence[tuple[int, float, float]]) -> int | None:
    """The smallest work from which the device is faster at every larger size of the ladder.

    ``rows`` are ``(work, numpy seconds, device seconds)`` sorted by work; ``None`` when the device
    is slower at the largest size.
    """
    found = None
    for amount, host, device in reversed(list(rows)):
        if device >= host:
            break
        found = amount
    return found


def _timed(name: str, params: dict[str, Any], backend: Any, repeats: int) -> float:
    """Best wall time of ``ITERATIONS`` coupling iterations of ``name`` on ``backend``."""
    from mfg_rl import problems
    from mfg_rl.solvers.solve import solve

    params = dict(params)
    n_particles = params.pop("n_particles", None)
    problem = problems.make(name, **params)
    extra = {"fp": "particles", "n_particles": n_particles, "tol": 1.0 / n_particles} if n_particles else {}
    options = dict(backend=backend, max_iter=ITERATIONS, allow_unconverged=True, progress=False,
                   cache=False, coupling="anderson", **extra)
    best = float("inf")
    for _ in range(repeats + 1):  # the first solve warms imports, kernels and allocations up
        start = time.perf_counter()
        solve(problem, **options)
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(devices: Sequence[str] | None = None, *, kinds: Sequence[str] = KINDS, repeats: int = 1,
              path: str | Path | None = None, report: Callable[[str], None] | None = print,
              ladder: Mapping[str, list[tuple[str, dict[str, Any]]]] | None = None) -> dict[str, Any]:
    """Time numpy and torch on each of ``devices`` over the ``LADDER``; store and return the entries.

    Each entry holds the crossover per kind (``crossover``), the table it came from, the torch
    version and the date; it replaces the device's earlier entry in the file at ``path``.

    Args:
        devices: torch devices to calibrate (default: every one of this machine, CPU included).
        kinds: which of ``KINDS`` to time; repeats: timed solves per size after one warm-up.
        path: the calibration file (default ``calibration_path()``).
        report: where each measured row is printed (``None``: quiet).
        ladder: sizes per kind (default ``LADDER``).
    """
    import torch

    from mfg_rl.backends import create_backend

    devices = list(devices) if devices is not None else _devices()
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"kinds must be among {', '.join(KINDS)}, got {unknown}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    ladder = LADDER if ladder is None else ladder
    path = Path(path) if path is not None else calibration_path()
    numpy_backend = create_backend("numpy")
    backends = {device: create_backend("torch", device=device) for device in devices}  # bad ones raise now
    host: dict[str, list[tuple[int, float]]] = {}
    for kind in kinds:
        host[kind] = []
        for name, params in ladder[kind]:
            from mfg_rl import problems

            shape = {k: v for k, v in params.items() if k != "n_particles"}
            amount = work(problems.make(name, **shape), params.get("n_particles"))[1]
            host[kind].append((amount, _timed(name, params, numpy_backend, repeats)))
    stored = load_calibration(path)
    entries = {}
    for device, backend in backends.items():
        table, crossovers = [], {}
        for kind in kinds:
            rows = []
            for (name, params), (amount, seconds) in zip(ladder[kind], host[kind], strict=True):
                on_device = _timed(name, params, backend, repeats)
                rows.append((amount, seconds, on_device))
                table.append({"kind": kind, "problem": name, **params, "work": amount, "numpy_s": seconds,
                              "device_s": on_device})
                if report is not None:
                    report(f"{kind:9s} {name:9s} work {amount:9.2e}  numpy {seconds:8.3f} s  torch:{device} "
                           f"{on_device:8.3f} s  ({on_device / seconds:5.2f}x)")
            crossovers[kind] = crossover(rows)
        entries[device_key(device)] = {"device": device, "crossover": crossovers, "table": table,
                                       "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    stored.update(entries)
    text = json.dumps(stored, indent=1, sort_keys=True).encode()
    atomic_write(path, lambda out: out.write(text))
    return entries
