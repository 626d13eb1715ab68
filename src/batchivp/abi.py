"""The compiled kernel's arguments, described once.

:data:`ARGUMENTS` lists the kernel's arguments in order, each with its dtype, its core
dimensions and its role. Everything that depends on that list is derived from it here,
in the way numba-cuda's vectorizers derive theirs from one ``indims``/``outdims``
description [1]_:

- the ``guvectorize`` signature and layout of the cpu, parallel and cuda kernels
  (:func:`gufunc_signature`, :func:`gufunc_layout`), and the parameter list of the
  template's entry point (:func:`parameters`), which passes the arguments on to
  ``core/driver.py``'s ``dop853_advance`` in this order;
- the types ``numba.cuda.compile_ptx`` compiles the entry point for (:func:`ptx_types`);
- the named records the host fills and reads (:class:`Inputs`, :class:`State`), their
  allocation (:func:`new_state`) and size (:func:`state_bytes`).

Roles: an ``input`` is read only; ``state`` is the resumable state of a problem,
updated in place by each call (numba cannot size output-only core dimensions,
numba/numba#2797, so the host allocates it; docs/architecture.md, point 5); the
``output`` is the gufunc's result (the state ``y`` at ``t``), passed in as well and
updated in place. The host passes exact-dtype contiguous arrays (device arrays on
cuda), so the kernel writes into the caller's memory. A batch without events passes
event arrays of one slot (``e = 1``), one without a step record record arrays of one
row (``r = 1``), one without dense output an interpolant array of one row (``q = 1``),
one that keeps only summaries a ``yout`` of one column (``o = 1``), one without
summaries a ``summary`` of one row and column (``v = u = 1``).

A new state argument is one row of :data:`ARGUMENTS` (and a size in
:func:`core_sizes` for a new dimension letter) plus its use in ``dop853_advance``,
whose parameters start with these names in this order; a new input also needs its
value where the host fills :class:`Inputs` (``batch._pack``, ``ivp._Problem._run``).
``dop853_advance`` may take :data:`MAX_CALL_ARGUMENTS` in all (checked below).

The configuration vectors ``tcfg`` (floats) and ``icfg`` (integers) are packed by
:func:`pack_config` from the core's field indices (``core/dop853.py``).

References
----------
.. [1] numba-cuda, ``numba/cuda/vectorizers.py`` and ``deviceufunc.py``
       (``GUFuncEngine``: argument lists and indexing from the layout).
"""

import collections
import textwrap
from typing import NamedTuple

import numpy as np

from .core import coefficients
from .core import dop853 as core
from .core import events as core_events
from .core import summaries as core_summaries
from .status import Status

INPUT, STATE, OUTPUT = "input", "state", "output"
# Steps without a limit: max_steps and chunk_steps when none is given. An int64 that a
# step count never reaches, with room to add to it.
UNLIMITED_STEPS = 2**62
# numba's CUDA inliner cannot inline a call of more than this many arguments: CPython
# compiles a longer call to CALL_FUNCTION_EX (STACK_USE_GUIDELINE in its compiler),
# "Calling a closure with *args is unsupported" (numba/numba#6894). The entry point
# calls dop853_advance with the kernel's arguments and the work arrays.
MAX_CALL_ARGUMENTS = 30


# What a float array holds, which decides its dtype in each precision (Precision):
# the state and what is made of it (REAL), the stages and the interpolant (STAGE), or
# time and everything else (FIXED: the table's dtype in every precision).
REAL, STAGE, FIXED = "real", "stage", "fixed"


class Precision(NamedTuple):
    """The dtypes of a kernel: ``solve_batch``'s ``dtype`` (docs/architecture.md,
    "Precision"). ``real``: the state (``y0``, ``y``, the outputs), the parameters,
    the tolerances, the stage sums, the interpolant's evaluation and the error norm;
    ``stage``: the stages ``K``, the interpolant ``F`` and the derivative ``f`` are
    stored in it. Time, step sizes, the step-size control, event values and roots are
    float64 in every precision. ``tag`` names a module of this precision (none for
    float64, whose modules keep their names)."""

    name: str
    real: str
    stage: str
    tag: str

    def dtype(self, holds, fixed):
        """The dtype name of an array that ``holds`` REAL, STAGE or FIXED (then ``fixed``)."""
        return {REAL: self.real, STAGE: self.stage}.get(holds, fixed)


FLOAT64 = Precision("float64", "float64", "float64", "")
FLOAT32 = Precision("float32", "float32", "float32", "f32")
MIXED = Precision("mixed", "float64", "float32", "mixed")
PRECISIONS = {p.name: p for p in (FLOAT64, FLOAT32, MIXED)}


