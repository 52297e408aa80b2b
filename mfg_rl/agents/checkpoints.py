"""Re-score a saved agent: load a training checkpoint as a policy, without Lightning."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfg_rl.agents.algorithms import get as get_algorithm
from mfg_rl.agents.config import hyperparameters
from mfg_rl.agents.networks import ObservationPolicy
from mfg_rl.agents.resume import RUN_FIELDS, read_checkpoint


@dataclass
class LoadedAgent:
    """A trained agent back from a checkpoint: its policy, network, env and run counters."""

    policy: ObservationPolicy
    model: Any
    env: Any
    env_id: str
    algo: str
    regime: str
    env_steps: int
    iterations: int
    initial: dict[str, float] | None


def make_env(env_id: str, num_envs: int, device: Any, env_kwargs: dict[str, Any],
             normalize_actions: bool = False) -> Any:
    """``gymnasium.make_vec(env_id, num_envs, device, normalize_actions, **env_kwargs)``.

    PPO and A2C act in the game's control units (the raw ``alpha``, bounded by the env's
    ``max_action``, ``normalize_actions=False``): their defaults (``log_std_init``) are set for
    that scale. SAC's tanh-squashed actions are the env's normalised actions in ``[-1, 1]^d``
    (``normalize_actions=True``): its target entropy ``-d`` is set for that box, as in SB3,
    which rescales every box to it. Policies are scored in the game's units, ``policy(t, x) -> alpha``.
    """
    import gymnasium

    import mfg_rl  # noqa: F401  (registers the ids)

    if "normalize_actions" in env_kwargs:
        raise ValueError("env_kwargs must not set normalize_actions: each algorithm sets its own action "
                         "convention (ppo/a2c the raw control alpha, sac actions in [-1, 1]); remove it")
    return gymnasium.make_vec(env_id, num_envs=num_envs, device=device, normalize_actions=normalize_actions,
                              **env_kwargs)


def load_agent(checkpoint: str | Path, device: Any = "cpu") -> LoadedAgent:
    """The agent of a ``train`` checkpoint, with the crowd it was trained against.

    Example:
        >>> agent = load_agent("runs/LQ1D-v0-ppo-best-response/version_0/checkpoints/last.ckpt")
        ... # doctest: +SKIP
        >>> alpha = agent.policy(t, x)  # doctest: +SKIP
    """
    state = read_checkpoint(checkpoint)  # on the CPU: the crowd goes through numpy, the model moves below
    hp = state["hyper_parameters"]
    run = state["mfg_rl"]
    params = hyperparameters(hp["algo"], {k: v for k, v in hp.items() if k not in RUN_FIELDS})
    entry = get_algorithm(hp["algo"])
    env = make_env(hp["env_id"], 1, device, dict(hp.get("env_kwargs") or {}), entry.normalize_actions)
    env.set_crowd(run["crowd"].double().numpy())
    model = entry.build_networks(params, *hp["spaces"])
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    model.to(device).eval()
    return LoadedAgent(policy=ObservationPolicy(model, env.game), model=model, env=env, env_id=hp["env_id"],
                       algo=hp["algo"], regime=hp["regime"], env_steps=int(run["env_steps"]),
                       iterations=int(run["iteration"]), initial=run.get("initial"))


def bench(checkpoint: str | Path, device: Any = "cpu") -> tuple[LoadedAgent, Any]:
    """``(agent, score)``: the checkpoint's policy scored by ``mfg_rl.benchmark.evaluate``."""
    from mfg_rl.benchmark import evaluate

    agent = load_agent(checkpoint, device)
    return agent, evaluate(agent.policy, agent.env.equilibrium, backend="numpy", device=device)
