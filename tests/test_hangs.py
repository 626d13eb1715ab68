"""Nothing hangs and Ctrl-C always works (issue 13, item 4).

scipy's ``solve_ivp`` accepts a non-finite ``t0``, a NaN ``tf``, NaN tolerances and a
NaN ``first_step``, and then loops for ever (no comparison with NaN ends its loop); in
compiled code such a loop would not even hear Ctrl-C. batchivp refuses these inputs,
keeps ``tf = +-inf`` legal as scipy does (a terminal event ends the integration), ends
a problem whose step grows to infinity (where scipy loops for ever), and runs
``solve_ivp`` in kernel calls of bounded length so that Ctrl-C raises
``KeyboardInterrupt`` within a fraction of a second, with results bitwise those of one
call. Oracles: scipy's DOP853 with index-order sums (``scipy_in_index_order``), its
stepper, and the analytic solutions.

Tests whose failure would be a hang run where they cannot hang the suite: refusals
must come before anything compiles (``render.load_module`` fails the test), and runs
that would loop for ever go to a child process with a timeout.
"""

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp
from scipy.integrate._ivp.rk import DOP853

import batchivp as bi
from batchivp import Status, host_loop, ivp

CPU_TARGETS = ["cpu", "parallel"]
CHILD_TIMEOUT_S = 600  # a child compiles its kernel unless the disk cache has it


def decay(t, y):
    return -y


def oscillator(t, y, k):
    return [y[1], -k * y[0]]


@bi.rhs
def hang_osc(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0]


@bi.event(terminal=True, direction=-1)
def hang_half(t, y, p):
    return y[0] - 0.5


# ---- inputs scipy loops on: refused before anything runs ----

@pytest.mark.parametrize("t_span, match", [
    ((np.nan, 1.0), r"`t_span\[0\]` \(t0\) must be finite, got nan"),
    ((np.inf, 1.0), r"`t_span\[0\]` \(t0\) must be finite, got inf"),
    ((-np.inf, 1.0), r"`t_span\[0\]` \(t0\) must be finite, got -inf"),
    ((0.0, np.nan), r"`t_span\[1\]` \(tf\) must not be NaN"),
])
@pytest.mark.parametrize("method", ["DOP853", "RK45"])
def test_solve_ivp_refuses_a_non_finite_t0_and_a_nan_tf(t_span, match, method, no_compile):
    with pytest.raises(ValueError, match=match):
        bi.solve_ivp(decay, t_span, [1.0], method=method)


@pytest.mark.parametrize("option, value", [
    ("rtol", np.nan), ("atol", np.nan), ("atol", [1e-6, np.nan]), ("first_step", np.nan),
    ("t_eval", [0.0, np.nan, 1.0]),
])
def test_solve_ivp_refuses_nan_options_scipy_loops_on(option, value, no_compile):
    """scipy loops for ever on the NaN tolerances and first_step, and drops every
    t_eval point from the NaN on; each is a ValueError naming the option."""
    with pytest.raises(ValueError, match=rf"`{option}` must not be NaN"):
        bi.solve_ivp(decay, (0.0, 1.0), [1.0, 2.0], **{option: value})


def test_nan_max_step_works_as_in_scipy(scipy_in_index_order):
    """scipy's checks pass a NaN max_step and no comparison with it limits a step: the
    same steps as without one."""
    ours = bi.solve_ivp(decay, (0.0, 2.0), [1.0], max_step=np.nan)
    ref = scipy_solve_ivp(decay, (0.0, 2.0), [1.0], method="DOP853", max_step=np.nan)
    assert ours.status == ref.status == 0 and ours.nfev == ref.nfev
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    np.testing.assert_allclose(ours.y[0], np.exp(-ours.t), rtol=1e-3)


@pytest.mark.parametrize("t_span, match", [
    ((np.nan, 1.0), r"t_span\[:, 0\] \(t0\) must be finite, got nan in problem 0"),
    ([(0.0, 1.0), (np.inf, 1.0)], r"t_span\[:, 0\] \(t0\) must be finite, got inf in problem 1"),
    ([(0.0, 1.0), (0.0, np.nan)], r"t_span\[:, 1\] \(tf\) is NaN in problem 1"),
])
def test_solve_batch_refuses_a_non_finite_t0_and_a_nan_tf(t_span, match, no_compile):
    with pytest.raises(ValueError, match=match):
        bi.solve_batch(hang_osc, t_span, np.ones((2, 2)), params=1.0)


