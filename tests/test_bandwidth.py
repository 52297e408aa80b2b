"""A floored bandwidth rule is defined for samples of 0, 1 and 2 particles; the KDE of none is zero."""

from __future__ import annotations

import math

import array_api_compat.torch as torch_xp
import numpy as np
import pytest
import torch

from mfg_rl.backends.kde import kde, rule_bandwidth
from mfg_rl.core import Grid

GRID = Grid([(0.0, 1.0)], 50, "no_flux")
H = GRID.spacing[0]


@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("weighted", [False, True])
def test_floored_rule_at_zero_one_and_two_particles(rule: str, weighted: bool) -> None:
    def sigma(x: list[float], floor: tuple[float, ...] | None = (H,)) -> float:
        points = np.array(x)
        weights = np.full(points.size, 0.25) if weighted else None
        return rule_bandwidth(np, [points], weights, rule, floor)[0]

    assert sigma([]) == H and sigma([0.4]) == H                # n = 0, 1: the floor
    assert sigma([0.4, 0.4]) == H                              # n = 2, no spread: the floor
    wide = sigma([0.2, 0.8])                                   # n = 2, spread: the rule itself
    assert wide == sigma([0.2, 0.8], floor=None) and wide > H
    # the rule of two points: factor * s, s^2 = the unbiased variance 0.18, n_eff = 2
    factor = 2.0 ** -0.2 if rule == "scott" else (2.0 * 3.0 / 4.0) ** -0.2
    assert wide == pytest.approx(factor * math.sqrt(0.18), rel=1e-12)
    for x in ([], [0.4]):
        with pytest.raises(ValueError, match="at least two particles"):
            sigma(x, floor=None)


def test_all_weight_on_one_particle_gives_the_floor() -> None:
    points = np.array([0.2, 0.5, 0.9])
    assert rule_bandwidth(np, [points], np.array([0.0, 0.7, 0.0]), "scott", (H,)) == (H,)
    assert rule_bandwidth(np, [points], np.zeros(3), "scott", (H,)) == (H,)


@pytest.mark.parametrize("xp", [np, torch_xp], ids=["numpy", "torch"])
@pytest.mark.parametrize("n", [0, 1, 2])
def test_kde_with_a_floor_integrates_to_the_weight_inside(xp, n: int) -> None:  # noqa: ANN001
    points = np.linspace(0.3, 0.6, n)
    weights = np.full(n, 0.1)
    if xp is torch_xp:
        points, weights = torch.as_tensor(points), torch.as_tensor(weights)
    rho = np.asarray(kde(xp, points, weights, GRID, bandwidth="scott", min_bandwidth=H))
    assert rho.shape == GRID.shape and np.all(np.isfinite(rho)) and rho.min() >= 0.0
    assert rho.sum() * GRID.cell_volume == pytest.approx(0.1 * n, abs=1e-8)  # 5e-9: quadrature at sigma = h


def test_kde_of_an_empty_crowd_is_zero() -> None:
    """Particles that all carry weight 0 (everyone has left): density 0, no NaN, no exception."""
    rho = kde(torch_xp, torch.tensor([0.2, 0.5, 0.7]), torch.zeros(3), GRID, min_bandwidth=H)
    assert rho.dtype == torch.float32 and not bool(rho.any())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(min_bandwidth=0.0), ValueError, "min_bandwidth must be"),
        (dict(min_bandwidth=float("nan")), ValueError, "min_bandwidth must be"),
        (dict(min_bandwidth=(H, H)), ValueError, "min_bandwidth must be .* got 2 values"),
        (dict(min_bandwidth="h"), TypeError, "min_bandwidth must be"),
        (dict(min_bandwidth=1e-9), ValueError, r"bandwidth \(min_bandwidth\)"),
        (dict(min_bandwidth=H, bandwidth=0.05), ValueError, "min_bandwidth floors a bandwidth rule"),
    ],
)
def test_bad_floors_are_refused(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        kde(np, np.array([0.2, 0.4]), None, GRID, **kwargs)
