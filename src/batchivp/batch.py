"""``solve_batch``: many independent IVPs, one compiled DOP853 kernel call.

The host validates and broadcasts the inputs (a ``ValueError`` naming the argument,
before anything compiles), renders/loads the generated module for the target, and
runs the kernel in resumable chunks until every problem has a final status, or until
Ctrl-C (``host_loop.py``). Dask arrays go to ``dask_batch.py``: one task per block of
problems, each solved here.
"""

import dataclasses
import os
import warnings
from dataclasses import dataclass

import numpy as np

from . import (abi, arguments, bounds, dask_batch, host_loop, render, sensitivity, stream,
               summaries, targets)
from .core import dop853 as core
from .core.events import EC_TERMINAL
from .status import Status, status_message, successful, unfinished


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
    dyf_dy0, dyf_dp : ndarray, shape (N, n, n) and (N, n, m), or None
        With ``sensitivity``: ``d y_final / d y0`` (the state transition matrix) and
        ``d y_final / d params``, entry ``[:, i, j]`` the derivative of ``y_i`` by the
        ``j``-th ``y0`` component or parameter; after a terminal event, including the
        root's move (``f dt*/dθ``).
    dy_dy0, dy_dp : ndarray, shape (N, n, n, k) and (N, n, m, k), or None
        The same at the ``t_eval`` points, from the dense output.
    dt_events_dy0, dt_events_dp : list of ndarray, shape (N, max_events, n) and
        (N, max_events, m) each, or None
        Per event, the derivatives of its occurrence times (NaN padded).
    summary : dict of ndarray, shape (N, n + len(observables)) each, or None
        With ``summarize``: per statistic asked for, its value over the ``t_eval``
        points each problem reached, for each state component and then each
        observable (``batchivp.summaries.STATISTICS``: ``min``, ``max``, ``mean``,
        ``rms``, ``argmin`` and ``argmax`` as ``t_eval`` times, ``sign_changes`` as
        integers). NaN for a problem that reached no point.
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
    interrupted: bool = False
    dyf_dy0: object = None
    dyf_dp: object = None
    dy_dy0: object = None
    dy_dp: object = None
    dt_events_dy0: object = None
    dt_events_dp: object = None
    summary: object = None

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
                fun_index=None, target=None, chunk_steps=None, progress=False,
                sensitivity=None, sensitivity_error=False, observables=(), summarize=None,
                save_y=True, out=None, dtype=np.float64):
    """Solve ``N`` independent IVPs ``y' = fun(t, y, p)`` with DOP853 in one call.

    Each problem takes exactly the steps scipy's ``solve_ivp(method="DOP853")`` takes
    on it alone (same ``nfev``), with its own span, state, parameters and tolerances.

    Parameters
    ----------
    fun : RhsFunction or sequence of RhsFunction
        Registered with :func:`batchivp.rhs`, of one state dimension ``n``; with several,
        ``fun_index`` picks each problem's.
    t_span : (2,) or (N, 2) array_like
        Each problem's ``(t0, tf)``, ``t0`` finite; ``tf < t0`` integrates backward;
        ``tf = ±inf`` runs until a terminal event, Ctrl-C or ``Status.INFINITE_STEP``.
    y0 : (N, n) array_like
        Initial states, finite.
    params : None, scalar, (m,) or (N, m) array_like
        Parameter vector ``p`` passed to ``fun``, shared or per problem; finite.
    t_eval : None, (k,) or (N, k) array_like
        Times to store the solution at: in the span, sorted in the integration's direction.
    events : EventFunction or sequence of EventFunction
        Registered with :func:`batchivp.event`, called with each problem's ``params``
        as ``p``; found as scipy finds them (a sign change in ``direction``, Brent's
        root on the step's interpolant), ending a problem at the ``terminal`` count.
    max_events : None or int
        Occurrences stored per event and problem (default 16); further ones are only
        counted (``n_events``), with a warning naming the size that holds them.
    rtol, atol : scalar, (n,) or (N, 1) or (N, n) array_like
        Tolerances: scalar, per component, per problem, or both.
    first_step, max_step : None, scalar or (N,) array_like
        Initial step (``None``: scipy's choice) and largest step (default ``inf``).
    max_steps : None or int
        Step budget per problem; a problem that needs more gets ``Status.BUDGET``.
    fun_index : None or (N,) array_like of int
        Index into ``fun`` per problem when ``fun`` is a sequence.
    target : None or str
        ``"cpu"``, ``"parallel"``, ``"cuda"`` or ``"auto"``; default ``BATCHIVP_TARGET``.
    chunk_steps : None or int
        Steps per kernel call; the batch resumes until done. ``None``: in the main
        thread or with ``progress``, calls of about 0.5 s each, so that Ctrl-C and the
        bar are served between them; elsewhere (a Dask worker) one call.
    progress : bool
        A tqdm bar (stderr): ``sum |t - t0|`` over ``sum |tf - t0|``; not for Dask inputs.
    sensitivity, sensitivity_error : None, ``"y0"``, ``"params"`` or ``"all"``; bool
        Also integrate the forward sensitivities by ``y0``, ``params`` or both (``"all"``:
        ``params`` only if given; :mod:`batchivp.sensitivity`; ``dyf_dy0``, ``dy_dy0``,
        ``dt_events_dy0``, ...), outside the error norm (same steps as without), or in
        it with the state's tolerances (``sensitivity_error``).
    observables, summarize, save_y : EventFunction(s); None, str or sequence of str; bool
        Statistics over the ``t_eval`` points computed in the kernel, of the state's
        components and of the ``observables`` (``g(t, y, p) -> float``,
        :func:`batchivp.observable`): ``"min"``, ``"max"``, ``"mean"``, ``"rms"``,
        ``"argmin"``, ``"argmax"``, ``"sign_changes"`` (:attr:`BatchResult.summary`).
        ``save_y=False``: no trajectory ``y`` at all.
    out : None, str, os.PathLike or zarr store
        Write the results to this Zarr store block by block (``batchivp[zarr]``), memory
        bounded by a block; the same call again finishes what Ctrl-C or a killed process
        left, bitwise as an uninterrupted run (:mod:`batchivp.stream`).
    dtype : np.float64, np.float32 or "mixed"
        float32 state, stages and error norm (results float32), or float32 stages only;
        time stays float64, rtol >= 10 float32 eps (docs/architecture.md, "Precision").

    Returns
    -------
    BatchResult
        Lazy if a per-problem argument is a Dask array: arrays chunked as it, a task per
        block (bitwise a local solve); shapes checked now, values when computed. With
        ``out``, read from the store (large fields as ``zarr.Array``).

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything compiles; for an output (``y``,
        the event buffers) larger than this machine's memory (without ``out``); for an
        ``out`` that holds another call's results.

    Notes
    -----
    Ctrl-C in the main thread stops the batch after the current kernel call (within
    about a second) and returns what was done with ``interrupted=True`` and a warning,
    not ``KeyboardInterrupt``; a SIGINT handler of your own stays in charge (with
    ``out``, the finished blocks are in the store).
    """
    progress = arguments.progress(progress)
    per_problem = dict(y0=y0, t_span=t_span, params=params, t_eval=t_eval, rtol=rtol,
                       atol=atol, first_step=first_step, max_step=max_step,
                       fun_index=fun_index)
    options = dict(events=events, max_events=max_events, max_steps=max_steps, target=target,
                   chunk_steps=chunk_steps, sensitivity=sensitivity,
                   sensitivity_error=sensitivity_error, observables=observables,
                   summarize=summarize, save_y=save_y, dtype=dtype)
    if out is not None:
        return stream.solve_to_store(solve_batch, fun, per_problem, options, out, progress)
    if arguments.any_dask(per_problem.values()):
        return BatchResult(**dask_batch.solve_batch_dask(solve_batch, fun, per_problem, options))
    return _run(validate(fun, **per_problem, **options), progress, chunk_steps is None)


