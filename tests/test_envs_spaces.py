"""Normalised, honest spaces: gymnasium's and SB3's env checkers pass without a warning on every id,
actions in [-1, 1] scaled by the game's documented speed, finite observation bounds."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mfg_rl  # noqa: F401  (registers the ids)
from mfg_rl.envs import TorchEpisodeStatistics, env_ids
from mfg_rl.envs.registration import ENVIRONMENTS, MAX_SPEED

FAST = {"backend": "numpy", "coupling": "anderson"}
SMALL = {
    "mfg_rl/LQ1D-v0": dict(Nx=51, Nt=10),
    "mfg_rl/CrowdExit1D-v0": dict(Nx=50, Nt=20),
    "mfg_rl/SantaFeBar-v0": dict(Nx=50, Nt=20),
    "mfg_rl/BeachBar1D-v0": dict(Nx=50, Nt=20),
    "mfg_rl/Crowd2D-v0": dict(Nx=10, Ny=10, Nt=6),
}

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.mark.parametrize("env_id", env_ids())
def test_gymnasium_and_sb3_checkers_pass_without_a_warning(env_id: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(env_id, solve_options=FAST, **SMALL[env_id])
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    space = env.action_space
    assert space.low.tolist() == [-1.0] * space.shape[0] and space.high.tolist() == [1.0] * space.shape[0]
    assert np.all(np.isfinite(env.observation_space.low)) and np.all(np.isfinite(env.observation_space.high))
    game = env.unwrapped.game
    assert game.max_action == MAX_SPEED[env_id.split("/")[1]] == env.unwrapped.action_scale
    assert env.observation_space.high[-1] == np.float32(1.0 / game.grid.cell_volume)


def test_every_registered_game_documents_its_speed() -> None:
    assert set(MAX_SPEED) == set(ENVIRONMENTS) and all(v > 0 for v in MAX_SPEED.values())


def test_random_actions_no_longer_leave_the_exit_game_at_once() -> None:
    """Uniform random actions in CrowdExit1D-v0 (default size): episodes of 3.1 steps on average
    with the former bound 62.5, 86 of the 100 steps with the documented speed 5."""
    envs = TorchEpisodeStatistics(gymnasium.make_vec("mfg_rl/CrowdExit1D-v0", num_envs=256, device="cpu",
                                                     solve_options=FAST))
    envs.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        envs.step(2.0 * torch.rand(256, 1, generator=generator) - 1.0)
    lengths = np.array(envs.length_queue)
    assert len(lengths) == 100 and lengths.mean() > 50, lengths.mean()


def test_the_density_stays_within_its_bound_in_the_n_player_game() -> None:
    """``m <= 1/h^d``: everyone steered to one point, a KDE narrower than a cell, the crowd's
    density reaches 98% of the bound and stays within it."""
    envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=2000, device="cpu", solve_options=FAST,
                              population="empirical", Nx=51, Nt=10, sigma=0.01, bandwidth=1e-3)
    space = envs.single_observation_space
    obs, _ = envs.reset(seed=0)
    peak = 0.0
    for _ in range(10):
        obs, *_ = envs.step(-2.5 * obs[:, 1:2])  # alpha = -x / dt: to the origin in one step
        assert all(space.contains(row) for row in obs.numpy())
        peak = max(peak, float(obs[:, -1].max()))
    assert peak > 0.95 * space.high[-1]


def test_a_crowd_heavier_than_one_is_refused() -> None:
    envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=2, device="cpu", solve_options=FAST, Nx=51, Nt=10)
    m = envs.unwrapped.equilibrium.m.numpy()
    with pytest.raises(ValueError, match="mass"):
        envs.unwrapped.set_crowd(2.0 * m)


def test_a_bound_that_clips_the_crowd_warns() -> None:
    with pytest.warns(UserWarning, match="clips the equilibrium control"):
        gymnasium.make("mfg_rl/CrowdExit1D-v0", solve_options=FAST, max_action=0.5,
                       **SMALL["mfg_rl/CrowdExit1D-v0"])


def test_catalogue_names_get_twice_the_crowd_speed() -> None:
    from mfg_rl.envs import MFGVectorEnv

    envs = MFGVectorEnv("crowd-exit-1d", num_envs=2, device="cpu", solve_options=FAST, Nx=50, Nt=20)
    game = envs.game
    assert game.max_action == pytest.approx(max(1.0, 2.0 * game.crowd_speed(0.999)))
    assert 1.0 < game.max_action < 10.0  # the exit cell's artefact (~ 2 u / h) does not set it
