"""``DAFPQModule``: deep averaged fictitious play whose best responses are learnt by soft Q-learning
(the D-AFP of Lauriere et al. 2022 learns them with DQN), as a Lightning module on the batched env;
with ``average="grid"`` and Munchausen best responses it is ``algo="fp-q"``.

The best response is OMD's softmax policy over a grid of actions, ``pi = softmax(Q / tau)``
(``mfg_rl.agents.softmax_q``), fitted by ``OMDModule.training_step`` against the frozen crowd:

    y = r + alpha tau max(log pi_k(a|s), l0) + gamma k sum_a' pi_k(a'|s') (Q'(s',a') - tau log pi_k(a'|s')),

``dafp-q`` (``munchausen_alpha = 0``): one step of soft policy iteration, warm-started from the
last; ``fp-q`` (``munchausen_alpha = 0.9``): one mirror-descent step, ``pi_{k+1} ~ pi_k^0.9 exp(q /
tau)``, whose temperature is ``(1 - alpha) tau = 0.3`` at its fixed point. Every ``fp_every``
iterations (and at the end) comes fictitious play's outer iteration
(``mfg_rl.agents.dafp.AveragedFictitiousPlay``): the average policy takes in the best response's
mean action ``E_pi[a]`` (``dafp-q``: samples into the reservoir and a regression; ``fp-q``: the
exact crowd-weighted mean on the grid, ``average_policy.GridAverage``), and the crowd becomes the
average policy's. What it returns, scores and checkpoints is the average policy.

Why beside PPO's D-AFP: on SantaFeBar-v0 a PPO best response, two iterations per crowd, lags the
moving crowd and the average swings (rebound 5.8, the median over seeds 0-3 of ``max_k E_k /
min_{j<k} E_j``); a policy-iteration step per crowd keeps up better: rebound 2.6, 0.053 after 1M
best-response steps (the board of 2026-12-05), what is left being the learnt average's noise. It
fails on the exit games (CrowdExit1D-v0 rises to about 3, Crowd2D-v0 ends at 3.9), where the exact
average of its best responses rises as well: softmax best responses at ``tau = 3`` are too soft
there. ``fp-q`` removes both: no regression noise, and best responses at OMD's temperature
(SantaFeBar-v0 seed 0, 1M steps: 0.025, falling at every iteration after the ninth, rebound 1.54;
CrowdExit1D-v0 0.11, rebound 1.16).

Example:
    >>> from mfg_rl.agents import train
    >>> result = train("mfg_rl/SantaFeBar-v0", algo="fp-q", regime="fictitious-play",
    ...                steps=1_000_000)   # doctest: +SKIP
    >>> result.after["exploitability"]   # 2.19 -> 0.025 in about 90 CPU s (seed 0)  # doctest: +SKIP
"""

from __future__ import annotations

from mfg_rl.agents.dafp import AveragedFictitiousPlay
from mfg_rl.agents.omd import OMDModule


class DAFPQModule(AveragedFictitiousPlay, OMDModule):
    """Fictitious play with soft Q-learning best responses on ``env_id`` (``dafp-q``, ``fp-q``; see
    ``mfg_rl.agents.train``; ``DAFPQHyperparameters``)."""
