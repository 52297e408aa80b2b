"""Particles at the box's sides: reflection at no-flux walls, wrap on periodic axes, removal at exits.

``fold`` reads the positions' range on the host and works only when a particle left the
box (arrays on the host); ``fold_on_device`` selects the same folds by ``where`` and reads
nothing (arrays on an accelerator). Both give the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

from mfg_rl.errors import SolverError


def fold(xp: Any, box: list[tuple[float, float]], boundary: Any, cols: list[Any], alive: Any) -> Any:
    """Fold ``cols`` back into the ``box`` in place; return ``alive`` with exited particles at 0.

    Periodic axes wrap; no-flux walls reflect (both walls: the exact fold of the reflection
    group, whatever the overshoot); particles beyond an exit side are removed and parked on
    the face so that they stay in the KDE's range with weight 0.
    """
    for k, ((lo, hi), sides) in enumerate(zip(box, boundary, strict=True)):
        c = cols[k]
        low_end, high_end = float(xp.min(c)), float(xp.max(c))
        if lo <= low_end and high_end <= hi:
            continue
        if not (math.isfinite(low_end) and math.isfinite(high_end)):  # before any index is formed
            raise SolverError("particle FP produced non-finite positions (NaN or infinite drift)")
        cols[k], alive = _fold_axis(xp, c, lo, hi, sides, alive)
    return alive


def fold_on_device(xp: Any, box: list[tuple[float, float]], boundary: Any, cols: list[Any],
                   alive: Any) -> tuple[Any, Any]:
    """``fold`` with no host read: ``(alive, non-finite positions seen)``, a 0-d flag.

    Folds that ``fold`` applies only when a particle left the box are selected by
    ``where`` on that test (the same numbers); non-finite positions are parked at the box's
    low side, so no index is formed from them, and the sweep raises once, at its end, as ``fold`` does.
    """
    bad = False
    for k, ((lo, hi), sides) in enumerate(zip(box, boundary, strict=True)):
        c = cols[k]
        low_end, high_end = xp.min(c), xp.max(c)
        bad = bad | ~(xp.isfinite(low_end) & xp.isfinite(high_end))
        c = xp.where(xp.isfinite(c), c, lo)
        folded, alive = _fold_axis(xp, c, lo, hi, sides, alive)
        wraps = sides[0] == "periodic" or tuple(sides) == ("no_flux", "no_flux")  # moves particles inside too
        cols[k] = xp.where((low_end < lo) | (high_end > hi), folded, c) if wraps else folded
    return alive, bad


def _fold_axis(xp: Any, c: Any, lo: float, hi: float, sides: tuple[str, str], alive: Any) -> tuple[Any, Any]:
    """One axis of ``fold``: ``(c folded into [lo, hi], alive with exited particles at 0)``."""
    low, high = sides
    length = hi - lo
    if low == "periodic":
        return lo + xp.remainder(c - lo, length), alive
    if low == high == "no_flux":
        r = xp.remainder(c - lo, 2.0 * length)
        return lo + xp.where(r > length, 2.0 * length - r, r), alive
    if low == "no_flux":
        c = xp.where(c < lo, 2.0 * lo - c, c)
    if high == "no_flux":
        c = xp.where(c > hi, 2.0 * hi - c, c)
    alive = xp.where((c < lo) | (c > hi), 0.0, alive)
    return xp.clip(c, min=lo, max=hi), alive
