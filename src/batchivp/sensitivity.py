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

import functools
import importlib
import math
from dataclasses import dataclass

import numpy as np

from . import abi
from .plain import _plugin, called_name
from .registry import EventFunction, RhsFunction
from .source import SIGNATURES, Helper, def_source, record_of
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


def augmented(fun, n, m, count):
    """The right-hand side ``rhs(t, y, p, dydt)`` of ``fun``'s state (``n``) and
    ``count`` sensitivity columns, laid out as the module docstring says. Raises
    ``ValueError`` naming the line of ``fun`` that cannot be differentiated."""
    return _augmented(fun.current(), n, m, count)


@functools.lru_cache(maxsize=256)
def _augmented(fun, n, m, count):
    record = record_of(fun)
    entry, tangents = _tangents(record)
    lines = [f"for c in range({count}):",
             f"    o = {n} + c * {n}",
             f"    {tangent_name(entry)}(t, 0.0, y, y, o, p, p, {m} + c * {m}, dydt, dydt, o)",
             # Last, so that the state's derivative is exactly the plain one.
             f"{entry}(t, y, p, dydt)"]
    source = def_source("sensitivity_rhs", "rhs", lines)
    helpers = list(record.helpers) + [Helper(record.name, entry, record.source, record.globals_)]
    helpers += [Helper(name, name, text, globals_) for name, text, globals_ in tangents]
    table = python_functions(helpers)
    space = {"math": math, **table}
    exec(compile(source, "<sensitivity_rhs>", "exec"), space)
    py_func = space["sensitivity_rhs"]
    return _plugin(SensitivityRhs, "sensitivity_rhs", source, helpers, py_func,
                   f"sensitivities of {record.display}", recipe=(fun, n, m, count))


def _tangents(record):
    """``(entry, [(tangent name, source, globals), ...])``: the tangent program of
    ``record`` (called as ``entry``) and of every helper it calls."""
    entry = called_name(record)
    functions = {entry: record.source, **{h.rendered_name: h.source for h in record.helpers}}
    globals_of = {entry: record.globals_, **{h.rendered_name: h.globals_ for h in record.helpers}}
    arrays = frozenset(a.name for a in SIGNATURES[record.kind].arrays)
    try:
        program = tangent_program(functions, entry, arrays)
    except Undifferentiable as exc:
        raise ValueError(_undifferentiable_message(exc, record, entry)) from None
    return entry, [(tangent_name(key), text, globals_of[key]) for key, text in program.items()]


def _undifferentiable_message(exc, record, entry):
    where = record.origin
    if exc.function == entry and record.def_line is not None and ":" in record.origin:
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
    """``tangent(t, d_t, y, d_y, o_y, p, d_p, o_p) -> (g, d_g)`` of an event function, as
    Python (:func:`batchivp.tangent.tangent_program`'s convention)."""
    return _event_tangent(record_of(event.current()))


@functools.lru_cache(maxsize=256)
def _event_tangent(record):
    entry, tangents = _tangents(record)
    helpers = list(record.helpers) + [Helper(name, name, text, globals_)
                                      for name, text, globals_ in tangents]
    return python_functions(helpers)[tangent_name(entry)]


def results(columns, funs, events, ecfg_row, status, t_final, y_final, yout, y_events,
            t_events, n_events, p):
    """The sensitivity fields of a :class:`batchivp.BatchResult` and the state's share of
    the system's arrays: ``(fields, y_final, yout, y_events)``. ``funs``: each
    problem's right-hand side as given; ``p``: the system's ``(N, m (1 + C))``."""
    y_final, dyf_dy0, dyf_dp = columns.split(y_final)
    fields = dict(dyf_dy0=dyf_dy0, dyf_dp=dyf_dp)
    if yout is not None:
        yout, fields["dy_dy0"], fields["dy_dp"] = columns.split(yout)
    if events:
        dt = event_time_sensitivities(columns, funs, events, t_events, y_events, n_events, p)
        fields["dt_events_dy0"] = [d[..., :columns.n_y0] if columns.y0 else None for d in dt]
        fields["dt_events_dp"] = [d[..., columns.n_y0:] if columns.params else None for d in dt]
        y_events = [y[..., :columns.n] for y in y_events]
        _terminal_jump(columns, funs, events, ecfg_row, status, t_final, y_final, dyf_dy0,
                       dyf_dp, n_events, p)
    return fields, y_final, yout, y_events


def _terminal_jump(columns, funs, events, ecfg_row, status, t_final, y_final, dyf_dy0, dyf_dp,
                   n_events, p):
    """Add ``f dt*/dθ`` to the final columns of the problems a terminal event ended:
    their end is the root, which moves with θ."""
    from .core.events import EC_TERMINAL
    from .status import Status
    n, m = columns.n, columns.m
    for i in np.flatnonzero(status == Status.EVENT):
        e = next(e for e in range(len(events)) if 0 < ecfg_row[e, EC_TERMINAL] <= n_events[i, e])
        system = np.concatenate([y_final[i], _columns_of(columns, dyf_dy0, dyf_dp, i)])
        f = np.empty(n)
        funs[i].py_func(t_final[i], y_final[i].copy(), p[i, :m].copy(), f)
        dt = _root_sensitivity(event_tangent(events[e]), funs[i], t_final[i], system, p[i],
                               n, m, columns.count)
        if columns.y0:
            dyf_dy0[i] += np.outer(f, dt[:columns.n_y0])
        if columns.params:
            dyf_dp[i] += np.outer(f, dt[columns.n_y0:])


def _columns_of(columns, dyf_dy0, dyf_dp, i):
    """Problem ``i``'s columns, flattened as the system holds them."""
    parts = [a[i].T.ravel() for a in (dyf_dy0, dyf_dp) if a is not None]
    return np.concatenate(parts)


def event_time_sensitivities(columns, fun, events, t_events, y_events, n_events, p_aug):
    """Per event, ``dt*/dθ`` of each stored occurrence: ``(N, max_events, C)``, NaN
    where none. ``y_events`` hold the system's components (state and columns) at the
    roots; ``fun`` (per problem, the user's right-hand side) gives ``f`` there."""
    n, m, c = columns.n, columns.m, columns.count
    out = []
    for e, event in enumerate(events):
        tangent = event_tangent(event)
        dt = np.full(t_events[e].shape + (c,), np.nan)
        stored = np.minimum(n_events[:, e], t_events[e].shape[1])
        for i in np.flatnonzero(stored):
            for j in range(stored[i]):
                dt[i, j] = _root_sensitivity(tangent, fun[i], t_events[e][i, j],
                                             y_events[e][i, j], p_aug[i], n, m, c)
        out.append(dt)
    return out


def _root_sensitivity(tangent, fun, t, y, p, n, m, c):
    """``dt*/dθ`` (C,) at one root ``(t, y)`` of the system's components."""
    f = np.empty(n)
    fun.py_func(t, y[:n].copy(), p[:m].copy(), f)
    zeros = np.zeros(m)
    _, rate = tangent(t, 1.0, y, f, 0, p, zeros, 0)  # dg/dt along the solution
    d = np.empty(c)
    for k in range(c):
        _, dg = tangent(t, 0.0, y, y, n + k * n, p, p, m + k * m)
        d[k] = -dg / rate
    return d
