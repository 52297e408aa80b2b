"""``GridAverage``: fictitious play's exact average control on the grid, checked against the
crowd-weighted mean computed by hand, its lookup at nodes and between them, and its state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfg_rl.agents.average_policy import GridAverage
from mfg_rl.core import Grid


def _node_observations(grid: Grid, level: int, levels: int) -> torch.Tensor:
    """``[t/T, x, m]`` at every node of ``grid`` (``indexing="ij"``) at ``level``."""
    nodes = np.stack([a.reshape(-1) for a in grid.mesh()], axis=-1)
    t = np.full((nodes.shape[0], 1), level / levels)
    return torch.as_tensor(np.concatenate([t, nodes, np.zeros_like(t)], axis=1), dtype=torch.float32)


def test_grid_average_is_the_crowd_weighted_mean_of_the_best_responses_at_every_node() -> None:
    """Three best responses on a 2D grid (periodic x, walls in y), random crowds and controls, one
    crowd zero on a patch: at every node and level, ``act`` is ``sum_j m_j alpha_j / sum_j m_j`` to
    float32 round-off; where no crowd has been, the latest control."""
    rng = np.random.default_rng(0)
    grid = Grid([(0.0, 1.0), (-1.0, 1.0)], (6, 5), boundary=("periodic", "no_flux"))
    Nt, d = 4, 2
    average = GridAverage(act_dim=d, max_action=10.0)
    average.start(grid, Nt)
    crowds = rng.uniform(0.0, 2.0, (3, Nt + 1, 6, 5))
    crowds[:, :, 0, 0] = 0.0  # nobody ever at node (0, 0)
    controls = rng.uniform(-3.0, 3.0, (3, Nt, 6, 5, d))
    for m, alpha in zip(crowds, controls, strict=True):
        average.add(m, alpha)
    weights = crowds[:, :-1, ..., None]
    expected = (weights * controls).sum(0) / np.maximum(weights.sum(0), 1e-300)
    expected[:, 0, 0] = controls[-1][:, 0, 0]
    for n in range(Nt):
        got = average.act(_node_observations(grid, n, Nt)).numpy().reshape(6, 5, d)
        np.testing.assert_allclose(got, expected[n], rtol=1e-5, atol=1e-5)


def test_grid_average_interpolates_linearly_between_nodes_and_clips_to_max_action() -> None:
    """1D grid of 4 cells (nodes 0.125 ... 0.875): halfway between nodes 1 and 2 the mean of their
    controls; beyond the outermost node the node's value; controls beyond ``max_action`` clipped."""
    average = GridAverage(act_dim=1, max_action=2.5)
    average.start(Grid([(0.0, 1.0)], 4), Nt=2)
    control = np.array([[0.0, 1.0, 2.0, 3.0], [-1.0, -1.0, -1.0, -1.0]])[..., None]
    average.add(np.ones((3, 4)), control)
    obs = torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.99, 0.0], [0.5, 0.3, 0.0], [1.0, 0.3, 0.0]])
    torch.testing.assert_close(average.act(obs)[:, 0], torch.tensor([1.5, 0.0, 2.5, -1.0, -1.0]))


def test_grid_average_state_dict_restores_a_fresh_one_and_bad_input_raises() -> None:
    grid = Grid([(0.0, 2.0)], 5, boundary="periodic")
    average = GridAverage(act_dim=1, max_action=1.0)
    average.start(grid, Nt=3)
    rng = np.random.default_rng(1)
    average.add(rng.uniform(0.1, 1.0, (4, 5)), rng.uniform(-1.0, 1.0, (3, 5, 1)))
    fresh = GridAverage(act_dim=1, max_action=1.0)
    assert not fresh.started
    fresh.load_state_dict(average.state_dict())
    assert fresh.started and fresh.grid == grid
    obs = torch.tensor([[0.0, 0.1, 0.0], [1.0 / 3.0, 1.9, 0.0], [2.0 / 3.0, 1.0, 0.0]])
    assert torch.equal(fresh.act(obs), average.act(obs))
    for name in ("mass", "flux", "control"):
        assert torch.equal(getattr(fresh, name), getattr(average, name))
    with pytest.raises(ValueError, match=r"m and alpha must have shapes \(4, 5\) and \(3, 5, 1\)"):
        average.add(np.ones((3, 5)), np.zeros((3, 5, 1)))
    with pytest.raises(ValueError, match="grid must have act_dim=2 axes"):
        GridAverage(act_dim=2, max_action=1.0).start(grid, Nt=3)
    with pytest.raises(RuntimeError, match="before start"):
        GridAverage(act_dim=1, max_action=1.0).act(obs)
