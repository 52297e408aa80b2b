"""Checks of public arguments before any work starts (a bottom module: any layer imports it).

Each failure names the parameter, shows the value and says what is allowed: ``TypeError`` for
a value of the wrong kind (a string, a bool or a complex number for a real number, ...),
``ValueError`` for one of the right kind outside the allowed range.

Example:
    >>> check_real("sigma", 0.2, 0.0)
    0.2
    >>> check_int("Nx", 2.0, 3)
    Traceback (most recent call last):
    ...
    TypeError: Nx must be an integer >= 3, got 2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

REAL_TYPES = (int, float, np.integer, np.floating)


def shown(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a 400-digit integer stays readable)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def interval(low: float | None, high: float | None, open_low: bool = False, open_high: bool = False) -> str:
    """``[low, high]``-style text of a range; None is an infinite end."""
    lo = "(-inf" if low is None else f"{'(' if open_low else '['}{low:g}"
    hi = "inf)" if high is None else f"{high:g}{')' if open_high else ']'}"
    return f"{lo}, {hi}"


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
               open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite float in the range, else an error naming ``name`` and the range.

    Python and numpy ints and floats are real numbers; bools, complex numbers, strings and
    arrays are not (``TypeError``). Integers too large for a float64 are out of range.
    """
    where = interval(low, high, open_low, open_high)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, REAL_TYPES):
        raise TypeError(f"{name} must be a real number in {where}, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    ok = math.isfinite(number)
    if ok and low is not None:
        ok = number > low if open_low else number >= low
    if ok and high is not None:
        ok = number < high if open_high else number <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number in {where}, got {shown(value)}")
    return number


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (None: unbounded), else an error naming ``name``."""
    if high is None:
        where = "" if low is None else f" >= {low}"
    else:
        where = f" <= {high}" if low is None else f" in [{low}, {high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer{where}, got {shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{where}, got {shown(value)}")
    return int(value)


def check_optional(check: Callable[..., Any], name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """None, or ``check(name, value, *args, **kwargs)`` with "None or" in its messages."""
    if value is None:
        return None
    try:
        return check(name, value, *args, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc).replace(f"{name} must be ", f"{name} must be None or ", 1)
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(message) from None


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of the ``allowed`` names, else an error listing them."""
    if not isinstance(value, str) or value not in allowed:
        error = ValueError if isinstance(value, str) else TypeError
        raise error(f"{name} must be one of {', '.join(map(repr, allowed))}, got {shown(value)}")
    return value


def check_flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` (a numpy bool too); 0, 1, strings and None are refused, not read as truths."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def check_real_entries(name: str, value: Any, *, bools: bool = False) -> None:
    """Refuse an array-like (numpy, torch, nested lists, a scalar) whose entries are not real
    numbers: None, strings, bytes, complex numbers and, unless ``bools`` allows an array of them (a
    mask as a density, an indicator cost), bools would otherwise be converted silently (``"0.5"``
    to 0.5, ``True`` to 1, ``1 + 2j`` to 1). Python integers too large for int64 are real numbers."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and type(value).__module__.startswith("torch"):
        text = str(dtype)
        kind = "c" if "complex" in text else "b" if text == "torch.bool" else "f"
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{name} must be an array of real numbers, got {shown(value)} ({exc})") from None
        kind = array.dtype.kind
        if kind == "O" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in array.flat):
            kind = "i"
    if kind not in ("iufb" if bools and np.ndim(value) > 0 else "iuf"):
        what = {"b": "bools", "c": "complex numbers", "U": "strings", "S": "bytes"}.get(kind, "objects")
        raise TypeError(f"{name} must hold real numbers (float or int), got {what}: {shown(value)}")
