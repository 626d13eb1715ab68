"""Ordinary Python callables as kernel plugins: scipy's ``fun(t, y, *args)`` and events.

``solve_ivp`` accepts what scipy accepts: a function (``def`` or ``lambda``, closures
included) returning a list, tuple or array, with ``args``. This module turns one into
a right-hand side or event the renderer can stamp into a cpu module:

1. :func:`batchivp.source.analyse` reads the function's source (a lambda is found in
   its file by the positions of its code) and :func:`batchivp.source.rendered_source`
   resolves every free name it reads, from its closure, its globals or the builtins:
   modules, numbers, tuples and small arrays of numbers, and other plain functions
   (rendered as helpers too). Anything else is :class:`Uncompilable`, with the reason.
2. :func:`adapter` renders ``fun`` as a helper and wraps it in a plugin with the
   registry's signature (``rhs(t, y, p, dydt)`` / ``event(t, y, p)``): ``args`` travel
   packed in ``p`` (:func:`pack_args`), a complex state is rebuilt from its real and
   imaginary parts, ``vectorized`` functions get ``y`` as a column.

The helper may allocate (lists, arrays): plain callables run on the cpu targets only;
the cuda target needs ``@batchivp.rhs``. The plugin's key covers the source, the
values of the names it reads and the adapter's shape, so a changed global compiles a
new module and an unchanged function never compiles twice (in memory or on disk).
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .registry import EventFunction, RhsFunction
from .source import (Helper, Plugin, Uncompilable, add_helper, def_name, def_source, describe,
                     digest, rename_tokens)


# ---- args ----

@dataclass(frozen=True)
class ArgsLayout:
    """How ``args`` are packed into the parameter vector: one expression per arg."""

    expressions: tuple
    size: int


def pack_args(args):
    """``(p, layout)``: ``args`` flattened to float64 and the expressions that rebuild
    each from ``p`` in the compiled adapter."""
    parts, expressions, k = [], [], 0
    for i, value in enumerate(() if args is None else args):
        if isinstance(value, (bool, np.bool_)):
            parts.append([float(value)])
            expressions.append(f"(p[{k}] != 0.0)")
            k += 1
        elif isinstance(value, numbers.Integral):
            parts.append([float(value)])
            expressions.append(f"int(p[{k}])")
            k += 1
        elif isinstance(value, numbers.Real):
            parts.append([float(value)])
            expressions.append(f"p[{k}]")
            k += 1
        elif isinstance(value, numbers.Complex):
            parts.append([float(value.real), float(value.imag)])
            expressions.append(f"complex(p[{k}], p[{k + 1}])")
            k += 2
        else:
            arr = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else None
            if arr is None or arr.dtype.kind not in "biufc" or arr.size == 0:
                raise Uncompilable(f"args[{i}] is a {type(value).__name__}; numbers and "
                                   "arrays of numbers can be passed to compiled code")
            size = arr.size
            shape = "" if arr.ndim == 1 else f".reshape({arr.shape!r})"
            if arr.dtype.kind == "c":
                parts += [arr.real.ravel(), arr.imag.ravel()]
                expressions.append(f"(p[{k}:{k + size}] + 1j * p[{k + size}:{k + 2 * size}]){shape}")
                k += 2 * size
            else:
                parts.append(arr.astype(float).ravel())
                cast = {"b": ".astype(np.bool_)", "i": ".astype(np.int64)",
                        "u": ".astype(np.int64)"}.get(arr.dtype.kind, "")
                copy = "" if cast else ".copy()"
                expressions.append(f"p[{k}:{k + size}]{shape}{cast}{copy}")
                k += size
    p = np.concatenate([np.asarray(x, dtype=float) for x in parts]) if parts else np.zeros(1)
    return p, ArgsLayout(tuple(expressions), k)


# ---- adapters ----

def adapter(func, kind, ndim, complex_state, vectorized, layout, output):
    """A plugin (``RhsFunction`` or ``EventFunction``) calling ``func`` as scipy would.

    ``ndim`` is the real state size (``2 m`` for a complex state of ``m`` components);
    ``output`` the kind of value ``func`` returned on a trial call: ``"sequence"``,
    ``"scalar"`` or ``"column"`` (an ``(m, 1)`` array from a vectorized function).
    Raises :class:`Uncompilable` if ``func`` cannot be rendered.
    """
    helpers, seen = [], {}
    callee = add_helper(func, helpers, seen)
    m = ndim // 2 if complex_state else ndim
    # Each copy of y gets its own name: the index analysis (batchivp.bounds) then knows the
    # length of the array the function receives.
    lines, ys = [], "y"
    if complex_state:
        lines.append(f"yz = np.empty({m}, np.complex128)")
        lines.append(f"for i in range({m}):")
        lines.append(f"    yz[i] = complex(y[i], y[i + {m}])")
        ys = "yz"
    if vectorized:  # scipy hands a vectorized fun a column (the kernel's y is not contiguous-typed)
        lines.append(f"yc = np.empty(({m}, 1), {ys}.dtype)")
        lines.append(f"for i in range({m}):")
        lines.append(f"    yc[i, 0] = {ys}[i]")
        ys = "yc"
    call = f"{callee}(t, {ys}{''.join(', ' + e for e in layout.expressions)})"
    if kind == "event":
        lines.append(f"return {call}" if output == "scalar" else f"return {call}[0]")
    else:
        lines.append(f"out = {call}")
        index = {"sequence": "out[i]", "scalar": "out", "column": "out[i, 0]"}[output]
        lines.append(f"for i in range({m}):")
        if complex_state:
            lines.append(f"    v = {index}")
            lines.append("    dydt[i] = v.real")
            lines.append(f"    dydt[i + {m}] = v.imag")
        else:
            lines.append(f"    dydt[i] = {index}")
    fname = f"plain_{kind}"
    cls = EventFunction if kind == "event" else RhsFunction
    return build_plugin(cls, fname, def_source(fname, kind, lines), helpers, func, describe(func))


def build_plugin(cls, fname, source, helpers, py_func, origin, **attributes):
    """A plugin of class ``cls`` whose ``def fname`` in ``source`` calls ``helpers`` by
    their rendered names; named and keyed by the digest of all that code.
    ``attributes``: the class's own constructor arguments."""
    kind = cls.kind
    name = f"{fname}_{digest(source, {}, helpers)}"
    source = source.replace(f"def {fname}(", f"def {name}(", 1)
    display = getattr(py_func, "__name__", None)
    record = Plugin(kind, name, source, {}, helpers, origin=origin, registered=False,
                    display=("lambda" if display == "<lambda>" else display) or name)
    return cls(record, py_func, **attributes)


