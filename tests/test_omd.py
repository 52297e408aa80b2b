"""Deep Munchausen OMD: its hyperparameters, the target, the grid policy, learning, checkpoints and resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mfg_rl.agents.config import OMDHyperparameters, defaults, hyperparameters
from mfg_rl.agents.softmax_q import SoftmaxQNetworks, action_grid, munchausen_target

TINY = {"Nx": 51, "Nt": 10}
FAST = {"algo": "omd", "regime": "fictitious-play", "num_envs": 64, "progress": False, "gradient_steps": 100}

pytestmark = pytest.mark.usefixtures("isolated_cache")


# -- building blocks (no Lightning) -----------------------------------------------------------


def test_omd_defaults_and_bad_hyperparameters_name_themselves() -> None:
    assert defaults("omd") == OMDHyperparameters()
    assert hyperparameters("omd", {"hidden": [32, 16]}).hidden == (32, 16)
    bad = {"gradient_steps": 0, "batch_size": 1.5, "target_update_every": -1, "n_steps": 0,
           "actions_per_axis": 1, "learning_rate": math.nan, "gamma": 1.5, "tau": 0.0,
           "munchausen_alpha": 1.1, "log_policy_clip": 0.0, "epsilon": -0.1, "max_grad_norm": -1.0,
           "hidden": (), "average_last": 0, "eval_every": 0}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            hyperparameters("omd", {name: value})
    with pytest.raises(ValueError, match="actions_per_axis must be odd"):
        hyperparameters("omd", {"actions_per_axis": 10})
    with pytest.raises(TypeError, match="clip_coef"):  # a PPO hyperparameter is not OMD's
        hyperparameters("omd", {"clip_coef": 0.1})


def test_munchausen_target_is_the_formula_written_out() -> None:
    rewards, alive = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])
    log_pi_taken = torch.log(torch.tensor([0.7, 1e-9]))  # the second is clipped: log pi < -5
    log_pi_next = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]))
    q_next = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    gamma, tau, alpha, clip = 0.9, 0.2, 0.8, -5.0
    got = munchausen_target(rewards, log_pi_taken, log_pi_next, q_next, alive, gamma, tau, alpha, clip)
    expected = []
    for i in range(2):
        bonus = alpha * tau * max(math.log([0.7, 1e-9][i]), clip)
        probs = [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]][i]
        soft = sum(p * (float(q_next[i, a]) - tau * math.log(p)) for a, p in enumerate(probs))
        expected.append(float(rewards[i]) + bonus + gamma * float(alive[i]) * soft)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert expected[1] == pytest.approx(-1.0 + alpha * tau * clip)  # terminal: no bootstrap, clipped bonus


def test_the_control_is_the_mean_grid_action_of_the_softmax() -> None:
    assert action_grid(3, 2, 1.0).tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1],
                                               [1, -1], [1, 0], [1, 1]]
    torch.manual_seed(0)
    nets = SoftmaxQNetworks(4, 2, (16,), max_action=5.0, actions_per_axis=7, tau=0.3)
    obs = torch.randn(6, 4)
    probs = torch.softmax(nets.q(obs) / 0.3, dim=-1)
    assert nets.actions.shape == (49, 2)
    assert torch.allclose(nets.act(obs), probs @ nets.actions, atol=1e-6)
    assert nets.act(obs).abs().max() <= 5.0
    nets.q.trunk[0].weight.data += 1.0  # previous (pi_k) and target stay until the next iteration starts
    assert not torch.equal(nets.previous.trunk[0].weight, nets.q.trunk[0].weight)
    nets.start_iteration()
    assert torch.equal(nets.previous.trunk[0].weight, nets.q.trunk[0].weight)
    assert torch.equal(nets.target.trunk[0].weight, nets.q.trunk[0].weight)


def test_dueling_q_softmax_sees_only_the_advantage() -> None:
    """``Q = V + A - mean A``: shifting the value head moves Q, not the policy; the mean over actions is V."""
    from mfg_rl.agents.softmax_q import DuelingQ

    torch.manual_seed(1)
    q = DuelingQ(4, 9, (16, 16))
    obs = torch.randn(5, 4)
    before = q(obs)
    assert torch.allclose(before.mean(-1), q.value(q.trunk(obs))[:, 0], atol=1e-6)
    q.value.bias.data += 10.0
    after = q(obs)
    assert torch.allclose(after - before, torch.full_like(before, 10.0), atol=1e-5)
    assert torch.allclose(torch.softmax(after / 0.3, -1), torch.softmax(before / 0.3, -1), atol=1e-5)


def test_the_returned_control_is_the_mean_over_the_last_tenth_of_the_iterates() -> None:
    """``act`` averages the last ``min(average_last, k // 10)`` remembered iterates (at least one);
    ``LastIterate`` is the fitted ``q`` alone."""
    from mfg_rl.agents.softmax_q import LastIterate

    torch.manual_seed(2)
    nets = SoftmaxQNetworks(3, 1, (8,), max_action=2.0, actions_per_axis=5, tau=0.5, average_last=3)
    obs = torch.randn(7, 3)
    assert torch.equal(nets.act(obs), nets.iterate_act(obs))  # nothing remembered yet
    controls = []
    for k in range(1, 36):
        nets.q.advantage.bias.data = torch.randn(5)
        nets.remember()
        controls.append(nets.iterate_act(obs))
        window = min(3, max(1, k // 10))
        assert torch.allclose(nets.act(obs), torch.stack(controls[-window:]).mean(0), atol=1e-6), k
    assert torch.equal(LastIterate(nets).act(obs), nets.iterate_act(obs))
    assert not torch.allclose(nets.act(obs), nets.iterate_act(obs))  # k = 35: the mean of three differs
    copy = SoftmaxQNetworks(3, 1, (8,), max_action=2.0, actions_per_axis=5, tau=0.5, average_last=3)
    copy.load_state_dict(nets.state_dict())  # the ring and its count travel in checkpoints
    assert copy.remembered == 35 and torch.equal(copy.act(obs), nets.act(obs))


# -- training (Lightning) ---------------------------------------------------------------------


def test_omd_learns_lq1d_and_its_checkpoint_scores_the_same(tmp_path: Path) -> None:
    """Seed 0, 12 iterations of one horizon of 64 agents (7,680 env steps, 100 updates each): measured
    0.138 -> 0.0059, 23x (seed 1: 21x), in 4 s of fit on a 2-core CPU; asserted 12x."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mfg_rl.agents import bench, train

    result = train("mfg_rl/LQ1D-v0", steps=12 * 10 * 64, seed=0, logdir=tmp_path, env_kwargs=TINY, **FAST)
    ratio = result.before["exploitability"] / result.after["exploitability"]
    assert ratio > 12.0, ratio
    events = EventAccumulator(str(result.logdir), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("losses/q_loss", "losses/entropy", "losses/q_values", "losses/grad_norm",
                "charts/omd_iterations", "charts/episodic_return", "benchmark/exploitability"):
        assert np.isfinite([e.value for e in events.Scalars(tag)]).all(), tag
    scored = [e.step for e in events.Scalars("benchmark/exploitability")]
    assert scored == [0, 5 * 640, 10 * 640, 12 * 640]  # the initial policy, every eval_every = 5, the end
    assert [e.value for e in events.Scalars("charts/omd_iterations")] == list(range(1, 13))
    agent, score = bench(result.checkpoint)  # loads without Lightning, the crowd of the last iterate
    assert (agent.algo, agent.env_steps) == ("omd", result.env_steps)
    assert score.exploitability == pytest.approx(result.after["exploitability"], rel=1e-9)


def test_omd_learns_santa_fe_bar(tmp_path: Path) -> None:
    """Seed 0, 15 iterations of 64 agents on a 51 x 20 grid (19,200 env steps, 100 updates each): measured
    2.07 -> 0.064, 32x (seed 1: 2.18 -> 0.076, 29x), in 5 s of fit; asserted 20x."""
    from mfg_rl.agents import train

    result = train("mfg_rl/SantaFeBar-v0", steps=15 * 20 * 64, seed=0, logdir=tmp_path,
                   env_kwargs={"Nx": 51, "Nt": 20}, **FAST)
    ratio = result.before["exploitability"] / result.after["exploitability"]
    assert ratio > 20.0, ratio


def test_omd_scoring_less_often_leaves_the_run_unchanged(tmp_path: Path) -> None:
    """The crowd of every iteration comes from the last iterate whether or not the iteration is scored,
    so ``eval_every`` changes what is logged, not what is learnt: the scores it keeps are bit for bit."""
    from mfg_rl.agents import train
    from mfg_rl.agents.leaderboard import exploitability_history

    options = {"steps": 22 * 10 * 32, "seed": 3, "env_kwargs": TINY, **FAST, "num_envs": 32,
               "gradient_steps": 10, "average_last": 2}  # the mean of two iterates from iteration 20
    every = train(logdir=tmp_path / "every", eval_every=1, **options)
    sparse = train(logdir=tmp_path / "sparse", eval_every=8, **options)
    history = dict(exploitability_history(every.logdir))
    kept = exploitability_history(sparse.logdir)
    assert [step for step, _ in kept] == [0, 8 * 320, 16 * 320, 22 * 320]
    assert all(history[step] == value for step, value in kept)
    assert sparse.after == every.after


def test_omd_resume_continues_the_same_run(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    from mfg_rl.agents import train

    class StopAfter(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            trainer.should_stop = module.iteration >= 2

    options = {"steps": 4 * 10 * 32, "seed": 5, "env_kwargs": TINY, **FAST, "num_envs": 32,
               "gradient_steps": 5}
    full = train(logdir=tmp_path / "full", **options)
    first = train(logdir=tmp_path / "split", ckpt_every=1, callbacks=[StopAfter()], **options)
    assert first.iterations == 2
    resumed = train(logdir=tmp_path / "split", ckpt_path=first.checkpoint, **options)
    assert (resumed.iterations, resumed.env_steps) == (full.iterations, full.env_steps) == (4, 1280)
    state, expected = resumed.model.state_dict(), full.model.state_dict()
    for key in expected:  # q, previous, target, the remembered iterates and their count, bit for bit
        if isinstance(expected[key], torch.Tensor):
            assert torch.equal(state[key], expected[key]), key
        else:
            assert state[key] == expected[key] == {"remembered": 4}, key
    assert resumed.after == full.after


def test_omd_refuses_what_it_does_not_do(tmp_path: Path) -> None:
    from mfg_rl.agents import train

    with pytest.raises(ValueError, match="regime='best-response'"):
        train("mfg_rl/LQ1D-v0", steps=320, logdir=tmp_path, env_kwargs=TINY,
              **{**FAST, "regime": "best-response"})
