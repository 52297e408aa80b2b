"""One evacuation, four ways to walk: quadratic, bounded speed, power law and your own H(x, p, m).

The same corridor game solved with four Hamiltonians of ``mfg_rl.core``; the table shows how
the effort model changes the fastest walker, the evacuation time and the value at the start.
The last one is a plain function, differentiated by autodiff and checked (isotropic, convex).

Run: python examples/hamiltonians.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
from dataclasses import replace

import numpy as np

from mfg_rl import problems, solve
from mfg_rl.core import CustomHamiltonian, Hamiltonian

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
size = {"Nx": 40, "Nt": 20} if tiny else {"Nx": 200, "Nt": 100}


def softened(x, p, m):
    """``H = log(cosh(p))``, written overflow-free: quadratic for slow walks, speeds below 1."""
    import array_api_compat

    xp = array_api_compat.array_namespace(p)
    return xp.logaddexp(p, -p) - np.log(2.0)


base = problems.make("crowd-exit-1d", congestion=0.0, **size)
games = {
    "quadratic": base,
    "bounded |alpha|<=0.6": problems.make("crowd-walk-1d", max_speed=0.6, **size),
    "power law q=3": problems.make("crowd-power-1d", power=3.0, **size),
    "log cosh (custom)": replace(base, hamiltonian=CustomHamiltonian(softened, "log-cosh", max_speed=1.0),
                                 name="custom", notes=()),
}
assert isinstance(games["quadratic"].hamiltonian, Hamiltonian)
print(f"{'Hamiltonian':24s} {'max |alpha|':>11s} {'inside at T':>11s} {'E[u(0)]':>9s} {'iterations':>10s}")
for label, problem in games.items():
    eq = solve(problem, coupling="anderson", progress=False)
    d = eq.diagnostics
    value = float((eq.u.numpy()[0] * problem.m0).sum() * problem.grid.cell_volume)
    fastest = float(np.abs(eq.controls()[..., :-1]).max())  # the cell at the exit is left out
    print(f"{label:24s} {fastest:11.3f} {d.mass[-1]:11.4f} {value:9.4f} {d.iterations:10d}")
