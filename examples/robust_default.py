"""The default solve on three hard games: where Anderson circles, where Newton stalls, and floors.

``solve(problem)`` uses ``coupling="auto"``: Anderson while it progresses, Newton from the best
iterate when it stalls, and back. The table shows which coupling finished each game and the
switches on the way; the notes say when uniqueness is not guaranteed. Last, a tolerance below
what the iteration can reach stops at its floor with a warning instead of spending max_iter.

Run: python examples/robust_default.py        (MFG_RL_EXAMPLE_SIZE=tiny for a smoke run)
"""

import os
import warnings

from mfg_rl import problems, solve

tiny = os.environ.get("MFG_RL_EXAMPLE_SIZE") == "tiny"
small = {"Nx": 40, "Nt": 20} if tiny else {}
games = {
    "santa-fe-bar T=10": problems.make("santa-fe-bar", T=10.0, **small),
    "attractive-1d T=1": problems.make("attractive-1d", **({"Nx": 21, "Nt": 10} if tiny else {})),
    "crowd-exit-1d sigma=0": problems.make("crowd-exit-1d", sigma=0.0, **small),
}
print(f"{'game':24s} {'converged':>9s} {'iterations':>10s} {'residual':>9s}  path")
for label, problem in games.items():
    d = solve(problem, progress=False).diagnostics
    path = " -> ".join(["anderson"] + [s["to"] for s in d.switches])
    print(f"{label:24s} {str(d.converged):>9s} {d.iterations:10d} {d.residual:9.1e}  {path}")
    for note in d.notes:
        print(f"{'':24s} note: {note}")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    d = solve(problems.make("lq-1d", Nx=41, Nt=10), tol=3e-15, progress=False).diagnostics
print(f"\nlq-1d asked for tol=3e-15: stopped_by={d.stopped_by!r} after {d.iterations} iterations at "
      f"{min(d.residuals):.1e}")
print("warning:", *(str(w.message) for w in caught if w.category is RuntimeWarning))
