"""``solve_batch``'s arguments: one rule per argument, for NumPy and Dask inputs alike.

Each per-problem argument has a shape rule (:data:`SHAPE_RULES`): from the shape
alone it either raises a ``ValueError`` naming the argument, or gives the argument's
canonical shape, whose first axis is 1 (shared by every problem) or ``N`` (one row per
problem). ``solve_batch`` reshapes the value to it and broadcasts it to ``N`` rows;
``dask_batch`` checks Dask arrays with the same rules before anything is computed and
cuts those whose shape already is the per-problem one along the batch axis. The value
checks (finite, positive, sorted) follow in the functions that return the arrays the
kernel gets. Every error names the argument, before anything compiles.
"""

import sys
import warnings

import numpy as np

from . import abi, render
from .core import events as core_events
from .registry import EventFunction, RhsFunction

EPS = np.finfo(float).eps
FLOAT32 = np.finfo(np.float32)
# The smallest rtol of dtype float32 or "mixed", in float32 eps: the stages carry
# float32's relative round-off into every step's error estimate, and a tolerance
# within a few eps of it has the controller chase round-off (shrinking steps, or
# Status.STEP_TOO_SMALL).
FLOAT32_RTOL_EPS = 10
DEFAULT_MAX_EVENTS = 16


# ---- shape rules: shape -> canonical shape (rows 1 or N), or ValueError ----

def y0_shape(shape, n_prob=None, ndim=None):
    """``(N, n)`` from ``y0``'s shape."""
    if len(shape) != 2:
        raise ValueError(f"y0 must have shape (N, n) (one row per problem), got shape {shape}; "
                         "for a single problem pass y0[None, :]")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"y0 must hold at least one problem of at least one component, got shape {shape}")
    return tuple(shape)


def span_shape(shape, n_prob, ndim=None):
    if tuple(shape) == (2,):
        return (1, 2)
    if tuple(shape) != (n_prob, 2):
        raise ValueError(f"t_span must have shape (2,) or ({n_prob}, 2), got {tuple(shape)}")
    return tuple(shape)


def params_shape(shape, n_prob, ndim=None):
    """A scalar, ``(m,)`` shared or ``(1 or N, m)``, ``m > 0``."""
    canonical = {0: (1, 1), 1: (1,) + tuple(shape)}.get(len(shape), tuple(shape))
    if len(canonical) != 2 or canonical[0] not in (1, n_prob) or not canonical[1] > 0:
        raise ValueError(f"params must be a scalar, shape (m,) shared or ({n_prob}, m) per "
                         f"problem, got shape {tuple(shape)}")
    return canonical


def _tolerance_shape(name):
    def rule(shape, n_prob, ndim):
        """A scalar, per component ``(n,)``, per problem ``(N, 1)``, or both ``(N, n)``."""
        shape = tuple(shape)
        if len(shape) == 0:
            return (1, 1)
        if len(shape) == 1:
            if shape[0] != ndim:
                raise ValueError(f"{name} of shape {shape}: a 1-D {name} is per component and "
                                 f"must have length n = {ndim}; per problem use shape ({n_prob}, 1)")
            return (1, ndim)
        if len(shape) != 2 or shape[0] not in (1, n_prob) or shape[1] not in (1, ndim):
            raise ValueError(f"{name} must be a scalar or of shape ({ndim},), ({n_prob}, 1) or "
                             f"({n_prob}, {ndim}), got shape {shape}")
        return shape
    return rule


def _scalar_shape(name):
    def rule(shape, n_prob, ndim=None):
        """A scalar or one value per problem."""
        shape = tuple(shape)
        if shape == ():
            return (1,)
        if shape != (n_prob,):
            raise ValueError(f"{name} must be a scalar or of shape ({n_prob},), got shape {shape}")
        return shape
    return rule


def t_eval_shape(shape, n_prob, ndim=None):
    """``(k,)`` shared or ``(1 or N, k)``, ``k > 0``."""
    canonical = (1,) + tuple(shape) if len(shape) == 1 else tuple(shape)
    if len(canonical) != 2 or canonical[0] not in (1, n_prob) or not canonical[1] > 0:
        raise ValueError(f"t_eval must have shape (k,) shared or ({n_prob}, k) per problem, "
                         f"got shape {tuple(shape)}")
    return canonical


