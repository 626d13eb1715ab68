"""The ``python`` target, the oracle: the generated module run as plain Python.

The python target is the module every target compiles (core, user functions,
dispatchers, kernel entry point), left undecorated: no numba, so the driver
(``dop853_advance``), the events (``event_root``) and the step record run as Python and
can be stepped through in a debugger. Here it is held to scipy's DOP853 with its BLAS
sums in index order (``conftest``), bitwise: ``t``, ``y``, ``nfev``, the events and the
status, with ``t_eval``, events of every kind, backward spans and dense output. Small
problems and loose tolerances keep it fast: every step runs in the interpreter.
"""

import os
import sys
import types

import numpy as np
import pytest
from conftest import index_order_sums, scipy_reference
from problems import decay, lotka, rotate
from scipy.integrate import solve_ivp as scipy_solve_ivp

import batchivp as bi
from batchivp import cache

# A plain function handed back to scipy would make every comparison here vacuous.
pytestmark = pytest.mark.filterwarnings("error::batchivp.CompilationWarning")


# ---- solve_ivp: plain callables ------------------------------------------------------

def oscillator(t, y, k):
    return [y[1], -k * y[0]]


def position(t, y, *args):
    return y[0]


def velocity(t, y, *args):
    return y[1]


def extinct(t, y, *args):
    return y[1] - 0.01


def early(t, y, *args):
    return t - 0.5


def with_options(func, terminal, direction):
    """A copy of the event ``func`` with scipy's attributes set."""
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__)
    copy.terminal, copy.direction = terminal, direction
    return copy


