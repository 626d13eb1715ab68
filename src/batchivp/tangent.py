"""Forward-mode derivatives (tangents, JVPs) of plain device functions, by source
transformation.

:func:`tangent_program` reads the text of a user function (a right-hand side, an event)
and of the helpers it calls, and writes for each a *tangent function*: the same
computation, statement for statement, plus the directional derivative of every value
that depends on the inputs. The text it writes follows the device contract
(docs/architecture.md, point 1: ``math`` only, no allocation, no exceptions), so it
runs as plain Python and compiles with ``numba.njit`` and ``numba.cuda.jit``. Prior
art: Google's Tangent, Tapenade.

Calling convention of ``tangent_<key>`` for ``def f(a1, ..., ak)``, parameter by
parameter: a scalar ``x`` becomes ``x, d_x`` (its tangent); an array ``a`` becomes
``a, d_a``, an array as long as ``a`` (typically a view into a longer one, such as a
sensitivity column) whose ``d_a[i]`` is the tangent of ``a[i]``. A write ``a[i] = e``
becomes ``d_a[i] = <tangent of e>`` then ``a[i] = e``; a slice ``p[k:m]`` passed to a
helper travels as ``p[k:m], d_p[k:m]``. It returns nothing when ``f`` returns nothing,
``(v, d_v)`` for a number, ``(v1, ..., vk, d_v1, ..., d_vk)`` for a tuple of ``k``
numbers. The primal statements are ``f``'s own, in order, so the primal results are
bit-identical.

Tangent subscripts are the primal's, without offsets, so that :mod:`batchivp.bounds`
proves them in range as it proves the primal's: with the entry called with constant
slices (``y[:n], y[n:2 * n], ...``), an index bounded by constants needs no run-time
check in ``d_a`` either. An index bounded only by a length (``i < len(a)``) it cannot
tie to ``d_a``, so those tangent subscripts are checked at run time.

Only values that depend on an input are differentiated (activity analysis, a fixed
point over the body); loop counters and index arithmetic stay plain integers, and a
structurally zero tangent is never written as arithmetic. Constructs without a rule
raise :class:`Undifferentiable`, naming the function, the line and what to do.

What the text reads from the module it is rendered into: ``math``; the builtins and
module constants by the names the sources use; the other tangent functions; and the
primal functions, by their keys, where a call has no tangent to compute (no array
argument, no argument that depends on the inputs). A negative index ``a[-1]`` or one
computed from ``len(a)`` stays as written in ``d_a[...]``, which is why each ``d_a``
must be exactly as long as its ``a`` (pass the state's slice and a column's, not the
state with its sensitivity columns). A tangent depends only on its function's text and
array parameters, not on its callers, so programs sharing a helper share its tangent.
Calls in an expression are computed first (hoisted into temporaries, in evaluation
order); a call that may write an array the statement read before it is refused rather
than reordered.
"""

import ast
import copy
import math
import textwrap
from dataclasses import dataclass, field

# Module names the functions may use for math and numpy (as rendered by batchivp).
MODULES = {"math": "math", "np": "numpy", "numpy": "numpy"}


class Undifferentiable(Exception):
    """A construct with no derivative rule.

    Attributes
    ----------
    function : str
        The key of the function that holds it.
    line : int
        Its line (1-based) within that function's source text.
    text : str
        That source line.
    reason : str
        Why, and what to write instead.
    """

    def __init__(self, function, line, text, reason):
        super().__init__(function, line, text, reason)  # args: so that it pickles
        self.function, self.line, self.text, self.reason = function, line, text, reason

    def __str__(self):
        return f"{self.function}, line {self.line}: `{self.text}`: {self.reason}"


def tangent_name(key):
    """The name of the tangent function of the function ``key``."""
    return f"tangent_{key}"


# ---- derivative rules ----

# Math functions: the tangent of a call, one term per argument in terms of the arguments
# u, v, their tangents du, dv and the call's value R (None: a zero derivative), then
# optionally one template for both arguments at once.
RULES = {
    "sqrt": ("0.5 * du / R",),
    "exp": ("R * du",),
    "expm1": ("(R + 1.0) * du",),
    "log": ("du / u",),
    "log1p": ("du / (1.0 + u)",),
    "log10": ("du / (u * 2.302585092994046)",),
    "log2": ("du / (u * 0.6931471805599453)",),
    "sin": ("math.cos(u) * du",),
    "cos": ("-(math.sin(u) * du)",),
    "tan": ("(1.0 + R * R) * du",),
    "asin": ("du / math.sqrt(1.0 - u * u)",),
    "acos": ("-(du / math.sqrt(1.0 - u * u))",),
    "atan": ("du / (1.0 + u * u)",),
    "sinh": ("math.cosh(u) * du",),
    "cosh": ("math.sinh(u) * du",),
    "tanh": ("(1.0 - R * R) * du",),
    "asinh": ("du / math.sqrt(u * u + 1.0)",),
    "acosh": ("du / math.sqrt(u * u - 1.0)",),
    "atanh": ("du / (1.0 - u * u)",),
    "erf": ("1.1283791670955126 * math.exp(-(u * u)) * du",),  # 2 / sqrt(pi)
    "erfc": ("-(1.1283791670955126 * math.exp(-(u * u)) * du)",),
    "fabs": ("math.copysign(1.0, u) * du",),
    "degrees": ("57.29577951308232 * du",),
    "radians": ("0.017453292519943295 * du",),
    "atan2": ("v * du / (u * u + v * v)", "-(u * dv / (u * u + v * v))",
              "(v * du - u * dv) / (u * u + v * v)"),
    "hypot": ("u * du / R", "v * dv / R", "(u * du + v * dv) / R"),
    "copysign": ("math.copysign(1.0, u) * math.copysign(1.0, v) * du", None),
    "floor": (None,), "ceil": (None,), "trunc": (None,),
    "isfinite": (None,), "isnan": (None,), "isinf": (None,),
    "square": ("2.0 * u * du",), "sign": (None,),  # numpy's only
}
# Rules written out in code (Tangent._d_special): builtins and pow.
SPECIAL = {"min", "max", "float", "int", "round", "len", "bool", "pow"}
BUILTINS = {"abs": "fabs", **{name: name for name in SPECIAL}}
# numpy spellings of the same functions.
NUMPY = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
         "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "power": "pow",
         "abs": "fabs", "absolute": "fabs", "minimum": "min", "maximum": "max",
         "float64": "float", "deg2rad": "radians", "rad2deg": "degrees"}
