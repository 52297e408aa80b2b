"""Bad and edge inputs at every public entry point: accepted with a finite result, or refused clearly.

Each case calls a constructor, ``solve``, ``gymnasium.make``/``make_vec``, ``env.step`` or
``Equilibrium.load`` with one fuzzed argument (fixed edge values, then hypothesis draws,
derandomized) and is classified:

- OK: accepted, and the result is finite;
- CLEAR: ``ValueError``/``TypeError``/``SolverError`` whose message names the parameter (and
  ``Equilibrium.load``'s documented ``FileNotFoundError`` naming a missing file);
- UNCLEAR: any other exception, or a message that does not name the parameter;
- SILENT: accepted although the value is not of the parameter's kind (a complex number or a
  string for a real, a bool for an int, ...), or with a non-finite result;
- CRASH: anything that is not an ``Exception``;
- UPSTREAM: an exception raised in another library before mfg_rl's code runs, allowed only
  where ``UPSTREAM`` lists it (``gymnasium.make`` reads ``render_mode`` itself first).

``python tests/test_fuzz_inputs.py`` prints the counts and every case that is neither OK nor CLEAR.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import mfg_rl
from mfg_rl import Equilibrium, create_backend, problems, solve
from mfg_rl.core import (
    BoundedControlHamiltonian,
    CustomHamiltonian,
    Grid,
    Hamiltonian,
    MFGProblem,
    PowerLawHamiltonian,
    TimeGrid,
)
from mfg_rl.errors import SolverError
from mfg_rl.solvers import (
    Anderson,
    FictitiousPlay,
    FixedPoint,
    GlobalKrylov,
    GlobalSpacetime,
    LinearSolver,
    Newton,
    Parareal,
    ParticleFP,
    ProgressBar,
)
from mfg_rl.solvers.amr import AMR
from mfg_rl.solvers.auto import Auto

NAN, INF = float("nan"), float("inf")
EDGE = [
    0, 1, 2, 3, -1, 7, 10**6, 2**31, 2**63, 10**400, -(10**400), 0.0, -0.0, 0.5, 1.5, -0.5, 1e-300, 5e-324,
    1e-12, 1e300, -1e300, 1.7976931348623157e308, NAN, INF, -INF, np.float32(0.25), np.int64(4),
    np.float64(NAN), True, False, None, 0.5 + 0j, 0.5 + 1j, complex(NAN, 0.0), "1", "0.5", "", "abc", b"1",
    [0.5], [0.5, 0.5], (1, 2), np.array(0.5), np.array([0.5, 0.5]), np.array(["1"]), torch.tensor(0.5),
    {"a": 1}, object(),
]
"""Values tried at every parameter, in this order."""

ANY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**3), 10**5),
    st.integers(2**40, 10**30), st.complex_numbers(), st.booleans(), st.none(), st.text(max_size=4),
    st.lists(st.floats(-2, 2), max_size=3), st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
)
"""Hypothesis draws after the edge values: integers skip the sizes that an accepted grid, particle
count or batch would take minutes or gigabytes to build (the library refuses those above 2**27-2**30)."""

CLEAR_ERRORS = (ValueError, TypeError, SolverError)
VERDICTS = ("OK", "CLEAR", "UNCLEAR", "SILENT", "CRASH", "UPSTREAM")
SETTINGS = settings(max_examples=24, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))
UPSTREAM = {("gymnasium.make", "render_mode"):
            "gymnasium.make calls render_mode.endswith(...) before the environment is built"}
"""Failures inside another library before mfg_rl's code runs: allowed only here, and only there."""

PACKAGE = str(Path(mfg_rl.__file__).parent)
Row = tuple[str, str, Any, str, str]
"""One case: target, parameter(s), value, verdict, what happened."""


