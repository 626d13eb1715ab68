"""``solve_batch``: many independent IVPs, one compiled DOP853 kernel call.

The host validates and broadcasts the inputs (a ``ValueError`` naming the argument,
before anything compiles), renders/loads the generated module for the target, and
runs the kernel in resumable chunks until every problem has a final status, or until
Ctrl-C (``host_loop.py``). Dask arrays go to ``dask_batch.py``: one task per block of
problems, each solved here.
"""

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import bounds, dask_batch, host_loop, render, targets
from .core import dop853 as core
from .core import events as core_events
from .registry import EventFunction, RhsFunction
from .status import Status, status_message, successful, unfinished

EPS = np.finfo(float).eps

DEFAULT_CHUNK_STEPS = 2**62
DEFAULT_MAX_EVENTS = 16


@dataclass
class BatchResult:
    """Results of :func:`solve_batch`, arrays over the batch axis (length ``N``).

    Attributes
    ----------
    t : ndarray, shape (k,) or (N, k), or None
        The ``t_eval`` points (``None`` if none were asked for).
    y : ndarray, shape (N, n, k), or None
        The solution at ``t``, from the dense output; NaN where a problem stopped first.
    t_final : ndarray, shape (N,)
        Time each problem reached (the end of the span when ``status == 0``).
    y_final : ndarray, shape (N, n)
        State at ``t_final``.
    status : ndarray of int, shape (N,)
        Each problem's code, a member of :class:`batchivp.Status` (the table of codes
        with their messages): ``FINISHED`` (0) and ``EVENT`` (1) are success as in
        scipy (:attr:`success`), negative codes failures; after Ctrl-C (see
        :attr:`interrupted`) ``RUNNING`` and ``PENDING``. See :meth:`message`.
    nfev, nstep, nreject : ndarray of int, shape (N,)
        Right-hand side evaluations (scipy's ``nfev``), accepted and rejected steps.
    target : str
        The target that ran the batch.
    t_events : list of ndarray, shape (N, max_events) each, or None
        Per event, the times of its occurrences in each problem, NaN padded (``None``
        without events). Exactly scipy's ``t_events`` for the problem solved alone.
    y_events : list of ndarray, shape (N, max_events, n) each, or None
        The states at those times, NaN padded.
    n_events : ndarray of int, shape (N, len(events)), or None
        Occurrences per problem and event. Larger than ``max_events`` when the buffers
        overflowed: the first ``max_events`` are kept (see :attr:`events_overflowed`).
    interrupted : bool
        Ctrl-C stopped the batch before every problem finished. The finished problems
        are complete (bitwise what an uninterrupted run gives); the others have status
        ``Status.RUNNING`` (stopped mid-way: ``t_final``, ``y_final``, ``y`` and the
        events hold what was reached, NaN in ``y`` beyond it) or ``Status.PENDING`` (not
        started: ``t_final = t0``, ``y_final = y0``), and ``nfev``, ``nstep``,
        ``nreject`` count what was done.

    With Dask arrays as inputs the arrays are lazy Dask arrays, one block per block of
    problems; :meth:`compute` computes them all at once (each block is solved once).
    """

    t: object
    y: object
    t_final: np.ndarray
    y_final: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    nstep: np.ndarray
    nreject: np.ndarray
    target: str
    t_events: object = None
    y_events: object = None
    n_events: object = None
    extra: dict = field(default_factory=dict, repr=False)
    interrupted: bool = False

    @property
    def success(self):
        """Per problem: it finished at the end of its span or at a terminal event
        (a :attr:`Status.successful` code, 0 or 1), as scipy's ``status >= 0``."""
        return successful(self.status)

    @property
    def events_overflowed(self):
        """(N,) bool: the problem had more occurrences of an event than ``max_events``
        holds (all ``False`` without events)."""
        if self.n_events is None:
            return np.zeros(len(self.status), dtype=bool)
        capacity = self.t_events[0].shape[1] if self.t_events else 0
        return np.any(self.n_events > capacity, axis=1)

    def message(self, i):
        """The message of problem ``i``'s status."""
        return status_message(self.status[i])

    def __len__(self):
        return len(self.status)

    def compute(self, **kwargs):
        """This result with its Dask arrays computed together, in one ``dask.compute``
        (``kwargs`` go to it, e.g. ``scheduler=``); the result itself without Dask."""
        return dask_batch.compute_result(self, **kwargs)


