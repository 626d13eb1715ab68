"""The plugin registry: user right-hand sides and events as plain Python, checked at registration.

A right-hand side is ``fun(t, y, p, dydt)``: it reads the time ``t``, the state ``y`` and
the problem's parameter vector ``p``, and writes the derivative into ``dydt``. It is
registered with the :func:`rhs` decorator or from a source string with
:func:`register_rhs`. An event function is ``event(t, y, p)`` returning a float whose
roots are the events; it is registered with :func:`event` or :func:`register_event` and
carries scipy's ``terminal`` and ``direction`` attributes. Registration checks
everything that would otherwise surface as an error deep inside a generated kernel
(docs/architecture.md, point 3):

1. the source can be read and parses, and holds one plain ``def``;
2. the arity (4 for a right-hand side, 3 for an event);
3. no construct that device code cannot run: ``raise``, ``assert``, ``try``, ``with``,
   ``yield``, nested functions, lists/dicts/sets/comprehensions, numpy allocation;
4. every global the body uses is something the generated module can carry: ``math``
   (or another module), a number, a tuple of numbers;
5. every index it uses on ``y``, ``p`` and ``dydt`` can be bounded or checked at run
   time (:mod:`batchivp.bounds`), and fits the dimensions it declares, if any;
6. numba compiles it on the cpu target (a trial compile).

Registration makes the function's :class:`batchivp.source.Plugin` record, which the
renderer stamps into a generated module under a prefixed name, with its globals
renamed (:func:`batchivp.render.global_name`), so user names never clash with the
core's or each other's.
"""

import ast
import builtins
import hashlib
import linecache
import math
import numbers
import textwrap
import threading
import types

import numpy

from . import source as src
from .source import Plugin, SourceError, Uncompilable, function_source

TERMINAL_MESSAGE = "The `terminal` attribute of each event must be a boolean or positive integer."
_BOOL_TYPES = (bool, numpy.bool_)

_FORBIDDEN_NODES = {
    ast.Raise: "'raise' (device code never raises: write NaN into dydt to signal failure)",
    ast.Assert: "'assert' (device code never raises)",
    ast.Try: "'try' (device code never raises)",
    ast.With: "'with'",
    ast.Yield: "'yield'",
    ast.YieldFrom: "'yield from'",
    ast.Await: "'await'",
    ast.Global: "'global'",
    ast.Nonlocal: "'nonlocal'",
    ast.Lambda: "a lambda",
    ast.FunctionDef: "a nested function",
    ast.AsyncFunctionDef: "a nested function",
    ast.ClassDef: "a class",
    ast.List: "a list (allocation; use scalars or write into dydt)",
    ast.ListComp: "a list comprehension (allocation)",
    ast.Dict: "a dict (allocation)",
    ast.DictComp: "a dict comprehension (allocation)",
    ast.Set: "a set (allocation)",
    ast.SetComp: "a set comprehension (allocation)",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
}
_ALLOCATING_CALLS = {
    "empty", "zeros", "ones", "full", "array", "asarray", "copy", "arange", "linspace",
    "empty_like", "zeros_like", "ones_like", "full_like", "concatenate", "stack",
    "hstack", "vstack", "list", "dict", "set",
}


class RegistrationError(ValueError):
    """A user function cannot be registered; the message names it and the reason."""


