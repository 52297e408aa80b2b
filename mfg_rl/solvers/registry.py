"""The names ``solve`` accepts: trajectory strategies (``method=``) and coupling policies (``coupling=``).

The registries live here, above the modules they name, so that no base module has to
import the strategies or policies built on it (``tests/test_import_graph.py``).
A name maps to a class constructed with its defaults: ``STRATEGIES["parareal"]()``.
"""

from __future__ import annotations

from mfg_rl.solvers.amr import AMR
from mfg_rl.solvers.auto import Auto
from mfg_rl.solvers.coupling import Anderson, FictitiousPlay, FixedPoint
from mfg_rl.solvers.jax_scan import JaxScan
from mfg_rl.solvers.newton import Newton
from mfg_rl.solvers.parareal import Parareal
from mfg_rl.solvers.spacetime import GlobalKrylov, GlobalSpacetime
from mfg_rl.solvers.trajectory import Sequential

STRATEGIES: dict[str, type] = {
    "sequential": Sequential, "global": GlobalSpacetime, "global-krylov": GlobalKrylov, "jax-scan": JaxScan,
    "parareal": Parareal, "amr": AMR,
}

POLICIES: dict[str, type] = {
    "auto": Auto, "fixed_point": FixedPoint, "fictitious_play": FictitiousPlay, "anderson": Anderson,
    "newton": Newton,
}