def _run(batch, progress, adaptive):
    """Load the module of a validated batch, run the kernel until every problem has a
    final status (or Ctrl-C), and unpack the result."""
    module = render.load_module(batch.target, batch.ndim, batch.functions, batch.event_slots,
                                norm=batch.norm, observables=batch.observables,
                                precision=batch.precision)
    inputs, state = _pack(batch, module)
    interruptible = host_loop.sigint_interceptable()
    interrupted = host_loop.run_kernel(
        module, batch.target, inputs, state, progress=progress, interruptible=interruptible,
        adaptive=adaptive and (progress or interruptible), spans=batch.span)
    return _unpack(batch, state, interrupted)


@dataclass(frozen=True)
class _Batch:
    """One validated call of :func:`solve_batch`: per-problem arrays of ``N`` rows
    (broadcast views where shared) and the options, as the kernel takes them."""

    target: str
    functions: list  # the right-hand sides
    positions: np.ndarray  # (N,): each problem's in functions
    event_slots: list
    ecfg_row: np.ndarray  # (max(e, 1), ECFG_SIZE)
    n_stored: int  # occurrences stored per event
    y0: np.ndarray  # (N, n)
    span: np.ndarray  # (N, 2)
    p: np.ndarray  # (N, m)
    rtol: np.ndarray  # (N, n)
    atol: np.ndarray  # (N, n)
    first_step: np.ndarray  # (N,), 0: selected as scipy does
    max_step: np.ndarray  # (N,)
    t_eval: np.ndarray  # (N, k), (N, 1) without t_eval
    n_eval: int  # k, 0 without t_eval
    t_out: object  # BatchResult.t
    max_steps: int
    chunk_steps: int
    norm: abi.Norm  # what the error norm sees of the integrated components
    precision: abi.Precision = abi.FLOAT64  # the kernel's dtypes; arrays above in its real
    columns: object = None  # sensitivity.Columns, or None
    user_functions: list = None  # the right-hand sides as given (with sensitivities)
    user_events: list = None  # the events as given (with sensitivities)
    observables: list = ()  # summarized with the state's components
    statistics: tuple = ()  # summaries.STATISTICS asked for
    save_y: bool = True  # t_eval points stored in yout (else only summarized)

    @property
    def n_prob(self):
        return self.y0.shape[0]

    @property
    def ndim(self):
        return self.y0.shape[1]


