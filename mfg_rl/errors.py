"""Exceptions raised by mfg-rl."""


class SolverError(RuntimeError):
    """A numerical solve failed: divergence, NaN, or no convergence within the budget.

    The message says where (which solver, iteration, time index) and why.
    """


class EquilibriumFileError(ValueError):
    """A saved equilibrium cannot be used: unreadable, damaged, or inconsistent with its problem.

    The message names the file and the defect; ``path`` and ``reason`` hold them apart.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(path, reason)  # both in args, so the error pickles (worker processes)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
