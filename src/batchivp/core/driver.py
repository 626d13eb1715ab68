"""One problem from start to end: solve_ivp's loop, in resumable chunks, with events.

Same contract as ``dop853.py``. The kernel entry point of every target calls
:func:`dop853_advance` once per problem and call; it starts a pending problem, then
takes at most ``icfg[IC_CHUNK_STEPS]`` accepted steps. After each step, in scipy's
order [1]_: the events (``events.py``; the roots of a sign change in
:func:`step_roots`), the ``t_eval`` output from the step's interpolant (up to the
terminating root, if any) and the step record (:func:`output_t_eval`,
:func:`record_row`), and the end test. The
interpolant's three extra stages are computed at most once a step, and only in steps
that need them (a ``t_eval`` point or an active event), so ``nfev`` is scipy's.

Extra state for ``n_ev`` event slots: ``g`` (event values at the current time),
``n_events``, ``t_events``, ``y_events`` (see ``events.py``).

The step record (``icfg[IC_RECORD]``, for ``solve_ivp``): ``rec_t``, ``rec_y`` get
``(t0, y0)`` and then, after each accepted step, the ``t`` and ``y`` scipy appends (the
root after a terminal event); with ``RECORD_DENSE`` the interpolant of every step goes
to ``rec_F`` and is built every step, as scipy's ``dense_output=True`` does (3
evaluations a step). Rows are written at ``istate[IS_N_REC]``; when all
``icfg[IC_RECORD_ROWS]`` are used the problem pauses before its next step
(``STATUS_PAUSED``), so the host can grow the arrays and resume.

References
----------
.. [1] scipy.integrate._ivp.ivp.solve_ivp, the loop after ``solver.step()``.
"""

from .coefficients import INTERPOLATOR_POWER, N_STAGES, N_STAGES_EXTENDED
from .dop853 import (EVENTS_BATCH, FS_H_ABS, FS_T, FS_T_NEW, IC_CHUNK_STEPS,
                     IC_EVENT_BUFFER, IC_EVENT_RULE, IC_HANDLE, IC_MAX_STEPS, IC_N_EVAL,
                     INDEX_CHECKS,
                     IC_RECORD, IC_RECORD_ROWS, IS_I_EVAL, IS_N_REC, IS_NFEV, IS_NONFINITE,
                     IS_NREJECT, IS_NSTEP, IS_STATUS, RECORD_DENSE, RECORD_NONE,
                     STATUS_BUDGET, STATUS_EVENT, STATUS_EVENT_NONFINITE, STATUS_FINISHED,
                     STATUS_NONFINITE, STATUS_PAUSED, STATUS_PENDING, STATUS_RUNNING,
                     TC_FIRST_STEP, TC_MAX_STEP, TC_T0, TC_TF, all_finite,
                     dense_coefficients, dense_eval, dop853_step, select_initial_step)
from .events import (ROOT_SEARCH_FAILED, event_values, events_at_rest, find_active_events,
                     step_events)
from .summaries import store_point


def dop853_start(y0, p, rtol, atol, tcfg, icfg, ecfg, y, f, fstate, istate, g, n_events,
                 rec_t, rec_y, K, W, n, m, n_ev, recording):
    """Set up one problem: ``f(t0, y0)``, the first step, counters, event values at t0.

    One or two evaluations of the right-hand side, as scipy. ``K`` and ``W`` (the
    stages and the state's work rows) are free before the first step.
    """
    handle = icfg[IC_HANDLE]
    t0 = tcfg[TC_T0]
    tf = tcfg[TC_TF]
    for i in range(n):
        y[i] = y0[i]
    istate[IS_STATUS] = STATUS_RUNNING  # before the evaluation, which may set STATUS_INDEX
    rhs(handle, t0, y, p, f, istate)
    istate[IS_NFEV] = 1
    istate[IS_NSTEP] = 0
    istate[IS_NREJECT] = 0
    istate[IS_I_EVAL] = 0
    istate[IS_NONFINITE] = 0
    istate[IS_N_REC] = 0
    if recording and icfg[IC_RECORD] != RECORD_NONE:
        record_row(t0, y, rec_t, rec_y, istate, n)
    fstate[FS_T] = t0
    fstate[FS_T_NEW] = t0
    fstate[FS_H_ABS] = 0.0
    for e in range(n_ev):
        n_events[e] = 0
    if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
        return
    if not all_finite(f, n):
        istate[IS_STATUS] = STATUS_NONFINITE
        return
    finite = event_values(ecfg, t0, y, p, g, n_ev, istate)
    if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
        return
    if not finite and icfg[IC_EVENT_RULE] == EVENTS_BATCH:
        istate[IS_STATUS] = STATUS_EVENT_NONFINITE
        return
    direction = 1.0
    if tf < t0:
        direction = -1.0
    if tcfg[TC_FIRST_STEP] > 0.0:
        fstate[FS_H_ABS] = tcfg[TC_FIRST_STEP]
    elif tf != t0:
        # The trial state and the scale in state rows, the trial derivative in a
        # stage row: the right-hand side gets the dtypes it gets in a step.
        fstate[FS_H_ABS] = select_initial_step(
            handle, t0, y, f, p, tf, tcfg[TC_MAX_STEP], direction, rtol, atol,
            W[0], K[1], W[1], n, m, istate)
        istate[IS_NFEV] = 2


