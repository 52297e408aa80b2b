"""Problems and environments pickle (process-based vector envs): the copy behaves identically."""

from __future__ import annotations

import functools
import pickle

import gymnasium
import numpy as np
import pytest

from mfg_rl import problems
from mfg_rl.envs import MFGEnv, env_ids

FAST = {"backend": "numpy", "coupling": "anderson"}
SMALL = {"mfg_rl/Crowd2D-v0": dict(Nx=8, Ny=8, Nt=4)}

pytestmark = pytest.mark.usefixtures("isolated_cache")


def small(env_id: str) -> dict[str, int]:
    return SMALL.get(env_id, dict(Nx=30, Nt=8))


@pytest.mark.parametrize("name", problems.names())
def test_every_catalogue_problem_pickles_with_the_same_fingerprint_and_costs(name: str) -> None:
    problem = problems.make(name)
    copy = pickle.loads(pickle.dumps(problem))
    assert copy.fingerprint() == problem.fingerprint()
    m = problem.m0 * (1.0 + np.random.default_rng(0).random(problem.m0.shape))
    for cost in ("running_cost", "terminal_cost"):
        expected = problem.evaluate_cost(getattr(problem, cost), m)
        np.testing.assert_array_equal(copy.evaluate_cost(getattr(copy, cost), m), expected)


@pytest.mark.parametrize("env_id", env_ids())
def test_every_env_pickles_mid_episode_and_steps_identically(env_id: str) -> None:
    env = gymnasium.make(env_id, solve_options=FAST, **small(env_id))
    env.reset(seed=3)
    action = np.zeros(env.action_space.shape, dtype=np.float32)  # no drift: nobody leaves in 3 steps
    env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.unwrapped.equilibrium.problem.fingerprint() == env.unwrapped.equilibrium.problem.fingerprint()
    for _ in range(2):  # same state and same random stream
        obs, reward, terminated, truncated, _ = env.step(action)
        obs_c, reward_c, terminated_c, truncated_c, _ = copy.step(action)
        np.testing.assert_array_equal(obs_c, obs)
        assert (reward_c, terminated_c, truncated_c) == (reward, terminated, truncated)


@pytest.mark.parametrize("source", ["env id", "problem"])
def test_async_vector_env_runs_in_spawned_processes(source: str) -> None:
    problem = problems.make("crowd-exit-1d", Nx=30, Nt=8)
    MFGEnv(problem, solve_options=FAST)  # solve once here; the workers load the cache
    if source == "env id":
        envs = gymnasium.make_vec("mfg_rl/CrowdExit1D-v0", num_envs=2, vectorization_mode="async",
                                  vector_kwargs={"context": "spawn"}, solve_options=FAST, Nx=30, Nt=8)
    else:
        make = functools.partial(MFGEnv, problem, solve_options=FAST)
        envs = gymnasium.vector.AsyncVectorEnv([make, make], context="spawn")
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 3)
        for _ in range(3):
            obs, reward, terminated, truncated, _ = envs.step(np.zeros((2, 1), dtype=np.float32))
        assert obs.shape == (2, 3) and reward.shape == (2,) and np.all(np.isfinite(reward))
        np.testing.assert_allclose(obs[:, 0], 3 / 8, rtol=1e-6)
    finally:
        envs.close()
