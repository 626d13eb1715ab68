"""Events in the kernel on every target, against scipy's solve_ivp(events=...).

Each problem of a batch is compared with scipy's DOP853 (its BLAS sums in index order,
``conftest.scipy_reference``) solving it alone with the same Python event functions:
the same occurrences (count, times to 1e-12 absolute, states to round-off), the same
status, final time and ``nfev``. Analytic event times of a
harmonic oscillator check the physics besides.
"""

import math
import warnings

import numpy as np
import pytest
from conftest import scipy_reference

import batchivp as bi
from batchivp import Status, models
from batchivp.orbit.constants import R_EARTH
from batchivp.orbit.constants import MU_EARTH as MU

GRAVITY = 9.81


@bi.rhs
def evt_ball(t, y, p, dydt):
    """Free fall: y = (height, velocity), p[0] = g."""
    dydt[0] = y[1]
    dydt[1] = -p[0]


@bi.rhs
def evt_oscillator(t, y, p, dydt):
    """x'' = -w^2 x, w = p[0]: x = A cos(w t + phi)."""
    dydt[0] = y[1]
    dydt[1] = -p[0] * p[0] * y[0]


@bi.event(terminal=True, direction=-1)
def evt_ground(t, y, p):
    return y[0]


@bi.event
def evt_apex(t, y, p):
    return y[1]


@bi.event
def evt_zero(t, y, p):
    return y[0]


@bi.event(direction=1)
def evt_velocity_rising(t, y, p):
    return y[1]


@bi.event(direction=-1)
def evt_level_falling(t, y, p):
    return y[0] - p[1]


@bi.event
def evt_level_near(t, y, p):
    return y[0] - p[1] - 1e-7


@bi.event
def evt_nan_underground(t, y, p):
    """NaN once the height is negative: a broken event function.

    (Spelled out: the CUDA simulator raises on math.sqrt(-1), where devices give NaN.)
    """
    if y[0] < 0.0:
        return math.nan
    return y[0] + 1.0


@bi.event
def evt_clock(t, y, p):
    """Zero at t = p[1]: an event exactly at the end of a span ending there."""
    return t - p[1]


@bi.event(direction=-1)
def evt_altitude(t, y, p):
    """Radius minus p[1] (km): falling through the altitude p[1] - R_earth."""
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - p[1]


@bi.event
def evt_node(t, y, p):
    """The equatorial plane z = 0 (ascending and descending nodes)."""
    return y[2]


def assert_matches_scipy(res, i, ref, n_events_slots, time_tol=1e-12):
    """Problem ``i`` of ``res`` against scipy's solution ``ref`` of it alone."""
    assert res.status[i] == ref.status, (res.message(i), ref.message)
    assert res.nfev[i] == ref.nfev, f"problem {i}: nfev {res.nfev[i]} != scipy's {ref.nfev}"
    scale = max(1.0, float(np.max(np.abs(ref.y))))
    for e in range(n_events_slots):
        n = len(ref.t_events[e])
        assert res.n_events[i, e] == n, f"problem {i}, event {e}: {res.n_events[i, e]} != {n}"
        t_ref = ref.t_events[e]
        np.testing.assert_allclose(res.t_events[e][i, :n], t_ref, rtol=0, atol=time_tol)
        assert np.all(np.isnan(res.t_events[e][i, n:]))
        if n:
            np.testing.assert_allclose(res.y_events[e][i, :n], ref.y_events[e], rtol=0,
                                       atol=1e-9 * scale)
    if res.y is None:
        assert res.t_final[i] == pytest.approx(ref.t[-1], rel=0, abs=time_tol)
        np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=0, atol=1e-9 * scale)


