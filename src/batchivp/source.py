"""Source analysis: what a user's function is, as text the generated module can hold.

Both ways a function enters batchivp end here: the registry (``@batchivp.rhs``,
``@batchivp.event``, source text; :mod:`batchivp.registry`) and ordinary callables
(scipy's ``fun(t, y, *args)``, composed force models; :mod:`batchivp.plain`). This
module reads a function's source (:func:`function_source`, a lambda by the positions
of its code), resolves the free names it reads into globals the module can carry
(:func:`rendered_source`, :func:`resolve_device_globals`), renames names in a text
(:func:`rename_tokens`), and makes the one record the renderer consumes:
:class:`Plugin` (kind, name, source, resolved globals, helpers), keyed by the digest
of all its code (:func:`digest`). It also holds the contract of each kind of user
function, its parameters in order (:data:`SIGNATURES`), from which every other place
that spells them out derives them.
"""

import ast
import builtins
import hashlib
import inspect
import io
import linecache
import math
import numbers
import symtable
import textwrap
import tokenize
import types
import weakref
from dataclasses import dataclass, field

import numpy as np

_BOOL_TYPES = (bool, np.bool_)
MAX_ARRAY_CONSTANT = 4096  # elements of an array global rendered as a literal


class Uncompilable(Exception):
    """A callable that cannot be rendered; the message names the construct."""


# ---- the contract: what the kernel passes a user function of each kind ----

@dataclass(frozen=True)
class Parameter:
    """One parameter of a user function: the scalar ``name``, or (``length`` given) a
    contiguous array whose length is the state's (``"n"``) or the parameter vector's
    (``"m"``). Its dtype is the kernel precision's ``real`` (float64 unless
    ``solve_batch(dtype=...)`` says otherwise, :class:`batchivp.abi.Precision`), or its
    ``stage`` dtype for an array the function writes a stage into (``stage``)."""

    name: str
    length: str = None
    stage: bool = False


@dataclass(frozen=True)
class Signature:
    """The parameters of a user function of one kind, in order, and what it returns
    (``"float64"``, or None: it writes into its arrays). Everything that spells out a
    user function's parameters derives them from :data:`SIGNATURES`: the registry's
    checks and trial compile, plain adapters and composed plugins (:func:`def_source`),
    the C signatures and intrinsics of linked kernels (:mod:`batchivp.linking`), the
    index analysis (:mod:`batchivp.bounds`), the templates' dispatchers."""

    kind: str
    parameters: tuple
    returns: str = None

    @property
    def names(self):
        """The parameter names, in order: ``("t", "y", "p", "dydt")``."""
        return tuple(p.name for p in self.parameters)

    @property
    def text(self):
        """The parameter list as written in a ``def``: ``"t, y, p, dydt"``."""
        return ", ".join(self.names)

    @property
    def arrays(self):
        """The array parameters, in order."""
        return tuple(p for p in self.parameters if p.length is not None)

    @property
    def lengths(self):
        """The names of the arrays' lengths, in order of first use: ``("n", "m")``."""
        return tuple(dict.fromkeys(p.length for p in self.arrays))

    @property
    def same_length(self):
        """Position of each array parameter -> position of the first array parameter
        of the same length, for those that are not the first (``{3: 1}``: ``dydt`` is
        as long as ``y``)."""
        first, same = {}, {}
        for i, p in enumerate(self.parameters):
            if p.length is not None and first.setdefault(p.length, i) != i:
                same[i] = first[p.length]
        return same


_T, _Y, _P = Parameter("t"), Parameter("y", "n"), Parameter("p", "m")
SIGNATURES = {
    "rhs": Signature("rhs", (_T, _Y, _P, Parameter("dydt", "n", stage=True))),
    "event": Signature("event", (_T, _Y, _P), returns="float64"),
}


def def_source(name, kind, lines):
    """The text of ``def name(<the parameters of kind>):`` with ``lines`` as its body."""
    return f"def {name}({SIGNATURES[kind].text}):\n" + "".join(f"    {line}\n" for line in lines)


# ---- the record ----

@dataclass(frozen=True)
class Helper:
    """A plain function rendered into the module next to the plugin that calls it."""

    name: str
    rendered_name: str
    source: str
    globals_: dict