def solve_batch(fun, t_span, y0, params=None, *, t_eval=None, events=(), max_events=None,
                rtol=1e-3, atol=1e-6, first_step=None, max_step=np.inf, max_steps=None,
                fun_index=None, target=None, chunk_steps=None, progress=False):
    """Solve ``N`` independent IVPs ``y' = fun(t, y, p)`` with DOP853 in one call.

    Each problem takes exactly the steps scipy's ``solve_ivp(method="DOP853")`` takes
    on it alone (same ``nfev``), with its own span, state, parameters and tolerances.

    Parameters
    ----------
    fun : RhsFunction or sequence of RhsFunction
        Right-hand side(s) registered with :func:`batchivp.rhs`. With several,
        ``fun_index`` picks one per problem; all must have the state dimension ``n``.
    t_span : (2,) or (N, 2) array_like
        Start and end of each problem's interval; ``tf < t0`` integrates backward.
        ``t0`` finite; ``tf`` may be ``inf`` or ``-inf`` (as in scipy: a terminal event
        ends the problem, or Ctrl-C, or status -8 when its step grows to infinity).
    y0 : (N, n) array_like
        Initial states, finite.
    params : None, scalar, (m,) or (N, m) array_like
        Parameter vector ``p`` passed to ``fun``, shared or per problem; finite.
    t_eval : None, (k,) or (N, k) array_like
        Times at which to store the solution, inside the span and sorted in the
        direction of integration, shared or per problem.
    events : EventFunction or sequence of EventFunction
        Event functions registered with :func:`batchivp.event`, found after each step
        as scipy does (sign change in the event's ``direction``, root by Brent's method
        on the step's interpolant) and stopping a problem at its ``terminal`` count.
        They receive each problem's ``params`` as ``p``.
    max_events : None or int
        Occurrences stored per event and problem (default 16). Further ones are counted
        in ``n_events`` but not stored, and a warning says the size that holds them.
    rtol, atol : scalar, (n,) or (N, 1) or (N, n) array_like
        Tolerances: scalar, per component, per problem, or both.
    first_step : None, scalar or (N,) array_like
        Initial step; ``None`` selects it as scipy does.
    max_step : scalar or (N,) array_like
        Largest step size (default ``inf``).
    max_steps : None or int
        Step budget per problem; a problem that needs more gets status -3.
    fun_index : None or (N,) array_like of int
        Index into ``fun`` per problem when ``fun`` is a sequence.
    target : None or str
        ``"cpu"``, ``"parallel"``, ``"cuda"`` or ``"auto"``; default ``BATCHIVP_TARGET``.
    chunk_steps : None or int
        Steps per kernel call before control returns to the host (the batch resumes
        until done). ``None`` (default) chooses: in the main thread, or with
        ``progress``, the host sizes each call (rows and steps) to take about 0.5 s
        from the measured speed, so that Ctrl-C and the bar are served between calls
        (a batch of up to about 65,000 steps in all still runs in one call; for larger
        ones the extra calls cost about 1% of the run time); elsewhere (e.g. a Dask
        worker thread) each problem runs to the end in one call.
    progress : bool
        Show a tqdm bar (on stderr) of the simulated time covered: the sum over the
        problems of ``|t - t0|``, a finished problem counting its whole span, over the
        sum of ``|tf - t0|``, with the number of problems finished. Ignored for Dask
        arrays: their blocks are solved when computed (use Dask's progress bars).

    Returns
    -------
    BatchResult
        With Dask arrays among ``y0``, ``t_span``, ``params``, ``t_eval``, ``rtol``,
        ``atol``, ``first_step``, ``max_step``, ``fun_index``, a lazy result: its arrays
        are Dask arrays chunked along the batch axis as ``y0`` (or the first of them
        that is per problem), one task per block solving it with this function (so
        each problem's result is bitwise that of a local solve). Shapes and dtypes are
        checked at once; values (NaN in ``y0``, ...) when a block is computed.

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything compiles; also when the output
        (``y``: ``N * n * len(t_eval)`` floats, the event buffers ``N * len(events) *
        max_events * (n + 1)``) cannot fit in this machine's memory.

    Notes
    -----
    Ctrl-C (SIGINT) while the kernel runs in the main thread does not raise
    ``KeyboardInterrupt``: the batch stops after the current call (within about a
    second; numba code cannot be interrupted inside a call) and the result is
    returned with ``interrupted=True`` and a ``RuntimeWarning``; see
    :class:`BatchResult`. A SIGINT handler of your own (other than Python's default)
    is left in charge.
    """
    progress = _check_progress(progress)
    per_problem = dict(y0=y0, t_span=t_span, params=params, t_eval=t_eval, rtol=rtol,
                       atol=atol, first_step=first_step, max_step=max_step,
                       fun_index=fun_index)
    if dask_batch.any_dask(per_problem.values()):
        return dask_batch.solve_batch_dask(
            solve_batch, fun, per_problem, dict(events=events, max_events=max_events,
                                                max_steps=max_steps, target=target,
                                                chunk_steps=chunk_steps))
    target = targets.resolve_target(target)
    functions, handles = _check_fun(fun, fun_index)
    event_slots, ecfg_row = _check_events(events)
    n_stored = _positive_int(max_events, "max_events", DEFAULT_MAX_EVENTS)
    if not event_slots:
        n_stored = 1  # the unused slot's buffers: one entry, not max_events per problem
    y0 = _as_float_array(y0, "y0")
    n_prob, ndim = _check_y0_shape(y0.shape)
    _check_finite(y0, "y0")
    if handles.shape[0] not in (1, n_prob):
        raise ValueError(f"fun_index must have shape ({n_prob},), got {handles.shape}")
    handles = np.broadcast_to(handles, (n_prob,))

    span = _as_float_array(t_span, "t_span")
    if span.shape == (2,):
        span = np.broadcast_to(span, (n_prob, 2))
    if span.shape != (n_prob, 2):
        raise ValueError(f"t_span must have shape (2,) or ({n_prob}, 2), got {span.shape}")
    _check_span(span)
    t0, tf = span[:, 0], span[:, 1]

    p = _per_problem(params if params is not None else 0.0, "params", n_prob, allow_scalar=True)
    _check_params_finite(p)
    # Every index of the user's functions in range for this n and m (the bounds package).
    bounds.check(functions, event_slots, ndim, 0 if params is None else p.shape[1])
    rtol_a = _tolerance(rtol, "rtol", n_prob, ndim)
    atol_a = _tolerance(atol, "atol", n_prob, ndim)
    if np.any(rtol_a < 100 * EPS):
        warnings.warn("At least one element of `rtol` is too small. "
                      f"Setting `rtol = np.maximum(rtol, {100 * EPS})`.", stacklevel=2)
        rtol_a = np.maximum(rtol_a, 100 * EPS)
    if np.any(atol_a < 0):
        raise ValueError("atol must be non-negative")

    max_step_a = _per_problem_scalar(max_step, "max_step", n_prob)
    if np.any(~(max_step_a > 0)):
        raise ValueError("max_step must be positive")
    if first_step is None:
        first_a = np.zeros(n_prob)
    else:
        first_a = _per_problem_scalar(first_step, "first_step", n_prob)
        if np.any(~(first_a > 0)):
            raise ValueError("first_step must be positive")
        if np.any(first_a > np.abs(tf - t0)):
            bad = int(np.argmax(first_a > np.abs(tf - t0)))
            raise ValueError(f"first_step exceeds the span of problem {bad} "
                             f"(|tf - t0| = {float(abs(tf[bad] - t0[bad]))!r})")

    t_eval_a, n_eval = _check_t_eval(t_eval, t0, tf, n_prob)
    _check_output_fits(n_prob, ndim, t_eval_a.shape[-1], ecfg_row.shape[0], n_stored)
    budget = _positive_int(max_steps, "max_steps", 2**62)
    chunk = _positive_int(chunk_steps, "chunk_steps", DEFAULT_CHUNK_STEPS)

    tcfg = np.empty((n_prob, core.TCFG_SIZE))
    tcfg[:, core.TC_T0] = t0
    tcfg[:, core.TC_TF] = tf
    tcfg[:, core.TC_FIRST_STEP] = first_a
    tcfg[:, core.TC_MAX_STEP] = max_step_a
    icfg = np.empty((n_prob, core.ICFG_SIZE), dtype=np.int64)
    icfg[:, core.IC_HANDLE] = handles
    icfg[:, core.IC_N_EVAL] = n_eval
    icfg[:, core.IC_MAX_STEPS] = budget
    icfg[:, core.IC_CHUNK_STEPS] = chunk
    icfg[:, core.IC_EVENT_BUFFER] = n_stored
    icfg[:, core.IC_RECORD] = core.RECORD_NONE
    icfg[:, core.IC_RECORD_ROWS] = 1
    icfg[:, core.IC_EVENT_RULE] = core.EVENTS_BATCH  # a non-finite event value: status -5
    ecfg = np.broadcast_to(ecfg_row, (n_prob,) + ecfg_row.shape)

    module = render.load_module(target, ndim, functions, event_slots)
    inputs = [y0, p, rtol_a, atol_a, tcfg, t_eval_a, icfg, ecfg]
    state = _new_state(n_prob, ndim, t_eval_a.shape[-1], ecfg_row.shape[0], n_stored)
    interruptible = host_loop.sigint_interceptable()
    interrupted = host_loop.run_kernel(
        module, target, inputs, state, progress=progress, interruptible=interruptible,
        adaptive=chunk_steps is None and (progress or interruptible), spans=span)
    fstate, istate, f, yout, g, n_events, t_events, y_events, *_, y = state
    status = istate[:, core.IS_STATUS].copy()
    t_final = fstate[:, core.FS_T].copy()
    not_started = status == core.STATUS_PENDING
    t_final[not_started] = t0[not_started]
    y[not_started] = y0[not_started]
    if interrupted:
        _warn_interrupted(status)

    event_results = {}
    if event_slots:
        n_events = n_events[:, :len(event_slots)]
        _warn_overflow(n_events, n_stored)
        event_results = dict(
            t_events=[t_events[:, e, :] for e in range(len(event_slots))],
            y_events=[y_events[:, e, :, :] for e in range(len(event_slots))],
            n_events=n_events,
        )
    return BatchResult(
        t=None if t_eval is None else _t_eval_out(t_eval),
        y=None if t_eval is None else yout,
        t_final=t_final,
        y_final=y,
        status=status,
        nfev=istate[:, core.IS_NFEV].copy(),
        nstep=istate[:, core.IS_NSTEP].copy(),
        nreject=istate[:, core.IS_NREJECT].copy(),
        target=target,
        interrupted=interrupted,
        **event_results,
    )


