"""Environment ids under the ``mfg_rl/`` namespace, registered when ``mfg_rl`` is imported."""

from __future__ import annotations

ENVIRONMENTS = {
    "LQ1D-v0": "lq-1d",
    "CrowdExit1D-v0": "crowd-exit-1d",
    "SantaFeBar-v0": "santa-fe-bar",
    "BeachBar1D-v0": "beach-bar-1d",
    "Crowd2D-v0": "crowd-2d",
}
"""Env id (without the namespace) -> catalogue problem."""

MAX_SPEED = {
    "LQ1D-v0": 4.0,
    "CrowdExit1D-v0": 5.0,
    "SantaFeBar-v0": 1.0,
    "BeachBar1D-v0": 5.0,
    "Crowd2D-v0": 5.0,
}
"""Env id -> the game's maximal speed per axis, ``|alpha_k| <= max_action``: an action ``a`` in
``[-1, 1]^d`` is the control ``alpha = max_action a``. Chosen at the default parameters as a
round number above the equilibrium speed of the whole crowd: ``|alpha*|`` reaches 3.75 (LQ1D,
at the box's edges), 2.5 (CrowdExit1D, 99.9% of the crowd; only stragglers at the horizon
run faster), 0.53 (SantaFeBar), 2.7 (BeachBar1D), 2.2 (Crowd2D, 99.9%). The same for every
grid; an env warns if it clips the equilibrium control of more than 0.1% of its crowd."""

NAMESPACE = "mfg_rl"


def env_ids() -> list[str]:
    """Full ids, e.g. ``"mfg_rl/LQ1D-v0"``."""
    return [f"{NAMESPACE}/{name}" for name in ENVIRONMENTS]


def register_envs() -> None:
    """Register every id with its single-agent and vector entry points (idempotent)."""
    import gymnasium

    for name, problem in ENVIRONMENTS.items():
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="mfg_rl.envs.single_env:MFGEnv",
            vector_entry_point="mfg_rl.envs.vector_env:MFGVectorEnv",
            kwargs={"problem": problem, "max_action": MAX_SPEED[name]},
        )
