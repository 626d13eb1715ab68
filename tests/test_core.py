"""The plain-Python core against scipy's own DOP853 internals (no numba involved).

The core calls the dispatcher ``rhs(handle, t, y, p, dydt, istate)`` as a module global; the
generated module defines it, and here each test puts a Python one in its place.

The oracle is scipy's code with its BLAS sums in index order (``conftest``'s
``index_order_sums``), which the core must match to the last bit on every machine.
Against scipy as installed, whose sums follow the CPU's BLAS kernel, the results agree
to a relative 1e-12, a bound that holds on every kernel for these few-term sums.
"""

import math

import numpy as np
import pytest
from conftest import index_order_sums, ordered_error_norm
from scipy.integrate._ivp import common as scipy_common
from scipy.integrate._ivp import dop853_coefficients as scipy_coefficients
from scipy.integrate._ivp import rk as scipy_rk

from batchivp.core import checks, coefficients
from batchivp.core import dop853 as core

N = 5
STOCK_RTOL = 1e-12  # stock scipy's BLAS sums against index order, on every kernel
ISTATE = np.zeros(core.ISTATE_SIZE, dtype=np.int64)  # the problem's state, for the dispatcher
rng = np.random.default_rng(20261121)


def rhs_lotka_like(t, y):
    """A non-linear, time-dependent test right-hand side (n = 5)."""
    return np.array([
        y[0] * (1.5 - y[1]) + math.sin(t),
        y[1] * (y[0] - 3.0),
        -0.3 * y[2] + y[3] * y[4],
        math.cos(y[0]) - y[3],
        0.1 * t * y[4] - y[2],
    ])


@pytest.fixture
def dispatcher(monkeypatch):
    """Install a Python dispatcher for rhs_lotka_like and count its calls."""
    calls = []

    def rhs(handle, t, y, p, dydt, istate):
        calls.append(t)
        dydt[:] = rhs_lotka_like(t, y)

    monkeypatch.setattr(core, "rhs", rhs, raising=False)
    return calls


def test_coefficients_are_scipys():
    n = coefficients.N_STAGES_EXTENDED
    np.testing.assert_array_equal(np.array(coefficients.A).reshape(n, n), scipy_coefficients.A)
    np.testing.assert_array_equal(coefficients.B, scipy_coefficients.B)
    np.testing.assert_array_equal(coefficients.C, scipy_coefficients.C)
    np.testing.assert_array_equal(coefficients.E3, scipy_coefficients.E3)
    np.testing.assert_array_equal(coefficients.E5, scipy_coefficients.E5)
    np.testing.assert_array_equal(np.array(coefficients.D).reshape(4, n), scipy_coefficients.D)


@pytest.mark.parametrize("name, index, delta", [
    ("B", 3, 1e-9), ("C", 7, 1e-9), ("A", 16 * 9 + 4, 1e-9), ("E5", 0, 1e-9),
])
def test_tableau_check_catches_a_corrupted_coefficient(monkeypatch, name, index, delta):
    checks.check_tableau()  # the shipped tableau passes
    values = list(getattr(coefficients, name))
    values[index] += delta
    monkeypatch.setattr(coefficients, name, tuple(values))
    with pytest.raises(ValueError, match="inconsistent DOP853 tableau"):
        checks.check_tableau()


@pytest.mark.parametrize("t", [0.0, 1.0, -1.0, 0.5, -0.5, 3.7, 1e-310, -1e-310,
                               2.0**-1022, 1e300, -0.75, 86400.0, 2.0**52])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_step_toward_is_nextafter_spacing(t, direction):
    expected = abs(np.nextafter(t, direction * np.inf) - t)
    assert core.step_toward(t, direction) == expected


def test_py_min_max_keep_pythons_nan_rules():
    nan = float("nan")
    for a, b in [(1.0, 2.0), (2.0, 1.0), (0.2, nan), (nan, 0.2), (10.0, nan)]:
        for ours, python in ((core.py_max, max), (core.py_min, min)):
            got, want = ours(a, b), python(a, b)
            assert got == want or (math.isnan(got) and math.isnan(want))
    assert math.isnan(core.np_maximum(1.0, nan)) and math.isnan(core.np_maximum(nan, 1.0))
    assert core.np_maximum(1.0, 2.0) == np.maximum(1.0, 2.0)


