"""The run's hyperparameters in TensorBoard's HPARAMS tab, with its final scores as the metrics.

A run directory is one session: the experiment (hyperparameter names and types, metric tags)
and the session's values are written when the fit starts, its end status when it ends. The
tab shows as a metric's value the last scalar with that tag in the run, so the metrics are
the final ``benchmark/*`` scores and the last mean episodic return, with no extra scalars.
"""

from __future__ import annotations

import dataclasses
from typing import Any

METRICS = ("benchmark/exploitability", "benchmark/value_gap", "benchmark/density_l1",
           "charts/episodic_return")
"""Scalar tags shown as metrics in the HPARAMS tab."""


def run_hparams(module: Any) -> dict[str, int | float | str]:
    """What defines ``module``'s run: env id, algo, regime, agents, seed, budget, world size, every
    ``Hyperparameters`` field (``n_steps`` resolved to the rollout length), the problem's resolved
    parameters as ``problem/<name>`` and the other env keyword arguments as ``env/<name>``.

    The tab takes its columns and their types from one run, so a run's names and types do not
    depend on what was passed: ``target_kl`` (and SAC's ``max_grad_norm``, ``target_entropy``) is a
    string (``"None"``: never stop / none / ``-d``), booleans are
    ``"True"``/``"False"`` and other non-numbers their ``str``.
    """
    params = dataclasses.asdict(module.params)
    params["n_steps"] = module.params.n_steps or module.game.Nt
    for name in ("target_kl", "max_grad_norm", "target_entropy"):  # None or a number: one type, str
        if name in params:
            params[name] = str(params[name])
    problem = module.game.eq.problem.params
    values = {"env_id": module.env_id, "algo": module.algo, "regime": module.regime,
              "num_envs": module.num_envs, "seed": module.seed, "iterations": module.iterations,
              "world_size": module.trainer.world_size, **params}
    values.update({f"problem/{name}": value for name, value in sorted(problem.items())})
    values.update({f"env/{name}": value for name, value in sorted(module.env_kwargs.items())
                   if name not in problem})
    return {name: _tab_value(value) for name, value in values.items()}


def _tab_value(value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return str(value)
    return value


def start_session(writer: Any, hparams: dict[str, int | float | str]) -> None:
    """Write the experiment (``hparams``' names, ``METRICS``) and the session's values to ``writer``'s run."""
    from torch.utils.tensorboard.summary import hparams as summaries

    experiment, start, _ = summaries(hparams, dict.fromkeys(METRICS, 0.0))  # metric values unused: tags only
    file_writer = writer._get_file_writer()  # the run's own event file, as Lightning's logger writes it
    file_writer.add_summary(experiment)
    file_writer.add_summary(start)


def end_session(writer: Any) -> None:
    """Mark the run's session finished (``STATUS_SUCCESS``)."""
    from torch.utils.tensorboard.summary import hparams as summaries

    *_, end = summaries({}, {})
    writer._get_file_writer().add_summary(end)
