"""The catalogue's registry: names mapped to problem factories."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mfg_rl.checks import shown
from mfg_rl.core import MFGProblem

Factory = Callable[..., MFGProblem]
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: add a factory ``f(Nx=..., Nt=..., **params) -> MFGProblem`` as ``name``."""

    def decorate(factory: Factory) -> Factory:
        if name in _FACTORIES:
            raise ValueError(f"problem {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Names of the catalogue's problems, sorted."""
    return sorted(_FACTORIES)


def factory(name: str) -> Factory:
    """The factory registered as ``name``; unknown names raise a ``ValueError`` listing all."""
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; available: {', '.join(names())}") from None


def parameters(name: str) -> dict[str, Any]:
    """Parameters of problem ``name`` with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(factory(name)).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def make(name: str, **params: Any) -> MFGProblem:
    """Build problem ``name``; unknown parameters raise a ``TypeError`` naming the allowed ones.

    Any ``ValueError``/``TypeError`` of the build starts with the call, ``name(param=value, ...)``,
    so that a failure found downstream (a cost that overflows, a grid too fine) names the
    parameters that led to it.

    Example:
        >>> from mfg_rl import problems
        >>> problems.make("lq-1d", Nx=101, Nt=20).grid.shape
        (101,)
    """
    build = factory(name)
    allowed = parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(
            f"problem {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    try:
        return build(**params)
    except (TypeError, ValueError) as exc:
        call = f"{name}({', '.join(f'{key}={shown(value)}' for key, value in params.items())})"
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"{call}: {exc}") from None