def test_rk_step_matches_scipy(dispatcher):
    t, h = 0.3, 0.05
    y = rng.uniform(0.5, 2.0, N)
    f = rhs_lotka_like(t, y)
    K_ref, K_stock = (np.empty((scipy_coefficients.N_STAGES + 1, N)) for _ in range(2))
    tableau = scipy_rk.DOP853.A, scipy_rk.DOP853.B, scipy_rk.DOP853.C
    with index_order_sums():
        y_ref, f_ref = scipy_rk.rk_step(rhs_lotka_like, t, y, f, h, *tableau, K_ref)
    y_stock, _ = scipy_rk.rk_step(rhs_lotka_like, t, y, f, h, *tableau, K_stock)

    K = np.zeros((16, N))
    y_new, ytmp = np.empty(N), np.empty(N)
    core.rk_step(0, t, y, f, h, None, K, y_new, ytmp, N, ISTATE)
    np.testing.assert_array_equal(y_new, y_ref)
    np.testing.assert_array_equal(K[:13], K_ref)
    np.testing.assert_allclose(y_new, y_stock, rtol=STOCK_RTOL, atol=0)
    np.testing.assert_allclose(K[:13], K_stock, rtol=STOCK_RTOL, atol=1e-15)
    assert len(dispatcher) == 12  # 11 stages + f(t + h, y_new)


def test_error_norm_matches_scipy():
    K = rng.normal(size=(13, N))
    y, y_new = rng.normal(size=N), rng.normal(size=N)
    rtol, atol = np.full(N, 1e-6), rng.uniform(1e-9, 1e-6, N)
    h = -0.0123
    scale = atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol
    solver = scipy_rk.DOP853.__new__(scipy_rk.DOP853)
    got = core.error_norm(K, h, y, y_new, rtol, atol, N)
    assert got == ordered_error_norm(solver, K, h, scale)
    assert got == pytest.approx(solver._estimate_error_norm(K, h, scale), rel=STOCK_RTOL)
    assert core.error_norm(np.zeros((16, N)), h, y, y_new, rtol, atol, N) == 0.0


@pytest.mark.parametrize("err", [0.0, 1e-12, 0.3, 0.999])
@pytest.mark.parametrize("rejected", [False, True])
def test_accepted_factor_is_scipys_controller(err, rejected):
    if err == 0:
        factor = scipy_rk.MAX_FACTOR
    else:
        factor = min(scipy_rk.MAX_FACTOR, scipy_rk.SAFETY * np.float64(err) ** (-1 / 8))
    if rejected:
        factor = min(1, factor)
    assert core.accepted_factor(err, rejected) == factor


@pytest.mark.parametrize("err", [1.0, 1.7, 1e6, float("inf"), float("nan")])
def test_rejected_factor_is_scipys_controller(err):
    expected = max(scipy_rk.MIN_FACTOR, scipy_rk.SAFETY * np.float64(err) ** (-1 / 8))
    assert core.rejected_factor(err) == expected


@pytest.mark.parametrize("t_bound, max_step", [(10.0, np.inf), (1e-4, np.inf), (10.0, 1e-3),
                                               (-10.0, np.inf)])
def test_initial_step_matches_scipy(dispatcher, t_bound, max_step):
    t0 = 0.2
    y0 = rng.uniform(0.5, 2.0, N)
    f0 = rhs_lotka_like(t0, y0)
    rtol, atol = 1e-7, np.full(N, 1e-9)
    direction = np.sign(t_bound - t0)
    call = (rhs_lotka_like, t0, y0, t_bound, max_step, f0, direction, 7, rtol, atol)
    with index_order_sums():
        expected = scipy_common.select_initial_step(*call)
    stock = scipy_common.select_initial_step(*call)
    work = [np.empty(N) for _ in range(3)]
    got = core.select_initial_step(0, t0, y0, f0, None, t_bound, max_step, direction,
                                   np.full(N, rtol), atol, *work, N, N, ISTATE)
    assert got == expected
    assert got == pytest.approx(stock, rel=STOCK_RTOL)
    assert len(dispatcher) == 1