# ---- plugins composed from plain functions (orbit force models) ----

class ComposedRhs(RhsFunction):
    """A right-hand side rendered from a source text calling plain functions
    (:func:`compose`). Pickles as the recipe, so it reaches Dask workers."""

    def __init__(self, plugin, py_func, recipe):
        super().__init__(plugin, py_func)
        self._recipe = recipe  # compose's arguments

    def __reduce__(self):
        return (compose, self._recipe)


class ComposedEvent(EventFunction):
    """An event function rendered from a source text calling plain functions
    (:func:`compose`); ``terminal`` and ``direction`` as for any event."""

    def __init__(self, plugin, py_func, recipe):
        super().__init__(plugin, py_func)
        self._recipe = recipe  # compose's arguments

    def __reduce__(self):
        return (_composed_event, (self._recipe, self.terminal, self.direction))


def _composed_event(recipe, terminal, direction):
    return compose(*recipe).with_options(terminal, direction)


def compose(kind, source, calls, origin="<composed>"):
    """A plugin (``"rhs"`` or ``"event"``) from ``source``, one ``def`` with the
    registry's signature that calls the functions named in ``calls``.

    ``calls`` maps each name the source calls to a plain Python function (rendered as a
    helper, with what it calls in turn, as for :func:`adapter`) or to a registered
    :class:`~batchivp.registry.UserFunction` (rendered from its registered source).
    The helpers must follow the device contract (docs/architecture.md, point 1) for the
    plugin to run on cuda. The result renders on every target; calling it runs
    ``source`` as Python with the original functions. Raises :class:`Uncompilable` if
    a callee cannot be rendered.
    """
    helpers, seen, mapping = [], {}, {}
    for name, func in sorted(calls.items()):
        if isinstance(func, (RhsFunction, EventFunction)):
            record = func.current().plugin  # with the values it reads now
            mapping[name] = called_name(record)
            helpers.extend(record.helpers)
            helpers.append(Helper(record.name, mapping[name], record.source, record.globals_))
        else:
            mapping[name] = add_helper(func, helpers, seen)
    fname = def_name(source)
    namespace = {"math": math, **calls}
    exec(compile(source, origin, "exec"), namespace)
    cls = ComposedEvent if kind == "event" else ComposedRhs
    return build_plugin(cls, fname, rename_tokens(source, mapping), helpers, namespace[fname],
                        origin, recipe=(kind, source, dict(calls), origin))


def called_name(record):
    """The rendered name of the registered function ``record`` as a helper a composed
    plugin calls: ``called_<kind>_<name>_<key10>``, which no plugin (``user_...``),
    plain helper (``plain_...``) or module global (``glob_...``) can be named."""
    return f"called_{record.kind}_{record.name}_{record.key[:10]}"


def output_kind(value, m, vectorized):
    """How a trial return value is indexed by the adapter, or None if not as scipy
    expects (``m`` values, a scalar when ``m == 1``, a column when vectorized)."""
    if isinstance(value, (list, tuple)):
        return "sequence" if len(value) == m and all(
            isinstance(v, (numbers.Number, np.number)) for v in value) else None
    if isinstance(value, (numbers.Number, np.number)):
        return "scalar" if m == 1 else None
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return "scalar" if m == 1 else None
        if vectorized and value.shape == (m, 1):
            return "column"
        if value.shape == (m,):
            return "sequence"
    return None
