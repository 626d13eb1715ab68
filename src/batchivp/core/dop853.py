"""DOP853 numerics, written once as plain Python for every target.

Contract (docs/architecture.md, point 1), kept by every function in this file:

1. ``math`` only; arrays are passed in, never allocated; no ``raise`` or ``assert``;
   no default or keyword arguments; no globals but module constants and the
   dispatcher ``rhs(handle, t, y, p, dydt, istate)``, which the renderer defines in the
   generated module next to these functions. The dispatcher gets the problem's
   ``istate`` so that a user function whose index is checked at run time can end the
   problem with ``STATUS_INDEX`` (``access.py``); every caller tests the status after
   the evaluations it makes.
2. The renderer copies the top-level functions and constant assignments of this file
   verbatim into one module per target and decorates each function for it
   (``numba.njit`` for cpu/parallel, ``numba.cuda.jit(device=True)`` for cuda, none for
   the pure-Python oracle target). Imports are dropped there: the coefficient names
   are rendered in as constants.
3. The algorithm is scipy's ``DOP853`` [1]_ [2]_ step for step: the same stage sums, the
   error norm combining the 5th- and 3rd-order estimates, the controller (SAFETY 0.9,
   factors 0.2..10, exponent -1/8, no growth right after a rejection), the initial step
   selection and the 7th-degree interpolant. Python's ``min``/``max`` are spelled out as
   ``py_min``/``py_max`` so that NaN behaves as it does in scipy on every target.

State of one problem between calls (the kernel owns the arrays):

- ``fstate``: ``[t, h_abs, t_new]`` (``t_new``: end of the step being taken).
- ``istate``: ``[status, nfev, nstep, nreject, i_eval, last_error_nonfinite, n_rec]``
  (``n_rec``: rows written to the step record).
- ``y``, ``f``: state and derivative at ``t``.

Complex states (scipy integrates complex ``y0`` directly) are stored as ``n = 2 m`` reals,
the ``m`` real parts then the ``m`` imaginary parts (``COMPLEX_STATE = 1``). Stage sums,
the step and the interpolant are linear and act on the parts alike; only scipy's norms
see the complex components: the scale uses ``|y_i|`` of the complex number and the sums
of squares add the real parts' sum to the imaginary parts' sum (``numpy.linalg.norm``).
A real state (``COMPLEX_STATE = 0``) is seen by the norms in its first ``m`` ("norm
components") of ``n`` components: ``m == n``, or ``m < n`` when sensitivities are
integrated with the state and kept out of the error norm, so the state takes the steps
it takes alone.

``driver.py`` starts a problem and runs its steps, with events (``events.py``).

References
----------
.. [1] E. Hairer, S. P. Norsett, G. Wanner, "Solving Ordinary Differential Equations I:
       Nonstiff Problems", 2nd ed., Sec. II.4 (step size control, initial step) and
       II.6 (dense output).
.. [2] scipy.integrate._ivp.rk.DOP853 and scipy.integrate._ivp.common.
"""

import math

from .coefficients import (A, B, C, D, E3, E5, END_ROWS, INTERPOLATOR_POWER, N_STAGES,
                           N_STAGES_EXTENDED)

# The precision (abi.Precision), rendered per module: REAL is the dtype of the state and
# of the arithmetic on it (stage sums, error norm, interpolant), STAGE the dtype the
# stages and the interpolant are stored in; plain Python (this file as it is) uses
# float. The constants below are the literals that meet REAL values: numba computes
# float32 times a Python float (a float64) in double, so a float32 module's arithmetic
# stays float32 only with constants of its own dtype. Time, step sizes and the step-size
# control (the literals elsewhere) are float64 in every precision.
REAL = float
STAGE = float
ZERO = REAL(0.0)
ONE = REAL(1.0)
TWO = REAL(2.0)
ERR3_WEIGHT = REAL(0.01)  # scipy's weight of the 3rd-order estimate in the error norm

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
ERROR_EXPONENT = -0.125  # -1 / (error_estimator_order + 1), order 7
INITIAL_STEP_EXPONENT = 0.125  # 1 / (error_estimator_order + 1)

