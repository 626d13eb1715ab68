"""Running the compiled kernel over a batch: in one call, or in chunks sized by the host.

The kernel's state is resumable (docs/architecture.md, point 5): a problem left
``STATUS_RUNNING`` goes on where it stopped when the kernel is called again, bit for
bit as if it had not stopped, and finished problems return at once. On that one
mechanism the host builds:

- **adaptive chunks**: each call integrates a block of rows for a number of steps,
  sized from the measured speed so that a call takes about ``TARGET_CALL_S``;
- **Ctrl-C**: while the kernel runs, SIGINT only sets a flag; the host stops between
  two calls (numba code cannot be interrupted inside a call) and the caller gets the
  problems as they are: finished ones complete, the others ``STATUS_RUNNING`` (stopped
  mid-way) or ``STATUS_PENDING`` (not started);
- **a progress bar** over simulated time;
- **on the GPU**, launches over the unfinished problems only, packed together on the
  device, in arrays stored problem-innermost (:mod:`batchivp.cuda_batch`).
"""

import math
import signal
import threading
from time import perf_counter

import numpy as np

from . import abi
from .core import dop853 as core
from .status import UNFINISHED, Status, unfinished

# Adaptive chunks. A call costs some time per row on top of the steps it takes
# (argument set-up of the gufunc), so a row gets at least MIN_CHUNK_STEPS steps a call,
# enough to keep that cost small for the cheapest right-hand sides (measured in
# benchmarks/README.md, "Host loop"). The first call is a probe of the step cost,
# FIRST_CALL_STEPS problem-steps (a fraction of TARGET_CALL_S for a cheap right-hand
# side; small batches often finish in it), spread over up to FIRST_CALL_STEPS /
# PROBE_STEPS rows: a probe of a few rows would leave the threads that hold them idle
# at the end of the next call. Each call may grow or shrink the next by at most
# MAX_GROWTH.
TARGET_CALL_S = 0.5
FIRST_CALL_STEPS = 2**16
PROBE_STEPS = 16
MIN_CHUNK_STEPS = 128
FIXED_CALL_S = 0.01  # the fixed cost of a call assumed when measuring the speed,
MAX_FIXED_SHARE = 4  # up to 3/4 of its time
MAX_GROWTH = 64
# One problem (solve_ivp) starts with fewer steps: a costly right-hand side must not
# hold Ctrl-C for seconds in the first call; a cheap problem finishes in it anyway. Its
# calls are shorter too: a call costs microseconds, not a wake-up of the threads.
ONE_PROBLEM_FIRST_STEPS = 2**12
ONE_PROBLEM_CALL_S = 0.1
PROGRESS_INTERVAL_S = 0.1
# The fields of istate the schedules and the GPU's compaction read between calls.
HOST_ISTATE = (core.IS_STATUS, core.IS_NSTEP, core.IS_NREJECT)