# The fields of a _Batch with a row per problem (t_out too when it is (N, k)).
_PER_PROBLEM = ("positions", "y0", "span", "p", "rtol", "atol", "first_step", "max_step",
                "t_eval")


def _rows(batch, lo, hi):
    """The validated batch of ``batch``'s problems ``lo:hi`` (views), for a block of
    a streamed run (``stream.py``)."""
    rows = {name: getattr(batch, name)[lo:hi] for name in _PER_PROBLEM}
    if batch.t_out is not None and np.ndim(batch.t_out) == 2:
        rows["t_out"] = batch.t_out[lo:hi]
    return dataclasses.replace(batch, **rows)


def validate(fun, *, y0, t_span, params, t_eval, rtol, atol, first_step, max_step, fun_index,
             events, max_events, max_steps, target, chunk_steps, sensitivity,
             sensitivity_error, observables=(), summarize=None, save_y=True,
             streamed=False, dtype=np.float64):
    """The validated call of :func:`solve_batch` with these arguments (all of them, by
    keyword; a ``_Batch``), or the error naming the first bad argument
    (``arguments.py``), before anything compiles. :mod:`batchivp.jax` checks its calls
    with it. ``streamed``: the results go to a store block by block (``stream.py``),
    so they need not fit in memory."""
    target = targets.resolve_target(target)
    precision = arguments.precision(dtype)
    if sensitivity is not None and precision != abi.FLOAT64:
        raise ValueError(f"sensitivity={sensitivity!r} with dtype={precision.name!r}: "
                         "sensitivities are integrated in float64 only; pass dtype=np.float64")
    functions, positions = arguments.functions(fun, fun_index)
    event_slots, ecfg_row = arguments.events(events)
    n_stored = arguments.stored_events(max_events, event_slots)
    y0_a = arguments.as_float_array(y0, "y0")
    n_prob, ndim = arguments.y0_shape(y0_a.shape)
    arguments.check_finite(y0_a, "y0")
    arguments.fun_index_shape(positions.shape, n_prob)
    span = arguments.span(t_span, n_prob)
    p = arguments.params(params, n_prob)
    observables = arguments.observables(observables)
    # Every index of the user's functions in range for this n and m (the bounds package).
    bounds.check(functions, event_slots + observables, ndim, 0 if params is None else p.shape[1])
    rtol_a, atol_a = arguments.tolerances(rtol, atol, n_prob, ndim, precision)
    first_a, max_step_a = arguments.steps(first_step, max_step, span, n_prob)
    t_eval_a, n_eval = arguments.t_eval(t_eval, span, n_prob)
    statistics = summaries.statistics(summarize)
    summaries.check(statistics, observables, n_eval, save_y, sensitivity)
    system = dict(functions=functions, event_slots=event_slots, y0=y0_a, p=p, rtol=rtol_a,
                  atol=atol_a, norm=abi.Norm(ndim))
    if sensitivity is not None:
        system = _with_sensitivities(system, sensitivity, sensitivity_error, params is not None)
    elif sensitivity_error is not False:
        raise ValueError(f"sensitivity_error={sensitivity_error!r} needs sensitivity='y0', "
                         "'params' or 'all' (the sensitivities it puts in the error norm)")
    for name in ("y0", "p", "rtol", "atol"):  # float64 arrays stay as they are
        system[name] = arguments.in_precision(system[name], "params" if name == "p" else name,
                                              precision.real)
    if not streamed:
        _check_output_fits(n_prob, abi.core_sizes(
            system["y0"].shape[1], 1, t_eval_a.shape[-1], ecfg_row.shape[0], n_stored,
            save_y=bool(save_y), n_summarized=(ndim + len(observables)) * bool(statistics)),
            precision)
    return _Batch(
        target=target, precision=precision, positions=np.broadcast_to(positions, (n_prob,)),
        ecfg_row=ecfg_row, n_stored=n_stored, span=span,
        first_step=first_a, max_step=max_step_a, **system,
        t_eval=t_eval_a, n_eval=n_eval,
        t_out=None if t_eval is None else arguments.t_eval_out(t_eval),
        observables=observables, statistics=statistics, save_y=bool(save_y),
        max_steps=arguments.positive_int(max_steps, "max_steps", abi.UNLIMITED_STEPS),
        chunk_steps=arguments.positive_int(chunk_steps, "chunk_steps", abi.UNLIMITED_STEPS))