@dataclass(frozen=True, eq=False)
class Plugin:
    """One user function as the generated module holds it: what the renderer consumes.

    Attributes
    ----------
    kind : str
        ``"rhs"`` (``def name(t, y, p, dydt)``) or ``"event"`` (``def name(t, y, p)``):
        a key of :data:`SIGNATURES`, which holds the parameters of each.
    name : str
        The name of the ``def`` in ``source``.
    source : str
        The ``def`` as it will be rendered (before renaming).
    globals_ : dict
        The globals it reads, resolved: name -> (kind, value), kind being
        ``"module"`` (value: the module's import name) or ``"const"`` (value: a
        Python literal as text).
    helpers : tuple of Helper
        Plain functions it calls by their rendered names, rendered next to it.
    origin : str
        Where it was defined (``file:line``, or a description), for messages.
    def_line : int or None
        The line of its ``def`` in the user's file (None: not known).
    display : str
        How messages name it (the Python function's name for a plain adapter).
    registered : bool
        True when it came through the registry (a decorator or source text); False
        for a plain callable's adapter or a composed plugin.
    key : str
        :func:`digest` of ``source``, ``globals_`` and ``helpers``: what identifies
        the rendered code (equal keys render equally).
    """

    kind: str
    name: str
    source: str
    globals_: dict
    helpers: tuple = ()
    origin: str = ""
    def_line: int = None
    display: str = None
    registered: bool = True
    key: str = field(init=False)

    def __post_init__(self):
        if self.kind not in SIGNATURES:
            raise ValueError(f"a plugin's kind is one of {', '.join(map(repr, SIGNATURES))}, "
                             f"not {self.kind!r}")
        object.__setattr__(self, "globals_", dict(self.globals_))  # the key stays true
        object.__setattr__(self, "helpers", tuple(self.helpers))
        if self.display is None:
            object.__setattr__(self, "display", self.name)
        object.__setattr__(self, "key", digest(self.source, self.globals_, self.helpers))

    @property
    def rendered_name(self):
        """The name of its ``def`` in the generated module."""
        return f"user_{self.kind}_{self.name}"


def digest(source, globals_, helpers=()):
    """What identifies a function's rendered code: its source, its globals and its
    helpers' rendered names, sources and globals (16 hex digits)."""
    items = sorted(globals_.items()) + [
        (h.rendered_name, h.source, sorted(h.globals_.items())) for h in helpers]
    return hashlib.sha256((source + repr(items)).encode()).hexdigest()[:16]


def record_of(fn):
    """The :class:`Plugin` of ``fn``: a record, or a user's function object holding one
    (:class:`batchivp.registry.UserFunction`)."""
    if isinstance(fn, Plugin):
        return fn
    record = getattr(fn, "plugin", None)
    if not isinstance(record, Plugin):
        raise TypeError(f"expected a registered function or a Plugin record, got {fn!r}")
    return record


# ---- the source that defined a function ----

class SourceError(Exception):
    """A function's defining source cannot be found; the message says why."""


def function_source(func):
    """``(text, filename, first_line, file_text)``: the dedented block of source lines
    that starts at ``func``'s first line (its first decorator), decorators included,
    and the whole text it was read from.

    Read through ``linecache`` from the file named in the code object (not through
    ``inspect.getsource``, which follows ``__wrapped__`` to another function), and
    checked with :func:`check_defines`.
    """
    code = func.__code__
    filename = code.co_filename
    lines = linecache.getlines(filename, func.__globals__)
    if not lines or code.co_firstlineno > len(lines):
        raise SourceError(f"its source cannot be read (defined in {filename})")
    file_text = "".join(lines)
    check_defines(func, file_text)
    block = inspect.getblock(lines[code.co_firstlineno - 1:])
    return textwrap.dedent("".join(block)), filename, code.co_firstlineno, file_text


def check_defines(func, file_text):
    """Raise :class:`SourceError` unless ``file_text`` (the text of ``func``'s file as
    read now) compiles to ``func``'s code at its line: the file may have been edited
    after ``func`` was defined (a running script changed on disk), and rendering the
    new text would silently solve another function.

    The whole file is compiled, as when it was imported: the bytecode of a function
    depends on its context (closures, names bound by imports)."""
    code = func.__code__
    try:
        tree = ast.parse(file_text)
        if "@pytest_ar" in func.__globals__:  # a test module: pytest rewrote its asserts
            from _pytest.assertion.rewrite import rewrite_asserts

            rewrite_asserts(tree, file_text.encode(), code.co_filename)
        module = compile(tree, code.co_filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, ImportError):
        module = None
    expected = _code_print(code)
    if module is None or not any(_code_print(found) == expected for found in
                                 _find_codes(module, code.co_name, code.co_firstlineno)):
        raise SourceError(
            f"the text of {code.co_filename} at line {code.co_firstlineno} does not compile "
            f"to {code.co_name!r}: the file changed since the function was defined (or "
            "it was defined from another text); re-run the script or re-import the "
            "module, or pass the source text to batchivp.register_rhs/register_event")


