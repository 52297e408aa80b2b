"""The default coupling converges where a strategy of the library can, and stops at floors.

Games and figures from issue 16: the attractive crowd (fixed point stalls, Newton from a
cold start stalls at a local minimum, Anderson converges), santa-fe-bar at T = 10 (Anderson
circles, Newton converges), tolerances below round-off, fictitious play's 1/k rate, large
time steps and transport without diffusion.
"""

import math
import warnings

import numpy as np
import pytest

from mfg_rl import create_backend, problems, solve
from mfg_rl.core.monotonicity import uniqueness_note
from mfg_rl.errors import SolverError
from mfg_rl.solvers import Callback, DiscreteMFG, Sequential
from mfg_rl.solvers.auto import Auto
from mfg_rl.solvers.coupling import Progress, attainable_floor


def test_progress_needs_a_new_best_by_ten_percent_within_patience():
    progress = Progress(patience=3)
    assert not any(progress.update(r) for r in (1.0, 0.85, 0.8, 0.79))  # 0.85 is progress, then 2 waits
    assert progress.update(0.78)  # a third iteration without beating 0.9 * 0.85
    assert progress.best == 0.78
    assert not Progress(patience=1).update(5.0)  # the first residual sets the reference


def test_attractive_game_converges_by_default_where_fixed_point_does_not():
    problem = problems.make("attractive-1d", Nx=21, Nt=10)
    with pytest.raises(SolverError, match="fixed_point did not converge"):
        solve(problem, coupling="fixed_point", backend="numpy", progress=False, max_iter=150)
    eq = solve(problem, backend="numpy", progress=False)
    d = eq.diagnostics
    assert d.converged and d.coupling == "auto" and d.residual <= 1e-8
    assert any("uniqueness is not guaranteed" in note for note in d.notes)
    np.testing.assert_allclose(d.mass, 1.0, atol=1e-12)


def test_santa_fe_long_horizon_switches_to_newton_and_records_it():
    problem = problems.make("santa-fe-bar", Nx=40, Nt=20, T=10.0)
    with pytest.raises(SolverError, match="anderson did not converge"):
        solve(problem, coupling="anderson", backend="numpy", progress=False, max_iter=60)
    eq = solve(problem, backend="numpy", progress=False)
    d = eq.diagnostics
    assert d.converged and d.residual <= 1e-8
    assert [s["from"] for s in d.switches] == ["anderson"] and d.switches[0]["to"] == "newton"
    switch = d.switches[0]
    assert set(switch) == {"iteration", "from", "to", "reason", "residual"}
    assert 0 < switch["iteration"] < d.iterations and "no progress" in switch["reason"]
    assert "switched anderson -> newton" in d.summary()
    newton = solve(problem, coupling="newton", backend="numpy", progress=False)  # the same equilibrium
    np.testing.assert_allclose(eq.m.numpy(), newton.m.numpy(), rtol=0, atol=1e-6)


def test_callbacks_see_one_numbering_across_phases():
    class Seen(Callback):
        def __init__(self) -> None:
            self.iterations, self.starts, self.ends = [], 0, 0

        def on_start(self, max_iter, tol):
            self.starts += 1

        def on_iteration(self, state):
            self.iterations.append(state.iteration)

        def on_end(self, converged):
            self.ends += 1

    seen = Seen()
    eq = solve(problems.make("santa-fe-bar", Nx=40, Nt=20, T=10.0), backend="numpy", progress=False,
               callbacks=[seen])
    assert eq.diagnostics.switches and (seen.starts, seen.ends) == (1, 1)
    assert seen.iterations == list(range(eq.diagnostics.iterations))


def test_auto_with_particles_runs_anderson_alone():
    eq = solve(problems.make("lq-1d", Nx=41, Nt=10), fp="particles", n_particles=20_000, tol=1e-3,
               backend="numpy", progress=False)
    assert eq.diagnostics.converged and eq.diagnostics.coupling == "auto" and not eq.diagnostics.switches


