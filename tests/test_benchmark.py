"""The benchmark: scoring policies against the PDE equilibrium, in the solvers' own scheme.

Measured (numpy backend, Anderson coupling to tol 1e-8, Newton 1e-12):

- equilibrium control, exploitability: lq-1d 101x40 ~1e-12, santa-fe-bar 100x40 ~1e-12
  (no local maxima of ``u``); crowd-exit-1d 100x40 1.2e-6 and crowd-2d 16x16x10 5e-5,
  where ``u`` has a few kinks (both one-sided slopes active: the Godunov Hamiltonian sums
  them, a single drift can use only one), so the bounds below are stated per problem.
- zero control, exploitability: lq-1d 0.125, santa-fe-bar 2.18, crowd-exit-1d 13.6,
  crowd-2d 14.4; on lq-1d it converges at first order under refinement of (h, dt)
  (observed orders 0.94, 0.97), and its policy value converges at first order to the
  closed form of pure diffusion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from mfg_rl import create_backend, problems, solve
from mfg_rl.benchmark import Score, evaluate
from mfg_rl.solvers import DiscreteMFG, Equilibrium, TransportOperator
from mfg_rl.solvers.numerical_hamiltonian import NumericalHamiltonian

torch.set_num_threads(1)


def solved(name: str, **params: object) -> Equilibrium:
    return solve(problems.make(name, **params), coupling="anderson", backend="numpy", progress=False)


@pytest.fixture(scope="module")
def lq() -> Equilibrium:
    return solved("lq-1d", Nx=101, Nt=40)


@pytest.fixture(scope="module")
def crowd_exit() -> Equilibrium:
    return solved("crowd-exit-1d", Nx=100, Nt=40)


@pytest.fixture(scope="module")
def santa_fe() -> Equilibrium:
    return solved("santa-fe-bar", Nx=100, Nt=40)


@pytest.fixture(scope="module")
def crowd_2d() -> Equilibrium:
    return solved("crowd-2d", Nx=16, Ny=16, Nt=10)


def equilibrium_policy(eq: Equilibrium):
    """``eq.control(n)`` interpolated linearly in space, ``n = round(t / dt)`` (exact at nodes)."""
    problem = eq.problem
    nodes = problem.grid.coordinates()
    controls = [eq.control(n) for n in range(problem.time.Nt + 1)]

    def policy(t: torch.Tensor, x: torch.Tensor) -> np.ndarray:
        control = controls[round(float(t[0]) / problem.time.dt)]
        points = x.double().numpy()
        if problem.ndim == 1:
            return np.interp(points, nodes[0], control)
        return np.stack(
            [RegularGridInterpolator(nodes, c, fill_value=None)(points) for c in control], axis=-1
        )

    return policy


def zero_policy(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def smooth_policy(seed: int, ndim: int = 1):
    """A random smooth feedback ``a + b sin(k x + phi) + c t`` per axis."""
    a, b, c, phi = np.random.default_rng(seed).normal(size=(4, ndim))
    k = 2.0 * math.pi * np.random.default_rng(seed + 1).uniform(0.2, 1.5, size=ndim)

    def policy(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        xs = x.double().reshape(len(t), ndim)
        a_, b_, c_, k_, phi_ = (torch.as_tensor(v) for v in (a, b, c, k, phi))
        alpha = a_ + b_ * torch.sin(k_ * xs + phi_) + c_ * t.double()[:, None]
        return alpha[:, 0] if ndim == 1 else alpha

    return policy


# -- the transport operator ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "share"), [("lq", 1.0), ("santa_fe", 1.0), ("crowd_exit", 0.99), ("crowd_2d", 0.9)]
)
def test_operator_is_the_newton_jacobian_at_the_equilibrium_control(
    fixture: str, share: float, request: pytest.FixtureRequest
) -> None:
    """Wherever one one-sided slope of ``u^n`` is active (measured share of the nodes:
    all on lq-1d and santa-fe-bar, 99.5% on crowd-exit-1d, 95% on crowd-2d)."""
    eq = request.getfixturevalue(fixture)
    problem = eq.problem
    backend = create_backend("numpy")
    upwind, transport = NumericalHamiltonian(problem, backend), TransportOperator(problem, backend)
    u, m = eq.u.numpy(), eq.m.numpy()
    checked = 0
    for n in range(problem.time.Nt):
        control = eq.control(n)
        alpha = (control,) if problem.ndim == 1 else tuple(control)
        _, jacobian = upwind.apply(u[n], m[n + 1])
        matrix = transport.matrix(alpha)
        one_slope = np.ones(problem.grid.shape, dtype=bool)
        for d in range(problem.ndim):  # both slopes active: a local max of u along d
            u_minus, u_plus = upwind.neighbours(u[n], d)
            one_slope &= ~((u[n] > u_minus) & (u_plus < u[n]))
        for got, want in zip(
            (matrix.center, *matrix.minus, *matrix.plus),
            (jacobian.center, *jacobian.minus, *jacobian.plus), strict=True,
        ):
            np.testing.assert_allclose(got[one_slope], want[one_slope], rtol=1e-12, atol=1e-9)
        checked += int(one_slope.sum())
    assert checked >= share * problem.time.Nt * problem.grid.size


@pytest.mark.parametrize("name", ["crowd-exit-1d", "beach-bar-1d", "crowd-2d"])
def test_operator_is_affine_with_the_matrix_as_linear_part(name: str) -> None:
    """``A(alpha) J = matrix(alpha) J + A(alpha) 0`` on exits (affine), walls and periodic boxes."""
    params = {"Nx": 12, "Ny": 9, "Nt": 4} if name == "crowd-2d" else {"Nx": 30, "Nt": 4}
    problem = problems.make(name, **params)
    backend = create_backend("numpy")
    transport = TransportOperator(problem, backend)
    rng = np.random.default_rng(0)
    alpha = tuple(rng.normal(size=(3, *problem.grid.shape)) for _ in range(problem.ndim))
    J = rng.normal(size=(3, *problem.grid.shape))
    want = transport.matrix(alpha).matvec(backend.xp, J) + transport.apply(0.0 * J, alpha)
    np.testing.assert_allclose(transport.apply(J, alpha), want, rtol=1e-12, atol=1e-9)


def test_operator_rejects_a_drift_with_the_wrong_number_of_axes(crowd_2d: Equilibrium) -> None:
    transport = TransportOperator(crowd_2d.problem, create_backend("numpy"))
    with pytest.raises(ValueError, match="one component per axis"):
        transport.matrix((np.zeros(crowd_2d.problem.grid.shape),))


# -- the equilibrium control scores zero -----------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "bound", "density_bound"),
    [("lq", 1e-10, 1e-6), ("santa_fe", 1e-10, 1e-6), ("crowd_exit", 5e-6, 2e-3), ("crowd_2d", 2e-4, 1e-2)],
)
def test_equilibrium_control_is_unexploitable(
    fixture: str, bound: float, density_bound: float, request: pytest.FixtureRequest
) -> None:
    eq = request.getfixturevalue(fixture)
    score = evaluate(equilibrium_policy(eq), eq, backend="numpy")
    assert -1e-10 <= score.exploitability <= bound
    assert abs(score.value_gap) <= max(bound, 1e-6)  # the equilibrium itself is exact to tol 1e-8 only
    assert score.density_l1 <= density_bound
    assert score.density_l1_T <= score.density_l1


def test_equilibrium_value_field_matches_u(lq: Equilibrium) -> None:
    score = evaluate(equilibrium_policy(lq), lq)
    np.testing.assert_allclose(score.J_pi, lq.u.numpy(), atol=1e-6)
    np.testing.assert_allclose(score.m_pi, lq.m.numpy(), atol=1e-6)
    np.testing.assert_allclose(score.u_br, lq.u.numpy(), atol=1e-6)


# -- other policies ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "least"), [("lq", 0.1), ("santa_fe", 1.0), ("crowd_exit", 10.0), ("crowd_2d", 10.0)]
)
def test_zero_control_is_exploitable(fixture: str, least: float, request) -> None:
    eq = request.getfixturevalue(fixture)
    score = evaluate(zero_policy, eq, backend="numpy")
    assert score.exploitability > least
    assert score.density_l1 > 0.1


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fixture", ["lq", "crowd_exit", "santa_fe"])
def test_exploitability_is_nonnegative_for_smooth_policies(fixture: str, seed: int, request) -> None:
    eq = request.getfixturevalue(fixture)
    score = evaluate(smooth_policy(seed), eq, backend="numpy")
    assert score.exploitability >= -1e-10
    assert score.policy_value >= score.best_response_value - 1e-10
    assert np.all(score.J_pi >= score.u_br - 1e-9)  # pointwise: u_br is the least cost


def test_exploitability_is_nonnegative_in_2d(crowd_2d: Equilibrium) -> None:
    score = evaluate(smooth_policy(3, ndim=2), crowd_2d, backend="numpy")
    assert score.exploitability >= -1e-10
    assert np.all(score.J_pi >= score.u_br - 1e-9)


def test_exploitability_is_quadratic_near_the_equilibrium(lq: Equilibrium) -> None:
    """The equilibrium minimises exploitability: perturbing it by ``eps`` costs ``O(eps^2)``."""
    base, bump = equilibrium_policy(lq), smooth_policy(7)

    def perturbed(eps: float):
        return lambda t, x: base(t, x) + eps * bump(t, x).numpy()

    big, small = (evaluate(perturbed(eps), lq, backend="numpy").exploitability for eps in (0.1, 0.05))
    assert 3.5 < big / small < 4.5


def test_constant_drift_moves_the_crowd_and_conserves_mass(lq: Equilibrium) -> None:
    score = evaluate(lambda t, x: torch.full_like(x, 0.5), lq, backend="numpy")
    problem = lq.problem
    x, h = problem.grid.coordinates()[0], problem.grid.spacing[0]
    mass = score.m_pi.sum(axis=1) * h
    np.testing.assert_allclose(mass, 1.0, atol=1e-12)
    assert np.all(score.m_pi >= 0.0)
    mean_T = float(score.m_pi[-1] @ x * h) / mass[-1]
    assert abs(mean_T - (problem.params["mu0"] + 0.5 * problem.time.T)) < 1e-3
    assert score.exploitability > 0.01


@pytest.mark.parametrize("fixture", ["lq", "santa_fe"])
def test_mass_is_conserved_on_no_flux_boxes(fixture: str, request) -> None:
    eq = request.getfixturevalue(fixture)
    score = evaluate(smooth_policy(1), eq, backend="numpy")
    mass = DiscreteMFG(eq.problem, create_backend("numpy")).mass(score.m_pi)
    np.testing.assert_allclose(mass, 1.0, atol=1e-12)
    assert np.all(score.m_pi >= 0.0)


@pytest.mark.parametrize("fixture", ["lq", "crowd_exit", "crowd_2d"])
def test_induced_crowd_is_the_crowd_evaluate_scores(fixture: str, request) -> None:
    from mfg_rl.benchmark import induced_crowd

    eq = request.getfixturevalue(fixture)
    policy = smooth_policy(3) if eq.problem.ndim == 1 else (lambda t, x: 0.5 * torch.ones_like(x))
    m = induced_crowd(policy, eq)
    assert np.array_equal(m, evaluate(policy, eq, backend="numpy").m_pi)
    assert np.abs(m - eq.m.numpy()).max() > 1e-3  # not the equilibrium's crowd
    with pytest.raises(TypeError, match="eq must be an Equilibrium"):
        induced_crowd(policy, eq.problem)
    with pytest.raises(TypeError, match="policy must be callable"):
        induced_crowd(None, eq)


def test_exits_lose_mass(crowd_exit: Equilibrium) -> None:
    score = evaluate(smooth_policy(2), crowd_exit, backend="numpy")
    mass = score.m_pi.sum(axis=1) * crowd_exit.problem.grid.spacing[0]
    assert mass[0] == pytest.approx(1.0) and np.all(np.diff(mass) <= 1e-15) and mass[-1] < 1.0


# -- accuracy under refinement (lq-1d, zero control) ------------------------------------
def test_zero_control_converges_at_first_order() -> None:
    """Pure diffusion from N(mu0, v0): ``E[J(0)] = q T/2 (v0 + (1-k)^2 mu0^2) + q sigma^2 T^2/4
    + q_T/2 (v0 + (1-k_T)^2 mu0^2 + sigma^2 T)`` (the crowd's mean stays at mu0)."""
    exploitability, value = [], []
    for k in range(4):
        eq = solved("lq-1d", Nx=50 * 2**k, Nt=20 * 2**k)
        score = evaluate(zero_policy, eq, backend="numpy")
        exploitability.append(score.exploitability)
        value.append(score.policy_value)
    p = eq.problem.params
    exact = (
        p["q"] * p["T"] / 2 * (p["v0"] + (1 - p["kappa"]) ** 2 * p["mu0"] ** 2)
        + p["q"] * p["sigma"] ** 2 * p["T"] ** 2 / 4
        + p["q_T"] / 2 * (p["v0"] + (1 - p["kappa_T"]) ** 2 * p["mu0"] ** 2 + p["sigma"] ** 2 * p["T"])
    )
    steps = np.diff(exploitability)
    orders = np.log2(steps[:-1] / steps[1:])
    value_orders = np.log2(np.abs(np.array(value[:-1]) - exact) / np.abs(np.array(value[1:]) - exact))
    print(f"zero control on lq-1d: exploitability {exploitability}, observed orders {orders}")
    print(f"policy value {value} vs exact {exact:.6f}: observed orders {value_orders}")
    assert np.all((orders > 0.7) & (orders < 1.3))
    assert np.all((value_orders > 0.7) & (value_orders < 1.3))
    assert abs(value[-1] - exact) < 2e-3


# -- the API ---------------------------------------------------------------------------
def test_score_reads_as_a_mapping_of_scalars(lq: Equilibrium) -> None:
    score = evaluate(zero_policy, lq)
    assert isinstance(score, Score)
    assert score["exploitability"] == score.exploitability
    assert {"exploitability", "value_gap", "density_l1"} <= set(score)
    assert score.as_dict() == dict(score)
    assert all(isinstance(v, float) for v in score.values())
    shape = (lq.problem.time.Nt + 1, *lq.problem.grid.shape)
    assert score.m_pi.shape == score.J_pi.shape == score.u_br.shape == shape
    with pytest.raises(KeyError, match="not a score"):
        score["m_pi"]


def test_backends_agree(lq: Equilibrium) -> None:
    policy = smooth_policy(5)
    on_torch = evaluate(policy, lq, backend="torch")
    on_numpy = evaluate(policy, lq, backend="numpy")
    for key in on_numpy:
        assert on_torch[key] == pytest.approx(on_numpy[key], rel=1e-10, abs=1e-12)


def test_policy_sees_float32_tensors_of_the_nodes(crowd_2d: Equilibrium) -> None:
    problem = crowd_2d.problem
    seen = []

    def policy(t: torch.Tensor, x: torch.Tensor) -> list:
        seen.append(float(t[0]))
        assert t.dtype == x.dtype == torch.float32 and t.device.type == "cpu"
        assert t.shape == (problem.grid.size,) and x.shape == (problem.grid.size, 2)
        return x.tolist()  # array-like output: the drift alpha = x

    evaluate(policy, crowd_2d, backend="numpy", device="cpu")
    np.testing.assert_allclose(seen, problem.time.times()[:-1], rtol=1e-6)


def test_backend_belongs_to_evaluate_not_solve_options() -> None:
    with pytest.raises(ValueError, match="pass backend to evaluate"):
        evaluate(zero_policy, problems.make("lq-1d", Nx=11, Nt=2), solve_options={"backend": "numpy"})


def test_problem_is_solved_and_cached(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MFG_RL_CACHE", str(tmp_path))
    problem = problems.make("lq-1d", Nx=51, Nt=10)
    score = evaluate(zero_policy, problem, backend="numpy", solve_options={"coupling": "anderson"})
    assert list(tmp_path.glob("lq-1d-*.npz"))
    assert score.exploitability > 0.0


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda t, x: torch.zeros(len(x), 1), r"shape \(\d+, 1\)"),
        (lambda t, x: torch.zeros(3), r"shape \(3,\)"),
        (lambda t, x: torch.full_like(x, float("nan")), "non-finite"),
        (lambda t, x: np.where(x.numpy() > 1.0, np.inf, 0.0), "non-finite"),
        (lambda t, x: "left", "not an array"),
    ],
)
def test_bad_policy_output_raises_naming_the_policy(lq: Equilibrium, output, match: str) -> None:
    def my_policy(t: torch.Tensor, x: torch.Tensor):
        return output(t, x)

    with pytest.raises(ValueError, match=match) as info:
        evaluate(my_policy, lq, backend="numpy")
    assert "my_policy" in str(info.value)


def test_2d_policy_must_return_one_component_per_axis(crowd_2d: Equilibrium) -> None:
    def first_axis_only(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(t))

    with pytest.raises(ValueError, match=r"policy .*first_axis_only returned shape \(256,\)"):
        evaluate(first_axis_only, crowd_2d, backend="numpy")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"policy": "zero"}, TypeError, "policy must be callable"),
        ({"eq_or_problem": "lq-1d"}, TypeError, "eq_or_problem must be"),
        ({"solve_options": {"tol": 1e-6}}, ValueError, "solve_options apply only"),
        ({"solve_options": 3}, TypeError, "solve_options must be a mapping"),
        ({"device": "nowhere"}, ValueError, "device must be"),
        ({"device": "cuda:99"}, ValueError, "device must be an available"),
        ({"backend": "fortran"}, ValueError, "backend must be"),
    ],
)
def test_bad_arguments_raise_before_work(lq: Equilibrium, kwargs: dict, error: type, match: str) -> None:
    args = {"policy": zero_policy, "eq_or_problem": lq} | kwargs
    with pytest.raises(error, match=match):
        evaluate(args.pop("policy"), args.pop("eq_or_problem"), **args)
