"""``batchivp.solve_ivp`` against scipy's ``solve_ivp(method="DOP853")``, the oracle.

Equal steps (``nfev``, ``t`` grids, bitwise states, event times) are judged against
scipy with its BLAS sums in index order (the fixture ``scipy_in_index_order``, README
"Exactness"), the same on every machine. Stock scipy sums in the order of this CPU's
BLAS kernel, which can change its steps; against it only what holds on every kernel is
checked: the status, the ``t_eval`` times, and states within the solutions'
accuracy. Ordinary callables compile for the cpu targets (``parallel`` solves one
problem on one core too); the cuda target (the simulator here) takes registered
functions.
"""

import math
import warnings

import numpy as np
import pytest
from conftest import index_order_sums
from problems import decay, lotka, rotate
from scipy.integrate import OdeSolution
from scipy.integrate import solve_ivp as scipy_solve_ivp

import batchivp as bi
from batchivp import render

# Every plain function here compiles; one handed to scipy would make the comparisons
# with scipy vacuous. Tests that expect the hand-off catch the warning themselves.
pytestmark = pytest.mark.filterwarnings("error::batchivp.CompilationWarning")

CPU_TARGETS = ["cpu", "parallel"]


# ---- the problem set (scipy's test problems, Hairer's Arenstorf orbit) ----

def fun_rational(t, y):
    return np.array([y[1] / t, y[1] * (y[0] + 2 * y[1] - 1) / (t * (y[0] - 1))])


def sol_rational(t):
    return np.asarray((t / (t + 10), 10 * t / (t + 10) ** 2))


ARENSTORF_MU = 0.012277471
ARENSTORF_Y0 = [0.994, 0.0, 0.0, -2.00158510637908252240537862224]
ARENSTORF_PERIOD = 17.0652165601579625588917206249  # Hairer, Norsett, Wanner I, II.0


def arenstorf(t, y, mu):
    # Products, not math.hypot or x ** 2: CPython calls the C library's hypot and pow
    # for those, numba has its own hypot and computes x ** 2 as x * x, which differ in
    # the last bit now and then; these tests compare bitwise.
    a, b = y[0] + mu, y[0] - 1 + mu
    r1 = (a * a + y[1] * y[1]) ** 1.5
    r2 = (b * b + y[1] * y[1]) ** 1.5
    return (y[2], y[3],
            y[0] + 2 * y[3] - (1 - mu) * (y[0] + mu) / r1 - mu * (y[0] - 1 + mu) / r2,
            y[1] - 2 * y[2] - (1 - mu) * y[1] / r1 - mu * y[1] / r2)