# Status codes: scipy's where scipy has one, further negative codes for failures. Their
# meaning, messages and scipy mapping are batchivp.status.Status, which checks at import
# that it has exactly these names and values (the generated code needs plain ints). -4 is
# free: an event buffer that overflows is reported by the counts (n_events), not a status.
STATUS_FINISHED = 0
STATUS_EVENT = 1
STATUS_STEP_TOO_SMALL = -1
STATUS_NONFINITE = -2
STATUS_BUDGET = -3
STATUS_EVENT_NONFINITE = -5
STATUS_NAN_STEP = -6  # the step size is NaN (a zero error scale: atol = 0 where y = 0)
STATUS_INDEX = -7  # a user function's index, computed at run time, was out of range
STATUS_INFINITE_STEP = -8  # the step reached t = inf (tf infinite, no terminal event)
STATUS_USER_ERROR = -9  # a user function raised (linked kernels: templates/plugin.py.j2)
# 1: a user function of the module checks an index at run time and may set STATUS_INDEX.
# The renderer sets it per module; with 0 the status tests after evaluations compile
# out, so a module whose indices are all proven runs the code it ran before.
INDEX_CHECKS = 1
# 1: the state is complex, NORM_DIM real parts then NORM_DIM imaginary parts (scipy's norms
# see complex magnitudes); 0: real, and the norms see the first ``m`` components only,
# all of them unless sensitivities follow the state (batchivp/sensitivity.py). Set per
# module by the renderer.
COMPLEX_STATE = 0
STATUS_RUNNING = 2  # stopped at a chunk boundary; resume to continue
STATUS_PENDING = 3  # not started
STATUS_PAUSED = 4  # the step record is full: the host grows it, sets RUNNING, resumes

# Indices into the per-problem state and configuration vectors.
FS_T = 0
FS_H_ABS = 1
FS_T_NEW = 2
FSTATE_SIZE = 3
IS_STATUS = 0
IS_NFEV = 1
IS_NSTEP = 2
IS_NREJECT = 3
IS_I_EVAL = 4
IS_NONFINITE = 5
IS_N_REC = 6  # rows written to the step record
ISTATE_SIZE = 7
TC_T0 = 0
TC_TF = 1
TC_FIRST_STEP = 2  # 0.0 means "select it as scipy does"
TC_MAX_STEP = 3
TCFG_SIZE = 4
IC_HANDLE = 0
IC_N_EVAL = 1
IC_MAX_STEPS = 2
IC_CHUNK_STEPS = 3
IC_EVENT_BUFFER = 4  # entries per event in t_events/y_events
IC_RECORD = 5  # RECORD_NONE, RECORD_STEPS or RECORD_DENSE
IC_RECORD_ROWS = 6  # rows of the step record arrays
IC_EVENT_RULE = 7  # EVENTS_BATCH or EVENTS_SCIPY
IC_N_EVENTS = 8  # event slots in use (the linked kernel's NEVENTS, linking.py)
IC_SAVE_Y = 9  # 1: t_eval points go to yout; 0: only to the summaries (yout has one column)
IC_SUMMARIZE = 10  # 1: the t_eval points update the summaries (summaries.py)
IC_N_OBSERVABLES = 11  # observables summarized; their handles follow at ICFG_SIZE + o
ICFG_SIZE = 12

# What a non-finite event value does (``IC_EVENT_RULE``). EVENTS_BATCH (solve_batch): a
# value that is NaN or inf, at a step's end or in the root search, ends the problem
# with STATUS_EVENT_NONFINITE. EVENTS_SCIPY (solve_ivp): scipy's rule, where NaN at a
# step's end is no sign change and inf compares as a number (``find_active_events``),
# and only NaN in the root search ends the problem (scipy's brentq raises there).
EVENTS_BATCH = 0
EVENTS_SCIPY = 1

# The step record (solve_ivp's output without t_eval, and its dense output): row 0 is
# (t0, y0), then one row per accepted step (t, y after a terminal cut); with
# RECORD_DENSE also the step's interpolant rows F.
RECORD_NONE = 0
RECORD_STEPS = 1
RECORD_DENSE = 2


def py_max(a, b):
    """Python's ``max(a, b)``: ``a`` unless ``b > a`` (so a NaN ``b`` loses)."""
    if b > a:
        return b
    return a


def py_min(a, b):
    """Python's ``min(a, b)``: ``a`` unless ``b < a``."""
    if b < a:
        return b
    return a


def np_maximum(a, b):
    """``numpy.maximum`` for two floats: NaN wins."""
    if a != a or b != b:
        return a + b
    if a >= b:
        return a
    return b


