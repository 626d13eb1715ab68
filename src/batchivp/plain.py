"""Ordinary Python callables as kernel plugins: scipy's ``fun(t, y, *args)`` and events.

``solve_ivp`` accepts what scipy accepts: a function (``def`` or ``lambda``, closures
included) returning a list, tuple or array, with ``args``. This module turns one into
a right-hand side or event the renderer can stamp into a cpu module:

1. :func:`analyse` reads the function's source (a lambda is found in its file by the
   positions of its code) and resolves every free name it reads, from its closure,
   its globals or the builtins: modules, numbers, tuples and small arrays of numbers,
   and other plain functions (rendered as helpers too). Anything else is
   :class:`Uncompilable`, with the reason.
2. :func:`adapter` renders ``fun`` as a helper and wraps it in a plugin with the
   registry's signature (``rhs(t, y, p, dydt)`` / ``event(t, y, p)``): ``args`` travel
   packed in ``p`` (:func:`pack_args`), a complex state is rebuilt from its real and
   imaginary parts, ``vectorized`` functions get ``y`` as a column.

The helper may allocate (lists, arrays): plain callables run on the cpu targets only;
the cuda target needs ``@batchivp.rhs``. The plugin's key covers the source, the
values of the names it reads and the adapter's shape, so a changed global compiles a
new module and an unchanged function never compiles twice (in memory or on disk).
"""

import ast
import builtins
import hashlib
import inspect
import linecache
import math
import numbers
import symtable
import textwrap
import types
import weakref
from dataclasses import dataclass

import numpy as np

from .registry import (EventFunction, RhsFunction, SourceError, _literal, check_defines,
                       function_source, rename_tokens)

MAX_ARRAY_CONSTANT = 4096  # elements of an array global rendered as a literal


class Uncompilable(Exception):
    """A callable that cannot be rendered; the message names the construct."""


@dataclass(frozen=True)
class Helper:
    """A plain function rendered into the module next to the plugin that calls it."""

    name: str
    rendered_name: str
    source: str
    globals_: dict


@dataclass
class _Analysis:
    name: str
    origin: str
    source: str  # a ``def`` of the function under its own name
    free_names: tuple  # names read from closure, globals or builtins
    chains: tuple = ()  # (root, attrs, spans): attribute chains on free names, see _chains
    defaults: tuple = ()  # (arg, span, index or None): default values, see _defaults
    names: frozenset = frozenset()  # every identifier of ``source``


_analyses = weakref.WeakKeyDictionary()  # code object -> _Analysis or Uncompilable


def describe(func):
    """``'name' (file:line)`` for messages."""
    code = getattr(func, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{getattr(func, '__qualname__', type(func).__name__)!r}{where}"


def analyse(func):
    """The source and free names of a plain function (cached per code object)."""
    if isinstance(func, types.MethodType) or not isinstance(func, types.FunctionType):
        py_func = getattr(func, "py_func", None)  # a numba dispatcher: its Python function
        if isinstance(py_func, types.FunctionType):
            return analyse(py_func)
        raise Uncompilable(f"it is a {type(func).__name__}, not a function defined with "
                           "def or lambda")
    code = func.__code__
    cached = _analyses.get(code)
    if cached is None:
        try:
            cached = _analyse_code(func)
        except Uncompilable as exc:
            cached = exc
        _analyses[code] = cached
    if isinstance(cached, Uncompilable):
        raise cached
    return cached


def _analyse_code(func):
    code = func.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        raise Uncompilable("it is a generator or coroutine")
    filename = code.co_filename
    try:
        if func.__name__ == "<lambda>":
            lines = linecache.getlines(filename, func.__globals__)
            if not lines:
                raise Uncompilable(f"its source cannot be read (defined in {filename})")
            check_defines(func, "".join(lines))
            source = _lambda_source(func, "".join(lines))
        else:
            source, _, _, _ = function_source(func)
            try:
                tree = ast.parse(source)
            except SyntaxError as exc:
                raise Uncompilable(f"its source cannot be parsed ({exc.msg})") from None
            node = tree.body[0]
            if not isinstance(node, ast.FunctionDef):
                raise Uncompilable("its source is not a plain def")
            text = source.splitlines()
            source = "\n".join(text[node.lineno - 1:node.end_lineno]) + "\n"
    except SourceError as exc:
        raise Uncompilable(str(exc)) from None
    name = _def_name(source)
    free = _free_names(source, name)
    node = ast.parse(source).body[0]
    names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name)) | frozenset(
        a.arg for a in ast.walk(node) if isinstance(a, ast.arg)) | {name}
    return _Analysis(name, f"{filename}:{code.co_firstlineno}", source, free,
                     _chains(node, set(free)), _defaults(node), names)