class UserFunction:
    """A registered user function (see :class:`RhsFunction`, :class:`EventFunction`).

    What is rendered is its :class:`~batchivp.source.Plugin` record (``plugin``); the
    object adds what the user holds: the Python function, options, declared sizes.

    Attributes
    ----------
    name : str
        The function's name (unique in the registry).
    plugin : batchivp.source.Plugin
        The record the renderer consumes; ``source``, ``globals_``, ``key``,
        ``origin`` and ``def_line`` are its fields.
    source : str
        The dedented ``def`` without decorators, as it will be rendered.
    globals_ : dict
        The globals the body uses, resolved at registration: name -> (kind, value),
        kind being ``"module"`` (value: the module's import name) or ``"const"``
        (value: a Python literal as text).
    """

    kind = None

    def __init__(self, plugin, py_func, *, stamp=None, registration=None):
        """``plugin``: the record; ``py_func``: the Python function calling it runs.
        For a function of the registry, ``stamp`` is the fingerprint of the values it
        read when rendered and ``registration`` what re-renders it, ``(source,
        globals)`` (see :meth:`current`); None for one rendered from a recipe."""
        if plugin.kind != self.kind:
            raise ValueError(f"a {plugin.kind} record cannot make a {self.kind} function")
        self.plugin = plugin
        self.py_func = py_func
        self.__doc__ = py_func.__doc__
        self.__name__ = plugin.name
        self.__wrapped__ = py_func
        self._stamp = stamp
        self._registered = registration

    name = property(lambda self: self.plugin.name)
    source = property(lambda self: self.plugin.source)
    globals_ = property(lambda self: self.plugin.globals_)
    key = property(lambda self: self.plugin.key)
    origin = property(lambda self: self.plugin.origin)
    def_line = property(lambda self: self.plugin.def_line)
    rendered_name = property(lambda self: self.plugin.rendered_name)

    def __call__(self, *args):
        return self.py_func(*args)

    def current(self):
        """This function as it reads its values now: itself, or, when a value it reads
        (a global, ``cfg.K``, ``Config.K``) changed since it was rendered, the function
        rendered anew with the new values (another key, so another module: a kernel
        never runs with old values). The solvers call it on every solve; it compares
        the current values with those rendered, which costs microseconds."""
        if self._stamp is None:  # rendered from a recipe (plain adapters, compose): fixed values
            return self
        if src.fingerprint(self.py_func) == self._stamp:
            return self
        return _refresh(self)

    def __repr__(self):
        return f"<batchivp {self.kind} {self.name!r} key={self.key} from {self.origin}>"

    # The generated module is identified by content; equal functions render equally.
    def __reduce__(self):
        return (_reregister, (self.kind, self.name, self.source, self.globals_, self._options()))

    declared_n = None  # state size the function declares (@rhs(n=...)), checked at solve time
    declared_n_params = None  # parameter count it declares (n_params=...)

    def _options(self):
        return {"n": self.declared_n, "n_params": self.declared_n_params}

    def with_dimensions(self, n, n_params):
        """A copy of this function declaring its state size ``n`` and parameter count
        ``n_params`` (``None``: not declared), checked against its indices now and
        against each batch's ``y0`` and ``params`` when it is solved."""
        if n is None and n_params is None:
            return self
        for label, value in (("n", n), ("n_params", n_params)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                      or value < (1 if label == "n" else 0)):
                raise RegistrationError(f"{self.kind} {self.name!r}: {label} must be a "
                                        f"{'positive' if label == 'n' else 'non-negative'} "
                                        f"integer, got {value!r}")
        other = object.__new__(type(self))  # not copy.copy: __reduce__ re-registers
        other.__dict__.update(self.__dict__)
        other.declared_n = None if n is None else int(n)
        other.declared_n_params = None if n_params is None else int(n_params)
        from . import bounds

        try:
            bounds.check_declared(other)
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
        return other


class RhsFunction(UserFunction):
    """A registered right-hand side. Calling it runs the original Python function.

    Attributes: see :class:`UserFunction`.
    """

    kind = "rhs"


class EventFunction(UserFunction):
    """A registered event function ``event(t, y, p) -> float``; its roots are events.

    Attributes
    ----------
    terminal : bool or int
        scipy's meaning: ``False`` never stops the integration, ``True`` stops it at the
        first occurrence, an integer ``k`` at the k-th. May be set after registration,
        as with scipy's event functions.
    direction : float
        ``> 0``: only rising zero crossings count, ``< 0``: only falling ones, ``0``: both.

    Other attributes: see :class:`UserFunction`. Each registration returns its own
    object, so options set on one do not change another of the same function.
    """

    kind = "event"

    def __init__(self, plugin, py_func, **registration):
        super().__init__(plugin, py_func, **registration)
        self.terminal = False
        self.direction = 0.0

    def _options(self):
        return {**super()._options(), "terminal": self.terminal, "direction": self.direction}

    def with_options(self, terminal, direction):
        """A copy of this event with other ``terminal`` and ``direction``."""
        check_event_options(terminal, direction, self.name)
        other = object.__new__(type(self))  # not copy.copy: __reduce__ re-registers
        other.__dict__.update(self.__dict__)
        other.terminal = terminal
        other.direction = direction
        return other

    def max_count(self):
        """Occurrences that stop the integration (0: never), checked as scipy does."""
        check_event_options(self.terminal, self.direction, self.name)
        if self.terminal is None or self.terminal == 0:
            return 0
        return int(self.terminal)