# -- classification ------------------------------------------------------------------------------------
def fits(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the ``kind`` a parameter takes (``"real|None"``: either; an ``"array"``
    holds real numbers, a ``"mask"`` also bools)."""
    if "|" in kind:
        return any(fits(value, k) for k in kind.split("|"))
    if kind in ("any", "array", "mask") and callable(value):
        return True
    if kind == "any":
        return True
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if kind == "int":
        return isinstance(value, (int, np.integer))
    if kind == "real":
        return isinstance(value, (int, float, np.integer, np.floating))
    if kind == "name":
        return isinstance(value, str)
    if kind == "point":
        return isinstance(value, (tuple, list, np.ndarray)) and all(fits(v, "real") for v in value)
    if kind in ("array", "mask"):
        allowed = "iufb" if kind == "mask" else "iuf"
        if isinstance(value, torch.Tensor):
            return not value.is_complex() and (kind == "mask" or value.dtype != torch.bool)
        try:
            array = np.asarray(value)
        except ValueError:
            return False
        if array.dtype.kind == "O":  # Python integers beyond int64
            return all(fits(v, "real") for v in array.flat)
        return array.dtype.kind in allowed
    raise AssertionError(kind)


def mentions(message: str, name: str) -> bool:
    """Whether ``message`` has ``name`` as a word of its own (``damping`` is not in ``min_damping``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


def from_elsewhere(exc: BaseException) -> bool:
    """Whether ``exc`` was raised outside mfg_rl before any of its code ran."""
    return not any(frame.filename.startswith(PACKAGE) for frame in traceback.extract_tb(exc.__traceback__))


def verdict(target: str, names: tuple[str | tuple[str, ...], ...], value: Any, kind: str,
            call: Callable[[], Any], finite: Callable[[Any], bool] | None = None,
            errors: tuple[type[BaseException], ...] = CLEAR_ERRORS) -> Row:
    """Run ``call`` and classify it (module docstring). A clear message contains every entry of
    ``names``; an entry that is a tuple is a choice (the file or the word ``path``)."""
    row = (target, "+".join(name if isinstance(name, str) else name[-1] for name in names), value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except Exception as exc:
        if (target, row[1]) in UPSTREAM and from_elsewhere(exc):
            return (*row, "UPSTREAM", f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, errors):
            return (*row, "UNCLEAR", f"{type(exc).__name__}: {exc}")
        message = str(exc)
        choices = [(name,) if isinstance(name, str) else name for name in names]
        if all(any(mentions(message, n) for n in choice) for choice in choices):
            return (*row, "CLEAR", f"{type(exc).__name__}: {message}")
        return (*row, "UNCLEAR", f"{type(exc).__name__} not naming {row[1]}: {message}")
    except BaseException as exc:  # noqa: B036 - a crash is what this suite looks for
        if isinstance(exc, KeyboardInterrupt):
            raise
        return (*row, "CRASH", f"{type(exc).__name__}: {exc}")
    if not fits(value, kind):
        return (*row, "SILENT", f"accepted a {type(value).__name__} for a {kind} parameter")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            good = finite is None or finite(result)
    except Exception as exc:
        return (*row, "SILENT", f"accepted, then the result failed: {type(exc).__name__}: {exc}")
    return (*row, "OK", "accepted") if good else (*row, "SILENT", "accepted with a non-finite result")


def all_finite(*arrays: Any) -> bool:
    """Every entry a finite real number (complex and object entries are not)."""
    for a in arrays:
        a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)
        if a.dtype.kind not in "iufb" or not np.all(np.isfinite(a)):
            return False
    return True


@functools.cache
def draws(strategy: st.SearchStrategy) -> tuple[Any, ...]:
    """``SETTINGS.max_examples`` values of ``strategy``, the same on every run."""
    drawn: list[Any] = []

    def draw(value: Any) -> None:
        drawn.append(value)

    SETTINGS(given(strategy)(draw))()
    return tuple(drawn)


def values(strategy: st.SearchStrategy = ANY) -> list[Any]:
    """The edge values, then hypothesis draws of ``strategy``."""
    return [*EDGE, *draws(strategy)]


# -- problems and the nouns --------------------------------------------------------------------------------
TINY = {"crowd-2d": {"Nx": 6, "Ny": 6, "Nt": 4}}
KINDS = {bool: "bool", int: "int", float: "real", str: "name", tuple: "point"}


def finite_problem(problem: MFGProblem) -> bool:
    exact = [] if problem.exact is None else [
        getattr(problem.exact, f)(t, problem.grid.coordinates()[0])
        for f in ("u", "m") for t in (0.0, 0.5 * problem.time.T, problem.time.T)]
    return all_finite(problem.m0, problem.nu, problem.time.dt, *exact,
                      problem.evaluate_cost(problem.running_cost, problem.m0),
                      problem.evaluate_cost(problem.terminal_cost, problem.m0))


def catalogue_rows(name: str) -> Iterator[Row]:
    base = TINY.get(name, {"Nx": 8, "Nt": 4})
    for param, default in problems.parameters(name).items():
        for value in values():
            args = {**base, param: value}
            yield verdict(f"make({name})", (param,), value, KINDS[type(default)],
                          lambda args=args: problems.make(name, **args), finite_problem)
    yield verdict(f"make({name})", ("bogus",), 1, "None", lambda: problems.make(name, bogus=1))


def x_cost(x: Any, m: Any) -> Any:
    return 0.0 * m + x


def base_problem(**change: Any) -> MFGProblem:
    args = dict(grid=Grid([(0.0, 1.0)], 8), time=TimeGrid(1.0, 4), sigma=0.3, running_cost=x_cost,
                terminal_cost=x_cost, m0=np.ones(8))
    return MFGProblem(**{**args, **change})


COSTS = [lambda x, m: m * NAN, lambda x, m: np.zeros(3), lambda x, m: "cost", lambda x, m: 1 / 0,
         lambda x, m: m * (1 + 1j), lambda x: x, lambda x, m: m > 0, 3]
M0S = [np.zeros(8), -np.ones(8), np.full(8, NAN), np.ones(7), np.ones((8, 2)), np.ones(8) * (1 + 1j),
       np.array(["1"] * 8), np.ones(8, dtype=bool), [1.0] * 8, lambda x: x * NAN, lambda x: 1 / 0,
       lambda x: x + 1j, np.full(8, 1e308), np.full(8, 1e-320), torch.ones(8), [[1.0], [2.0, 3.0]]]


def core_rows() -> Iterator[Row]:
    for value in [*values(), *[[(0.0, v)] for v in EDGE], *[[(v, 1.0)] for v in EDGE]]:
        yield verdict("Grid", ("bounds",), value, "any", lambda v=value: Grid(v, 8),
                      lambda g: all_finite(g.spacing, g.cell_volume))
    for value in [*values(), *[[v] for v in EDGE], *[(8, v) for v in EDGE]]:
        yield verdict("Grid", ("shape",), value, "any", lambda v=value: Grid([(0.0, 1.0)], v),
                      lambda g: all_finite(g.spacing, g.cell_volume))
    for value in [*values(), *[("exit", v) for v in EDGE], *[[v] for v in EDGE]]:
        yield verdict("Grid", ("boundary",), value, "any", lambda v=value: Grid([(0.0, 1.0)], 8, v))
    for param, kind in {"T": "real", "Nt": "int"}.items():
        for value in values():
            args = {"T": 1.0, "Nt": 4, param: value}
            yield verdict("TimeGrid", (param,), value, kind, lambda args=args: TimeGrid(**args),
                          lambda t: all_finite(t.dt, t.times()))
    problem_params: dict[str, tuple[str, list[Any]]] = {
        "grid": ("any", [None, 3, "grid"]), "time": ("any", [None, 1.0, (1.0, 4)]),
        "sigma": ("real", values()), "exit_cost": ("real", values()),
        "running_cost": ("any", COSTS), "terminal_cost": ("any", COSTS), "m0": ("mask", M0S + EDGE),
        "hamiltonian": ("any", [None, 1.0, "quadratic", Hamiltonian]), "name": ("name", EDGE),
        "params": ("any", EDGE), "notes": ("any", EDGE),
    }
    for param, (kind, tried) in problem_params.items():
        for value in tried:
            yield verdict("MFGProblem", (param,), value, kind,
                          lambda p=param, v=value: base_problem(**{p: v}), finite_problem)


def finite_hamiltonian(h: Any) -> bool:
    p, m = np.array([0.0, 0.5, -2.0]), np.array([0.0, 1.0, 0.5])
    alpha = h.optimal_control(p, p, m)
    return all_finite(h(p, p, m), alpha, h.lagrangian(p, alpha, m))


HAMILTONIANS = {Hamiltonian: {"control_cost": "real", "congestion": "real", "exponent": "real"},
                PowerLawHamiltonian: {"power": "real", "control_cost": "real"},
                BoundedControlHamiltonian: {"max_speed": "real", "control_cost": "real"},
                CustomHamiltonian: {"name": "name", "max_speed": "real|None", "function": "any"}}


def custom_problem(**args: Any) -> MFGProblem:
    """A problem of the ``CustomHamiltonian`` of ``args``: its function is checked on the nodes then."""
    return base_problem(hamiltonian=CustomHamiltonian(**{"function": lambda x, p, m: 0.5 * p * p, **args}))


def finite_custom(problem: MFGProblem) -> bool:
    h, x, m = problem.hamiltonian, problem.points(), problem.m0
    alphas = [h.optimal_control(x, 0.0 * x + p, m) for p in (0.0, 0.5, -2.0)]
    return all_finite(*alphas, *(h.lagrangian(x, alpha, m) for alpha in alphas))


def hamiltonian_rows() -> Iterator[Row]:
    for cls, params in HAMILTONIANS.items():
        for param, kind in params.items():
            for value in values():
                if cls is CustomHamiltonian:
                    yield verdict("CustomHamiltonian", (param,), value, kind,
                                  lambda p=param, v=value: custom_problem(**{p: v}), finite_custom)
                else:
                    yield verdict(cls.__name__, (param,), value, kind,
                                  lambda cls=cls, p=param, v=value: cls(**{p: v}), finite_hamiltonian)


# -- solver objects and solve ------------------------------------------------------------------------------
SOLVER_OBJECTS: dict[Any, dict[str, str]] = {
    ParticleFP: {"n_particles": "int", "seed": "int", "bandwidth": "real|name", "kde_method": "name",
                 "store_paths": "bool", "dtype": "name|None"},
    LinearSolver: {"method": "name", "preconditioner": "name", "rtol": "real", "max_iter": "int",
                   "compiled": "bool"},
    Auto: {"depth": "int", "damping": "real", "newton_phases": "bool", "patience": "int",
           "newton_patience": "int"},
    FixedPoint: {"damping": "real", "adaptive": "bool", "min_damping": "real|None"},
    Anderson: {"depth": "int", "damping": "real", "min_damping": "real|None", "inexact": "bool"},
    Newton: {"warmup": "int|None", "max_linear": "int", "linear_rtol": "real"},
    FictitiousPlay: {},
    GlobalSpacetime: {"linear": "name", "rtol": "real", "restart": "int", "max_iter": "int"},
    GlobalKrylov: {"rtol": "real", "restart": "int", "max_iter": "int"},
    Parareal: {"slices": "int", "coarse_factor": "int|None", "tol": "real", "max_iter": "int|None",
               "warm_start": "bool", "forcing": "real|None", "workers": "int|None"},
    AMR: {"max_level": "int|None", "min_level": "int|None", "tol": "real|None", "budget": "int|None",
          "adaptations": "int", "indicator": "name", "kernels": "name", "slabs": "int",
          "round_tol": "real|None", "first_level": "int|None"},
}


def solver_object_rows() -> Iterator[Row]:
    for cls, params in SOLVER_OBJECTS.items():
        for param, kind in params.items():
            for value in values():
                yield verdict(cls.__name__, (param,), value, kind,
                              lambda cls=cls, p=param, v=value: cls(**{p: v}))
        yield verdict(cls.__name__, ("bogus",), 1, "None", lambda cls=cls: cls(bogus=1))


SOLVE_KINDS = {
    "method": "name", "coupling": "name", "fp": "name", "backend": "name|None", "tol": "real",
    "max_iter": "int", "progress": "bool", "damping": "real", "callbacks": "any", "allow_unconverged": "bool",
    "cache": "any", "newton_tol": "real", "n_particles": "int|None", "seed": "int|None", "linear": "any",
}
SOLVE_EXTRA: dict[str, list[Any]] = {
    "method": ["sequential", "global", "global-krylov", "parareal", "jax-scan", Parareal(slices=2),
               Parareal(slices=9), Parareal, "amr", AMR(max_level=3, min_level=1, kernels="numpy"),
               AMR(min_level=5), AMR, object()],
    "coupling": ["auto", "newton", "fictitious_play", "anderson", FixedPoint(0.5), Newton(), FixedPoint],
    "fp": ["particles", ParticleFP(500), ParticleFP],
    "backend": ["numpy", "torch", "jax", "NUMPY", "cupy", create_backend("numpy")],
    "callbacks": [[object()], [ProgressBar()], ProgressBar(), [None], "progress", [lambda state: None],
                  [ProgressBar]],
    "cache": [True, "", "cache", "/proc/no-such-dir/cache", "/dev/null", Path("/dev/null"), "a\0b"],
    "linear": [LinearSolver(), LinearSolver],
}
SOLVE_PAIRS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    *[({"coupling": c, "fp": f, "tol": 0.1}, ("coupling", "fp")) for c in ("newton", Newton())
      for f in ("particles", ParticleFP(500))],
    ({"coupling": "newton", "fp": "particles"}, ("coupling", "fp")),
    ({"fp": "particles"}, ("fp", "tol")),
    ({"fp": ParticleFP(50)}, ("fp", "tol")),
    ({"coupling": "fictitious_play"}, ("coupling", "tol")),
    ({"method": "parareal"}, ("method", "Nt")),
    *[({"damping": 0.5, "coupling": c}, ("damping", "coupling")) for c in ("newton", "fictitious_play",
                                                                           FixedPoint())],
    *[({name: v, "fp": f}, (name, "fp")) for name, v in (("n_particles", 10), ("seed", 1))
      for f in ("fdm", ParticleFP(50))],
    ({"linear": LinearSolver()}, ("linear",)),
    ({"tol": 1e-17}, ("tol",)),
    ({"max_iter": 1, "coupling": "fixed_point"}, ("max_iter",)),
    ({"method": "jax-scan", "backend": "numpy"}, ("method", "backend")),
    *[({"method": "amr", name: value}, ("method", name)) for name, value in
      (("coupling", "newton"), ("coupling", Newton()), ("fp", "particles"), ("linear", LinearSolver()))],
]
"""Options that are wrong together, and the parameters that a clear message names."""


def finite_equilibrium(eq: Equilibrium) -> bool:
    return all_finite(eq.u.data, eq.m.data, eq.diagnostics.residual)


def solve_rows(problem: MFGProblem) -> Iterator[Row]:
    base = {"backend": "numpy", "progress": False, "max_iter": 60}
    particle_base = {"fp": "particles", "tol": 0.2, "max_iter": 3, "allow_unconverged": True}
    for param, kind in SOLVE_KINDS.items():
        for value in [*values(), *SOLVE_EXTRA.get(param, [])]:
            args = {**base, **(particle_base if param in ("n_particles", "seed") else {}), param: value}
            yield verdict("solve", (param,), value, "any" if param in SOLVE_EXTRA else kind,
                          lambda args=args: solve(problem, **args), finite_equilibrium)
    for value in [None, 3, "lq-1d", problems]:
        yield verdict("solve", ("problem",), value, "None", lambda v=value: solve(v))
    for args, names in SOLVE_PAIRS:
        yield verdict("solve", names, args, "any", lambda args=args: solve(problem, **{**base, **args}),
                      finite_equilibrium)


# -- environments ------------------------------------------------------------------------------------------
ENV_KINDS = {"max_action": "real|None", "normalize_actions": "bool", "render_mode": "name|None",
             "solve_options": "any", "equilibrium": "any", "problem": "any"}
VEC_KINDS = {**ENV_KINDS, "num_envs": "int", "device": "any", "max_episode_steps": "int|None",
             "population": "name", "bandwidth": "real|name", "autoreset_mode": "any"}
ENV_EXTRA: dict[str, list[Any]] = {
    "device": ["cuda", "cuda:3", "mps", "tpu", "cpu", torch.device("cpu"), "meta"],
    "population": ["empirical", "equilibrium", "N-player"],
    "bandwidth": ["silverman", "scott", "rule", (0.1,)],
    "solve_options": [{"tol": "x"}, {"bogus": 1}, {"coupling": "nope"}, {"progress": True}, {"max_iter": 1}],
    "render_mode": ["rgb_array", "rgb_array_list"],
    "problem": ["lq-1d", "crowd-2d", "nope"],
    "autoreset_mode": ["NextStep", "SameStep", "Disabled", gymnasium.vector.AutoresetMode.NEXT_STEP],
}


def finite_env(env: Any) -> bool:
    obs, _ = env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    step = env.step(action)
    return all_finite(obs, step[0], step[1])


def env_rows() -> Iterator[Row]:
    for vector, kinds in ((False, ENV_KINDS), (True, VEC_KINDS)):
        for param, kind in kinds.items():
            for value in [*values(), *ENV_EXTRA.get(param, [])]:
                alone = param in ("problem", "equilibrium")
                args = {param: value} if alone else {"Nx": 8, "Nt": 4, param: value}
                if vector:
                    args = {"num_envs": 2, "device": "cpu", **args}

                def make(args: dict[str, Any] = args, vector: bool = vector) -> Any:
                    if vector:
                        return gymnasium.make_vec("mfg_rl/LQ1D-v0", **args)
                    return gymnasium.make("mfg_rl/LQ1D-v0", **args)

                target = "gymnasium.make_vec" if vector else "gymnasium.make"
                kind_here = "any" if param in ENV_EXTRA else kind
                yield verdict(target, (param,), value, kind_here, make, finite_env)


ACTIONS = [None, "0.5", ["0.5"], "abc", b"1", 0.5 + 1j, np.array([0.5 + 1j]), np.array([NAN]),
           np.array([INF]), [0.5], [[0.5]], np.zeros((1, 1)), np.zeros(2), np.zeros((3, 1)), np.zeros((2, 2)),
           np.zeros(0), [],
           [[0.1], [0.2]], [[0.1], [0.2, 0.3]], 0.5, np.float32(0.5), True, np.array([True]),
           torch.tensor([True]), torch.tensor([0.5 + 1j]), torch.tensor([1]),
           torch.tensor([0.5], dtype=torch.float64),
           torch.tensor([0.5], dtype=torch.float16), torch.tensor([[0.5], [0.5]]),
           torch.tensor([0.5], device="meta"), np.array(["0.5"]), np.array([object()]), {"a": 1}, object(),
           [None], 1e300, np.array([1e39]), 10**40, torch.zeros(2, 1, requires_grad=True)]


def step_rows() -> Iterator[Row]:
    single = gymnasium.make("mfg_rl/LQ1D-v0", Nx=8, Nt=4)
    batch = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=2, device="cpu", Nx=8, Nt=4)
    drawn = values(st.one_of(ANY, st.lists(st.lists(st.floats(), max_size=2), max_size=3)))
    for name, env in (("MFGEnv.step", single), ("MFGVectorEnv.step", batch)):
        for action in [*ACTIONS, *drawn]:
            env.reset(seed=0)
            yield verdict(name, ("action",), action, "array", lambda e=env, a=action: e.step(a),
                          lambda out: all_finite(out[0], out[1]))


