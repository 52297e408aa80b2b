"""The particles' noise, drawn one step ahead on a helper thread where that hides its cost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mfg_rl.backends.arrays import rows_of

PREFETCH_MIN = 2**15  # from this N the next step's host draws are made on a helper thread


class PrefetchedNoise:
    """The steps' noise ``scales[d] Z``: per axis a list of chunk arrays (None if ``steps`` is 0).

    Host generators (numpy's PCG64) release the GIL while drawing, so the next step's draws
    are made on a helper thread while this step moves and bins: the same numbers in the same
    order, the draw's time hidden behind the step's. Draws are in the backend's dtype (the
    same stream for any particle dtype), cast and scaled chunk by chunk on the helper thread
    (chunk-sized ops stay on one thread: no intra-op thread team competes with the step).
    """

    def __init__(self, backend: Any, generator: Any, bounds: list[tuple[int, int]], scales: list[float],
                 dtype: Any, steps: int) -> None:
        self.backend, self.generator, self.scales, self.dtype = backend, generator, scales, dtype
        self.bounds, self.n = bounds, bounds[-1][1]
        self.left = steps
        threaded = isinstance(generator, np.random.Generator) and self.n >= PREFETCH_MIN and steps > 1
        self.pool = ThreadPoolExecutor(max_workers=1) if threaded else None
        self.pending = None

    def __enter__(self) -> PrefetchedNoise:
        if self.pool is not None:
            self.pending = self.pool.submit(self._draw)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _draw(self) -> list[list[Any]]:
        xp, out = self.backend.xp, []
        for scale in self.scales:
            z = self.backend.normal(self.generator, (self.n,))
            pieces = [rows_of(xp, z, a, b, self.n) for a, b in self.bounds]
            out.append([scale * (p if p.dtype == self.dtype else xp.astype(p, self.dtype)) for p in pieces])
        return out

    def next(self) -> list[list[Any]] | None:
        if self.left <= 0:
            return None
        self.left -= 1
        if self.pool is None:
            return self._draw()
        draws = self.pending.result()
        self.pending = self.pool.submit(self._draw) if self.left > 0 else None
        return draws