# ---- tf = +-inf: legal, as in scipy ----

@pytest.mark.parametrize("tf", [np.inf, -np.inf])
def test_solve_ivp_to_infinity_with_a_terminal_event_is_scipys(tf, scipy_in_index_order):
    def half(t, y, k):
        return y[0] - 0.5

    half.terminal = True
    kw = dict(method="DOP853", args=(4.0,), events=half, rtol=1e-9, atol=1e-12)
    t_eval = np.sign(tf) * np.array([0.0, 0.1, 0.2, 1e300])
    for extra in ({}, dict(dense_output=True), dict(t_eval=t_eval)):
        ours = bi.solve_ivp(oscillator, (0.0, tf), [1.0, 0.0], **kw, **extra)
        ref = scipy_solve_ivp(oscillator, (0.0, tf), [1.0, 0.0], **kw, **extra)
        assert ours.status == ref.status == 1 and ours.nfev == ref.nfev, extra
        np.testing.assert_array_equal(ours.t, ref.t)
        np.testing.assert_array_equal(ours.y, ref.y)
        np.testing.assert_array_equal(ours.t_events[0], ref.t_events[0])
        # y = cos(2t) first falls to 1/2 at |t| = pi/6, either way.
        np.testing.assert_allclose(np.abs(ours.t_events[0]), [np.pi / 6], rtol=1e-8)


def test_solve_batch_to_infinity_with_a_terminal_event(target, scipy_in_index_order):
    """tf = inf and -inf in one batch (with a finite span beside them) stop at the event:
    scipy's steps, and the analytic time: cos(sqrt(k) t) = 1/2 at |t| = pi/3 / sqrt(k)."""
    k = np.array([[4.0], [1.0], [9.0]])
    t_span = np.array([[0.0, np.inf], [0.0, -np.inf], [0.0, 0.1]])
    y0 = np.tile([1.0, 0.0], (3, 1))
    res = bi.solve_batch(hang_osc, t_span, y0, params=k, events=[hang_half], rtol=1e-9,
                         atol=1e-12, target=target, progress=True)
    assert list(res.status) == [1, 1, 0]
    np.testing.assert_allclose(np.abs(res.t_final[:2]), np.pi / 3 / np.sqrt(k[:2, 0]), rtol=1e-8)
    for i in range(3):
        def f(t, y, i=i):
            dydt = np.empty(2)
            hang_osc(t, y, k[i], dydt)
            return dydt

        def g(t, y, i=i):
            return hang_half(t, y, k[i])

        g.terminal, g.direction = True, -1
        ref = scipy_solve_ivp(f, t_span[i], y0[i], method="DOP853", events=g, rtol=1e-9,
                              atol=1e-12)
        assert res.status[i] == ref.status and res.nfev[i] == ref.nfev
        assert res.t_final[i] == ref.t[-1]
        np.testing.assert_array_equal(res.y_final[i], ref.y[:, -1])


def test_progress_bar_counts_problems_when_a_span_is_infinite(capsys):
    t_span = np.array([[0.0, np.inf], [0.0, 0.1]])
    res = bi.solve_batch(hang_osc, t_span, np.tile([1.0, 0.0], (2, 1)), params=4.0,
                         events=[hang_half], target="cpu", progress=True)
    assert list(res.status) == [1, 0]
    err = capsys.readouterr().err
    assert "100%" in err and "finished 2/2" in err and "nan" not in err.lower()


# ---- a step that grows to infinity: scipy loops for ever, here the problem ends ----

INFINITE_STEP_CHILD = """
import json, sys, warnings, numpy as np, batchivp as bi
warnings.simplefilter("error", bi.CompilationWarning)  # no fallback to scipy: it loops
still = bi.register_rhs("def hang_still(t, y, p, dydt):\\n    dydt[0] = 0.0 * y[0]\\n")
target = sys.argv[1]
b = bi.solve_batch(still, (0.0, np.inf), np.ones((2, 1)), target=target)
out = dict(status=b.status.tolist(), t=b.t_final.tolist(), y=b.y_final[:, 0].tolist(),
           nfev=b.nfev.tolist(), nstep=b.nstep.tolist(), message=b.message(0))
if target == "cpu":
    r = bi.solve_ivp(lambda t, y: 0.0 * y, (0.0, np.inf), [1.0])
    out.update(ivp_status=r.status, ivp_message=r.message, ivp_t=r.t[-1], ivp_n=len(r.t),
               ivp_nfev=r.nfev)
print(json.dumps(out))
"""


