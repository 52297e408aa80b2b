"""``calibrate``: where solves run fastest on this machine, measured, for ``solvers.placement``.

For each kind of solve (``placement.KINDS``) a ladder of sizes is solved for ``ITERATIONS``
coupling iterations on numpy and on torch on each device; the crossover of a device is the
smallest work from which it is faster at every larger size (``crossover``). The entries go to
``placement.calibration_path()`` (``mfg-rl calibrate``), where ``place`` reads them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mfg_rl.paths import atomic_write
from mfg_rl.solvers.placement import (
    KINDS,
    calibration_path,
    device_key,
    devices_by_speed,
    load_calibration,
    work,
)
from mfg_rl.solvers.solve import solve

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

    devices = list(devices) if devices is not None else devices_by_speed()
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
