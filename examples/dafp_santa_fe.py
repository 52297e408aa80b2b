"""Deep averaged fictitious play on the Santa Fe bar game, scored against the PDE equilibrium.

Every outer iteration PPO learns the best response to the current crowd, its samples go into a
reservoir, the average policy is fitted to them, and the crowd becomes the average policy's
(``crowd="pde"``: the scheme's Fokker-Planck; ``crowd="model-free"``: a histogram of agents
playing it). The returned policy is the average one. About three minutes on a 2-core CPU.

Run: python examples/dafp_santa_fe.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents import train
from mfg_rl.agents.leaderboard import exploitability_history

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
result = train(
    "mfg_rl/SantaFeBar-v0",
    algo="dafp",
    regime="fictitious-play",                     # D-AFP is fictitious play: its own crowd updates
    steps=4 * 20 * 32 if tiny else 600_000,      # best-response env steps (samples come on top)
    num_envs=32 if tiny else 128,
    env_kwargs={"Nx": 51, "Nt": 20} if tiny else {},
    crowd="pde",                                   # or "model-free"
    device="cpu",
    logdir="runs",
    progress=not tiny,
)
print(result.summary())

# exploitability of the average policy after every outer iteration, against env steps
for steps, exploitability in exploitability_history(result.logdir):
    print(f"{steps:>9,}  {exploitability:.4f}")