def step_toward(t, direction):
    """``abs(numpy.nextafter(t, direction * inf) - t)`` for finite ``t``.

    Built from ``frexp``/``ldexp``, which numba's CUDA target has; it long had no
    ``nextafter`` (NVIDIA/numba-cuda#99, added by NVIDIA/numba-cuda#543). With
    ``t = m * 2**e``, ``0.5 <= |m| < 1``, the spacing of doubles around ``t`` is
    ``2**(e - 53)``, half that just below a power of two when moving toward zero, and
    never below the smallest subnormal ``2**-1074``.
    """
    if t == 0.0:
        return math.ldexp(1.0, -1074)
    m, e = math.frexp(t)
    toward_zero = (t > 0.0) != (direction > 0.0)
    if toward_zero and (m == 0.5 or m == -0.5):
        e = e - 1
    return math.ldexp(1.0, py_max(e - 53, -1074))


def magnitude(x, i, n, m):
    """``abs`` of norm component ``i < m``: ``|x[i]|``, or ``|x[i] + 1j x[i + m]|`` for a
    complex state (numpy's complex ``abs`` is ``hypot``)."""
    if COMPLEX_STATE:
        return math.hypot(x[i], x[i + m])
    return abs(x[i])


def rms_norm_scaled(x, scale, n, m):
    """scipy's ``norm(x / scale)``: ``linalg.norm(x / scale) / m ** 0.5``.

    For a complex state numpy sums the squares of the real parts, then of the
    imaginary parts, and adds the two sums; a real state has only the first sum, over
    its ``m`` norm components.
    """
    ss_re = 0.0
    ss_im = 0.0
    for i in range(m):
        v = x[i] / scale[i]
        ss_re += v * v
    if COMPLEX_STATE:
        for i in range(m, n):
            v = x[i] / scale[i - m]
            ss_im += v * v
    return math.sqrt(ss_re + ss_im) / m ** 0.5


def stage_state(K, s, t, y, h, ytmp, n):
    """``ytmp = y + (K[:s].T @ A[s, :s]) * h`` and return the stage time ``t + C[s] h``.

    The sum runs over stages in order (j outer) and over components inside, so the
    compiler can vectorize across components; each component's sum keeps the order
    j = 0, 1, ... of the plain dot product.
    """
    row = s * N_STAGES_EXTENDED
    for i in range(n):
        ytmp[i] = K[0, i] * A[row]
    for j in range(1, s):
        a = A[row + j]
        if a != ZERO:  # a third of the tableau is zero; skipping it changes no sum
            for i in range(n):
                ytmp[i] += K[j, i] * a
    h_real = REAL(h)
    for i in range(n):
        ytmp[i] = y[i] + ytmp[i] * h_real
    return t + C[s] * h


def rk_step(handle, t, y, f, h, p, K, y_new, ytmp, n, istate):
    """One DOP853 step of size ``h`` from ``(t, y)`` with ``f = f(t, y)``.

    Fills ``K[0:13]`` (``K[12] = f(t + h, y_new)``) and ``y_new``; 12 evaluations.
    """
    for i in range(n):
        K[0, i] = f[i]
    for s in range(1, N_STAGES):
        ts = stage_state(K, s, t, y, h, ytmp, n)
        rhs(handle, ts, ytmp, p, K[s], istate)
    for i in range(n):
        y_new[i] = K[0, i] * B[0]
    for j in range(1, N_STAGES):
        b = B[j]
        if b != ZERO:
            for i in range(n):
                y_new[i] += K[j, i] * b
    h_real = REAL(h)
    for i in range(n):
        y_new[i] = y[i] + h_real * y_new[i]
    rhs(handle, t + h, y_new, p, K[N_STAGES], istate)


def error_estimates(K, i):
    """Component ``i`` of scipy's ``K.T @ E5`` and ``K.T @ E3`` (stages in order)."""
    e5 = ZERO
    e3 = ZERO
    for j in range(N_STAGES + 1):
        k = K[j, i]
        if E5[j] != ZERO:
            e5 += k * E5[j]
        if E3[j] != ZERO:
            e3 += k * E3[j]
    return e5, e3