def _free_names(source, name):
    """The names the ``def name`` of ``source`` reads from outside (sorted)."""
    table = symtable.symtable(source, "<plain>", "exec")
    function_table = next(c for c in table.get_children() if c.get_name() == name)
    return tuple(sorted(set(function_table.get_globals()) | _nested_globals(function_table)))


def _span(node):
    return (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)


def _chains(node, free):
    """The attribute chains ``root.a.b`` read in the body of ``node`` whose root is a
    free name: ``(root, ("a", "b"), spans)``, ``spans[i]`` being the source span of
    the chain's first ``i + 1`` attributes (byte columns, as ``ast`` gives them)."""
    chains, inner = [], set()
    for stmt in node.body:
        for sub in ast.walk(stmt):  # breadth first: a chain's outermost node comes first
            if not isinstance(sub, ast.Attribute) or id(sub) in inner:
                continue
            nodes, part = [], sub
            while isinstance(part, ast.Attribute):
                nodes.append(part)
                inner.add(id(part))
                part = part.value
            if (isinstance(part, ast.Name) and part.id in free
                    and isinstance(sub.ctx, ast.Load)):
                nodes.reverse()
                chains.append((part.id, tuple(n.attr for n in nodes),
                               tuple(_span(n) for n in nodes)))
    return tuple(chains)


def _defaults(node):
    """``(arg, span, index)`` of each default value in the ``def`` (``index`` into
    ``__defaults__``; ``None`` for a keyword-only argument)."""
    args = node.args
    positional = args.posonlyargs + args.args
    found = [(a.arg, _span(d), i)
             for i, (a, d) in enumerate(zip(positional[len(positional) - len(args.defaults):],
                                             args.defaults))]
    found += [(a.arg, _span(d), None) for a, d in zip(args.kwonlyargs, args.kw_defaults)
              if d is not None]
    return tuple(found)


def _nested_globals(table):
    names = set()
    for child in table.get_children():
        names |= set(child.get_globals()) | _nested_globals(child)
    return names


def _def_name(source):
    return ast.parse(source).body[0].name


def _lambda_source(func, file_text):
    """A ``def`` equivalent to a lambda, found in its file by line and columns."""
    code = func.__code__
    try:
        tree = ast.parse(file_text)
    except SyntaxError:
        raise Uncompilable("the file defining the lambda cannot be parsed") from None
    # Instructions of the body carry (line, end line, column, end column); RESUME and
    # the final RETURN carry columns (0, 0) and say nothing.
    spans = [(pos[2], pos[3]) for pos in code.co_positions()
             if pos[0] == code.co_firstlineno and pos[2] is not None and pos[3] is not None
             and pos[3] > pos[2]]
    argnames = code.co_varnames[:code.co_argcount]
    candidates = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda) and node.lineno <= code.co_firstlineno <= node.end_lineno:
            if tuple(a.arg for a in node.args.args) != argnames:
                continue
            body = node.body
            if spans and body.lineno == code.co_firstlineno == body.end_lineno and not (
                    body.col_offset <= min(c for c, _ in spans)
                    and max(e for _, e in spans) <= body.end_col_offset):
                continue
            candidates.append(node)
    if len(candidates) != 1:
        raise Uncompilable("the lambda's source cannot be told apart from another on its line")
    node = candidates[0]
    name = "lambda_"  # equal lambdas render equally wherever they are written
    return f"def {name}({ast.unparse(node.args)}):\n    return {ast.unparse(node.body)}\n"


# ---- values a rendered function can read ----

