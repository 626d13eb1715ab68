"""solve_batch on every target against scipy's DOP853, one problem at a time.

The oracle is ``scipy.integrate.solve_ivp(method="DOP853")`` calling the same Python
function, with its BLAS sums in index order (``conftest.scipy_reference``; README
"Exactness"), so on every machine each problem must take exactly scipy's steps (equal
``nfev``) and agree to round-off. Analytic solutions and conservation laws check the
physics besides.
"""

import math

import numpy as np
import pytest
from conftest import index_order_sums, scipy_reference
from scipy.integrate import DOP853

import batchivp as bi
from batchivp import Status, models
from batchivp.orbit.constants import MU_EARTH as MU


eng_lorenz = models.lorenz
eng_kepler = models.two_body


@bi.rhs
def eng_oscillator(t, y, p, dydt):
    """Harmonic oscillator x'' = -w^2 x with w = p[0]."""
    dydt[0] = y[1]
    dydt[1] = -p[0] * p[0] * y[0]


@bi.rhs
def eng_decay2(t, y, p, dydt):
    """Two independent decays with rates p[0], p[1]."""
    dydt[0] = -p[0] * y[0]
    dydt[1] = -p[1] * y[1]


@bi.rhs
def eng_riccati(t, y, p, dydt):
    """y' = y^2: y = y0 / (1 - y0 t), which blows up at t = 1/y0 for y0 > 0."""
    dydt[0] = y[0] * y[0]


@bi.rhs
def eng_poisoned(t, y, p, dydt):
    """y' = -y, but NaN from t >= p[0] on (a model that breaks mid-run)."""
    if t >= p[0]:
        dydt[0] = math.nan
    else:
        dydt[0] = -y[0]


def lorenz_batch():
    rho = np.array([0.5, 10.0, 21.0, 28.0, 13.0])
    params = np.column_stack([np.full(5, 10.0), rho, np.full(5, 8.0 / 3.0)])
    y0 = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.5], [-2.0, 1.0, 3.0], [0.1, 0.2, 0.3], [5.0, 5.0, 5.0]])
    t_span = np.array([[0.0, 1.0], [0.0, 0.7], [1.0, 0.0], [0.2, 1.5], [0.0, -0.5]])
    t_eval = np.array([np.linspace(a, b, 6) for a, b in t_span])
    return y0, t_span, params, t_eval


def assert_same_as_scipy(res, i, ref, ref_steps=None, tol=1e-9):
    assert res.status[i] == 0, res.message(i)
    assert res.nfev[i] == ref.nfev, f"problem {i}: nfev {res.nfev[i]} != scipy's {ref.nfev}"
    scale = np.max(np.abs(ref.y))
    np.testing.assert_allclose(res.y[i], ref.y, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=0, atol=tol * scale)
    if ref_steps is not None:
        assert res.nstep[i] == ref_steps


def test_lorenz_batch_matches_scipy(target):
    """Per-problem parameters, spans (two backward), t_eval and per-component atol."""
    y0, t_span, params, t_eval = lorenz_batch()
    atol = np.array([1e-9, 1e-8, 1e-10])
    res = bi.solve_batch(eng_lorenz, t_span, y0, params=params, t_eval=t_eval,
                         rtol=1e-8, atol=atol, target=target)
    assert res.y.shape == (5, 3, 6) and res.target == target
    for i in range(5):
        ref = scipy_reference(eng_lorenz, t_span[i], y0[i], params[i], t_eval=t_eval[i],
                              rtol=1e-8, atol=atol)
        steps = scipy_reference(eng_lorenz, t_span[i], y0[i], params[i], rtol=1e-8, atol=atol)
        assert_same_as_scipy(res, i, ref, ref_steps=len(steps.t) - 1)
        assert res.t_final[i] == t_span[i, 1]


def test_kepler_orbit_matches_scipy_and_conserves_energy(target):
    r = np.array([7000.0, 8000.0, 12000.0])
    v = np.sqrt(MU / r) * np.array([1.0, 1.1, 0.9])
    y0 = np.zeros((3, 6))
    y0[:, 0], y0[:, 4], y0[:, 5] = r, 0.8 * v, 0.6 * v
    period = 2 * math.pi * math.sqrt(r.max() ** 3 / MU)
    t_eval = np.linspace(0.0, period, 5)
    res = bi.solve_batch(eng_kepler, (0.0, period), y0, params=MU, t_eval=t_eval,
                         rtol=1e-10, atol=1e-10, target=target)
    for i in range(3):
        ref = scipy_reference(eng_kepler, (0.0, period), y0[i], MU, t_eval=t_eval,
                              rtol=1e-10, atol=1e-10)
        assert_same_as_scipy(res, i, ref)

    def energy(y):
        return 0.5 * np.sum(y[..., 3:] ** 2, -1) - MU / np.linalg.norm(y[..., :3], axis=-1)

    np.testing.assert_allclose(energy(res.y_final), energy(y0), rtol=1e-8)