def error_norm(K, h, y, y_new, rtol, atol, n):
    """scipy's ``DOP853._estimate_error_norm`` with ``scale = atol + max(|y|, |y_new|) rtol``."""
    err5_ss = ZERO
    err3_ss = ZERO
    for i in range(n):
        scale = atol[i] + np_maximum(abs(y[i]), abs(y_new[i])) * rtol[i]
        e5, e3 = error_estimates(K, i)
        e5 = e5 / scale
        e3 = e3 / scale
        err5_ss += e5 * e5
        err3_ss += e3 * e3
    # scipy squares linalg.norm, i.e. sqrt(ss) ** 2; keep its rounding.
    err5_norm_2 = math.sqrt(err5_ss) ** 2
    err3_norm_2 = math.sqrt(err3_ss) ** 2
    if err5_norm_2 == ZERO and err3_norm_2 == ZERO:
        return ZERO
    denom = err5_norm_2 + ERR3_WEIGHT * err3_norm_2
    return abs(REAL(h)) * err5_norm_2 / math.sqrt(denom * REAL(n))


def error_norm_complex(K, h, y, y_new, rtol, atol, n, m):
    """:func:`error_norm` of a complex state of ``m`` components: the scale from the
    complex magnitudes, squares summed over real parts, then imaginary parts."""
    e5_re = ZERO
    e5_im = ZERO
    e3_re = ZERO
    e3_im = ZERO
    for i in range(n):
        c = i
        if i >= m:
            c = i - m
        scale = atol[c] + np_maximum(math.hypot(y[c], y[c + m]),
                                     math.hypot(y_new[c], y_new[c + m])) * rtol[c]
        e5, e3 = error_estimates(K, i)
        e5 = e5 / scale
        e3 = e3 / scale
        if i < m:
            e5_re += e5 * e5
            e3_re += e3 * e3
        else:
            e5_im += e5 * e5
            e3_im += e3 * e3
    err5_norm_2 = math.sqrt(e5_re + e5_im) ** 2
    err3_norm_2 = math.sqrt(e3_re + e3_im) ** 2
    if err5_norm_2 == ZERO and err3_norm_2 == ZERO:
        return ZERO
    denom = err5_norm_2 + ERR3_WEIGHT * err3_norm_2
    return abs(REAL(h)) * err5_norm_2 / math.sqrt(denom * REAL(m))


def accepted_factor(err, rejected):
    """Step growth after an accepted step with ``err < 1`` (scipy's controller)."""
    if err == 0.0:
        factor = MAX_FACTOR
    else:
        factor = py_min(MAX_FACTOR, SAFETY * err**ERROR_EXPONENT)
    if rejected:
        factor = py_min(1.0, factor)
    return factor


def rejected_factor(err):
    """Step shrink after a rejected step (``err >= 1`` or NaN): at least ``MIN_FACTOR``."""
    return py_max(MIN_FACTOR, SAFETY * err**ERROR_EXPONENT)


def select_initial_step(handle, t0, y0, f0, p, t_bound, max_step, direction, rtol, atol,
                        y1, f1, scale, n, m, istate):
    """scipy's ``select_initial_step`` (Hairer's algorithm); one evaluation.

    ``y1``, ``f1``, ``scale`` are work arrays of length ``n``; ``m``: norm components.
    """
    interval_length = abs(t_bound - t0)
    if interval_length == 0.0:
        return 0.0
    for i in range(m):
        scale[i] = atol[i] + magnitude(y0, i, n, m) * rtol[i]
    d0 = rms_norm_scaled(y0, scale, n, m)
    d1 = rms_norm_scaled(f0, scale, n, m)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = py_min(h0, interval_length)
    h0_real = REAL(h0 * direction)
    for i in range(n):
        y1[i] = y0[i] + h0_real * f0[i]
    rhs(handle, t0 + h0 * direction, y1, p, f1, istate)
    for i in range(n):
        y1[i] = f1[i] - f0[i]
    d2 = rms_norm_scaled(y1, scale, n, m) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = py_max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / py_max(d1, d2)) ** INITIAL_STEP_EXPONENT
    h = py_min(100.0 * h0, h1)
    h = py_min(h, interval_length)
    return py_min(h, max_step)


