"""Actor-critic agents: building blocks, both algorithms and regimes, exact resume from checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mfg_rl.agents.config import Hyperparameters, defaults, hyperparameters
from mfg_rl.agents.losses import actor_critic_loss
from mfg_rl.agents.networks import ActorCritic, RunningNormalizer
from mfg_rl.agents.regimes import FictitiousPlay
from mfg_rl.agents.rollout import Rollout, compute_gae

TINY = {"Nx": 51, "Nt": 10}
FAST = {"num_envs": 32, "progress": False, "env_kwargs": TINY, "update_epochs": 2, "num_minibatches": 2}


pytestmark = pytest.mark.usefixtures("isolated_cache")


# -- building blocks (no Lightning) -----------------------------------------------------------


def test_import_agents_does_not_load_lightning() -> None:
    probe = ("import sys, json, mfg_rl.agents; from mfg_rl.agents import Hyperparameters; "
             "print(json.dumps([m for m in ('lightning', 'pytorch_lightning') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_hyperparameter_defaults_and_overrides() -> None:
    ppo, a2c = defaults("ppo"), defaults("a2c")
    assert (ppo.clip_coef, ppo.gae_lambda, ppo.gamma, ppo.norm_adv) == (0.2, 0.95, 1.0, True)
    assert (a2c.update_epochs, a2c.num_minibatches, a2c.optimizer) == (1, 1, "rmsprop")
    assert hyperparameters("ppo", {"learning_rate": 3e-4}).learning_rate == 3e-4
    with pytest.raises(TypeError, match="lerning_rate"):
        hyperparameters("ppo", {"lerning_rate": 3e-4})
    with pytest.raises(ValueError, match="algo"):
        defaults("dqn")
    with pytest.raises(ValueError, match="a2c has no ratio"):
        hyperparameters("a2c", {"target_kl": 0.02})
    assert isinstance(ppo, Hyperparameters)


def test_gae_matches_the_recursion_by_hand() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [0.25], [1.0]])
    dones = torch.tensor([[False], [True], [False]])
    rollout = Rollout(obs=torch.zeros(3, 1, 2), actions=torch.zeros(3, 1, 1), log_probs=torch.zeros(3, 1),
                      values=values, rewards=rewards, dones=dones, clipped=torch.zeros_like(dones))
    gamma, lam, last = 0.9, 0.8, torch.tensor([2.0])
    compute_gae(rollout, last, gamma, lam)
    a2 = 3.0 + gamma * 2.0 - 1.0
    a1 = 2.0 - 0.25  # episode ends: no bootstrap, no carry
    a0 = (1.0 + gamma * 0.25 - 0.5) + gamma * lam * a1
    assert torch.allclose(rollout.advantages[:, 0], torch.tensor([a0, a1, a2]))
    assert torch.allclose(rollout.returns, rollout.advantages + values)


def test_running_normalizer_equals_the_statistics_of_all_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 3, generator=gen) * 2 + 1 for n in (5, 17, 40)]
    norm = RunningNormalizer(3)
    for batch in batches:
        norm.update(batch)
    data = torch.cat(batches).double()
    assert torch.allclose(norm.mean, data.mean(0))
    assert torch.allclose(norm.var, data.var(0, unbiased=False))
    assert "mean" in norm.state_dict() and "count" in norm.state_dict()


def test_actor_critic_init_and_deterministic_sampling() -> None:
    torch.manual_seed(0)
    model = ActorCritic(3, 1, log_std_init=-0.5, max_action=2.0)
    assert torch.allclose(model.log_std, torch.full((1,), -0.5))
    head = model.actor[-1].weight
    assert torch.allclose(head @ head.T, torch.full((1, 1), 0.01**2), atol=1e-7)  # orthogonal, gain 0.01
    obs = torch.randn(8, 3)
    a1 = model.sample(obs, torch.Generator().manual_seed(3))[0]
    a2 = model.sample(obs, torch.Generator().manual_seed(3))[0]
    assert torch.equal(a1, a2)
    assert model.act(obs * 1e3).abs().max() <= 2.0


def test_ratio_diagnostics_follow_cleanrl_and_only_ppo_has_them() -> None:
    torch.manual_seed(0)
    model = ActorCritic(3, 1)
    obs, actions = torch.randn(64, 3), torch.randn(64, 1)
    log_prob = model.evaluate_actions(obs, actions)[0].detach()
    old = log_prob + 0.3 * torch.randn(64)  # a policy that has moved since the rollout
    batch = {"obs": obs, "actions": actions, "log_probs": old, "values": torch.zeros(64),
             "advantages": torch.randn(64), "returns": torch.randn(64)}
    _, stats = actor_critic_loss("ppo", model, batch, defaults("ppo"))
    log_ratio = log_prob - old
    assert torch.allclose(stats["old_approx_kl"], (-log_ratio).mean())
    assert torch.allclose(stats["approx_kl"], (log_ratio.exp() - 1 - log_ratio).mean())
    assert stats["approx_kl"] >= 0
    assert torch.allclose(stats["clipfrac"], ((log_ratio.exp() - 1).abs() > 0.2).float().mean())
    _, stats = actor_critic_loss("a2c", model, batch, defaults("a2c"))
    assert set(stats) == {"policy_loss", "value_loss", "entropy"}


def test_fictitious_play_averages_the_crowds() -> None:
    fp = FictitiousPlay()
    crowds = [np.full((2, 3), float(k)) for k in range(4)]
    for m in crowds:
        fp.add(m)
    assert fp.count == 4 and np.allclose(fp.m_bar, np.mean(crowds, axis=0))
    copy = FictitiousPlay()
    copy.load_state_dict(fp.state_dict())
    assert copy.count == 4 and np.array_equal(copy.m_bar, fp.m_bar)


# -- training (Lightning) ---------------------------------------------------------------------


def _stop_after(iterations: int) -> object:
    import lightning.pytorch as pl

    class StopAfter(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            if module.iteration >= iterations:
                trainer.should_stop = True

    return StopAfter()


def test_resume_from_checkpoint_continues_the_same_run(tmp_path: Path) -> None:
    from mfg_rl.agents import train

    steps = 4 * 10 * 32  # four iterations of one horizon (Nt=10) by 32 agents
    full = train(steps=steps, logdir=tmp_path / "full", seed=3, **FAST)
    first = train(steps=steps, logdir=tmp_path / "split", seed=3, ckpt_every=1, callbacks=[_stop_after(2)],
                  **FAST)
    assert first.iterations == 2 and first.env_steps == steps // 2
    ckpt = torch.load(first.checkpoint, weights_only=False)
    assert ckpt["mfg_rl"]["env_steps"] == steps // 2
    resumed = train(steps=steps, logdir=tmp_path / "split", seed=3, ckpt_path=first.checkpoint, **FAST)
    assert (resumed.iterations, resumed.env_steps) == (full.iterations, full.env_steps) == (4, steps)
    state, expected = resumed.model.state_dict(), full.model.state_dict()
    assert state.keys() == expected.keys()
    for key in expected:  # weights, log-std and the normaliser's running statistics, bit for bit
        assert torch.equal(state[key], expected[key]), key
    assert resumed.before == full.before
    assert resumed.after == full.after


def test_fictitious_play_and_a2c_run_and_score(tmp_path: Path) -> None:
    from mfg_rl.agents import bench, train

    fp = train(regime="fictitious-play", steps=6 * 10 * 32, logdir=tmp_path, fp_every=2, **FAST)
    run = torch.load(fp.checkpoint, weights_only=False)["mfg_rl"]
    assert run["fictitious_play"]["count"] == 1 + 3  # the initial crowd and one per two iterations
    assert np.allclose(run["crowd"], run["fictitious_play"]["m_bar"], atol=1e-5)
    assert 0.0 <= fp.after["exploitability"] < fp.before["exploitability"]
    a2c = train(algo="a2c", steps=2 * 10 * 32, logdir=tmp_path, **FAST)
    assert a2c.iterations == 2 and np.isfinite(a2c.after["exploitability"])
    agent, score = bench(a2c.checkpoint)
    assert (agent.algo, agent.env_steps) == ("a2c", a2c.env_steps)
    # The float32 network: trained and scored on the default device (CUDA where present), re-scored
    # here on the CPU, whose float32 rounding differs (~1e-7 in alpha; the
    # H200 took 5e-9 relative); on one device the two scores are equal.
    assert score.exploitability == pytest.approx(a2c.after["exploitability"], rel=1e-6)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_tensorboard_gets_update_means_grad_norm_clipped_actions_and_hparams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str) -> None:
    import lightning.pytorch as pl
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from mfg_rl.agents import module as module_file
    from mfg_rl.agents import train

    steps_stats: list[dict[str, float]] = []  # what each optimiser step saw, to check the logged means
    loss_of, clip_of = module_file.actor_critic_loss, torch.nn.utils.clip_grad_norm_

    def recorded_loss(*args: object) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = loss_of(*args)
        steps_stats.append({k: float(v) for k, v in stats.items()})
        return loss, stats

    def recorded_clip(*args: object, **kwargs: object) -> torch.Tensor:
        norm = clip_of(*args, **kwargs)
        steps_stats[-1]["grad_norm"] = float(norm)
        return norm

    class ClippedCount(pl.Callback):
        def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.total = module.env.unwrapped.clipped_actions

    monkeypatch.setattr(module_file, "actor_critic_loss", recorded_loss)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recorded_clip)
    counter = ClippedCount()
    # std e^1.5 = 4.5 against LQ1D's box |alpha| <= 4: a good share of the actions is clipped
    result = train(algo=algo, steps=3 * 10 * 32, logdir=tmp_path, log_std_init=1.5, callbacks=[counter],
                   **FAST)
    events = EventAccumulator(str(result.logdir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    ratio_tags = {"losses/approx_kl", "losses/old_approx_kl", "losses/clipfrac"}
    assert {"losses/grad_norm", "charts/clipped_action_fraction", "charts/episodic_return"} <= tags
    assert ratio_tags <= tags if algo == "ppo" else not ratio_tags & tags
    values = {tag: np.array([e.value for e in events.Scalars(tag)]) for tag in tags}
    for tag, series in values.items():
        assert np.isfinite(series).all(), tag

    per_update = 2 * 2  # update_epochs x num_minibatches optimiser steps per iteration
    assert len(steps_stats) == 3 * per_update
    for name in ("grad_norm", "policy_loss", "value_loss", *(t.split("/")[1] for t in ratio_tags & tags)):
        means = [np.mean([s[name] for s in steps_stats[k : k + per_update]])
                 for k in range(0, len(steps_stats), per_update)]
        assert values[f"losses/{name}"] == pytest.approx(means, rel=1e-5, abs=1e-7), name
    assert (values["losses/grad_norm"] > 0).all()
    if algo == "ppo":
        assert (values["losses/approx_kl"] >= 0).all()
        assert ((values["losses/clipfrac"] >= 0) & (values["losses/clipfrac"] <= 1)).all()
    fraction = values["charts/clipped_action_fraction"]
    assert ((fraction > 0) & (fraction < 1)).all()
    assert fraction.sum() * 10 * 32 == pytest.approx(counter.total, abs=1e-3)  # the env's own count

    content = events.PluginTagToContent("hparams")
    assert "_hparams_/session_end_info" in content
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert metrics == {"benchmark/exploitability", "benchmark/value_gap", "benchmark/density_l1",
                       "charts/episodic_return"} and metrics <= tags
    hparams = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info.hparams
    assert {info.name for info in experiment.hparam_infos} == set(hparams)
    assert (hparams["algo"].string_value, hparams["env_id"].string_value) == (algo, "mfg_rl/LQ1D-v0")
    assert hparams["learning_rate"].number_value == pytest.approx(defaults(algo).learning_rate)
    assert (hparams["n_steps"].number_value, hparams["problem/Nx"].number_value) == (10, 51)
    assert hparams["problem/sigma"].number_value == 0.5  # a default the run did not pass
    assert hparams["log_std_init"].number_value == 1.5
    assert hparams["norm_adv"].string_value == str(algo == "ppo")
    assert (hparams["hidden"].string_value, hparams["target_kl"].string_value) == ("(64, 64)", "None")
