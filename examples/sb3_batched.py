"""Stable-Baselines3 PPO on 128 batched LQ agents, scored by the PDE benchmark.

The natively batched env steps all agents as torch tensors; ``SB3VecEnv`` makes it the
``VecEnv`` SB3 trains on, and ``observed_policy`` turns the trained model back into the
``policy(t, x) -> alpha`` that ``mfg_rl.benchmark.evaluate`` scores (exploitability 0 is the
Nash equilibrium). Needs ``pip install mfg-rl[sb3]``.

Run: python examples/sb3_batched.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

import gymnasium
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import mfg_rl  # noqa: F401  (registers the mfg_rl/ ids)
from mfg_rl.benchmark import evaluate
from mfg_rl.envs import SB3VecEnv, observed_policy

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = dict(Nx=51, Nt=10) if tiny else {}
num_envs = 16 if tiny else 128
steps = 2 * 10 * num_envs if tiny else 400_000

envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=num_envs, device="cpu", **size)
nt = envs.unwrapped.game.Nt
model = PPO("MlpPolicy", VecMonitor(SB3VecEnv(envs)), n_steps=nt, batch_size=nt * num_envs // 4,
            learning_rate=1e-3, gamma=1.0, policy_kwargs={"log_std_init": -1.0}, seed=0)
policy = observed_policy(lambda obs: model.predict(obs, deterministic=True)[0], envs)
before = evaluate(policy, envs.unwrapped.equilibrium)["exploitability"]
model.learn(steps)
after = evaluate(policy, envs.unwrapped.equilibrium)["exploitability"]
print(f"SB3 PPO, {num_envs} batched agents, {model.num_timesteps:,} env steps: "
      f"exploitability {before:.4f} -> {after:.4f}")
