"""D-AFP with soft Q-learning best responses: its hyperparameters, learning on LQ1D and SantaFeBar,
checkpoints that give the average policy, and exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from mfg_rl.agents.config import DAFPQHyperparameters, defaults, hyperparameters

pytestmark = pytest.mark.usefixtures("isolated_cache")

TINY = {"Nx": 51, "Nt": 10}
FAST = {"algo": "dafp-q", "regime": "fictitious-play", "num_envs": 32, "progress": False,
        "sample_agents": 32, "gradient_steps": 100}


def test_dafp_q_defaults_and_bad_hyperparameters_name_themselves() -> None:
    params = defaults("dafp-q")
    assert params == DAFPQHyperparameters()
    assert (params.munchausen_alpha, params.fp_every, params.average_last) == (0.0, 1, 1)
    assert hyperparameters("dafp-q", {"average_hidden": [16], "hidden": [32]}).average_hidden == (16,)
    bad = {"crowd": "kde", "sample_agents": 0, "average_steps": 0, "average_learning_rate": math.nan,
           "fp_every": 0, "munchausen_alpha": -0.5, "tau": 0.0, "gradient_steps": 0, "actions_per_axis": 1}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            hyperparameters("dafp-q", {name: value})
    with pytest.raises(TypeError, match="clip_coef"):  # a PPO hyperparameter is not D-AFP-Q's
        hyperparameters("dafp-q", {"clip_coef": 0.1})
    from mfg_rl.agents import train

    with pytest.raises(ValueError, match="dafp-q learns in 'fictitious-play' only"):
        train("mfg_rl/LQ1D-v0", algo="dafp-q", regime="best-response", steps=10, env_kwargs=TINY)


def test_dafp_q_learns_on_santa_fe_bar_and_its_checkpoint_gives_the_average_policy(tmp_path) -> None:
    """SantaFeBar (51 cells, 20 steps), seed 0, 20 outer iterations of 32 agents (100 updates each):
    2.15 -> 0.062, 35x (seeds 1, 2: 34x, 22x); asserted 12x. The checkpoint's policy is the average
    policy and scores the same."""
    from mfg_rl.agents import bench, train

    result = train("mfg_rl/SantaFeBar-v0", steps=20 * 20 * 32, seed=0, logdir=tmp_path,
                   env_kwargs={"Nx": 51, "Nt": 20}, **FAST)
    ratio = result.before["exploitability"] / result.after["exploitability"]
    assert ratio > 12.0, (result.before, result.after)
    agent, score = bench(result.checkpoint)
    assert agent.algo == "dafp-q" and agent.env_steps == result.env_steps
    t = torch.linspace(0.0, 1.0, 21).repeat_interleave(11)
    x = torch.linspace(0.0, 1.0, 11).repeat(21)
    torch.testing.assert_close(agent.policy(t, x), result.policy(t, x))
    torch.testing.assert_close(agent.model.act(torch.zeros(3, 3)), agent.model.average.act(torch.zeros(3, 3)))
    assert score.exploitability == pytest.approx(result.after["exploitability"], rel=1e-9)


def test_dafp_q_learns_on_lq1d(tmp_path) -> None:
    """Seed 1, 30 outer iterations of 32 agents on a 51 x 10 grid: 0.121 -> 0.018, 6.9x (seeds 0, 2:
    6.2x, 5.4x; fictitious play closes the gap as 1/k); asserted 3.5x."""
    from mfg_rl.agents import train

    result = train("mfg_rl/LQ1D-v0", steps=30 * 10 * 32, seed=1, logdir=tmp_path, env_kwargs=TINY, **FAST)
    ratio = result.before["exploitability"] / result.after["exploitability"]
    assert ratio > 3.5, (result.before, result.after)


def test_dafp_q_model_free_resumes_the_same_run(tmp_path) -> None:
    """A run split by a checkpoint ends with the same networks, counters and score as one run
    (model-free crowd of 512 agents: the sampling envs' states go into the checkpoint too)."""
    from mfg_rl.agents import train

    kw = {**FAST, "env_kwargs": TINY, "seed": 4, "gradient_steps": 5, "crowd": "model-free",
          "crowd_agents": 512, "fp_every": 2}
    whole = train("mfg_rl/LQ1D-v0", steps=4 * 320, logdir=tmp_path / "whole", **kw)
    half = train("mfg_rl/LQ1D-v0", steps=2 * 320, logdir=tmp_path / "split", ckpt_every=1, **kw)
    rest = train("mfg_rl/LQ1D-v0", steps=4 * 320, logdir=tmp_path / "split", ckpt_path=half.checkpoint, **kw)
    assert (rest.env_steps, rest.iterations) == (whole.env_steps, whole.iterations)
    state, expected = rest.model.state_dict(), whole.model.state_dict()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(state[key], value), key
    assert rest.after == whole.after
