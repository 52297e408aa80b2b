"""The ``mfg-rl`` command: one subcommand per job, each registered by a small function.

Example:
    $ mfg-rl --version
    $ mfg-rl backends          # installed backends, their devices, and the default choice
    $ mfg-rl list              # the problems, their parameters and env ids
    $ mfg-rl train mfg_rl/LQ1D-v0          # PPO, ~2 min on a laptop CPU, TensorBoard logs in runs/
    $ mfg-rl train lq-1d -p Nx=51          # the same game by its problem name, another grid
    $ mfg-rl bench runs/LQ1D-v0-ppo-best-response/version_0/checkpoints/last.ckpt
    $ mfg-rl leaderboard --algos ppo,sac --envs lq-1d --seeds 4 --jobs 2   # table in leaderboard/

A subcommand is added by a function ``_add_<name>(subparsers)`` that builds its parser
and sets ``run=`` to a function ``(args) -> exit code``; it is listed in ``COMMANDS``.
Exit codes: 0 done; 1 the library refused the request or the work failed; 2 the command
line cannot be used as given. Every error is one line on stderr that says the fix.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from mfg_rl import cli_checks
from mfg_rl._version import __version__
from mfg_rl.cli_checks import UsageError

# -- backends ---------------------------------------------------------------------------


def _add_backends(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backends",
        help="list installed array backends, their devices, and the default choice",
        description="List the installed backends (torch > jax > numpy), the devices each can "
        "use, and what create_backend() picks by default, and why.",
    )
    parser.set_defaults(run=_run_backends)


def _add_calibrate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="measure where solves run fastest on this machine (numpy vs torch per device)",
        description="Time numpy and torch on each device over a ladder of sizes (1D and 2D grids,\n"
        "particles) and store the work from which each device is faster; solve(backend=None)\n"
        "then places a solve on that device from that size on (mfg_rl.solvers.placement).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", nargs="+", default=None, metavar="DEVICE",
                        help="torch devices to time, e.g. cuda cpu (default: every device of this machine)")
    parser.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                        help="fdm-1d, fdm-2d, particles (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="timed solves per size (default: %(default)s)")
    parser.set_defaults(run=_run_calibrate)


def _run_calibrate(args: argparse.Namespace) -> int:
    from mfg_rl.solvers.calibration import calibrate
    from mfg_rl.solvers.placement import KINDS

    devices = None if args.devices is None else [cli_checks.device(d, "--devices") for d in args.devices]
    try:
        calibrate(devices, kinds=args.kinds or KINDS, repeats=args.repeats)
    except (ValueError, ImportError) as exc:
        print(f"mfg-rl calibrate: {exc}", file=sys.stderr)
        return 1
    print(f"solve(backend=None) now places: {_placement_summary()}")
    return 0


@contextmanager
def _log_messages(logger_name: str) -> Iterator[list[str]]:
    """Collect the INFO messages of ``logger_name`` while the block runs."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    messages: list[str] = []
    logger = logging.getLogger(logger_name)
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run_backends(args: argparse.Namespace) -> int:
    from mfg_rl.backends import available_backends, create_backend

    rows = [("backend", "devices", "default device", "dtype")]
    for name, devices in available_backends().items():
        try:
            backend = create_backend(name)
        except (ImportError, RuntimeError, ValueError) as exc:
            rows.append((name, ", ".join(devices), f"unusable: {exc}", "-"))
            continue
        rows.append((name, ", ".join(devices), backend.device, backend.dtype_name))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]))

    with _log_messages("mfg_rl.backends") as messages:
        try:
            create_backend()
        except (ImportError, ValueError) as exc:
            print(f"\nno default backend: {exc}", file=sys.stderr)
            return 1
    print(f"\ncreate_backend() picks {messages[-1]}")
    print("choose with create_backend(name, device=..., dtype=...) or MFG_RL_BACKEND=<name>")
    print(f"\nsolve(backend=None) places a solve by its size: {_placement_summary()}")
    return 0


def _placement_summary() -> str:
    """What this machine's placement calibration says (``mfg_rl.solvers.placement``)."""
    from mfg_rl.solvers.placement import calibration_path, load_calibration

    calibration = load_calibration()
    if not calibration:
        return "on numpy (no calibration here; `mfg-rl calibrate` measures where torch is faster)"
    lines = [f"calibrated in {calibration_path()}"]
    for key, entry in sorted(calibration.items()):
        shown = ", ".join(f"{kind} {'never' if w is None else f'from work {w:.2e}'}"
                          for kind, w in entry.get("crossover", {}).items())
        lines.append(f"  torch on {key} ({entry.get('date', '?')}): {shown}; numpy below")
    return "\n".join(lines)


# -- list ---------------------------------------------------------------------------------


