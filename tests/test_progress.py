"""solve_batch in host-sized chunks: the progress bar and Ctrl-C.

The oracle is the same batch solved in one kernel call: chunking, the bar and an
interruption must not change a bit of any finished problem, and a problem stopped
mid-way must be exactly where the same problem stands after that many steps.
"""

import _thread
import signal
import threading
import time

import numpy as np
import pytest

import batchivp as bi
from batchivp import Status, abi, host_loop, models
from batchivp.core import dop853 as core

FIELDS = ("y", "y_final", "t_final", "status", "nfev", "nstep", "nreject")
ONE_CALL = abi.UNLIMITED_STEPS  # chunk_steps that runs every problem to the end in one call


def lorenz_problems(n, t_end=1.0):
    """Lorenz with rho spread over [20, 30] (chaotic for rho > 24.74, transiently below)
    and spans from 0 to between 0.1 and t_end."""
    rho = np.linspace(20.0, 30.0, n)
    params = np.column_stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)])
    y0 = np.column_stack([np.ones(n), np.linspace(-1.0, 1.0, n), np.full(n, 0.5)])
    t_span = np.column_stack([np.zeros(n), np.linspace(0.1, t_end, n)])
    return t_span, y0, params


def assert_rows_equal(res, ref, rows=slice(None)):
    for name in FIELDS:
        if getattr(ref, name) is None:
            assert getattr(res, name) is None
            continue
        np.testing.assert_array_equal(getattr(res, name)[rows], getattr(ref, name)[rows],
                                      err_msg=name)


@pytest.fixture
def sigint_after_calls(monkeypatch):
    """``arm(k)``: Ctrl-C (a real SIGINT to this process) right after the k-th kernel
    call of the next solve_batch, from inside the run loop: deterministic."""
    if not host_loop.sigint_interceptable():
        pytest.skip("SIGINT is not Python's default handler here")
    calls = []

    def arm(k):
        for schedule in (host_loop.WholeBatch, host_loop.AdaptiveChunks):
            original = schedule.record

            def record(self, seconds, original=original):
                original(self, seconds)
                calls.append(seconds)
                if len(calls) == k:
                    signal.raise_signal(signal.SIGINT)

            monkeypatch.setattr(schedule, "record", record)
        return calls

    return arm


def test_progress_bar_same_results(target, capsys):
    """The bar reaches 100% with every problem counted, and changes no bit."""
    t_span, y0, params = lorenz_problems(6)
    kw = dict(params=params, t_eval=np.linspace(0.0, 0.1, 4), rtol=1e-6, atol=1e-6,
              target=target)
    plain = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    capsys.readouterr()
    for chunk_steps in (7, None):  # fixed chunks, and sized by the host
        shown = bi.solve_batch(models.lorenz, t_span, y0, progress=True,
                               chunk_steps=chunk_steps, **kw)
        err = capsys.readouterr().err
        assert "solve_batch: 100%" in err and "finished 6/6" in err, err
        assert not shown.interrupted
        assert_rows_equal(shown, plain)


def test_host_sized_chunks_equal_one_call(monkeypatch, capsys):
    """Host-sized windows of rows and steps reproduce the single call bit for bit. Calls
    of 2 ms, a small probe and at least 8 steps a call make them many: blocks of rows
    follow each other over 3,000 problems, rows finish at different calls, the chunk
    length changes."""
    t_span, y0, params = lorenz_problems(3000, t_end=3.0)
    kw = dict(params=params, t_eval=np.linspace(0.0, 0.1, 3), rtol=1e-9, atol=1e-9,
              target="cpu")
    whole = bi.solve_batch(models.lorenz, t_span, y0, chunk_steps=ONE_CALL, **kw)
    for name, value in dict(TARGET_CALL_S=0.002, FIXED_CALL_S=0.0, FIRST_CALL_STEPS=2**12,
                            MIN_CHUNK_STEPS=8).items():
        monkeypatch.setattr(host_loop, name, value)
    windows = []
    original = host_loop.AdaptiveChunks.next_window

    def next_window(self):
        windows.append(original(self))
        return windows[-1]

    monkeypatch.setattr(host_loop.AdaptiveChunks, "next_window", next_window)
    chunked = bi.solve_batch(models.lorenz, t_span, y0, progress=True, **kw)
    assert_rows_equal(chunked, whole)
    calls = windows[:-1]
    assert len(calls) > 10 and windows[-1] is None
    assert len({steps for _, _, steps in calls}) > 1 and len({lo for lo, _, _ in calls}) > 3
    assert "finished 3000/3000" in capsys.readouterr().err


