"""Gymnasium environments built on a computed equilibrium (issue: Gymnasium population environments)."""
