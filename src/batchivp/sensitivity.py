"""Forward sensitivities: how the solution depends on ``y0`` and ``params``.

Each column ``s = dy/dθ`` of the sensitivity matrix obeys the variational equation
``s' = J s + ∂f/∂θ`` [1]_, with ``s(t0) = e_j`` for ``θ = y0[j]`` and ``s(t0) = 0`` for
``θ = p[k]``. batchivp integrates the ``C`` columns with the state as one system of
``n (1 + C)`` components, laid out as

- ``y = [y (n), s_0 (n), ..., s_{C-1} (n)]``: the state, then the columns;
- ``p = [p (m), d_0 (m), ..., d_{C-1} (m)]``: the parameters, then each column's
  direction in parameter space (``e_k`` for parameter ``k``, zero for ``y0`` columns).

Its right-hand side (:func:`augmented`) calls, per column, the tangent of the user's
function (:mod:`batchivp.tangent`, generated from its source) with the column as the
direction of ``y`` and ``d_c`` as the direction of ``p``: ``J s + ∂f/∂p d_c``; then the
user's function itself, so the state's derivative is bitwise the plain one. The error
norm sees the state only (``abi.Norm(n)``), unless ``sensitivity_error`` (CVODES's
``errconS``): the state takes the steps it takes alone, and the columns get the
interpolant, ``t_eval`` and event records of the same steps.

An event's time moves with θ: ``dt*/dθ = -(∂g/∂y s + ∂g/∂p d) / (∂g/∂t + ∂g/∂y f)``
at its root [2]_, formed on the host from the recorded columns
(:func:`event_time_sensitivities`); a terminal event adds ``f dt*/dθ`` to the final
state's columns (the problem ends at the moving root).

References
----------
.. [1] E. Hairer, S. P. Norsett, G. Wanner, "Solving Ordinary Differential Equations I",
       2nd ed., Sec. I.14 (the derivative with respect to initial values and parameters).
.. [2] A. C. Hindmarsh et al., "SUNDIALS", ACM TOMS 31 (2005), and the CVODES guide,
       Sec. "Forward sensitivity analysis" (sensitivities of event times).
"""

import ast
import functools
import importlib
import math
from dataclasses import dataclass

import numpy as np

from . import abi
from .plain import build_plugin, called_name
from .registry import EventFunction, RhsFunction
from .source import SIGNATURES, Helper, def_source, record_of
from .status import Status
from .tangent import Undifferentiable, tangent_name, tangent_program

MODES = ("y0", "params", "all")


@dataclass(frozen=True)
class Columns:
    """The sensitivity columns of a batch: ``n`` state components, ``m`` parameters,
    one column per ``y0`` component (``y0``) and per parameter (``params``)."""

    n: int
    m: int
    y0: bool
    params: bool

    @classmethod
    def of(cls, sensitivity, n, m, has_params):
        """The columns ``solve_batch(sensitivity=...)`` asks for, or the ``ValueError``
        naming the argument."""
        if sensitivity not in MODES:
            raise ValueError(f"sensitivity={sensitivity!r}: expected None or one of "
                             f"{', '.join(map(repr, MODES))}")
        if sensitivity == "params" and not has_params:
            raise ValueError("sensitivity='params' needs params: pass the parameter vector "
                             "(or sensitivity='y0')")
        return cls(n, m, sensitivity in ("y0", "all"), sensitivity in ("params", "all")
                   and has_params)

    @property
    def n_y0(self):
        return self.n if self.y0 else 0

    @property
    def count(self):
        """C, the number of columns."""
        return self.n_y0 + (self.m if self.params else 0)

    @property
    def ndim(self):
        """Components of the integrated system."""
        return self.n * (1 + self.count)

    def initial(self, y0, p):
        """``(y0, p)`` of the integrated system from the user's ``(N, n)``, ``(N, m)``."""
        n_prob, n, m, c = y0.shape[0], self.n, self.m, self.count
        y = np.zeros((n_prob, n * (1 + c)))
        y[:, :n] = y0
        d = np.zeros((n_prob, m * (1 + c)))
        d[:, :m] = p
        for j in range(self.n_y0):
            y[:, n + j * n + j] = 1.0
        if self.params:
            for k in range(m):
                d[:, m + (self.n_y0 + k) * m + k] = 1.0
        return y, d

    def split(self, x):
        """``(state, d/dy0, d/dp)`` of ``x`` whose axis 1 holds the system's components:
        ``x[:, :n]`` and the columns as ``(N, n, n, ...)`` and ``(N, n, m, ...)`` (None
        where not asked for): entry ``[:, i, j]`` is ``d x_i / d θ_j``."""
        n, rest = self.n, x.shape[2:]
        cols = x[:, n:].reshape((x.shape[0], self.count, n) + rest)
        cols = np.moveaxis(cols, 1, 2)
        return (x[:, :n], cols[:, :, :self.n_y0] if self.y0 else None,
                cols[:, :, self.n_y0:] if self.params else None)


