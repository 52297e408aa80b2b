"""A probe of the Lasry-Lions monotonicity that makes an equilibrium unique.

With ``H`` independent of ``m``, the equilibrium is unique when the costs are monotone:
``int (f(x, m1) - f(x, m2)) (m1 - m2) dx >= 0`` for all densities ``m1, m2`` (and the same
for ``g``). The probe evaluates this on pairs of densities (Gaussian bumps across the
domain, and mixtures of two); a clearly negative value proves the costs non-monotone
(e.g. an attractive ``f = -c m``), so uniqueness is not guaranteed. Passing the probe is
no proof of monotonicity.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mfg_rl.core.problem import MFGProblem

PAIRS = 24  # density pairs probed per cost
ROUND_OFF = 1e-10  # relative to int |f(m1) - f(m2)| |m1 - m2|: below this a negative value is noise


def uniqueness_note(problem: MFGProblem, seed: int = 0) -> str | None:
    """``None`` when nothing speaks against a unique equilibrium, else a sentence saying why
    uniqueness is not guaranteed (a non-monotone cost found by the probe, or congestion).
    A problem with a closed form (``problem.exact``, e.g. lq-1d, whose mean-field cost is
    attractive) has its uniqueness checked where the closed form is built: ``None``.

    Example:
        >>> from mfg_rl import problems
        >>> uniqueness_note(problems.make("santa-fe-bar", Nx=40, Nt=4)) is None
        True
    """
    if problem.exact is not None:
        return None
    rng = np.random.default_rng(seed)
    pairs = list(_densities(problem, rng))
    for label, cost in (("running cost f", problem.running_cost), ("terminal cost g", problem.terminal_cost)):
        for m1, m2 in pairs:
            df = problem.evaluate_cost(cost, m1) - problem.evaluate_cost(cost, m2)
            dm = m1 - m2
            value = float(np.sum(df * dm)) * problem.grid.cell_volume
            size = float(np.sum(np.abs(df * dm))) * problem.grid.cell_volume
            if value < -ROUND_OFF * max(size, 1e-300) and size > 0.0:
                return (f"uniqueness is not guaranteed: the {label} is not monotone in m "
                        f"(int (f(m1) - f(m2)) (m1 - m2) dx = {value:.2e} < 0 for a pair of densities), "
                        "so another equilibrium may exist")
    if problem.hamiltonian.depends_on_m:
        return ("uniqueness also depends on how H depends on m (congestion), which is not checked; "
                "the costs look monotone")
    return None


def _densities(problem: MFGProblem, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs of normalised densities on the grid: two Gaussian bumps, and a bump against a mixture."""
    grid = problem.grid
    mesh = grid.mesh()
    lows = np.array([low for low, _ in grid.bounds])
    widths = np.array([high - low for low, high in grid.bounds])

    def bump(center: np.ndarray, width: float) -> np.ndarray:
        r2 = sum(((x - c) / (width * w)) ** 2 for x, c, w in zip(mesh, center, widths, strict=True))
        return _normalised(np.exp(-0.5 * r2) + 1e-3, grid.cell_volume)

    for _ in range(PAIRS // 2):
        c1, c2 = (lows + widths * rng.uniform(0.1, 0.9, grid.ndim) for _ in range(2))
        width = rng.uniform(0.05, 0.3)
        yield bump(c1, width), bump(c2, width)
        yield bump(c1, width), _normalised(bump(c1, width) + rng.uniform(0.2, 1.0) * bump(c2, width),
                                           grid.cell_volume)


def _normalised(m: np.ndarray, cell_volume: float) -> np.ndarray:
    return m / (np.sum(m) * cell_volume)
