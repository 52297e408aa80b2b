"""Deep averaged fictitious play with soft Q-learning best responses on the Santa Fe bar game.

Every iteration fits the best response's Q-network to the soft Bellman target of its last softmax
policy against the current crowd (one step of soft policy iteration); then agents play its mean
action, the reservoir takes their samples, the average policy is fitted to them, and the crowd
becomes the average policy's. The returned policy is the average one, and its exploitability after
every outer iteration is printed against env steps. About three minutes on a 2-core CPU.

Run: python examples/dafp_q_santa_fe.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents import train
from mfg_rl.agents.leaderboard import exploitability_history

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = ({"steps": 3 * 20 * 32, "num_envs": 32, "env_kwargs": {"Nx": 51, "Nt": 20}, "gradient_steps": 20,
         "sample_agents": 32} if tiny else {"steps": 1_000_000})   # 78 outer iterations of 128 agents
result = train(
    "mfg_rl/SantaFeBar-v0",
    algo="dafp-q",
    regime="fictitious-play",                   # fictitious play: the crowd is the average policy's
    crowd="pde",                                 # or "model-free"
    device="cpu",
    logdir="runs",
    progress=not tiny,
    **size,
)
print(result.summary())

for steps, exploitability in exploitability_history(result.logdir):
    print(f"{steps:>9,}  {exploitability:.4f}")