PROBLEMS = {
    # name: (fun, t_span, y0, options, analytic solution at t or None)
    "rational": (fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], dict(rtol=1e-6, atol=1e-9), sol_rational),
    "rational-backward": (fun_rational, (9.0, 5.0), list(sol_rational(9.0)),
                          dict(rtol=1e-6, atol=1e-9), sol_rational),
    "decay": (decay, (0.0, 4.0), [1.0, 2.0, -3.0], dict(args=(0.7,), rtol=1e-8),
              lambda t: np.outer([1.0, 2.0, -3.0], np.exp(-0.7 * np.asarray(t))).squeeze()),
    "complex": (rotate, (0.0, 6.0), [1.0 + 0.5j, -2j], dict(args=(1.3,), rtol=1e-9, atol=1e-12),
                lambda t: np.outer([1.0 + 0.5j, -2j], np.exp(1.3j * np.asarray(t))).squeeze()),
    "lotka": (lotka, (0.0, 15.0), [10.0, 5.0], dict(args=(1.5, 1, 3, 1), rtol=1e-8), None),
    "lotka-backward": (lotka, (15.0, 0.0), [10.0, 5.0], dict(args=(1.5, 1, 3, 1), rtol=1e-8), None),
    "arenstorf": (arenstorf, (0.0, ARENSTORF_PERIOD), ARENSTORF_Y0,
                  dict(args=(ARENSTORF_MU,), rtol=1e-10, atol=1e-10), None),
}


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("target", CPU_TARGETS)
def test_same_t_y_nfev_as_scipy_in_index_order(name, target, scipy_in_index_order):
    fun, span, y0, options, exact = PROBLEMS[name]
    ours = bi.solve_ivp(fun, span, y0, method="DOP853", target=target, dense_output=True, **options)
    ref = scipy_solve_ivp(fun, span, y0, method="DOP853", dense_output=True, **options)
    assert (ours.status, ours.message, ours.success) == (ref.status, ref.message, ref.success)
    assert ours.nfev == ref.nfev and (ours.njev, ours.nlu) == (0, 0)
    assert ours.y.dtype == ref.y.dtype and ours.t.dtype == ref.t.dtype
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    inside = np.linspace(*span, 57)
    np.testing.assert_array_equal(ours.sol(inside), ref.sol(inside))
    if exact is not None:
        np.testing.assert_allclose(ours.y, exact(ours.t), rtol=1e-5, atol=1e-8)
    if name == "arenstorf":  # the orbit closes after one period
        np.testing.assert_allclose(ours.y[:, -1], ARENSTORF_Y0, atol=1e-5)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_t_eval_as_scipy_and_within_accuracy_of_stock_scipy(name):
    """With ``t_eval``: scipy's ``nfev`` and states bitwise (index-order sums). Stock
    scipy (this CPU's BLAS order) may take other steps where an error estimate is
    round-off (README "Exactness"): the same status and times, and states that differ
    by no more than ten times our distance from a tight-tolerance solution, plus rtol."""
    fun, span, y0, options, _ = PROBLEMS[name]
    t_eval = np.linspace(*span, 41)
    ours = bi.solve_ivp(fun, span, y0, method="DOP853", t_eval=t_eval, **options)
    with index_order_sums():
        ref = scipy_solve_ivp(fun, span, y0, method="DOP853", t_eval=t_eval, **options)
        tight = scipy_solve_ivp(fun, span, y0, method="DOP853", t_eval=t_eval,
                                **dict(options, rtol=1e-13, atol=1e-14))
    assert ours.nfev == ref.nfev
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    stock = scipy_solve_ivp(fun, span, y0, method="DOP853", t_eval=t_eval, **options)
    assert (ours.status, ours.message) == (stock.status, stock.message) == (0, ref.message)
    np.testing.assert_array_equal(ours.t, stock.t)
    accuracy = np.max(np.abs(ours.y - tight.y))
    scale = np.max(np.abs(ours.y))
    bound = 10 * accuracy + options["rtol"] * scale
    np.testing.assert_allclose(ours.y, stock.y, rtol=0, atol=bound)


def test_the_issue_example_lotka_with_extinction_event(scipy_in_index_order):
    def extinct(t, y, *args):
        return y[1] - 0.01

    extinct.terminal = True
    kw = dict(method="DOP853", args=(1.5, 1, 3, 1), events=extinct, dense_output=True,
              t_eval=np.linspace(0, 15, 300))
    ours = bi.solve_ivp(lotka, (0, 15), [10, 5], **kw)
    ref = scipy_solve_ivp(lotka, (0, 15), [10, 5], **kw)
    assert ours.nfev == ref.nfev and ours.status == ref.status == 0
    np.testing.assert_allclose(ours.y, ref.y, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.sol(7.5), ref.sol(7.5), rtol=1e-9)
    assert [len(t) for t in ours.t_events] == [len(t) for t in ref.t_events] == [0]
    assert ours.y_events[0].shape == ref.y_events[0].shape == (0,)


# ---- events ----

