"""Does the env pay what the PDE says? Equilibrium-policy Monte Carlo return against -E_m0[u(0)].

For every registered id, ``N`` agents follow the equilibrium control in the equilibrium crowd
(``equilibrium_policy``); their mean first-episode return is compared with the PDE value
``-E_m0[u(0, x)]`` at the default grid and refined in space and time together (``Nx, Nt``,
``2 Nx, 2 Nt``, ...): the PDE value carries the upwind scheme's O(h) numerical diffusion and
both routes an O(dt) time error (implicit Euler, Euler-Maruyama), so the gap must shrink when
both are refined (refining dt alone converges the PDE to its semi-discrete value, not the SDE's).
Columns: Nx, Nt, MC mean +- standard error, PDE value, gap in %.

Usage::

    python benchmarks/env_vs_pde.py
    python benchmarks/env_vs_pde.py --ids mfg_rl/CrowdExit1D-v0 --agents 20000
"""

from __future__ import annotations

import argparse

import gymnasium

import mfg_rl  # noqa: F401  (registers the ids)
from mfg_rl.envs import equilibrium_policy, first_episode_returns
from mfg_rl.envs.registration import MAX_SPEED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", default=[f"mfg_rl/{name}" for name in MAX_SPEED])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--refinements", type=int, default=3, help="(Nx, Nt), (2 Nx, 2 Nt), ... (this many)")
    args = parser.parse_args()
    print(f"{'id':26s} {'Nx':>5s} {'Nt':>5s} {'MC return':>18s} {'PDE value':>10s} {'gap %':>7s}")
    for env_id in args.ids:
        problem = gymnasium.make_vec(env_id, num_envs=1, device="cpu").unwrapped.equilibrium.problem
        for k in range(args.refinements):
            cells = {axis: problem.params[axis] * 2**k for axis in ("Nx", "Ny") if axis in problem.params}
            nx, nt = cells["Nx"], problem.time.Nt * 2**k
            envs = gymnasium.make_vec(env_id, num_envs=args.agents, device="cpu", Nt=nt, **cells)
            eq = envs.unwrapped.equilibrium
            value = -float((eq.u.numpy()[0] * eq.problem.m0).sum() * eq.problem.grid.cell_volume)
            r = first_episode_returns(envs, equilibrium_policy(envs).act, seed=k)
            mean, error = float(r.mean()), float(r.std()) / len(r) ** 0.5
            gap = 100.0 * (mean - value) / abs(value)
            print(f"{env_id:26s} {nx:5d} {nt:5d} {mean:10.4f} +- {error:.4f} {value:10.4f} {gap:7.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