SUM_FUNCTIONS = {"dot", "sum", "fsum", "prod", "vdot", "inner", "linalg", "norm", "mean",
                 "cumsum", "matmul", "cross", "einsum"}

REFUSED_EXPRESSIONS = {
    ast.Lambda: "a lambda: write it as a function of its own (a def this one calls)",
    ast.ListComp: "a comprehension allocates: write the loop with `for i in range(...)`",
    ast.SetComp: "a comprehension allocates: write the loop with `for i in range(...)`",
    ast.DictComp: "a comprehension allocates: write the loop with `for i in range(...)`",
    ast.GeneratorExp: "a generator: write the loop with `for i in range(...)`",
    ast.List: "a list allocates: use numbers, or write into an array parameter",
    ast.Dict: "a dict allocates: use numbers, or write into an array parameter",
    ast.Set: "a set allocates: use numbers, or write into an array parameter",
    ast.JoinedStr: "an f-string: a device function computes numbers only",
    ast.NamedExpr: "an assignment expression (:=): assign on a line of its own",
    ast.Starred: "a starred expression: pass the values one by one",
    ast.Await: "await has no place in a device function",
    ast.Yield: "a generator function cannot be differentiated",
    ast.YieldFrom: "a generator function cannot be differentiated",
}
REFUSED_STATEMENTS = {
    "FunctionDef": "a nested function: define it at module level and call it "
                   "(the functions it calls are differentiated too)",
    "AsyncFunctionDef": "a nested function: define it at module level and call it",
    "ClassDef": "a class definition has no place in a device function",
    "Global": "global state cannot be differentiated: pass the value as an argument",
    "Nonlocal": "nonlocal state cannot be differentiated: pass the value as an argument",
    "With": "a `with` block: device functions cannot use context managers",
    "AsyncWith": "a `with` block: device functions cannot use context managers",
    "Try": "exceptions cannot be raised or caught in a device function",
    "TryStar": "exceptions cannot be raised or caught in a device function",
    "Raise": "exceptions cannot be raised in a device function: return NaN instead",
    "Assert": "an assert raises an exception, which a device function cannot",
    "Import": "an import inside the function: import at module level",
    "ImportFrom": "an import inside the function: import at module level",
    "Delete": "`del` has no place in a device function",
    "Match": "a `match` statement: write it with if/elif",
    "AsyncFor": "an async loop has no place in a device function",
}


# ---- small AST builders and the zero-aware arithmetic of tangents ----
# A tangent is an expression node, or None where it is structurally zero.

def _name(identifier, store=False):
    return ast.Name(identifier, ast.Store() if store else ast.Load())


def _const(value):
    """A number literal (a negative one as ``-literal``, which unparses safely)."""
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


def _zero_if_none(node):
    return ast.Constant(0.0) if node is None else node


def _assign(target, value):
    return ast.Assign([target], value)


def _math(function, *args):
    return ast.Call(ast.Attribute(_name("math"), function, ast.Load()), list(args), [])


def _is_number(node, value):
    return (isinstance(node, ast.Constant) and type(node.value) in (int, float)
            and node.value == value)


def _is_neg(node):
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)


def _neg(a):
    if a is None:
        return None
    return a.operand if _is_neg(a) else ast.UnaryOp(ast.USub(), a)


def _add(a, b):
    if a is None or b is None:
        return b if a is None else a
    if _is_neg(b):
        return _sub(a, b.operand)
    if _is_neg(a):
        return _sub(b, a.operand)
    return ast.BinOp(a, ast.Add(), b)


def _sub(a, b):
    if b is None:
        return a
    if a is None:
        return _neg(b)
    if _is_neg(b):
        return _add(a, b.operand)
    return ast.BinOp(a, ast.Sub(), b)


def _mul(a, b):
    if a is None or b is None or _is_number(a, 0) or _is_number(b, 0):
        return None
    if _is_number(a, 1) or _is_number(b, 1):
        return b if _is_number(a, 1) else a
    if _is_neg(a):
        return _neg(_mul(a.operand, b))
    if _is_neg(b):
        return _neg(_mul(a, b.operand))
    return ast.BinOp(a, ast.Mult(), b)


def _div(a, b):
    if a is None:
        return None
    if _is_neg(a):
        return _neg(_div(a.operand, b))
    return ast.BinOp(a, ast.Div(), b)


_TEMPLATES = {}


class _Substitute(ast.NodeTransformer):
    def __init__(self, values):
        self.values = values

    def visit_Name(self, node):
        value = self.values.get(node.id)
        return node if value is None else copy.deepcopy(value)


def _instantiate(template, values):
    """The expression ``template`` with its placeholder names replaced by ``values``."""
    if template not in _TEMPLATES:
        _TEMPLATES[template] = ast.parse(template, mode="eval").body
    return _Substitute(values).visit(copy.deepcopy(_TEMPLATES[template]))


def _constant_number(node):
    """The value of a number literal (``2.0``, ``-1``), or None."""
    if _is_neg(node):
        value = _constant_number(node.operand)
        return None if value is None else -value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return None


def _prefix(base, used):
    """``base`` lengthened with underscores until no name in ``used`` starts with it."""
    while any(name.startswith(base) for name in used):
        base += "_"
    return base


# ---- one function, parsed ----

@dataclass
class Function:
    """One function of the program and what the analysis found out about it."""

    key: str
    node: ast.FunctionDef
    lines: list
    params: tuple
    names: set  # every identifier it mentions
    stored: set  # its parameters and locals
    arrays: frozenset = frozenset()
    sites: dict = field(default_factory=dict)  # parameter position -> (is array, caller key)
    arity: int = 0  # values returned: 0 (nothing), 1 (a number) or k (a tuple of k)
    returns_tuple: bool = False
    active: set = field(default_factory=set)
    ret_active: tuple = ()
    modules: dict = field(default_factory=lambda: dict(MODULES))  # alias -> module
    writes: frozenset = frozenset()  # array parameters it may write (or its callees)

    def fail(self, node, reason, line=None):
        """Raise :class:`Undifferentiable` at ``node`` (or ``line`` if it has none)."""
        line = getattr(node, "lineno", None) or line or self.node.lineno
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        raise Undifferentiable(self.key, line, text, reason)

    def is_helper_call(self, node, keys):
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in keys and node.func.id not in self.stored)

    def helper_calls(self, keys):
        return [n for n in ast.walk(self.node) if self.is_helper_call(n, keys)]


