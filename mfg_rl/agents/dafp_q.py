"""``DAFPQModule``: deep averaged fictitious play whose best responses are learnt by soft Q-learning
(the D-AFP of Lauriere et al. 2022 learns them with DQN), as a Lightning module on the batched env.

The best response is OMD's softmax policy over a grid of actions, ``pi = softmax(Q / tau)``
(``mfg_rl.agents.softmax_q``), fitted by ``OMDModule.training_step`` with ``munchausen_alpha = 0``:
each iteration regresses ``Q_{k+1}`` on the soft Bellman target of ``pi_k`` against the frozen crowd,

    y = r + gamma k sum_a' pi_k(a'|s') (Q'(s',a') - tau log pi_k(a'|s')),

one step of soft policy iteration warm-started from the last. Every ``fp_every`` iterations (and at
the end) comes D-AFP's outer iteration (``mfg_rl.agents.dafp.AveragedFictitiousPlay``): agents play
the best response's mean action ``E_pi[a]`` for one horizon, the reservoir takes the samples, the
average policy is fitted to them, and the crowd becomes the average policy's. What it returns,
scores and checkpoints is the average policy.

Why beside PPO's D-AFP: on SantaFeBar-v0 a PPO best response, two iterations per crowd, lags the
moving crowd and the average swings (rebound 5.8, the median over seeds 0-3 of ``max_k E_k /
min_{j<k} E_j``); a policy-iteration step per crowd keeps up better: rebound 2.6, 0.053 after 1M
best-response steps (the board of 2026-12-05), what is left being the learnt average's noise. It
fails on the exit games (CrowdExit1D-v0 rises to about 3, Crowd2D-v0 ends at 3.9), where the exact
average of its best responses rises as well.

Example:
    >>> from mfg_rl.agents import train
    >>> result = train("mfg_rl/SantaFeBar-v0", algo="dafp-q", regime="fictitious-play",
    ...                steps=1_000_000)   # doctest: +SKIP
"""

from __future__ import annotations

from mfg_rl.agents.dafp import AveragedFictitiousPlay
from mfg_rl.agents.omd import OMDModule


class DAFPQModule(AveragedFictitiousPlay, OMDModule):
    """D-AFP with soft Q-learning best responses on ``env_id`` (see ``mfg_rl.agents.train``;
    ``DAFPQHyperparameters``)."""