class Argument(NamedTuple):
    name: str
    dtype: str  # a numpy/numba dtype name, in the float64 precision
    dims: tuple  # core dimension letters (sizes: core_sizes)
    role: str  # INPUT, STATE or OUTPUT
    fill: float = 0.0  # a fresh state's value (state and output only)
    holds: str = FIXED  # REAL, STAGE or FIXED: its dtype in other precisions

    def dtype_in(self, precision):
        """This argument's dtype name in ``precision`` (:class:`Precision`)."""
        return precision.dtype(self.holds, self.dtype)


ARGUMENTS = (
    Argument("y0", "float64", ("n",), INPUT, holds=REAL),
    Argument("p", "float64", ("m",), INPUT, holds=REAL),
    Argument("rtol", "float64", ("n",), INPUT, holds=REAL),
    Argument("atol", "float64", ("n",), INPUT, holds=REAL),
    Argument("tcfg", "float64", ("c",), INPUT),
    Argument("t_eval", "float64", ("k",), INPUT),
    Argument("icfg", "int64", ("i",), INPUT),
    Argument("ecfg", "int64", ("e", "d"), INPUT),
    Argument("fstate", "float64", ("s",), STATE),
    Argument("istate", "int64", ("j",), STATE),  # status: STATUS_PENDING (new_state)
    Argument("f", "float64", ("n",), STATE, np.nan, STAGE),  # a copy of the last stage
    Argument("yout", "float64", ("n", "o"), STATE, np.nan, REAL),
    Argument("g", "float64", ("e",), STATE, np.nan),
    Argument("n_events", "int64", ("e",), STATE),
    Argument("t_events", "float64", ("e", "b"), STATE, np.nan),
    Argument("y_events", "float64", ("e", "b", "n"), STATE, np.nan, REAL),
    Argument("rec_t", "float64", ("r",), STATE, np.nan),
    Argument("rec_y", "float64", ("r", "n"), STATE, np.nan, REAL),
    Argument("rec_F", "float64", ("q", "w", "n"), STATE, 0.0, STAGE),
    Argument("summary", "float64", ("v", "u"), STATE, np.nan),
    Argument("y", "float64", ("n",), OUTPUT, np.nan, REAL),
)

# Work arrays of compile-time shape, allocated by the entry point on every target
# (local arrays on cuda) and passed to dop853_advance after the kernel's arguments:
# (name, shape in the generated module's constants, dtype in the float64 precision,
# what it holds: REAL, STAGE or FIXED as for ARGUMENTS, what it is for).
WORK_ARRAYS = (
    ("K", "(N_STAGES_EXTENDED, NDIM)", "float64", STAGE, "the stages"),
    ("F", "(INTERPOLATOR_POWER, NDIM)", "float64", STAGE, "the step's interpolant"),
    ("W", "(3, NDIM)", "float64", REAL, "y_new, y_old, ytmp"),
    ("G", "(2, EVENT_WORK)", "float64", FIXED, "event values at the step's end, roots"),
    ("active", "EVENT_WORK", "int64", FIXED, "events active in the step"),
)
# The generated module's constants dop853_advance gets last.
MODULE_CONSTANTS = ("NDIM", "NORM_DIM", "NEVENTS", "RECORDING")


class Norm(NamedTuple):
    """What scipy's norms see of a state of ``n`` components (a module's ``NORM_DIM`` and
    ``COMPLEX_STATE``, core/dop853.py): ``dim`` complex components stored as real parts
    then imaginary parts (``complex``, ``n = 2 dim``), or the first ``dim`` real ones
    (``dim = n``, or the state without the sensitivities that follow it)."""

    dim: int
    complex: bool = False

KERNEL_ARGUMENTS = tuple(a.name for a in ARGUMENTS)
_STATE_ARRAYS = {p: tuple((a.dims, np.dtype(a.dtype_in(p)), a.fill)
                          for a in ARGUMENTS if a.role != INPUT)
                 for p in PRECISIONS.values()}
_PENDING = int(Status.PENDING)
Inputs = collections.namedtuple("Inputs", [a.name for a in ARGUMENTS if a.role == INPUT])
State = collections.namedtuple("State", [a.name for a in ARGUMENTS if a.role != INPUT])
Inputs.__doc__ = "The kernel's inputs of a batch, ``(N, ...)`` host arrays (abi.ARGUMENTS)."
State.__doc__ = ("The resumable state and output of a batch, ``(N, ...)`` host arrays "
                 "updated in place by the kernel (abi.ARGUMENTS).")