def fun_index_shape(shape, n_prob, ndim=None):
    if len(shape) != 1 or shape[0] not in (1, n_prob):
        raise ValueError(f"fun_index must have shape ({n_prob},), got {tuple(shape)}")
    return tuple(shape)


SHAPE_RULES = dict(y0=y0_shape, t_span=span_shape, params=params_shape, t_eval=t_eval_shape,
                   rtol=_tolerance_shape("rtol"), atol=_tolerance_shape("atol"),
                   first_step=_scalar_shape("first_step"), max_step=_scalar_shape("max_step"),
                   fun_index=fun_index_shape)


def is_per_problem(name, shape, n_prob, ndim):
    """True when an argument of this (valid) shape has one row per problem as it is,
    so it can be cut along the batch axis."""
    return tuple(shape) == SHAPE_RULES[name](shape, n_prob, ndim) and shape[0] == n_prob


# ---- values: the arrays the kernel gets ----

def as_float_array(value, name):
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
    check_float_dtype(arr.dtype, name)
    return np.asarray(arr, dtype=np.float64, order="C")


def check_float_dtype(dtype, name):
    """A real numeric dtype (bool included), else a ``ValueError`` naming ``name``."""
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{name} is complex; solve_batch integrates real systems "
                         "(split real and imaginary parts into separate components)")
    if dtype == object or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {dtype}")


def per_problem(value, name, n_prob, ndim=None):
    """``value`` as float64 of its canonical shape, broadcast to ``N`` rows (a view)."""
    arr = as_float_array(value, name)
    canonical = SHAPE_RULES[name](arr.shape, n_prob, ndim)
    return np.broadcast_to(arr.reshape(canonical), (n_prob,) + canonical[1:])


def check_finite(arr, name):
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{name} holds a non-finite value (NaN or inf) at index {tuple(int(i) for i in where)}")


def params(value, n_prob):
    """``(N, m)``; ``None`` is one unused parameter. NaN or inf would reach every
    evaluation of the problem's functions: refused, naming the problem."""
    p = per_problem(value if value is not None else 0.0, "params", n_prob)
    bad = ~np.isfinite(p[:1] if p.strides[0] == 0 else p)
    if not bad.any():
        return p
    i, j = (int(k) for k in np.argwhere(bad)[0])
    if p.strides[0] == 0 and len(p) > 1:
        where = f"params[{j}] = {float(p[0, j])!r}, shared by every problem"
    else:
        where = f"params[{i}, {j}] = {float(p[i, j])!r} (problem {i})"
    raise ValueError(f"params holds a non-finite value (NaN or inf): {where}; "
                     "parameters must be finite numbers")


def span(value, n_prob):
    """``(N, 2)``: t0 finite, tf not NaN. tf = inf or -inf is legal, as in scipy (a
    terminal event ends the problem; without one it runs until Ctrl-C or its step
    grows to infinity, ``Status.INFINITE_STEP``)."""
    span_ = per_problem(value, "t_span", n_prob)
    bad = ~np.isfinite(span_[:, 0])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"t_span[:, 0] (t0) must be finite, got {float(span_[i, 0])!r} in "
                         f"problem {i}")
    bad = np.isnan(span_[:, 1])
    if bad.any():
        raise ValueError(f"t_span[:, 1] (tf) is NaN in problem {int(np.argmax(bad))} (inf or "
                         "-inf is allowed, with a terminal event to end the integration)")
    return span_


def tolerances(rtol, atol, n_prob, ndim, precision_=abi.FLOAT64):
    """``(N, n)`` each: rtol raised to ``100 * EPS`` with scipy's warning, atol >= 0;
    those ``precision_`` cannot honour refused (:func:`precision_tolerances`)."""
    rtol_a, atol_a = (_tolerance(value, name, n_prob, ndim)
                      for value, name in ((rtol, "rtol"), (atol, "atol")))
    precision_tolerances(rtol_a, atol_a, precision_)
    if np.any(rtol_a < 100 * EPS):
        # stacklevel: the caller of solve_batch (via batch._validate)
        warnings.warn("At least one element of `rtol` is too small. "
                      f"Setting `rtol = np.maximum(rtol, {100 * EPS})`.", stacklevel=4)
        rtol_a = np.maximum(rtol_a, 100 * EPS)
    if np.any(atol_a < 0):
        raise ValueError("atol must be non-negative")
    return rtol_a, atol_a