def dense_coefficients(handle, t_old, y_old, y, f, h, p, K, F, ytmp, n, istate):
    """The 7 interpolant rows ``F`` of the last step; three extra evaluations.

    ``K[0:13]`` must hold the step's stages, ``y_old``/``y`` its ends, ``f = f(t, y)``.
    """
    for s in range(N_STAGES + 1, N_STAGES_EXTENDED):
        ts = stage_state(K, s, t_old, y_old, h, ytmp, n)
        rhs(handle, ts, ytmp, p, K[s], istate)
    h_real = REAL(h)
    for i in range(n):
        f_old = K[0, i]
        delta_y = y[i] - y_old[i]
        F[0, i] = delta_y
        F[1, i] = h_real * f_old - delta_y
        F[2, i] = TWO * delta_y - h_real * (f[i] + f_old)
        for r in range(INTERPOLATOR_POWER - END_ROWS):  # scipy: F[3:] = h * D @ K
            acc = ZERO
            for j in range(N_STAGES_EXTENDED):
                acc += D[r * N_STAGES_EXTENDED + j] * K[j, i]
            F[END_ROWS + r, i] = h_real * acc


def dense_eval(F, y_old, t_old, h, t, out, n):
    """Evaluate the step's interpolant at ``t`` into ``out`` (scipy's Horner order)."""
    x = REAL((t - t_old) / h)
    for i in range(n):
        v = ZERO
        for r in range(INTERPOLATOR_POWER):
            v += F[INTERPOLATOR_POWER - 1 - r, i]
            if r % 2 == 0:
                v *= x
            else:
                v *= ONE - x
        out[i] = v + y_old[i]


def all_finite(x, n):
    for i in range(n):
        if not math.isfinite(x[i]):
            return False
    return True


def dop853_step(handle, y, f, p, rtol, atol, t_bound, max_step, direction,
                fstate, istate, K, y_new, ytmp, n, m):
    """Attempt steps until one is accepted or the step size gets too small.

    scipy's ``RungeKutta._step_impl``. On success ``y_new``, ``K[12] = f(t_new, y_new)``
    hold the new point, ``fstate[t_new]`` its time, ``y``/``f``/``fstate[t]`` still the old
    one; returns the step ``h = t_new - t`` (signed). On failure sets the status and
    returns 0.
    """
    t = fstate[FS_T]
    min_step = 10.0 * step_toward(t, direction)
    h_abs = fstate[FS_H_ABS]
    if h_abs > max_step:
        h_abs = max_step
    elif h_abs < min_step:
        h_abs = min_step
    if h_abs != h_abs:
        # NaN from the initial step selection: a component with atol = 0 that is 0 at
        # t0 has a zero scale, and 0/0 in the norm. scipy then loops for ever, since no
        # comparison with NaN ends its loop; this problem ends instead.
        istate[IS_STATUS] = STATUS_NAN_STEP
        return 0.0
    rejected = False
    while True:
        if h_abs < min_step:
            if istate[IS_NONFINITE] != 0:
                istate[IS_STATUS] = STATUS_NONFINITE
            else:
                istate[IS_STATUS] = STATUS_STEP_TOO_SMALL
            return 0.0
        h = h_abs * direction
        t_new = t + h
        if direction * (t_new - t_bound) > 0.0:
            t_new = t_bound
        h = t_new - t
        h_abs = abs(h)
        if h_abs == math.inf:
            # t_new is infinite (tf = inf and the step grew past the largest float):
            # scipy rejects the step, and an infinite step times any factor stays
            # infinite, so it loops for ever; this problem ends instead.
            istate[IS_STATUS] = STATUS_INFINITE_STEP
            return 0.0
        rk_step(handle, t, y, f, h, p, K, y_new, ytmp, n, istate)
        istate[IS_NFEV] += N_STAGES
        if INDEX_CHECKS and istate[IS_STATUS] != STATUS_RUNNING:
            return 0.0  # an index checked at run time was out of range (STATUS_INDEX)
        if COMPLEX_STATE:
            err = error_norm_complex(K, h, y, y_new, rtol, atol, n, m)
        else:
            err = error_norm(K, h, y, y_new, rtol, atol, m)
        if err < 1.0:
            h_abs *= accepted_factor(err, rejected)
            fstate[FS_H_ABS] = h_abs
            fstate[FS_T_NEW] = t_new
            istate[IS_NONFINITE] = 0
            return h
        istate[IS_NONFINITE] = 0 if math.isfinite(err) else 1
        h_abs *= rejected_factor(err)
        rejected = True
        istate[IS_NREJECT] += 1