# -- files and backends ------------------------------------------------------------------------------------
def load_rows(tmp: Path, problem: MFGProblem) -> Iterator[Row]:
    text, empty, good = tmp / "text.npz", tmp / "empty.npz", tmp / "good.npz"
    text.write_text("not an equilibrium")
    empty.write_bytes(b"")
    solve(problem, progress=False).save(good)
    missing = (*CLEAR_ERRORS, FileNotFoundError)  # documented: no file at ``path``
    for path in [None, 3, 1.5, "", b"\xff", tmp, tmp / "missing.npz", "/proc/no/such", text, empty,
                 f"{good}\0", ["a"], good, str(good)]:
        yield verdict("Equilibrium.load", ((str(path), "path"),), path, "any",
                      lambda p=path: Equilibrium.load(p), finite_equilibrium, missing)
    for param, tried in (("problem", [3, "lq-1d", problems.make("lq-1d", Nx=9, Nt=4)]),
                         ("backend", ["nope", 3, "jax", "numpy"])):
        for value in tried:
            yield verdict("Equilibrium.load", (param,), value, "any",
                          lambda p=param, v=value: Equilibrium.load(good, **{p: v}), finite_equilibrium)


def backend_rows() -> Iterator[Row]:
    for param, kind in {"name": "name|None", "device": "name|None", "dtype": "any"}.items():
        for value in [*values(), "cuda", "cuda:5", "tpu", "meta", "float16", "float32", np.float32,
                      torch.float64]:
            yield verdict("create_backend", (param if param != "name" else "backend",), value, kind,
                          lambda p=param, v=value: create_backend(**{p: v}))