@pytest.mark.parametrize(("options", "message"), [
    ({"patience": 0}, "patience must be an integer >= 1"), ({"newton_patience": 1.5}, "newton_patience"),
    ({"damping": 0.0}, r"damping must be a finite number in \(0, 1\]"),
    ({"depth": 0}, "depth must be an integer"),
])
def test_auto_options_are_checked(options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Auto(**options)


def test_damping_reaches_auto():
    eq = solve(problems.make("lq-1d", Nx=21, Nt=5), damping=0.5, backend="numpy", progress=False)
    assert eq.diagnostics.converged and eq.diagnostics.options["damping"] == 0.5


# -- floors --------------------------------------------------------------------------------
def test_a_tolerance_below_round_off_is_refused_up_front():
    with pytest.raises(ValueError, match=r"tol=1e-15 is below round-off in float64 \(10 eps"):
        solve(problems.make("lq-1d", Nx=21, Nt=5), tol=1e-15, progress=False)


@pytest.mark.parametrize("coupling", ["fixed_point", "auto"])
def test_a_tolerance_under_the_floor_stops_there_with_a_warning(coupling):
    """lq-1d's fixed point stalls near 1e-13; asked for 3e-15 it stops within ~30 iterations."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eq = solve(problems.make("lq-1d", Nx=41, Nt=10), tol=3e-15, coupling=coupling, backend="numpy",
                   progress=False)
    d = eq.diagnostics
    assert d.stopped_by == "floor" and not d.converged and d.iterations < 80
    assert min(d.residuals) <= attainable_floor("float64")
    assert any("round-off floor" in str(w.message) and w.category is RuntimeWarning for w in caught)


def test_fictitious_play_refuses_a_tolerance_it_cannot_reach_and_falls_like_one_over_k():
    problem = problems.make("lq-1d", Nx=31, Nt=8)
    with pytest.raises(ValueError, match=r"falls like 1/k.*tol >= 1/max_iter = 2.0e-03"):
        solve(problem, coupling="fictitious_play", max_iter=500, progress=False)
    eq = solve(problem, coupling="fictitious_play", tol=1e-3, max_iter=2000, backend="numpy", progress=False)
    assert eq.diagnostics.converged
    r = np.array(eq.diagnostics.residuals)
    k = np.arange(1, r.size + 1)
    tail = slice(r.size // 4, None)  # past the transient
    slope = np.polyfit(np.log(k[tail]), np.log(r[tail]), 1)[0]
    assert -1.3 < slope < -0.7, slope


# -- the HJB step --------------------------------------------------------------------------
def test_large_time_steps_meet_the_newton_tolerance():
    """santa-fe-bar at dt = 5: dt |R| stalls in round-off at 3e-12, above newton_tol (1 + max|u|)
    = 1e-12; scaled by the size of dt f the step converges."""
    problem = problems.make("santa-fe-bar", Nx=40, Nt=20, T=100.0)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    m = np.stack([disc.m0] * (disc.Nt + 1))
    result = Sequential().hjb(disc, m)
    scale = 1.0 + np.abs(result.u).max() + 5.0 * 10.0  # 1 + max|u| + dt max|f|, |f| <= payoff 10
    assert np.all(np.isfinite(result.u)) and result.residual <= 1e-12 * scale


def test_transport_without_diffusion_takes_the_newton_iterations_it_needs():
    """crowd-exit-1d at sigma = 0: Newton on the upwind scheme moves its switch front about a cell
    per iteration (~200 on the first step); 50 iterations used to end in SolverError."""
    problem = problems.make("crowd-exit-1d", sigma=0.0)
    disc = DiscreteMFG(problem, create_backend("numpy"))
    assert disc.max_newton == 50 + 200
    m = np.stack([disc.m0] * (disc.Nt + 1))
    result = Sequential().hjb(disc, m)
    assert np.all(np.isfinite(result.u)) and result.newton_iterations > 100
    capped = DiscreteMFG(problem, create_backend("numpy"), max_newton=50)
    hint = r"n=99: .*transport-dominated \(speed .* cells per step, cell Peclet number inf\); more time steps"
    with pytest.raises(SolverError, match=hint):
        Sequential().hjb(capped, m)


# -- uniqueness ----------------------------------------------------------------------------
def test_the_uniqueness_note_flags_attractive_costs_only():
    assert "not monotone" in uniqueness_note(problems.make("attractive-1d", Nx=21, Nt=4))
    assert uniqueness_note(problems.make("attractive-1d", Nx=21, Nt=4, attraction=0.0)) is None
    assert uniqueness_note(problems.make("santa-fe-bar", Nx=40, Nt=4)) is None
    assert uniqueness_note(problems.make("lq-1d", Nx=21, Nt=4)) is None  # its closed form checks it
    assert "congestion" in uniqueness_note(problems.make("crowd-exit-1d", Nx=21, Nt=4))
    assert math.isfinite(attainable_floor("float32")) and attainable_floor("float32") > 1e-6


def test_auto_gives_up_after_a_round_without_progress_not_at_max_iter():
    """attractive-1d at T = 10: fixed point, Anderson and Newton all stall near 0.15 (measured at
    the default grid: 0.18, 0.18, and a failed Newton line search at 0.04); auto stops once a
    whole round gains nothing, with a message that says so."""
    problem = problems.make("attractive-1d", Nx=21, Nt=20, T=10.0)
    with pytest.raises(SolverError, match=r"auto stalled after \d+ iterations .*neither Anderson nor Newton"):
        solve(problem, backend="numpy", progress=False, max_iter=500)
    eq = solve(problem, backend="numpy", progress=False, max_iter=500, allow_unconverged=True)
    d = eq.diagnostics
    assert d.stopped_by == "stalled" and not d.converged and d.iterations < 150
    assert [s["to"] for s in d.switches][:2] == ["newton", "anderson"]