def _new_state(n_prob, ndim, k, n_slots, n_stored, n_rows=1, n_interpolants=1):
    """Output/state arrays of a fresh batch: every problem pending, outputs NaN.

    ``[fstate, istate, f, yout, g, n_events, t_events, y_events, rec_t, rec_y, rec_F,
    y]``, the kernel's arguments after its inputs (``render.KERNEL_LAYOUT``), with
    ``n_rows`` rows of step record and ``n_interpolants`` rows of interpolants (as many
    as ``n_rows`` with dense output, else 1: the kernel writes none).
    """
    fstate = np.zeros((n_prob, core.FSTATE_SIZE))
    istate = np.zeros((n_prob, core.ISTATE_SIZE), dtype=np.int64)
    istate[:, core.IS_STATUS] = core.STATUS_PENDING
    f = np.full((n_prob, ndim), np.nan)
    yout = np.full((n_prob, ndim, k), np.nan)
    g = np.full((n_prob, n_slots), np.nan)
    n_events = np.zeros((n_prob, n_slots), dtype=np.int64)
    t_events = np.full((n_prob, n_slots, n_stored), np.nan)
    y_events = np.full((n_prob, n_slots, n_stored, ndim), np.nan)
    rec_t = np.full((n_prob, n_rows), np.nan)
    rec_y = np.full((n_prob, n_rows, ndim), np.nan)
    rec_F = np.zeros((n_prob, n_interpolants, 7, ndim))
    y = np.full((n_prob, ndim), np.nan)
    return [fstate, istate, f, yout, g, n_events, t_events, y_events, rec_t, rec_y, rec_F, y]