def parse(key, source, modules=MODULES):
    """The :class:`Function` of the one ``def`` in ``source``; ``modules``: the names
    under which it may use math and numpy (alias -> module name)."""
    text = textwrap.dedent(source)
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise Undifferentiable(key, exc.lineno or 1, (exc.text or "").strip(),
                               f"not valid Python: {exc.msg}") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(defs) != 1:
        raise Undifferentiable(key, 1, lines[0].strip() if lines else "",
                               "the source text must hold exactly one `def`")
    node = defs[0]
    params = tuple(arg.arg for arg in node.args.args)
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | set(params)
    stored = {n.id for n in ast.walk(node)
              if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    fn = Function(key, node, lines, params, names | {node.name}, stored | set(params),
                  modules=dict(modules))
    for sub in ast.walk(node):  # before anything reads returns through them
        if sub is not node and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.ClassDef, ast.Lambda)):
            reason = REFUSED_EXPRESSIONS.get(type(sub)) or REFUSED_STATEMENTS[type(sub).__name__]
            fn.fail(sub, reason)
    a = node.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        fn.fail(node, "the parameters must be plain names without default values "
                      "(*args, **kwargs and keyword-only parameters cannot be compiled "
                      "for the device)")
    return fn


# ---- the program: which functions, which of their parameters are arrays ----

def positional(caller, call, callee):
    """The argument nodes of ``call`` in the order of ``callee``'s parameters."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords):
        caller.fail(call, f"`{callee.key}` is called with *args or **kwargs: pass the "
                          "arguments one by one")
    slots = list(call.args) + [None] * (len(callee.params) - len(call.args))
    for keyword in call.keywords:
        if keyword.arg not in callee.params or slots[callee.params.index(keyword.arg)]:
            caller.fail(call, f"`{callee.key}` has no parameter `{keyword.arg}` left "
                              "to pass by keyword")
        slots[callee.params.index(keyword.arg)] = keyword.value
    if len(slots) != len(callee.params) or any(s is None for s in slots):
        caller.fail(call, f"`{callee.key}` takes {len(callee.params)} arguments "
                          f"({', '.join(callee.params)})")
    return slots


def is_array_argument(fn, node):
    """Whether ``node``, an argument of a call in ``fn``, passes an array: an array
    parameter of ``fn`` or a slice of one."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        node = node.value
    return isinstance(node, ast.Name) and node.id in fn.arrays


def _record_site(caller, call, callee):
    """Infer ``callee``'s array parameters from one of its call sites in ``caller``."""
    for i, arg in enumerate(positional(caller, call, callee)):
        is_array = is_array_argument(caller, arg)
        was, where = callee.sites.setdefault(i, (is_array, caller.key))
        if was != is_array:
            kinds = {True: "an array", False: "a number"}
            caller.fail(call, f"`{callee.key}` receives {kinds[was]} as its parameter "
                              f"`{callee.params[i]}` from `{where}` and {kinds[is_array]} "
                              "here; a parameter is an array at every call or a number at "
                              "every call")
    callee.arrays = frozenset(p for i, p in enumerate(callee.params) if callee.sites[i][0])


def reach(functions, entry, arrays, modules=MODULES):
    """The :class:`Function` of ``entry`` and of every function it reaches by calls,
    their array parameters inferred from their call sites; and the keys in post-order
    (callees before callers). Refuses recursion."""
    infos = {entry: parse(entry, functions[entry], modules)}
    unknown = set(arrays) - set(infos[entry].params)
    if unknown:
        raise ValueError(f"arrays names {sorted(unknown)}, which are not parameters of "
                         f"{entry!r} ({', '.join(infos[entry].params)})")
    infos[entry].arrays = frozenset(arrays)
    pending = [entry]
    while pending:
        caller = infos[pending.pop()]
        for call in caller.helper_calls(functions):
            key = call.func.id
            if key not in infos:
                infos[key] = parse(key, functions[key], modules)
                pending.append(key)
            _record_site(caller, call, infos[key])
    order, state = [], {}

    def visit(key):  # depth first; state: 1 on the path, 2 done
        state[key] = 1
        fn = infos[key]
        for call in fn.helper_calls(functions):
            callee = call.func.id
            if state.get(callee) == 1:
                fn.fail(call, f"`{callee}` is called recursively; recursion cannot be "
                              "differentiated here (nor compiled for cuda): write it as a loop")
            if callee not in state:
                visit(callee)
        state[key] = 2
        order.append(key)

    visit(entry)
    return infos, order


def return_kind(fn, infos):
    """Set ``fn.arity`` and ``fn.returns_tuple`` from its return statements."""
    first = None
    for node in ast.walk(fn.node):
        if not isinstance(node, ast.Return):
            continue
        value = node.value
        if value is None:
            kind = (0, False)
        elif isinstance(value, ast.Tuple):
            kind = (len(value.elts), True)
        elif fn.is_helper_call(value, infos):
            kind = (infos[value.func.id].arity, infos[value.func.id].returns_tuple)
        else:
            kind = (1, False)
        if first is None:
            first = kind, node.lineno
        elif kind != first[0]:
            said = {(0, False): "nothing", (1, False): "a number"}
            fn.fail(node, f"it returns {said.get(kind, f'a tuple of {kind[0]}')} here and "
                          f"{said.get(first[0], f'a tuple of {first[0][0]}')} at line "
                          f"{first[1]}; a tangent needs one kind of result")
    fn.arity, fn.returns_tuple = first[0] if first else (0, False)


def call_writes(fn, call, infos):
    """The arrays of ``fn`` that the helper call ``call`` may write."""
    callee, written = infos[call.func.id], set()
    for param, arg in zip(callee.params, positional(fn, call, callee)):
        base = arg.value if isinstance(arg, ast.Subscript) else arg
        if param in callee.writes and isinstance(base, ast.Name):
            written.add(base.id)
    return written


def array_writes(fn, infos):
    """Set ``fn.writes``: the array parameters it may write, itself or through the
    functions it calls (whose ``writes`` are set)."""
    written = set()
    for node in ast.walk(fn.node):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                        written.add(t.value.id)
        elif fn.is_helper_call(node, infos):
            written |= call_writes(fn, node, infos)
    fn.writes = frozenset(written & fn.arrays)


# ---- activity: which values depend on the inputs ----

def needs_tangent(fn, call, infos, active):
    """Whether the helper call ``call`` in ``fn`` has a tangent to compute: it passes
    an array (which it may write), or a number that depends on the inputs to a function
    whose result may depend on it. Otherwise the primal function is called."""
    callee = infos[call.func.id]
    args = positional(fn, call, callee)
    return bool(callee.arrays) or any(callee.ret_active) and any(
        is_active(fn, a, infos, active) for a in args)