class SensitivityRhs(RhsFunction):
    """The right-hand side of a state and its sensitivity columns (:func:`augmented`).
    Pickles as its recipe, so it reaches Dask workers."""

    def __init__(self, plugin, py_func, recipe):
        super().__init__(plugin, py_func)
        self._recipe = recipe

    def __reduce__(self):
        return (augmented, self._recipe)


class SensitivityEvent(EventFunction):
    """An event function seeing the state of a system with sensitivities
    (:func:`state_event`); ``terminal`` and ``direction`` its own."""

    def __init__(self, plugin, py_func, recipe):
        super().__init__(plugin, py_func)
        self._recipe = recipe

    def __reduce__(self):
        return (_state_event_again, (self._recipe, self.terminal, self.direction))


def _state_event_again(recipe, terminal, direction):
    return state_event(*recipe).with_options(terminal, direction)


def augmented(fun, n, m, count):
    """The right-hand side ``rhs(t, y, p, dydt)`` of ``fun``'s state (``n``) and
    ``count`` sensitivity columns, laid out as the module docstring says. Raises
    ``ValueError`` naming the line of ``fun`` that cannot be differentiated."""
    return _augmented(fun.current(), n, m, count)


@functools.lru_cache(maxsize=256)
def _augmented(fun, n, m, count):
    record = record_of(fun)
    entry, tangents = _tangents(record)
    # One call per column, on constant slices: the index analysis (batchivp.bounds) then
    # proves every subscript of the tangents in range, and the user's function sees
    # arrays of its own lengths (len(y), y[-1]).
    state = f"y[:{n}], p[:{m}], dydt[:{n}]"
    lines = [f"{tangent_name(entry)}(t, 0.0, y[:{n}], y[{a}:{a + n}], p[:{m}], "
             f"p[{b}:{b + m}], dydt[:{n}], dydt[{a}:{a + n}])"
             for a, b in ((n * (1 + c), m * (1 + c)) for c in range(count))]
    lines.append(f"{entry}(t, {state})")  # last: the state's derivative is the plain one
    source = def_source("sensitivity_rhs", "rhs", lines)
    helpers = _with_original(record, entry)
    helpers += [Helper(name, name, text, globals_) for name, text, globals_ in tangents]
    return build_plugin(SensitivityRhs, "sensitivity_rhs", source, helpers,
                   _python(helpers, source, "sensitivity_rhs"),
                   f"sensitivities of {record.display}", recipe=(fun, n, m, count))


def state_event(event, n, m):
    """``event`` as a system with sensitivities runs it: on the first ``n`` components of
    ``y`` and the first ``m`` of ``p`` (constant slices), so that it sees arrays of its
    own lengths."""
    return _state_event(event.current(), n, m).with_options(event.terminal, event.direction)


@functools.lru_cache(maxsize=256)
def _state_event(event, n, m):
    record = record_of(event)
    entry = called_name(record)
    source = def_source("state_event", "event", [f"return {entry}(t, y[:{n}], p[:{m}])"])
    helpers = _with_original(record, entry)
    return build_plugin(SensitivityEvent, "state_event", source, helpers,
                   _python(helpers, source, "state_event"), record.origin,
                   recipe=(event, n, m))