def kernel_arguments(inputs, state):
    """The kernel's arguments in :data:`ARGUMENTS` order from ``inputs``
    (:class:`Inputs`) and ``state`` (:class:`State`): arrays, rows or device arrays.
    The table lists inputs, then state, then the output (checked at import), the
    records' own orders."""
    return (*inputs, *state)


def _array_type(arg, precision):
    return f"{arg.dtype_in(precision)}[{', '.join(':' for _ in arg.dims)}]"


def _dims(args):
    return ",".join(f"({','.join(a.dims)})" for a in args)


def gufunc_signature(precision=FLOAT64):
    """The ``guvectorize`` type signature in ``precision``, as source text."""
    return f'"void({", ".join(_array_type(a, precision) for a in ARGUMENTS)})"'


def gufunc_layout():
    """The ``guvectorize`` layout: the inputs' and state's core dimensions, then the
    output's."""
    return (_dims([a for a in ARGUMENTS if a.role != OUTPUT]) + "->"
            + _dims([a for a in ARGUMENTS if a.role == OUTPUT]))


def parameters(indent):
    """The entry point's parameter list, as source text wrapped after ``indent`` columns."""
    return _wrapped(KERNEL_ARGUMENTS, indent)


def advance_arguments(indent):
    """The arguments the entry point passes on to dop853_advance, as :func:`parameters`."""
    return _wrapped(KERNEL_ARGUMENTS + tuple(w[0] for w in WORK_ARRAYS) + MODULE_CONSTANTS,
                    indent)


def _wrapped(names, indent):
    pad = " " * indent
    return textwrap.fill(", ".join(names), width=88, initial_indent=pad, subsequent_indent=pad,
                         break_long_words=False, break_on_hyphens=False)[indent:]


def ptx_types(precision=FLOAT64):
    """numba types of the arguments of the per-problem entry point (C-contiguous rows)
    in ``precision``, for ``numba.cuda.compile_ptx``."""
    from numba import types as nt

    def array(arg):
        index = (slice(None),) * (len(arg.dims) - 1) + (slice(None, None, 1),)
        dtype = getattr(nt, arg.dtype_in(precision))
        return dtype[index if len(index) > 1 else index[0]]  # [::1] is "C"

    return tuple(array(a) for a in ARGUMENTS)


def core_sizes(ndim, n_params=1, n_eval=1, n_slots=1, n_stored=1, n_rows=1, n_interpolants=1,
               save_y=True, n_summarized=0, n_observables=0):
    """The size of each core dimension letter. ``n_params``, ``n_eval``, ``n_slots``,
    ``n_stored``, ``n_rows``, ``n_interpolants``: ``m``, ``k`` (t_eval points), ``e``
    (event slots), ``b`` (occurrences stored per event), ``r`` (step record rows), ``q``
    (interpolants stored: ``r`` with dense output, else 1). ``save_y``: ``yout`` holds
    the ``k`` points (``o = k``), else one column. ``n_summarized``: the variables
    summarized (``v``: the state's components and the observables; 0 for none), of
    which ``n_observables`` observables (their handles lengthen ``icfg``)."""
    return dict(n=ndim, m=n_params, c=core.TCFG_SIZE, k=n_eval,
                i=core.ICFG_SIZE + n_observables, e=n_slots, d=core_events.ECFG_SIZE,
                s=core.FSTATE_SIZE, j=core.ISTATE_SIZE, b=n_stored, r=n_rows, q=n_interpolants,
                w=coefficients.INTERPOLATOR_POWER, o=n_eval if save_y else 1,
                v=max(n_summarized, 1),
                u=core_summaries.SUMMARY_SLOTS if n_summarized else 1)


def new_state(n_prob, sizes, precision=FLOAT64):
    """The :class:`State` of a fresh batch of ``n_prob`` problems (``sizes``:
    :func:`core_sizes`) in ``precision``: every problem pending, outputs NaN."""
    arrays = []
    size_of = sizes.__getitem__
    for dims, dtype, fill in _STATE_ARRAYS[precision]:  # solve_ivp makes one a call: kept quick
        shape = (n_prob, *map(size_of, dims))
        if fill == 0:
            arrays.append(np.zeros(shape, dtype))
        else:
            arrays.append(np.empty(shape, dtype))
            arrays[-1].fill(fill)
    state = State._make(arrays)
    state.istate[:, core.IS_STATUS] = _PENDING
    return state


def contiguous_rows(inputs):
    """``inputs`` (:class:`Inputs`) with each problem's row of ``p`` contiguous: the one
    input a user function gets (with the state's ``y`` and ``f`` and the kernel's work
    rows, contiguous by construction), which a linked kernel hands on as a pointer and
    a length (``linking.py``). Copies only a ``p`` whose rows are strided; broadcast
    rows (stride 0 between problems) are kept."""
    p = inputs.p
    if p.ndim < 2 or len(p) == 0 or p[0].flags.c_contiguous:
        return inputs
    return inputs._replace(p=np.ascontiguousarray(p))


