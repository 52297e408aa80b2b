"""Fictitious play on the Santa Fe bar game, three ways, each scored against the PDE equilibrium:
deep averaged fictitious play with PPO (``dafp``) and soft-Q (``dafp-q``) best responses, and
fictitious play with Munchausen best responses and the exact average on the grid (``fp-q``).

Every outer iteration the learner fits the best response to the current crowd (``dafp``: PPO,
``dafp-q``: one soft policy-iteration step of OMD's softmax Q-networks, ``fp-q``: one Munchausen
mirror-descent step of them), the average policy takes it in (``dafp``, ``dafp-q``: samples into a
reservoir and a regression; ``fp-q``: ``sum_j m_j alpha_j / sum_j m_j`` on the grid, exact), and
the crowd becomes the average policy's (``crowd="pde"``: the scheme's Fokker-Planck;
``crowd="model-free"``: a histogram of agents playing it). The returned policy is the average
one; its exploitability after every outer iteration is printed against env steps. About two to
three minutes per learner on a 2-core CPU.

Run: python examples/fictitious_play_santa_fe.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents import train
from mfg_rl.agents.leaderboard import exploitability_history
from mfg_rl.agents.leaderboard_report import rebound

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
steps = {"dafp": 4 * 20 * 32 if tiny else 600_000,      # best-response env steps (samples come on top)
         "dafp-q": 3 * 20 * 32 if tiny else 1_000_000,
         "fp-q": 3 * 20 * 32 if tiny else 1_000_000}
soft_q = {"gradient_steps": 20} if tiny else {}
for algo, learner in (("dafp", {}), ("dafp-q", soft_q), ("fp-q", soft_q)):
    result = train(
        "mfg_rl/SantaFeBar-v0",
        algo=algo,
        regime="fictitious-play",                 # fictitious play: its own crowd updates
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
    history = exploitability_history(result.logdir)
    for env_steps, exploitability in history:
        print(f"{algo:>7}  {env_steps:>9,}  {exploitability:.4f}")
    print(f"{algo}: rebound {rebound(history):.2f} (max_k E_k / min_j<k E_j; 1 is monotone)")