def _with_original(record, entry):
    """The helpers of a plugin calling ``record``'s function as ``entry``."""
    return list(record.helpers) + [Helper(record.name, entry, record.source, record.globals_)]


def _python(helpers, source, name):
    """The Python function ``name`` of ``source`` calling ``helpers`` (what calling the
    plugin runs)."""
    space = {"math": math, **python_functions(helpers)}
    exec(compile(source, f"<{name}>", "exec"), space)
    return space[name]


def _tangents(record):
    """``(entry, [(tangent name, source, globals), ...])``: the tangent program of
    ``record`` (called as ``entry``) and of every helper it calls."""
    entry = called_name(record)
    functions = {entry: record.source, **{h.rendered_name: h.source for h in record.helpers}}
    globals_of = {entry: record.globals_, **{h.rendered_name: h.globals_ for h in record.helpers}}
    # The user's own names for the array parameters (``def f(t, x, k, dx)``), by position.
    own = [a.arg for a in ast.parse(record.source).body[0].args.args]
    arrays = frozenset(own[i] for i, param in enumerate(SIGNATURES[record.kind].parameters)
                       if param.length is not None)
    modules = {"math": "math", "np": "numpy", "numpy": "numpy"}
    for globals_ in globals_of.values():
        modules.update({name: value for name, (kind, value) in globals_.items()
                        if kind == "module"})
    try:
        program = tangent_program(functions, entry, arrays, modules)
    except Undifferentiable as exc:
        raise ValueError(_undifferentiable_message(exc, record, entry)) from None
    return entry, [(tangent_name(key), text, globals_of[key]) for key, text in program.items()]


def check_differentiable(fun):
    """Generate ``fun``'s tangent program (cached), or raise the ``ValueError`` naming the
    line that cannot be differentiated and why."""
    if isinstance(fun, EventFunction):
        event_tangent(fun)
    else:
        _tangents(record_of(fun.current()))


def _undifferentiable_message(exc, record, entry):
    """The error for a line that cannot be differentiated: in the user's function, at its
    file and line; in a function it calls (a helper, a force), named by that function."""
    where = record.origin
    if exc.function != entry:
        callee = next(h.name for h in record.helpers if h.rendered_name == exc.function)
        where = f"in {callee!r}, which it calls"
    elif record.def_line is not None and ":" in record.origin:
        where = f"{record.origin.rsplit(':', 1)[0]}:{record.def_line + exc.line - 1}"
    return (f"sensitivity: {record.display!r} cannot be differentiated ({where}): line "
            f"`{exc.text.strip()}`: {exc.reason}")


def python_functions(helpers):
    """The ``helpers`` as Python functions, by rendered name, each with its own globals
    and calling the others: the code the kernel runs, run as Python."""
    table, spaces = {}, []
    for h in helpers:
        space = {"math": math, "np": np}
        for gname, (kind, value) in h.globals_.items():
            space[gname] = (importlib.import_module(value) if kind == "module"
                            else eval(value, {"np": np, "math": math}))
        exec(compile(h.source, f"<{h.rendered_name}>", "exec"), space)
        table[h.rendered_name] = space[h.name]
        spaces.append(space)
    for space in spaces:
        space.update(table)
    return table


def event_tangent(event):
    """``tangent(t, d_t, y, d_y, p, d_p) -> (g, d_g)`` of an event function, as Python
    (:func:`batchivp.tangent.tangent_program`'s convention)."""
    return _event_tangent(record_of(event.current()))


@functools.lru_cache(maxsize=256)
def _event_tangent(record):
    entry, tangents = _tangents(record)
    helpers = _with_original(record, entry) + [Helper(name, name, text, globals_)
                                               for name, text, globals_ in tangents]
    return python_functions(helpers)[tangent_name(entry)]


@dataclass(frozen=True)
class Solved:
    """What the host forms the sensitivities from, besides the system's arrays: the
    columns, per problem the right-hand side as given (``funs``), the events as given
    with their ``terminal`` counts, and per problem its status, final time and system
    parameters ``p`` ``(N, m (1 + C))``."""

    columns: Columns
    funs: list
    events: list
    terminal: np.ndarray
    status: np.ndarray
    t_final: np.ndarray
    p: np.ndarray