def _state_bytes(n_prob, ndim, k, n_slots, n_stored):
    """Bytes of :func:`_new_state`'s arrays (one row of record and interpolant): the
    solution ``y`` at ``k`` times, the event buffers and the per-problem state."""
    per_problem = (core.FSTATE_SIZE + core.ISTATE_SIZE + ndim * k  # fstate, istate, yout
                   + n_slots * n_stored * (ndim + 1)  # t_events, y_events
                   + 2 * n_slots + 1 + 10 * ndim)  # g, n_events, rec_t; f, rec_y, rec_F, y
    return 8 * n_prob * per_problem


def _physical_memory():
    """This machine's memory in bytes (None where it cannot be told)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX (Windows)
        pass
    try:
        import psutil  # optional: only where it is installed
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def _check_output_fits(n_prob, ndim, k, n_slots, n_stored):
    """Refuse a batch whose output cannot fit in memory, before allocating any of it:
    a ``ValueError`` with the size and the arguments that set it."""
    need = _state_bytes(n_prob, ndim, k, n_slots, n_stored)
    have = _physical_memory()
    if have is None or need <= have:
        return
    y_bytes = 8 * n_prob * ndim * k
    event_bytes = 8 * n_prob * n_slots * n_stored * (ndim + 1)
    raise ValueError(
        f"solve_batch's output needs {need / 1e9:,.1f} GB, more than this machine's "
        f"{have / 1e9:,.1f} GB of memory: y holds N x n x len(t_eval) = {n_prob} x {ndim} x "
        f"{k} floats ({y_bytes / 1e9:,.1f} GB) and the event buffers N x events x "
        f"max_events x (n + 1) = {n_prob} x {n_slots} x {n_stored} x {ndim + 1} floats "
        f"({event_bytes / 1e9:,.1f} GB). Pass fewer t_eval points or a smaller max_events, "
        "or split the batch (for example Dask arrays for y0, solved block by block).")


def _warn_interrupted(status):
    open_rows = unfinished(status)
    if not open_rows.any():
        warnings.warn("solve_batch was interrupted (Ctrl-C) when every problem had "
                      "finished; the result is complete.", RuntimeWarning, stacklevel=3)
        return
    warnings.warn(
        f"solve_batch was interrupted (Ctrl-C): {int(open_rows.sum())} of {len(status)} "
        f"problems did not finish ({int(np.sum(status == Status.RUNNING))} stopped "
        f"mid-way, status {int(Status.RUNNING)}; {int(np.sum(status == Status.PENDING))} "
        f"not started, status {int(Status.PENDING)}); their t_final, y_final and y hold "
        "where they stopped. The finished problems are complete.",
        RuntimeWarning, stacklevel=3)


def _check_progress(progress):
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    return bool(progress)


def _warn_overflow(n_events, n_stored):
    """Warn once if any problem had more occurrences of an event than are stored."""
    over = np.any(n_events > n_stored, axis=1)
    if over.any():
        warnings.warn(
            f"{int(over.sum())} problem(s) had more occurrences of an event than "
            f"max_events={n_stored} holds; the first {n_stored} of each are kept and "
            f"n_events has the full counts. Pass max_events={int(n_events.max())} to keep "
            "them all.", RuntimeWarning, stacklevel=3)


# ---- validation helpers: each error names the argument ----

def _check_fun(fun, fun_index):
    funs = list(fun) if isinstance(fun, (list, tuple)) else [fun]
    if not funs:
        raise ValueError("fun must name at least one right-hand side")
    for item in funs:
        if not isinstance(item, RhsFunction):
            raise TypeError(
                f"fun must be a right-hand side registered with @batchivp.rhs (or a list "
                f"of them), got {item!r}; decorate it with @batchivp.rhs, as in "
                "'@batchivp.rhs def f(t, y, p, dydt): ...'")
    funs = [item.current() for item in funs]  # values it reads changed: render anew
    if fun_index is None:
        if len(funs) > 1:
            raise ValueError("fun is a list of right-hand sides: pass fun_index=, one index per problem")
        return funs, np.zeros(1, dtype=np.int64)
    idx = np.asarray(fun_index)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"fun_index must be a 1-D array of integers, got dtype {idx.dtype} shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(funs)):
        raise ValueError(f"fun_index values must lie in [0, {len(funs) - 1}] (positions in fun)")
    # Dispatcher handles are positions in the deduplicated plugin set.
    unique, positions = render.unique_functions(funs)
    return unique, np.array(positions, dtype=np.int64)[idx]


def _check_events(events):
    """The event slots and their kernel configuration ``(max(e, 1), ECFG_SIZE)``.

    A batch without events gets one unused row, so every array keeps a non-zero size.
    """
    if events is None:
        events = ()
    if isinstance(events, EventFunction):
        events = (events,)
    try:
        slots = list(events)
    except TypeError:
        raise TypeError(f"events must be an event function registered with "
                        f"@batchivp.event or a sequence of them, got {events!r}") from None
    for item in slots:
        if not isinstance(item, EventFunction):
            raise TypeError(
                f"events must hold event functions registered with @batchivp.event, got "
                f"{item!r}; decorate it, as in '@batchivp.event(terminal=True) "
                "def hit(t, y, p): return y[0]'")
    slots = [item.current() for item in slots]  # values it reads changed: render anew
    _, handles = render.unique_functions(slots)
    ecfg = np.zeros((max(len(slots), 1), core_events.ECFG_SIZE), dtype=np.int64)
    for e, item in enumerate(slots):
        ecfg[e, core_events.EC_HANDLE] = handles[e]
        ecfg[e, core_events.EC_TERMINAL] = item.max_count()
        ecfg[e, core_events.EC_DIRECTION] = np.sign(item.direction)
    return slots, ecfg


def _as_float_array(value, name):
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} is complex; solve_batch integrates real systems "
                         "(split real and imaginary parts into separate components)")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64, order="C")


def _check_y0_shape(shape):
    """``(N, n)`` from ``y0``'s shape."""
    if len(shape) != 2:
        raise ValueError(f"y0 must have shape (N, n) (one row per problem), got shape {shape}; "
                         "for a single problem pass y0[None, :]")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"y0 must hold at least one problem of at least one component, got shape {shape}")
    return shape


