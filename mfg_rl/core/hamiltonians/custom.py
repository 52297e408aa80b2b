"""A user's Hamiltonian ``H(x, p, m)``: any isotropic convex callable, derivatives by autodiff.

The scheme needs ``H`` as a function of ``r = |p|``: ``h(r) = H(x, r e_1, m)``, with

    psi(s) = h(sqrt s),   g = h'(r) / r  (h''(0) at r = 0),   dg/ds = (r h'' - h') / (2 r^3),

and the derivatives of ``h`` come from torch autograd (numpy and torch arrays; numpy ones
are viewed as CPU tensors) or ``jax.grad`` (jax arrays, also inside ``jit``). Isotropy
(``H`` depends on ``p`` only through ``|p|``), monotonicity and convexity in ``r`` are
checked on the problem's nodes when the problem is built. The Lagrangian
``L(|alpha|) = r h'(r) - h(r)`` at ``h'(r) = |alpha|`` is found by bisection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.checks import check_real, shown
from mfg_rl.core.hamiltonians.base import CHECK_RADII, IsotropicHamiltonian, namespace

BISECTION_STEPS = 80  # halvings of the Lagrangian's root search (float64 resolution)


@dataclass(frozen=True, eq=False)
class CustomHamiltonian(IsotropicHamiltonian):
    """``H(x, p, m)`` from a user's callable, isotropic and convex in ``p``.

    Args:
        function: ``H(x, p, m)`` on arrays, written with operators (``+ * / **``) or the
            arrays' own namespace so that torch and jax can differentiate it; ``x`` as the
            costs receive it (an array in 1D, a tuple in 2D), ``p`` an array in 1D and a
            tuple of components in 2D, ``m`` the density.
        name: a label kept in the problem's fingerprint (the values on the nodes are too).
        max_speed: ``sup |alpha*|`` when it is finite (e.g. ``sqrt(1 + |p|^2)`` has 1), else None.

    Example:
        >>> h = CustomHamiltonian(lambda x, p, m: (1.0 + p * p) ** 0.5 - 1.0, max_speed=1.0)
        >>> round(float(h.optimal_control(0.0, np.array(1.0), 0.0)), 6)
        -0.707107
    """

    function: Callable[[Any, Any, Any], Any]
    name: str = "custom"
    max_speed: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(
                f"CustomHamiltonian function must be callable as H(x, p, m), got {shown(self.function)}")
        if not isinstance(self.name, str):
            raise TypeError(f"CustomHamiltonian name must be a string, got {shown(self.name)}")
        if self.max_speed is not None:
            max_speed = check_real("CustomHamiltonian max_speed", self.max_speed, 0.0, open_low=True)
            object.__setattr__(self, "max_speed", max_speed)

    @property
    def depends_on_m(self) -> bool:
        return True  # unknown: the m derivatives are computed (and are 0 when H ignores m)

    # -- h(r) and its derivatives -------------------------------------------------------
    def _h(self, x: Any, r: Any, m: Any) -> Any:
        p = (r,) + tuple(0.0 * r for _ in x[1:]) if isinstance(x, tuple) else r
        return self.function(x, p, m) + 0.0 * (r + m)

    def _derivatives(self, x: Any, r: Any, m: Any) -> dict[str, Any]:
        """``h, h_r, h_rr, h_m, h_rm`` at ``(x, r, m)``, arrays of ``r``'s namespace."""
        if namespace(r).__name__.startswith("jax"):
            return _jax_derivatives(self._h, x, r, m)
        if isinstance(r, (np.ndarray, np.generic)) or not hasattr(r, "shape"):
            import torch

            def tensor(a: Any) -> Any:
                return torch.as_tensor(np.asarray(a, dtype=np.float64))

            found = _torch_derivatives(self._h, _map(tensor, x), tensor(r), tensor(m))
            return {k: v.detach().numpy() for k, v in found.items()}
        return _torch_derivatives(self._h, x, r, m)

    def value_sq(self, x: Any, s: Any, m: Any) -> Any:
        return self._h(x, _sqrt(s), m)

    def speed(self, x: Any, s: Any, m: Any) -> Any:
        xp, r = namespace(s), _sqrt(s)
        d = self._derivatives(x, r, m)
        positive = r > 0.0
        return xp.where(positive, d["h_r"] / xp.where(positive, r, 1.0), d["h_rr"])

    def speed_ds(self, x: Any, s: Any, m: Any) -> Any:
        xp, r = namespace(s), _sqrt(s)
        d = self._derivatives(x, r, m)
        positive = r > 0.0
        safe = xp.where(positive, r, 1.0)
        return xp.where(positive, (safe * d["h_rr"] - d["h_r"]) / (2.0 * safe**3), 0.0 * s)

    def value_dm(self, x: Any, s: Any, m: Any) -> Any:
        return self._derivatives(x, _sqrt(s), m)["h_m"]

    def speed_dm(self, x: Any, s: Any, m: Any) -> Any:
        xp, r = namespace(s), _sqrt(s)
        d = self._derivatives(x, r, m)
        positive = r > 0.0
        return xp.where(positive, d["h_rm"] / xp.where(positive, r, 1.0), 0.0 * s)

    def lagrangian_sq(self, x: Any, a2: Any, m: Any) -> Any:
        """``r h'(r) - h(r)`` at ``h'(r) = |alpha|``: bisection on the increasing ``h'``."""
        xp = namespace(a2)
        a = _sqrt(a2)
        lo, hi = 0.0 * a, 0.0 * a + 1.0
        for _ in range(64):  # grow the bracket until h'(hi) >= |alpha| (or the speed saturates)
            short = self._derivatives(x, hi, m)["h_r"] < a
            if not bool(xp.any(short)):
                break
            lo, hi = xp.where(short, hi, lo), xp.where(short, 2.0 * hi, hi)
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = self._derivatives(x, mid, m)["h_r"] < a
            lo, hi = xp.where(below, mid, lo), xp.where(below, hi, mid)
        d = self._derivatives(x, hi, m)
        value = hi * a - d["h"]
        if self.max_speed is not None:
            value = xp.where(a <= self.max_speed * (1.0 + 1e-6), value, float("inf") + 0.0 * a)
        return value

    def spec(self, points: Any) -> list[Any]:
        from mfg_rl.core.hamiltonians.base import function_digest

        def sample(x: Any) -> Any:  # H at |p| = 1.7, m = 0.3 on the nodes
            return self._h(x, 0.0 * (x[0] if isinstance(x, tuple) else x) + 1.7, 0.3)

        return ["custom", self.name, self.max_speed, function_digest(sample, points)]

    def check(self, points: Any, m: np.ndarray) -> None:
        """Finite, isotropic, non-decreasing and convex in ``|p|`` on the nodes, at ``m = 0`` and ``m0``."""
        rng = np.random.default_rng(0)
        flat = [np.ravel(a) for a in (points if isinstance(points, tuple) else (points,))]
        keep = rng.choice(flat[0].size, size=min(16, flat[0].size), replace=False)
        x1 = [a[keep][:, None] for a in flat]
        x = tuple(x1) if isinstance(points, tuple) else x1[0]
        radii = CHECK_RADII[None, :] + 0.0 * x1[0]
        for crowd in (0.0, float(np.max(m))):
            mm = crowd + 0.0 * radii
            try:
                d = self._derivatives(x, radii, mm)
            except Exception as exc:
                raise ValueError(f"CustomHamiltonian {self.name!r}: H(x, p, m) could not be evaluated and "
                                 f"differentiated on the nodes ({type(exc).__name__}: {exc})") from None
            if not all(np.all(np.isfinite(v)) for v in d.values()):
                raise ValueError(f"CustomHamiltonian {self.name!r}: H or its derivatives in |p| are not "
                                 f"finite for |p| in [0, {CHECK_RADII[-1]:g}] at m = {crowd:g}")
            tol = 1e-9 * (1.0 + np.abs(d["h_r"]).max())
            if np.any(d["h_r"] < -tol):
                raise ValueError(f"CustomHamiltonian {self.name!r}: H must not decrease in |p| (the scheme "
                                 "is monotone only then); found dH/d|p| < 0")
            if self.max_speed is not None and np.any(d["h_r"] > self.max_speed * (1.0 + 1e-6)):
                raise ValueError(f"CustomHamiltonian {self.name!r}: max_speed={self.max_speed:g} is below "
                                 f"the speed of H, |dH/dp| = {d['h_r'].max():.3g} at |p| <= "
                                 f"{CHECK_RADII[-1]:g}; pass the supremum of |dH/dp|, or None if unbounded")
            if np.any(d["h_rr"] < -tol):
                raise ValueError(f"CustomHamiltonian {self.name!r}: H must be convex in p; found "
                                 f"d2H/d|p|2 = {d['h_rr'].min():.3g} < 0")
            direction = rng.normal(size=(len(flat), 1, radii.shape[1]))
            direction /= np.linalg.norm(direction, axis=0, keepdims=True)
            turned = tuple(radii * direction[k] for k in range(len(flat)))
            p = turned if isinstance(points, tuple) else -radii
            value = np.asarray(self.function(x, p, mm)) + 0.0 * radii
            if not np.allclose(value, d["h"], rtol=1e-9, atol=1e-12):
                raise ValueError(f"CustomHamiltonian {self.name!r}: H must depend on p only through |p| "
                                 "(the upwind scheme's isotropic form); H(x, p) differs from H(x, |p| e_1)")


