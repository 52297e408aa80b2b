"""D-AFP: its hyperparameters, the reservoir, the model-free crowd against the PDE's, learning on
LQ1D and SantaFeBar, checkpoints that give the average policy, and exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mfg_rl.agents.average_policy import Reservoir, crowd_histogram, play_horizon
from mfg_rl.agents.checkpoints import load_agent, make_env
from mfg_rl.agents.config import DAFPHyperparameters, defaults, hyperparameters

pytestmark = pytest.mark.usefixtures("isolated_cache")

TINY = {"Nx": 51, "Nt": 10}
FAST = {"algo": "dafp", "regime": "fictitious-play", "num_envs": 32, "progress": False,
        "sample_agents": 32, "fp_every": 2}


def test_dafp_defaults_and_bad_hyperparameters_name_themselves() -> None:
    assert defaults("dafp") == DAFPHyperparameters()
    assert hyperparameters("dafp", {"average_hidden": [16]}).average_hidden == (16,)
    bad = {"crowd": "kde", "sample_agents": 0, "crowd_agents": 1.5, "buffer_size": -1, "average_steps": 0,
           "average_batch_size": True, "average_learning_rate": math.nan, "average_hidden": (),
           "fp_every": 0, "n_steps": 0}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            hyperparameters("dafp", {name: value})
    with pytest.raises(ValueError, match="average_batch_size=512 exceeds buffer_size=100"):
        hyperparameters("dafp", {"buffer_size": 100})
    from mfg_rl.agents import train

    with pytest.raises(ValueError, match="dafp learns in 'fictitious-play' only"):
        train("mfg_rl/LQ1D-v0", algo="dafp", regime="best-response", steps=10, env_kwargs=TINY)


def test_reservoir_keeps_every_offered_row_with_the_same_probability() -> None:
    """Algorithm R: after 1000 rows offered in batches of 50 to 100 slots, each row is kept with
    probability 0.1; over 400 reservoirs the first and last 200 rows' rates have std 0.0011."""
    kept = torch.zeros(1000)
    for trial in range(400):
        generator = torch.Generator().manual_seed(trial)
        reservoir = Reservoir(100, 1, "cpu")
        for start in range(0, 1000, 50):
            reservoir.add(torch.arange(start, start + 50, dtype=torch.float32)[:, None], generator)
        assert reservoir.size == 100 and reservoir.seen == 1000
        rows = reservoir.data[:, 0].long()
        assert rows.unique().numel() == 100  # no row twice
        kept[rows] += 1.0 / 400
    assert abs(float(kept[:200].mean()) - 0.1) < 0.005
    assert abs(float(kept[-200:].mean()) - 0.1) < 0.005