def test_dense_output_matches_scipy(dispatcher):
    """The interpolant of one scipy step, rebuilt by the core, at points inside it."""
    y0 = rng.uniform(0.5, 2.0, N)
    with index_order_sums():
        solver = scipy_rk.DOP853(rhs_lotka_like, 0.0, y0, 5.0, rtol=1e-6, atol=1e-9)
        solver.step()
        solver.step()
        reference = solver.dense_output()
    t_old, t = solver.t_old, solver.t
    h = t - t_old

    K = np.zeros((16, N))
    K[:13] = solver.K  # the step's 13 stages, as scipy left them
    F, ytmp = np.empty((7, N)), np.empty(N)
    dispatcher.clear()
    core.dense_coefficients(0, t_old, solver.y_old, solver.y, solver.f, h, None, K, F, ytmp, N,
                            ISTATE)
    assert len(dispatcher) == 3
    out = np.empty(N)
    for s in np.linspace(0.0, 1.0, 9):
        tt = t_old + s * h
        core.dense_eval(F, solver.y_old, t_old, h, tt, out, N)
        np.testing.assert_array_equal(out, reference(tt))
    core.dense_eval(F, solver.y_old, t_old, h, t_old, out, N)
    np.testing.assert_array_equal(out, solver.y_old)  # x = 0 gives y_old exactly


# ---- complex states: real parts then imaginary parts, scipy's complex norms ----

def split(z):
    return np.concatenate([np.real(z), np.imag(z)], axis=-1)


def test_complex_error_norm_matches_scipy():
    m = 3
    K = rng.normal(size=(13, m)) + 1j * rng.normal(size=(13, m))
    y = rng.normal(size=m) + 1j * rng.normal(size=m)
    y_new = rng.normal(size=m) + 1j * rng.normal(size=m)
    rtol, atol = np.full(m, 1e-6), rng.uniform(1e-9, 1e-6, m)
    h = 0.037
    scale = atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol
    solver = scipy_rk.DOP853.__new__(scipy_rk.DOP853)
    expected = ordered_error_norm(solver, K, h, scale)
    K_split = np.zeros((16, 2 * m))
    K_split[:13] = split(K)
    got = core.error_norm_complex(K_split, h, split(y), split(y_new), np.tile(rtol, 2),
                                  np.tile(atol, 2), 2 * m, m)
    assert got == pytest.approx(expected, rel=1e-14)


def test_complex_initial_step_matches_scipy(monkeypatch):
    m = 2

    def fun(t, y):
        return np.array([1j * y[0] + math.cos(t), -0.5 * y[1] * y[0]])

    def rhs(handle, t, y, p, dydt, istate):
        dydt[:] = split(fun(t, y[:m] + 1j * y[m:]))

    monkeypatch.setattr(core, "rhs", rhs, raising=False)
    monkeypatch.setattr(core, "COMPLEX_STATE", 1)  # the renderer sets it per module
    y0 = np.array([1.0 + 0.5j, -0.3 + 2j])
    f0 = fun(0.0, y0)
    rtol, atol = 1e-6, np.full(m, 1e-9)
    with index_order_sums():
        expected = scipy_common.select_initial_step(fun, 0.0, y0, 3.0, np.inf, f0, 1.0, 7, rtol,
                                                    atol)
    work = [np.empty(2 * m) for _ in range(3)]
    got = core.select_initial_step(0, 0.0, split(y0), split(f0), None, 3.0, np.inf, 1.0,
                                   np.full(2 * m, rtol), np.tile(atol, 2), *work, 2 * m, m,
                                   ISTATE)
    assert got == pytest.approx(expected, rel=1e-14)
