"""A small leaderboard: PPO and A2C on LQ1D-v0 with 2 seeds each, scored against the baselines.

Same as ``mfg-rl leaderboard --algos ppo,a2c --envs LQ1D-v0 --seeds 2 --steps 200000``: each
run in its own process, then the table (median and range of the final exploitability over the
seeds, relative to the better of the zero control and the best constant drift) and
``leaderboard/exploitability.png``. A second run of this script reuses the finished runs.

Run: python examples/leaderboard.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os

from mfg_rl.agents.leaderboard import leaderboard

if __name__ == "__main__":  # each run is a spawned process that imports this file again
    tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
    board = leaderboard(
        ["ppo", "a2c"],
        ["mfg_rl/LQ1D-v0"],
        seeds=1 if tiny else 2,
        steps=640 if tiny else 200_000,
        num_envs=32 if tiny else 128,
        env_kwargs={"Nx": 51, "Nt": 10} if tiny else {},
        out="leaderboard",
    )
    print(board.table)
    best = min(board.records, key=lambda r: r.get("exploitability", float("inf")))
    print(f"best run: {best['algo']} seed {best['seed']}, exploitability {best['exploitability']:.3e}; "
          f"TensorBoard: tensorboard --logdir {board.out / 'tensorboard'}")