def test_model_free_crowd_matches_the_pde_crowd_of_the_same_policy_up_to_sampling_error() -> None:
    """The histogram of N agents has per-cell error std ``sqrt(m (1 - h m) / (N h))``, so an L1
    error ``h sum_i |.|`` of about ``sqrt(2/pi) h sum_i std_i`` per level. SantaFeBar (51 cells,
    20 steps) with the drift ``alpha = 0.25 sin(2 pi x)``: each level's L1 distance to the
    scheme's Fokker-Planck is within 1.6x that prediction (measured 0.8x-1.5x with 0.5 sin), their
    mean within [0.7, 1.3]x; a histogram shifted by one cell or mis-scaled by 10% fails."""
    env = make_env("mfg_rl/SantaFeBar-v0", 8192, "cpu", {"Nx": 51, "Nt": 20})
    game = env.unwrapped.game

    def policy(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return 0.25 * torch.sin(2.0 * math.pi * torch.as_tensor(x))

    obs, inside = play_horizon(env, lambda o: policy(o[:, 0], o[:, 1])[:, None], seed=3)
    m = crowd_histogram(game, obs, inside).numpy()
    from mfg_rl.benchmark import evaluate

    m_pi = evaluate(policy, game.eq, backend="numpy").m_pi
    h = game.grid.cell_volume
    np.testing.assert_allclose(m.sum(axis=1) * h, 1.0, atol=1e-12)  # every agent inside, on the torus
    predicted = math.sqrt(2.0 / math.pi) * h * np.sqrt(m_pi * (1.0 - h * m_pi) / (8192 * h)).sum(axis=1)
    ratio = (np.abs(m - m_pi).sum(axis=1) * h) / predicted
    assert ratio.max() < 1.6 and 0.7 < ratio.mean() < 1.3, ratio
    wrong = (np.abs(np.roll(m, 1, axis=1) - m_pi).sum(axis=1) * h) / predicted
    assert wrong.mean() > 1.3, wrong


def test_model_free_crowd_counts_only_the_agents_inside() -> None:
    """CrowdExit1D: agents leave through the exits, so the histogram's mass is the fraction left."""
    env = make_env("mfg_rl/CrowdExit1D-v0", 2000, "cpu", TINY)
    obs, inside = play_horizon(env, lambda o: torch.zeros(o.shape[0], 1), seed=0)
    m = crowd_histogram(env.unwrapped.game, obs, inside)
    mass = m.sum(dim=1) * env.unwrapped.game.grid.cell_volume
    torch.testing.assert_close(mass, inside.double().mean(dim=1))
    assert float(mass[0]) == pytest.approx(1.0) and float(mass[-1]) < 0.995  # 1.5% left (seed 0)


def test_dafp_learns_on_lq1d_and_its_checkpoint_gives_the_average_policy(tmp_path) -> None:
    """Seed 0, 6k best-response steps of 32 agents (9 outer iterations, 100 supervised steps each):
    exploitability falls 8x or more (measured 13.0x; 15.9x with 200 supervised steps)."""
    from mfg_rl.agents import train

    result = train("mfg_rl/LQ1D-v0", steps=6_000, seed=0, logdir=tmp_path, env_kwargs=TINY, average_steps=100,
                   **FAST)
    ratio = result.before["exploitability"] / result.after["exploitability"]
    assert ratio > 8.0, (result.before, result.after)
    agent = load_agent(result.checkpoint)
    t = torch.linspace(0.0, 1.0, 11).repeat_interleave(9)
    x = torch.linspace(-2.0, 2.0, 9).repeat(11)
    torch.testing.assert_close(agent.policy(t, x), result.policy(t, x))
    assert agent.algo == "dafp" and agent.env_steps == result.env_steps


def test_dafp_model_free_learns_on_santa_fe_bar_and_resumes_the_same_run(tmp_path) -> None:
    """SantaFeBar (51 cells, 20 steps), model-free crowd of 1024 agents, seed 1, two outer iterations
    of one PPO iteration each: exploitability falls 10x or more (measured 46x); a run split by a
    checkpoint ends with the same average policy, counters and score as one run."""
    from mfg_rl.agents import train

    kw = {**FAST, "env_kwargs": {"Nx": 51, "Nt": 20}, "seed": 1, "fp_every": 1, "crowd": "model-free",
          "crowd_agents": 1024}
    whole = train("mfg_rl/SantaFeBar-v0", steps=2 * 640, logdir=tmp_path / "whole", **kw)
    assert whole.before["exploitability"] / whole.after["exploitability"] > 10.0, (whole.before, whole.after)
    half = train("mfg_rl/SantaFeBar-v0", steps=640, logdir=tmp_path / "split", ckpt_every=1, **kw)
    rest = train("mfg_rl/SantaFeBar-v0", steps=2 * 640, logdir=tmp_path / "split", ckpt_path=half.checkpoint,
                 **kw)
    assert rest.env_steps == whole.env_steps and rest.iterations == whole.iterations
    x = torch.linspace(0.0, 1.0, 21)
    t = torch.full_like(x, 0.5)
    torch.testing.assert_close(rest.policy(t, x), whole.policy(t, x))
    assert rest.after["exploitability"] == pytest.approx(whole.after["exploitability"], rel=1e-9)