def results(solved, y_final, yout, y_events, t_events, n_events):
    """The sensitivity fields of a :class:`batchivp.BatchResult` and the state's share of
    the system's arrays: ``(fields, y_final, yout, y_events)``."""
    columns = solved.columns
    y_final, dyf_dy0, dyf_dp = columns.split(y_final)
    fields = dict(dyf_dy0=dyf_dy0, dyf_dp=dyf_dp)
    if yout is not None:
        yout, fields["dy_dy0"], fields["dy_dp"] = columns.split(yout)
    if solved.events:
        dt = event_time_sensitivities(solved, t_events, y_events, n_events)
        fields["dt_events_dy0"] = [d[..., :columns.n_y0] for d in dt] if columns.y0 else None
        fields["dt_events_dp"] = [d[..., columns.n_y0:] for d in dt] if columns.params else None
        y_events = [y[..., :columns.n] for y in y_events]
        _terminal_jump(solved, y_final, dyf_dy0, dyf_dp, n_events)
    return fields, y_final, yout, y_events


def _terminal_jump(solved, y_final, dyf_dy0, dyf_dp, n_events):
    """Add ``f dt*/dθ`` to the final columns of the problems a terminal event ended:
    their end is the root, which moves with θ."""
    columns, n_y0 = solved.columns, solved.columns.n_y0
    for i in np.flatnonzero(solved.status == Status.EVENT):
        e = next(e for e, count in enumerate(solved.terminal) if 0 < count <= n_events[i, e])
        system = np.concatenate([y_final[i], _columns_of(dyf_dy0, dyf_dp, i)])
        dt, f = _root_sensitivity(event_tangent(solved.events[e]), solved.funs[i],
                                  solved.t_final[i], system, solved.p[i], columns)
        if columns.y0:
            dyf_dy0[i] += np.outer(f, dt[:n_y0])
        if columns.params:
            dyf_dp[i] += np.outer(f, dt[n_y0:])


def _columns_of(dyf_dy0, dyf_dp, i):
    """Problem ``i``'s columns, flattened as the system holds them."""
    parts = [a[i].T.ravel() for a in (dyf_dy0, dyf_dp) if a is not None]
    return np.concatenate(parts)


def event_time_sensitivities(solved, t_events, y_events, n_events):
    """Per event, ``dt*/dθ`` of each stored occurrence: ``(N, max_events, C)``, NaN
    where none. ``y_events`` hold the system's components (state and columns) at the
    roots. Python, a few tens of microseconds an occurrence."""
    out = []
    for e, event in enumerate(solved.events):
        tangent = event_tangent(event)
        dt = np.full(t_events[e].shape + (solved.columns.count,), np.nan)
        stored = np.minimum(n_events[:, e], t_events[e].shape[1])
        for i in np.flatnonzero(stored):
            for j in range(stored[i]):
                dt[i, j], _ = _root_sensitivity(tangent, solved.funs[i], t_events[e][i, j],
                                                y_events[e][i, j], solved.p[i], solved.columns)
        out.append(dt)
    return out


def _root_sensitivity(tangent, fun, t, y, p, columns):
    """``(dt*/dθ (C,), f (n,))`` at one root ``(t, y)`` of the system's components:
    ``-(∂g/∂y s + ∂g/∂p d) / (∂g/∂t + ∂g/∂y f)``."""
    n, m = columns.n, columns.m
    f = np.empty(n)
    fun.py_func(t, y[:n].copy(), p[:m].copy(), f)
    _, rate = tangent(t, 1.0, y[:n], f, p[:m], np.zeros(m))  # dg/dt along the solution
    d = np.empty(columns.count)
    for k in range(columns.count):
        a, b = n * (1 + k), m * (1 + k)
        _, dg = tangent(t, 0.0, y[:n], y[a:a + n], p[:m], p[b:b + m])
        d[k] = -dg / rate
    return d, f
