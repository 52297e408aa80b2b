"""Deep averaged fictitious play on the Santa Fe bar game, with PPO and with soft Q-learning best
responses, each scored against the PDE equilibrium.

Every outer iteration the learner fits the best response to the current crowd (``dafp``: PPO,
``dafp-q``: one soft policy-iteration step of OMD's softmax Q-networks), its samples go into a
reservoir, the average policy is fitted to them, and the crowd becomes the average policy's
(``crowd="pde"``: the scheme's Fokker-Planck; ``crowd="model-free"``: a histogram of agents
playing it). The returned policy is the average one; its exploitability after every outer
iteration is printed against env steps. About three minutes per learner on a 2-core CPU.

Run: python examples/dafp_santa_fe.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents import train
from mfg_rl.agents.leaderboard import exploitability_history

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
steps = {"dafp": 4 * 20 * 32 if tiny else 600_000,      # best-response env steps (samples come on top)
         "dafp-q": 3 * 20 * 32 if tiny else 1_000_000}
for algo, learner in (("dafp", {}), ("dafp-q", {"gradient_steps": 20} if tiny else {})):
    result = train(
        "mfg_rl/SantaFeBar-v0",
        algo=algo,
        regime="fictitious-play",                 # D-AFP is fictitious play: its own crowd updates
        steps=steps[algo],
        num_envs=32 if tiny else 128,
        env_kwargs={"Nx": 51, "Nt": 20} if tiny else {},
        crowd="pde",                               # or "model-free"
        device="cpu",
        logdir="runs",
        progress=not tiny,
        **learner,
    )
    print(result.summary())
    for env_steps, exploitability in exploitability_history(result.logdir):
        print(f"{algo:>7}  {env_steps:>9,}  {exploitability:.4f}")
