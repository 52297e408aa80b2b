"""Kernel bandwidths: validation of given ones and the Scott/Silverman rules of a weighted sample,
optionally floored (a floor makes a rule defined for samples of 0 or 1 particle)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mfg_rl.backends.arrays import Grid
from mfg_rl.checks import check_real, shown

RULES = ("scott", "silverman")
MIN_BANDWIDTH_CELLS = 1e-3  # sigma_d must be at least this many cells wide


def check_bandwidth(bandwidth: Any, grid: Grid) -> tuple[float, ...] | str:
    allowed = f"a positive float, a tuple of {grid.ndim} positive floats, or one of {', '.join(RULES)}"
    if isinstance(bandwidth, str):
        if bandwidth not in RULES:
            raise ValueError(f"bandwidth must be {allowed}; got unknown rule {bandwidth!r}")
        return bandwidth
    values = bandwidth if isinstance(bandwidth, (tuple, list)) else [bandwidth] * grid.ndim
    if len(values) != grid.ndim:
        raise ValueError(f"bandwidth must be {allowed}; got {len(values)} values")
    return _positive_floats("bandwidth", bandwidth, values, allowed)


def check_floor(floor: Any, bandwidth: tuple[float, ...] | str, grid: Grid) -> tuple[float, ...] | None:
    """``floor`` (``min_bandwidth`` of ``kde``) as one float per axis, or None; only with a rule."""
    if floor is None:
        return None
    allowed = f"None, a positive float or a tuple of {grid.ndim} positive floats"
    if not isinstance(bandwidth, str):
        raise ValueError(f"min_bandwidth floors a bandwidth rule ({', '.join(RULES)}); with the given "
                         f"bandwidth {bandwidth!r} pass min_bandwidth=None")
    values = floor if isinstance(floor, (tuple, list)) else [floor] * grid.ndim
    if len(values) != grid.ndim:
        raise ValueError(f"min_bandwidth must be {allowed}; got {len(values)} values")
    out = _positive_floats("min_bandwidth", floor, values, allowed)
    check_sigma(out, grid, "min_bandwidth")
    return out


def _positive_floats(name: str, given: Any, values: Sequence[Any], allowed: str) -> tuple[float, ...]:
    """``values`` as finite floats > 0, else an error saying that ``name`` must be ``allowed``."""
    try:
        return tuple(check_real(name, value, 0.0, open_low=True) for value in values)
    except (TypeError, ValueError) as exc:
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(
            f"{name} must be {allowed}; got {shown(given)}") from None


def check_sigma(sigma: Sequence[float], grid: Grid, source: str) -> None:
    for k, (s, h) in enumerate(zip(sigma, grid.spacing, strict=True)):
        if not (math.isfinite(s) and s >= MIN_BANDWIDTH_CELLS * h):
            raise ValueError(
                f"bandwidth ({source}) on axis {k} is {s:g}; it must be finite and at least "
                f"{MIN_BANDWIDTH_CELLS:g} cells ({MIN_BANDWIDTH_CELLS * h:g})"
            )


def rule_bandwidth(
    xp: Any, columns: Sequence[Any], weights: Any, rule: str, floor: Sequence[float] | None = None
) -> tuple[float, ...]:
    """Per-axis ``sigma_d = max(factor * s_d, floor_d)`` of the rule ``"scott"``/``"silverman"``.

    ``factor`` and ``s_d`` as in the ``kde`` module doc. ``columns``: the d particle coordinate
    arrays, shape ``(N,)`` each; ``weights``: ``(N,)`` or ``None`` (uniform); ``floor``: None or
    d floats > 0. Without a floor the rule needs two particles with positive weight
    (ValueError otherwise); with one it is defined for any sample, ``sigma_d = floor_d`` when
    ``n_eff <= 1`` (no particle, one, or all the weight on one).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=1000)
        >>> s = rule_bandwidth(np, [x], None, "scott")[0]
        >>> bool(abs(s - x.std(ddof=1) * 1000 ** -0.2) < 1e-12)
        True
        >>> rule_bandwidth(np, [x[:1]], None, "scott", floor=(0.01,))
        (0.01,)
    """
    n, dim = int(columns[0].shape[0]), len(columns)
    if weights is None:
        n_eff, unbias = float(n), (n - 1.0) / n if n else 0.0
        wn = None
    else:
        total = float(xp.sum(weights))
        wn = weights / total if total > 0 else weights
        sum_sq = float(xp.sum(wn * wn)) if total > 0 else 1.0
        n_eff, unbias = 1.0 / sum_sq, 1.0 - sum_sq
    if floor is not None and not (n_eff > 1.0 + 1e-12 and unbias > 0):
        return tuple(float(f) for f in floor)
    factor = rule_factor(rule, dim, n_eff, unbias)
    sigma = []
    for col in columns:
        mean = float(xp.mean(col) if wn is None else xp.matmul(wn, col))
        # one pass E[x^2] - mean^2 when cancellation is harmless, else the two-pass formula
        second = float(xp.matmul(col, col) / n if wn is None else xp.matmul(wn * col, col))
        var = second - mean * mean
        if not var > 1e-4 * mean * mean:
            dev = col - mean
            var = float(xp.matmul(dev, dev) / n if wn is None else xp.matmul(wn * dev, dev))
        var /= unbias
        sigma.append(factor * math.sqrt(var) if math.isfinite(var) else math.inf)
    if floor is not None:
        sigma = [max(s, f) for s, f in zip(sigma, floor, strict=True)]
    return tuple(sigma)


def rule_factor(rule: str, dim: int, n_eff: float, unbias: float) -> float:
    """The rule's ``factor`` for ``n_eff`` (ValueError unless ``n_eff > 1`` and ``unbias > 0``).

    ``sigma_d = factor * sqrt(var_d / unbias)`` with ``var_d`` the weighted (biased) variance.
    """
    if not n_eff > 1.0 + 1e-12 or unbias <= 0:
        raise ValueError(
            f"bandwidth rule {rule!r} needs at least two particles with positive weight "
            f"(effective sample size {n_eff:g}); pass a float bandwidth or a floor (min_bandwidth) instead"
        )
    if rule == "scott":
        return n_eff ** (-1.0 / (dim + 4))
    return (n_eff * (dim + 2) / 4.0) ** (-1.0 / (dim + 4))
