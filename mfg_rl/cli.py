"""The ``mfg-rl`` command: one subcommand per job, each registered by a small function.

Example:
    $ mfg-rl --version
    $ mfg-rl backends          # installed backends, their devices, and the default choice
    $ mfg-rl train mfg_rl/LQ1D-v0          # PPO, ~2 min on a laptop CPU, TensorBoard logs in runs/
    $ mfg-rl bench runs/LQ1D-v0-ppo-best-response/version_0/checkpoints/last.ckpt

A subcommand is added by a function ``_add_<name>(subparsers)`` that builds its parser
and sets ``run=`` to a function ``(args) -> exit code``; it is listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mfg_rl._version import __version__

# -- backends ---------------------------------------------------------------------------


def _add_backends(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backends",
        help="list installed array backends, their devices, and the default choice",
        description="List the installed backends (torch > jax > numpy), the devices each can "
        "use, and what create_backend() picks by default, and why.",
    )
    parser.set_defaults(run=_run_backends)


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
    return 0


# -- list ---------------------------------------------------------------------------------


def _add_list(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list", help="list the catalogue's problems and their parameters",
        description="List the named problems of mfg_rl.problems with their default parameters.",
    )
    parser.set_defaults(run=_run_list)


def _run_list(args: argparse.Namespace) -> int:
    from mfg_rl import problems

    for name in problems.names():
        params = ", ".join(f"{k}={v}" for k, v in problems.parameters(name).items())
        print(f"{name}\n    {params}")
    return 0


# -- solve --------------------------------------------------------------------------------


def _parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` read as int, float, bool or string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes key=value, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value


def _add_solve(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "solve", help="solve a catalogue problem to its Nash equilibrium",
        description="Solve NAME (see `mfg-rl list`), print a summary, optionally plot and save.",
    )
    parser.add_argument("name", help="problem name, e.g. lq-1d")
    parser.add_argument("--param", "-p", action="append", type=_parse_param, default=[],
                        metavar="KEY=VALUE", help="problem parameter (repeatable), e.g. Nx=401")
    parser.add_argument("--method", default="sequential", help="trajectory strategy")
    parser.add_argument("--coupling", default="fixed_point", help="fixed_point or fictitious_play")
    parser.add_argument("--backend", default=None, help="torch, jax or numpy (default: best)")
    parser.add_argument("--tol", type=float, default=1e-8, help="coupled residual tolerance")
    parser.add_argument("--max-iter", type=int, default=500, help="coupling iterations")
    parser.add_argument("--plot", metavar="FILE.png", help="write heat maps / snapshots of u and m")
    parser.add_argument("--save", metavar="FILE.npz", help="write the equilibrium (atomic)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError, problems, solve

    try:
        problem = problems.make(args.name, **dict(args.param))
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


def _add_train(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train a PPO/A2C agent on an environment and score it against the equilibrium",
        description="Train on ENV_ID (e.g. mfg_rl/LQ1D-v0), log to TensorBoard, checkpoint, and end "
        "with exploitability before/after, value gap, density L1 and the paths of logs and report.",
    )
    parser.add_argument("env_id", help="registered id, e.g. mfg_rl/LQ1D-v0 (see mfg_rl.envs.env_ids())")
    parser.add_argument("--algo", choices=("ppo", "a2c"), default="ppo")
    parser.add_argument("--regime", choices=("best-response", "fictitious-play"), default="best-response")
    parser.add_argument("--steps", type=int, default=None, help="env-step budget (default: per env, ~2 min)")
    parser.add_argument("--num-envs", type=int, default=128, help="agents per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs", help="TensorBoard root directory")
    parser.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:1, mps (default: best)")
    parser.add_argument("--devices", default="1",
                        help="Lightning devices (processes), e.g. 2 with --strategy ddp")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--ckpt-path", default=None, help="resume this checkpoint")
    parser.add_argument("--env-param", "-p", action="append", type=_parse_param, default=[],
                        metavar="KEY=VALUE", help="environment/problem parameter (repeatable), e.g. Nx=51")
    parser.add_argument("--hparam", action="append", type=_parse_param, default=[], metavar="KEY=VALUE",
                        help="hyperparameter override (repeatable), e.g. learning_rate=3e-4")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from mfg_rl import SolverError
    from mfg_rl.agents import train

    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    try:
        result = train(args.env_id, algo=args.algo, regime=args.regime, steps=args.steps,
                       num_envs=args.num_envs, seed=args.seed, logdir=args.logdir, device=args.device,
                       progress=not args.quiet, ckpt_path=args.ckpt_path, env_kwargs=dict(args.env_param),
                       devices=devices, strategy=args.strategy, num_nodes=args.num_nodes, **dict(args.hparam))
    except (TypeError, ValueError, ImportError, SolverError, FileNotFoundError) as exc:
        print(f"mfg-rl train: {exc}", file=sys.stderr)
        return 1
    if result.after is not None:
        print(result.summary())
    return 0


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

    try:
        agent, score = bench(args.checkpoint, device=args.device)
    except (TypeError, ValueError, ImportError, SolverError, FileNotFoundError, KeyError) as exc:
        print(f"mfg-rl bench: {exc}", file=sys.stderr)
        return 1
    print(f"{agent.env_id}  {agent.algo}  {agent.regime}  {agent.env_steps:,} env steps  "
          f"{agent.iterations} iterations")
    for key, value in score.items():
        initial = "" if not agent.initial else f"   (initial policy {agent.initial[key]:>11.4e})"
        print(f"  {key.replace('_', ' '):<20} {value:>11.4e}{initial}")
    return 0


COMMANDS: tuple[Callable[[Any], None], ...] = (_add_backends, _add_list, _add_solve, _add_train, _add_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``mfg-rl`` argument parser with every subcommand in ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="mfg-rl",
        description="Mean-field games solved to their Nash equilibrium, as RL environments.",
    )
    parser.add_argument("--version", action="version", version=f"mfg-rl {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
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
    return int(args.run(args))