def record_row(t, y, rec_t, rec_y, istate, n):
    """Append ``(t, y)`` to the step record."""
    row = istate[IS_N_REC]
    rec_t[row] = t
    for i in range(n):
        rec_y[row, i] = y[i]
    istate[IS_N_REC] = row + 1


def build_interpolant(handle, t_old, y_old, y, f, h, p, K, F, ytmp, istate, n):
    """The last step's interpolant into ``F``, its three evaluations counted in ``nfev``
    (scipy's ``solver.dense_output()``, called at most once a step). The caller tests
    the status (``STATUS_INDEX``) before it uses ``F``."""
    dense_coefficients(handle, t_old, y_old, y, f, h, p, K, F, ytmp, n, istate)
    istate[IS_NFEV] += N_STAGES_EXTENDED - N_STAGES - 1


def dop853_advance(y0, p, rtol, atol, tcfg, t_eval, icfg, ecfg, fstate, istate, f, yout, g,
                   n_events, t_events, y_events, rec_t, rec_y, rec_F, summary, y, K, F, W, G,
                   active, n, m, n_ev, recording):
    """Start (if pending) and integrate one problem for at most ``icfg[chunk]`` steps,
    leaving ``STATUS_RUNNING`` when the chunk ends first, ``STATUS_PAUSED`` when the step
    record is full. The kernel's arguments (``abi.ARGUMENTS``), the work arrays, ``m``
    the norm components (``NORM_DIM``), ``recording`` the module's ``RECORDING``."""
    y_new, y_old, ytmp = W[0], W[1], W[2]  # one array: fewer arguments (CUDA inliner)
    g_new, roots = G[0], G[1]
    if istate[IS_STATUS] == STATUS_PENDING:
        dop853_start(y0, p, rtol, atol, tcfg, icfg, ecfg, y, f, fstate, istate, g, n_events,
                     rec_t, rec_y, K, W, n, m, n_ev, recording)
    if istate[IS_STATUS] != STATUS_RUNNING:
        return
    handle = icfg[IC_HANDLE]
    t_bound = tcfg[TC_TF]
    max_step = tcfg[TC_MAX_STEP]
    direction = -1.0 if t_bound < tcfg[TC_T0] else 1.0
    steps_left = icfg[IC_CHUNK_STEPS]
    while steps_left > 0:
        t_old = fstate[FS_T]
        if recording and icfg[IC_RECORD] != RECORD_NONE and istate[IS_N_REC] >= icfg[IC_RECORD_ROWS]:
            istate[IS_STATUS] = STATUS_PAUSED
            return
        if t_old == t_bound:
            finish_at_rest(icfg, ecfg, t_eval, t_old, y, p, istate, yout, summary, g,
                           n_events, t_events, y_events, rec_t, rec_y, active, n, n_ev,
                           recording)
            return
        if istate[IS_NSTEP] >= icfg[IC_MAX_STEPS]:
            istate[IS_STATUS] = STATUS_BUDGET
            return
        h = dop853_step(handle, y, f, p, rtol, atol, t_bound, max_step, direction,
                        fstate, istate, K, y_new, ytmp, n, m)
        if istate[IS_STATUS] != STATUS_RUNNING:
            return
        istate[IS_NSTEP] += 1
        steps_left -= 1
        for i in range(n):
            y_old[i] = y[i]
            y[i] = y_new[i]
            f[i] = K[N_STAGES, i]
        fstate[FS_T] = fstate[FS_T_NEW]
        have_dense = recording != 0 and icfg[IC_RECORD] == RECORD_DENSE
        if have_dense:
            record_interpolant(handle, t_old, y_old, y, f, h, p, K, F, ytmp, rec_F, istate, n)
            if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
                return
        stop = STATUS_RUNNING
        if n_ev > 0:  # scipy's find_active_events and handle_events
            finite = event_values(ecfg, fstate[FS_T], y, p, g_new, n_ev, istate)
            if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
                return  # g is left as it was
            if not finite and icfg[IC_EVENT_RULE] == EVENTS_BATCH:
                stop = STATUS_EVENT_NONFINITE
            else:
                n_active = find_active_events(g, g_new, ecfg, active, n_ev)
                if n_active > 0:  # rare: the roots, out of the step's hot path
                    stop = step_roots(icfg, ecfg, p, t_old, h, y_old, y, f, K, F, ytmp,
                                      fstate, istate, active, n_active, roots, n_events,
                                      t_events, y_events, have_dense, n)
                    if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
                        return
                    have_dense = True
                for e in range(n_ev):
                    g[e] = g_new[e]
        i_eval = istate[IS_I_EVAL]
        if i_eval < icfg[IC_N_EVAL] and direction * (t_eval[i_eval] - fstate[FS_T]) <= 0.0:
            output_t_eval(icfg, t_eval, p, t_old, h, direction, y_old, y, f, K, F, ytmp,
                          fstate, istate, yout, summary, have_dense, n)
            if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
                return
        if recording and icfg[IC_RECORD] != RECORD_NONE:
            record_row(fstate[FS_T], y, rec_t, rec_y, istate, n)
        if stop != STATUS_RUNNING:
            istate[IS_STATUS] = stop
            return
        if direction * (fstate[FS_T] - t_bound) >= 0.0:
            istate[IS_STATUS] = STATUS_FINISHED
            return


