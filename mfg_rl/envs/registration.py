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
            kwargs={"problem": problem},
        )