def child_script(tmp_path, script):
    """The script as a file: solve_ivp compiles a plain function from its source, which
    ``python -c`` would not have (the call would go to scipy)."""
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script))
    return str(path)


def run_child(path, *args, timeout=CHILD_TIMEOUT_S):
    done = subprocess.run([sys.executable, path, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_step_grown_to_infinity_ends_the_problem(target, tmp_path):
    """y' = 0 to tf = inf: the error is 0, so each step is 10 times the last until the
    next one would reach t = inf; scipy's stepper then rejects that step for ever (an
    infinite step times any factor stays infinite). Here the problem ends there, with
    status -8 (solve_ivp: -1), at scipy's t and nfev."""
    import json

    stepper = DOP853(lambda t, y: 0.0 * y, 0.0, [1.0], np.inf)
    steps = 0
    with np.errstate(over="ignore"):  # h_abs overflows to inf: that is the point
        while stepper.h_abs < np.inf:  # the next step of scipy's would never end
            stepper.step()
            steps += 1
    out = json.loads(run_child(child_script(tmp_path, INFINITE_STEP_CHILD), target))
    assert out["status"] == [Status.INFINITE_STEP] * 2 and "grew to infinity" in out["message"]
    assert out["t"] == [stepper.t] * 2 and out["y"] == [1.0, 1.0]
    assert out["nfev"] == [stepper.nfev] * 2 and out["nstep"] == [steps] * 2
    if target == "cpu":
        assert out["ivp_status"] == -1 and "grew to infinity" in out["ivp_message"]
        assert (out["ivp_t"], out["ivp_n"], out["ivp_nfev"]) == (stepper.t, steps + 1, stepper.nfev)


# ---- solve_ivp in chunks: the same bits, and Ctrl-C ----

def count_calls(monkeypatch, schedule):
    calls = []
    original = schedule.record

    def record(self, seconds):
        original(self, seconds)
        calls.append(seconds)

    monkeypatch.setattr(schedule, "record", record)
    return calls


def event_at_rest(t, y, k):
    return y[0] + 0.999


event_at_rest.terminal = 3


@pytest.mark.parametrize("output", [
    dict(), dict(dense_output=True), dict(t_eval=np.linspace(0.0, 60.0, 301)),
    dict(events=event_at_rest, dense_output=True), dict(events=event_at_rest, t_eval=[1.0, 50.0])])
def test_solve_ivp_in_many_small_calls_is_scipys(output, monkeypatch, scipy_in_index_order):
    """7 steps a call: many calls (and record pauses between them), the same bits as
    scipy's loop."""
    monkeypatch.setattr(ivp, "CHUNK_STEPS", 7)
    calls = count_calls(monkeypatch, host_loop.WholeBatch)
    kw = dict(method="DOP853", args=(4.0,), rtol=1e-10, atol=1e-12, **output)
    ours = bi.solve_ivp(oscillator, (0.0, 60.0), [1.0, 0.0], **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 60.0), [1.0, 0.0], **kw)
    assert len(calls) > 10
    assert (ours.status, ours.message, ours.nfev) == (ref.status, ref.message, ref.nfev)
    np.testing.assert_array_equal(ours.t, ref.t)
    np.testing.assert_array_equal(ours.y, ref.y)
    if "events" in output:
        assert ref.status == 1
        np.testing.assert_array_equal(ours.t_events[0], ref.t_events[0])
        np.testing.assert_array_equal(ours.y_events[0], ref.y_events[0])
    if ours.sol is not None:
        t = np.linspace(0.0, ref.t[-1], 501)
        np.testing.assert_array_equal(ours.sol(t), ref.sol(t))


def test_host_sized_calls_of_solve_ivp_are_scipys(monkeypatch, scipy_in_index_order):
    """The default schedule, made to size calls of a microsecond: the first call of
    ONE_PROBLEM_FIRST_STEPS steps, then many calls, each sized from the last."""
    monkeypatch.setattr(host_loop, "ONE_PROBLEM_FIRST_STEPS", 8)
    monkeypatch.setattr(host_loop, "ONE_PROBLEM_CALL_S", 1e-6)
    steps = []
    original = host_loop.OneProblemChunks.next_window

    def next_window(self):
        window = original(self)
        steps.append(window and window[2])
        return window

    monkeypatch.setattr(host_loop.OneProblemChunks, "next_window", next_window)
    kw = dict(method="DOP853", args=(4.0,), rtol=1e-10, atol=1e-12,
              t_eval=np.linspace(0.0, 60.0, 61))
    ours = bi.solve_ivp(oscillator, (0.0, 60.0), [1.0, 0.0], **kw)
    ref = scipy_solve_ivp(oscillator, (0.0, 60.0), [1.0, 0.0], **kw)
    assert steps[0] == 8 and len(steps) > 10 and steps[-1] is None
    assert ours.nfev == ref.nfev
    np.testing.assert_array_equal(ours.y, ref.y)


def test_chunked_solve_ivp_on_every_target(target, monkeypatch):
    """Registered functions, 5 steps a call, to tf = inf and the 20th event: bitwise
    the one-call result (scipy's, as the tests above show on the cpu), and the analytic
    event times."""
    kw = dict(args=(4.0,), events=bi.event(hang_half, terminal=20), rtol=1e-10, atol=1e-12,
              target=target, dense_output=True)
    whole = bi.solve_ivp(hang_osc, (0.0, np.inf), [1.0, 0.0], **kw)
    monkeypatch.setattr(ivp, "CHUNK_STEPS", 5)
    calls = count_calls(monkeypatch, host_loop.WholeBatch)
    ours = bi.solve_ivp(hang_osc, (0.0, np.inf), [1.0, 0.0], **kw)
    assert len(calls) > 10
    assert (ours.status, ours.nfev) == (whole.status, whole.nfev) == (1, whole.nfev)
    for name in ("t", "y"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(whole, name))
    np.testing.assert_array_equal(ours.t_events[0], whole.t_events[0])
    t = np.linspace(0.0, ours.t[-1], 101)
    np.testing.assert_array_equal(ours.sol(t), whole.sol(t))
    # cos(2t) falls through 1/2 at pi/6 + k pi.
    np.testing.assert_allclose(ours.t_events[0], np.pi / 6 + np.pi * np.arange(20), rtol=1e-8)


def test_ctrl_c_in_solve_ivp_raises_keyboard_interrupt(monkeypatch):
    """A real SIGINT right after the third kernel call of an endless integration."""
    if not host_loop.sigint_interceptable():
        pytest.skip("SIGINT is not Python's default handler here")
    monkeypatch.setattr(ivp, "CHUNK_STEPS", 50)
    original = host_loop.WholeBatch.record
    calls = []

    def record(self, seconds):
        original(self, seconds)
        calls.append(seconds)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(host_loop.WholeBatch, "record", record)
    with pytest.raises(KeyboardInterrupt):
        bi.solve_ivp(oscillator, (0.0, np.inf), [1.0, 0.0], args=(4.0,), t_eval=[1.0])
    assert len(calls) == 3 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


CTRL_C_CHILD = """
import signal, sys, time, warnings, numpy as np, batchivp as bi
signal.signal(signal.SIGINT, signal.default_int_handler)  # even from a background shell
warnings.simplefilter("error", bi.CompilationWarning)  # compiled, not scipy's Python loop

def decay(t, y):
    return -y

t_eval = None if sys.argv[1] == "steps" else [0.5]
bi.solve_ivp(decay, (0.0, 1.0), [1.0], t_eval=t_eval)  # compiled
print("running", flush=True)
try:
    bi.solve_ivp(decay, (0.0, np.inf), [1.0], t_eval=t_eval)  # for ever: no event
except KeyboardInterrupt:
    print("KeyboardInterrupt", time.time(), flush=True)
"""


@pytest.mark.parametrize("output", ["steps", "t_eval"])
def test_ctrl_c_stops_an_endless_solve_ivp_within_a_second(output, tmp_path):
    """y' = -y to tf = inf settles on a fixed point of the steps and runs for ever, as in
    scipy. SIGINT a second into it: KeyboardInterrupt within a second (typically 0.1 s;
    the bound allows for a loaded machine)."""
    child = subprocess.Popen([sys.executable, child_script(tmp_path, CTRL_C_CHILD), output],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "running", child.stderr.read()
        time.sleep(1.0)
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    word, when = out.split()
    assert word == "KeyboardInterrupt", err
    assert float(when) - sent < 2.0
