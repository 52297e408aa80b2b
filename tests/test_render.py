"""``render()``: frames a person can read (axes, colour bar, time in the title, each agent at its time)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

from mfg_rl.envs import env_ids, render

FAST = {"backend": "numpy", "coupling": "anderson"}
SMALL = {"mfg_rl/Crowd2D-v0": dict(Nx=10, Ny=10, Nt=6)}
LINE = [(0.0, 1.0)]
ROOM = [(0.0, 1.0), (0.0, 2.0)]

pytestmark = pytest.mark.usefixtures("isolated_cache")


def small(env_id: str) -> dict[str, int]:
    return SMALL.get(env_id, dict(Nx=40, Nt=10))


def labels(figure: object) -> dict[str, str]:
    """Axis labels and titles of every axes of ``figure``, by what they are."""
    out: dict[str, str] = {}
    for k, axes in enumerate(figure.axes):
        out[f"x{k}"], out[f"y{k}"], out[f"title{k}"] = axes.get_xlabel(), axes.get_ylabel(), axes.get_title()
    return out


def white_columns(image: np.ndarray) -> np.ndarray:
    """Columns of pure-white pixels inside the plot rectangle of a one-colour-bar frame."""
    left, bottom, width, height = render.LAYOUTS[1][0]
    rows = slice(int((1 - bottom - height) * render.HEIGHT) + 2, int((1 - bottom) * render.HEIGHT) - 2)
    cols = slice(int(left * render.WIDTH) + 2, int((left + width) * render.WIDTH) - 2)
    inside = image[rows, cols]
    return np.nonzero(np.all(inside == 255, axis=-1))[1] + cols.start


def column_of(t: float, T: float, levels: int) -> float:
    """Pixel column of time ``t`` in the 1D heat map (levels are cells of width ``T / (levels - 1)``)."""
    left, _, width, _ = render.LAYOUTS[1][0]
    half = 0.5 * T / (levels - 1)
    return (left + width * (t + half) / (T + 2 * half)) * render.WIDTH


@pytest.mark.parametrize("env_id", env_ids())
def test_single_and_vector_frames_of_every_env(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array", solve_options=FAST, **small(env_id))
    env.reset(seed=0)
    first = env.render()
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert first.shape == (render.HEIGHT, render.WIDTH, 3) and first.dtype == np.uint8
    assert not np.array_equal(env.render(), first)  # the agent and the time moved
    envs = gymnasium.make_vec(env_id, num_envs=6, device="cpu", render_mode="rgb_array", solve_options=FAST,
                              **small(env_id))
    envs.reset(seed=0)
    frame = envs.render()
    assert frame.shape == (render.HEIGHT, render.WIDTH, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_1d_frame_has_axes_a_colour_bar_and_the_time() -> None:
    density = np.random.default_rng(0).random((11, 20))
    figure = render.figure(density, np.array([0.5]), np.array([[0.3]]), LINE, 1.0)
    text = labels(figure)
    assert (text["x0"], text["y0"]) == ("time t", "position x")
    assert text["title0"] == "t = 0.5 of T = 1"
    assert len(figure.axes) == 2 and text["y1"] == "density m(t, x)"  # the colour bar
    assert figure.axes[1].get_ylim() == pytest.approx((0.0, density.max()))


def test_batched_1d_frame_draws_each_agent_at_its_own_time() -> None:
    density = np.full((11, 20), 0.5)
    x = np.array([[0.5], [0.5]])
    shared = render.frame(density, np.array([0.2, 0.2]), x, LINE, 1.0)
    spread = render.frame(density, np.array([0.2, 0.8]), x, LINE, 1.0)
    assert not np.array_equal(shared, spread)
    columns = white_columns(spread)
    for t in (0.2, 0.8):
        near = columns[np.abs(columns - column_of(t, 1.0, 11)) < 8]
        assert near.size and abs(near.mean() - column_of(t, 1.0, 11)) < 2.0, (t, columns)
    title = labels(render.figure(density, np.array([0.2, 0.8]), x, LINE, 1.0))["title0"]
    assert title == "2 agents at t in [0.2, 0.8] (T = 1)"


def test_batched_env_frame_follows_the_agents_times() -> None:
    envs = gymnasium.make_vec("mfg_rl/LQ1D-v0", num_envs=4, device="cpu", render_mode="rgb_array",
                              solve_options=FAST, Nx=40, Nt=10)
    envs.reset(seed=0)
    together = envs.render()
    envs.unwrapped.batch.level = torch.tensor([0, 3, 6, 9])
    apart = envs.render()
    assert not np.array_equal(together, apart)
    columns = white_columns(apart)
    for level in (3, 6, 9):  # agents other than agent 0 are drawn at their own times
        assert np.any(np.abs(columns - column_of(level / 10, 1.0, 11)) < 3), (level, columns)


def test_2d_frame_shows_the_most_common_time_and_colours_agents_by_time() -> None:
    density = np.stack([np.full((8, 8), k + 1.0) for k in range(5)])  # level k has density k + 1
    x = np.array([[0.2, 0.5], [0.4, 1.0], [0.6, 1.5]])
    shared = render.figure(density, np.full(3, 0.5), x, ROOM, 1.0)
    text = labels(shared)
    assert (text["x0"], text["y0"], text["title0"]) == ("x", "y", "t = 0.5 of T = 1")
    assert text["y1"] == "density m(t, x, y)" and len(shared.axes) == 2
    assert shared.axes[1].get_ylim() == pytest.approx((0.0, 3.0))  # level 2 (t = 0.5) is shown
    spread = render.figure(density, np.array([0.25, 0.75, 0.75]), x, ROOM, 1.0)
    text = labels(spread)
    assert len(spread.axes) == 3 and text["y2"] == "agent's time t"
    assert text["title0"].startswith("m at t = 0.75; 3 agents at t in [0.25, 0.75]")
    assert spread.axes[1].get_ylim() == pytest.approx((0.0, 4.0))
    assert spread.axes[0].get_aspect() == 1.0


def test_n_player_frames_show_the_crowd_now() -> None:
    profile = render.figure(np.random.default_rng(0).random((1, 20)), np.full(5, 0.3),
                            np.linspace(0.1, 0.9, 5)[:, None], LINE, 1.0)
    text = labels(profile)
    assert (text["x0"], text["y0"]) == ("position x", "density m(t, x)")
    assert text["title0"] == "N-player crowd, t = 0.3 of T = 1"
    envs = gymnasium.make_vec("mfg_rl/CrowdExit1D-v0", num_envs=20, device="cpu", render_mode="rgb_array",
                              population="empirical", solve_options=FAST, Nx=40, Nt=10)
    envs.reset(seed=0)
    before = envs.render()
    envs.step(torch.zeros(20, 1))
    assert before.shape == (render.HEIGHT, render.WIDTH, 3) and not np.array_equal(envs.render(), before)


def test_rendering_leaves_no_pyplot_figures() -> None:
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    render.frame(np.ones((3, 5)), np.zeros(2), np.full((2, 1), 0.5), LINE, 1.0)
    assert plt.get_fignums() == open_before