CASES = {
    # name: (fun, t_span, y0, options)
    "decay-t_eval": (decay, (0.0, 4.0), [1.0, 2.0, -3.0],
                     dict(args=(0.7,), rtol=1e-4, t_eval=np.linspace(0.0, 4.0, 9))),
    "decay-backward-t_eval-dense": (decay, (4.0, 0.5), [1.0, 2.0, -3.0],
                                    dict(args=(0.7,), rtol=1e-4, dense_output=True,
                                         t_eval=np.linspace(4.0, 0.5, 8))),
    "complex-dense": (rotate, (0.0, 3.0), [1.0 + 0.5j, -2j],
                      dict(args=(1.3,), rtol=1e-5, dense_output=True)),
    "complex-per-component-tolerances": (rotate, (0.0, 3.0), [1.0 + 0.5j, -2j],
                                         dict(args=(1.3,), rtol=[1e-5, 1e-7],
                                              atol=[1e-8, 1e-6], dense_output=True)),
    "events-nonterminal-t_eval-dense": (
        oscillator, (0.0, 6.0), [1.0, 0.0],
        dict(args=(4.0,), rtol=1e-5, events=[position, velocity], dense_output=True,
             t_eval=np.linspace(0.0, 6.0, 13))),
    "events-falling-terminal": (
        oscillator, (0.0, 6.0), [1.0, 0.0],
        dict(args=(4.0,), rtol=1e-5, t_eval=np.linspace(0.0, 6.0, 13),
             events=[with_options(position, True, -1), velocity])),
    "events-rising-terminal-count": (
        oscillator, (0.0, 9.0), [1.0, 0.0],
        dict(args=(4.0,), rtol=1e-5, dense_output=True,
             events=[with_options(position, 2, 1), with_options(velocity, False, -1)])),
    "events-backward": (
        oscillator, (6.0, 0.0), [1.0, 0.0],
        dict(args=(4.0,), rtol=1e-5, t_eval=np.linspace(6.0, 0.0, 7),
             events=[with_options(position, False, 1), with_options(velocity, 2, -1)])),
    "lotka-extinction": (
        lotka, (0.0, 15.0), [10.0, 5.0],
        dict(args=(1.5, 1, 3, 1), rtol=1e-5, dense_output=True,
             events=with_options(extinct, True, 0), t_eval=np.linspace(0.0, 15.0, 31))),
    "terminal-before-t_eval": (
        oscillator, (0.0, 3.0), [1.0, 0.0],
        dict(args=(4.0,), rtol=1e-5, events=with_options(early, True, 0), t_eval=[1.0, 2.0])),
    "zero-length-span": (
        oscillator, (2.0, 2.0), [0.0, 0.5],
        dict(args=(4.0,), dense_output=True, events=[position, velocity])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_solve_ivp_is_scipy_bit_for_bit(name):
    fun, span, y0, options = CASES[name]
    ours = bi.solve_ivp(fun, span, y0, method="DOP853", target="python", **options)
    with index_order_sums():
        ref = scipy_solve_ivp(fun, span, y0, method="DOP853", **options)
    assert (ours.status, ours.message, ours.success) == (ref.status, ref.message, ref.success)
    assert ours.nfev == ref.nfev
    assert np.shape(ours.t) == np.shape(ref.t) and np.shape(ours.y) == np.shape(ref.y)
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    if ref.t_events is None:
        assert ours.t_events is None and ours.y_events is None
    else:
        assert len(ours.t_events) == len(ref.t_events)
        for ours_t, ref_t, ours_y, ref_y in zip(ours.t_events, ref.t_events, ours.y_events,
                                                ref.y_events):
            np.testing.assert_array_equal(ours_t, ref_t)
            assert np.shape(ours_y) == np.shape(ref_y)
            np.testing.assert_array_equal(ours_y, ref_y)
    if options.get("dense_output"):
        inside = np.linspace(span[0], ref.t[-1] if len(ref.t) else span[1], 23)
        np.testing.assert_array_equal(ours.sol(inside), ref.sol(inside))


def test_the_cases_reach_what_they_are_named_for():
    """The set covers terminal and non-terminal events in every direction, counted
    terminal events, and ``t_eval`` points cut by a terminal event (scipy's results)."""
    with index_order_sums():
        results = {name: scipy_solve_ivp(fun, span, y0, method="DOP853", **options)
                   for name, (fun, span, y0, options) in CASES.items()}
    assert results["events-falling-terminal"].status == 1
    assert len(results["events-rising-terminal-count"].t_events[0]) == 2
    assert results["events-rising-terminal-count"].status == 1
    assert results["events-backward"].status == 1
    assert len(results["events-backward"].t_events[0]) > 0
    assert len(results["events-nonterminal-t_eval-dense"].t_events[0]) > 2
    assert 0 < len(results["events-falling-terminal"].t) < 13
    assert results["lotka-extinction"].status == 0  # the predators never fall to 0.01
    assert len(results["terminal-before-t_eval"].t) == 0


# ---- solve_batch: registered functions, resumed in chunks ----------------------------

@bi.rhs
def py_oscillator(t, y, p, dydt):
    """x'' = -w^2 x, w = p[0]."""
    dydt[0] = y[1]
    dydt[1] = -p[0] * p[0] * y[0]


@bi.event(direction=-1)
def py_falling_through_level(t, y, p):
    return y[0] - p[1]


@bi.event(terminal=2, direction=1)
def py_velocity_rising(t, y, p):
    return y[1]


@bi.event
def py_zero(t, y, p):
    return y[0]


@pytest.mark.parametrize("span", [(0.0, 7.0), (7.0, 0.0)], ids=["forward", "backward"])
def test_solve_batch_is_scipy_bit_for_bit(span):
    """Each problem of a batch, stopped every 3 steps and resumed, is scipy's solution of
    it alone: the ``t_eval`` output, the events, the end and the counts."""
    w = np.array([1.0, 2.5, 0.7])
    amp = np.array([1.0, 2.0, 0.5])
    phi = np.array([0.0, 0.3, -1.2])
    y0 = np.column_stack([amp * np.cos(phi), -amp * w * np.sin(phi)])
    params = np.column_stack([w, 0.4 * amp])
    events = [py_falling_through_level, py_velocity_rising, py_zero]
    t_eval = np.linspace(*span, 15)
    kw = dict(rtol=1e-5, atol=1e-8)
    res = bi.solve_batch(py_oscillator, span, y0, params=params, events=events,
                         t_eval=t_eval, max_events=8, chunk_steps=3, target="python", **kw)
    assert res.target == "python"
    for i in range(len(y0)):
        ref = scipy_reference(py_oscillator, span, y0[i], params[i], events=events,
                              t_eval=t_eval, **kw)
        steps = scipy_reference(py_oscillator, span, y0[i], params[i], events=events, **kw)
        assert res.status[i] == ref.status
        assert res.message(i) == ref.message
        assert res.nfev[i] == ref.nfev
        assert res.nstep[i] == len(steps.t) - 1
        assert res.t_final[i] == steps.t[-1]
        np.testing.assert_array_equal(res.y_final[i], steps.y[:, -1])
        k = ref.y.shape[1]
        np.testing.assert_array_equal(res.y[i, :, :k], ref.y)
        assert np.all(np.isnan(res.y[i, :, k:]))
        for e in range(len(events)):
            count = len(ref.t_events[e])
            assert res.n_events[i, e] == count
            np.testing.assert_array_equal(res.t_events[e][i, :count], ref.t_events[e])
            if count:  # scipy's y_events of no occurrence has shape (0,)
                np.testing.assert_array_equal(res.y_events[e][i, :count], ref.y_events[e])
            assert np.all(np.isnan(res.t_events[e][i, count:]))
    assert np.any(res.status == 1) and np.all(res.n_events[:, 2] > 0)


# ---- the oracle is Python a debugger can step through --------------------------------

def test_the_core_runs_as_python_functions_of_the_generated_file():
    """No numba in the way: a solve with events and ``t_eval`` executes the core's
    functions as Python frames of the generated file (a profiler sees them, as a
    debugger's breakpoints would), and they are plain Python functions there."""
    generated = {}  # file name -> the module's globals

    def profile(frame, event, arg):
        name = frame.f_code.co_filename
        if event == "call" and os.path.basename(name).startswith(cache.MODULE_PREFIX):
            generated.setdefault(name, frame.f_globals)
            seen.add(frame.f_code.co_name)

    seen = set()
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        res = bi.solve_batch(py_oscillator, (0.0, 4.0), np.array([[1.0, 0.0]]),
                             params=[[2.0, 0.0]], events=[py_zero], t_eval=[1.0, 3.0],
                             rtol=1e-5, target="python")
    finally:
        sys.setprofile(previous)
    # cos(2 t) is zero at pi/4, 3 pi/4 and 5 pi/4 in [0, 4].
    assert res.n_events[0, 0] == 3
    np.testing.assert_allclose(res.t_events[0][0, :3], np.pi / 4 * np.array([1, 3, 5]),
                               rtol=1e-4)
    assert np.all(np.isfinite(res.y))
    assert len(generated) == 1
    (path, namespace), = generated.items()
    core_functions = {"dop853_kernel", "dop853_advance", "dop853_step", "event_root",
                      "step_events", "dense_eval"}
    assert core_functions <= seen, sorted(seen)
    for name in core_functions:
        assert isinstance(namespace[name], types.FunctionType), name
        assert namespace[name].__code__.co_filename == path