# -- baselines and the leaderboard's plan ----------------------------------------------------------------
def baseline_rows() -> Iterator[Row]:
    from mfg_rl.benchmark.baselines import baselines

    eq = solve(tiny_problem(), progress=False)
    base = {"max_action": 1.0, "points": 3}
    for param, kind in {"max_action": "real", "points": "int|None"}.items():
        for value in values():
            yield verdict("baselines", (param,), value, kind,
                          lambda p=param, v=value: baselines(eq, **{**base, p: v}),
                          lambda b: all_finite(b.zero, b.constant, b.constant_exploitability))


def plan_rows() -> Iterator[Row]:
    from mfg_rl.agents.leaderboard import plan

    kinds = {"algos": "any", "envs": "any", "seeds": "int", "steps": "int|None", "num_envs": "int",
             "env_kwargs": "any", "overrides": "any"}
    for param, kind in kinds.items():
        tried = [*values(), ["ppo"], ("mfg_rl/LQ1D-v0",), ["nope"], []]
        for value in tried:
            yield verdict("leaderboard.plan", (param,), value, kind,
                          lambda p=param, v=value: plan(**{"algos": ["ppo"], "envs": ["mfg_rl/LQ1D-v0"],
                                                           "seeds": 1, p: v}))


# -- the suite ---------------------------------------------------------------------------------------------
def tiny_problem() -> MFGProblem:
    return problems.make("lq-1d", Nx=8, Nt=4)