def precision(dtype):
    """The kernel precision (:class:`abi.Precision`) of ``solve_batch``'s ``dtype``:
    float64 or float32 (any spelling ``numpy.dtype`` takes), or ``"mixed"``."""
    if isinstance(dtype, str) and dtype in abi.PRECISIONS:
        return abi.PRECISIONS[dtype]
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name in ("float64", "float32"):
        return abi.PRECISIONS[name]
    raise ValueError(f"dtype={dtype!r}: expected np.float64 (the default), np.float32 or "
                     "'mixed' (float32 stages, float64 state and error norm)")


def precision_tolerances(rtol, atol, precision_):
    """Refuse tolerances that a float32 precision cannot honour (none for float64): an
    rtol below ``FLOAT32_RTOL_EPS`` float32 eps, a positive atol below float32's smallest
    normal number."""
    if precision_ == abi.FLOAT64:
        return
    floor = FLOAT32_RTOL_EPS * float(FLOAT32.eps)
    if np.any(rtol < floor):
        raise ValueError(
            f"rtol={float(np.min(rtol)):.3g} is below what dtype={precision_.name!r} can "
            f"honour (its stages round at float32's eps, {float(FLOAT32.eps):.3g}): the "
            f"smallest rtol accepted is {floor:.3g} ({FLOAT32_RTOL_EPS} float32 eps). "
            "Pass rtol >= that, or dtype=np.float64")
    if np.any((atol > 0) & (atol < FLOAT32.tiny)):
        raise ValueError(
            f"atol={float(np.min(atol[atol > 0])):.3g} is below float32's smallest normal "
            f"number ({float(FLOAT32.tiny):.3g}), which dtype={precision_.name!r} cannot "
            "hold: pass atol = 0 or at least that, or dtype=np.float64")


def in_precision(arr, name, dtype):
    """``arr`` (a possibly broadcast float64 view) as ``dtype``, still broadcast (only
    its distinct rows and columns are converted); a ``ValueError`` naming ``name`` if a
    value overflows ``dtype``."""
    if arr.dtype == dtype:
        return arr
    distinct = arr[tuple(slice(None) if stride else slice(0, 1) for stride in arr.strides)]
    with np.errstate(over="ignore"):
        converted = distinct.astype(dtype)
    if np.any(np.isfinite(distinct) & ~np.isfinite(converted)):
        raise ValueError(f"{name} holds a value beyond {np.dtype(dtype).name}'s range "
                         f"(largest {float(np.finfo(dtype).max):.3g}): rescale the problem, "
                         "or pass dtype=np.float64")
    return np.broadcast_to(converted, arr.shape)


def _tolerance(value, name, n_prob, ndim):
    """``(N, n)``, without NaN."""
    arr = per_problem(value, name, n_prob, ndim)
    if np.isnan(arr).any():
        raise ValueError(f"{name} holds NaN")
    return np.broadcast_to(arr, (n_prob, ndim))


def steps(first_step, max_step, span_, n_prob):
    """``(first_step, max_step)``, ``(N,)`` each: positive, the first within the span
    (0 where it is None: selected as scipy does)."""
    max_step_a = np.broadcast_to(per_problem(max_step, "max_step", n_prob), (n_prob,))
    if np.any(~(max_step_a > 0)):
        raise ValueError("max_step must be positive")
    if first_step is None:
        return np.zeros(n_prob), max_step_a
    first_a = per_problem(first_step, "first_step", n_prob)
    if np.any(~(first_a > 0)):
        raise ValueError("first_step must be positive")
    length = np.abs(span_[:, 1] - span_[:, 0])
    if np.any(first_a > length):
        bad = int(np.argmax(first_a > length))
        raise ValueError(f"first_step exceeds the span of problem {bad} "
                         f"(|tf - t0| = {float(length[bad])!r})")
    return np.broadcast_to(first_a, (n_prob,)), max_step_a