def is_active(fn, node, infos, active):
    """Whether the value of expression ``node`` may depend on the inputs, given the
    ``active`` names of ``fn``. Comparisons, int(), floor() and the like are not."""
    if isinstance(node, ast.Name):
        return node.id in active
    if isinstance(node, (ast.Constant, ast.Attribute, ast.Compare, ast.BoolOp)):
        return False
    if isinstance(node, ast.Subscript):
        base = node.value
        return (isinstance(base, ast.Name) and base.id in fn.arrays) or is_active(
            fn, base, infos, active)
    if isinstance(node, ast.Call):
        if fn.is_helper_call(node, infos):
            return any(infos[node.func.id].ret_active) and needs_tangent(fn, node, infos, active)
        rule = _rule_name(node.func, fn)
        if rule in ("int", "round", "len", "bool") or RULES.get(rule) == (None,):
            return False
        return any(is_active(fn, a, infos, active) for a in node.args)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
        return False
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        return False
    if isinstance(node, ast.IfExp):
        return is_active(fn, node.body, infos, active) or is_active(fn, node.orelse, infos, active)
    return any(is_active(fn, child, infos, active) for child in ast.iter_child_nodes(node)
               if isinstance(child, ast.expr))


def _rule_name(func, fn):
    """The rule name of a call of ``func`` (a math function, numpy's or a builtin),
    or None if it has none."""
    if isinstance(func, ast.Name):
        return None if func.id in fn.stored else BUILTINS.get(func.id)
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id not in fn.stored):
        return None
    module = fn.modules.get(func.value.id)
    if module == "math":
        known = (func.attr in RULES or func.attr == "pow") and hasattr(math, func.attr)
        return func.attr if known else None
    attr = NUMPY.get(func.attr, func.attr)
    return attr if module == "numpy" and (attr in RULES or func.attr in NUMPY) else None


def _assignments(fn, node, infos, active):
    """(name, value is active) for each name that statement ``node`` assigns."""
    if isinstance(node, ast.For):
        return [(t.id, False) for t in ast.walk(node.target) if isinstance(t, ast.Name)]
    if isinstance(node, ast.AugAssign):
        node = ast.Assign([node.target], node.value)
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        node = ast.Assign([node.target], node.value)
    if not isinstance(node, ast.Assign):
        return []
    found = []
    for target in node.targets:
        if isinstance(target, ast.Name):
            found.append((target.id, is_active(fn, node.value, infos, active)))
        elif isinstance(target, (ast.Tuple, ast.List)):
            value = node.value
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                flags = [is_active(fn, v, infos, active) for v in value.elts]
            elif fn.is_helper_call(value, infos) and infos[value.func.id].returns_tuple:
                call_active = needs_tangent(fn, value, infos, active)
                flags = [call_active and a for a in infos[value.func.id].ret_active]
            else:
                flags = [is_active(fn, value, infos, active)] * len(target.elts)
            found += [(t.id, a) for t, a in zip(target.elts, flags) if isinstance(t, ast.Name)]
    return found


def activity(fn, infos):
    """Set ``fn.active`` (parameters and the locals whose values may depend on them, a
    fixed point over the whole body, loops included) and ``fn.ret_active`` (which
    returned values may)."""
    active = set(fn.params)
    changed = True
    while changed:
        changed = False
        for node in ast.walk(fn.node):
            for name, value_active in _assignments(fn, node, infos, active):
                if value_active and name not in active:
                    active.add(name)
                    changed = True
    fn.active = active
    flags = [False] * fn.arity
    for node in ast.walk(fn.node):
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        value = node.value
        if isinstance(value, ast.Tuple):
            found = [is_active(fn, v, infos, active) for v in value.elts]
        elif fn.is_helper_call(value, infos):
            call_active = needs_tangent(fn, value, infos, active)
            found = [call_active and a for a in infos[value.func.id].ret_active]
        else:
            found = [is_active(fn, value, infos, active)]
        flags = [a or b for a, b in zip(flags, found)]
    fn.ret_active = tuple(flags)


# ---- the transformation of one function ----