def _with_sensitivities(system, mode, in_error_norm, has_params):
    """The integrated system of the state and its sensitivity columns
    (:mod:`batchivp.sensitivity`): right-hand sides, events, ``y0``, ``p``, tolerances,
    norm; errors (a line that cannot be differentiated) before anything compiles."""
    functions, events, y0, p = (system[k] for k in ("functions", "event_slots", "y0", "p"))
    n, m = y0.shape[1], p.shape[1]
    columns = sensitivity.Columns.of(mode, n, m, has_params)
    if not isinstance(in_error_norm, (bool, np.bool_)):
        raise ValueError(f"sensitivity_error must be True or False, got {in_error_norm!r}")
    for event in events:
        sensitivity.check_differentiable(event)
    y0_s, p_s = columns.initial(y0, p)
    repeat = (1, 1 + columns.count)
    return dict(
        functions=[sensitivity.augmented(f, n, m, columns.count) for f in functions],
        event_slots=[sensitivity.state_event(e, n, m) for e in events],
        y0=y0_s, p=p_s, rtol=np.tile(system["rtol"], repeat), atol=np.tile(system["atol"], repeat),
        norm=abi.Norm(columns.ndim if in_error_norm else n), columns=columns,
        user_functions=functions, user_events=events)


def _pack(batch, module):
    """The kernel's inputs and a fresh state (``abi.py``) for a validated batch and its
    loaded module (which numbers the dispatchers' handles)."""
    handles, ecfg_row = arguments.handles(module, batch.functions, batch.positions,
                                          batch.event_slots, batch.ecfg_row)
    tcfg, icfg = abi.pack_config(
        batch.n_prob, t0=batch.span[:, 0], tf=batch.span[:, 1], first_step=batch.first_step,
        max_step=batch.max_step, handle=handles, n_eval=batch.n_eval,
        max_steps=batch.max_steps, chunk_steps=batch.chunk_steps,
        event_buffer=batch.n_stored, record=core.RECORD_NONE, record_rows=1,
        event_rule=core.EVENTS_BATCH,  # a non-finite event value: Status.EVENT_NONFINITE
        n_events=len(batch.event_slots), save_y=int(batch.save_y),
        summarize=int(bool(batch.statistics)),
        observables=render.handles(module, "event", batch.observables))
    ecfg = np.broadcast_to(ecfg_row, (batch.n_prob,) + ecfg_row.shape)
    inputs = abi.Inputs(y0=batch.y0, p=batch.p, rtol=batch.rtol, atol=batch.atol, tcfg=tcfg,
                        t_eval=batch.t_eval, icfg=icfg, ecfg=ecfg)
    return inputs, abi.new_state(batch.n_prob, _sizes(batch), batch.precision)


def _sizes(batch):
    """The kernel's core dimensions (``abi.core_sizes``) for a validated batch."""
    return abi.core_sizes(
        batch.ndim, batch.p.shape[1], batch.t_eval.shape[-1], batch.ecfg_row.shape[0],
        batch.n_stored, save_y=batch.save_y, n_observables=len(batch.observables),
        n_summarized=(batch.ndim + len(batch.observables)) * bool(batch.statistics))


