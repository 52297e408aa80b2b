"""The leaderboard of issue 18: every algorithm on every env, >= 4 seeds, under stated budgets.

Calls ``mfg-rl leaderboard`` (``mfg_rl.agents.leaderboard``) with the arguments given and prints
its table: per env the zero-control and best-constant-drift baselines, then per algorithm the
median and min-max of the final exploitability over seeds, the median's ratio to the better
baseline, median wall time and env steps, the seeds. Budgets (``BUDGETS``) are sized for about
two minutes per run on a 2-core CPU with one torch thread; the full board (every registered
algorithm x 5 envs x 4 seeds) is then about 2 min x runs / jobs. Interrupted, it resumes: runs
already in ``--out`` are kept.

Usage::

    python benchmarks/leaderboard.py                                  # the full board, into leaderboard/
    python benchmarks/leaderboard.py --jobs 2 --out leaderboard       # two runs at once
    python benchmarks/leaderboard.py --algos ppo,sac --envs LQ1D-v0,SantaFeBar-v0 --seeds 2 --steps 100000
"""

import sys

from mfg_rl.cli import main

if __name__ == "__main__":  # the runs are spawned processes: they must not re-run this script
    sys.exit(main(["leaderboard", *sys.argv[1:]]))
