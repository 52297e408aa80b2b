"""The nouns of the library: grids, fields, Hamiltonians and the MFG problem."""

from mfg_rl.core.field import SpacetimeField
from mfg_rl.core.grid import BOUNDARY_KINDS, Grid, TimeGrid
from mfg_rl.core.hamiltonians import (
    BoundedControlHamiltonian,
    CustomHamiltonian,
    Hamiltonian,
    IsotropicHamiltonian,
    PowerLawHamiltonian,
)
from mfg_rl.core.problem import CostFn, MFGProblem

__all__ = [
    "BOUNDARY_KINDS", "BoundedControlHamiltonian", "CostFn", "CustomHamiltonian", "Grid", "Hamiltonian",
    "IsotropicHamiltonian", "MFGProblem", "PowerLawHamiltonian", "SpacetimeField", "TimeGrid",
]
