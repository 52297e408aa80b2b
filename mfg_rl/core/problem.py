"""The MFG problem: everything that defines the game, validated at construction.

    -du/dt - nu Lap u + H(x, grad u, m) = f(x, m(t))     u(T) = g(x, m(T))
     dm/dt - nu Lap m - div(m dH/dp(x, grad u, m)) = 0   m(0) = m0

with ``nu = sigma^2 / 2``. Costs receive the whole density at one time, so local
couplings (``log m(x)``) and nonlocal ones (the mean, a convolution) are both expressible.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfg_rl.checks import check_real, check_real_entries, shown
from mfg_rl.core.grid import Grid, TimeGrid
from mfg_rl.core.hamiltonians import Hamiltonian, IsotropicHamiltonian

CostFn = Callable[[Any, Any], Any]
"""``cost(x, m) -> array``: ``x`` the node coordinates (an array of the grid's shape in 1D,
a tuple of such arrays, ``indexing="ij"``, in 2D/3D), ``m`` the density on the grid;
returns the cost on the grid. It must use only array operators and methods (or
``array_api_compat.array_namespace(m)``) so that it runs on every backend."""

MASS_TOLERANCE = 1e-6
MAX_SIGMA = 1e150
"""Largest noise: ``nu = sigma^2 / 2`` and its products with the grid stay finite in float64."""
MAX_SPACETIME = 2**32
"""Most values of a space-time field, ``(Nt + 1) * grid.size``: 32 GiB in float64, and a solve holds
several such fields, more than any single device."""


@dataclass(frozen=True, eq=False)
class MFGProblem:
    """A mean-field game on a box, ready for the solvers.

    Args:
        grid: the space grid (bounds, cells, boundary conditions).
        time: the time grid ``(T, Nt)``.
        sigma: noise intensity in ``[0, MAX_SIGMA]``; the diffusion is ``nu = sigma^2 / 2``.
        running_cost: ``f(x, m_t)``, see ``CostFn``.
        terminal_cost: ``g(x, m_T)``, see ``CostFn``.
        m0: initial density, an array of the grid's shape or a function ``m0(x)`` of the
            node coordinates (same convention as ``CostFn``); must be ``>= 0`` with positive
            finite mass. It is normalised to mass 1 (a ``UserWarning`` says so when it was off
            by more than 1e-6).
        hamiltonian: defaults to ``|p|^2 / 2``.
        exit_cost: value of ``u`` on exit sides (cost of leaving), finite.
        name, params: catalogue name (a string) and parameters (a dict), used for caching and display.
        exact: the closed-form solution, when one is known (see ``problems.lq``).
        notes: remarks on the problem (strings), e.g. that ``m0`` was normalised.

    ``(Nt + 1) * grid.size`` is at most ``MAX_SPACETIME``.

    Example:
        >>> import numpy as np
        >>> from mfg_rl.core import Grid, TimeGrid, MFGProblem
        >>> p = MFGProblem(grid=Grid([(0.0, 1.0)], 50), time=TimeGrid(1.0, 20), sigma=0.3,
        ...                running_cost=lambda x, m: m, terminal_cost=lambda x, m: 0.0 * m,
        ...                m0=lambda x: np.exp(-((x - 0.5) ** 2) / 0.02))
        >>> round(float(p.m0.sum() * p.grid.cell_volume), 12)
        1.0
    """

    grid: Grid
    time: TimeGrid
    sigma: float
    running_cost: CostFn
    terminal_cost: CostFn
    m0: Any
    hamiltonian: IsotropicHamiltonian = field(default_factory=Hamiltonian)
    exit_cost: float = 0.0
    name: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)
    exact: Any = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a mfg_rl.core.Grid, got {type(self.grid).__name__}")
        if not isinstance(self.time, TimeGrid):
            raise TypeError(f"time must be a mfg_rl.core.TimeGrid, got {type(self.time).__name__}")
        if not isinstance(self.hamiltonian, IsotropicHamiltonian):
            raise TypeError(
                "hamiltonian must be a mfg_rl.core Hamiltonian (Hamiltonian, PowerLawHamiltonian, "
                f"BoundedControlHamiltonian, CustomHamiltonian), got {type(self.hamiltonian).__name__}"
            )
        size = (self.time.Nt + 1) * self.grid.size
        if size > MAX_SPACETIME:
            raise ValueError(f"Nt + 1 = {self.time.Nt + 1} time levels of grid.shape {self.grid.shape} make "
                             f"{size} values per field, more than MAX_SPACETIME = 2**32; use fewer cells or "
                             "time steps")
        object.__setattr__(self, "sigma", check_real("sigma", self.sigma, 0.0, MAX_SIGMA))
        object.__setattr__(self, "exit_cost", check_real("exit_cost", self.exit_cost))
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {shown(self.name)}")
        if not isinstance(self.params, dict):
            raise TypeError(f"params must be a dict of the problem's parameters, got {shown(self.params)}")
        if not isinstance(self.notes, (tuple, list)) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"notes must be a tuple of strings, got {shown(self.notes)}")
        for name in ("running_cost", "terminal_cost"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable as {name}(x, m), got {shown(getattr(self, name))}")
        m0, notes = self._validated_m0()
        object.__setattr__(self, "m0", m0)
        object.__setattr__(self, "notes", tuple(self.notes) + notes)
        self.hamiltonian.check(self.points(), m0)
        for name in ("running_cost", "terminal_cost"):
            value = self.evaluate_cost(getattr(self, name), m0, name=name)
            check_real_entries(f"{name}(x, m0)", value, bools=True)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}(x, m0) has non-finite values (NaN or inf) on the grid")

    def _validated_m0(self) -> tuple[np.ndarray, tuple[str, ...]]:
        m0 = self.m0
        if callable(m0):
            try:
                m0 = m0(self.points())
            except Exception as exc:
                raise ValueError(f"m0(x) raised {type(exc).__name__}: {exc}") from exc
        check_real_entries("m0", m0, bools=True)
        try:
            m0 = np.array(np.broadcast_to(np.asarray(m0, dtype=np.float64), self.grid.shape))
        except OverflowError:
            raise ValueError("m0 must be finite everywhere (an entry is too large for float64)") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"m0 must be an array of the grid's shape {self.grid.shape} "
                f"(or a function returning one): {exc}"
            ) from None
        if not np.all(np.isfinite(m0)):
            raise ValueError("m0 must be finite everywhere (found NaN or inf)")
        if np.any(m0 < 0):
            raise ValueError(f"m0 must be >= 0 everywhere (min is {m0.min():.3g})")
        peak = float(m0.max())
        mass = float(m0.sum() * self.grid.cell_volume)
        if peak > 0 and not math.isfinite(mass):
            m0 = m0 / peak
            mass = float(m0.sum() * self.grid.cell_volume) * peak
        if not mass > 0:
            raise ValueError("m0 must have positive mass (it integrates to 0 on the grid)")
        notes: tuple[str, ...] = ()
        if abs(mass - 1.0) > MASS_TOLERANCE:
            note = f"m0 had mass {mass:.6g} on the grid and was normalised to 1"
            warnings.warn(note, UserWarning, stacklevel=4)
            notes = (note,)
        normalised = m0 / float(m0.sum() * self.grid.cell_volume)
        if not np.all(np.isfinite(normalised)) or not normalised.sum() > 0:
            raise ValueError(f"m0 cannot be normalised: its mass {mass:.3g} under/overflows float64")
        return normalised, notes

    @property
    def nu(self) -> float:
        """Diffusion coefficient ``sigma^2 / 2``."""
        return 0.5 * self.sigma**2

    @property
    def ndim(self) -> int:
        return self.grid.ndim

    def points(self, backend: Any = None) -> Any:
        """Node coordinates as the costs receive them: an array in 1D, a tuple in 2D/3D.

        numpy arrays when ``backend`` is None, else arrays of that backend.
        """
        mesh = self.grid.mesh()
        if backend is not None:
            mesh = tuple(backend.asarray(a) for a in mesh)
        return mesh[0] if self.grid.ndim == 1 else mesh

    def evaluate_cost(self, cost: CostFn, m: Any, x: Any = None, name: str = "cost") -> Any:
        """``cost(x, m)`` broadcast to the grid's shape (numpy nodes when ``x`` is None); errors call
        the cost ``name``."""
        try:
            value = cost(self.points() if x is None else x, m)
        except Exception as exc:
            raise ValueError(f"{name}(x, m) raised {type(exc).__name__}: {exc}") from exc
        if isinstance(value, (int, float)):
            return m * 0.0 + value
        if not hasattr(value, "shape"):
            raise TypeError(f"{name} must return an array of the grid's shape, got {type(value).__name__}")
        shape = tuple(value.shape)
        if shape != self.grid.shape:
            try:
                value = value + 0.0 * m
            except (TypeError, ValueError):
                value = None
            if value is None or tuple(value.shape) != self.grid.shape:
                raise ValueError(f"{name} returned shape {shape}, expected the grid's {self.grid.shape}")
        return value

    def fingerprint(self) -> str:
        """A stable hash of everything that defines the discrete problem.

        Catalogue problems hash their name and parameters; custom ones also hash the
        costs evaluated at ``m0`` (a change of a cost function changes the hash).
        """
        spec: dict[str, Any] = {
            "name": self.name,
            "params": {k: repr(v) for k, v in sorted(self.params.items())},
            "grid": [self.grid.bounds, self.grid.shape, self.grid.boundary],
            "time": [self.time.T, self.time.Nt],
            "sigma": self.sigma,
            "hamiltonian": self.hamiltonian.spec(self.points()),
            "exit_cost": float(self.exit_cost),
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.m0).tobytes())
        if self.name == "custom":
            for cost in (self.running_cost, self.terminal_cost):
                digest.update(np.ascontiguousarray(self.evaluate_cost(cost, self.m0)).tobytes())
        return digest.hexdigest()[:20]