def oscillator(t, y, k):
    return [y[1], -k * y[0]]


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("terminal, direction", [(False, 0), (True, -1), (3, 1), (False, -1)])
def test_events_match_scipy_and_the_analytic_zeros(target, terminal, direction,
                                                   scipy_in_index_order):
    def position(t, y, k):
        return y[0]

    position.terminal = terminal
    position.direction = direction

    def velocity(t, y, k):
        return y[1]

    kw = dict(method="DOP853", args=(4.0,), events=[position, velocity], rtol=1e-9,
              atol=1e-12, dense_output=True)
    ours = bi.solve_ivp(oscillator, (0.0, 20.0), [1.0, 0.0], target=target, **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 20.0), [1.0, 0.0], **kw)
    assert (ours.status, ours.nfev) == (ref.status, ref.nfev)
    for e in range(2):
        np.testing.assert_array_equal(ours.t_events[e], ref.t_events[e])
        np.testing.assert_array_equal(ours.y_events[e], ref.y_events[e])
    np.testing.assert_array_equal(ours.t, ref.t)
    # y = cos(2t): zeros at pi/4 + k pi/2, velocity zeros at k pi/2.
    zeros = ours.t_events[0]
    np.testing.assert_allclose(np.cos(2 * zeros), 0, atol=1e-8)


def test_more_event_occurrences_than_the_first_buffer(scipy_in_index_order):
    """Event buffers start at 64 per event; more occurrences are all returned."""
    def crossing(t, y, k):
        return y[0]

    kw = dict(method="DOP853", args=(400.0,), events=crossing, rtol=1e-8)
    ours = bi.solve_ivp(oscillator, (0.0, 12.0), [1.0, 0.0], **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 12.0), [1.0, 0.0], **kw)
    assert len(ref.t_events[0]) > 64
    np.testing.assert_array_equal(ours.t_events[0], ref.t_events[0])
    np.testing.assert_array_equal(ours.y_events[0], ref.y_events[0])
    assert ours.nfev == ref.nfev


def test_registered_functions_on_every_target(target, scipy_in_index_order):
    """``@bi.rhs``/``@bi.event`` run on cuda too; ``args`` become ``p``."""
    res = bi.solve_ivp(ivp_osc, (0.0, 30.0), [1.0, 0.0], args=(4.0,), target=target,
                       events=ivp_down, dense_output=True, rtol=1e-8)

    def f(t, y):
        d = np.empty(2)
        ivp_osc(t, y, np.array([4.0]), d)
        return d

    def g(t, y):
        return y[0]

    g.terminal, g.direction = 3, -1
    ref = scipy_solve_ivp(f, (0.0, 30.0), [1.0, 0.0], method="DOP853", events=g,
                          dense_output=True, rtol=1e-8)
    assert res.status == ref.status == 1
    assert (res.nfev, len(res.t)) == (ref.nfev, len(ref.t))
    np.testing.assert_allclose(res.t_events[0], ref.t_events[0], rtol=1e-12)
    np.testing.assert_allclose(res.t_events[0], np.pi / 4 + np.arange(3) * np.pi, rtol=1e-6)
    np.testing.assert_allclose(res.sol(1.0), ref.sol(1.0), rtol=1e-12)


@bi.rhs
def ivp_osc(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0]


@bi.event(terminal=3, direction=-1)
def ivp_down(t, y, p):
    return y[0]


# ---- outputs: t_eval, dense output, edge cases ----

@pytest.mark.parametrize("target", CPU_TARGETS)
def test_long_runs_grow_the_step_record(target, scipy_in_index_order):
    """More steps than the record's first 256 rows: all of them, and every interpolant."""
    kw = dict(method="DOP853", args=(ARENSTORF_MU,), rtol=1e-12, atol=1e-12, dense_output=True)
    ours = bi.solve_ivp(arenstorf, (0.0, 3 * ARENSTORF_PERIOD), ARENSTORF_Y0, target=target, **kw)
    ref = scipy_solve_ivp(arenstorf, (0.0, 3 * ARENSTORF_PERIOD), ARENSTORF_Y0, **kw)
    assert len(ref.t) > 600
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    assert isinstance(ours.sol, OdeSolution) and len(ours.sol.interpolants) == len(ref.t) - 1
    t = np.linspace(0, 3 * ARENSTORF_PERIOD, 1001)
    np.testing.assert_array_equal(ours.sol(t), ref.sol(t))