def check_event_options(terminal, direction, name):
    """scipy's rules for ``terminal`` (boolean or positive integer) and ``direction``."""
    ok = terminal is None or terminal == 0 or (
        isinstance(terminal, (numbers.Real, *_BOOL_TYPES)) and int(terminal) == terminal
        and terminal > 0)
    if not ok:
        raise ValueError(f"{TERMINAL_MESSAGE} (event {name!r} has terminal={terminal!r})")
    # scipy also takes NaN (such an event never fires); here it is refused as a mistake.
    if not isinstance(direction, (numbers.Real, *_BOOL_TYPES)) or not math.isfinite(direction):
        raise ValueError(f"event {name!r}: direction must be a finite number (> 0 rising, "
                         f"< 0 falling, 0 both), got {direction!r}")


def content_key(source, globals_):
    """What identifies a registered function's rendered code: its source and globals."""
    return src.digest(source, globals_)


_lock = threading.Lock()
_registry = {}  # name -> UserFunction


def registered():
    """All registered functions, by name (a copy)."""
    with _lock:
        return dict(_registry)


def rhs(func=None, *, n=None, n_params=None, sensitivity=False):
    """Register ``func(t, y, p, dydt)`` as a right-hand side usable on every target.

    Use it bare (``@bi.rhs``) or declaring the dimensions the function is written for,
    ``@bi.rhs(n=6, n_params=1)``: the state size and the number of parameters, checked
    against its indices at once and against ``y0`` and ``params`` when it is solved.
    ``sensitivity=True`` also generates its derivative now (what
    ``solve_batch(sensitivity=...)`` needs), refusing a line that cannot be
    differentiated with the reason.

    Examples
    --------
    >>> import math, batchivp as bi
    >>> @bi.rhs
    ... def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    """
    if func is None:
        return lambda f: rhs(f, n=n, n_params=n_params, sensitivity=sensitivity)
    if isinstance(func, RhsFunction):
        entry = func.with_dimensions(n, n_params) if (n, n_params) != (None, None) else func
    else:
        entry = _register_function("rhs", func).with_dimensions(n, n_params)
    return _check_differentiable(entry) if sensitivity else entry


def _check_differentiable(entry):
    """``entry``, once its tangent (batchivp.tangent) is generated; else the error naming
    the line that cannot be differentiated and why."""
    from .sensitivity import check_differentiable  # it builds on this module

    try:
        check_differentiable(entry)
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None
    return entry


def _register_function(kind, func):
    """Register a decorated Python function of ``kind`` from its source file."""
    if not isinstance(func, types.FunctionType):
        raise RegistrationError(
            f"@batchivp.{kind} expects a plain Python function, got {type(func).__name__}; "
            f"for source text use batchivp.register_{kind}(source)")
    name = func.__name__
    try:
        raw, filename, first_line, _ = function_source(func)
    except SourceError as exc:
        hint = "" if "register_rhs" in str(exc) else (
            f"; define it in a file, or pass the source text to batchivp.register_{kind}(source)")
        raise RegistrationError(f"{kind} {name!r}: {exc}{hint}") from None
    return _register(kind, name, raw, func, func.__globals__, f"{filename}:{first_line}")


def register_rhs(source):
    """Register a right-hand side from source text holding one ``def name(t, y, p, dydt)``.

    Top-level ``import`` lines and constant assignments before the ``def`` are allowed
    and become the function's globals. Returns the :class:`RhsFunction`.
    """
    return _register_source("rhs", source)