def test_adaptive_chunks_aim_at_the_target_time():
    """A probe of many rows and few steps, then blocks run to their end, each call's
    budget following the measured speed by at most MAX_GROWTH."""
    istate = np.zeros((10**6, core.ISTATE_SIZE), dtype=np.int64)
    istate[:, core.IS_STATUS] = Status.PENDING
    schedule = host_loop.AdaptiveChunks(istate)
    target_s, probe = host_loop.TARGET_CALL_S, host_loop.PROBE_STEPS

    def run(window, seconds, status=Status.RUNNING):
        lo, hi, steps = window
        istate[lo:hi, core.IS_STATUS] = status
        istate[lo:hi, core.IS_NSTEP] += steps  # every row takes the steps allowed
        schedule.record(seconds)

    first = schedule.next_window()
    assert first == (0, host_loop.FIRST_CALL_STEPS // probe, probe)
    run(first, 1e-3)  # far too short: the budget grows by MAX_GROWTH only
    assert schedule.budget == host_loop.FIRST_CALL_STEPS * host_loop.MAX_GROWTH
    same_block = schedule.next_window()
    assert same_block == (0, first[1], schedule.budget // first[1])
    fixed = host_loop.FIXED_CALL_S  # not counted as time spent on steps
    run(same_block, target_s + fixed, Status.FINISHED)  # on time: the budget stays
    assert schedule.budget == host_loop.FIRST_CALL_STEPS * host_loop.MAX_GROWTH
    steps = host_loop.MIN_CHUNK_STEPS
    next_block = schedule.next_window()
    assert next_block == (first[1], first[1] + schedule.budget // steps, steps)
    run(next_block, 4 * target_s + fixed)  # 4x too slow: the budget shrinks 4x
    assert schedule.budget == host_loop.FIRST_CALL_STEPS * host_loop.MAX_GROWTH // 4


def test_ctrl_c_returns_the_partial_result(target, sigint_after_calls):
    """Ctrl-C after the second call of 5 steps: nothing raised, finished problems are
    bitwise those of an uninterrupted run, the others exactly where 10 steps lead."""
    t_span, y0, params = lorenz_problems(6)
    t_span[:3, 1] = 0.002  # these finish within the first call
    kw = dict(params=params, t_eval=np.linspace(0.0, 0.002, 3), rtol=1e-6, atol=1e-6,
              target=target)
    whole = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    ten_steps = bi.solve_batch(models.lorenz, t_span, y0, max_steps=10, **kw)
    sigint_after_calls(2)
    with pytest.warns(RuntimeWarning, match=r"interrupted \(Ctrl-C\): 3 of 6 problems"):
        res = bi.solve_batch(models.lorenz, t_span, y0, chunk_steps=5, **kw)
    assert res.interrupted and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finished = res.status == Status.FINISHED
    assert finished.sum() == 3
    assert_rows_equal(res, whole, finished)
    stopped = ~finished
    assert np.all(res.status[stopped] == Status.RUNNING) and not res.success[stopped].any()
    assert res.message(5) == Status.RUNNING.message
    assert np.all(res.nstep[stopped] == 10) and np.all(ten_steps.status[stopped] == Status.BUDGET)
    for name in ("y", "y_final", "t_final", "nfev", "nreject"):
        np.testing.assert_array_equal(getattr(res, name)[stopped],
                                      getattr(ten_steps, name)[stopped], err_msg=name)


def test_ctrl_c_leaves_rows_not_started_at_t0(sigint_after_calls):
    """With host-sized windows, Ctrl-C after the first call leaves the rows the window
    never reached pending, at (t0, y0), and their neighbours intact."""
    t_span, y0, params = lorenz_problems(6000)
    kw = dict(params=params, rtol=1e-6, atol=1e-6, target="cpu")
    whole = bi.solve_batch(models.lorenz, t_span, y0, chunk_steps=ONE_CALL, **kw)
    sigint_after_calls(1)
    with pytest.warns(RuntimeWarning, match="not started, status 3"):
        res = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    pending = res.status == Status.PENDING
    first_window = host_loop.FIRST_CALL_STEPS // host_loop.PROBE_STEPS
    assert res.interrupted and np.all(pending[first_window:]) and not pending[:first_window].any()
    np.testing.assert_array_equal(res.t_final[pending], t_span[pending, 0])
    np.testing.assert_array_equal(res.y_final[pending], y0[pending])
    assert np.all(res.nfev[pending] == 0)
    finished = res.success
    assert finished.any()
    assert_rows_equal(res, whole, finished)


def test_ctrl_c_from_another_thread_stops_a_long_batch_quickly(monkeypatch):
    """A real Ctrl-C (``_thread.interrupt_main``) from a timer thread, 0.2 s after the
    first kernel call of a batch of about 4 s, ends it within seconds; the problems
    that finished match solving them alone."""
    if not host_loop.sigint_interceptable():
        pytest.skip("SIGINT is not Python's default handler here")
    t_span, y0, params = lorenz_problems(20000, t_end=30.0)
    kw = dict(rtol=1e-9, atol=1e-9, target="cpu")
    bi.solve_batch(models.lorenz, t_span[:2], y0[:2], params=params[:2], **kw)  # compiled
    running = threading.Event()
    original = host_loop.AdaptiveChunks.record

    def record(self, seconds):
        original(self, seconds)
        running.set()

    monkeypatch.setattr(host_loop.AdaptiveChunks, "record", record)
    interrupted_at = []

    def interrupt():
        if running.wait(timeout=60):
            time.sleep(0.2)
            interrupted_at.append(time.perf_counter())
            _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.warns(RuntimeWarning, match="interrupted"):
        res = bi.solve_batch(models.lorenz, t_span, y0, params=params, **kw)
    returned_after = time.perf_counter() - interrupted_at[0]
    assert res.interrupted and returned_after < 5.0, returned_after
    assert np.all(res.success | np.isin(res.status, (Status.RUNNING, Status.PENDING))) and not res.success.all()
    done = np.flatnonzero(res.success)
    if done.size:
        alone = bi.solve_batch(models.lorenz, t_span[done], y0[done], params=params[done], **kw)
        for name in FIELDS[1:]:
            np.testing.assert_array_equal(getattr(res, name)[done], getattr(alone, name),
                                          err_msg=name)


def test_progress_must_be_a_bool():
    with pytest.raises(TypeError, match="progress must be True or False"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((1, 3)), params=(10.0, 28.0, 2.0),
                       progress="yes", target="cpu")
