"""The binned Gaussian KDE: linear binning onto the grid, then FFT convolution (see ``kde``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from mfg_rl.backends.arrays import Grid, rows_of
from mfg_rl.backends.kde_exact import CUTOFF, SQRT_2PI, gauss, unit_images
from mfg_rl.backends.sparse import _scatter_add

MAX_LATTICE = 2**26  # largest binned lattice (elements) before asking for method="exact"
BIN_CHUNK_HOST = 2**15  # particles per binning chunk on a CPU (temporaries in cache)
BIN_CHUNK_DEVICE = 2**22  # ... with jax or on an accelerator (fewer op dispatches)

def _next_fast_len(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n`` (fast for every FFT library)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class _AxisPlan:
    """Binned method, one axis: where the particles are binned, and the FFT kernel.

    Linear binning puts a particle at node coordinate ``t = (p - lo)/h - 1/2`` on nodes
    ``floor(t)`` and ``floor(t) + 1``; ``floor(t)`` spans ``[first, last]`` (from the data,
    capped at ``CUTOFF sigma`` beyond the grid), so the binned mass lies on nodes
    ``[first, last + 1]``. Ghost nodes -1 and n outside a wall or periodic seam are then
    folded onto their images (exact: the image-summed kernel is invariant under the axis'
    symmetries, and cell centres map to cell centres), leaving lattice nodes ``[a, b]``.
    """

    def __init__(self, n: int, lo: float, h: float, sigma: float, kind: str, p_range: tuple):
        self.n, self.lo, self.h, self.sigma, self.kind = n, lo, h, sigma, kind
        t_min, t_max = ((v - lo) / h - 0.5 for v in p_range)
        if kind in ("periodic", "both"):
            first, last = -1, n - 1
        else:
            reach = float(math.ceil(min(CUTOFF * sigma / h, 2.0**40)))
            first = int(max(math.floor(t_min) - 1, -reach - 1)) if kind != "lo" else -1
            last = int(min(math.floor(t_max) + 1, n + reach - 1)) if kind != "hi" else n - 1
            first, last = min(first, 0), max(last, n - 2)  # the lattice covers the grid
        self.first, self.last = first, last
        # particles out of reach (or within 1/2 bin of the lattice's ends) are masked
        self.masked = t_min < first + 0.5 or t_max > last + 0.5
        self.bins = last - first + 1
        a, b = first, last + 1
        if kind in ("periodic", "both", "lo"):
            a = 0
        if kind in ("periodic", "both", "hi"):
            b = n - 1
        self.a, self.b = a, b
        self.size = b - a + 1
        if kind == "periodic":
            self.fft_len = n
        elif kind == "both":
            self.fft_len = 2 * n
        else:
            extended = 2 * self.size if kind in ("lo", "hi") else self.size
            self.fft_len = _next_fast_len(n + extended - 1)
        if self.bins > MAX_LATTICE or self.fft_len > MAX_LATTICE:
            raise ValueError(
                f"binned KDE would need a lattice of {self.fft_len} nodes on one axis (limit "
                f"{MAX_LATTICE}): particles lie far outside the grid and the bandwidth is wide; "
                "use method='exact'"
            )

    def bin(self, xp: Any, p: Any) -> tuple[Any, Any, Any]:
        """Bin index ``floor(t) - first`` (int64), the weight of its right node, a 0/1 mask."""
        s = p * (1.0 / self.h) - (self.lo / self.h + 0.5 + self.first)
        mask = None
        if self.masked:
            mask = xp.astype((s >= 0.0) & (s <= float(self.bins)), s.dtype)
        # particles sit >= 1/2 bin inside [0, bins]: clip only if rounding could break that
        rounding = 8.0 * float(xp.finfo(p.dtype).eps) * (abs(self.lo) / self.h + self.bins)
        if self.masked or rounding > 0.25:
            left = xp.clip(xp.floor(s), min=0.0, max=float(self.bins - 1))
            return xp.astype(left, xp.int64), xp.clip(s - left, min=0.0, max=1.0), mask
        left = xp.astype(s, xp.int64)  # truncation is floor here: s >= 1/2
        return left, s - xp.astype(left, s.dtype), mask

    def fold(self, xp: Any, mass: Any, axis: int) -> Any:
        """Mass on nodes ``[first, last + 1]`` along ``axis`` to nodes ``[a, b]``, ghosts folded."""

        def part(start: int, stop: int | None) -> Any:
            index = [slice(None)] * mass.ndim
            index[axis] = slice(start, stop)
            return mass[tuple(index)]

        m = mass.shape[axis]
        if self.kind == "periodic":  # node -1 is node n-1, node n is node 0
            pieces = [part(1, 2) + part(m - 1, m), part(2, m - 2), part(m - 2, m - 1) + part(0, 1)]
        elif self.kind == "both":  # node -1 mirrors node 0, node n mirrors node n-1
            pieces = [part(1, 2) + part(0, 1), part(2, m - 2), part(m - 2, m - 1) + part(m - 1, m)]
        elif self.kind == "lo":
            pieces = [part(0, 1) + part(1, 2), part(2, m)]
        elif self.kind == "hi":
            pieces = [part(0, m - 2), part(m - 2, m - 1) + part(m - 1, m)]
        else:
            return mass
        return xp.concat(pieces, axis=axis)

    def kernel_hat(self) -> np.ndarray:
        """rFFT (length ``fft_len``) of the sampled, image-summed kernel, float64 on the host."""
        h, n, length = self.h, self.n, self.fft_len
        if self.kind in ("periodic", "both"):
            j = np.arange(length, dtype=np.float64)
            f = 1.0 / (math.sqrt(2.0) * self.sigma)
            kernel = unit_images(np, j * h * f, length * h * f) / (SQRT_2PI * self.sigma)
            return np.fft.rfft(kernel)
        lo_node, hi_node = self.a, self.b  # node range of the (mirrored) lattice
        if self.kind == "lo":
            lo_node = -1 - self.b
        elif self.kind == "hi":
            hi_node = 2 * n - 1 - self.a
        j = np.arange(-hi_node, n - lo_node, dtype=np.int64)  # every offset output - lattice
        kernel = np.zeros(length)
        kernel[j % length] = gauss(np, j * h, self.sigma)
        return np.fft.rfft(kernel)

    def convolve(self, xp: Any, mass: Any, axis: int, khat: Any) -> Any:
        """Density on the ``n`` grid nodes of ``axis`` from the lattice mass along it."""
        if self.kind in ("both", "hi"):  # even extension across the wall(s)
            mass = xp.concat([mass, xp.flip(mass, axis=axis)], axis=axis)
        elif self.kind == "lo":
            mass = xp.concat([xp.flip(mass, axis=axis), mass], axis=axis)
        first = {"periodic": 0, "both": 0, "lo": self.b + 1}.get(self.kind, -self.a)
        shape = [1] * mass.ndim
        shape[axis] = -1
        spectrum = xp.fft.rfft(mass, n=self.fft_len, axis=axis) * xp.reshape(khat, tuple(shape))
        full = xp.fft.irfft(spectrum, n=self.fft_len, axis=axis)
        index = [slice(None)] * mass.ndim
        index[axis] = slice(first, first + self.n)
        return full[tuple(index)]


def _bin_sum(xp: Any, index: Any, values: Any, size: int, dtype: Any) -> Any:
    """``out[j] = sum_{index[p] = j} values[p]`` (count when ``values`` is None), shape ``(size,)``."""
    import array_api_compat as compat

    if compat.is_numpy_namespace(xp):  # bincount: the fastest host scatter-add
        out = np.bincount(index, weights=values, minlength=size)
        return out.astype(dtype, copy=False)
    if compat.is_torch_array(index) and index.device.type == "cpu":  # no ones, no zeros
        out = index.bincount(weights=values, minlength=size)
        return out if out.dtype == dtype else out.to(dtype)
    if values is None:
        values = xp.ones(index.shape[0], dtype=dtype, device=array_device(index))
    return _scatter_add(xp, xp.zeros(size, dtype=dtype, device=array_device(index)), index, values)


def _bin_chunk(x: Any) -> int:
    """Particles per binning chunk: small on a CPU (numpy, torch), large for jax and devices."""
    import array_api_compat as compat

    if compat.is_jax_array(x) or (compat.is_torch_array(x) and x.device.type != "cpu"):
        return BIN_CHUNK_DEVICE  # jax dispatches each op eagerly at a high fixed cost
    return BIN_CHUNK_HOST


def _pad(xp: Any, x: Any, axis: int, before: bool) -> Any:
    """``x`` with one zero slice added before or after along ``axis``."""
    shape = list(x.shape)
    shape[axis] = 1
    zero = xp.zeros(tuple(shape), dtype=x.dtype, device=array_device(x))
    return xp.concat([zero, x] if before else [x, zero], axis=axis)


def binned_kde(
    xp: Any,
    cols: list[Any],
    w: Any,
    grid: Grid,
    sigma: tuple[float, ...],
    kinds: list[str],
    ranges: list[tuple[float, float]],
) -> Any:
    dev, dtype = array_device(cols[0]), cols[0].dtype
    plans = [
        _AxisPlan(n, lo, h, sigma[k], kinds[k], ranges[k])
        for k, ((lo, _), n, h) in enumerate(zip(grid.bounds, grid.shape, grid.spacing, strict=True))
    ]
    bins = tuple(p.bins for p in plans)
    if math.prod(bins) > MAX_LATTICE:
        raise ValueError(
            f"binned KDE would need a lattice of {math.prod(bins)} nodes (limit {MAX_LATTICE}); "
            "use method='exact' or a coarser grid"
        )
    # Linear binning: corner c of a particle's cell gets w prod_k (c_k ? f_k : 1 - f_k). By
    # inclusion-exclusion that is one scatter of w prod_{k in K} f_k per axis subset K, shifted
    # onto node i0 (k not in K) or onto i0 + 1 minus i0 (k in K): fewer passes over particles.
    # Particles go in chunks so temporaries stay in cache (and need no fresh pages) on a CPU.
    subsets = list(np.ndindex(*(2,) * grid.ndim))
    sums: list[Any] = [None] * len(subsets)
    n = int(cols[0].shape[0])
    chunk = _bin_chunk(cols[0])
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        index, fracs, wc = None, [], rows_of(xp, w, start, stop, n)
        for k, plan in enumerate(plans):
            left, frac, mask = plan.bin(xp, rows_of(xp, cols[k], start, stop, n))
            stride = math.prod(bins[k + 1 :])
            index = left * stride if index is None else index + left * stride
            fracs.append(frac)
            if mask is not None:
                wc = mask if wc is None else wc * mask
        for j, subset in enumerate(subsets):
            value = wc
            for k, chosen in enumerate(subset):
                if chosen:
                    value = fracs[k] if value is None else value * fracs[k]
            part = _bin_sum(xp, index, value, math.prod(bins), dtype)
            sums[j] = part if sums[j] is None else sums[j] + part
    return _lattice_density(xp, plans, sums, dtype, dev)


def _lattice_density(xp: Any, plans: list[_AxisPlan], sums: list[Any], dtype: Any, dev: Any) -> Any:
    """Density on the grid nodes from the per-subset bin sums (``None``: no particles)."""
    subsets = list(np.ndindex(*(2,) * len(plans)))
    bins = tuple(p.bins for p in plans)
    complex_dtype = xp.complex64 if dtype == xp.float32 else xp.complex128
    mass = xp.zeros(tuple(b + 1 for b in bins), dtype=dtype, device=dev)
    for subset, total in zip(subsets, sums, strict=True):
        if total is None:  # no particles
            continue
        part = xp.reshape(total, bins)
        for k, chosen in enumerate(subset):
            after = _pad(xp, part, k, before=False)
            part = _pad(xp, part, k, before=True) - after if chosen else after
        mass = mass + part
    for k, plan in enumerate(plans):
        mass = plan.fold(xp, mass, k)
        khat = xp.asarray(plan.kernel_hat(), dtype=complex_dtype, device=dev)
        mass = plan.convolve(xp, mass, k, khat)
    return xp.clip(mass, min=0.0)  # FFT round-off leaves ~1e-17 * max negatives in empty regions


class BoxLattice:
    """Trusted fast path of the binned KDE for points known to be finite and inside the box.

    For callers that guarantee ``lo_d <= p_d <= hi_d`` (the particle stepper folds its
    particles back every step): no finiteness, min/max or folding passes, and a lattice
    fixed by the box, so that chunks of points are binned as they are produced and the
    bandwidth is chosen afterwards. Points are held in lattice units,
    ``s = (p - lo)/h - 1/2 - first`` (``to_units``; the box is ``box[d]``, ``s >= 1/2``):
    ``locate`` splits ``s`` into its bin ``floor(s)`` and the weight of the right node, a
    split that also serves the linear interpolation of a field on the lattice (``table``,
    ``interpolate``). Points outside the box give wrong (finite, in-range) results; the
    public ``kde`` validates. ``kinds`` as ``kde.axis_kinds``.
    """

    def __init__(self, grid: Grid, kinds: list[str]) -> None:
        self.grid = grid
        # for points in the box the plan's lattice does not depend on sigma (any sigma > 0
        # reaches >= 1 node past the box): plan with sigma = h, swap the kernel in density
        self.plans = [
            _AxisPlan(n, lo, h, h, kind, (lo, hi))
            for (lo, hi), n, h, kind in zip(grid.bounds, grid.shape, grid.spacing, kinds, strict=True)
        ]
        self.bins = tuple(p.bins for p in self.plans)
        self.size = math.prod(self.bins)
        if self.size > MAX_LATTICE:
            raise ValueError(f"binned KDE would need a lattice of {self.size} nodes (limit {MAX_LATTICE})")
        self.strides = [math.prod(self.bins[k + 1 :]) for k in range(grid.ndim)]
        self.table_shape = tuple(b + 1 for b in self.bins)  # lattice nodes first .. last + 1
        self.table_strides = [math.prod(self.table_shape[k + 1 :]) for k in range(grid.ndim)]
        self.box = [(-0.5 - p.first, p.n - 0.5 - p.first) for p in self.plans]  # exact in floats
        self.subsets = list(np.ndindex(*(2,) * grid.ndim))

    def to_units(self, xp: Any, p: Any, axis: int) -> Any:
        """Coordinates ``p`` along ``axis`` in lattice units ``s``."""
        plan = self.plans[axis]
        return (p - plan.lo) * (1.0 / plan.h) - (0.5 + plan.first)

    def from_units(self, xp: Any, s: Any, axis: int) -> Any:
        """Lattice units back to coordinates along ``axis``."""
        plan = self.plans[axis]
        return plan.lo + (s + (0.5 + plan.first)) * plan.h

    def locate(self, xp: Any, cols: list[Any]) -> list[tuple[Any, Any]]:
        """Per axis, for ``s`` in the box: bin ``floor(s)`` (int64) and right-node weight ``s - floor(s)``."""
        out = []
        for s in cols:
            left = xp.astype(s, xp.int64)  # truncation is floor: s >= 1/2
            out.append((left, s - xp.astype(left, s.dtype)))
        return out

    def table(self, xp: Any, values: Any) -> list[Any]:
        """Fields ``(L, *grid.shape)`` on the lattice nodes, as ``interpolate`` reads them.

        Nodes beyond the grid take the nearest node's value (a periodic axis wraps), so the
        interpolation clamps as ``interp`` does. 1D: the values and the slopes to the next
        node, ``(L, bins)`` each; else the flat values ``(L, prod(bins + 1))``.
        """
        for k, plan in enumerate(self.plans):
            nodes = np.arange(plan.first, plan.last + 2)
            nodes = nodes % plan.n if plan.kind == "periodic" else np.clip(nodes, 0, plan.n - 1)
            values = xp.take(values, xp.asarray(nodes, device=array_device(values)), axis=k + 1)
        if len(self.plans) == 1:
            return [values[:, :-1], values[:, 1:] - values[:, :-1]]
        return [xp.reshape(values, (values.shape[0], -1))]

    def interpolate(self, xp: Any, rows: list[Any], located: list[tuple[Any, Any]]) -> Any:
        """Linear (multilinear) interpolation at located points of one level of a ``table``."""
        from mfg_rl.backends.interp import _gather

        if len(located) == 1:  # f0 + frac (f1 - f0)
            left, frac = located[0]
            return _gather(xp, rows[0], left) + frac * _gather(xp, rows[1], left)
        index = self._index(located, self.table_strides)
        out = None
        for corner in self.subsets:
            weight, shift = None, 0
            for (_, frac), chosen, stride in zip(located, corner, self.table_strides, strict=True):
                w = frac if chosen else 1.0 - frac
                weight = w if weight is None else weight * w
                shift += stride * chosen
            term = weight * _gather(xp, rows[0], index + shift if shift else index)
            out = term if out is None else out + term
        return out

    @staticmethod
    def _index(located: list[tuple[Any, Any]], strides: list[int]) -> Any:
        index = None
        for (left, _), stride in zip(located, strides, strict=True):
            term = left if stride == 1 else left * stride
            index = term if index is None else index + term
        return index

    def bin(self, xp: Any, located: list[tuple[Any, Any]], weights: Any, dtype: Any) -> list[Any]:
        """Per axis subset ``K``: ``out[j] = sum_{bin p = j} w_p prod_{k in K} f_k`` in ``dtype``.

        ``weights`` ``(n,)`` or None (1 each). Sums of chunks add up to the sums of all.
        """
        index = self._index(located, self.strides)
        out = []
        for subset in self.subsets:
            value = weights
            for (_, frac), chosen in zip(located, subset, strict=True):
                if chosen:
                    value = frac if value is None else value * frac
            if value is not None and value.dtype != dtype:
                value = xp.astype(value, dtype)
            out.append(_bin_sum(xp, index, value, self.size, dtype))
        return out

    def moments(self, xp: Any, sums: list[Any], squares: list[Any]) -> list[tuple[float, float]]:
        """Per axis the weighted mean and (biased) variance of the binned points, grid units.

        Exact up to round-off, as ``s = bin + f`` exactly: ``sum w s = sum_j (j c_j + F_j)``
        and ``sum w s^2 = sum_j (j^2 c_j + 2 j F_j) + sum w f^2`` with ``c`` the bin weights,
        ``F`` the bins' ``sum w f`` (both among the subset ``sums``) and ``squares`` the
        per-axis ``sum w f^2`` (floats or 0-d arrays). NaN when cancellation would lose more
        than ~4 digits. ``moment_sums`` then ``moments_of``, read by the host value by value.
        """
        return self.moments_of([float(v) for v in self.moment_sums(xp, sums, squares)])

    def moment_sums(self, xp: Any, sums: list[Any], squares: list[Any]) -> list[Any]:
        """The 0-d arrays ``moments`` reads, on the sums' device: the total weight, then per axis
        ``sum_j (j c_j + F_j)``, ``sum_j j (j c_j + 2 F_j)`` and ``squares[k]``."""
        dim = len(self.plans)
        counts = xp.reshape(sums[0], self.bins)
        out = [xp.sum(counts)]
        for k, plan in enumerate(self.plans):
            other = tuple(a for a in range(dim) if a != k)
            subset = tuple(int(a == k) for a in range(dim))
            fracs = xp.reshape(sums[self.subsets.index(subset)], self.bins)
            c = xp.sum(counts, axis=other) if other else counts
            f = xp.sum(fracs, axis=other) if other else fracs
            j = xp.arange(plan.bins, dtype=c.dtype, device=array_device(c))
            out += [xp.sum(j * c + f), xp.sum(j * (j * c + 2.0 * f)), squares[k]]
        return out

    def moments_of(self, values: list[float]) -> list[tuple[float, float]]:
        """``moments`` from the host values of ``moment_sums``."""
        total, out = values[0], []
        for k, plan in enumerate(self.plans):
            first, second_sum, square = values[1 + 3 * k: 4 + 3 * k]
            mean = first / total
            second = (second_sum + square) / total
            var = second - mean * mean
            if not var > 1e-4 * mean * mean:
                var = math.nan
            out.append((plan.lo + plan.h * (mean + plan.first + 0.5), plan.h * plan.h * var))
        return out

    def density(self, xp: Any, sums: list[Any], sigma: tuple[float, ...], dtype: Any, dev: Any) -> Any:
        """Unnormalised KDE (shape ``grid.shape``) of the binned sums with per-axis ``sigma``."""
        plans = []
        for plan, s in zip(self.plans, sigma, strict=True):  # geometry fixed by the box; new kernel
            plan = copy.copy(plan)
            plan.sigma = s
            plans.append(plan)
        return xp.reshape(_lattice_density(xp, plans, sums, dtype, dev), self.grid.shape)