def _check_finite(arr, name):
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{name} holds a non-finite value (NaN or inf) at index {tuple(int(i) for i in where)}")


def _check_params_finite(p):
    """NaN or inf in ``params`` would reach every evaluation of the problem's functions:
    refuse it, naming the problem (``p`` is (N, m), a shared row broadcast)."""
    bad = ~np.isfinite(p[:1] if p.strides[0] == 0 else p)
    if not bad.any():
        return
    i, j = (int(k) for k in np.argwhere(bad)[0])
    if p.strides[0] == 0 and len(p) > 1:
        where = f"params[{j}] = {float(p[0, j])!r}, shared by every problem"
    else:
        where = f"params[{i}, {j}] = {float(p[i, j])!r} (problem {i})"
    raise ValueError(f"params holds a non-finite value (NaN or inf): {where}; "
                     "parameters must be finite numbers")


def _check_span(span):
    """t0 finite, tf not NaN: tf = inf or -inf is legal, as in scipy (a terminal event
    ends the problem; without one it runs until Ctrl-C or its step grows to infinity,
    status -8)."""
    bad = ~np.isfinite(span[:, 0])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"t_span[:, 0] (t0) must be finite, got {float(span[i, 0])!r} in "
                         f"problem {i}")
    bad = np.isnan(span[:, 1])
    if bad.any():
        raise ValueError(f"t_span[:, 1] (tf) is NaN in problem {int(np.argmax(bad))} (inf or "
                         "-inf is allowed, with a terminal event to end the integration)")