def test_oscillator_analytic_and_mixed_right_hand_sides(target):
    """Two right-hand sides of one dimension in one batch, picked per problem."""
    w = np.array([1.0, 2.0, 0.5, 3.0])
    params = np.column_stack([w, np.array([0.0, 0.0, 0.0, 0.0])])
    params[1] = [0.7, 1.3]  # problems 1 and 3 run eng_decay2 with these rates
    params[3] = [2.0, 0.1]
    y0 = np.array([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    t_eval = np.linspace(0.0, 4.0, 9)
    res = bi.solve_batch([eng_oscillator, eng_decay2], (0.0, 4.0), y0, params=params,
                         t_eval=t_eval, rtol=1e-10, atol=1e-12, fun_index=[0, 1, 0, 1],
                         target=target)
    for i, fun in enumerate([eng_oscillator, eng_decay2, eng_oscillator, eng_decay2]):
        ref = scipy_reference(fun, (0.0, 4.0), y0[i], params[i], t_eval=t_eval,
                              rtol=1e-10, atol=1e-12)
        assert_same_as_scipy(res, i, ref)
    wi = w[0]
    np.testing.assert_allclose(res.y[0, 0], np.cos(wi * t_eval), atol=1e-8)
    np.testing.assert_allclose(res.y[1, 0], np.exp(-0.7 * t_eval), rtol=1e-8)


def test_first_step_and_max_step_as_scipy(target):
    y0 = np.array([[1.0, 0.0], [0.5, 0.5]])
    res = bi.solve_batch(eng_oscillator, (0.0, 10.0), y0, params=1.5, rtol=1e-6, atol=1e-9,
                         first_step=np.array([1e-3, 0.2]), max_step=0.3, target=target)
    for i, first in enumerate([1e-3, 0.2]):
        ref = scipy_reference(eng_oscillator, (0.0, 10.0), y0[i], 1.5, rtol=1e-6, atol=1e-9,
                              first_step=first, max_step=0.3)
        assert res.nfev[i] == ref.nfev and res.nstep[i] == len(ref.t) - 1
        np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=1e-12)


def test_cpu_and_parallel_are_bitwise_equal():
    y0, t_span, params, t_eval = lorenz_batch()
    results = [bi.solve_batch(eng_lorenz, t_span, y0, params=params, t_eval=t_eval,
                              rtol=1e-9, atol=1e-9, target=t) for t in ("cpu", "parallel")]
    a, b = results
    for name in ("y", "y_final", "t_final", "status", "nfev", "nstep", "nreject"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_cuda_simulator_agrees_with_cpu():
    y0, t_span, params, t_eval = lorenz_batch()
    cpu, cuda = (bi.solve_batch(eng_lorenz, t_span, y0, params=params, t_eval=t_eval,
                                rtol=1e-9, atol=1e-9, target=t) for t in ("cpu", "cuda"))
    np.testing.assert_array_equal(cuda.nfev, cpu.nfev)
    np.testing.assert_array_equal(cuda.status, cpu.status)
    np.testing.assert_allclose(cuda.y, cpu.y, rtol=1e-12, atol=1e-12)


def test_chunked_run_equals_one_call(target):
    """Resuming in chunks of 3 steps reproduces the uninterrupted run bit for bit."""
    y0, t_span, params, t_eval = lorenz_batch()
    whole, chunked = (bi.solve_batch(eng_lorenz, t_span, y0, params=params, t_eval=t_eval,
                                     rtol=1e-8, atol=1e-8, target=target, chunk_steps=c)
                      for c in (None, 3))
    for name in ("y", "y_final", "t_final", "status", "nfev", "nstep", "nreject"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)


def test_step_budget_stops_that_problem_where_scipy_is_after_as_many_steps(target):
    y0 = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 0.0]])
    params = np.array([10.0, 28.0, 8.0 / 3.0])
    res = bi.solve_batch(eng_lorenz, (0.0, 5.0), y0, params=params, rtol=1e-9, atol=1e-9,
                         max_steps=10, target=target)
    for i in range(2):
        assert res.status[i] == Status.BUDGET and res.nstep[i] == 10
        assert "max_steps" in res.message(i)

        def f(t, y, i=i):
            d = np.empty(3)
            eng_lorenz(t, y, params, d)
            return d

        with index_order_sums():  # scipy's BLAS sums would move the steps by round-off
            solver = DOP853(f, 0.0, y0[i], 5.0, rtol=1e-9, atol=1e-9)
            for _ in range(10):
                solver.step()
        assert res.t_final[i] == solver.t
        np.testing.assert_allclose(res.y_final[i], solver.y, rtol=1e-14)
        assert res.nfev[i] == solver.nfev