def _register_source(kind, source, check_options=None):
    """Register the one ``def`` of a source text as a function of ``kind``."""
    if not isinstance(source, str):
        raise RegistrationError(
            f"register_{kind}(source) expects the source text as a str, got "
            f"{type(source).__name__}; use the @batchivp.{kind} decorator for a function")
    source = textwrap.dedent(source)
    func, namespace, filename = _exec_source(source, kind)
    if check_options is not None:
        check_options(func.__name__)
    def_source, def_line = _def_source(source, func)
    return _register(kind, func.__name__, def_source, func, namespace, f"{filename}:{def_line}")


_KEEP = object()  # an option not given: the event's own (False / 0.0 for a new one)


def event(func=None, *, terminal=_KEEP, direction=_KEEP, n=None, n_params=None,
          sensitivity=False):
    """Register ``func(t, y, p) -> float`` as an event function usable on every target.

    Use it bare (``@bi.event``: not terminal, both directions) or with scipy's options
    (``@bi.event(terminal=True, direction=-1)``; ``terminal`` may be a count). Given an
    :class:`EventFunction`, returns a copy with the options given changed and the
    others kept: ``bi.event(reentry, terminal=2)``. ``n`` and ``n_params`` declare the
    state size and parameter count, and ``sensitivity=True`` generates its derivative
    now (the event times' sensitivities need it), as for :func:`rhs`.

    Examples
    --------
    >>> import math, batchivp as bi
    >>> @bi.event(terminal=True, direction=-1)
    ... def below_radius(t, y, p):
    ...     return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - p[1]
    """
    if func is None:
        check_event_options(False if terminal is _KEEP else terminal,
                            0.0 if direction is _KEEP else direction, "<decorated>")
        return lambda f: event(f, terminal=terminal, direction=direction, n=n,
                               n_params=n_params, sensitivity=sensitivity)
    if isinstance(func, EventFunction):
        entry = func.with_options(func.terminal if terminal is _KEEP else terminal,
                                  func.direction if direction is _KEEP else direction
                                  ).with_dimensions(n, n_params)
    else:
        terminal = False if terminal is _KEEP else terminal
        direction = 0.0 if direction is _KEEP else direction
        check_event_options(terminal, direction, getattr(func, "__name__", "<event>"))
        entry = _register_function("event", func).with_options(
            terminal, direction).with_dimensions(n, n_params)
    return _check_differentiable(entry) if sensitivity else entry


def observable(func=None, *, n=None, n_params=None):
    """Register ``func(t, y, p) -> float`` as an observable: a quantity whose statistics
    :func:`batchivp.solve_batch` computes at the ``t_eval`` points (``observables=``,
    ``summarize=``) without storing the trajectory.

    It is written as an event function is (same rules, checks and targets) and is one:
    the :class:`EventFunction` returned never stops a problem when used as an event, and
    any event function can be summarized too. ``n`` and ``n_params`` as for :func:`rhs`.

    Examples
    --------
    >>> import math, batchivp as bi
    >>> @bi.observable
    ... def radius(t, y, p):
    ...     return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    """
    if func is None:
        return lambda f: observable(f, n=n, n_params=n_params)
    return event(func, n=n, n_params=n_params)


def register_event(source, terminal=False, direction=0.0):
    """Register an event function from source text holding one ``def name(t, y, p)``.

    As :func:`register_rhs` for the text; ``terminal`` and ``direction`` as for
    :func:`event`. Returns the :class:`EventFunction`.
    """
    base = _register_source("event", source,
                            lambda name: check_event_options(terminal, direction, name))
    return base.with_options(terminal, direction)


def _exec_source(source, kind):
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise RegistrationError(
            f"{kind} source{_name_hint(source)} has a syntax error at line {exc.lineno}: "
            f"{exc.msg}") from None
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if len(defs) != 1:
        raise RegistrationError(
            f"{kind} source must hold exactly one top-level def, found {len(defs)}")
    name = defs[0].name
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<batchivp {kind} {name} {digest}>"
    # Keep the text findable for tracebacks and numba's error messages.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": f"batchivp_user_{name}", "__builtins__": builtins}
    try:
        exec(compile(source, filename, "exec"), namespace)
    except Exception as exc:
        raise RegistrationError(
            f"{kind} {name!r}: running its source failed: {type(exc).__name__}: {exc}") from None
    return namespace[name], namespace, filename


