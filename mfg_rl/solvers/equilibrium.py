"""The product of a solve: ``u``, ``m``, the optimal control, and how it was obtained."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.core import MFGProblem, SpacetimeField

FORMAT_VERSION = 1


@dataclass
class Diagnostics:
    """How the equilibrium was computed.

    ``residuals[k]`` is the coupled residual after iteration k (max of the FP residual, a
    mass, and the HJB Newton residual); ``mass`` is ``int m(t_n)`` per level and
    ``exited`` the mass that left through exits by ``t_n``, summed from the boundary flux
    (so ``mass + exited = 1`` checks the scheme; it is not an identity).
    """

    method: str
    coupling: str
    fp: str
    backend: str
    device: str
    dtype: str
    tol: float
    converged: bool
    stopped_by: str
    iterations: int
    residual: float
    residuals: list[float] = field(default_factory=list)
    fp_residuals: list[float] = field(default_factory=list)
    hjb_residuals: list[float] = field(default_factory=list)
    newton_iterations: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    mass: list[float] = field(default_factory=list)
    exited: list[float] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines for humans: iterations, residual, mass, time."""
        state = "converged" if self.converged else f"NOT converged (stopped by {self.stopped_by})"
        lines = [
            f"{self.method}/{self.coupling}/{self.fp} on {self.backend}:{self.device} "
            f"({self.dtype}): {state}",
            f"  iterations {self.iterations}, residual {self.residual:.3e} (tol {self.tol:.1e}), "
            f"Newton steps {self.newton_iterations}",
            f"  mass at T {self.mass[-1]:.12f}, exited {self.exited[-1]:.3e}, "
            f"min over time {min(self.mass):.12f}",
            "  time " + ", ".join(f"{k} {v:.3f}s" for k, v in self.timings.items()),
        ]
        return "\n".join(lines)


@dataclass
class Equilibrium:
    """A computed Nash equilibrium of ``problem``.

    Attributes:
        u: value function, ``SpacetimeField`` of shape ``(Nt+1, *space)``.
        m: population density, same shape; ``m[0] = m0``.
        problem: the ``MFGProblem`` that was solved.
        diagnostics: ``Diagnostics``.
    """

    u: SpacetimeField
    m: SpacetimeField
    problem: MFGProblem
    diagnostics: Diagnostics

    def control(self, n: int) -> np.ndarray:
        """Equilibrium feedback control on the grid at time index ``n``, as numpy.

        ``alpha^n = -g(m^{n+1}) grad_h u^n`` with the upwind gradient of the scheme
        (``n = Nt`` uses ``u^Nt``, ``m^Nt``). Shape ``space`` in 1D, ``(ndim, *space)`` else.
        """
        Nt = self.problem.time.Nt
        if not -(Nt + 1) <= n <= Nt:
            raise IndexError(f"time index n must be in [0, {Nt}], got {n}")
        return self._feedback(n % (Nt + 1))

    def controls(self) -> np.ndarray:
        """``control(n)`` for every ``n`` at once (one batched gradient): shape ``(Nt+1, *space)``
        in 1D, ``(Nt+1, ndim, *space)`` else."""
        return self._feedback(slice(None))

    def _feedback(self, n: int | slice) -> np.ndarray:
        from mfg_rl.backends import create_backend
        from mfg_rl.solvers.numerical_hamiltonian import NumericalHamiltonian

        u, m = self.u.numpy(), self.m.numpy()
        m_next = np.concatenate([m[1:], m[-1:]])  # level n pairs with m^{n+1}; Nt with m^Nt
        control = NumericalHamiltonian(self.problem, create_backend("numpy")).control(u[n], m_next[n])
        ndim = self.problem.ndim
        alpha = np.stack(control, axis=-ndim - 1)
        return np.take(alpha, 0, axis=-2) if ndim == 1 else alpha

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` file atomically (temporary file, then rename). Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "problem": {"name": self.problem.name, "params": self.problem.params,
                        "fingerprint": self.problem.fingerprint()},
            "diagnostics": asdict(self.diagnostics),
        }
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, u=self.u.numpy(), m=self.m.numpy(), meta=np.array(json.dumps(meta)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, problem: MFGProblem | None = None,
             backend: Any = None) -> Equilibrium:
        """Read a file written by ``save``.

        Catalogue problems are rebuilt from their name and parameters; a custom problem
        must be passed as ``problem`` (its fingerprint is checked). Fields are placed on
        ``backend`` (default: the best installed).
        """
        from mfg_rl.backends import create_backend

        with np.load(Path(path), allow_pickle=False) as data:
            u, m = data["u"], data["m"]
            meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported equilibrium file format {meta.get('format')!r}")
        saved = meta["problem"]
        if problem is None:
            if saved["name"] == "custom":
                raise ValueError(f"{path} holds a custom problem: pass it as problem=...")
            from mfg_rl import problems

            problem = problems.make(saved["name"], **saved["params"])
        if problem.fingerprint() != saved["fingerprint"]:
            raise ValueError(
                f"{path} was computed for a different problem (fingerprint {saved['fingerprint']}, "
                f"given {problem.fingerprint()})"
            )
        backend = create_backend(backend)
        diagnostics = Diagnostics(**meta["diagnostics"])
        return cls(
            u=SpacetimeField(backend.asarray(u), problem.grid, problem.time),
            m=SpacetimeField(backend.asarray(m), problem.grid, problem.time),
            problem=problem,
            diagnostics=diagnostics,
        )
