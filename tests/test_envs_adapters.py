"""Adapters, not forks: the natively batched env under SB3 (``SB3VecEnv``) and under gymnasium's
vector wrappers (``autoreset_mode=NEXT_STEP``, ``TorchToNumpy``), each run with the real library."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as vw

import mfg_rl  # noqa: F401  (registers the ids)
from mfg_rl.benchmark import evaluate
from mfg_rl.envs import SB3VecEnv, TorchEpisodeStatistics, TorchToNumpy, equilibrium_policy, observed_policy

FAST = {"backend": "numpy", "coupling": "anderson"}
LQ = {"Nx": 51, "Nt": 10}

pytestmark = pytest.mark.usefixtures("isolated_cache")


def native(num_envs: int, env_id: str = "mfg_rl/LQ1D-v0", **kwargs: object) -> gymnasium.vector.VectorEnv:
    size = LQ if env_id == "mfg_rl/LQ1D-v0" else {"Nx": 50, "Nt": 20}
    return gymnasium.make_vec(env_id, num_envs=num_envs, device="cpu", solve_options=FAST,
                              **{**size, **kwargs})


# -- SB3 ---------------------------------------------------------------------------------------
def test_sb3_ppo_learns_on_the_batched_env() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    venv = VecNormalize(VecMonitor(SB3VecEnv(native(16))), gamma=1.0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=2, gamma=1.0, seed=0)
    model.learn(512)
    assert model.num_timesteps == 512
    assert len(model.ep_info_buffer) >= 16 and all(info["l"] == 10 for info in model.ep_info_buffer)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (16, 1) and np.all(np.abs(actions) <= 1.0)


def test_sb3_adapter_reports_finished_agents_as_sb3_does() -> None:
    venv = SB3VecEnv(native(8, max_episode_steps=4))
    venv.seed(3)
    obs = venv.reset()
    assert isinstance(obs, np.ndarray) and obs.shape == (8, 3) and obs.dtype == np.float32
    for _ in range(4):
        obs, rewards, dones, infos = venv.step(np.zeros((8, 1), dtype=np.float32))
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 8
    assert dones.all() and np.all(obs[:, 0] == 0.0)  # reset in the same step
    for info in infos:
        assert info["TimeLimit.truncated"] and info["terminal_observation"][0] == pytest.approx(0.4)
    venv.seed(3)
    again = venv.reset()
    venv.seed(3)
    np.testing.assert_array_equal(again, venv.reset())
    assert venv.get_attr("action_scale") == [4.0] * 8
    assert venv.env_is_wrapped(gymnasium.Wrapper) == [False] * 8
    assert venv.env_method("state_dict", indices=[0])[0]["ready"]


def test_sb3_adapter_over_gymnasium_sync_vector_env() -> None:
    envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=3, vectorization_mode="sync", solve_options=FAST,
                              vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **LQ)
    venv = SB3VecEnv(envs)
    venv.reset()
    for _ in range(10):
        obs, _, dones, infos = venv.step(np.zeros((3, 1), dtype=np.float32))
    assert dones.all() and all(info["terminal_observation"][0] == pytest.approx(1.0) for info in infos)
    assert not any(info["TimeLimit.truncated"] for info in infos)


def test_sb3_adapter_refuses_next_step_autoreset() -> None:
    with pytest.raises(ValueError, match="autoreset_mode"):
        SB3VecEnv(native(2, autoreset_mode=AutoresetMode.NEXT_STEP))
    with pytest.raises(TypeError, match="VectorEnv"):
        SB3VecEnv(gymnasium.make("mfg_rl/LQ1D-v0", solve_options=FAST, **LQ))


def test_an_sb3_model_is_scored_by_the_benchmark() -> None:
    """``observed_policy`` applies an agent's actions as the env does: the equilibrium control,
    handed over as normalised actions of numpy observations, scores exploitability ~0."""
    envs = native(4)
    eq = envs.unwrapped.equilibrium
    act = equilibrium_policy(envs).act  # actions alpha / max_action
    policy = observed_policy(lambda obs: act(torch.as_tensor(obs)), envs)
    nodes = torch.as_tensor(eq.problem.grid.coordinates()[0], dtype=torch.float32)
    t = torch.full_like(nodes, 0.3)
    torch.testing.assert_close(policy(t, nodes), equilibrium_policy(eq)(t, nodes))
    assert abs(evaluate(policy, eq, backend="numpy")["exploitability"]) < 1e-6
    with pytest.raises(TypeError, match="mfg_rl env"):
        observed_policy(act, gymnasium.make("Pendulum-v1"))


# -- gymnasium's vector wrappers --------------------------------------------------------------
def test_next_step_autoreset_semantics() -> None:
    envs = native(6, max_episode_steps=3, autoreset_mode="NextStep")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = envs.step(torch.zeros(6, 1))
    assert bool(truncated.all()) and "final_obs" not in info
    assert torch.allclose(obs[:, 0], torch.tensor(0.3))  # the last observation, not yet reset
    obs, reward, terminated, truncated, info = envs.step(torch.full((6, 1), 9.0))  # ignored
    assert torch.all(obs[:, 0] == 0.0) and torch.all(reward == 0.0)
    assert not bool((terminated | truncated | info["clipped"]).any()) and envs.unwrapped.clipped_actions == 0
    obs, reward, *_ = envs.step(torch.zeros(6, 1))
    assert torch.allclose(obs[:, 0], torch.tensor(0.1)) and bool((reward != 0.0).all())
    with pytest.raises(ValueError, match="autoreset_mode"):
        native(2, autoreset_mode=AutoresetMode.DISABLED)


def test_next_step_state_dict_resumes_exactly() -> None:
    envs = native(16, autoreset_mode=AutoresetMode.NEXT_STEP).unwrapped
    envs.reset(seed=1)
    for _ in range(10):  # ends every episode: the next step resets
        envs.step(torch.ones(16, 1))
    state = envs.state_dict()
    first = [envs.step(torch.ones(16, 1))[:2] for _ in range(12)]
    envs.load_state_dict(state)
    second = [envs.step(torch.ones(16, 1))[:2] for _ in range(12)]
    for (o1, r1), (o2, r2) in zip(first, second, strict=True):
        assert torch.equal(o1, o2) and torch.equal(r1, r2)


def test_next_step_in_the_n_player_game_restarts_everyone_together() -> None:
    envs = native(50, population="empirical", autoreset_mode=AutoresetMode.NEXT_STEP)
    obs, _ = envs.reset(seed=0)
    for _ in range(10):
        obs, _, terminated, *_ = envs.step(torch.zeros(50, 1))
    assert bool(terminated.all()) and torch.all(obs[:, 0] == 1.0)
    obs, reward, terminated, *_ = envs.step(torch.zeros(50, 1))
    assert torch.all(obs[:, 0] == 0.0) and torch.all(reward == 0.0) and not bool(terminated.any())


def test_cleanrl_wrapper_stack_runs_on_the_batched_env() -> None:
    """CleanRL's ``ppo_continuous_action.py`` stack, as gymnasium's vector wrappers, over the native
    env: whole episodes recorded (the reset steps not counted), actions clipped before the env,
    observations normalised, info as one dict per agent."""
    base = native(8, autoreset_mode=AutoresetMode.NEXT_STEP)
    envs = vw.RecordEpisodeStatistics(vw.FlattenObservation(TorchToNumpy(base)))
    envs = vw.ClipAction(envs)
    envs = vw.NormalizeObservation(envs)
    envs = vw.TransformObservation(envs, lambda obs: np.clip(obs, -10, 10))
    envs = vw.NormalizeReward(envs, gamma=1.0)
    envs = vw.TransformReward(envs, lambda reward: np.clip(reward, -10, 10))
    envs = vw.DictInfoToList(envs)
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    recorded = []
    for _ in range(33):  # three episodes of 10 steps, each followed by its reset step
        obs, reward, terminated, truncated, infos = envs.step(rng.uniform(-3, 3, (8, 1)).astype(np.float32))
        assert isinstance(obs, np.ndarray) and np.all(np.abs(obs) <= 10) and np.all(np.isfinite(reward))
        assert len(infos) == 8
        recorded += [info["episode"] for info in infos if "episode" in info]
    assert len(recorded) == 24 and all(int(e["l"]) == 10 for e in recorded)
    assert base.unwrapped.clipped_actions == 0  # ClipAction kept actions in [-1, 1]
    assert np.all(np.abs(obs.mean(axis=0)) < 2.0)


def test_torch_episode_statistics_agree_with_gymnasium_under_next_step() -> None:
    base = TorchEpisodeStatistics(native(8, autoreset_mode=AutoresetMode.NEXT_STEP))
    envs = vw.RecordEpisodeStatistics(TorchToNumpy(base), stats_key="numpy_episode")
    envs.reset(seed=2)
    for _ in range(33):
        envs.step(np.full((8, 1), 0.5, dtype=np.float32))
    assert list(base.length_queue) == list(envs.length_queue) == [10] * 24
    np.testing.assert_allclose(list(base.return_queue), list(envs.return_queue), rtol=1e-12)


def test_rescale_action_and_same_step_wrappers_on_numpy_out() -> None:
    """Action and reward wrappers also run on the default (same-step) env once it speaks numpy;
    ``RescaleAction`` to the raw control units gives the same steps as ``normalize_actions=False``."""
    bound = np.full(1, 4.0, dtype=np.float32)
    scaled = vw.RescaleAction(TorchToNumpy(native(4)), min_action=-bound, max_action=bound)
    raw = TorchToNumpy(native(4, normalize_actions=False))
    scaled = vw.RecordEpisodeStatistics(vw.NormalizeReward(scaled, gamma=1.0))
    a, _ = scaled.reset(seed=5)
    b, _ = raw.reset(seed=5)
    for _ in range(12):
        action = np.full((4, 1), 2.0, dtype=np.float32)
        a, *_ = scaled.step(action)
        b, *_ = raw.step(action)
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert list(scaled.length_queue) == [10] * 4