def _per_problem(value, name, n_prob, allow_scalar):
    arr = _as_float_array(value, name)
    if arr.ndim == 0 and allow_scalar:
        arr = arr.reshape(1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] not in (1, n_prob) or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a scalar, shape (m,) shared or ({n_prob}, m) per "
                         f"problem, got shape {np.shape(value)}")
    return np.broadcast_to(arr, (n_prob, arr.shape[1]))


def _tolerance(value, name, n_prob, ndim):
    arr = _as_float_array(value, name)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        if arr.shape[0] != ndim:
            raise ValueError(f"{name} of shape {arr.shape}: a 1-D {name} is per component and must "
                             f"have length n = {ndim}; per problem use shape ({n_prob}, 1)")
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] not in (1, n_prob) or arr.shape[1] not in (1, ndim):
        raise ValueError(f"{name} must be a scalar or of shape ({ndim},), ({n_prob}, 1) or "
                         f"({n_prob}, {ndim}), got shape {np.shape(value)}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} holds NaN")
    return np.broadcast_to(arr, (n_prob, ndim))


def _per_problem_scalar(value, name, n_prob):
    arr = _as_float_array(value, name)
    if arr.ndim == 0:
        return np.full(n_prob, float(arr))
    if arr.shape != (n_prob,):
        raise ValueError(f"{name} must be a scalar or of shape ({n_prob},), got shape {arr.shape}")
    return arr