def _free_value(func, name):
    """(found, value) of a free name: closure first, then globals, then builtins."""
    code = func.__code__
    if name in code.co_freevars and func.__closure__ is not None:
        cell = func.__closure__[code.co_freevars.index(name)]
        try:
            return True, cell.cell_contents
        except ValueError:
            raise Uncompilable(f"its closure variable {name!r} is not set yet") from None
    if name in func.__globals__:
        return True, func.__globals__[name]
    if hasattr(builtins, name):
        return False, None
    raise Uncompilable(f"it uses the undefined name {name!r}")


def _constant(value):
    """Literal text of a number, tuple or small array of numbers, or None."""
    if isinstance(value, (bool, np.bool_, numbers.Real)) and not isinstance(value, complex):
        return _literal(value)
    if isinstance(value, (complex, np.complexfloating)):
        return f"complex({_literal(value.real)}, {_literal(value.imag)})"
    if isinstance(value, tuple):
        items = [_constant(v) for v in value]
        if all(i is not None and not i.startswith("np.") for i in items):
            return "(" + "".join(i + ", " for i in items) + ")"
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= MAX_ARRAY_CONSTANT:
        dtype = "np.float64" if value.dtype.kind == "f" else "np.int64"
        if value.dtype.kind == "b":
            dtype = "np.bool_"
        flat = ", ".join(_literal(v) for v in value.ravel().tolist())
        return f"np.array([{flat}], dtype={dtype}).reshape({value.shape!r})"
    return None


LIBRARY_MODULES = frozenset({"math", "cmath", "numpy", "scipy", "numba"})


def _walk(value, attrs):
    """``(n, value)``: the value of the chain ``value.attrs[0]...`` followed while it is
    on a module or class (``n`` attributes; 0 when ``value`` is neither, or an
    attribute is missing: numba then reports it as written)."""
    n = 0
    for attr in attrs:
        if not isinstance(value, (types.ModuleType, type)):
            break
        try:
            value = getattr(value, attr)
        except AttributeError:
            return 0, None
        n += 1
    return n, value


def _is_library(func):
    return (getattr(func, "__module__", None) or "").split(".")[0] in LIBRARY_MODULES


def _chain_value(value, device):
    """How a chain ending at ``value`` is rendered: ``("const", literal)``,
    ``("helper", function)``, or None to keep it as written (a module reference:
    modules, math/numpy functions, classes and other objects numba resolves itself)."""
    literal = repr(value) if isinstance(value, str) else _constant(value)
    if literal is not None and device and isinstance(value, np.ndarray):
        raise Uncompilable(
            "it reads an array of a module or class, which a registered function cannot "
            "carry into the generated kernel (as an array global); use numbers or tuples "
            "of numbers, or pass the values through params")
    if literal is not None:
        return "const", literal
    target = getattr(value, "py_func", value)
    if isinstance(target, types.FunctionType) and not _is_library(target):
        if device:
            raise Uncompilable(
                f"it calls the Python function {target.__module__}.{target.__qualname__}, "
                "which a registered function cannot call (its body is rendered alone, on "
                "every target); write the computation into the function, or use the "
                "function with batchivp.solve_ivp or as an orbit.UserForce, where plain "
                "functions it calls are rendered too")
        return "helper", target
    return None


def _unique(name, taken):
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _apply_edits(source, edits):
    """``source`` with each span (line, byte column, end line, end byte column) of
    ``edits`` replaced by its text; spans do not overlap."""
    lines = [line.encode() for line in source.splitlines(True)]
    for (line, col, end_line, end_col), text in sorted(edits.items(), reverse=True):
        head = lines[line - 1][:col]
        tail = lines[end_line - 1][end_col:]
        lines[line - 1:end_line] = [head + text.encode() + tail]
    return b"".join(lines).decode()


