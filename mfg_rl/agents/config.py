"""Hyperparameters of PPO and A2C, with defaults from the known-good references.

PPO follows CleanRL's ``ppo_continuous_action.py`` / Stable-Baselines3 (clip 0.2, GAE
lambda 0.95, advantage normalisation, value clipping, grad-norm 0.5, Adam eps 1e-5,
orthogonal init, state-independent log-std, 10 epochs) with four changes for finite-horizon MFGs:

- ``gamma = 1``: the game's cost is undiscounted and time is in the observation, so the
  value function is exact without discounting (the references use 0.99 for infinite tasks).
- ``n_steps = None`` means one horizon (``Nt`` steps): a rollout is a whole episode of every
  agent, and ``num_envs = 128`` agents give batches of ``128 Nt`` transitions.
- ``learning_rate = 1e-3`` annealed linearly to 0 (CleanRL anneals 3e-4): the LQ games are
  small and smooth, and the annealing removes the noise floor that limits exploitability.
- ``num_minibatches = 4`` (minibatches of 1600 for 128 agents x 50 steps; CleanRL: 32 of 64):
  with batches 3x larger than CleanRL's, fewer, larger steps are twice as fast per env step
  on a CPU and reach the same exploitability (measured on LQ1D-v0: 47x vs 27x in 90 s).

A2C follows Stable-Baselines3 (one gradient step per rollout, ``gae_lambda = 1``, no
advantage normalisation, RMSprop lr 7e-4, alpha 0.99, eps 1e-5), with the same ``gamma`` and
``n_steps`` changes.

SAC (``SACHyperparameters``) follows Stable-Baselines3 / CleanRL's ``sac_continuous_action.py``
(Adam 3e-4, batch 256, ``tau = 0.005``, twin ReLU critics, automatic entropy tuning towards
``-d``, replay of 1e6 transitions), with ``gamma = 1`` as above and three changes measured on
LQ1D-v0 (one seed, 32k env steps of 128 agents):

- ``hidden = (64, 64)`` (SB3: 256x256): as good per update and 3x faster on a CPU, where SAC
  is bound by its updates.
- ``init_alpha = 0.01`` (SB3: 1): the games' rewards are ``O(1e-2)`` per step, so a temperature
  of 1 drowns them in the entropy bonus until autotuning has brought it down (1.8x vs 2.8x
  lower exploitability after 300 updates).
- ``gradient_steps = 32`` per step of all agents (SB3: 1 per step of its vector env): one
  step of 128 agents brings 128 transitions; 2000 updates reach 0.045, 8000 reach 0.0066.

An iteration is ``n_steps`` steps of all agents (``None``: one horizon), each followed by
``gradient_steps`` updates on minibatches drawn from the replay.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Hyperparameters:
    """Everything that shapes learning; ``train(..., **hyperparameters)`` overrides fields.

    Attributes:
        learning_rate: optimiser step size (annealed linearly to 0 when ``anneal_lr``).
        n_steps: env steps per rollout and agent; ``None``: one horizon ``Nt``.
        num_minibatches: minibatches per epoch (PPO); the batch is ``n_steps * num_envs``.
        update_epochs: passes over each rollout (PPO; A2C: 1).
        gamma, gae_lambda: discount and GAE parameter.
        clip_coef: PPO ratio clip; ``clip_vloss``: clip the value update the same way.
        ent_coef, vf_coef: entropy bonus and value-loss weights.
        max_grad_norm: global gradient-norm clip.
        norm_adv: normalise advantages per minibatch.
        target_kl: stop the epochs of an update early above this approx KL (``None``: never; PPO only).
        hidden: hidden layer widths of the actor and the critic (tanh).
        log_std_init: initial log standard deviation of the Gaussian policy.
        optimizer: ``"adam"`` or ``"rmsprop"``.
        anneal_lr: decay the learning rate linearly to 0 over the budget.
        eval_every: score with ``mfg_rl.benchmark.evaluate`` every this many iterations.
        fp_every: fictitious play: iterations of learning per outer (crowd) update.
    """

    learning_rate: float = 1e-3
    n_steps: int | None = None
    num_minibatches: int = 4
    update_epochs: int = 10
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    target_kl: float | None = None
    hidden: tuple[int, ...] = (64, 64)
    log_std_init: float = 0.0
    optimizer: str = "adam"
    anneal_lr: bool = True
    eval_every: int = 10
    fp_every: int = 10


@dataclass
class SACHyperparameters:
    """SAC's hyperparameters; ``train(..., algo="sac", **hyperparameters)`` overrides fields.

    Attributes:
        learning_rate: Adam step size of actor, critics and temperature.
        n_steps: env steps of all agents per iteration; ``None``: one horizon ``Nt``.
        gradient_steps: updates after every env step (each of ``batch_size`` transitions).
        batch_size: transitions per update, drawn uniformly from the replay.
        buffer_size: replay capacity in transitions (preallocated on the env's device).
        learning_starts: transitions collected with uniform random actions before the first update.
        gamma: discount; ``tau``: Polyak rate of the target critics.
        init_alpha: initial entropy temperature; ``autotune``: learn it towards ``target_entropy``.
        target_entropy: ``None``: ``-d`` (SB3, CleanRL).
        hidden: hidden widths of the actor and of each critic (ReLU).
        max_grad_norm: global gradient-norm clip of each network (``None``: none).
        eval_every: score with ``mfg_rl.benchmark.evaluate`` every this many iterations.

    SAC learns the best response to the frozen equilibrium crowd (``regime="best-response"``).
    """

    learning_rate: float = 3e-4
    n_steps: int | None = None
    gradient_steps: int = 32
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 1_000
    gamma: float = 1.0
    tau: float = 0.005
    init_alpha: float = 0.01
    autotune: bool = True
    target_entropy: float | None = None
    hidden: tuple[int, ...] = (64, 64)
    max_grad_norm: float | None = None
    eval_every: int = 10


A2C_DEFAULTS = {"learning_rate": 7e-4, "num_minibatches": 1, "update_epochs": 1, "gae_lambda": 1.0,
                "clip_vloss": False, "norm_adv": False, "optimizer": "rmsprop"}
"""A2C's departures from ``Hyperparameters`` (Stable-Baselines3's A2C)."""


def defaults(algo: str) -> Any:
    """The documented defaults of ``algo`` (a name of ``mfg_rl.agents.algorithms``)."""
    from mfg_rl.agents.algorithms import get

    return get(algo).default_parameters()


def hyperparameters(algo: str, overrides: dict[str, Any]) -> Any:
    """``defaults(algo)`` with ``overrides``, checked; unknown names raise ``TypeError`` naming them."""
    from mfg_rl.agents.algorithms import get

    entry = get(algo)
    base = entry.default_parameters()
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown hyperparameters {unknown}; known: {', '.join(sorted(known))}")
    params = dataclasses.replace(base, **overrides)
    if "hidden" in overrides:
        params.hidden = tuple(int(h) for h in params.hidden)
    return entry.check(params)


def _positive_integers(params: Any, names: tuple[str, ...]) -> None:
    """``ValueError`` naming the first field of ``names`` that is not an integer >= 1 (bools are not)."""
    for name in names:
        value = getattr(params, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_actor_critic(params: Hyperparameters) -> Hyperparameters:
    """``ValueError`` naming the first PPO/A2C hyperparameter out of its range."""
    if params.optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {params.optimizer!r}")
    for name in ("num_minibatches", "update_epochs", "eval_every", "fp_every"):
        if int(getattr(params, name)) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(params, name)!r}")
    if params.n_steps is not None and params.n_steps < 1:
        raise ValueError(f"n_steps must be >= 1 or None, got {params.n_steps!r}")
    return params


def check_a2c(params: Hyperparameters) -> Hyperparameters:
    """``check_actor_critic``, and no ``target_kl`` (A2C has no ratio)."""
    if params.target_kl is not None:
        raise ValueError("target_kl stops PPO's epochs on the ratio's KL; a2c has no ratio: leave it None")
    return check_actor_critic(params)


def check_sac(params: SACHyperparameters) -> SACHyperparameters:
    """``ValueError`` naming the first SAC hyperparameter out of its range."""
    _positive_integers(params, ("gradient_steps", "batch_size", "buffer_size", "eval_every"))
    if isinstance(params.learning_starts, bool) or not isinstance(params.learning_starts, int) \
            or params.learning_starts < 0:
        raise ValueError(f"learning_starts must be an integer >= 0, got {params.learning_starts!r}")
    if params.n_steps is not None and (not isinstance(params.n_steps, int) or params.n_steps < 1):
        raise ValueError(f"n_steps must be >= 1 or None, got {params.n_steps!r}")
    if params.batch_size > params.buffer_size:
        raise ValueError(f"batch_size={params.batch_size} exceeds buffer_size={params.buffer_size}")
    checks = (("learning_rate", params.learning_rate, 0.0 < params.learning_rate),
              ("gamma", params.gamma, 0.0 <= params.gamma <= 1.0),
              ("tau", params.tau, 0.0 < params.tau <= 1.0),
              ("init_alpha", params.init_alpha, 0.0 < params.init_alpha),
              ("max_grad_norm", params.max_grad_norm,
               params.max_grad_norm is None or params.max_grad_norm > 0))
    for name, value, ok in checks:
        if not ok or (value is not None and not math.isfinite(value)):
            raise ValueError(f"{name} out of range: got {value!r} (see "
                             "mfg_rl.agents.config.SACHyperparameters)")
    if params.target_entropy is not None and not math.isfinite(params.target_entropy):
        raise ValueError(f"target_entropy must be finite or None, got {params.target_entropy!r}")
    if not params.hidden or min(params.hidden) < 1:
        raise ValueError(f"hidden must be positive layer widths, got {params.hidden!r}")
    return params


@dataclass
class AveragePolicyHyperparameters:
    """The outer loop of deep averaged fictitious play, whatever learns its best responses
    (``dafp``: PPO, ``dafp-q``: soft Q-learning): samples, reservoir, average policy and crowd.

    Attributes:
        crowd: ``"pde"`` (the crowd of the average policy from the scheme's Fokker-Planck) or
            ``"model-free"`` (a histogram of ``crowd_agents`` agents playing it in the env).
        average: ``"network"`` (the average policy learnt from the reservoir, D-AFP) or ``"grid"``
            (``average_policy.GridAverage``: the exact mean of the best responses' controls on the
            game's grid, each weighed by its crowd, the ``"pde"`` crowd or, model-free, the histogram
            of ``crowd_agents`` agents playing it; no samples, reservoir or regression).
        sample_agents: agents playing the best response for the reservoir, one horizon per outer
            iteration (``Nt * sample_agents`` env steps: a quarter of the best response's with
            ``num_envs = 128`` and two of its iterations).
        crowd_agents: agents of the model-free crowd, one horizon per outer iteration (``Nt *
            crowd_agents`` env steps); the histogram's relative error in a cell of mass ``q`` is
            about ``1 / sqrt(q crowd_agents)``.
        buffer_size: reservoir capacity in ``(t, x, alpha)`` samples (on the env's device).
        average_steps: Adam steps of the average policy per outer iteration.
        average_batch_size: samples per supervised step, drawn uniformly from the reservoir.
        average_learning_rate: Adam step size of the average policy.
        average_hidden: hidden widths of the average policy (tanh).
    """

    crowd: str = "pde"
    average: str = "network"
    sample_agents: int = 64
    crowd_agents: int = 4096
    buffer_size: int = 200_000
    average_steps: int = 200
    average_batch_size: int = 512
    average_learning_rate: float = 1e-3
    average_hidden: tuple[int, ...] = (64, 64)


def check_average_policy(params: Any) -> Any:
    """``ValueError`` naming the first ``AveragePolicyHyperparameters`` field of ``params`` out of range."""
    if params.crowd not in ("pde", "model-free"):
        raise ValueError(f"crowd must be 'pde' or 'model-free', got {params.crowd!r}")
    if params.average not in ("network", "grid"):
        raise ValueError(f"average must be 'network' or 'grid', got {params.average!r}")
    _positive_integers(params, ("sample_agents", "crowd_agents", "buffer_size", "average_steps",
                                "average_batch_size"))
    if params.average_batch_size > params.buffer_size:
        raise ValueError(f"average_batch_size={params.average_batch_size} exceeds "
                         f"buffer_size={params.buffer_size}")
    rate = params.average_learning_rate
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"average_learning_rate must be a finite number > 0, got {rate!r}")
    params.average_hidden = tuple(int(h) for h in params.average_hidden)
    if not params.average_hidden or min(params.average_hidden) < 1:
        raise ValueError(f"average_hidden must be positive layer widths, got {params.average_hidden!r}")
    return params


@dataclass
class DAFPHyperparameters(AveragePolicyHyperparameters, Hyperparameters):
    """Deep averaged fictitious play (``algo="dafp"``): PPO's fields (``Hyperparameters``, the best
    response's learner) and the outer loop's (``AveragePolicyHyperparameters``).
    ``train(..., algo="dafp", regime="fictitious-play")``.

    One outer iteration is ``fp_every`` PPO iterations (``fp_every * n_steps * num_envs`` env steps
    of best response), then one horizon of ``sample_agents`` agents playing the best response's
    deterministic control (samples for the reservoir), ``average_steps`` supervised steps, and the
    new crowd. The samples (and the model-free crowd's agents) are env steps beyond ``train``'s
    ``steps``, which counts the best responses' only; ``TrainResult.env_steps`` counts them all.
    The average policy is scored at every outer iteration (``eval_every`` does not apply).
    Two of PPO's defaults change: ``anneal_lr = False`` (every best response tracks a new crowd, so
    the late ones need the step size as much as the first) and ``fp_every = 2`` (many short best
    responses: on SantaFeBar, 2 gave 11x lower exploitability in 600k steps, 5 gave 3.7x in 300k).
    """

    fp_every: int = 2
    anneal_lr: bool = False


def check_dafp(params: DAFPHyperparameters) -> DAFPHyperparameters:
    """``check_actor_critic`` (PPO's fields), then ``check_average_policy``."""
    return check_average_policy(check_actor_critic(params))


@dataclass
class OMDHyperparameters:
    """Deep Munchausen online mirror descent (``mfg_rl.agents.omd``); ``train(..., algo="omd", **fields)``.

    Defaults follow OpenSpiel's ``munchausen_deep_mirror_descent.py`` (Lauriere et al. 2022, D-MOMD)
    and Munchausen RL (Vieillard et al. 2020) unless said otherwise.

    Attributes:
        learning_rate: Adam step size of the Q-network (OpenSpiel: SGD 0.01; SB3's DQN: Adam 1e-4;
            here 1e-3 for the few hundred updates an outer iteration affords).
        n_steps: env steps of all agents per outer iteration; ``None``: one horizon ``Nt``.
        gradient_steps: regression updates of ``Q_{k+1}`` per outer iteration (80 target copies).
        batch_size: transitions per update (OpenSpiel: 128; here 256, SAC's).
        target_update_every: updates between copies of ``q`` into the target network (OpenSpiel: 300).
            Here 5: each copy carries values one step back in time, and an iteration that does not
            carry them over the whole horizon feeds ``pi_{k+1}`` stale values, so the crowd cycles
            (SantaFeBar-v0, ``Nt = 100``, seed 0: after 384k env steps 0.065 with 400 updates copied
            every 5, 0.42 with 200 every 10; with 200 every 50 it cycled between 0.1 and 1.9 over 1M).
        gamma: discount (1: the games are finite-horizon, time is observed).
        tau: softmax temperature, in units of reward per unit time (rewards are divided by ``dt``,
            so ``tau`` means the same on every time grid; OpenSpiel's 0.05 is in its games' reward
            units; 3 measured on LQ1D-v0 and SantaFeBar-v0 at Nx=51, against 1, which swings more).
        munchausen_alpha: weight of ``pi_k`` in ``pi_{k+1} ~ pi_k^alpha exp(q / tau)`` (OpenSpiel: 0.9).
        log_policy_clip: lower clip ``l0`` of ``log pi_k(a|s)`` in the bonus (OpenSpiel: ``log 1e-6``;
            Vieillard et al. clip ``tau log pi`` at -1, in the units of clipped Atari rewards).
        epsilon: share of uniformly random grid actions while collecting (OpenSpiel: 0.1).
        actions_per_axis: ``K`` grid actions per axis, odd; ``None``: 21 in 1D, 11 per axis (121) in 2D.
            Not 11 and 7 (as before): the scored control is the softmax's mean action, and a coarse
            grid leaves a quantisation floor (seed 0, default tau: CrowdExit1D-v0 after 3M env steps
            0.029 with 21 against 0.081 with 11, which plateaus at 0.065-0.09 up to 7M; SantaFeBar-v0
            after 1M 0.016 against 0.029; LQ1D-v0 after 500k 1.1e-3 against 7e-4; Crowd2D-v0 after
            1M 0.107 with 11 x 11 against 0.270 with 7 x 7).
        hidden: hidden widths of the Q-network's trunk (``softmax_q.DuelingQ``, ReLU; OpenSpiel: one
            layer of 128, no dueling heads).
        max_grad_norm: gradient-norm clip (``None``: none; OpenSpiel: none).
        average_last: the returned, scored and checkpointed control is the mean of the last
            ``average_last`` iterates' (1: the last iterate); the crowd of every iteration stays the
            last iterate's (the crowd of the mean made OMD cycle: SantaFeBar-v0 seed 0, 10 iterates,
            0.02 - 0.39 over 2M steps). The last iterate has spikes (SantaFeBar-v0 seed 2, 2M steps:
            0.008 - 0.010 over its last 20 iterations, 0.034 at the end) that the mean of 10 smooths
            (0.0080 at the end).
        eval_every: score with ``mfg_rl.benchmark.evaluate`` every this many iterations and at the end.
            A score of the mean of ``average_last`` iterates evaluates each of them on all ``Nt x
            nodes`` states (Crowd2D-v0, one thread: 2.8 CPU s with 10 iterates, 0.5 s with one,
            against 1.8 s for the rest of an iteration); the crowd of the last iterate is computed
            every iteration all the same.
    """

    learning_rate: float = 1e-3
    n_steps: int | None = None
    gradient_steps: int = 400
    batch_size: int = 256
    target_update_every: int = 5
    gamma: float = 1.0
    tau: float = 3.0
    munchausen_alpha: float = 0.9
    log_policy_clip: float = math.log(1e-6)
    epsilon: float = 0.1
    actions_per_axis: int | None = None
    hidden: tuple[int, ...] = (128, 128)
    max_grad_norm: float | None = None
    average_last: int = 10
    eval_every: int = 5


def check_omd(params: OMDHyperparameters) -> OMDHyperparameters:
    """``ValueError`` naming the first OMD hyperparameter out of its range."""
    _positive_integers(params, ("gradient_steps", "batch_size", "target_update_every", "average_last",
                                "eval_every"))
    for name, low in (("n_steps", 1), ("actions_per_axis", 3)):
        value = getattr(params, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an integer >= {low} or None, got {value!r}")
    if params.actions_per_axis is not None and params.actions_per_axis % 2 == 0:
        raise ValueError(f"actions_per_axis must be odd (the zero control on the grid), got "
                         f"{params.actions_per_axis}")
    checks = (("learning_rate", params.learning_rate, 0.0 < params.learning_rate),
              ("gamma", params.gamma, 0.0 <= params.gamma <= 1.0),
              ("tau", params.tau, 0.0 < params.tau),
              ("munchausen_alpha", params.munchausen_alpha, 0.0 <= params.munchausen_alpha <= 1.0),
              ("log_policy_clip", params.log_policy_clip, params.log_policy_clip < 0.0),
              ("epsilon", params.epsilon, 0.0 <= params.epsilon <= 1.0),
              ("max_grad_norm", params.max_grad_norm,
               params.max_grad_norm is None or params.max_grad_norm > 0))
    for name, value, ok in checks:
        if not ok or (value is not None and not math.isfinite(value)):
            raise ValueError(f"{name} out of range: got {value!r} (see "
                             "mfg_rl.agents.config.OMDHyperparameters)")
    if not params.hidden or min(params.hidden) < 1:
        raise ValueError(f"hidden must be positive layer widths, got {params.hidden!r}")
    return params


@dataclass
class DAFPQHyperparameters(AveragePolicyHyperparameters, OMDHyperparameters):
    """Deep averaged fictitious play with soft Q-learning best responses (``algo="dafp-q"``): OMD's
    learner (``OMDHyperparameters``) with ``munchausen_alpha = 0`` and the outer loop of D-AFP
    (``AveragePolicyHyperparameters``). ``train(..., algo="dafp-q", regime="fictitious-play")``.

    An iteration fits ``Q_{k+1}`` to the soft Bellman target of ``pi_k = softmax(Q_k / tau)`` against
    the frozen crowd (one step of soft policy iteration, warm-started), and every ``fp_every``
    iterations comes D-AFP's outer iteration: samples of the best response's mean action, the average
    policy, its crowd. ``average_last`` and ``eval_every`` do not apply: the average policy is what
    is returned, and it is scored at every outer iteration. With ``munchausen_alpha > 0`` the best
    response is a mirror-descent step from the last one instead of a policy-iteration step (``fp-q``,
    ``FPQ_DEFAULTS``).
    The average policy takes smaller, more Adam steps than D-AFP's, ``average_learning_rate = 3e-4``
    and ``average_steps = 600``: once the best responses keep up, the swings left are the regression's
    (SantaFeBar-v0 seed 0, 1M steps: final 0.046 and rebound 2.6 with D-AFP's 1e-3 x 200, 0.036 and
    2.0 with 3e-4 x 600, 0.061 and 2.9 with 1e-4 x 1000, 0.039 and 3.0 with batches of 4096).
    ``tau = 3`` is OMD's, but here it is the best responses' own temperature, ten times OMD's fixed
    point's ``(1 - alpha) tau``: their mean action is shrunk, and on the exit games fictitious play
    rises (CrowdExit1D-v0 seed 0, 1M steps: 3.5 at tau 3, 0.88 at 1, 0.17 at 0.5, 0.092 at 0.3,
    where SantaFeBar-v0 gives 0.036, 0.026, 0.038, 0.043 with rebounds 2.0, 2.9, 4.4, 4.7).
    """

    munchausen_alpha: float = 0.0
    average_last: int = 1
    fp_every: int = 1
    average_steps: int = 600
    average_learning_rate: float = 3e-4


FPQ_DEFAULTS = {"average": "grid", "munchausen_alpha": 0.9}
"""``algo="fp-q"``: ``dafp-q``'s outer loop with the exact average on the grid
(``average_policy.GridAverage``) in place of the learnt one, and best responses learnt by OMD's
Munchausen step (``pi_{k+1} ~ pi_k^0.9 exp(q_{k+1} / tau)``, the temperature of its fixed point
``(1 - alpha) tau = 0.3``) in place of a policy-iteration step at ``tau = 3``. Measured at 1M steps,
seed 0: SantaFeBar-v0 0.025 (rebound 1.54) against 0.055 (1.7) with ``munchausen_alpha = 0``;
CrowdExit1D-v0 0.11 (rebound 1.16) against 2.0, rising, with 0 (0.84 at ``tau = 1``, 0.13 at 0.5,
where SantaFeBar swings 7x)."""


def check_dafp_q(params: DAFPQHyperparameters) -> DAFPQHyperparameters:
    """``check_omd`` (the learner's fields), ``fp_every``, then ``check_average_policy``."""
    check_omd(params)
    _positive_integers(params, ("fp_every",))
    return check_average_policy(params)