def _positive_int(value, name, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def _check_t_eval(t_eval, t0, tf, n_prob):
    """Validated ``t_eval`` as an (N or 1, k) array and its length (0 when None)."""
    if t_eval is None:
        return np.zeros((n_prob, 1)), 0
    arr = _as_float_array(t_eval, "t_eval")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] not in (1, n_prob) or arr.shape[1] == 0:
        raise ValueError(f"t_eval must have shape (k,) shared or ({n_prob}, k) per problem, "
                         f"got shape {np.shape(t_eval)}")
    _check_finite(arr, "t_eval")
    # Per problem, from the rows' extremes and steps: a shared row is checked against
    # every span without (N, k) temporaries.
    lo, hi = np.minimum(t0, tf), np.maximum(t0, tf)
    outside = (arr.min(axis=1) < lo) | (arr.max(axis=1) > hi)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"t_eval holds values outside t_span (first in problem {i}, span "
                         f"[{float(t0[i])!r}, {float(tf[i])!r}])")
    d = np.diff(arr, axis=1)
    unsorted = np.where(tf < t0, np.any(d >= 0, axis=1), np.any(d <= 0, axis=1))
    if unsorted.any():
        i = int(np.argmax(unsorted))
        raise ValueError(f"t_eval must be strictly sorted in the direction of integration "
                         f"(problem {i} runs from {float(t0[i])!r} to {float(tf[i])!r})")
    full = np.broadcast_to(arr, (n_prob, arr.shape[1]))
    return full, arr.shape[1]


def _t_eval_out(t_eval):
    return np.array(t_eval, dtype=float)