def test_ball_terminal_event_and_t_eval(target):
    """A falling ball stops on the ground; t_eval points after the impact stay NaN."""
    y0 = np.array([[10.0, 5.0], [2.0, 0.0], [0.5, 3.0], [100.0, -20.0]])
    t_eval = np.linspace(0.0, 10.0, 41)
    events = [evt_ground, evt_apex]
    res = bi.solve_batch(evt_ball, (0.0, 10.0), y0, params=GRAVITY, events=events,
                         t_eval=t_eval, rtol=1e-8, atol=1e-10, target=target)
    assert res.status.tolist() == [1, 1, 1, 1]
    for i in range(len(y0)):
        ref = scipy_reference(evt_ball, (0.0, 10.0), y0[i], GRAVITY, events=events,
                              t_eval=t_eval, rtol=1e-8, atol=1e-10)
        assert_matches_scipy(res, i, ref, 2)
        k = ref.y.shape[1]
        np.testing.assert_allclose(res.y[i, :, :k], ref.y, rtol=0, atol=1e-9 * np.max(np.abs(ref.y)))
        assert np.all(np.isnan(res.y[i, :, k:]))
        # The final state is the impact, and the impact time is the analytic one.
        h, v = y0[i]
        t_hit = (v + math.sqrt(v * v + 2 * GRAVITY * h)) / GRAVITY
        assert res.t_final[i] == pytest.approx(t_hit, abs=1e-12 * t_hit)
        assert res.t_events[0][i, 0] == res.t_final[i]
        assert abs(res.y_final[i, 0]) < 1e-9
        assert "termination event" in res.message(i)


def oscillator_batch():
    """x'' = -w^2 x from x(t0) = A cos(phi), v = -A w sin(phi), p = (w, level)."""
    w = np.array([1.0, 2.5, 0.7, 3.0])
    amp = np.array([1.0, 2.0, 0.5, 1.5])
    phi = np.array([0.0, 0.3, -1.2, 2.0])
    y0 = np.column_stack([amp * np.cos(phi), -amp * w * np.sin(phi)])
    level = 0.4 * amp
    return y0, np.column_stack([w, level]), w, amp, phi, level


@pytest.mark.parametrize("span", [(0.0, 20.0), (20.0, 0.0)], ids=["forward", "backward"])
def test_oscillator_many_crossings_both_directions(target, span):
    """Non-terminal events rising, falling and both; forward and backward in time."""
    y0, params, w, amp, phi, level = oscillator_batch()
    events = [evt_zero, evt_velocity_rising, evt_level_falling]
    res = bi.solve_batch(evt_oscillator, span, y0, params=params, events=events,
                         max_events=64, rtol=1e-10, atol=1e-12, target=target)
    assert np.all(res.status == 0)
    assert np.all(res.n_events[:, 0] >= 4)
    for i in range(len(y0)):
        ref = scipy_reference(evt_oscillator, span, y0[i], params[i], events=events,
                              rtol=1e-10, atol=1e-12)
        assert_matches_scipy(res, i, ref, 3)
        # Analytic: x = A cos(w (t - t0) + phi) is zero where w (t - t0) + phi = pi/2 + k pi.
        t0 = span[0]
        times = res.t_events[0][i, :res.n_events[i, 0]]
        phase = w[i] * (times - t0) + phi[i]
        np.testing.assert_allclose(np.cos(phase), 0.0, atol=1e-8)


@pytest.mark.parametrize("terminal", [1, 3])
def test_terminal_counts(target, terminal):
    """terminal=k stops at the k-th occurrence, as scipy does."""
    y0, params, *_ = oscillator_batch()
    stop = bi.event(evt_zero, terminal=terminal)
    events = [stop, evt_velocity_rising]
    res = bi.solve_batch(evt_oscillator, (0.0, 30.0), y0, params=params, events=events,
                         rtol=1e-9, atol=1e-12, target=target)
    assert np.all(res.status == 1)
    assert np.all(res.n_events[:, 0] == terminal)
    for i in range(len(y0)):
        ref = scipy_reference(evt_oscillator, (0.0, 30.0), y0[i], params[i], events=events,
                              rtol=1e-9, atol=1e-12)
        assert_matches_scipy(res, i, ref, 2)


def test_event_zero_at_t0(target):
    """A zero at the start of the first step counts (scipy's rule), terminal or not."""
    y0 = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0]])
    params = np.array([[1.0, 0.0]] * 3)
    for events in ([evt_zero, evt_velocity_rising], [bi.event(evt_zero, terminal=True)]):
        res = bi.solve_batch(evt_oscillator, (0.0, 5.0), y0, params=params, events=events,
                             rtol=1e-9, atol=1e-12, target=target)
        for i in range(3):
            ref = scipy_reference(evt_oscillator, (0.0, 5.0), y0[i], params[i],
                                  events=events, rtol=1e-9, atol=1e-12)
            assert_matches_scipy(res, i, ref, len(events))
        assert res.t_events[0][0, 0] == 0.0 and res.t_events[0][1, 0] == 0.0
    # The terminal one stopped the first two problems at t0 itself.
    assert res.status.tolist() == [1, 1, 1]
    assert res.t_final[0] == 0.0 and res.t_final[1] == 0.0