def sigint_interceptable():
    """True when this call can take over Ctrl-C: Python's own SIGINT handler is in
    place and we are in the main thread (the only one that receives signals)."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


def run_kernel(module, target, inputs, state, *, adaptive=False, progress=False,
               interruptible=False, spans=None, schedule=None):
    """Run the kernel until every problem is finished, or until Ctrl-C.

    ``inputs`` (:class:`abi.Inputs`) are full-size (possibly broadcast) host arrays;
    ``state`` (:class:`abi.State`) is updated in place. ``adaptive``: size the calls
    (rows and steps, written to ``icfg``) so that each takes about ``TARGET_CALL_S``;
    otherwise every call covers the batch with ``icfg``'s chunk length. ``progress``:
    show a tqdm bar over ``spans`` ((N, 2) start and end times). ``interruptible``:
    Ctrl-C stops between calls instead of raising. ``schedule``: the calls' sizes
    (:class:`OneProblemChunks`), instead of the one ``adaptive`` picks.

    Returns True when Ctrl-C came during the run (problems not finished are left
    running or pending), else False.
    """
    inputs = abi.contiguous_rows(inputs)  # a linked kernel hands rows on by pointer
    if target == "python":
        _run_python(module, inputs, state)
        return False
    istate = state.istate
    if schedule is None:
        schedule = (AdaptiveChunks(istate, whole_rows=target == "cuda") if adaptive
                    else WholeBatch(istate))
    bar = ProgressBar(spans, state) if progress else None
    run = _run_cuda if target == "cuda" else _run_host
    # NaN/inf inside a problem is that problem's status, not a floating-point warning.
    with np.errstate(all="ignore"), SigintFlag(interruptible) as sigint:
        try:
            run(module, inputs, state, schedule, sigint, bar)
        finally:
            if bar is not None:
                bar.close()
    return sigint.requested


def _run_python(module, inputs, state):
    istate = state.istate
    with np.errstate(all="ignore"):
        for i in range(istate.shape[0]):
            while istate[i, core.IS_STATUS] in UNFINISHED:
                module.dop853_kernel(*(a[i] for a in abi.kernel_arguments(inputs, state)))


def _run_host(module, inputs, state, schedule, sigint, bar):
    icfg = inputs.icfg
    while (window := schedule.next_window()) is not None:
        lo, hi, steps = window
        if steps is not None:
            icfg[lo:hi, core.IC_CHUNK_STEPS] = steps
        start = perf_counter()
        module.dop853_kernel(*(a[lo:hi] for a in abi.kernel_arguments(inputs, state)))
        schedule.record(perf_counter() - start)
        if bar is not None:
            bar.update(lo, hi)
        if sigint.requested:
            return


def _run_cuda(module, inputs, state, schedule, sigint, bar):
    """The host loop on the GPU: the batch stays on the device between launches, and
    after each chunk the open problems are packed together when few are left
    (:mod:`batchivp.cuda_batch`); between launches only what the schedule, the
    compaction and the bar read crosses the bus (``HOST_ISTATE``, and ``fstate``'s
    time for the bar), of the launched rows."""
    from .cuda_batch import DeviceBatch

    batch = DeviceBatch(inputs, state)
    try:
        while (window := schedule.next_window()) is not None:
            steps = window[2]
            if steps is not None:
                batch.set_chunk_steps(steps)
            start = perf_counter()
            batch.launch(module)
            batch.fetch("istate", HOST_ISTATE)  # waits for the kernel
            schedule.record(perf_counter() - start)
            if bar is not None and bar.due():
                batch.fetch("fstate", (core.FS_T,))
                bar.update(0, len(state.istate))
            if sigint.requested:
                return
            batch.compact()
    finally:
        batch.finish()


class WholeBatch:
    """Every call covers the whole batch with ``icfg``'s chunk length, until no problem
    is left running (one call when the chunk length is unlimited)."""

    def __init__(self, istate):
        self.istate = istate
        self.calls = 0

    def next_window(self):
        if self.calls and not np.any(unfinished(self.istate[:, core.IS_STATUS])):
            return None
        self.calls += 1
        return 0, len(self.istate), None

    def record(self, seconds):
        pass


class AdaptiveChunks:
    """Windows of rows ``[lo, hi)`` and steps per call, sized from the measured speed.

    Rows before ``lo`` are finished and rows from ``hi`` on not started. A block of
    ``budget / MIN_CHUNK_STEPS`` rows (``budget / PROBE_STEPS`` in the first call; all
    rows with ``whole_rows``, for the GPU's occupancy) is run to its end before the
    next one starts, its unfinished rows getting ``budget / unfinished`` steps a call,
    rounded to a power of two (so the chunk length changes seldom; the GPU then
    re-uploads ``icfg``); ``lo`` skips the finished rows at its front. Rows of one
    block advance together: a window that mixed old rows with new ones would leave the
    threads holding the old ones (numba splits the rows evenly among its threads) idle
    while the others work. ``budget``, in problem-steps a call, follows the accepted
    plus rejected steps per second of the last call.
    """

    def __init__(self, istate, whole_rows=False):
        self.istate = istate
        self.n = len(istate)
        self.whole_rows = whole_rows
        self.lo = 0
        self.hi = self.n if whole_rows else 0
        self.budget = FIRST_CALL_STEPS
        self.min_steps = PROBE_STEPS
        self.steps_before = 0

    def next_window(self):
        open_rows = unfinished(self.istate[self.lo:self.hi, core.IS_STATUS])
        n_open = int(open_rows.sum())
        if n_open:
            self.lo += int(np.argmax(open_rows))
        elif self.hi < self.n:
            self.lo = self.hi
            self.hi = min(self.n, self.lo + max(1, self.budget // self.min_steps))
            n_open = self.hi - self.lo
        else:
            return None
        steps = 2 ** round(math.log2(max(1, self.budget // n_open)))
        self.steps_before = self._steps_taken()
        return self.lo, self.hi, steps

    def record(self, seconds):
        self.min_steps = MIN_CHUNK_STEPS
        self.budget = next_budget(self.budget, self._steps_taken() - self.steps_before, seconds)

    def _steps_taken(self):
        rows = self.istate[self.lo:self.hi]
        return int(rows[:, core.IS_NSTEP].sum() + rows[:, core.IS_NREJECT].sum())


def next_budget(budget, done, seconds, target_s=None):
    """Problem-steps for the next call to take ``target_s`` (default ``TARGET_CALL_S``),
    from ``done`` steps in the last one's ``seconds``."""
    if target_s is None:  # read at each call: tests change it
        target_s = TARGET_CALL_S
    # Steps per second of the call, less its fixed cost (waking the threads, a launch,
    # copies: FIXED_CALL_S, about the most measured on a busy machine; see
    # benchmarks/README.md), which would otherwise keep short calls short.
    working = max(seconds - FIXED_CALL_S, seconds / MAX_FIXED_SHARE, 1e-9)
    wanted = done / working * target_s if done > 0 else math.inf
    return max(1, int(min(max(wanted, budget / MAX_GROWTH), budget * MAX_GROWTH)))


class OneProblemChunks:
    """:class:`AdaptiveChunks` for a batch of one problem (``solve_ivp``), in plain
    Python: its cost is paid in every call, and a call of a few steps must stay as cheap
    as one kernel call. The first call takes ``ONE_PROBLEM_FIRST_STEPS`` steps, the next
    ones about ``ONE_PROBLEM_CALL_S`` each (rounded to a power of two)."""

    def __init__(self, istate):
        self.istate = istate
        self.budget = ONE_PROBLEM_FIRST_STEPS
        self.steps_before = 0

    def next_window(self):
        if self.istate[0, core.IS_STATUS] not in UNFINISHED:
            return None
        self.steps_before = self._steps_taken()
        return 0, 1, 2 ** round(math.log2(self.budget))

    def record(self, seconds):
        self.budget = next_budget(self.budget, self._steps_taken() - self.steps_before, seconds,
                                  ONE_PROBLEM_CALL_S)

    def _steps_taken(self):
        return int(self.istate[0, core.IS_NSTEP] + self.istate[0, core.IS_NREJECT])


class SigintFlag:
    """While active (and allowed, see :func:`sigint_interceptable`), Ctrl-C sets
    ``requested`` instead of raising ``KeyboardInterrupt``; the previous handler is
    restored on exit."""

    def __init__(self, enabled):
        self.enabled = enabled and sigint_interceptable()
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc_info):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


