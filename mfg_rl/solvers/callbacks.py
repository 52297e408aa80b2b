"""Callbacks over coupling iterations (py-pde's trackers): progress, snapshots, early stop.

A callback sees an ``IterationState`` after every coupling iteration; returning
``False`` from ``on_iteration`` stops the loop (the result is then flagged not converged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IterationState:
    """What the loop knows after iteration ``iteration`` (0-based)."""

    iteration: int
    residual: float
    fp_residual: float
    hjb_residual: float
    u: Any
    m: Any
    max_iter: int
    tol: float


class Callback:
    """Base class: override any of the three hooks."""

    def on_start(self, max_iter: int, tol: float) -> None:
        """Called once before the first iteration."""

    def on_iteration(self, state: IterationState) -> bool | None:
        """Called after every iteration; return ``False`` to stop."""
        return None

    def on_end(self, converged: bool) -> None:
        """Called once when the loop ends, also on error."""


class ProgressBar(Callback):
    """A tqdm bar over iterations showing the residual against the tolerance."""

    def __init__(self, description: str = "solve") -> None:
        self.description = description
        self.bar: Any = None

    def on_start(self, max_iter: int, tol: float) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=max_iter, desc=self.description, unit="it", leave=False)

    def on_iteration(self, state: IterationState) -> None:
        self.bar.set_postfix(residual=f"{state.residual:.2e}", tol=f"{state.tol:.0e}")
        self.bar.update(1)

    def on_end(self, converged: bool) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Snapshots(Callback):
    """Keeps a host copy of ``(u, m)`` every ``every`` iterations in ``self.snapshots``."""

    every: int = 1
    snapshots: list[tuple[int, Any, Any]] = field(default_factory=list)

    def on_iteration(self, state: IterationState) -> None:
        if state.iteration % self.every == 0:
            self.snapshots.append((state.iteration, _host(state.u), _host(state.m)))


@dataclass
class EarlyStop(Callback):
    """Stops when the residual has not improved by ``factor`` over ``patience`` iterations."""

    patience: int = 20
    factor: float = 0.99
    best: float = float("inf")
    since_best: int = 0

    def on_iteration(self, state: IterationState) -> bool:
        if state.residual < self.factor * self.best:
            self.best, self.since_best = state.residual, 0
        else:
            self.since_best += 1
        return self.since_best < self.patience


def _host(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.array(x)
