"""Hamiltonians: the isotropic convex family ``H(x, p, m) = psi(x, |p|^2, m)``, one class per file."""

from mfg_rl.core.hamiltonians.base import IsotropicHamiltonian
from mfg_rl.core.hamiltonians.bounded import BoundedControlHamiltonian
from mfg_rl.core.hamiltonians.custom import CustomHamiltonian
from mfg_rl.core.hamiltonians.power_law import PowerLawHamiltonian
from mfg_rl.core.hamiltonians.quadratic import Hamiltonian

__all__ = ["BoundedControlHamiltonian", "CustomHamiltonian", "Hamiltonian", "IsotropicHamiltonian",
           "PowerLawHamiltonian"]