def _name_hint(source):
    """`` 'name'`` of the first ``def name(`` in a source text that may not parse."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("def ") and "(" in stripped:
            return f" {stripped[4:stripped.index('(')].strip()!r}"
    return ""


def _def_source(source, func):
    """The ``def`` block of a source string (imports and constants stripped), and the
    line it starts on in the whole text (so errors quote the user's line numbers)."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func.__name__)
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    return "\n".join(source.splitlines()[first - 1 : node.end_lineno]) + "\n", first


def _register(kind, name, source, func, func_globals, origin):
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    node = tree.body[0] if tree is not None and tree.body else None
    if not isinstance(node, ast.FunctionDef):
        raise RegistrationError(
            f"{kind} {name!r} ({origin}): expected a function defined with a plain def "
            "(lambdas and callables cannot be registered)")
    where = f"{kind} {name!r} ({origin})"
    if node.name != name:
        raise RegistrationError(
            f"{where}: it is the function {node.name!r} defined there, under the name "
            f"{name!r} (a decorator wrapped it?); register the function itself")
    _check_signature(node, where, kind)
    _check_body(node, where, kind, origin)
    # Drop decorators: the def line onwards, as written.
    lines = source.splitlines()
    def_source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
    def_source, globals_, stamp = _resolve_values(func, def_source, where)
    trial = _as_rendered(func, def_source, globals_, origin, node.lineno) if globals_ else func
    try:
        globals_.update(src.resolve_device_globals(def_source, name, func_globals, set(globals_)))
    except Uncompilable as exc:
        raise RegistrationError(f"{where}: {exc}") from None
    record = Plugin(kind, name, def_source, globals_, origin=origin,
                    def_line=_origin_line(origin, node))
    _check_indices(record, where)
    with _lock:
        existing = _registry.get(name)
        if existing is not None:
            if existing.kind == kind and existing.key == record.key:
                if existing.py_func is not func and existing._stamp is not None:
                    # The same code defined again (a module imported anew, a script run
                    # again): follow the new function's values from now on.
                    existing.py_func = existing.__wrapped__ = func
                    existing._stamp = stamp
                    existing._registered = (source, func_globals)
                return existing
            # The same function, or the same def at the same place (a module imported
            # anew), reading other values now, is rendered anew (another key).
            same = existing.kind == kind and (existing.py_func is func or (
                existing.origin == origin
                and (existing._registered or (None,))[0] == source))
            if not same:
                raise RegistrationError(
                    f"{where}: a different {existing.kind} named {name!r} is already "
                    f"registered (from {existing.origin}); give this one another name")
    _trial_compile(trial, where, kind)
    with _lock:
        existing = _registry.get(name)
        if existing is not None and existing.key == record.key:
            return existing
        entry = _KINDS[kind](record, func, stamp=stamp, registration=(source, func_globals))
        _registry[name] = entry
        return entry


def _resolve_values(func, def_source, where):
    """``(source, globals_, stamp)``: attribute chains on modules and classes read by
    the function (``cfg.K``, ``Config.K``) written into ``def_source`` as constants of
    their values now (:func:`batchivp.source.rendered_source`), and the fingerprint of
    all values it reads, against which :meth:`UserFunction.current` checks them later."""
    try:
        analysis = src.analyse(func)
        if analysis.source != def_source:  # defensive: both are the def as written
            raise Uncompilable("its source could not be read twice alike")
        source, globals_ = src.rendered_source(func, analysis, [], {}, device=True)
        stamp = src.fingerprint(func)
    except Uncompilable as exc:
        raise RegistrationError(f"{where}: {exc}") from None
    return source, globals_, stamp


def _as_rendered(func, def_source, values, origin, def_line):
    """The function as rendered: ``def_source`` (chains on modules and classes replaced
    by names of constants, ``values``) run with those constants and ``func``'s
    globals, for the trial compile. Compiled at the lines of the original, so numba's
    messages quote the user's file."""
    namespace = dict(func.__globals__)
    literals = {"math": math, "np": numpy}
    for gname, (_, literal) in values.items():
        namespace[gname] = eval(literal, literals)  # noqa: S307 - our own literals
    filename, _, first = origin.rpartition(":")
    tree = ast.parse(def_source)
    try:
        ast.increment_lineno(tree, int(first) + def_line - 2)
    except ValueError:
        pass
    exec(compile(tree, filename or "<rendered>", "exec"), namespace)
    return namespace[func.__name__]


def _refresh(entry):
    """``entry`` rendered again from its function with the values it reads now."""
    source, func_globals = entry._registered
    fresh = _register(entry.kind, entry.name, source, entry.py_func, func_globals, entry.origin)
    if entry.kind == "event":
        fresh = fresh.with_options(entry.terminal, entry.direction)
    return fresh


_KINDS = {"rhs": RhsFunction, "event": EventFunction}


def _check_signature(node, where, kind):
    expected_args = src.SIGNATURES[kind].names
    args = node.args
    names = [a.arg for a in args.args]
    if (args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs
            or args.defaults or len(names) != len(expected_args)):
        raise RegistrationError(
            f"{where}: must take exactly {len(expected_args)} positional arguments "
            f"({', '.join(expected_args)}) with no defaults, *args or keywords; "
            f"it takes ({ast.unparse(args)})")


def _check_body(node, where, kind, origin):
    for sub in ast.walk(node):
        if sub is node:
            continue
        message = _FORBIDDEN_NODES.get(type(sub))
        if message is None and isinstance(sub, ast.Call):
            callee = sub.func
            callee_name = callee.attr if isinstance(callee, ast.Attribute) else (
                callee.id if isinstance(callee, ast.Name) else None)
            if callee_name in _ALLOCATING_CALLS:
                message = f"a call to {callee_name}() (allocation)"
        if message is None and kind == "rhs" and isinstance(sub, ast.Return) and sub.value is not None:
            message = "'return <value>' (a right-hand side writes into dydt and returns nothing)"
        if message is not None:
            line = _origin_line(origin, sub)
            raise RegistrationError(
                f"{where}: line {line} uses {message}, which the generated kernel "
                "cannot run on every target")
    if kind == "event":
        returns = [s for s in ast.walk(node) if isinstance(s, ast.Return)]
        if not returns or any(r.value is None for r in returns):
            raise RegistrationError(f"{where}: an event function must return a float "
                                    "on every path ('return <value>')")


def _check_indices(record, where):
    """Refuse a function with a use of ``y``, ``p`` or ``dydt`` that can be neither
    bounded nor checked at run time, or an index always outside a slice."""
    from . import bounds

    try:
        bounds.verify(record, where)
    except bounds.Unverifiable as exc:
        raise RegistrationError(str(exc)) from None


def _origin_line(origin, sub):
    """Line of ``sub`` in the user's file (``origin`` is ``file:first_line``)."""
    try:
        first = int(origin.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return sub.lineno
    return first + sub.lineno - 1


def _trial_compile(func, where, kind):
    """Compile the original function with numba on the cpu target; report its error."""
    import numba

    from .linking import function_signature  # imports numba: only when registering

    try:
        numba.njit(function_signature(kind), cache=False)(func)
    except Exception as exc:  # numba raises several error types; all mean "cannot compile"
        detail = str(exc).strip()
        raise RegistrationError(
            f"{where}: numba cannot compile it for the cpu target:\n{detail}") from None


def _reregister(kind, name, source, globals_, options):
    """Unpickle a registered function in another process (e.g. a Dask worker)."""
    existing = registered().get(name)
    if existing is not None and (existing.kind != kind or existing.key != content_key(source, globals_)):
        raise RegistrationError(
            f"cannot unpickle {kind} {name!r}: this process registered a different "
            f"{existing.kind} under that name (from {existing.origin})")
    if existing is None:
        # The literals of constants may use math and numpy (math.inf, np.array).
        prelude = "import math\nimport numpy as np\n" + "".join(
            f"import {value} as {gname}\n" if gkind == "module" else f"{gname} = {value}\n"
            for gname, (gkind, value) in sorted(globals_.items()))
        text = prelude + source
        existing = register_rhs(text) if kind == "rhs" else register_event(text)
    if kind == "event":
        existing = existing.with_options(options["terminal"], options["direction"])
    return existing.with_dimensions(options.get("n"), options.get("n_params"))
