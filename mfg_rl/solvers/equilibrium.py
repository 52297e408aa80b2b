"""The product of a solve: ``u``, ``m``, the optimal control, and how it was obtained."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfg_rl.checks import shown
from mfg_rl.core import MFGProblem, SpacetimeField
from mfg_rl.core.tree_mesh import TreeMesh
from mfg_rl.core.tree_root import TreeRoot
from mfg_rl.errors import EquilibriumFileError
from mfg_rl.paths import atomic_write, checked_path

FORMAT_VERSION = 1


@dataclass
class Diagnostics:
    """How the equilibrium was computed.

    ``residuals[k]`` is the coupled residual after iteration k (max of the FP residual, a
    mass, and the HJB Newton residual); ``mass`` is ``int m(t_n)`` per level and
    ``exited`` the mass that left through exits by ``t_n``, summed from the boundary flux
    (so ``mass + exited = 1`` checks the scheme; it is not an identity). ``switches``: the
    strategy changes of ``coupling="auto"`` (iteration, from, to, reason, best residual);
    ``notes``: e.g. that uniqueness is not guaranteed (``core.monotonicity``); ``placement``:
    where the solve ran and why (``solvers.placement``).
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
    switches: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placement: str = ""

    def summary(self) -> str:
        """A few lines for humans: iterations, residual, mass, time."""
        state = "converged" if self.converged else f"NOT converged (stopped by {self.stopped_by})"
        lines = [
            f"{self.method}/{self.coupling}/{self.fp} on {self.backend}:{self.device} "
            f"({self.dtype}): {state}",
            *([f"  placed: {self.placement}"] if self.placement else []),
            f"  iterations {self.iterations}, residual {self.residual:.3e} (tol {self.tol:.1e}), "
            f"Newton steps {self.newton_iterations}",
            f"  mass at T {self.mass[-1]:.12f}, exited {self.exited[-1]:.3e}, "
            f"min over time {min(self.mass):.12f}",
            "  time " + ", ".join(f"{k} {v:.3f}s" for k, v in self.timings.items()),
            *(f"  switched {s['from']} -> {s['to']} after iteration {s['iteration']}: {s['reason']}"
              for s in self.switches),
            *(f"  note: {note}" for note in self.notes),
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class SlabMeshes:
    """The tree meshes of an adaptive solve (``method="amr"``): ``meshes[s]`` holds the steps
    ``edges[s] .. edges[s+1]-1``, so ``m^k`` (made by step ``k-1``; ``m^0`` by none) lives on the
    mesh of step ``max(k-1, 0)`` (``amr_slabs``' layout); ``edges`` (S+1,) ints from 0 to Nt."""

    meshes: tuple[TreeMesh, ...]
    edges: tuple[int, ...]

    def slab_of_level(self, k: int) -> int:
        """The slab whose mesh holds ``m^k``."""
        return int(np.searchsorted(np.asarray(self.edges), max(k - 1, 0), side="right")) - 1

    def leaves(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(meta, arrays)``: the root, edges and leaf counts (JSON), and every slab's leaf levels and
        coordinates end to end (``mesh_level`` (L,), ``mesh_coords`` (L, d)), what ``Equilibrium.save``
        writes and ``from_leaves`` reads."""
        root = self.meshes[0].root
        meta = {"root": {"bounds": [list(b) for b in root.bounds], "root_shape": list(root.root_shape),
                         "min_level": root.min_level, "max_level": root.max_level,
                         "periodic": list(root.periodic)},
                "edges": list(self.edges), "counts": [len(mesh) for mesh in self.meshes]}
        arrays = {"mesh_level": np.concatenate([np.asarray(mesh.level) for mesh in self.meshes]),
                  "mesh_coords": np.concatenate([np.asarray(mesh.coords) for mesh in self.meshes])}
        return meta, arrays

    @classmethod
    def from_leaves(cls, meta: dict[str, Any], level: np.ndarray, coords: np.ndarray) -> SlabMeshes:
        """The meshes of ``leaves()``' output, each checked by ``TreeMesh.from_leaves`` (a balanced
        tiling of the box); ValueError or TypeError naming the defect."""
        root = TreeRoot(**meta["root"])
        counts = [int(c) for c in meta["counts"]]
        edges = tuple(int(e) for e in meta["edges"])
        if len(edges) != len(counts) + 1 or sum(counts) != len(level) or len(level) != len(coords):
            raise ValueError(f"{len(counts)} meshes of {sum(counts)} leaves with {len(edges)} edges do not "
                             f"match {len(level)} saved levels and {len(coords)} coordinates")
        starts = np.concatenate([[0], np.cumsum(counts)])
        meshes = tuple(TreeMesh.from_leaves(root, level[a:b], coords[a:b])
                       for a, b in zip(starts[:-1], starts[1:], strict=True))
        return cls(meshes, edges)


@dataclass
class Equilibrium:
    """A computed Nash equilibrium of ``problem``.

    Attributes:
        u: value function, ``SpacetimeField`` of shape ``(Nt+1, *space)``.
        m: population density, same shape; ``m[0] = m0``.
        problem: the ``MFGProblem`` that was solved.
        diagnostics: ``Diagnostics``.
        meshes: the tree meshes of an adaptive solve (``SlabMeshes``; saved with it and drawn by
            ``plotting.plot_equilibrium``), None for a solve on the grid.
    """

    u: SpacetimeField
    m: SpacetimeField
    problem: MFGProblem
    diagnostics: Diagnostics
    meshes: SlabMeshes | None = None

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
        """Write one ``.npz`` file atomically (``mfg_rl.paths.atomic_write``: fsynced temporary
        file, then rename; mode ``0o666 & ~umask``). Returns the path."""
        meta = {
            "format": FORMAT_VERSION,
            "problem": {"name": self.problem.name, "params": self.problem.params,
                        "fingerprint": self.problem.fingerprint()},
            "diagnostics": asdict(self.diagnostics),
        }
        arrays = {"u": self.u.numpy(), "m": self.m.numpy()}
        if self.meshes is not None:
            meta["meshes"], leaves = self.meshes.leaves()
            arrays.update(leaves)
        arrays["meta"] = np.array(json.dumps(meta))
        return atomic_write(path, lambda out: np.savez(out, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, problem: MFGProblem | None = None,
             backend: Any = None) -> Equilibrium:
        """Read a file written by ``save``, checked before use.

        Catalogue problems are rebuilt from their name and parameters; a custom problem
        must be passed as ``problem`` (its fingerprint is checked). Fields are placed on
        ``backend`` (default: the best installed).

        Raises:
            FileNotFoundError: no file at ``path``.
            EquilibriumFileError: (a ``ValueError``) naming the file and the defect: not a
                readable ``.npz`` of this format (pickled objects are refused), an array or
                metadata missing, another problem, shapes other than ``(Nt+1, *grid.shape)``,
                values not finite, ``m < 0`` beyond round-off (``-sqrt(eps) max m`` is
                allowed), level masses ``h^d sum m^n`` off the recorded ``diagnostics.mass``, or
                saved tree meshes that do not tile the problem's box or do not span its steps.
        """
        from mfg_rl.backends import create_backend

        path = checked_path("path", path)
        if problem is not None and not isinstance(problem, MFGProblem):
            raise TypeError(f"problem must be None or the MFGProblem the file was solved for, "
                            f"got {shown(problem)}")
        u, m, meta, leaves = _read(path)
        saved, diagnostics = _parse_meta(path, meta)
        if problem is None:
            if saved["name"] == "custom":
                raise ValueError(f"{path} holds a custom problem: pass it as problem=...")
            from mfg_rl import problems

            try:
                problem = problems.make(saved["name"], **saved["params"])
            except (TypeError, ValueError) as exc:
                raise EquilibriumFileError(path, f"its problem {saved['name']!r} with parameters "
                                                 f"{saved['params']} cannot be rebuilt: {exc}") from exc
        if problem.fingerprint() != saved["fingerprint"]:
            raise EquilibriumFileError(path, f"computed for a different problem (fingerprint "
                                             f"{saved['fingerprint']}, given {problem.fingerprint()})")
        _check_fields(path, u, m, diagnostics, problem)
        meshes = _meshes(path, meta, leaves, problem)
        backend = create_backend(backend)
        return cls(
            u=SpacetimeField(backend.asarray(u), problem.grid, problem.time),
            m=SpacetimeField(backend.asarray(m), problem.grid, problem.time),
            problem=problem,
            diagnostics=diagnostics,
            meshes=meshes,
        )


_ZIP_MAGIC = b"PK\x03\x04"


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, Any, dict[str, np.ndarray]]:
    """``u``, ``m``, the decoded metadata and the tree meshes' arrays (``mesh_*``, empty for a solve
    on the grid) of an equilibrium file, without pickle."""
    try:
        file = open(path, "rb")  # ours, not np.load's: np.load leaves a file it opened open on error
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise EquilibriumFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    with file:
        head = file.read(len(_ZIP_MAGIC))
        if not head:
            raise EquilibriumFileError(path, "is empty (0 bytes)")
        if head != _ZIP_MAGIC:
            raise EquilibriumFileError(path, f"is not an .npz (zip) archive: it starts with {head!r}")
        file.seek(0)
        try:
            with np.load(file, allow_pickle=False) as data:
                missing = [key for key in ("u", "m", "meta") if key not in data.files]
                if missing:
                    raise EquilibriumFileError(path, f"lacks the array(s) {', '.join(missing)} "
                                                     f"(holds {', '.join(data.files) or 'none'})")
                leaves = {key: data[key] for key in ("mesh_level", "mesh_coords") if key in data.files}
                return data["u"], data["m"], json.loads(str(data["meta"])), leaves
        except EquilibriumFileError:
            raise
        except Exception as exc:  # a damaged archive fails in zipfile, zlib, numpy or json, in many ways
            raise EquilibriumFileError(path, f"is damaged ({type(exc).__name__}: {exc})") from exc


def _parse_meta(path: Path, meta: Any) -> tuple[dict[str, Any], Diagnostics]:
    """The saved problem's name, parameters and fingerprint, and the diagnostics."""
    found = meta.get("format") if isinstance(meta, dict) else meta
    if found != FORMAT_VERSION:
        raise EquilibriumFileError(path, f"unsupported equilibrium file format {found!r} "
                                         f"(this version reads {FORMAT_VERSION})")
    try:
        saved = meta["problem"]
        saved = {"name": saved["name"], "params": dict(saved["params"]), "fingerprint": saved["fingerprint"]}
        return saved, Diagnostics(**meta["diagnostics"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EquilibriumFileError(path, f"has incomplete metadata ({type(exc).__name__}: {exc})") from exc


def _meshes(path: Path, meta: Any, leaves: dict[str, np.ndarray], problem: MFGProblem) -> SlabMeshes | None:
    """The saved ``SlabMeshes`` (None without), checked: their root is on the problem's box and their
    slabs span its ``Nt`` steps; EquilibriumFileError naming the defect."""
    if "meshes" not in meta:
        return None
    try:
        meshes = SlabMeshes.from_leaves(meta["meshes"], leaves["mesh_level"], leaves["mesh_coords"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EquilibriumFileError(path, f"holds tree meshes that cannot be rebuilt ({type(exc).__name__}: "
                                         f"{exc})") from exc
    root, edges = meshes.meshes[0].root, np.asarray(meshes.edges)
    if tuple(map(tuple, root.bounds)) != tuple(map(tuple, problem.grid.bounds)):
        raise EquilibriumFileError(path, f"holds tree meshes on the box {root.bounds}, not the problem's "
                                         f"{problem.grid.bounds}")
    if edges[0] != 0 or edges[-1] != problem.time.Nt or (np.diff(edges) <= 0).any():
        raise EquilibriumFileError(path, f"holds tree meshes on the slabs {edges.tolist()}, which do not "
                                         f"rise from 0 to Nt={problem.time.Nt}")
    return meshes


def _check_fields(path: Path, u: np.ndarray, m: np.ndarray, diagnostics: Diagnostics,
                  problem: MFGProblem) -> None:
    """Shapes ``(Nt+1, *grid.shape)``, finite values, ``m >= -sqrt(eps) max m`` and level masses
    equal to the recorded ones (relative ``sqrt(eps)``, eps of the coarser of the file's and the
    solve's dtype); EquilibriumFileError naming the defect."""
    shape = (problem.time.Nt + 1, *problem.grid.shape)
    for name, array in (("u", u), ("m", m)):
        if array.dtype.kind != "f":
            raise EquilibriumFileError(path, f"{name} has dtype {array.dtype}, expected floating point")
        if array.shape != shape:
            raise EquilibriumFileError(path, f"{name} has shape {array.shape}, expected {shape} "
                                             f"(Nt+1, *grid.shape) of problem {problem.name!r}")
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise EquilibriumFileError(path, f"{name} has {int(bad.sum())} non-finite values "
                                             f"(first {array[first]} at index {first})")
    try:  # a float32 solve saved as float64 carries float32 round-off
        solved = np.finfo(np.dtype(diagnostics.dtype))
    except (TypeError, ValueError) as exc:
        raise EquilibriumFileError(path, f"records an unknown solve dtype {diagnostics.dtype!r}") from exc
    rtol = float(np.sqrt(max(np.finfo(m.dtype).eps, solved.eps)))
    scale = float(np.abs(m).max())
    if m.min() < -rtol * scale:
        first = tuple(int(i) for i in np.unravel_index(np.argmin(m), m.shape))
        raise EquilibriumFileError(path, f"m has negative densities (min {m[first]:.3e} at index {first}; "
                                         f"round-off down to {-rtol * scale:.3e} is allowed)")
    try:
        recorded = np.asarray(diagnostics.mass, dtype=float)
    except (TypeError, ValueError) as exc:
        raise EquilibriumFileError(path, f"records level masses that are not numbers ({exc})") from exc
    if recorded.shape != shape[:1]:
        raise EquilibriumFileError(path, f"records {recorded.size} level masses, expected {shape[0]}")
    mass = m.reshape(shape[0], -1).sum(axis=1, dtype=float) * problem.grid.cell_volume
    off = np.abs(mass - recorded)
    n = int(np.argmax(off))
    if not off[n] <= rtol * max(1.0, float(np.abs(recorded).max())):
        raise EquilibriumFileError(path, f"m has mass {mass[n]:.12g} at level {n}, the file records "
                                         f"{recorded[n]:.12g}")