def positive_int(value, name, default):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def t_eval(value, span_, n_prob):
    """Validated ``t_eval`` as an ``(N, k)`` array and ``k`` (``(N, 1)`` and 0 when None)."""
    if value is None:
        return np.zeros((n_prob, 1)), 0
    arr = as_float_array(value, "t_eval")
    arr = arr.reshape(t_eval_shape(arr.shape, n_prob))
    check_finite(arr, "t_eval")
    t0, tf = span_[:, 0], span_[:, 1]
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
    return np.broadcast_to(arr, (n_prob, arr.shape[1])), arr.shape[1]


def t_eval_out(value):
    """``BatchResult.t``: the ``t_eval`` given, as floats."""
    return np.array(value, dtype=float)


def progress(value):
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {value!r}")
    return bool(value)


def functions(fun, fun_index):
    """The right-hand sides (current versions) and each problem's position in them,
    ``(1,)`` or ``(N,)`` (``fun_index``'s length is checked against ``N`` by its rule).
    The dispatcher handles come from the module once it is loaded (:func:`handles`)."""
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
    return funs, idx


def events(value):
    """The event slots and their kernel configuration ``(max(e, 1), ECFG_SIZE)``.

    A batch without events gets one unused row, so every array keeps a non-zero size.
    """
    if value is None:
        value = ()
    if isinstance(value, EventFunction):
        value = (value,)
    try:
        slots = list(value)
    except TypeError:
        raise TypeError(f"events must be an event function registered with "
                        f"@batchivp.event or a sequence of them, got {value!r}") from None
    for item in slots:
        if not isinstance(item, EventFunction):
            raise TypeError(
                f"events must hold event functions registered with @batchivp.event, got "
                f"{item!r}; decorate it, as in '@batchivp.event(terminal=True) "
                "def hit(t, y, p): return y[0]'")
    slots = [item.current() for item in slots]  # values it reads changed: render anew
    ecfg = np.zeros((max(len(slots), 1), core_events.ECFG_SIZE), dtype=np.int64)
    for e, item in enumerate(slots):
        ecfg[e, core_events.EC_TERMINAL] = item.max_count()
        ecfg[e, core_events.EC_DIRECTION] = np.sign(item.direction)
    return slots, ecfg


def observables(value):
    """The observables to summarize: registered functions ``g(t, y, p) -> float``
    (``@batchivp.observable``, or any event function), as they read their values now."""
    if value is None:
        return []
    if isinstance(value, EventFunction):
        value = (value,)
    try:
        items = list(value)
    except TypeError:
        items = [value]
    for item in items:
        if not isinstance(item, EventFunction):
            raise TypeError(
                f"observables must hold functions registered with @batchivp.observable, "
                f"got {item!r}; decorate it, as in '@batchivp.observable def altitude(t, y, "
                "p): return y[0]'")
    return [item.current() for item in items]


def handles(module, functions, positions, slots, ecfg):
    """``(handles, ecfg)``: each problem's right-hand side handle (``functions`` at
    ``positions``) and ``ecfg`` with each event slot's, as the loaded ``module``
    numbers them: known once it is loaded, so after every check above."""
    fun_handles = np.array(render.handles(module, "rhs", functions), dtype=np.int64)
    ecfg = ecfg.copy()
    if slots:
        ecfg[:len(slots), core_events.EC_HANDLE] = render.handles(module, "event", slots)
    return fun_handles[positions], ecfg


def stored_events(max_events, slots):
    """Occurrences stored per event and problem: ``max_events`` (default 16), or 1 for
    the unused slot of a batch without events."""
    n_stored = positive_int(max_events, "max_events", DEFAULT_MAX_EVENTS)
    return n_stored if slots else 1


def is_dask(value):
    """True for a Dask array (without importing Dask: none exists before it is)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(value, da.Array)


def any_dask(values):
    return any(is_dask(v) for v in values)