def finish_at_rest(icfg, ecfg, t_eval, t, y, p, istate, yout, summary, g, n_events, t_events,
                   y_events, rec_t, rec_y, active, n, n_ev, recording):
    """scipy's corner case ``t0 == tf``: finished at once, every ``t_eval`` point is
    ``y0``, events zero at ``t0`` occur there, and the record gets scipy's one "step" of
    no length (its interpolant is constant)."""
    i_eval = istate[IS_I_EVAL]
    while i_eval < icfg[IC_N_EVAL]:
        store_point(icfg, t_eval[i_eval], i_eval, y, p, yout, summary, istate, n)
        if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
            return
        i_eval += 1
        istate[IS_I_EVAL] = i_eval
    istate[IS_STATUS] = STATUS_FINISHED
    if n_ev > 0 and events_at_rest(ecfg, t, y, g, n_events, icfg[IC_EVENT_BUFFER], t_events,
                                   y_events, active, n_ev, n):
        istate[IS_STATUS] = STATUS_EVENT
    if recording and icfg[IC_RECORD] != RECORD_NONE:
        record_row(t, y, rec_t, rec_y, istate, n)


def record_interpolant(handle, t_old, y_old, y, f, h, p, K, F, ytmp, rec_F, istate, n):
    """The step's interpolant into ``F`` and the record's ``rec_F`` (``RECORD_DENSE``:
    scipy's ``dense_output=True`` builds it every step). The caller tests the status."""
    build_interpolant(handle, t_old, y_old, y, f, h, p, K, F, ytmp, istate, n)
    if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
        return
    row = istate[IS_N_REC]
    for r in range(INTERPOLATOR_POWER):
        for i in range(n):
            rec_F[row, r, i] = F[r, i]


def step_roots(icfg, ecfg, p, t_old, h, y_old, y, f, K, F, ytmp, fstate, istate, active,
               n_active, roots, n_events, t_events, y_events, have_dense, n):
    """The roots of the ``n_active`` events active in the step just taken, ``[t_old,
    fstate[FS_T]]`` (scipy's ``handle_events``), on its interpolant (built into ``F``
    unless ``have_dense``). Returns ``STATUS_RUNNING``, ``STATUS_EVENT`` (a terminal
    event: ``y`` and ``fstate[FS_T]`` are moved to its root) or
    ``STATUS_EVENT_NONFINITE``. The caller tests the status (``STATUS_INDEX``)."""
    t = fstate[FS_T]
    if not have_dense:
        build_interpolant(icfg[IC_HANDLE], t_old, y_old, y, f, h, p, K, F, ytmp, istate, n)
        if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
            return STATUS_RUNNING
    last = step_events(ecfg, p, F, y_old, t_old, h, t, n_active, active, roots, n_events,
                       icfg[IC_EVENT_BUFFER], t_events, y_events, ytmp, n,
                       icfg[IC_EVENT_RULE] == EVENTS_BATCH, istate)
    if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
        return STATUS_RUNNING
    if last == ROOT_SEARCH_FAILED:
        return STATUS_EVENT_NONFINITE
    if last >= 0:  # a terminal event: the problem ends at its root (scipy's t, y)
        t = roots[last]
        dense_eval(F, y_old, t_old, h, t, y, n)
        fstate[FS_T] = t
        return STATUS_EVENT
    return STATUS_RUNNING


def output_t_eval(icfg, t_eval, p, t_old, h, direction, y_old, y, f, K, F, ytmp, fstate,
                  istate, yout, summary, have_dense, n):
    """The ``t_eval`` points the step just taken passed, up to ``fstate[FS_T]`` (a
    terminal event's root, if any), from its interpolant (built into ``F`` unless
    ``have_dense``). Called only for a step that passed one: a call every step costs
    the cheapest batches much of their time (``benchmarks/README.md``, "Splitting the
    driver").
    The caller tests the status (``STATUS_INDEX`` from building the interpolant;
    nothing is then written)."""
    t = fstate[FS_T]
    n_eval = icfg[IC_N_EVAL]
    i_eval = istate[IS_I_EVAL]
    if not have_dense:
        build_interpolant(icfg[IC_HANDLE], t_old, y_old, y, f, h, p, K, F, ytmp, istate, n)
        if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
            return
    while i_eval < n_eval and direction * (t_eval[i_eval] - t) <= 0.0:
        dense_eval(F, y_old, t_old, h, t_eval[i_eval], ytmp, n)
        store_point(icfg, t_eval[i_eval], i_eval, ytmp, p, yout, summary, istate, n)
        if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
            return
        i_eval += 1
        istate[IS_I_EVAL] = i_eval
