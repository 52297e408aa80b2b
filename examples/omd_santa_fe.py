"""Deep Munchausen online mirror descent on the El Farol (Santa Fe) bar game.

Each outer iteration moves the crowd to the one the current softmax policy induces, then fits
the next Q-network by regression on the Munchausen target (``mfg_rl.agents.omd``). Same as
``mfg-rl train mfg_rl/SantaFeBar-v0 --algo omd --regime fictitious-play --steps 384000``; the
exploitability of every iterate goes to TensorBoard against env steps. About 25 s of training on a
2-core CPU: exploitability 2.26 -> 0.065 (seed 0).

Run: python examples/omd_santa_fe.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents import train

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = ({"steps": 3 * 20 * 32, "num_envs": 32, "env_kwargs": {"Nx": 51, "Nt": 20}, "gradient_steps": 20}
        if tiny else {"steps": 384_000})   # 30 outer iterations of 128 agents on the default grid
result = train(
    "mfg_rl/SantaFeBar-v0",
    algo="omd",
    regime="fictitious-play",                   # OMD's crowd: the one its last iterate induces
    device="cpu",
    logdir="runs",
    progress=not tiny,
    **size,
)
print(result.summary())