def _find_codes(code, name, first_line):
    """The code objects ``name`` starting at ``first_line`` among the constants of
    ``code``, at any depth (several lambdas may share a line)."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name == name and const.co_firstlineno == first_line:
                yield const
            yield from _find_codes(const, name, first_line)


def _code_print(code):
    """What a code object computes, without its positions."""
    consts = tuple(_code_print(c) if isinstance(c, types.CodeType) else (type(c), repr(c))
                   for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_argcount, code.co_kwonlyargcount,
            code.co_posonlyargcount, consts)


# ---- renaming ----

def rename_tokens(source, mapping):
    """Rename the names of ``source`` by ``mapping``: NAME tokens that are read or
    written, never attribute names (after a dot), keyword-argument names of calls
    (``f(K=K)`` renames the value only) or parameter names of defs and lambdas."""
    fixed = _fixed_name_positions(source)
    out = []
    previous = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if (tok.type == tokenize.NAME and tok.string in mapping
                and not (previous is not None and previous.type == tokenize.OP and previous.string == ".")
                and (tok.start[0], len(tok.line[:tok.start[1]].encode())) not in fixed):
            tok = tok._replace(string=mapping[tok.string])
        out.append(tok)
        if tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = tok
    return tokenize.untokenize(out)


def _fixed_name_positions(source):
    """(line, byte column) of the names in ``source`` that are not variables: keyword
    arguments of calls and parameters of defs and lambdas."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    fixed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg is not None:
            fixed.add((node.lineno, node.col_offset))
        elif isinstance(node, ast.arg):
            fixed.add((node.lineno, node.col_offset))
    return fixed


# ---- the names a function reads ----

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
    name = def_name(source)
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


def def_name(source):
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
        return number_literal(value)
    if isinstance(value, (complex, np.complexfloating)):
        return f"complex({number_literal(value.real)}, {number_literal(value.imag)})"
    if isinstance(value, tuple):
        items = [_constant(v) for v in value]
        if all(i is not None and not i.startswith("np.") for i in items):
            return "(" + "".join(i + ", " for i in items) + ")"
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= MAX_ARRAY_CONSTANT:
        dtype = "np.float64" if value.dtype.kind == "f" else "np.int64"
        if value.dtype.kind == "b":
            dtype = "np.bool_"
        flat = ", ".join(number_literal(v) for v in value.ravel().tolist())
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
            edits[spans[n - 1]] = rendered = add_helper(how[1], helpers, seen)
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
            globals_[name] = ("helper", add_helper(target, helpers, seen))
            continue
        raise Uncompilable(f"it uses {name!r}, a {type(value).__name__}, which numba cannot "
                           "take into compiled code (numbers, tuples, small arrays of "
                           "numbers, modules and plain functions can be)")
    return source, globals_


def add_helper(func, helpers, seen):
    """Render ``func`` as a helper (once); return its rendered name."""
    analysis = analyse(func)
    key = (func.__code__, id(func))
    if key in seen:
        if (key, "busy") in seen:  # a recursive call: its name is handed out
            seen[key, "called"] = True
        return seen[key]
    # A provisional name while the body is resolved (a recursive helper calls it).
    source_digest = hashlib.sha256(analysis.source.encode()).hexdigest()[:10]
    rendered_name = f"plain_{analysis.name}_{source_digest}"
    seen[key] = rendered_name
    seen[key, "busy"] = True
    source, globals_ = rendered_source(func, analysis, helpers, seen)
    del seen[key, "busy"]
    # Helpers are called by their rendered names: rename those before the renderer's
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


def resolve_device_globals(def_source, name, func_globals, known=()):
    """Map each global the ``def name`` of ``def_source`` reads (other than those
    ``known``) to something a registered function's module can hold: a module, a
    number, a tuple of numbers. Raises :class:`Uncompilable` naming the first that
    is none of these (or undefined)."""
    table = symtable.symtable(def_source, "<rhs>", "exec")
    function_table = next(c for c in table.get_children() if c.get_name() == name)
    resolved = {}
    for gname in sorted(function_table.get_globals()):
        if gname in known:
            continue
        if gname in func_globals:
            value = func_globals[gname]
        elif hasattr(builtins, gname):
            continue
        else:
            raise Uncompilable(f"uses the undefined name {gname!r}")
        if isinstance(value, types.ModuleType):
            resolved[gname] = ("module", value.__name__)
        elif isinstance(value, (*_BOOL_TYPES, numbers.Real)) and not isinstance(value, complex):
            resolved[gname] = ("const", number_literal(value))
        elif isinstance(value, tuple) and all(
                isinstance(v, (*_BOOL_TYPES, numbers.Real)) and not isinstance(v, complex)
                for v in value):
            resolved[gname] = ("const", "(" + "".join(number_literal(v) + ", " for v in value) + ")")
        else:
            raise Uncompilable(
                f"uses the global {gname!r} of type {type(value).__name__}, which "
                "cannot be carried into the generated kernel; use numbers, tuples of "
                "numbers or modules such as math, or pass the value through params")
    return resolved


def number_literal(value):
    """A Python literal for a number; inf and NaN as ``math`` constants (``repr`` gives
    the bare names ``inf``/``nan``, which the generated module does not define)."""
    if isinstance(value, _BOOL_TYPES):
        return repr(bool(value))
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    value = float(value)
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(value)