def rendered_source(func, analysis, helpers, seen, device=False):
    """``(source, globals_)``: ``func``'s def as the generated module holds it, and the
    globals map (registry format) of the names it reads.

    Values are taken as they are now, and written into the text, so that the content
    hash of the module covers them (a changed value renders another module, in memory
    and on disk): an attribute chain on a module or class (``cfg.K``, ``pkg.sub.K``,
    ``Config.K``) that ends at a number, tuple or small array becomes a constant, and
    one that ends at a plain function a call of its rendered helper; each default
    value becomes a constant (the value at ``def`` time, not the expression). Other
    plain functions it calls are added to ``helpers``. ``device``: for the registry,
    which resolves bare names itself (chains only).
    """
    edits, globals_, introduced, chain_names = {}, {}, set(), {}
    taken = set(analysis.names)
    for root, attrs, spans in analysis.chains:
        found, value = _free_value(func, root)
        if not found:
            continue
        n, value = _walk(value, attrs)
        if n == 0:
            continue
        how = _chain_value(value, device)
        if how is None:
            continue
        if how[0] == "helper":
            edits[spans[n - 1]] = rendered = _helper(how[1], helpers, seen)
            introduced.add(rendered)
            continue
        chain = (root,) + attrs[:n]
        if chain not in chain_names:
            chain_names[chain] = _unique("__".join(chain), taken)
        globals_[chain_names[chain]] = how
        edits[spans[n - 1]] = chain_names[chain]
    for arg, span, index in analysis.defaults:
        value = func.__defaults__[index] if index is not None else func.__kwdefaults__[arg]
        literal = "None" if value is None else _constant(value)
        if literal is None:
            raise Uncompilable(f"its default value {arg}={value!r} ({type(value).__name__}) "
                               "cannot be taken into compiled code")
        gname = _unique(f"{arg}__default", taken)
        globals_[gname] = ("const", literal)
        edits[span] = gname
    source = _apply_edits(analysis.source, edits) if edits else analysis.source
    if device:
        return source, globals_
    names = _free_names(source, analysis.name) if edits else analysis.free_names
    for name in names:
        if name in globals_ or name in introduced:
            continue
        found, value = _free_value(func, name)
        if not found:
            continue
        if isinstance(value, types.ModuleType):
            globals_[name] = ("module", value.__name__)
            continue
        literal = _constant(value)
        if literal is not None:
            globals_[name] = ("const", literal)
            continue
        target = getattr(value, "py_func", value)
        if isinstance(target, types.FunctionType):
            globals_[name] = ("helper", _helper(target, helpers, seen))
            continue
        raise Uncompilable(f"it uses {name!r}, a {type(value).__name__}, which numba cannot "
                           "take into compiled code (numbers, tuples, small arrays of "
                           "numbers, modules and plain functions can be)")
    return source, globals_


def _helper(func, helpers, seen):
    """Render ``func`` as a helper (once); return its rendered name."""
    analysis = analyse(func)
    key = (func.__code__, id(func))
    if key in seen:
        if (key, "busy") in seen:  # a recursive call: its name is handed out
            seen[key, "called"] = True
        return seen[key]
    # A provisional name while the body is resolved (a recursive helper calls it).
    digest = hashlib.sha256(analysis.source.encode()).hexdigest()[:10]
    rendered_name = f"plain_{analysis.name}_{digest}"
    seen[key] = rendered_name
    seen[key, "busy"] = True
    source, globals_ = rendered_source(func, analysis, helpers, seen)
    del seen[key, "busy"]
    # Helpers are called by their rendered names: rename those before the registry's
    # renaming (which only knows modules and constants).
    calls = {n: v for n, (k, v) in globals_.items() if k == "helper"}
    if calls:
        source = rename_tokens(source, calls)
    plain_globals = {n: kv for n, kv in globals_.items() if kv[0] != "helper"}
    # Two functions of the same code with other values (closures of one factory)
    # must not share a rendered name: the renderer emits one helper per name.
    content = hashlib.sha256(repr((source, sorted(plain_globals.items()))).encode()).hexdigest()[:6]
    if (key, "called") not in seen:
        final = f"{rendered_name}{content}"
        seen[key] = final
        rendered_name = final
    helpers.append(Helper(analysis.name, rendered_name, source, plain_globals))
    return rendered_name