def _add_list(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list", help="list the catalogue's problems, their parameters and env ids",
        description="List the named problems of mfg_rl.problems with their default parameters and "
        "the env id of each problem that has an environment (train takes either name).",
    )
    parser.set_defaults(run=_run_list)


def _run_list(args: argparse.Namespace) -> int:
    from mfg_rl import problems

    envs = cli_checks.env_of_problem()
    width = max(map(len, problems.names()))
    for name in problems.names():
        params = ", ".join(f"{k}={v}" for k, v in problems.parameters(name).items())
        env = f"env {envs[name]}" if name in envs else "no env (solve only)"
        print(f"{name.ljust(width)}  {env}\n    {params}")
    print("\nsolve: mfg-rl solve PROBLEM -p KEY=VALUE;  train: mfg-rl train PROBLEM|ENV_ID -p KEY=VALUE")
    return 0


# -- solve --------------------------------------------------------------------------------


def _parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` read as int, float, bool, None, a tuple (``v1,v2``) of those, or string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE, got {text!r}")
    if "," in value:
        return key, tuple(_parse_value(v.strip()) for v in value.split(","))
    return key, _parse_value(value)


def _parse_value(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None if value.lower() == "none" else value


def _add_solve(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "solve", help="solve a catalogue problem to its Nash equilibrium",
        description="Solve NAME (see `mfg-rl list`), print a summary, optionally plot and save.",
    )
    parser.add_argument("name", help="problem name, e.g. lq-1d (or its env id)")
    parser.add_argument("--param", "-p", action="append", type=_parse_param, default=[],
                        metavar="KEY=VALUE", help="problem parameter (repeatable), e.g. Nx=401")
    parser.add_argument("--method", default="sequential",
                        help="sequential, global, global-krylov, jax-scan, parareal or amr (Nx = 2^L)")
    parser.add_argument("--coupling", default="auto",
                        help="auto (Anderson, Newton when it stalls), anderson, newton, fixed_point or "
                             "fictitious_play (O(1/k): pass --tol >= 1/--max-iter)")
    parser.add_argument("--backend", default=None, help="torch, jax or numpy (default: numpy, see solve())")
    parser.add_argument("--tol", type=float, default=1e-8, help="coupled residual tolerance")
    parser.add_argument("--max-iter", type=int, default=500, help="coupling iterations")
    parser.add_argument("--plot", metavar="FILE.png", help="write heat maps / snapshots of u and m")
    parser.add_argument("--save", metavar="FILE.npz", help="write the equilibrium (atomic)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError, problems, solve

    name = cli_checks.problem_name(args.name)
    cli_checks.writable_file(args.plot, "--plot")
    cli_checks.writable_file(args.save, "--save")
    try:
        problem = problems.make(name, **dict(args.param))
        eq = solve(problem, method=args.method, coupling=args.coupling, backend=args.backend,
                   tol=args.tol, max_iter=args.max_iter, progress=not args.quiet)
    except (TypeError, ValueError, ImportError, SolverError) as exc:
        print(f"mfg-rl solve: {exc}", file=sys.stderr)
        return 1
    shape = "x".join(str(n) for n in problem.grid.shape)
    print(f"{problem.name}: grid {shape}, Nt={problem.time.Nt}, T={problem.time.T}")
    print(eq.diagnostics.summary())
    if args.plot:
        from mfg_rl.plotting import plot_equilibrium

        print(f"plot: {plot_equilibrium(eq, args.plot)}")
    if args.save:
        print(f"saved: {eq.save(args.save)}")
    return 0


# -- train, bench ---------------------------------------------------------------------------


def _hyperparameter_table() -> str:
    """``train --help``'s epilog: every algorithm of the registry with its hyperparameters; an
    algorithm sharing an earlier one's dataclass lists only the defaults where it differs."""
    import dataclasses

    from mfg_rl.agents.algorithms import REGISTRY

    def shown(value: Any) -> Any:
        return ",".join(map(str, value)) if isinstance(value, tuple) else value

    lines = ["hyperparameters (--hparam KEY=VALUE, repeatable), per --algo:"]
    first: dict[type, Any] = {}
    for name, entry in REGISTRY.items():
        params = entry.default_parameters()
        kind = entry.hyperparameters
        lines.append(f"{name}: {entry.summary} (mfg_rl.agents.config.{kind.__name__})")
        base = first.setdefault(kind, params)
        for field in dataclasses.fields(params):
            value = getattr(params, field.name)
            if base is params or value != getattr(base, field.name):
                lines.append(f"  {field.name}={shown(value)}")
    return "\n".join(lines)


def _add_train(subparsers: Any) -> None:
    from mfg_rl.agents.algorithms import names as algorithm_names
    from mfg_rl.agents.regimes import REGIMES

    parser = subparsers.add_parser(
        "train", help="train an agent (--algo ppo, sac, dafp, ...) on an env, scored against the equilibrium",
        description="Train on ENV (an env id such as mfg_rl/LQ1D-v0, or its problem name such as\n"
        "lq-1d; see `mfg-rl list`), log to TensorBoard, checkpoint, and end with exploitability\n"
        "before/after, value gap, density L1 and the paths of logs and report.",
        epilog=_hyperparameter_table(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("env", metavar="ENV", help="env id (mfg_rl/LQ1D-v0) or problem name (lq-1d)")
    parser.add_argument("--algo", choices=algorithm_names(), default="ppo",
                        help="learning algorithm (default: %(default)s)")
    parser.add_argument("--regime", choices=REGIMES, default=None,
                        help="crowd frozen at the equilibrium, or the average of the learned crowds "
                        "(default: the algorithm's own: best-response for ppo, a2c, sac; fictitious-play "
                        "for dafp, omd, dafp-q, fp-q)")
    parser.add_argument("--steps", type=int, default=None, help="env-step budget (default: per env, ~2 min)")
    parser.add_argument("--num-envs", type=int, default=128, help="agents per process (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, envs and sampling (default: %(default)s)")
    parser.add_argument("--logdir", default="runs", help="TensorBoard root directory (default: %(default)s)")
    parser.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:1, mps (default: best)")
    parser.add_argument("--devices", default="1",
                        help="Lightning devices (processes), e.g. 2 with --strategy ddp")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--ckpt-path", default=None,
                        help="resume this checkpoint (same env, problem parameters, algo, regime, num-envs)")
    parser.add_argument("--env-param", "-p", action="append", type=_parse_param, default=[],
                        metavar="KEY=VALUE", help="environment/problem parameter (repeatable), e.g. Nx=51")
    parser.add_argument("--hparam", action="append", type=_parse_param, default=[], metavar="KEY=VALUE",
                        help="hyperparameter override (repeatable), e.g. learning_rate=3e-4; listed below")
    parser.add_argument("--quiet", action="store_true", help="no progress messages or bars")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError
    from mfg_rl.agents import train
    from mfg_rl.agents.algorithms import get as get_algorithm
    from mfg_rl.agents.config import hyperparameters
    from mfg_rl.agents.resume import RunSettings

    regime = args.regime or get_algorithm(args.algo).regimes[0]
    env_id = cli_checks.env_id(args.env)
    device = cli_checks.device(args.device)
    cli_checks.writable_folder(args.logdir, "--logdir")
    env_kwargs, overrides = dict(args.env_param), dict(args.hparam)
    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    try:
        if args.ckpt_path is not None:
            hidden = hyperparameters(args.algo, overrides).hidden
            cli_checks.resume(args.ckpt_path, RunSettings(env_id, env_kwargs, args.algo, regime,
                                                          args.num_envs, hidden), "train")
        _prepare_equilibrium(env_id, env_kwargs, args.quiet)
        if not args.quiet:
            print(f"mfg-rl train: {args.algo} on {env_id} with {args.num_envs} agents; starting Lightning "
                  "and scoring the initial policy", file=sys.stderr)
        result = train(env_id, algo=args.algo, regime=regime, steps=args.steps,
                       num_envs=args.num_envs, seed=args.seed, logdir=args.logdir, device=device,
                       progress=not args.quiet, ckpt_path=args.ckpt_path, env_kwargs=env_kwargs,
                       devices=devices, strategy=args.strategy, num_nodes=args.num_nodes, **overrides)
    except (TypeError, ValueError, ImportError, SolverError, FileNotFoundError) as exc:
        print(f"mfg-rl train: {exc}", file=sys.stderr)
        return 1
    if result.after is not None:
        print(result.summary())
    return 0


def _prepare_equilibrium(env_id: str, env_kwargs: dict[str, Any], quiet: bool) -> None:
    """Make ``env_id`` once so that its equilibrium is in the cache before training; a solve that
    is needed (the first use of these parameters) is announced, with a progress bar."""
    import gymnasium
    from tqdm.auto import tqdm

    from mfg_rl.paths import default_cache_dir
    from mfg_rl.solvers.callbacks import Callback

    problem = cli_checks.problem_name(env_id)
    params = "".join(f" {k}={v}" for k, v in env_kwargs.items())

    class Announce(Callback):
        def on_start(self, max_iter: int, tol: float) -> None:
            if not quiet:  # through tqdm: the solve's progress bar is already on the line
                tqdm.write(f"mfg-rl train: solving the equilibrium of {problem}{params} (first use; cached "
                           f"after in {default_cache_dir()})", file=sys.stderr)

    options = {"progress": not quiet, "callbacks": [Announce()]}
    gymnasium.make_vec(env_id, num_envs=1, device="cpu", **{**env_kwargs, "solve_options": options}).close()


def _add_bench(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="re-score a saved agent against the equilibrium",
        description="Load CHECKPOINT (written by `mfg-rl train`) and print its exploitability, value gap "
        "and density distance to the equilibrium.",
    )
    parser.add_argument("checkpoint", help="path of a .ckpt file")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError
    from mfg_rl.agents import bench

    cli_checks.checkpoint(args.checkpoint)
    device = cli_checks.device(args.device)
    try:
        agent, score = bench(args.checkpoint, device=device)
    except (TypeError, ValueError, ImportError, SolverError, FileNotFoundError, KeyError) as exc:
        print(f"mfg-rl bench: {exc}", file=sys.stderr)
        return 1
    print(f"{agent.env_id}  {agent.algo}  {agent.regime}  {agent.env_steps:,} env steps  "
          f"{agent.iterations} iterations")
    for key, value in score.items():
        initial = "" if not agent.initial else f"   (initial policy {agent.initial[key]:>11.4e})"
        print(f"  {key.replace('_', ' '):<20} {value:>11.4e}{initial}")
    return 0


# -- leaderboard ----------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_leaderboard(subparsers: Any) -> None:
    from mfg_rl.agents.leaderboard import DEFAULT_SEEDS

    parser = subparsers.add_parser(
        "leaderboard", help="train algorithms x envs x seeds under stated budgets, tabulate exploitability",
        description="Run every algorithm on every env with seeds 0..SEEDS-1, each run in its own "
        "process under its budget (mfg_rl.agents.leaderboard.BUDGETS, about 2 minutes per run on a "
        "2-core CPU), and write into OUT: runs/<key>.json per run, runs.json, runs.csv, baselines.json, "
        "leaderboard.md (median and range of the final exploitability, relative to the better of the "
        "zero control and the best constant drift) and exploitability.png. Runs done in OUT are kept.",
    )
    parser.add_argument("--algos", type=_names, default=None, metavar="A,B",
                        help="algorithms, comma-separated (default: every registered one)")
    parser.add_argument("--envs", type=_names, default=None, metavar="ENV,ENV",
                        help="env ids or problem names, comma-separated (default: every env)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="seeds per (algo, env), 0..SEEDS-1 (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="env steps of every run (default: the table)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one process each (default: 1)")
    parser.add_argument("--out", default="leaderboard", help="output folder (default: %(default)s)")
    parser.add_argument("--num-envs", type=int, default=128, help="agents per run (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device of every run (default: %(default)s)")
    parser.add_argument("--env-param", "-p", action="append", type=_parse_param, default=[],
                        metavar="KEY=VALUE", help="environment/problem parameter of every env (repeatable)")
    parser.add_argument("--hparam", action="append", type=_parse_param, default=[], metavar="KEY=VALUE",
                        help="hyperparameter override of every run (repeatable; see `mfg-rl train --help`)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=_run_leaderboard)


def _run_leaderboard(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError
    from mfg_rl.agents.leaderboard import leaderboard, plan

    envs = None if args.envs is None else [cli_checks.env_id(name) for name in args.envs]
    device = cli_checks.device(args.device)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    try:
        plan(args.algos, envs, args.seeds, args.steps, num_envs=args.num_envs)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    cli_checks.writable_folder(args.out, "--out")
    try:
        board = leaderboard(args.algos, envs, args.seeds, args.steps, jobs=args.jobs, out=args.out,
                            num_envs=args.num_envs, env_kwargs=dict(args.env_param),
                            overrides=dict(args.hparam), device=device,
                            progress=None if args.quiet else lambda line: print(line, file=sys.stderr))
    except (TypeError, ValueError, ImportError, SolverError) as exc:
        print(f"mfg-rl leaderboard: {exc}", file=sys.stderr)
        return 1
    print(board.table)
    print(f"\nfiles: {board.out}/leaderboard.md, runs.json, runs.csv, exploitability.png")
    return 0


COMMANDS: tuple[Callable[[Any], None], ...] = (_add_backends, _add_calibrate, _add_list, _add_solve,
                                               _add_train, _add_bench, _add_leaderboard)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line that points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``mfg-rl`` argument parser with every subcommand in ``COMMANDS``."""
    parser = Parser(
        prog="mfg-rl",
        description="Mean-field games solved to their Nash equilibrium, as RL environments.",
    )
    parser.add_argument("--version", action="version", version=f"mfg-rl {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mfg-rl`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else 1
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # a reader that went away (mfg-rl list | head) shows here, not at exit
        return code
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stop quietly; stdout goes nowhere so that the exit flush cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