class Tangent:
    """Writes the tangent function of one analysed :class:`Function`.

    Names it introduces start with prefixes no name of the function starts with:
    ``d_`` (tangents) and ``tmp_`` (temporaries), lengthened with underscores where
    needed.
    """

    def __init__(self, fn, infos):
        self.fn, self.infos = fn, infos
        self.active = set(fn.active)
        self.dpre = _prefix("d_", fn.names)
        self.tpre = _prefix("tmp_", fn.names)
        self.count = 0
        self.line = fn.node.lineno
        self.read = set()  # arrays the statement being transformed has read so far
        for call in fn.helper_calls(infos):
            if tangent_name(call.func.id) in fn.names:
                fn.fail(call, f"the name `{tangent_name(call.func.id)}` is taken by the "
                              f"tangent of `{call.func.id}`: rename it")
        if "math" in fn.stored:
            fn.fail(fn.node, "a local named `math` would hide the `math` the tangent "
                             "uses: rename it")

    def d(self, name):
        return self.dpre + name

    def temp(self):
        self.count += 1
        return f"{self.tpre}{self.count}"

    def fail(self, node, reason):
        self.fn.fail(node, reason, self.line)

    def is_active(self, node):
        return is_active(self.fn, node, self.infos, self.active)

    def is_helper(self, node):
        return self.fn.is_helper_call(node, self.infos)

    def needs_tangent(self, node):
        return self.is_helper(node) and needs_tangent(self.fn, node, self.infos, self.active)

    def source(self):
        """The text of ``def tangent_<key>(...)``."""
        fn = self.fn
        params = []
        for p in fn.params:
            params += [p, self.d(p)]
        node = ast.parse(f"def {tangent_name(fn.key)}({', '.join(params)}):\n    pass\n").body[0]
        node.body = self.block(fn.node.body) or [ast.Pass()]
        return ast.unparse(ast.fix_missing_locations(node)) + "\n"

    # -- array elements and call arguments --

    def element(self, name, index, store=False):
        """The tangent of ``name[index]``: ``d_name[index]`` (``d_name`` is as long as
        ``name``, so a negative index or one computed from ``len(name)`` means the
        same element)."""
        return ast.Subscript(_name(self.d(name)), copy.deepcopy(index),
                             ast.Store() if store else ast.Load())

    def array_argument(self, node):
        """``a, d_a`` for an array argument ``a``; ``a[s], d_a[s]`` for a slice of one
        (the same slice of the tangent: the same elements)."""
        if isinstance(node, ast.Name):
            return [node, _name(self.d(node.id))]
        view = ast.Subscript(_name(self.d(node.value.id)), copy.deepcopy(node.slice),
                             ast.Load())
        return [node, view]

    def tangent_call(self, call, out):
        """The call of the tangent of helper call ``call``; the calls its arguments
        make are hoisted into ``out``, in evaluation order."""
        callee = self.infos[call.func.id]
        slots = positional(self.fn, call, callee)
        hoisted = {}
        for arg in list(call.args) + [k.value for k in call.keywords]:
            hoisted[id(arg)] = self.hoist(arg, out)
        args = []
        for param, slot in zip(callee.params, slots):
            arg = hoisted[id(slot)]
            if param in callee.arrays:
                args += self.array_argument(arg)
            else:
                args += [arg, _zero_if_none(self.tangent(arg))]
        return ast.Call(_name(tangent_name(callee.key)), args, [])

    def check_callee(self, call, arity, as_tuple):
        """Refuse a call whose result is used as ``arity`` values (a tuple or not)."""
        callee = self.infos[call.func.id]
        if (callee.arity, callee.returns_tuple) == (arity, as_tuple):
            return
        said = {0: "nothing", 1: "a number"}
        has = "a tuple of %d" % callee.arity if callee.returns_tuple else said[callee.arity]
        hint = (f": unpack it on a line of its own, `a, b = {callee.key}(...)`"
                if callee.returns_tuple else "")
        self.fail(call, f"`{callee.key}` returns {has}, used here as "
                        f"{f'{arity} values' if as_tuple else 'a number'}{hint}")

    # -- hoisting calls out of expressions --

    def hoist(self, node, out):
        """``node`` with each helper call that has a tangent replaced by a temporary,
        assigned by statements appended to ``out`` in evaluation order."""
        self.validate(node)
        return self._hoist(node, out)

    def _has_tangent_call(self, node):
        return any(self.needs_tangent(n) for n in ast.walk(node))

    def _hoist(self, node, out):
        if self.needs_tangent(node):
            self.check_callee(node, 1, False)
            call = self.tangent_call(node, out)
            self.check_order(node)
            value = self.temp()
            if self.infos[node.func.id].ret_active[0]:
                self.active.add(value)
            dvalue = self.d(value) if value in self.active else self.temp()
            out.append(_assign(ast.Tuple([_name(value, True), _name(dvalue, True)], ast.Store()),
                               call))
            return _name(value)
        if isinstance(node, ast.IfExp) and (self._has_tangent_call(node.body)
                                            or self._has_tangent_call(node.orelse)):
            return self._hoist_ifexp(node, out)
        lazy = (node.values[1:] if isinstance(node, ast.BoolOp) else
                node.comparators[1:] if isinstance(node, ast.Compare) else [])
        if any(self._has_tangent_call(later) for later in lazy):
            self.fail(node, "a call evaluated on some paths only (after `and`/`or`, or in a "
                            "chained comparison): compute it on a line of its own")
        new = copy.copy(node)
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(new, name, self._hoist(value, out))
            elif isinstance(value, list):
                setattr(new, name, [self._hoist(v, out) if isinstance(v, ast.expr) else v
                                    for v in value])
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id in self.fn.arrays):
            self.read.add(node.value.id)
        return new

    def check_order(self, call):
        """Refuse hoisting ``call`` before a read of an array it may write: the
        statement reads that array before the call, and would read it after."""
        clash = call_writes(self.fn, call, self.infos) & self.read
        if clash:
            self.fail(call, f"`{call.func.id}` may write `{min(clash)}`, which this "
                            "statement reads before calling it; the tangent computes calls "
                            "first: read the element into a name on a line of its own")

    def _hoist_ifexp(self, node, out):
        """``a if c else b`` whose branches call helpers, as an if statement assigning a
        temporary (the call of the branch not taken must not run)."""
        test = self._hoist(node.test, out)
        value = self.temp()
        if self.is_active(node):
            self.active.add(value)
        for call in ast.walk(node):  # moved before the rest of the statement too
            if self.needs_tangent(call):
                self.check_order(call)
        branches, read = [], set()
        for branch in (node.body, node.orelse):
            before, self.read = self.read, set(self.read)
            branches.append(self.assign(_name(value, True), branch))
            read |= self.read
            self.read = before
        self.read |= read
        out.append(ast.If(test, *branches))
        return _name(value)

    def validate(self, node):
        """Refuse the constructs of expression ``node`` that have no tangent."""
        called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        for sub in ast.walk(node):
            if type(sub) in REFUSED_EXPRESSIONS:
                self.fail(sub, REFUSED_EXPRESSIONS[type(sub)])
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and not self.is_helper(sub):
                self.rule(sub)
            elif (isinstance(sub, ast.Name) and sub.id in self.infos and id(sub) not in called
                  and sub.id not in self.fn.stored):
                self.fail(sub, f"the function `{sub.id}` is used as a value: only calls of "
                               "it can be differentiated")
            elif isinstance(sub, ast.Attribute) and id(sub) not in called:
                base = sub.value
                if not (isinstance(base, ast.Name) and (
                        base.id in self.fn.modules or base.id in self.fn.arrays
                        and sub.attr in ("shape", "size"))):
                    self.fail(sub, f"it reads the attribute `{ast.unparse(sub)}`; only module "
                                   "constants (math.pi) and an array's shape and size can be read")

    def rule(self, call):
        """The derivative rule of the library call ``call``; refuses a call without one."""
        name = _rule_name(call.func, self.fn)
        if name is None:
            func = ast.unparse(call.func)
            if func == "range":
                self.fail(call, "range() outside the header of a for loop")
            if isinstance(call.func, ast.Name) and func in SUM_FUNCTIONS:
                self.fail(call, f"`{func}` has no derivative rule here; write the sum as a loop")
            if isinstance(call.func, ast.Name):
                self.fail(call, f"`{func}` is neither one of the functions given with it nor "
                                "a function with a derivative rule (math and numpy functions, "
                                "abs, min, max, float, int, round, len, pow)")
            root, _, rest = func.partition(".")
            modules = self.fn.modules
            full = f"{modules[root]}.{rest}" if root in modules else func
            hint = ("write the sum as a loop" if set(func.split(".")) & SUM_FUNCTIONS else
                    "write it with arithmetic and math functions, or as a function of your own")
            self.fail(call, f"{full} has no derivative rule here; {hint}")
        if call.keywords and name != "round" or any(isinstance(a, ast.Starred) for a in call.args):
            self.fail(call, f"`{ast.unparse(call.func)}` is called with keyword or starred "
                            "arguments: pass the numbers by position")
        return name

    # -- tangents of expressions --

    def tangent(self, node, result=None):
        """The tangent of expression ``node`` (None: zero). ``result``: a name holding
        the value of ``node``, which rules such as sqrt's and division's reuse."""
        if isinstance(node, ast.Name):
            if node.id in self.fn.arrays:
                self.fail(node, f"the array `{node.id}` is used as a number: read its "
                                f"elements, {node.id}[i]")
            return _name(self.d(node.id)) if node.id in self.active else None
        if isinstance(node, (ast.Constant, ast.Attribute, ast.Compare)):
            return None
        if isinstance(node, ast.BoolOp):
            if any(self.is_active(v) for v in node.values):
                self.fail(node, "`and`/`or` picks one of its operands, here a number that "
                                "depends on the inputs: write `a if a else b`")
            return None
        if isinstance(node, ast.Subscript):
            return self._d_subscript(node)
        if isinstance(node, ast.BinOp):
            return self._d_binop(node, result)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                operand = self.tangent(node.operand)
                return _neg(operand) if isinstance(node.op, ast.USub) else operand
            return None
        if isinstance(node, ast.IfExp):
            body, orelse = self.tangent(node.body), self.tangent(node.orelse)
            if body is None and orelse is None:
                return None
            return ast.IfExp(copy.deepcopy(node.test), _zero_if_none(body), _zero_if_none(orelse))
        if isinstance(node, ast.Call):
            return None if self.is_helper(node) else self._d_call(node, result)
        if isinstance(node, ast.Tuple) and not self.is_active(node):
            return None
        if isinstance(node, ast.Tuple):
            self.fail(node, "a tuple of values that depend on the inputs, held as one value: "
                            "unpack it into names (`a, b = x, y`)")
        self.fail(node, f"`{ast.unparse(node)}` has no derivative rule here")

    def _d_subscript(self, node):
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.fn.arrays:
            if isinstance(node.slice, ast.Slice):
                self.fail(node, "a slice of an array is only supported as an argument of a "
                                "call (`g(y[0:3])`); read the elements one by one")
            if isinstance(node.slice, ast.Tuple):
                self.fail(node, "the arrays are one-dimensional: index them with one int")
            return self.element(base.id, node.slice)
        if not self.is_active(base):
            return None  # a module constant, an inactive local tuple, y.shape[0]
        if isinstance(base, ast.Name) and base.id in self.fn.params:
            self.fail(node, f"`{base.id}` is indexed, but its callers pass a number (an array "
                            "is passed as an array parameter of the caller or a slice of one)")
        self.fail(node, "a tuple of values that depend on the inputs, held as one value: "
                        "unpack it into names (`a, b = x, y`)")

    def _d_binop(self, node, result):
        u, v, op, c = node.left, node.right, node.op, copy.deepcopy
        if isinstance(op, ast.FloorDiv):
            return None
        du, dv = self.tangent(u), self.tangent(v)
        if du is None and dv is None:
            return None
        if isinstance(op, (ast.Add, ast.Sub)):
            return _add(du, dv) if isinstance(op, ast.Add) else _sub(du, dv)
        if isinstance(op, ast.Mult) and du is not None and ast.dump(u) == ast.dump(v):
            return _mul(ast.BinOp(ast.Constant(2.0), ast.Mult(), c(u)), du)  # u * u
        if isinstance(op, ast.Mult):
            return _add(_mul(du, c(v)), _mul(c(u), dv))
        if isinstance(op, ast.Div):
            if dv is None:
                return _div(du, c(v))
            value = c(node if result is None else result)
            return _div(_sub(du, _mul(value, dv)), c(v))
        if isinstance(op, ast.Pow):
            return self._d_pow(node, du, dv, result)
        if isinstance(op, ast.Mod):  # u - v floor(u / v)
            return _sub(du, _mul(_math("floor", ast.BinOp(c(u), ast.Div(), c(v))), dv))
        self.fail(node, f"the operator of `{ast.unparse(node)}` has no derivative rule (it "
                        "works on ints, not on numbers that depend on the inputs)")

    def _d_pow(self, node, du, dv, result):
        u, v, c = node.left, node.right, copy.deepcopy
        exponent = _constant_number(v)
        if du is None or exponent == 0:
            term_u = None
        elif exponent == 1:
            term_u = du
        elif exponent == 2:
            term_u = _mul(ast.BinOp(_const(exponent), ast.Mult(), c(u)), du)
        elif exponent is not None:
            power = ast.BinOp(c(u), ast.Pow(), _const(exponent - 1))
            term_u = _mul(ast.BinOp(_const(exponent), ast.Mult(), power), du)
        else:
            power = ast.BinOp(c(u), ast.Pow(), ast.BinOp(c(v), ast.Sub(), ast.Constant(1)))
            term_u = _mul(ast.BinOp(c(v), ast.Mult(), power), du)
        if dv is None:
            return term_u
        # d(u^v)/dv = log(u) u^v, taken as 0 where u <= 0 (no real derivative there).
        partial = ast.BinOp(_math("log", c(u)), ast.Mult(), c(node if result is None else result))
        base = _constant_number(u)
        if base is None or base <= 0:
            partial = ast.IfExp(ast.Compare(c(u), [ast.Gt()], [ast.Constant(0.0)]), partial,
                                ast.Constant(0.0))
        return _add(term_u, _mul(partial, dv))

    def _d_call(self, node, result):
        name = self.rule(node)
        if name in SPECIAL:
            return self._d_special(node, name, result)
        terms = RULES[name]
        arity = min(len(terms), 2)
        if len(node.args) != arity:
            self.fail(node, f"{name} takes {arity} argument{'s' * (arity > 1)} here")
        ds = [self.tangent(a) for a in node.args]
        values = {"u": node.args[0], "du": ds[0], "R": node if result is None else result}
        if arity == 2:
            values.update(v=node.args[1], dv=ds[1])
        if len(terms) == 3 and None not in ds:
            return _instantiate(terms[2], values)
        total = None
        for term, d in zip(terms, ds):
            if term is not None and d is not None:
                total = _add(total, _instantiate(term, values))
        return total

    def _d_special(self, node, name, result):
        args = node.args
        if name in ("int", "round", "len", "bool"):
            return None
        if name == "float":
            return self.tangent(args[0]) if args else None
        if name == "pow":
            if len(args) != 2:
                self.fail(node, "pow with a modulus has no derivative")
            return self._d_binop(ast.BinOp(args[0], ast.Pow(), args[1]), result)
        if len(args) < 2:
            self.fail(node, f"{name} of a sequence: compare the numbers, {name}(a, b)")
        ds = [self.tangent(a) for a in args]
        # Python's min(a, b) is b if b < a else a (the first on ties and NaN); max alike.
        pick = ast.Lt() if name == "min" else ast.Gt()
        best, dbest = args[0], ds[0]
        for arg, darg in zip(args[1:], ds[1:]):
            test = ast.Compare(copy.deepcopy(arg), [pick], [copy.deepcopy(best)])
            if darg is not None or dbest is not None:
                dbest = ast.IfExp(test, _zero_if_none(darg), _zero_if_none(dbest))
            best = ast.IfExp(copy.deepcopy(test), arg, best)
        return dbest

    # -- statements --

    def block(self, statements):
        """The tangent statements of ``statements``."""
        out = []
        for node in statements:
            self.line = getattr(node, "lineno", self.line)
            kind = type(node).__name__
            if kind in REFUSED_STATEMENTS:
                self.fail(node, REFUSED_STATEMENTS[kind])
            handler = getattr(self, f"_{kind}", None)
            if handler is None:
                self.fail(node, f"a `{kind}` statement has no derivative rule here")
            self.read = set()
            out += handler(node)
        return out

    def _Pass(self, node):
        return [node]

    _Break = _Continue = _Pass

    def _Expr(self, node):
        out, value = [], node.value
        if isinstance(value, ast.Constant):
            return []  # a docstring
        if self.needs_tangent(value):
            call = self.tangent_call(value, out)
            return out + [ast.Expr(call)]
        value = self.hoist(value, out)
        self.tangent(value)  # refuses what has no rule
        return out + [ast.Expr(value)]

    def _If(self, node):
        out = []
        test = self.hoist(node.test, out)
        return out + [ast.If(test, self.block(node.body) or [ast.Pass()], self.block(node.orelse))]

    def _While(self, node):
        out = []
        test = self.hoist(node.test, out)
        if out:
            self.fail(node.test, "a `while` condition calls a function that is differentiated: "
                                 "compute it into a name before the loop and at the end of "
                                 "its body")
        return [ast.While(test, self.block(node.body) or [ast.Pass()], self.block(node.orelse))]

    def _For(self, node):
        it, target = node.iter, node.target
        if not (isinstance(target, ast.Name) and isinstance(it, ast.Call)
                and isinstance(it.func, ast.Name) and it.func.id == "range"
                and "range" not in self.fn.stored and 1 <= len(it.args) <= 3
                and not it.keywords):
            self.fail(node, "only `for i in range(...)` loops can be differentiated: iterate "
                            "over the indices (`for i in range(len(a))`) and read a[i]")
        out = []
        args = [self.hoist(a, out) for a in it.args]
        body = self.block(node.body)
        if target.id in self.active:  # the counter is an int: no tangent
            body.insert(0, _assign(_name(self.d(target.id), True), ast.Constant(0.0)))
        loop = ast.For(target, ast.Call(_name("range"), args, []), body or [ast.Pass()],
                       self.block(node.orelse))
        return out + [loop]

    def _Return(self, node):
        fn, value, out = self.fn, node.value, []
        if value is None:
            return [node]
        if self.needs_tangent(value):  # the callee returns what this function returns
            call = self.tangent_call(value, out)
            return out + [ast.Return(call)]
        if self.is_helper(value):  # the callee's primal, and zero tangents
            value = self.hoist(value, out)
            names = [self.temp() for _ in range(fn.arity)]
            targets = [_name(n, True) for n in names]
            out.append(_assign(ast.Tuple(targets, ast.Store()) if fn.returns_tuple else targets[0],
                               value))
            return out + [ast.Return(ast.Tuple([_name(n) for n in names]
                                               + [ast.Constant(0.0)] * fn.arity, ast.Load()))]
        if isinstance(value, ast.Tuple):
            values = [self.hoist(v, out) for v in value.elts]
            tangents = [_zero_if_none(self.tangent(v)) for v in values]
            return out + [ast.Return(ast.Tuple(values + tangents, ast.Load()))]
        value = self.hoist(value, out)
        if not self.is_active(value) or isinstance(value, (ast.Name, ast.Subscript)):
            return out + [ast.Return(ast.Tuple([value, _zero_if_none(self.tangent(value))],
                                               ast.Load()))]
        temp = self.temp()  # so that the tangent reuses the value (sqrt, division)
        self.active.add(temp)
        out += self.assign(_name(temp, True), value)
        return out + [ast.Return(ast.Tuple([_name(temp), _name(self.d(temp))], ast.Load()))]

    def _Assign(self, node):
        if len(node.targets) != 1:
            self.fail(node, "a chained assignment (a = b = ...): write one assignment per line")
        target = node.targets[0]
        if isinstance(target, (ast.Tuple, ast.List)):
            return self.unpack(target.elts, node.value)
        return self.assign(target, node.value)

    def _AnnAssign(self, node):
        return [] if node.value is None else self.assign(node.target, node.value)

    def check_name(self, target):
        """Refuse assigning ``target`` (a Name) where it is not a plain local."""
        if target.id in self.fn.arrays:
            self.fail(target, f"it assigns the array parameter `{target.id}` itself: write "
                              f"its elements, {target.id}[i] = ...")

    def array_target(self, target):
        """The array name of an element target ``a[i]``; refuses other subscripts."""
        base, index = target.value, target.slice
        if not (isinstance(base, ast.Name) and base.id in self.fn.arrays):
            self.fail(target, "only the elements of array parameters can be assigned "
                              "(`dydt[i] = ...`); a local array or tuple has no tangent here")
        if isinstance(index, (ast.Slice, ast.Tuple)):
            self.fail(target, "assign the elements one by one, with one int index each")
        self.validate(index)
        if self._has_tangent_call(index):
            self.fail(target, "an index computed by a differentiated function: compute it "
                              "into a name first")
        return base.id

    def assign(self, target, value):
        """``target = value`` for a name or an array element."""
        out = []
        if isinstance(target, ast.Subscript):
            name = self.array_target(target)
            value = self.hoist(value, out)
            out.append(_assign(self.element(name, target.slice, store=True),
                               _zero_if_none(self.tangent(value))))
            return out + [_assign(copy.deepcopy(target), value)]
        if not isinstance(target, ast.Name):
            self.fail(target, "only names and elements of array parameters can be assigned")
        self.check_name(target)
        name = target.id
        if self.needs_tangent(value):
            self.check_callee(value, 1, False)
            call = self.tangent_call(value, out)
            dname = self.d(name) if name in self.active else self.temp()
            out.append(_assign(ast.Tuple([_name(name, True), _name(dname, True)], ast.Store()),
                               call))
            return out
        value = self.hoist(value, out)
        if name not in self.active:
            return out + [_assign(_name(name, True), value)]
        primal = _assign(_name(name, True), value)
        reads_itself = any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(value))
        # Reading its old value, the tangent goes first; else after, reusing the value.
        tangent = _zero_if_none(self.tangent(value, result=None if reads_itself else
                                             _name(name)))
        if isinstance(tangent, ast.Name) and tangent.id == self.d(name):
            return out + [primal]  # x = x + k with an int k: the tangent stays
        update = _assign(_name(self.d(name), True), tangent)
        return out + ([update, primal] if reads_itself else [primal, update])

    def _AugAssign(self, node):
        out, target, op = [], node.target, node.op
        if isinstance(target, ast.Subscript):
            name = self.array_target(target)
            self.read.add(name)  # a[i] += v reads a[i] before v
            old = ast.Subscript(_name(name), target.slice, ast.Load())
            dtarget = self.element(name, target.slice, store=True)
        elif isinstance(target, ast.Name):
            self.check_name(target)
            old, dtarget = _name(target.id), _name(self.d(target.id), True)
        else:
            self.fail(target, "only names and elements of array parameters can be assigned")
        value = self.hoist(node.value, out)
        primal = ast.AugAssign(copy.deepcopy(target), op, value)
        if isinstance(target, ast.Name) and target.id not in self.active:
            self.tangent(value)  # refuses what has no rule
            return out + [primal]
        dvalue = self.tangent(value)
        if isinstance(op, (ast.Add, ast.Sub)):
            update = None if dvalue is None else ast.AugAssign(dtarget, op, dvalue)
        elif isinstance(op, (ast.Mult, ast.Div)) and dvalue is None:
            update = ast.AugAssign(dtarget, op, copy.deepcopy(value))
        else:  # from the old values: before the primal
            update = _assign(dtarget, _zero_if_none(self.tangent(ast.BinOp(old, op, value))))
        return out + ([update] if update else []) + [primal]

    def unpack(self, targets, value):
        """``t1, ..., tk = value``: a tuple written out, or a call returning a tuple."""
        out = []
        for target in targets:
            if isinstance(target, ast.Subscript):
                self.array_target(target)
            elif isinstance(target, ast.Name):
                self.check_name(target)
            else:
                self.fail(target, "unpack into names and array elements, one level deep")
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if any(isinstance(n, ast.Name) and n.id in names for t in targets
               if isinstance(t, ast.Subscript) for n in ast.walk(t.slice)):
            self.fail(targets[0], "an index assigned in the same statement: split it in two")
        if self.needs_tangent(value):
            self.check_callee(value, len(targets), True)
            call = self.tangent_call(value, out)
            if len(names) == len(targets):  # distinct names: straight into them
                dnames = [self.d(t.id) if t.id in self.active else self.temp() for t in targets]
                stores = [_name(t.id, True) for t in targets] + [_name(n, True) for n in dnames]
                return out + [_assign(ast.Tuple(stores, ast.Store()), call)]
            values = [self.temp() for _ in targets] + [self.temp() for _ in targets]
            out.append(_assign(ast.Tuple([_name(v, True) for v in values], ast.Store()), call))
            elements = [_name(v) for v in values[:len(targets)]]
            ret_active = self.infos[value.func.id].ret_active
            tangents = [_name(v) if a else None for v, a in zip(values[len(targets):], ret_active)]
        elif isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(targets):
            elements = [self.hoist(v, out) for v in value.elts]
            tangents = [self.tangent(v) for v in elements]
        elif self.is_active(value):
            self.fail(value, "unpack a tuple written out (`a, b = x, y`) or the call of a "
                             "function returning a tuple")
        else:  # a constant tuple, or a call without tangent
            elements, tangents = self.hoist(value, out), [None] * len(targets)
        # The tangents first: they are computed from the old values.
        dtargets, dvalues = [], []
        for target, tangent in zip(targets, tangents):
            if isinstance(target, ast.Subscript):
                dtargets.append(self.element(target.value.id, target.slice, store=True))
            elif target.id in self.active:
                dtargets.append(_name(self.d(target.id), True))
            else:
                continue
            dvalues.append(_zero_if_none(tangent))
        if dtargets:
            out.append(_assign(ast.Tuple(dtargets, ast.Store()), ast.Tuple(dvalues, ast.Load()))
                       if len(dtargets) > 1 else _assign(dtargets[0], dvalues[0]))
        if isinstance(elements, list):
            elements = ast.Tuple(elements, ast.Load())
        return out + [_assign(ast.Tuple([copy.deepcopy(t) for t in targets], ast.Store()),
                              elements)]


