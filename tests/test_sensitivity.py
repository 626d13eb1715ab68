"""Forward sensitivities of solve_batch (batchivp.sensitivity), on every target.

Oracles: the matrix exponential for y' = A y, the analytic Kepler propagation
(central differences) and its symplectic STM, finite differences of tight scipy solves
(Lorenz, van der Pol), the falling ball's impact time sqrt(2 h / g).
"""

import functools
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import batchivp as bi
from batchivp.models import lorenz, two_body
from conftest import scipy_reference
from batchivp.orbit.elements import kepler_propagate

MU = 398600.4418
# Each (system size, state size) is a linked core of its own, compiled once per machine:
# the problems below share three, (12, 3), (8, 2) and (42, 6), and the plain (6, 6)
# that `make test` warms.
A3 = tuple(np.random.default_rng(7).normal(size=9) * 0.5)


@bi.rhs
def linear3(t, y, p, dydt):  # y' = p[0] * A y, A row major; further parameters unused
    for i in range(3):
        acc = 0.0
        for j in range(3):
            acc += A3[3 * i + j] * y[j]
        dydt[i] = p[0] * acc


@bi.rhs
def vdp_s(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = p[0] * (1.0 - y[0] ** 2) * y[1] - y[0]


@bi.rhs
def falling(t, y, p, dydt):  # height, velocity; p[0] = g
    dydt[0] = y[1]
    dydt[1] = -p[0]


@bi.rhs
def decay(t, y, p, dydt):
    dydt[0] = -y[0]


@bi.event(terminal=True, direction=-1)
def ground(t, y, p):
    return y[0]


def test_linear_system_is_the_matrix_exponential(target):
    A, scale = np.array(A3).reshape(3, 3), 0.8
    y0 = np.random.default_rng(8).normal(size=(4, 3))
    te = np.linspace(0.0, 2.0, 5)
    res = bi.solve_batch(linear3, (0.0, 2.0), y0, params=[scale, 0.0, 0.0], t_eval=te,
                         rtol=1e-11, atol=1e-12, sensitivity="y0", target=target)
    assert res.success.all() and res.dyf_dp is None and res.dy_dp is None
    for k, t in enumerate(te):
        for i in range(4):
            np.testing.assert_allclose(res.dy_dy0[i, :, :, k], expm(scale * A * t),
                                       rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.dyf_dy0[0], expm(scale * A * 2.0), rtol=1e-8)


def test_linear_system_parameter_derivative_is_analytic(target):
    """d/ds exp(s A t) y0 = A t exp(s A t) y0; the unused parameters have none."""
    A, scale = np.array(A3).reshape(3, 3), 0.8
    y0 = np.random.default_rng(9).normal(size=(3, 3))
    te = np.linspace(0.0, 2.0, 5)
    res = bi.solve_batch(linear3, (0.0, 2.0), y0, params=[scale, 0.0, 0.0], t_eval=te,
                         rtol=1e-11, atol=1e-12, sensitivity="params", target=target)
    assert res.dy_dy0 is None and res.dy_dp.shape == (3, 3, 3, 5)
    for k, t in enumerate(te):
        for i in range(3):
            expected = A @ expm(scale * A * t) @ y0[i] * t
            np.testing.assert_allclose(res.dy_dp[i, :, 0, k], expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(res.dy_dp[:, :, 1:], 0.0)


def test_state_takes_the_steps_it_takes_alone(target):
    """The sensitivities stay out of the error norm: the state takes scipy's steps
    (index-order sums), bitwise those of the plain solve."""
    y0 = np.array([[1.0, 1.0, 1.0], [-2.0, 3.0, 20.0]])
    p = np.array([10.0, 28.0, 8.0 / 3.0])
    te = np.linspace(0.0, 2.0, 7)
    plain = bi.solve_batch(lorenz, (0.0, 2.0), y0, params=p, t_eval=te, rtol=1e-8,
                           atol=1e-8, target=target)
    sens = bi.solve_batch(lorenz, (0.0, 2.0), y0, params=p, t_eval=te, rtol=1e-8,
                          atol=1e-8, sensitivity="params", target=target)
    np.testing.assert_array_equal(sens.nfev, plain.nfev)
    np.testing.assert_array_equal(sens.nstep, plain.nstep)
    np.testing.assert_array_equal(sens.y, plain.y)
    np.testing.assert_array_equal(sens.y_final, plain.y_final)
    for i in range(2):
        ref = scipy_reference(lorenz, (0.0, 2.0), y0[i], p, t_eval=te, rtol=1e-8, atol=1e-8)
        assert sens.nfev[i] == ref.nfev
        np.testing.assert_allclose(sens.y[i], ref.y, rtol=1e-12, atol=1e-12)


@functools.lru_cache(maxsize=None)
def _lorenz_differences():
    """Central differences of Lorenz's final state by its 3 parameters, once for all
    targets."""
    y0, p = np.ones(3), np.array([10.0, 28.0, 8.0 / 3.0])
    return np.stack([_lorenz_fd(y0, p, 1.0, k, 1e-5) for k in range(3)], axis=1)


def _lorenz_fd(y0, p, tf, which, h):
    def final(y, q):
        f = lambda t, y: [q[0] * (y[1] - y[0]), y[0] * (q[1] - y[2]) - y[1],
                          y[0] * y[1] - q[2] * y[2]]
        return solve_ivp(f, (0.0, tf), y, method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    e = np.zeros(3)
    e[which] = h
    return (final(y0, p + e) - final(y0, p - e)) / (2 * h)


def test_lorenz_parameter_sensitivities_match_finite_differences(target):
    y0 = np.array([[1.0, 1.0, 1.0]])
    p = np.array([10.0, 28.0, 8.0 / 3.0])
    res = bi.solve_batch(lorenz, (0.0, 1.0), y0, params=p, rtol=1e-12, atol=1e-12,
                         sensitivity="params", target=target)
    np.testing.assert_allclose(res.dyf_dp[0], _lorenz_differences(), rtol=1e-5, atol=1e-6)


def test_van_der_pol_mu_sensitivity_matches_finite_differences(target):
    y0 = np.array([[2.0, 0.0]])
    mu, h = 1.5, 1e-6

    def final(m):
        f = lambda t, y: [y[1], m * (1 - y[0] ** 2) * y[1] - y[0]]
        return solve_ivp(f, (0, 3.0), y0[0], method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    res = bi.solve_batch(vdp_s, (0.0, 3.0), y0, params=mu, rtol=1e-12, atol=1e-12,
                         sensitivity="all", target=target)
    fd = (final(mu + h) - final(mu - h)) / (2 * h)
    np.testing.assert_allclose(res.dyf_dp[0, :, 0], fd, rtol=1e-6, atol=1e-8)


def test_kepler_stm_matches_the_analytic_propagation(target):
    y0 = np.array([[7000.0, 0.0, 0.0, 0.0, 7.5, 0.1], [6700.0, 100.0, 0.0, 0.0, 7.2, 1.0]])
    tf = 5400.0
    res = bi.solve_batch(two_body, (0.0, tf), y0, params=MU, rtol=1e-12, atol=1e-12,
                         sensitivity="y0", target=target)
    for i in range(2):
        fd = np.empty((6, 6))
        for j in range(6):
            h = 1e-3 if j < 3 else 1e-6
            plus, minus = y0[i].copy(), y0[i].copy()
            plus[j] += h
            minus[j] -= h
            fp = np.concatenate(kepler_propagate(plus[:3], plus[3:], tf, MU))
            fm = np.concatenate(kepler_propagate(minus[:3], minus[3:], tf, MU))
            fd[:, j] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(res.dyf_dy0[i], fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_kepler_stm_stays_symplectic_over_ten_orbits(target):
    y0 = np.array([[7000.0, 0.0, 0.0, 0.0, 7.546, 0.0]])
    a = 7000.0
    period = 2 * math.pi * math.sqrt(a ** 3 / MU)
    te = np.linspace(0.0, 10 * period, 11)
    res = bi.solve_batch(two_body, (0.0, 10 * period), y0, params=MU, t_eval=te,
                         rtol=1e-12, atol=1e-12, sensitivity="y0", target=target)
    J = np.block([[np.zeros((3, 3)), np.eye(3)], [-np.eye(3), np.zeros((3, 3))]])
    for k in range(len(te)):
        phi = res.dy_dy0[0, :, :, k]
        assert np.linalg.det(phi) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(phi.T @ J @ phi, J, atol=1e-5 * np.abs(phi).max() ** 2)


def test_falling_ball_impact_time_and_state(target):
    """t* = (v0 + sqrt(v0^2 + 2 g h)) / g: at v0 = 0, dt*/dh = 1 / sqrt(2 g h),
    dt*/dv0 = 1 / g, dt*/dg = -t* / (2 g); at impact the height is 0 whatever the
    inputs (the terminal root moves) and v = v0 - g t*."""
    h0 = np.array([10.0, 45.0])
    g = 9.81
    y0 = np.stack([h0, np.zeros(2)], axis=1)
    res = bi.solve_batch(falling, (0.0, 100.0), y0, params=g, events=ground, rtol=1e-10,
                         atol=1e-12, sensitivity="all", target=target)
    assert (res.status == 1).all()
    t_star = np.sqrt(2 * h0 / g)
    np.testing.assert_allclose(res.t_events[0][:, 0], t_star, rtol=1e-10)
    np.testing.assert_allclose(res.dt_events_dy0[0][:, 0, 0], 1 / np.sqrt(2 * g * h0), rtol=1e-8)
    np.testing.assert_allclose(res.dt_events_dy0[0][:, 0, 1], 1 / g, rtol=1e-8)  # v0 = 0
    np.testing.assert_allclose(res.dt_events_dp[0][:, 0, 0], -t_star / (2 * g), rtol=1e-8)
    np.testing.assert_allclose(res.dyf_dy0[:, 0, :], 0.0, atol=1e-9)  # height stays 0
    np.testing.assert_allclose(res.dyf_dy0[:, 1, 0], -g / np.sqrt(2 * g * h0), rtol=1e-8)
    np.testing.assert_allclose(res.dyf_dy0[:, 1, 1], 0.0, atol=1e-9)  # 1 - g dt*/dv0
    np.testing.assert_allclose(res.dyf_dp[:, 1, 0], -t_star / 2, rtol=1e-8)


def test_bad_sensitivity_is_named():
    y0 = np.ones((1, 3))
    with pytest.raises(ValueError, match="sensitivity='both'"):
        bi.solve_batch(lorenz, (0.0, 1.0), y0, params=[1.0, 2.0, 3.0], sensitivity="both")
    with pytest.raises(ValueError, match="needs params"):
        bi.solve_batch(decay, (0.0, 1.0), np.ones((1, 1)), sensitivity="params")


def test_dask_blocks_carry_the_sensitivities():
    da = pytest.importorskip("dask.array")
    y0 = np.random.default_rng(3).normal(size=(5, 2))
    p = 1.5
    te = np.linspace(0.0, 1.0, 3)
    local = bi.solve_batch(vdp_s, (0.0, 1.0), y0, params=p, t_eval=te, rtol=1e-9,
                           atol=1e-9, sensitivity="all", target="cpu")
    lazy = bi.solve_batch(vdp_s, (0.0, 1.0), da.from_array(y0, chunks=2), params=p,
                          t_eval=te, rtol=1e-9, atol=1e-9, sensitivity="all", target="cpu")
    done = lazy.compute(scheduler="synchronous")
    for name in ("y", "dyf_dy0", "dyf_dp", "dy_dy0", "dy_dp"):
        np.testing.assert_array_equal(getattr(done, name), getattr(local, name))


def test_an_undifferentiable_line_is_named_at_registration():
    with pytest.raises(bi.RegistrationError) as info:
        @bi.rhs(sensitivity=True)
        def gamma_rhs(t, y, p, dydt):
            a = y[0] * 2.0
            dydt[0] = math.gamma(a)
    message = str(info.value)
    lines = open(__file__).read().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "dydt[0] = math.gamma(a)" in text)
    assert "gamma_rhs" in message and f"test_sensitivity.py:{line}" in message

    @bi.rhs
    def gamma_later(t, y, p, dydt):
        dydt[0] = math.lgamma(y[0])
    with pytest.raises(ValueError, match=r"math.lgamma\(y\[0\]\)"):
        bi.solve_batch(gamma_later, (0.0, 1.0), np.ones((1, 1)), sensitivity="y0")


@bi.rhs
def named_oscillator(t, x, k, dx):  # the user's own parameter names: x, k, dx
    dx[0] = x[1]
    dx[1] = -k[0] * x[0]


@bi.event(terminal=2)
def rising_level(tt, x, k):  # depends on t and on the parameter
    return x[0] - 0.15 * k[0] + 0.1 * tt


@functools.lru_cache(maxsize=None)
def _oscillator_differences():
    """Central differences of the roots and final state by (y0, p), once for all targets."""
    theta, h = np.array([1.0, 0.0, 2.0]), 1e-6
    fd_t, fd_y = [], []
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        (tp, yp), (tm, ym) = _scipy_oscillator(theta + e), _scipy_oscillator(theta - e)
        fd_t.append((tp - tm) / (2 * h))
        fd_y.append((yp - ym) / (2 * h))
    return np.array(fd_t).T, np.array(fd_y).T


def _scipy_oscillator(theta):
    f = lambda t, y: [y[1], -theta[2] * y[0]]
    g = lambda t, y: y[0] - 0.15 * theta[2] + 0.1 * t
    g.terminal = 2
    res = solve_ivp(f, (0.0, 20.0), theta[:2], method="DOP853", rtol=1e-13, atol=1e-13,
                    events=g)
    return res.t_events[0], res.y[:, -1]


def test_event_times_depending_on_t_and_params_match_finite_differences(target):
    """dt*/dθ = -(∂g/∂y s + ∂g/∂p) / (∂g/∂t + ∂g/∂y f) at both roots, and the final state
    (at the second, terminal, root) with the root's move, against central differences
    of tight scipy solves."""
    y0, p = np.array([[1.0, 0.0]]), np.array([2.0])
    res = bi.solve_batch(named_oscillator, (0.0, 20.0), y0, params=p, events=rising_level,
                         rtol=1e-12, atol=1e-12, sensitivity="all", target=target)
    assert res.status[0] == 1 and res.n_events[0, 0] == 2
    fd_t, fd_y = _oscillator_differences()  # theta = (y0, p) as here
    got_t = np.concatenate([res.dt_events_dy0[0][0, :2], res.dt_events_dp[0][0, :2]], axis=1)
    np.testing.assert_allclose(got_t, fd_t, rtol=1e-6, atol=1e-8)
    got_y = np.concatenate([res.dyf_dy0[0], res.dyf_dp[0]], axis=1)
    np.testing.assert_allclose(got_y, fd_y, rtol=1e-6, atol=1e-8)


def test_sensitivities_in_the_error_norm_take_more_steps_to_the_same_answer(target):
    """d/ds exp(s A t) y0 = A t exp(s A t) y0; with the column in the norm the solve takes
    more steps than the state alone takes (which is what it takes without the norm's
    columns: test_state_takes_the_steps_it_takes_alone)."""
    A, scale = np.array(A3).reshape(3, 3), 0.8
    y0 = np.random.default_rng(8).normal(size=(2, 3))
    kwargs = dict(params=[scale], rtol=1e-6, atol=1e-8, target=target)
    state = bi.solve_batch(linear3, (0.0, 2.0), y0, **kwargs)
    inside = bi.solve_batch(linear3, (0.0, 2.0), y0, sensitivity="params",
                            sensitivity_error=True, **kwargs)
    assert (inside.nfev >= state.nfev).all() and (inside.nfev > state.nfev).any()
    exact = np.stack([A @ expm(scale * A * 2.0) @ y * 2.0 for y in y0])
    np.testing.assert_allclose(inside.dyf_dp[:, :, 0], exact, rtol=1e-5)
    with pytest.raises(ValueError, match="sensitivity_error=True needs sensitivity"):
        bi.solve_batch(linear3, (0.0, 2.0), y0, params=[scale], sensitivity_error=True)


def test_each_right_hand_side_of_a_batch_gets_its_own_sensitivities(target):
    """fun_index: Lorenz and the linear system side by side, each against its own oracle
    (the linear one: expm; Lorenz: the solve of Lorenz alone)."""
    y0 = np.array([[1.0, 1.0, 1.0], [0.5, -0.2, 0.1]])
    p = np.array([[10.0, 28.0, 8.0 / 3.0], [0.8, 0.0, 0.0]])
    both = bi.solve_batch([lorenz, linear3], (0.0, 1.0), y0, params=p, fun_index=[0, 1],
                          rtol=1e-11, atol=1e-12, sensitivity="y0", target=target)
    alone = bi.solve_batch(lorenz, (0.0, 1.0), y0[:1], params=p[:1], rtol=1e-11, atol=1e-12,
                           sensitivity="y0", target=target)
    np.testing.assert_array_equal(both.dyf_dy0[0], alone.dyf_dy0[0])
    np.testing.assert_allclose(both.dyf_dy0[1], expm(0.8 * np.array(A3).reshape(3, 3)),
                               rtol=1e-8)
