"""Equilibrium solvers: time as a dimension (see docs/architecture.md, layer 4).

``solve(problem)`` runs a coupling loop (fixed point or fictitious play) over a
trajectory strategy (``Sequential`` marching) of implicit upwind HJB and adjoint FP steps.
"""

from mfg_rl.solvers.callbacks import Callback, EarlyStop, IterationState, ProgressBar, Snapshots
from mfg_rl.solvers.coupling import Anderson, FictitiousPlay, FixedPoint, run_coupling
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.equilibrium import Diagnostics, Equilibrium
from mfg_rl.solvers.newton import Newton, run_newton
from mfg_rl.solvers.parareal import Parareal
from mfg_rl.solvers.particles import ParticleFP, ParticleMFG, ParticleRun
from mfg_rl.solvers.policy import TransportOperator
from mfg_rl.solvers.solve import solve
from mfg_rl.solvers.spacetime import GlobalKrylov, GlobalSpacetime
from mfg_rl.solvers.stencil import LinearSolver
from mfg_rl.solvers.trajectory import Sequential, TrajectorySolver

__all__ = [
    "Anderson", "Callback", "Diagnostics", "DiscreteMFG", "EarlyStop", "Equilibrium", "FictitiousPlay",
    "FixedPoint", "GlobalKrylov", "GlobalSpacetime", "IterationState", "LinearSolver", "Newton", "Parareal",
    "ParticleFP", "ParticleMFG", "ParticleRun", "ProgressBar", "Sequential", "Snapshots", "TrajectorySolver",
    "TransportOperator", "run_coupling", "run_newton", "solve",
]
