"""Neighbour values along one axis by one ``concat``: the stencil's ``x_{i-1}`` and ``x_{i+1}``.

``xp.roll`` costs several copies per call on numpy (and the implicit steps call it a few
times per Newton iteration); slicing plus one ``concat`` is one copy on every namespace and
traces under jit.
"""

from __future__ import annotations

from typing import Any


def _along(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = part
    return tuple(index)


def first(x: Any, axis: int) -> Any:
    """``x`` at index 0 of ``axis``, keeping the axis (length 1)."""
    return x[_along(x.ndim, axis, slice(0, 1))]


def last(x: Any, axis: int) -> Any:
    """``x`` at the last index of ``axis``, keeping the axis (length 1)."""
    return x[_along(x.ndim, axis, slice(-1, None))]


def from_below(xp: Any, x: Any, axis: int, edge: Any = None) -> Any:
    """``w[i] = x[i-1]`` along ``axis``; ``w[0]`` is ``edge`` (length-1 slice) or wraps to ``x[-1]``."""
    head = last(x, axis) if edge is None else edge
    return xp.concat([head, x[_along(x.ndim, axis, slice(None, -1))]], axis=axis)


def from_above(xp: Any, x: Any, axis: int, edge: Any = None) -> Any:
    """``w[i] = x[i+1]`` along ``axis``; ``w[-1]`` is ``edge`` (length-1 slice) or wraps to ``x[0]``."""
    tail = first(x, axis) if edge is None else edge
    return xp.concat([x[_along(x.ndim, axis, slice(1, None))], tail], axis=axis)
