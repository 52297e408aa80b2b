"""Lightning actor-critic agents (issue: the main job)."""