class ProgressBar:
    """A tqdm bar over simulated time: the fraction of the batch's total ``|tf - t0|``
    covered (a finished problem counts its whole span, whatever stopped it), with the
    problems finished in the postfix. Rows before the window are finished, rows after
    it not started."""

    def __init__(self, spans, state):
        from tqdm import tqdm

        self.fstate, self.istate = state.fstate, state.istate
        self.t0 = spans[:, 0]
        self.length = np.abs(spans[:, 1] - spans[:, 0])
        if not np.all(np.isfinite(self.length)):
            # tf = inf: no fraction of time covered; count the finished problems instead.
            self.length = np.zeros(len(self.t0))
        self.before = np.concatenate([[0.0], np.cumsum(self.length)])
        self.total = float(self.before[-1])
        self.n_done_before = 0
        self.last = -math.inf
        self.bar = tqdm(total=1.0, desc="solve_batch", unit="", mininterval=PROGRESS_INTERVAL_S,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
        self.bar.set_postfix_str(f"finished 0/{len(self.t0)}", refresh=False)

    def due(self):
        return perf_counter() - self.last >= PROGRESS_INTERVAL_S

    def update(self, lo, hi, force=False):
        if not (force or self.due()):
            return
        self.last = perf_counter()
        status = self.istate[lo:hi, core.IS_STATUS]
        running = status == Status.RUNNING
        finished = ~unfinished(status)
        covered = self.before[lo] + float(
            np.sum(self.length[lo:hi], where=finished)
            + np.sum(np.abs(self.fstate[lo:hi, core.FS_T] - self.t0[lo:hi]), where=running))
        n_finished = lo + int(finished.sum())
        fraction = covered / self.total if self.total > 0 else n_finished / len(self.t0)
        self.bar.set_postfix_str(f"finished {n_finished}/{len(self.t0)}", refresh=False)
        self.bar.update(min(fraction, 1.0) - self.bar.n)

    def close(self):
        self.update(0, len(self.t0), force=True)
        self.bar.close()
