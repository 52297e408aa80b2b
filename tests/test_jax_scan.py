"""JaxScan (method="jax-scan") reproduces Sequential, fails loudly, and compiles once."""

import numpy as np
import pytest

from mfg_rl import SolverError, problems
from mfg_rl.backends import create_backend
from mfg_rl.solvers import solve
from mfg_rl.solvers.discrete import DiscreteMFG
from mfg_rl.solvers.trajectory import Sequential

CASES = [("lq-1d", {"Nx": 51, "Nt": 10}), ("crowd-exit-1d", {"Nx": 40, "Nt": 10}),
         ("beach-bar-1d", {"Nx": 32, "Nt": 10, "boundary": "periodic"})]


@pytest.fixture(scope="module")
def jax_scan():  # noqa: ANN201
    pytest.importorskip("jax")
    from mfg_rl.solvers import jax_scan

    return jax_scan


@pytest.mark.parametrize(("name", "params"), CASES, ids=[c[0] for c in CASES])
def test_equilibrium_equals_sequential(jax_scan, name: str, params: dict) -> None:  # noqa: ANN001
    problem = problems.make(name, **params)
    ref = solve(problem, backend="numpy", tol=1e-9, progress=False)
    eq = solve(problem, method="jax-scan", tol=1e-9, progress=False)
    d, reference = eq.diagnostics, ref.diagnostics
    assert d.converged and d.backend == "jax" and d.dtype == "float64"
    assert d.iterations == reference.iterations and d.newton_iterations == reference.newton_iterations
    assert np.max(np.abs(eq.u.numpy() - ref.u.numpy())) < 1e-10
    assert np.max(np.abs(eq.m.numpy() - ref.m.numpy())) < 1e-10
    assert np.allclose(d.mass, ref.diagnostics.mass, atol=1e-12)
    assert np.allclose(d.exited, ref.diagnostics.exited, atol=1e-12)
    assert d.timings["compile"] >= 0.0 and "total" in d.timings


def test_second_solve_reuses_compiled_programs(jax_scan) -> None:  # noqa: ANN001
    jax_scan.clear_cache()
    problem = problems.make("lq-1d", Nx=31, Nt=6)
    first = solve(problem, method="jax-scan", progress=False).diagnostics.timings["compile"]
    again = problems.make("lq-1d", Nx=31, Nt=6)  # a new object with the same fingerprint
    second = solve(again, method="jax-scan", progress=False).diagnostics.timings["compile"]
    assert first > 0.0 and second == 0.0
    strategy = jax_scan.JaxScan()
    strategy.discretise(again, create_backend("jax"))
    assert strategy.cached


def test_trajectories_equal_sequential_with_guess(jax_scan) -> None:  # noqa: ANN001
    problem = problems.make("crowd-exit-1d", Nx=40, Nt=10)
    ref = DiscreteMFG(problem, create_backend("numpy"))
    disc = jax_scan.ScanMFG(problem, create_backend("jax"))
    m = np.stack([ref.m0] * (ref.Nt + 1))
    seq = Sequential().hjb(ref, m)
    scan = jax_scan.JaxScan()
    out = scan.hjb(disc, disc.backend.asarray(m))
    assert np.max(np.abs(np.asarray(out.u) - seq.u)) < 1e-12
    assert out.newton_iterations == seq.newton_iterations
    warm_ref = Sequential().hjb(ref, m, seq.u)
    warm = scan.hjb(disc, disc.backend.asarray(m), out.u)
    assert warm.newton_iterations == warm_ref.newton_iterations
    m_new = scan.fp(disc, out.u, disc.backend.asarray(m))
    assert np.max(np.abs(np.asarray(m_new) - Sequential().fp(ref, seq.u, m))) < 1e-12


def test_newton_failure_raises_solver_error(jax_scan) -> None:  # noqa: ANN001
    problem = problems.make("lq-1d", Nx=31, Nt=4)
    disc = DiscreteMFG(problem, create_backend("jax"), max_newton=1)
    m = disc.xp.stack([disc.m0] * (disc.Nt + 1))
    with pytest.raises(SolverError, match="did not converge at time index n=3"):
        Sequential().hjb(disc, m)
    with pytest.raises(SolverError, match="did not converge at time index n=3"):
        jax_scan.JaxScan().hjb(disc, m)
    with pytest.raises(SolverError, match="non-finite"):
        jax_scan.JaxScan().hjb(disc, m * float("nan"))


CASES_2D = [{"Nx": 12, "Ny": 10, "Nt": 6}, {"Nx": 10, "Ny": 12, "Nt": 6, "exit_side": "top"}]


@pytest.mark.parametrize("params", CASES_2D, ids=["exit-right", "exit-top"])
def test_2d_equilibrium_equals_sequential(jax_scan, params: dict) -> None:  # noqa: ANN001
    """Traced zebra BiCGStab inside the scan; both line orientations (the exit's axis carries
    the strongest couplings) are exercised. Newton counts differ: the traced Newton solves
    its linear systems to rtol 1e-12, Sequential's inexactly."""
    problem = problems.make("crowd-2d", **params)
    ref = solve(problem, backend="numpy", tol=1e-9, progress=False, coupling="fixed_point")
    eq = solve(problem, method="jax-scan", tol=1e-9, progress=False, coupling="fixed_point")
    assert eq.diagnostics.converged and eq.diagnostics.iterations == ref.diagnostics.iterations
    assert np.max(np.abs(eq.u.numpy() - ref.u.numpy())) < 1e-10
    assert np.max(np.abs(eq.m.numpy() - ref.m.numpy())) < 1e-10
    assert np.allclose(eq.diagnostics.exited, ref.diagnostics.exited, atol=1e-12)


def test_2d_linear_solve_failure_raises(jax_scan) -> None:  # noqa: ANN001
    problem = problems.make("crowd-2d", Nx=8, Ny=8, Nt=3)
    disc = DiscreteMFG(problem, create_backend("jax"))
    disc.linear.max_iter = 1  # part of the compiled programs' cache key
    m = disc.xp.stack([disc.m0] * (disc.Nt + 1))
    with pytest.raises(SolverError, match="linear solve that missed its tolerance"):
        jax_scan.JaxScan().hjb(disc, m)


def test_other_backend_is_refused(jax_scan) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="jax backend"):
        solve(problems.make("lq-1d", Nx=21, Nt=3), method="jax-scan", backend="numpy", progress=False)


def test_without_jax_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import mfg_rl.backends.jax_backend as jax_backend

    def missing() -> None:
        raise ImportError("No module named 'jax'")

    monkeypatch.setattr(jax_backend, "import_jax", missing)
    with pytest.raises(ImportError, match=r'pip install "mfg-rl\[jax\]"'):
        solve(problems.make("lq-1d", Nx=21, Nt=3), method="jax-scan", progress=False)
