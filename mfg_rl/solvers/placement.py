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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mfg_rl.backends import ENV_VAR
from mfg_rl.core import MFGProblem
from mfg_rl.paths import default_cache_dir

log = logging.getLogger("mfg_rl.solvers")

KINDS = ("fdm-1d", "fdm-2d", "particles")
FILE_NAME = "placement.json"
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


def devices_by_speed() -> list[str]:
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
    for device in devices_by_speed() if calibration else []:
        entry = calibration.get(device_key(device))
        crossover = None if entry is None else entry.get("crossover", {}).get(kind)
        if crossover is not None and amount >= crossover:
            return Placement("torch", device, f"torch on {device}: {kind} work {amount:.2e} >= the crossover "
                             f"{crossover:.2e} measured on {entry.get('date', '?')}", amount, kind)
        if entry is not None:
            below.append(f"{device} " + ("never faster" if crossover is None else f"from {crossover:.2e}"))
    found = "; ".join(below) or "no calibration of this machine's torch devices; `mfg-rl calibrate` measures"
    return Placement("numpy", None, f"numpy: {kind} work {amount:.2e} ({found})", amount, kind)