def test_terminal_event_before_any_t_eval_point_gives_empty_lists(scipy_in_index_order):
    def early(t, y, k):
        return t - 0.5

    early.terminal = True
    kw = dict(method="DOP853", args=(4.0,), events=early, t_eval=[1.0, 2.0])
    ours = bi.solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], **kw)
    assert ours.t == ref.t == [] and ours.y == ref.y == []
    assert ours.status == ref.status == 1
    np.testing.assert_array_equal(ours.t_events[0], ref.t_events[0])


@pytest.mark.parametrize("t_eval", [None, [2.0]])
@pytest.mark.parametrize("dense", [False, True])
def test_zero_length_span(dense, t_eval):
    """t0 == tf: one evaluation; with t_eval=[t0], scipy returns no point (its search
    for t_eval points treats the span as backward), and so do we."""
    kw = dict(method="DOP853", args=(4.0,), dense_output=dense, t_eval=t_eval)
    ours = bi.solve_ivp(oscillator, (2.0, 2.0), [1.0, 0.5], **kw)
    ref = scipy_solve_ivp(oscillator, (2.0, 2.0), [1.0, 0.5], **kw)
    assert np.shape(ours.t) == np.shape(ref.t) and np.shape(ours.y) == np.shape(ref.y)
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    assert (ours.nfev, ours.status, ours.message) == (ref.nfev, ref.status, ref.message)
    if dense:
        np.testing.assert_array_equal(ours.sol(2.0), ref.sol(2.0))


# ---- an event function that returns NaN: scipy's rule ----

def nan_before(t, y, k):
    """y[0], but NaN before t = 0.1 (at t0 and at the first steps' ends)."""
    return math.nan if t < 0.1 else y[0]


def nan_after(t, y, k):
    """No zero; NaN after t = 1 (at the later steps' ends)."""
    return math.nan if t > 1.0 else y[0] - 2.0


def nan_near_root(t, y, k):
    """y[0], but NaN within 1e-3 of its zeros: seen only by the root search."""
    return math.nan if abs(y[0]) < 1e-3 else y[0]


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_nan_event_at_step_ends_is_no_sign_change_as_in_scipy(target, scipy_in_index_order):
    """scipy's find_active_events compares the values at a step's ends, and NaN
    compares false: no event in that step, and the integration goes on (status 0)."""
    kw = dict(method="DOP853", args=(4.0,), events=[nan_before, nan_after], rtol=1e-8)
    ours = bi.solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], target=target, **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], **kw)
    assert ref.status == 0 and len(ref.t_events[0]) == 2 and len(ref.t_events[1]) == 0
    assert (ours.status, ours.message, ours.nfev) == (ref.status, ref.message, ref.nfev)
    for e in range(2):
        np.testing.assert_array_equal(ours.t_events[e], ref.t_events[e])
        np.testing.assert_array_equal(ours.y_events[e], ref.y_events[e])
    np.testing.assert_array_equal(ours.y, ref.y)


def test_nan_event_in_the_root_search_fails_where_scipy_raises():
    """NaN inside a step's root search: scipy's brentq raises ValueError; we end the
    integration there with status -1 and a message saying so (README)."""
    kw = dict(method="DOP853", args=(4.0,), events=nan_near_root, rtol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        scipy_solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], **kw)
    ours = bi.solve_ivp(oscillator, (0.0, 3.0), [1.0, 0.0], **kw)
    assert ours.status == -1 and not ours.success
    assert "NaN" in ours.message and "root" in ours.message
    assert ours.t[-2] < math.pi / 4 < ours.t[-1]  # it ended with the step of the first zero