def fingerprint(func, depth=0):
    """What a rendered ``func`` depends on, cheaply: its code and the current values
    of the names, attribute chains (``cfg.K``) and defaults it reads (functions by
    their own fingerprint). Equal fingerprints render equal plugins, so the adapter
    is built once per fingerprint, and a registered function is re-rendered when its
    fingerprint changes. Called on every solve: keep it a few lookups."""
    if type(func) is not types.FunctionType:
        func = getattr(func, "py_func", func)
    analysis = analyse(func)
    items, roots = [], {}
    for name in analysis.free_names:
        found, value = _free_value(func, name)
        if found:
            roots[name] = value
            items.append((name, _value_print(value, depth)))
    for root, attrs, _ in analysis.chains:
        value = roots.get(root, _MISSING)
        if value is _MISSING or (type(value) is types.ModuleType  # math.pi, np.sin: fixed
                                 and value.__name__.partition(".")[0] in LIBRARY_MODULES):
            continue
        n, value = _walk(value, attrs)
        items.append((root, attrs[:n], _value_print(value, depth) if n else None))
    if analysis.defaults:
        items.append(("defaults", _value_print(func.__defaults__, depth),
                      _value_print(tuple(sorted((func.__kwdefaults__ or {}).items())), depth)))
    return (func.__code__, tuple(items))


_MISSING = object()
_SCALARS = (float, int, bool, str, np.float64)


def _value_print(value, depth):
    kind = type(value)
    if kind in _SCALARS:
        return (kind.__name__, repr(value))
    if kind is types.ModuleType:
        return ("module", value.__name__)
    if isinstance(value, (bool, np.bool_, numbers.Number, str)):
        return (type(value).__name__, repr(value))
    if isinstance(value, tuple):
        return ("tuple",) + tuple(_value_print(v, depth) for v in value)
    if isinstance(value, np.ndarray) and value.size <= MAX_ARRAY_CONSTANT:
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    target = value if kind is types.FunctionType else getattr(value, "py_func", value)
    if isinstance(target, types.FunctionType) and depth < 8 and not _is_library(target):
        try:
            return ("function", fingerprint(target, depth + 1))
        except Uncompilable:
            return ("object", id(value))
    return ("object", id(value))


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
    callee = _helper(func, helpers, seen)
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
        args, fname = "t, y, p", "plain_event"
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
        args, fname = "t, y, p, dydt", "plain_rhs"
    source = def_source(fname, args, lines)
    cls = EventFunction if kind == "event" else RhsFunction
    return _plugin(cls, fname, source, helpers, func, describe(func))


def def_source(name, args, lines):
    """The text of ``def name(args):`` with ``lines`` as its body."""
    return f"def {name}({args}):\n" + "".join(f"    {line}\n" for line in lines)


def _plugin(cls, fname, source, helpers, py_func, origin):
    """A plugin of class ``cls`` whose ``def fname`` in ``source`` calls ``helpers`` by
    their rendered names; named and keyed by the digest of all that code."""
    digest = hashlib.sha256(
        (source + repr([(h.rendered_name, h.source, sorted(h.globals_.items())) for h in helpers])
         ).encode()).hexdigest()[:16]
    name = f"{fname}_{digest}"
    source = source.replace(f"def {fname}(", f"def {name}(", 1)
    plugin = cls(name, -1, source, {}, py_func, origin)
    plugin.helpers = tuple(helpers)
    plugin.key = digest
    return plugin


# ---- plugins composed from plain functions (orbit force models) ----

class ComposedRhs(RhsFunction):
    """A right-hand side rendered from a source text calling plain functions
    (:func:`compose`). Pickles as the recipe, so it reaches Dask workers."""

    def __reduce__(self):
        return (compose, self._recipe)


class ComposedEvent(EventFunction):
    """An event function rendered from a source text calling plain functions
    (:func:`compose`); ``terminal`` and ``direction`` as for any event."""

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
            func = func.current()  # with the values it reads now
            mapping[name] = f"{func.rendered_name}_{func.key[:10]}"
            helpers.extend(getattr(func, "helpers", ()))
            helpers.append(Helper(func.name, mapping[name], func.source, func.globals_))
        else:
            mapping[name] = _helper(func, helpers, seen)
    fname = _def_name(source)
    namespace = {"math": math, **calls}
    exec(compile(source, origin, "exec"), namespace)
    cls = ComposedEvent if kind == "event" else ComposedRhs
    plugin = _plugin(cls, fname, rename_tokens(source, mapping), helpers, namespace[fname], origin)
    plugin._recipe = (kind, source, dict(calls), origin)
    return plugin


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
