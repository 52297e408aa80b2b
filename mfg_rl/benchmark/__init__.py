"""Scoring policies against the PDE equilibrium (issue: the main job)."""