@pytest.mark.parametrize("terminal", [False, True])
def test_event_exactly_at_the_end_of_the_span(target, terminal):
    """Brent's bracket ends at the step's end time itself, not t_old + h (one ulp off)."""
    y0 = np.array([[1.0, 0.0], [0.3, 0.2]])
    params = np.array([[GRAVITY, 0.3], [GRAVITY, 0.3]])
    events = [bi.event(evt_clock, terminal=terminal)]
    res = bi.solve_batch(evt_ball, (-0.1, 0.3), y0, params=params, events=events,
                         rtol=1e-8, atol=1e-10, target=target)
    for i in range(2):
        ref = scipy_reference(evt_ball, (-0.1, 0.3), y0[i], params[i], events=events,
                              rtol=1e-8, atol=1e-10)
        assert_matches_scipy(res, i, ref, 1, time_tol=0.0)
    assert np.all(res.t_events[0][:, 0] == 0.3)


def test_events_when_t0_equals_tf(target):
    """scipy's one step that goes nowhere: events zero at t0 occur there, and stop it."""
    y0 = np.array([[0.0, 1.0], [0.5, 1.0]])
    params = np.array([[1.0, 0.0], [1.0, 0.0]])
    for terminal in (False, True):
        events = [bi.event(evt_zero, terminal=terminal), evt_velocity_rising]
        res = bi.solve_batch(evt_oscillator, (2.0, 2.0), y0, params=params, events=events,
                             target=target)
        for i in range(2):
            ref = scipy_reference(evt_oscillator, (2.0, 2.0), y0[i], params[i], events=events)
            assert_matches_scipy(res, i, ref, 2, time_tol=0.0)
        assert res.n_events[:, 0].tolist() == [1, 0]
        assert res.status.tolist() == [int(terminal), 0]


@pytest.mark.parametrize("terminal_slot", [0, 1])
def test_two_events_in_one_step(target, terminal_slot):
    """Two roots 1e-7 apart fall in one step: a terminal one cuts those after it.

    x = cos t falls through 0.5 + 1e-7 just before 0.5. With the later root terminal
    both are recorded; with the earlier one terminal the later one is not.
    """
    y0 = np.array([[1.0, 0.0], [0.9, -0.5]])
    params = np.array([[1.0, 0.5], [1.0, 0.5]])
    events = [evt_level_falling, evt_level_near]
    events[terminal_slot] = bi.event(events[terminal_slot], terminal=True,
                                     direction=events[terminal_slot].direction)
    res = bi.solve_batch(evt_oscillator, (0.0, 3.0), y0, params=params, events=events,
                         rtol=1e-8, atol=1e-10, target=target)
    assert np.all(res.status == 1)
    for i in range(2):
        ref = scipy_reference(evt_oscillator, (0.0, 3.0), y0[i], params[i], events=events,
                              rtol=1e-8, atol=1e-10)
        assert_matches_scipy(res, i, ref, 2)
    if terminal_slot == 1:  # the earlier root terminates: the later one is cut
        assert np.all(res.n_events[:, 0] == 0) and np.all(res.n_events[:, 1] == 1)
    else:
        assert np.all(res.n_events == 1)
        assert np.all(res.t_events[1][:, 0] < res.t_events[0][:, 0])


def test_nonfinite_event_fails_that_problem_only(target):
    """An event that turns NaN gives status -5 to its problem; the batch goes on."""
    y0 = np.array([[10.0, 0.0], [10.0, 30.0]])  # the first falls below 0 within 2 s
    res = bi.solve_batch(evt_ball, (0.0, 2.0), y0, params=GRAVITY, events=[evt_nan_underground],
                         rtol=1e-8, atol=1e-10, target=target)
    assert res.status.tolist() == [Status.EVENT_NONFINITE, Status.FINISHED]
    assert "event function returned a non-finite value" in res.message(0)
    assert not res.success[0] and res.success[1]
    # Problem 0 stopped at the end of the step where its event became NaN (height < 0).
    assert res.y_final[0, 0] < 0.0 and res.t_final[1] == 2.0
    ref = scipy_reference(evt_ball, (0.0, 2.0), y0[1], GRAVITY, events=[evt_nan_underground],
                          rtol=1e-8, atol=1e-10)
    assert_matches_scipy(res, 1, ref, 1)


