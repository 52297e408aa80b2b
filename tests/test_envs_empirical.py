"""The N-player (empirical) env on exit problems: the crowd shrinks to one agent, then none."""

from __future__ import annotations

import gymnasium
import pytest
import torch

import mfg_rl  # noqa: F401  (registers the env ids)
from mfg_rl.envs import equilibrium_policy

FAST = {"backend": "numpy", "coupling": "anderson"}

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.mark.parametrize(
    ("env_id", "size", "bandwidth"),
    [
        ("mfg_rl/CrowdExit1D-v0", dict(Nx=50, Nt=20), "scott"),      # rule, floored at one cell
        ("mfg_rl/CrowdExit1D-v0", dict(Nx=50, Nt=20), 0.03),         # a given sigma, used as is
        ("mfg_rl/Crowd2D-v0", dict(Nx=10, Ny=10, Nt=20), "silverman"),
    ],
)
@pytest.mark.parametrize("num_envs", [64, 1000])
def test_empirical_crowd_runs_to_the_horizon_while_everyone_exits(env_id, size, bandwidth, num_envs) -> None:
    """Under the equilibrium policy every agent leaves before T (seed 0); each step is finite and
    the crowd's density integrates to the fraction still inside (float32: to 1e-6), zero at the end."""
    envs = gymnasium.make_vec(env_id, num_envs=num_envs, device="cpu", population="empirical",
                              solve_options=FAST, bandwidth=bandwidth, **size)
    batch, game = envs.unwrapped.batch, envs.unwrapped.game
    policy = equilibrium_policy(envs)
    obs, _ = envs.reset(seed=0)
    inside = []
    for _ in range(game.Nt):
        obs, reward, terminated, truncated, info = envs.step(policy.act(obs))
        assert bool(torch.isfinite(obs).all()) and bool(torch.isfinite(reward).all())
        fraction = float(batch.inside.sum()) / num_envs
        inside.append(int(batch.inside.sum()))
        if not bool(terminated.all()):  # the last step resets the crowd for the next episode
            mass = float(batch.table[0, ..., 0].sum()) * game.grid.cell_volume
            assert mass == pytest.approx(fraction, abs=1e-6)
            assert float(batch.table[..., 0].min()) >= 0.0
    assert bool(terminated.all())
    final = info["final_obs"]
    assert bool(torch.isfinite(final).all()) and not bool(final[:, -1].any())  # empty crowd: m = 0
    assert inside[-2] == 0 and min(n for n in inside if n > 0) <= 2, inside  # inside[-1]: the next episode



def test_the_n_player_crowd_approaches_the_pde_crowd_under_refinement() -> None:
    """The agents' own crowd differs from the PDE's by the particle system's discretisation
    (Euler-Maruyama, a KDE one cell wide) and the PDE's (upwind, implicit Euler) and by 1/sqrt(N):
    refined together (h, dt halved, N x 4) the L1 distance at T/2 halves. Measured on CrowdExit1D:
    0.0142, 0.0069, 0.0034 at (200, 100, 1e5), (400, 200, 4e5), (800, 400, 1.6e6); at a fixed grid
    it stops near 0.014 for N >= 1e4."""
    import numpy as np

    distances = []
    for nx, nt, n in ((100, 50, 25_000), (200, 100, 100_000)):
        envs = gymnasium.make_vec("mfg_rl/CrowdExit1D-v0", num_envs=n, device="cpu", population="empirical",
                                  solve_options=FAST, Nx=nx, Nt=nt)
        batch, eq = envs.unwrapped.batch, envs.unwrapped.equilibrium
        policy = equilibrium_policy(envs)
        obs, _ = envs.reset(seed=0)
        for _ in range(nt // 2):
            obs, *_ = envs.step(policy.act(obs))
        crowd = batch.table[0, ..., 0].double().numpy()
        distances.append(float(np.abs(crowd - eq.m.numpy()[nt // 2]).sum() * eq.problem.grid.cell_volume))
    assert distances[1] < 0.7 * distances[0], distances