def test_failures_are_per_problem(target):
    """A blow-up and a NaN model fail where scipy fails; the others finish."""
    y0 = np.array([[1.0], [-1.0], [1.0], [1.0]])
    p_riccati = np.zeros((4, 1))
    res = bi.solve_batch(eng_riccati, (0.0, 2.0), y0, params=p_riccati, rtol=1e-6, atol=1e-9,
                         target=target)
    blow = scipy_reference(eng_riccati, (0.0, 2.0), y0[0], 0.0, rtol=1e-6, atol=1e-9)
    assert blow.status == -1
    assert res.status[0] < 0 and res.t_final[0] == pytest.approx(blow.t[-1], rel=1e-12)
    assert res.t_final[0] == pytest.approx(1.0, abs=1e-6)  # the analytic blow-up time
    fine = scipy_reference(eng_riccati, (0.0, 2.0), y0[1], 0.0, rtol=1e-6, atol=1e-9)
    assert res.status[1] == 0 and res.nfev[1] == fine.nfev
    np.testing.assert_allclose(res.y_final[1], [-1.0 / 3.0], rtol=1e-6)  # -1 / (1 + t)

    # NaN from t >= 0.5 in problem 0 only; at t0 in problem 1 (scipy would hang there).
    p = np.array([[0.5], [0.0], [10.0]])
    res = bi.solve_batch(eng_poisoned, (0.0, 2.0), np.ones((3, 1)), params=p, rtol=1e-6,
                         atol=1e-9, target=target)
    ref = scipy_reference(eng_poisoned, (0.0, 2.0), [1.0], 0.5, rtol=1e-6, atol=1e-9)
    assert ref.status == -1  # scipy shrinks the step until it is too small
    assert res.status[0] == Status.NONFINITE and "non-finite" in res.message(0)
    # Both creep up to the NaN boundary t = 0.5 with shrinking steps; where exactly they
    # stop is decided by the last bits of the error estimates (round-off).
    assert res.t_final[0] == pytest.approx(ref.t[-1], abs=1e-12)
    assert ref.t[-1] <= 0.5 and res.t_final[0] <= 0.5
    assert res.status[1] == Status.NONFINITE and res.nfev[1] == 1 and res.t_final[1] == 0.0
    assert res.status[2] == 0
    np.testing.assert_allclose(res.y_final[2], [math.exp(-2.0)], rtol=1e-6)


def test_empty_span_is_scipys_corner_case(target):
    """t0 == tf: finished at once after one evaluation, as scipy. (scipy's solve_ivp
    reports no t_eval point there; a batch reports the solution at t0, which is y0.)"""
    y0 = np.array([[1.0, 0.5]])
    res = bi.solve_batch(eng_oscillator, (3.0, 3.0), y0, params=2.0, t_eval=[3.0], target=target)
    ref = scipy_reference(eng_oscillator, (3.0, 3.0), y0[0], 2.0)
    assert res.status[0] == 0 and res.nfev[0] == ref.nfev and res.nstep[0] == 0
    np.testing.assert_array_equal(res.y[0, :, 0], y0[0])
    np.testing.assert_array_equal(res.y_final[0], ref.y[:, -1])


def test_zero_error_scale_ends_that_problem_instead_of_looping(target):
    """atol = 0 and a component that starts at 0: scipy's initial step is 0/0 = NaN
    (the oracle below), after which scipy's step loop never ends. That problem ends
    with status -6 and a message naming the cause; the other one takes scipy's steps."""
    from scipy.integrate._ivp.common import select_initial_step

    rates = np.array([0.5, 0.3])
    y0 = np.array([[1.0, 0.0], [1.0, 2.0]])
    res = bi.solve_batch(eng_decay2, (0.0, 3.0), y0, params=rates, rtol=1e-8, atol=0.0,
                         target=target)

    def f(t, y):
        d = np.empty(2)
        eng_decay2(t, y, rates, d)
        return d

    with np.errstate(invalid="ignore"):
        h0 = select_initial_step(f, 0.0, y0[0], 3.0, np.inf, f(0.0, y0[0]), 1, 7, 1e-8, 0.0)
    assert np.isnan(h0)
    assert res.status[0] == Status.NAN_STEP and "atol" in res.message(0)
    ref = scipy_reference(eng_decay2, (0.0, 3.0), y0[1], rates, rtol=1e-8, atol=0.0)
    assert res.status[1] == 0 and res.nfev[1] == ref.nfev
    np.testing.assert_allclose(res.y_final[1], ref.y[:, -1], rtol=1e-12)