# ---- the program ----

def tangent_program(functions, entry, arrays, modules=None):
    """The tangent functions of ``entry`` and of every function it reaches by calls.

    Parameters
    ----------
    functions : dict
        key -> source text of one ``def`` (its own name may differ from the key:
        callers call it by the key).
    entry : str
        The key of the function to differentiate.
    arrays : iterable of str
        The parameters of ``entry`` that are float64 arrays; the others are float64
        scalars. Those of the other functions are inferred from their call sites.
    modules : dict, optional
        Names under which the functions use modules (alias -> import name, as in a
        plugin's globals), added to :data:`MODULES`: ``{"npy": "numpy"}``. Calls of
        functions of ``math`` and ``numpy`` have derivative rules; of others, none.

    Returns
    -------
    dict
        key -> source text of ``def tangent_<key>(...)`` (see the module's docstring for
        the calling convention), the entry first. The text calls ``math`` functions
        and the primal functions (by their keys) where no argument has a tangent.

    Raises
    ------
    Undifferentiable
        A construct without a derivative rule, naming the function, line and why.
    """
    if entry not in functions:
        raise ValueError(f"the entry {entry!r} is not one of the functions given")
    infos, order = reach(functions, entry, frozenset(arrays), {**MODULES, **(modules or {})})
    for key in order:  # callees first: callers read their returns and activity
        fn = infos[key]
        return_kind(fn, infos)
        array_writes(fn, infos)
        activity(fn, infos)
    return {key: Tangent(infos[key], infos).source() for key in reversed(order)}
