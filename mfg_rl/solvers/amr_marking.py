"""Where a tree mesh should be finer or coarser: error indicators of the fields ``u`` and ``m``
on its leaves, and the marking of leaves for a target error or a cell budget.

Indicators (``backends/tree_indicators.py``): the gradient jump across faces (default) or
the cell gradient, per leaf, in numpy or compiled with ``jax.jit``; or ``"density"``, the field's
own size ``|v_K|`` (for ``m``: where the crowd is, which bounds the L1 error of ``m`` a leaf can
carry). Marking equidistributes: a mesh meets ``tol`` when every leaf has ``eta_K <= tol / M``
(then ``sum_K eta_K <= tol``); or it refines every leaf ``above`` a level.

Example:
    >>> import numpy as np
    >>> from mfg_rl.core.tree_mesh import TreeMesh
    >>> mesh = TreeMesh.uniform([(0.0, 1.0)], min_level=4, max_level=8, kernels="numpy")
    >>> m = np.where(mesh.centres[:, 0] < 0.5, 2.0, 0.0)          # a front at x = 1/2
    >>> marks = mark(mesh, error_indicator(mesh, m), tol=1e-3)
    >>> mesh.centres[marks.refine, 0].tolist()
    [0.40625, 0.46875, 0.53125, 0.59375]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfg_rl.backends.tree_indicators import INDICATORS, indicator_jax, indicator_numpy
from mfg_rl.core.tree_mesh import TreeMesh

INDICATOR_KERNELS = ("numpy", "jax")
KINDS = (*INDICATORS, "density")
COARSEN_BELOW = 0.25  # mark's default: a leaf may coarsen under this share of its refinement level


def error_indicator(mesh: TreeMesh, *fields: Any, kind: str = "jump", weights: Sequence[float] | None = None,
                    kernel: str = "numpy") -> np.ndarray:
    """``eta_K = sum_i w_i max_n eta_K(field_i[n])``: the indicator ``kind`` of each field, its
    largest value over the leading axes (time levels), weighted and summed over fields.

    Args:
        mesh: the mesh the fields live on.
        fields: arrays ``(..., M)`` of cell averages, e.g. ``u`` and ``m`` of shape (Nt+1, M).
        kind: ``"jump"`` (gradient jump across faces, ~ h |d^2 v|), ``"gradient"``
            (~ |grad v|; ``backends/tree_indicators.py`` gives both formulas) or ``"density"``
            (``|v_K|``).
        weights: one per field; by default ``1 / max|field_i|`` (relative errors, so ``u`` and
            ``m`` count alike; 1 for a zero field).
        kernel: ``"numpy"`` (the default: no compilation per mesh size) or ``"jax"`` (jit).

    Returns:
        ``eta`` of shape (M,), ``>= 0``.
    """
    if not isinstance(mesh, TreeMesh):
        raise TypeError(f"mesh must be a TreeMesh, got {type(mesh).__name__}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if kernel not in INDICATOR_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, INDICATOR_KERNELS))}, got {kernel!r}")
    if not fields:
        raise ValueError("error_indicator needs at least one field (e.g. u and m)")
    arrays = []
    for i, field in enumerate(fields):
        array = np.asarray(field, dtype=np.float64)
        if array.ndim == 0 or array.shape[-1] != len(mesh):
            raise ValueError(f"fields[{i}] must have shape (..., {len(mesh)}) (one value per leaf), "
                             f"got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"fields[{i}] must be finite")
        arrays.append(array.reshape(-1, len(mesh)))
    if weights is None:
        weights = [1.0 / top if (top := float(np.abs(a).max())) > 0 else 1.0 for a in arrays]
    weights = [float(w) for w in weights]
    if len(weights) != len(arrays) or not all(np.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"weights must be {len(arrays)} finite numbers >= 0 (one per field), got {weights}")
    if kind == "density":
        return sum(w * np.abs(a).max(axis=0) for w, a in zip(weights, arrays, strict=True))
    faces = mesh.faces
    run = indicator_numpy if kernel == "numpy" else indicator_jax
    eta = run(np.concatenate(arrays), faces.minus, faces.plus, faces.axis, faces.area, faces.normal_distance,
              mesh.volumes, mesh.sizes, kind)
    rows = np.cumsum([0] + [len(a) for a in arrays])
    return sum(w * eta[a:b].max(axis=0) for w, a, b in zip(weights, rows[:-1], rows[1:], strict=True))


@dataclass(frozen=True)
class Marks:
    """Leaves to refine and to coarsen (boolean arrays (M,)), for ``mesh.adapt(refine, coarsen)``."""

    refine: np.ndarray
    coarsen: np.ndarray


def _largest(n: int, fits: Callable[[int], bool]) -> int:
    """The largest ``k`` in ``[0, n]`` with ``fits(k)`` for a ``fits`` true up to some ``k``
    and false after (0 when none fits): bisection, ``log2(n)`` calls."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def mark(mesh: TreeMesh, eta: Any, *, tol: float | None = None, budget: int | None = None,
         coarsen_below: float = COARSEN_BELOW, above: float | None = None) -> Marks:
    """Mark leaves for a target error ``tol``, a level ``above``, a cell budget, or a budget with either.

    - ``tol``: refine ``eta_K > tol / M`` unless ``sum_K eta_K <= tol`` already (the target
      is met), coarsen ``eta_K < coarsen_below tol / M`` (equidistribution).
    - ``above``: refine ``eta_K > above``, coarsen ``eta_K < coarsen_below above`` (for
      ``kind="density"``: refine where the crowd is); not with ``tol``.
    - ``budget``: at most ``budget`` leaves after ``mesh.adapt(marks.refine, marks.coarsen)``
      (2:1 balance included): the worst leaves among those marked (all with ``eta_K > 0`` when
      ``tol`` is None) are refined while the count fits; a mesh over budget coarsens its
      complete families of smallest total ``eta`` until it fits (as far as balance allows).

    Leaves at ``max_level`` are never marked to refine.

    Args:
        mesh: the mesh.
        eta: indicator per leaf, shape (M,), finite, ``>= 0`` (``error_indicator``).
        tol: target error, ``> 0``, or None.
        above: level of ``eta`` to refine over, ``> 0``, or None.
        budget: most leaves, an integer ``>=`` the leaves of the uniform ``min_level`` mesh, or None.
        coarsen_below: fraction of ``tol / M`` below which a leaf may be coarsened, in ``[0, 1)``.

    Returns:
        ``Marks(refine, coarsen)``.
    """
    if not isinstance(mesh, TreeMesh):
        raise TypeError(f"mesh must be a TreeMesh, got {type(mesh).__name__}")
    eta = np.asarray(eta, dtype=np.float64)
    if eta.shape != (len(mesh),):
        raise ValueError(f"eta must have shape ({len(mesh)},) (one value per leaf), got {eta.shape}")
    if not (np.isfinite(eta).all() and (eta >= 0).all()):
        raise ValueError("eta must be finite and >= 0")
    if tol is not None and above is not None:
        raise ValueError(f"mark takes a target error tol or a level above, not both (got {tol!r}, {above!r})")
    if above is not None:
        if isinstance(above, bool) or not isinstance(above, (int, float, np.number)) \
                or not np.isfinite(above) or above <= 0:
            raise ValueError(f"above must be a finite number > 0, got {above!r}")
    if tol is None and budget is None and above is None:
        raise ValueError("mark needs a target error tol > 0, a level above > 0 or a cell budget (or both)")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float, np.number))
                            or not np.isfinite(tol) or tol <= 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    root = mesh.root
    smallest = int(np.prod(root.root_shape)) * 2 ** (root.ndim * root.min_level)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise TypeError(f"budget must be an integer >= {smallest}, got {budget!r}")
        if budget < max(smallest, 1):
            raise ValueError(f"budget must be an integer >= {smallest} (the leaves of the uniform min_level "
                             f"mesh), got {budget}")
    if not (isinstance(coarsen_below, (int, float)) and 0 <= coarsen_below < 1):
        raise ValueError(f"coarsen_below must be a number in [0, 1), got {coarsen_below!r}")
    refinable = mesh.level < root.max_level
    if tol is not None:
        threshold = tol / len(mesh)
        refine = (eta > threshold) & refinable & (eta.sum() > tol)
        coarsen = (eta < coarsen_below * threshold) & ~refine
    elif above is not None:
        refine = (eta > above) & refinable
        coarsen = (eta < coarsen_below * above) & ~refine
    else:
        refine, coarsen = (eta > 0) & refinable, np.zeros(len(mesh), dtype=bool)
    if budget is None:
        return Marks(refine, coarsen)
    worst = np.flatnonzero(refine)[np.argsort(-eta[refine], kind="stable")]

    def flags(leaves: np.ndarray) -> np.ndarray:
        out = np.zeros(len(mesh), dtype=bool)
        out[leaves] = True
        return out

    def fits(k: int, extra: np.ndarray | None = None) -> bool:
        more = coarsen if extra is None else coarsen | extra
        return len(mesh.adapt(flags(worst[:k]), more)) <= budget

    if not fits(len(worst)):
        worst = worst[:_largest(len(worst), fits)]
    refine = flags(worst)
    if not fits(len(worst)):  # over budget without refining: coarsen the flattest families
        start = mesh.families[mesh.level[mesh.families] > root.min_level]
        members = start[:, None] + np.arange(2**root.ndim)
        order = members[np.argsort(eta[members].sum(axis=1), kind="stable")]
        count = _largest(len(order), lambda j: not fits(0, flags(order[:j].ravel()))) + 1
        coarsen = coarsen | flags(order[:count].ravel())
    return Marks(refine, coarsen)


def coarsen_through(old: TreeMesh, new: TreeMesh, eta: Any, above: float,
                    coarsen_below: float = COARSEN_BELOW) -> TreeMesh:
    """``new`` (``old`` adapted once) coarsened further, pass after pass, where ``mark(..., above=...)``
    would coarsen: complete families whose leaves all have ``eta < coarsen_below above``, with ``eta``
    (M_old,) of ``old`` carried over as the largest ``eta`` of the ``old`` leaves a leaf overlaps.

    For an ``eta`` that does not depend on the leaf size (``kind="density"``: where the crowd is)
    the rule is the same at every level, so one adaptation may coarsen a leaf down several levels
    (down to ``min_level``, balance permitting) instead of one per coupled solve.
    """
    eta = np.asarray(eta, dtype=np.float64)
    centres = np.asarray(old.centres)
    while True:
        top = eta[old.locate(np.asarray(new.centres))]  # leaves inside an old leaf: its eta
        np.maximum.at(top, new.locate(centres), eta)  # leaves over several old ones: their largest
        coarser = new.adapt(np.zeros(len(new), dtype=bool), top < coarsen_below * above)
        if len(coarser) == len(new):
            return new
        new = coarser
