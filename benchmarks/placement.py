"""Where a solve runs fastest: the same solve on every installed backend and device, same run.

``solve(backend=None)`` places a solve on numpy (unless ``$MFG_RL_BACKEND`` says otherwise)
because of this table: per-step work of the catalogue is many small array operations, and
numpy's dispatch is the cheapest. Columns: seconds per backend/device (best of
``--repeats``, after one warm-up solve) and the ratio to numpy.

Usage::

    python benchmarks/placement.py
    python benchmarks/placement.py --cases lq-1d crowd-2d --repeats 3
"""

from __future__ import annotations

import argparse
import time

from mfg_rl import available_backends, create_backend, problems, solve

CASES = {
    "lq-1d": {"Nx": 201, "Nt": 50},
    "crowd-exit-1d": {},
    "santa-fe-bar": {},
    "crowd-2d": {"Nx": 64, "Ny": 64, "Nt": 50},
}


def places() -> list[tuple[str, str | None]]:
    """``(backend, device)`` pairs to time: numpy, torch on each device, jax's default device."""
    found = available_backends()
    out: list[tuple[str, str | None]] = [("numpy", None)]
    out += [("torch", device) for device in found.get("torch", []) if not device.startswith("cuda:") or
            device == "cuda:0"]
    if "jax" in found:
        out.append(("jax", None))
    return out


def seconds(name: str, params: dict, backend: str, device: str | None, repeats: int) -> float:
    problem = problems.make(name, **params)
    place = create_backend(backend, device=device.replace(":0", "") if device else None)
    solve(problem, backend=place, progress=False)  # warm-up: imports, kernels, compiles
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        solve(problem, backend=place, progress=False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    columns = places()
    labels = [f"{b}:{d}" if d else b for b, d in columns]
    print(f"{'case':16s} " + " ".join(f"{label:>14s}" for label in labels) + "   (s; ratio to numpy)")
    for case in args.cases:
        times = [seconds(case, CASES[case], b, d, args.repeats) for b, d in columns]
        cells = [f"{t:7.3f} ({t / times[0]:4.1f}x)" for t in times]
        print(f"{case:16s} " + " ".join(f"{c:>14s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