def state_bytes(n_prob, sizes, names=None, precision=FLOAT64):
    """Bytes of :func:`new_state`'s arrays, or of those among them in ``names``."""
    return n_prob * sum(np.dtype(a.dtype_in(precision)).itemsize * int(np.prod([sizes[d] for d in a.dims]))
                        for a in ARGUMENTS
                        if a.role != INPUT and (names is None or a.name in names))


# Field name -> index of tcfg and icfg, from the core's constants (core/dop853.py).
TCFG_FIELDS = dict(t0=core.TC_T0, tf=core.TC_TF, first_step=core.TC_FIRST_STEP,
                   max_step=core.TC_MAX_STEP)
ICFG_FIELDS = dict(handle=core.IC_HANDLE, n_eval=core.IC_N_EVAL, max_steps=core.IC_MAX_STEPS,
                   chunk_steps=core.IC_CHUNK_STEPS, event_buffer=core.IC_EVENT_BUFFER,
                   record=core.IC_RECORD, record_rows=core.IC_RECORD_ROWS,
                   event_rule=core.IC_EVENT_RULE, n_events=core.IC_N_EVENTS,
                   save_y=core.IC_SAVE_Y, summarize=core.IC_SUMMARIZE,
                   n_observables=core.IC_N_OBSERVABLES)
# Fields a caller without summaries need not give: t_eval points stored, none summarized.
_OUTPUT_DEFAULTS = dict(save_y=1, summarize=0)

_CONFIG_FIELDS = frozenset(TCFG_FIELDS) | frozenset(ICFG_FIELDS)


def pack_config(n_prob, observables=(), **values):
    """``(tcfg, icfg)`` of ``n_prob`` problems, ``(N, TCFG_SIZE)`` floats and ``(N,
    ICFG_SIZE + len(observables))`` int64, from every field of :data:`TCFG_FIELDS` and
    :data:`ICFG_FIELDS` by name (``save_y`` and ``summarize`` optional: stored, not
    summarized), each a scalar or an ``(N,)`` array; ``observables``: the summarized
    observables' handles (core/summaries.py), after the fields."""
    values = {**_OUTPUT_DEFAULTS, **values, "n_observables": len(observables)}
    if values.keys() != _CONFIG_FIELDS:
        raise TypeError("pack_config: fields missing or unknown: "
                        f"{sorted(_CONFIG_FIELDS ^ values.keys())}")
    tcfg = np.empty((n_prob, core.TCFG_SIZE))
    icfg = np.empty((n_prob, core.ICFG_SIZE + len(observables)), dtype=np.int64)
    icfg[:, core.ICFG_SIZE:] = np.asarray(observables, dtype=np.int64)
    for fields, packed in ((TCFG_FIELDS, tcfg), (ICFG_FIELDS, icfg)):
        # Scalars into one row, copied to every problem: solve_ivp packs one a call.
        row, columns = np.empty(len(fields), packed.dtype), []
        for name, index in fields.items():
            value = values[name]
            if isinstance(value, (int, float, np.number)):
                row[index] = value
            else:
                columns.append((index, value))
        packed[:, :len(fields)] = row
        for index, value in columns:
            packed[:, index] = value
    return tcfg, icfg


def _check_tables():
    """Each configuration field has one index and every index a field; the arguments
    are in role order; the entry point's call of dop853_advance stays inlinable on cuda."""
    for fields, size in ((TCFG_FIELDS, core.TCFG_SIZE), (ICFG_FIELDS, core.ICFG_SIZE)):
        if sorted(fields.values()) != list(range(size)):
            raise RuntimeError(f"abi: configuration fields {fields} do not cover 0..{size - 1}")
    roles = [a.role for a in ARGUMENTS]
    if roles != sorted(roles, key=(INPUT, STATE, OUTPUT).index) or roles.count(OUTPUT) != 1:
        raise RuntimeError("abi: list the inputs, then the state, then the one output (the "
                           "host passes Inputs then State; guvectorize takes outputs last)")
    n_call = len(ARGUMENTS) + len(WORK_ARRAYS) + len(MODULE_CONSTANTS)
    if n_call > MAX_CALL_ARGUMENTS:
        raise RuntimeError(f"abi: dop853_advance would take {n_call} arguments, more than "
                           f"numba's CUDA inliner takes ({MAX_CALL_ARGUMENTS}); bundle work "
                           "arrays (as W) to make room")


_check_tables()