def _unpack(batch, state, interrupted):
    """The :class:`BatchResult` of a run; warnings for Ctrl-C and full event buffers."""
    status = state.istate[:, core.IS_STATUS].copy()
    t_final = state.fstate[:, core.FS_T].copy()
    not_started = status == Status.PENDING
    t_final[not_started] = batch.span[not_started, 0]
    state.y[not_started] = batch.y0[not_started]
    if interrupted:
        _warn_interrupted(status)
    y_final, yout = state.y, None if batch.t_out is None or not batch.save_y else state.yout
    events = {}
    if batch.event_slots:
        n_slots = len(batch.event_slots)
        n_events = state.n_events[:, :n_slots]
        _warn_overflow(n_events, batch.n_stored)
        events = dict(t_events=[state.t_events[:, e, :] for e in range(n_slots)],
                      y_events=[state.y_events[:, e, :, :] for e in range(n_slots)],
                      n_events=n_events)
    derivatives = {}
    if batch.columns is not None:
        solved = sensitivity.Solved(
            batch.columns, [batch.user_functions[k] for k in batch.positions],
            batch.user_events, batch.ecfg_row[:len(batch.user_events), EC_TERMINAL], status,
            t_final, batch.p)
        derivatives, y_final, yout, y_events = sensitivity.results(
            solved, y_final, yout, events.get("y_events"), events.get("t_events"),
            events.get("n_events"))
        if events:
            events["y_events"] = y_events
    return BatchResult(
        t=batch.t_out, y=yout, t_final=t_final, y_final=y_final, status=status,
        nfev=state.istate[:, core.IS_NFEV].copy(), nstep=state.istate[:, core.IS_NSTEP].copy(),
        nreject=state.istate[:, core.IS_NREJECT].copy(), target=batch.target,
        interrupted=interrupted, **events, **derivatives,
        summary=summaries.results(state.summary, state.istate[:, core.IS_I_EVAL], batch.t_eval,
                                  batch.statistics) if batch.statistics else None)


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


def _check_output_fits(n_prob, sizes, precision=abi.FLOAT64):
    """Refuse a batch whose output (``sizes``: abi.core_sizes) cannot fit in memory,
    before allocating any of it: a ``ValueError`` with the size and the arguments that
    set it."""
    ndim, k, n_slots, n_stored = sizes["n"], sizes["o"], sizes["e"], sizes["b"]
    need = abi.state_bytes(n_prob, sizes, precision=precision)
    have = _physical_memory()
    if have is None or need <= have:
        return
    y_bytes = abi.state_bytes(n_prob, sizes, ("yout",), precision)
    event_bytes = abi.state_bytes(n_prob, sizes, ("t_events", "y_events"), precision)
    raise ValueError(
        f"solve_batch's output needs {need / 1e9:,.1f} GB, more than this machine's "
        f"{have / 1e9:,.1f} GB of memory: y holds N x n x len(t_eval) = {n_prob} x {ndim} x "
        f"{k} floats ({y_bytes / 1e9:,.1f} GB) and the event buffers N x events x "
        f"max_events x (n + 1) = {n_prob} x {n_slots} x {n_stored} x {ndim + 1} floats "
        f"({event_bytes / 1e9:,.1f} GB). Pass fewer t_eval points (or save_y=False with "
        "summarize=, which keeps statistics of y instead of y) or a smaller max_events, "
        "or split the batch (for example Dask arrays for y0, solved block by block).")


def _warn_interrupted(status):
    open_rows = unfinished(status)
    if not open_rows.any():
        warnings.warn("solve_batch was interrupted (Ctrl-C) when every problem had "
                      "finished; the result is complete.", RuntimeWarning, stacklevel=4)
        return
    warnings.warn(
        f"solve_batch was interrupted (Ctrl-C): {int(open_rows.sum())} of {len(status)} "
        f"problems did not finish ({int(np.sum(status == Status.RUNNING))} stopped "
        f"mid-way, status {int(Status.RUNNING)}; {int(np.sum(status == Status.PENDING))} "
        f"not started, status {int(Status.PENDING)}); their t_final, y_final and y hold "
        "where they stopped. The finished problems are complete.",
        RuntimeWarning, stacklevel=4)


def _warn_overflow(n_events, n_stored):
    """Warn once if any problem had more occurrences of an event than are stored."""
    over = np.any(n_events > n_stored, axis=1)
    if over.any():
        warnings.warn(
            f"{int(over.sum())} problem(s) had more occurrences of an event than "
            f"max_events={n_stored} holds; the first {n_stored} of each are kept and "
            f"n_events has the full counts. Pass max_events={int(n_events.max())} to keep "
            "them all.", RuntimeWarning, stacklevel=4)