FAMILIES: dict[str, Callable[[Path], Iterator[Row]]] = {
    **{f"make({name})": (lambda tmp, name=name: catalogue_rows(name)) for name in problems.names()},
    "core": lambda tmp: core_rows(),
    "hamiltonians": lambda tmp: hamiltonian_rows(),
    "solver objects": lambda tmp: solver_object_rows(),
    "solve": lambda tmp: solve_rows(tiny_problem()),
    "environments": lambda tmp: env_rows(),
    "env.step": lambda tmp: step_rows(),
    "Equilibrium.load": lambda tmp: load_rows(tmp, tiny_problem()),
    "create_backend": lambda tmp: backend_rows(),
    "baselines": lambda tmp: baseline_rows(),
    "leaderboard.plan": lambda tmp: plan_rows(),
}


def failures(rows: list[Row]) -> list[str]:
    """The cases that are neither OK nor CLEAR (nor a listed upstream failure), one line each."""
    return [f"{outcome} {target}({param}={value!r:.60}): {detail[:300]}"
            for target, param, value, outcome, detail in rows if outcome not in ("OK", "CLEAR", "UPSTREAM")]


@pytest.fixture(scope="module")
def workdir(isolated_cache: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh working directory (relative cache paths land there) and cache."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        yield tmp


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_input_is_accepted_finite_or_refused_clearly(family: str, workdir: Path) -> None:
    rows = list(FAMILIES[family](workdir))
    assert rows
    assert failures(rows) == []
    for target, param, _, outcome, _ in rows:
        assert outcome != "UPSTREAM" or (target, param) in UPSTREAM


def report() -> None:
    """Print the counts per verdict and every case that is not OK or CLEAR."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MFG_RL_CACHE"] = str(Path(tmp) / "cache")
        os.chdir(tmp)
        rows = [row for family in FAMILIES.values() for row in family(Path(tmp))]
    counts = Counter(row[3] for row in rows)
    print(f"{len(rows)} cases: " + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS))
    print("\n".join(ascii(line)[1:-1] for line in failures(rows)))
    for target, param, value, outcome, detail in rows:
        if outcome == "UPSTREAM" or (outcome == "CLEAR" and "-v" in sys.argv):
            print(ascii(f"{outcome} {target}({param}={value!r:.60}): {detail[:300]}")[1:-1])


if __name__ == "__main__":
    report()