def test_empty_state():
    ours = bi.solve_ivp(lambda t, y: y, (0.0, 1.0), [], method="DOP853")
    ref = scipy_solve_ivp(lambda t, y: y, (0.0, 1.0), [], method="DOP853")
    assert ours.y.shape == ref.y.shape and ours.status == ref.status == 0
    np.testing.assert_array_equal(ours.t, ref.t)


def test_vectorized_function(scipy_in_index_order):
    def fun(t, y):
        return np.vstack((y[1], -y[0]))

    ours = bi.solve_ivp(fun, (0.0, 5.0), [1.0, 0.0], method="DOP853", vectorized=True)
    ref = scipy_solve_ivp(fun, (0.0, 5.0), [1.0, 0.0], method="DOP853", vectorized=True)
    assert ours.nfev == ref.nfev
    np.testing.assert_array_equal(ours.y, ref.y)


def test_lambdas_closures_and_globals_are_not_stale():
    """Each call uses the values the function sees now: a closure's captured value, a
    changed global. Equal code is compiled once."""
    answers = []
    for k in (1.0, 2.0):
        answers.append(bi.solve_ivp(lambda t, y: -k * y, (0.0, 1.0), [1.0], rtol=1e-10,
                                    atol=1e-12).y[0, -1])
    np.testing.assert_allclose(answers, np.exp([-1.0, -2.0]), rtol=1e-8)

    global RATE
    RATE = 0.5
    first = bi.solve_ivp(global_decay, (0.0, 1.0), [1.0], rtol=1e-10, atol=1e-12).y[0, -1]
    RATE = 1.5
    second = bi.solve_ivp(global_decay, (0.0, 1.0), [1.0], rtol=1e-10, atol=1e-12).y[0, -1]
    np.testing.assert_allclose([first, second], np.exp([-0.5, -1.5]), rtol=1e-8)


RATE = 0.5


def global_decay(t, y):
    return -RATE * y


def test_repeated_calls_reuse_the_compiled_module():
    bi.solve_ivp(decay, (0.0, 1.0), [1.0], args=(0.3,))
    before = len(render._modules)
    for k in (0.1, 0.2, 0.3):  # new args values: same module
        bi.solve_ivp(decay, (0.0, 1.0), [1.0], args=(k,))
    for _ in range(3):  # a new lambda object each time, same code: same module
        bi.solve_ivp(lambda t, y: -0.5 * y, (0.0, 1.0), [1.0])
    assert len(render._modules) == before + 1  # only the lambda's own module was added


# ---- fallback, pass-through, validation ----

class Opaque:
    """Something numba cannot take into compiled code."""

    rate = 2.0


OPAQUE = Opaque()


def uses_an_object(t, y):
    return -OPAQUE.rate * y


def test_uncompilable_function_falls_back_to_scipy_with_one_warning():
    with pytest.warns(bi.CompilationWarning, match="'uses_an_object'.*'OPAQUE'") as record:
        ours = bi.solve_ivp(uses_an_object, (0.0, 1.0), [1.0], method="DOP853")
    assert len(record) == 1
    ref = scipy_solve_ivp(uses_an_object, (0.0, 1.0), [1.0], method="DOP853")
    np.testing.assert_array_equal(ours.y, ref.y)
    assert ours.nfev == ref.nfev


def test_fallback_to_scipy_keeps_scipy_tolerances_for_a_complex_state():
    """A complex state with per-component tolerances, solved by scipy because the
    function cannot compile: scipy's result, not an error of our tolerance packing."""
    options = dict(method="DOP853", rtol=[1e-5, 1e-7], atol=[1e-8, 1e-6])
    with pytest.warns(bi.CompilationWarning, match="'uses_an_object'"):
        ours = bi.solve_ivp(uses_an_object, (0.0, 1.0), [1.0 + 1j, 2j], **options)
    ref = scipy_solve_ivp(uses_an_object, (0.0, 1.0), [1.0 + 1j, 2j], **options)
    np.testing.assert_array_equal(ours.y, ref.y)
    assert ours.nfev == ref.nfev