def _sqrt(s: Any) -> Any:
    return s**0.5


def _map(function: Callable[[Any], Any], x: Any) -> Any:
    return tuple(function(a) for a in x) if isinstance(x, tuple) else function(x)


def _torch_derivatives(h: Callable[..., Any], x: Any, r: Any, m: Any) -> dict[str, Any]:
    import torch

    with torch.enable_grad():
        r = r.detach().clone().requires_grad_(True)
        m = (m if hasattr(m, "shape") else torch.as_tensor(float(m), dtype=r.dtype)).detach().clone()
        m = m.to(r.dtype).requires_grad_(True)
        value = h(x, r, m)
        h_r, h_m = torch.autograd.grad(value.sum(), (r, m), create_graph=True, allow_unused=True)
        h_r = torch.zeros_like(value) if h_r is None else h_r + 0.0 * value
        h_m = torch.zeros_like(value) if h_m is None else h_m + 0.0 * value
        if h_r.requires_grad:
            h_rr, h_rm = torch.autograd.grad(h_r.sum(), (r, m), allow_unused=True)
        else:
            h_rr = h_rm = None
    zero = torch.zeros_like(value)
    return {"h": value.detach(), "h_r": h_r.detach(), "h_m": h_m.detach(),
            "h_rr": zero if h_rr is None else (h_rr + zero).detach(),
            "h_rm": zero if h_rm is None else (h_rm + zero).detach()}


def _jax_derivatives(h: Callable[..., Any], x: Any, r: Any, m: Any) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    m = jnp.asarray(m, dtype=r.dtype) + 0.0 * r

    def total(r_: Any, m_: Any) -> Any:
        return jnp.sum(h(x, r_, m_))

    grad = jax.grad(total, argnums=(0, 1))
    h_r, h_m = grad(r, m)
    h_rr, h_rm = jax.grad(lambda r_, m_: jnp.sum(grad(r_, m_)[0]), argnums=(0, 1))(r, m)
    return {"h": h(x, r, m), "h_r": h_r, "h_m": h_m, "h_rr": h_rr, "h_rm": h_rm}