def test_event_buffer_overflow_keeps_counting_and_warns(target):
    """More occurrences than max_events: the first are kept, all are counted, one warning."""
    y0, params, *_ = oscillator_batch()
    with pytest.warns(RuntimeWarning, match=r"4 problem\(s\).*max_events=3.*max_events=\d+") as record:
        res = bi.solve_batch(evt_oscillator, (0.0, 20.0), y0, params=params,
                             events=[evt_zero], max_events=3, rtol=1e-9, atol=1e-12,
                             target=target)
    assert len(record) == 1
    assert res.t_events[0].shape == (4, 3) and res.y_events[0].shape == (4, 3, 2)
    assert np.all(res.events_overflowed)
    for i in range(len(y0)):
        ref = scipy_reference(evt_oscillator, (0.0, 20.0), y0[i], params[i], events=[evt_zero],
                              rtol=1e-9, atol=1e-12)
        assert res.n_events[i, 0] == len(ref.t_events[0]) > 3
        np.testing.assert_allclose(res.t_events[0][i], ref.t_events[0][:3], rtol=0, atol=1e-12 * 20)
        assert res.status[i] == 0 and res.nfev[i] == ref.nfev


def test_chunked_run_with_events_is_bitwise_equal(target):
    """Event state (values, counts, buffers) survives chunk boundaries unchanged."""
    y0, params, *_ = oscillator_batch()
    events = [evt_zero, bi.event(evt_level_falling, terminal=2, direction=-1)]
    kw = dict(params=params, events=events, rtol=1e-9, atol=1e-12, target=target,
              t_eval=np.linspace(0.0, 15.0, 7))
    whole = bi.solve_batch(evt_oscillator, (0.0, 15.0), y0, **kw)
    chunked = bi.solve_batch(evt_oscillator, (0.0, 15.0), y0, chunk_steps=3, **kw)
    for name in ("status", "nfev", "t_final", "y_final", "n_events", "y"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    for e in range(2):
        np.testing.assert_array_equal(chunked.t_events[e], whole.t_events[e])
        np.testing.assert_array_equal(chunked.y_events[e], whole.y_events[e])


def kepler_batch():
    """LEO orbits (km, km/s) starting at apogee on the x axis, which is their line of
    nodes: two circular, two eccentric ones whose perigee lies below 100 km altitude."""
    rp = np.array([6778.0, 7000.0, 6400.0, 6450.0])  # perigee radii
    ra = np.array([6778.0, 7400.0, 7600.0, 8200.0])  # apogee radii
    inc = np.radians([51.6, 98.0, 28.5, 65.0])
    va = np.sqrt(MU * (2 / ra - 2 / (rp + ra)))  # vis-viva at apogee
    zero = np.zeros(4)
    y0 = np.column_stack([ra, zero, zero, zero, va * np.cos(inc), va * np.sin(inc)])
    params = np.column_stack([np.full(4, MU), np.full(4, R_EARTH + 100.0)])
    return y0, params


def test_kepler_node_crossings_and_reentry(target):
    """A Kepler batch with a node event (non-terminal) and an altitude event (terminal).

    Over hours of orbit, scipy's BLAS summation order moves the trajectory by round-off
    (1e-10 relative, README "Exactness"), and event times with it. Against scipy with
    index-order sums, times agree to 1e-12 absolute.
    """
    y0, params = kepler_batch()
    events = [evt_node, bi.event(evt_altitude, terminal=True, direction=-1)]
    span = (0.0, 4 * 3600.0)
    res = bi.solve_batch(models.two_body, span, y0, params=params, events=events,
                         rtol=1e-10, atol=1e-10, target=target)
    assert res.status.tolist() == [0, 0, 1, 1]  # the two low-perigee orbits re-enter
    for i in range(len(y0)):
        ref = scipy_reference(models.two_body, span, y0[i], params[i], events=events,
                              rtol=1e-10, atol=1e-10)
        assert_matches_scipy(res, i, ref, 2)
    # Nodes of the circular orbit come every half period (Kepler's third law).
    period = 2 * np.pi * np.sqrt(6778.0**3 / MU)
    nodes = res.t_events[0][0, :res.n_events[0, 0]]
    assert len(nodes) == 1 + int(span[1] // (period / 2))
    np.testing.assert_allclose(np.diff(nodes), period / 2, rtol=1e-8)
    # Re-entry happens at the altitude, before the first perigee passage.
    r = np.linalg.norm(res.y_final[2:, :3], axis=1)
    np.testing.assert_allclose(r, R_EARTH + 100.0, rtol=1e-12)


def test_kepler_events_within_round_off_of_stock_scipy(target):
    """The same batch against stock scipy, whose BLAS sums follow this CPU's kernel:
    what holds on every kernel, the statuses, event counts, and event times to 1e-9
    relative of the span (ten times rtol)."""
    y0, params = kepler_batch()
    events = [evt_node, bi.event(evt_altitude, terminal=True, direction=-1)]
    span = (0.0, 4 * 3600.0)
    res = bi.solve_batch(models.two_body, span, y0, params=params, events=events,
                         rtol=1e-10, atol=1e-10, target=target)
    for i in range(len(y0)):
        ref = scipy_reference(models.two_body, span, y0[i], params[i], events=events,
                              rtol=1e-10, atol=1e-10, blas="stock")
        assert res.status[i] == ref.status
        for e in range(2):
            n = len(ref.t_events[e])
            assert res.n_events[i, e] == n
            np.testing.assert_allclose(res.t_events[e][i, :n], ref.t_events[e], rtol=0,
                                       atol=1e-9 * span[1])


def test_events_without_t_eval_and_mixed_rhs_lists(target):
    """Events with fun=[a, b]: the event dispatcher is independent of the rhs one."""
    y0 = np.array([[10.0, 0.0], [1.0, 0.0]])
    params = np.array([[GRAVITY, 0.5], [2.0, 0.5]])
    events = [bi.event(evt_level_falling, terminal=True, direction=-1)]
    res = bi.solve_batch([evt_ball, evt_oscillator], (0.0, 5.0), y0, params=params,
                         fun_index=[0, 1], events=events, rtol=1e-8, atol=1e-10, target=target)
    for i, fun in enumerate([evt_ball, evt_oscillator]):
        ref = scipy_reference(fun, (0.0, 5.0), y0[i], params[i], events=events,
                              rtol=1e-8, atol=1e-10)
        assert_matches_scipy(res, i, ref, 1)


def test_same_event_twice_with_other_options(target):
    """One function in two slots (other terminal counts) renders once, counts apart."""
    y0, params, *_ = oscillator_batch()
    events = [evt_zero, bi.event(evt_zero, terminal=5)]
    res = bi.solve_batch(evt_oscillator, (0.0, 30.0), y0[:2], params=params[:2],
                         events=events, rtol=1e-9, atol=1e-12, target=target)
    assert np.all(res.status == 1) and np.all(res.n_events == 5)
    np.testing.assert_array_equal(res.t_events[0], res.t_events[1])
    for i in range(2):
        ref = scipy_reference(evt_oscillator, (0.0, 30.0), y0[i], params[i], events=events,
                              rtol=1e-9, atol=1e-12)
        assert_matches_scipy(res, i, ref, 2)


def test_no_events_gives_none():
    res = bi.solve_batch(evt_ball, (0.0, 1.0), [[1.0, 0.0]], params=GRAVITY, target="cpu")
    assert res.t_events is None and res.y_events is None and res.n_events is None
    assert not res.events_overflowed.any()


def test_event_options_follow_scipy():
    with pytest.raises(ValueError, match="terminal` attribute of each event must be a boolean or positive integer"):
        bi.event(evt_zero, terminal=-1)
    with pytest.raises(ValueError, match="terminal` attribute"):
        bi.event(evt_zero, terminal=1.5)
    with pytest.raises(ValueError, match="direction must be a finite number"):
        bi.event(evt_zero, direction=math.nan)
    copy = bi.event(evt_zero, terminal=2, direction=1)
    assert (copy.terminal, copy.direction) == (2, 1)
    # Options not given are kept, not reset.
    assert (bi.event(copy, terminal=3).direction, bi.event(copy, direction=-1).terminal) == (1, 2)
    assert bi.event(copy).terminal == 2
    assert (evt_zero.terminal, evt_zero.direction) == (False, 0.0)  # the original is unchanged
    assert copy.key == evt_zero.key
    # Set like scipy's attributes, checked when solving.
    broken = bi.event(evt_zero)
    broken.terminal = "yes"
    with pytest.raises(ValueError, match="terminal` attribute"):
        bi.solve_batch(evt_ball, (0.0, 1.0), [[1.0, 0.0]], params=GRAVITY, events=[broken],
                       target="cpu")


def test_events_argument_errors():
    with pytest.raises(TypeError, match="events must hold event functions registered with @batchivp.event"):
        bi.solve_batch(evt_ball, (0.0, 1.0), [[1.0, 0.0]], params=GRAVITY,
                       events=[lambda t, y: y[0]], target="cpu")
    with pytest.raises(TypeError, match="events must hold event functions"):
        bi.solve_batch(evt_ball, (0.0, 1.0), [[1.0, 0.0]], params=GRAVITY,
                       events=[evt_ball], target="cpu")
    with pytest.raises(ValueError, match="max_events must be a positive integer"):
        bi.solve_batch(evt_ball, (0.0, 1.0), [[1.0, 0.0]], params=GRAVITY,
                       events=[evt_zero], max_events=0, target="cpu")


def test_register_event_from_source(target):
    """register_event(source, terminal=, direction=) works as the decorator does."""
    ev = bi.register_event(
        "import math\nLEVEL = 2.0\n"
        "def evt_src_level(t, y, p):\n    return y[0] - LEVEL\n",
        terminal=True, direction=-1)
    assert isinstance(ev, bi.EventFunction) and ev.terminal is True and ev.direction == -1
    y0 = np.array([[10.0, 0.0]])
    res = bi.solve_batch(evt_ball, (0.0, 5.0), y0, params=GRAVITY, events=[ev],
                         rtol=1e-8, atol=1e-10, target=target)
    ref = scipy_reference(evt_ball, (0.0, 5.0), y0[0], GRAVITY, events=[ev],
                          rtol=1e-8, atol=1e-10)
    assert_matches_scipy(res, 0, ref, 1)
    assert res.t_final[0] == pytest.approx(math.sqrt(2 * 8.0 / GRAVITY), rel=1e-12)


@pytest.mark.parametrize("source, message", [
    ("def evt_bad_arity(t, y):\n    return y[0]\n", "exactly 3 positional arguments"),
    ("def evt_bad_noreturn(t, y, p):\n    y[0] = 1.0\n", "must return a float"),
    ("def evt_bad_bare(t, y, p):\n    if t > 1:\n        return\n    return y[0]\n", "must return a float"),
    ("def evt_bad_raise(t, y, p):\n    raise ValueError('x')\n", "'raise'"),
])
def test_event_registration_errors(source, message):
    with pytest.raises(bi.RegistrationError, match=message):
        bi.register_event(source)


def test_warning_free_run_without_overflow():
    y0, params, *_ = oscillator_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bi.solve_batch(evt_oscillator, (0.0, 5.0), y0, params=params, events=[evt_zero],
                       max_events=16, target="cpu")


def test_event_pickles_with_its_options():
    """Events travel to other processes (Dask workers) with terminal and direction."""
    import pickle

    ev = bi.event(evt_level_falling, terminal=3, direction=-1)
    back = pickle.loads(pickle.dumps(ev))
    assert isinstance(back, bi.EventFunction)
    assert (back.name, back.key, back.terminal, back.direction) == (ev.name, ev.key, 3, -1)
    # A process where that name is another kind of function refuses it clearly.
    from batchivp import registry

    with pytest.raises(bi.RegistrationError, match="registered a different rhs"):
        registry._reregister("event", evt_ball.name, evt_ball.source, evt_ball.globals_,
                             {"terminal": False, "direction": 0.0})