def test_numba_typing_failure_falls_back_with_the_construct_named():
    def uses_tolist(t, y):
        values = y.tolist()  # numba has no ndarray.tolist
        return [-2.0 * values[0]]

    with pytest.warns(bi.CompilationWarning, match="uses_tolist'.*'tolist'") as record:
        ours = bi.solve_ivp(uses_tolist, (0.0, 1.0), [1.0], method="DOP853")
    assert len(record) == 1
    np.testing.assert_allclose(ours.y[0, -1], math.exp(-2.0), rtol=1e-5)


@pytest.mark.parametrize("method", ["RK45", "RK23", "Radau", "BDF", "LSODA"])
def test_other_methods_are_scipys(method):
    ours = bi.solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], method=method)
    ref = scipy_solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], method=method)
    np.testing.assert_array_equal(ours.y, ref.y)
    assert ours.nfev == ref.nfev and ours.message == ref.message


def test_default_method_is_dop853(scipy_in_index_order):
    ours = bi.solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9])
    ref = scipy_solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], method="DOP853")
    assert ours.nfev == ref.nfev


BAD_CALLS = {
    "method": dict(method="Euler"),
    "t_eval-2d": dict(t_eval=[[6.0]]),
    "t_eval-outside": dict(t_eval=[4.0, 6.0]),
    "t_eval-unsorted": dict(t_eval=[7.0, 6.0]),
    "y0-2d": dict(y0=[[1 / 3, 2 / 9]]),
    "y0-nan": dict(y0=[np.nan, 1.0]),
    "atol-shape": dict(atol=[1e-6, 1e-6, 1e-6]),
    "atol-negative": dict(atol=-1.0),
    "max_step": dict(max_step=-1.0),
    "first_step": dict(first_step=-1.0),
    "first_step-bounds": dict(first_step=10.0),
    "args": dict(args=1.5),
    "terminal": dict(events="bad-terminal"),
    "t_span": dict(t_span=(5.0,)),
    "fun-not-callable": dict(fun=1.5),
}


def _bad_event(t, y):
    return y[0]


_bad_event.terminal = -1


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_validation_errors_are_scipys(case):
    call = dict(fun=fun_rational, t_span=(5.0, 9.0), y0=[1 / 3, 2 / 9], method="DOP853")
    call.update(BAD_CALLS[case])
    if call.get("events") == "bad-terminal":
        call["events"] = _bad_event
    with pytest.raises(Exception) as ref:
        scipy_solve_ivp(**call)
    with pytest.raises(type(ref.value)) as ours:
        bi.solve_ivp(**call)
    assert str(ours.value) == str(ref.value)


@pytest.mark.parametrize("options", [dict(jac=lambda t, y: None), dict(unknown_option=1),
                                     dict(rtol=1e-20)])
def test_warnings_are_scipys(options):
    with warnings.catch_warnings(record=True) as ref:
        warnings.simplefilter("always")
        scipy_solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], method="DOP853", **options)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        bi.solve_ivp(fun_rational, (5.0, 9.0), [1 / 3, 2 / 9], method="DOP853", **options)
    assert [(w.category, str(w.message)) for w in ours] == [(w.category, str(w.message)) for w in ref]
    assert ref


def test_cuda_needs_registered_functions():
    with pytest.raises(ValueError, match="@batchivp.rhs"):
        bi.solve_ivp(decay, (0.0, 1.0), [1.0], args=(1.0,), target="cuda")


def test_complex_state_with_registered_rhs_is_refused():
    with pytest.raises(ValueError, match="complex"):
        bi.solve_ivp(ivp_osc, (0.0, 1.0), [1.0 + 1j, 0.0], args=(1.0,))
