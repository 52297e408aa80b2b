"""The nouns of the library: grids, fields, Hamiltonians and the MFG problem."""

from mfg_rl.core.field import SpacetimeField
from mfg_rl.core.grid import BOUNDARY_KINDS, Grid, TimeGrid
from mfg_rl.core.hamiltonian import Hamiltonian
from mfg_rl.core.problem import CostFn, MFGProblem

__all__ = ["BOUNDARY_KINDS", "CostFn", "Grid", "Hamiltonian", "MFGProblem", "SpacetimeField", "TimeGrid"]
