"""Exceptions raised by mfg-rl."""


class SolverError(RuntimeError):
    """A numerical solve failed: divergence, NaN, or no convergence within the budget.

    The message says where (which solver, iteration, time index) and why.
    """
