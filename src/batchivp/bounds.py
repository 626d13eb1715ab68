"""Every index a user function uses on ``y``, ``dydt`` and ``p`` is in range.

The kernel hands a right-hand side ``fun(t, y, p, dydt)`` and an event ``event(t, y,
p)`` raw arrays: an index out of range reads or writes other memory, with no error.
This module makes that impossible, in two parts:

1. **A static interval analysis** of the function's source (:func:`analyse`), run at
   registration (or when a plain or composed plugin is built) and cached per plugin
   key. For every subscript of an array parameter it bounds the index from what the
   source says: integer constants, the module's constants and tuples, arithmetic
   (``+ - * // %``, unary ``-``, ``min``, ``max``), ``range`` loop variables, locals
   (a local assigned several times takes the union of its values; one that changes
   inside a loop without a bound becomes unknown), ``len(a)``, ``a.shape[0]`` and
   ``a.size`` (symbolically: ``y[len(y) - 1]`` is in range whatever ``n`` is), guards
   (``if i < 3:``, ``... if i < len(y) else ...``, ``len(y) > 3 and ...``), slices
   (numba clamps them: safe; a constant slice is a view at an offset) and calls of the
   plugin's helpers, whose array parameters are mapped through each call. The result
   (:class:`Report`): per role (``y``, ``dydt``, ``p``) the length each use requires,
   with its line, and the subscripts it could not bound.
2. **A check in the kernel** for those subscripts only (:func:`instrument`): the
   renderer rewrites them into ``bounds_checked_read`` / ``bounds_checked_index``
   (``core/access.py``), which never leave the array and end the problem with status
   ``STATUS_INDEX`` (-7). Bounded subscripts stay as written, so the common case runs
   the code it ran before.

Before any kernel runs, :func:`check` compares the requirements of a batch's plugins
with its state size ``n`` and parameter count ``m`` and raises ``ValueError`` naming
the function, the array, the index and the argument to fix. A right-hand side whose
writes to ``dydt`` are all bounded constants below ``k`` while ``n > k`` is refused
too (the kernel would integrate uninitialised memory: typically a transposed ``y0``).
Uses the analysis cannot follow at all (an array passed to a function it cannot see
into, a tuple index) are :class:`Unverifiable`: registration refuses them, naming the
line; ``solve_ivp`` hands a plain callable with one to scipy.
"""

import ast
import copy
import math
import threading
from dataclasses import dataclass, field

ROLES = {"rhs": ("y", "p", "dydt"), "event": ("y", "p")}  # positions 1, 2, 3
ISTATE_PARAM = "bounds_istate"  # the argument rendered into checked functions
READ = "reads"
WRITE = "writes"
SAFE_MODULES = {"math", "cmath", "numpy", "numba"}  # take arrays whole, by their length
# numpy functions and array methods whose result may share memory with the argument.
VIEW_CALLS = {"asarray", "ravel", "reshape", "view", "transpose", "squeeze",
              "ascontiguousarray", "asfortranarray", "atleast_1d", "atleast_2d",
              "swapaxes", "diagonal", "T", "real", "imag", "flat", "expand_dims"}
ALLOCATIONS = {"empty", "zeros", "ones", "full"}  # np.<name>(shape, ...): a new array
WIDEN_AFTER = 6  # fixpoint rounds before a changing local is widened to "unknown"


class Unverifiable(ValueError):
    """A use of ``y``, ``dydt`` or ``p`` that can be neither bounded nor checked."""


# ---- the abstract values ----

@dataclass(frozen=True)
class Sym:
    """The upper bound ``len(array) + c`` (``key`` names the array's length)."""

    key: object
    c: int


@dataclass(frozen=True)
class Iv:
    """An integer in ``[lo, hi]``; ``None`` is unbounded, ``hi`` may be a :class:`Sym`."""

    lo: object = None
    hi: object = None


UNKNOWN_INT = Iv()


@dataclass(frozen=True)
class Arr:
    """A view of a function parameter: ``param[off:off + cap]`` (``cap`` None: to its
    end; ``off`` None: unknown)."""

    param: int
    off: object = 0
    cap: object = None

    def length_key(self, same_length):
        if self.off == 0 and self.cap is None:
            return ("param", same_length.get(self.param, self.param))
        return ("view", self)


@dataclass(frozen=True)
class AnyArr:
    """Maybe one of the parameters' arrays, where and how long unknown."""


@dataclass(frozen=True)
class Local:
    """A local array of ``length`` elements along its first axis (``np.empty(3)``,
    ``np.zeros((3, 1))``): the adapters hand a plain callable such a copy of ``y``."""

    length: int


@dataclass(frozen=True)
class Tup:
    items: tuple


TOP = None  # anything else: floats, untracked arrays, unknown objects


def _hull(a, b):
    if a == b:
        return a
    if a is None or b is None:
        return TOP if (a is None and not _tracked(b)) or (b is None and not _tracked(a)) else AnyArr()
    if isinstance(a, Iv) and isinstance(b, Iv):
        lo = None if a.lo is None or b.lo is None else min(a.lo, b.lo)
        if isinstance(a.hi, int) and isinstance(b.hi, int):
            hi = max(a.hi, b.hi)
        elif isinstance(a.hi, Sym) and isinstance(b.hi, Sym) and a.hi.key == b.hi.key:
            hi = Sym(a.hi.key, max(a.hi.c, b.hi.c))
        else:
            hi = None
        return Iv(lo, hi)
    if isinstance(a, Tup) and isinstance(b, Tup) and len(a.items) == len(b.items):
        return Tup(tuple(_hull(x, y) for x, y in zip(a.items, b.items)))
    if _tracked(a) or _tracked(b):
        return AnyArr()
    return TOP


def _tracked(v):
    if isinstance(v, (Arr, AnyArr)):
        return True
    return isinstance(v, Tup) and any(_tracked(x) for x in v.items)


def _add(a, b, sign=1):
    """``a + sign * b`` for intervals."""
    if not (isinstance(a, Iv) and isinstance(b, Iv)):
        return UNKNOWN_INT
    if sign < 0:
        if isinstance(b.hi, Sym):
            return Iv(None, _shift(a.hi, -b.lo) if b.lo is not None else None)
        b = Iv(None if b.hi is None else -b.hi, None if b.lo is None else -b.lo)
    lo = None if a.lo is None or b.lo is None else a.lo + b.lo
    if isinstance(a.hi, int) and isinstance(b.hi, int):
        hi = a.hi + b.hi
    elif isinstance(a.hi, Sym) and isinstance(b.hi, int):
        hi = Sym(a.hi.key, a.hi.c + b.hi)
    elif isinstance(b.hi, Sym) and isinstance(a.hi, int):
        hi = Sym(b.hi.key, b.hi.c + a.hi)
    else:
        hi = None
    return Iv(lo, hi)


def _shift(hi, d):
    if isinstance(hi, int):
        return hi + d
    if isinstance(hi, Sym):
        return Sym(hi.key, hi.c + d)
    return None


def _const(v):
    return v.lo if isinstance(v, Iv) and isinstance(v.lo, int) and v.lo == v.hi else None


def _bounded(v):
    return isinstance(v, Iv) and isinstance(v.lo, int) and isinstance(v.hi, int)


def _mul(a, b):
    if _bounded(a) and _bounded(b):
        products = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        return Iv(min(products), max(products))
    return UNKNOWN_INT


def _floordiv(a, b):
    d = _const(b)
    if not isinstance(a, Iv) or d is None or d <= 0:
        return UNKNOWN_INT
    lo = None if a.lo is None else a.lo // d
    if isinstance(a.hi, int):
        hi = a.hi // d
    elif isinstance(a.hi, Sym) and a.lo is not None and a.lo >= 0 and a.hi.c <= 0:
        hi = a.hi  # 0 <= x <= len + c with c <= 0: x // d <= x
    else:
        hi = None
    return Iv(lo, hi)


def _mod(a, b):
    if not isinstance(b, Iv) or b.lo is None or b.lo < 1:
        return UNKNOWN_INT
    return Iv(0, _shift(b.hi, -1))  # Python's % takes the divisor's sign


def _min_hi(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    for h in (a, b):  # a bound by an array's own length proves more
        if isinstance(h, Sym):
            return h
    return a if a is not None else b


def _refine(v, lo=None, hi=None):
    if not isinstance(v, Iv):
        v = UNKNOWN_INT
    new_lo = v.lo if lo is None else (lo if v.lo is None else max(v.lo, lo))
    new_hi = v.hi if hi is None else _min_hi(v.hi, hi)
    return Iv(new_lo, new_hi)


# ---- what the analysis reports ----

@dataclass(frozen=True)
class Use:
    """A bounded use: the view ``arr`` must hold at least ``need`` elements.

    ``index`` is the subscript's index in the view (its largest, or its most negative
    for indices from the end); ``where`` the function, line and text, innermost last.
    """

    arr: Arr
    need: int
    index: int
    verb: str
    where: tuple


@dataclass
class Summary:
    """What one function does with its parameters' arrays, in terms of those parameters.

    ``uses``: bounded uses; ``writes``: per parameter, the constant index intervals
    written (``None``: some write not bounded by a constant, or an opaque use);
    ``checked``: positions of the subscripts rewritten into checked accesses;
    ``status_calls``: positions of calls of functions that take ``istate``;
    ``unverifiable``: messages of uses that can be neither bounded nor checked.
    """

    name: str
    params: tuple
    uses: list = field(default_factory=list)
    writes: dict = field(default_factory=dict)
    checked: list = field(default_factory=list)
    status_calls: list = field(default_factory=list)
    unverifiable: list = field(default_factory=list)
    returns_view: bool = False

    @property
    def needs_status(self):
        return bool(self.checked or self.status_calls)

    def write(self, param, interval):
        if param not in self.writes:
            self.writes[param] = []
        if self.writes[param] is not None:
            if interval is None:
                self.writes[param] = None
            else:
                self.writes[param].append(interval)


@dataclass
class Requirement:
    role: str
    need: int
    index: int
    verb: str
    where: tuple


@dataclass
class Report:
    """The analysis of a plugin: see the module docstring.

    ``requirements``: per role, the bounded uses (:class:`Requirement`), the largest
    first; ``out_of_view``: uses of a slice beyond its end (always out of range);
    ``dydt_written``: the constant indices below which every write to ``dydt`` falls,
    or ``None`` when some write is not bounded by a constant; ``checked``: function
    name -> subscript positions checked at run time; ``status_functions``: the
    functions that take ``istate``.
    """

    kind: str
    name: str
    requirements: dict
    out_of_view: list
    dydt_written: object
    checked: dict
    status_calls: dict
    status_functions: frozenset
    unverifiable: list


# ---- the analysis of one function ----

class _FunctionAnalysis:
    """Abstract interpretation of one ``def`` (flow-insensitive for locals)."""

    def __init__(self, node, globals_, resolver, same_length, display, first_line=None):
        self.first_line = first_line  # the def's line in the user's file, if known
        self.node = node
        self.globals_ = globals_
        self.resolver = resolver
        self.same_length = same_length
        self.display = display
        self.params = tuple(a.arg for a in node.args.args)
        self.summary = Summary(display, self.params)
        self.env = {}
        self.locals_ = set()
        self.guards = []  # (name -> Iv refinement dicts, length facts)

    def at(self, node):
        """Where ``node`` is, for messages."""
        if self.first_line is not None:
            return f"{self.display}, line {self.first_line + node.lineno - 1}"
        return f"{self.display}, line {node.lineno} of its def"

    # -- values of names --

    def lookup(self, name):
        for refined, _ in reversed(self.guards):
            if name in refined:
                return refined[name]
        if name in self.params and name not in self.locals_:
            return Arr(self.params.index(name))
        if name in self.env:
            return self.env[name]
        if name in self.locals_:
            return AnyArr()  # read before its first binding was evaluated: anything
        kind_value = self.globals_.get(name)
        if kind_value is not None and kind_value[0] == "const":
            return _literal_value(kind_value[1])
        return TOP

    def length_fact(self, key):
        best = None
        for _, facts in self.guards:
            if key in facts:
                best = facts[key] if best is None else max(best, facts[key])
        return best

    # -- expressions --

    def ev(self, node):
        method = getattr(self, "ev_" + type(node).__name__, None)
        return method(node) if method is not None else TOP

    def ev_Constant(self, node):
        v = node.value
        if isinstance(v, bool) or isinstance(v, int):
            return Iv(int(v), int(v))
        return TOP

    def ev_Name(self, node):
        return self.lookup(node.id)

    def ev_Tuple(self, node):
        return Tup(tuple(self.ev(e) for e in node.elts))

    def ev_UnaryOp(self, node):
        v = self.ev(node.operand)
        if isinstance(node.op, ast.USub):
            return _mul(v, Iv(-1, -1)) if _bounded(v) else UNKNOWN_INT
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Not):
            return Iv(0, 1)
        return UNKNOWN_INT

    def ev_BinOp(self, node):
        a, b = self.ev(node.left), self.ev(node.right)
        op = type(node.op)
        if op is ast.Add:
            return _add(a, b)
        if op is ast.Sub:
            return _add(a, b, -1)
        if op is ast.Mult:
            return _mul(a, b)
        if op is ast.FloorDiv:
            return _floordiv(a, b)
        if op is ast.Mod:
            return _mod(a, b)
        if _tracked(a) or _tracked(b):
            return TOP  # elementwise arithmetic makes a new array
        return UNKNOWN_INT if isinstance(a, Iv) and isinstance(b, Iv) else TOP

    def ev_BoolOp(self, node):
        pushed = 0
        for value in node.values:
            self.ev(value)
            if isinstance(node.op, ast.And):
                self.guards.append(self.facts(value, ()))
                pushed += 1
        del self.guards[len(self.guards) - pushed:]
        return TOP

    def ev_Compare(self, node):
        self.ev(node.left)
        for c in node.comparators:
            self.ev(c)
        return Iv(0, 1)

    def ev_IfExp(self, node):
        self.ev(node.test)
        self.guards.append(self.facts(node.test, ()))
        a = self.ev(node.body)
        self.guards.pop()
        b = self.ev(node.orelse)
        return _hull(a, b)

    def ev_Attribute(self, node):
        base = self.ev(node.value)
        if isinstance(base, Arr) and node.attr == "size":
            return self.length(base)
        if isinstance(base, Arr) and node.attr == "shape":
            return Tup((self.length(base),))
        if isinstance(base, (Arr, AnyArr)):
            if node.attr in VIEW_CALLS:
                return AnyArr()
            if node.attr == "ndim":
                return Iv(1, 1)
            return TOP
        return TOP

    def length(self, arr):
        lo = 1 if arr.off == 0 and arr.cap is None else 0  # n >= 1 and m >= 1
        return Iv(lo, Sym(arr.length_key(self.same_length), 0))

    def ev_Subscript(self, node, store=None):
        base = self.ev(node.value)
        sl = node.slice
        if isinstance(base, Tup):
            index = self.ev(sl)
            k = _const(index)
            if k is not None and -len(base.items) <= k < len(base.items):
                return base.items[k]
            out = base.items[0] if base.items else TOP
            for item in base.items[1:]:
                out = _hull(out, item)
            return out
        if isinstance(base, Local) and not isinstance(sl, ast.Slice):
            index = self.ev(sl)
            first = index.items[0] if isinstance(index, Tup) and index.items else index
            self.local_subscript((self.at(node), ast.unparse(node)), base,
                                 self.local_need(first), "a local array")
            return TOP
        if isinstance(base, (Arr, AnyArr)):
            if isinstance(sl, ast.Slice):
                return self.slice_view(node, base, sl, store)
            if isinstance(sl, ast.Tuple) or (isinstance(sl, ast.Constant) and sl.value in (None, Ellipsis)):
                for e in getattr(sl, "elts", ()):
                    self.ev(e)
                self.unverifiable(node, "a tuple, None or ... index (the kernel's arrays "
                                        "are one-dimensional)")
                return TOP
            index = self.ev(sl)
            self.subscript(node, base, index, store)
            return TOP
        self.ev(sl)
        return TOP

    def slice_view(self, node, base, sl, store):
        """The view ``base[lower:upper]``; a store through a slice writes inside it."""
        parts = [None if part is None else _const(self.ev(part))
                 for part in (sl.lower, sl.upper, sl.step)]
        lo, hi, step = parts
        simple = ((sl.step is None or step == 1)
                  and (sl.lower is None or (lo is not None and lo >= 0))
                  and (sl.upper is None or (hi is not None and hi >= 0)))
        view = AnyArr()
        if isinstance(base, Arr) and simple and base.off is not None:
            start = lo or 0
            cap = None if sl.upper is None else max(hi - start, 0)
            if base.cap is not None:
                rest = max(base.cap - start, 0)
                cap = rest if cap is None else min(cap, rest)
            view = Arr(base.param, base.off + start, cap)
        if store is not None:  # numba clamps the slice: the write stays inside it
            if isinstance(view, Arr) and view.cap is not None:
                if view.cap > 0:
                    self.summary.write(view.param, (view.off, view.off + view.cap - 1))
            else:
                self.opaque_write(base)
        return view

    def subscript(self, node, base, index, store):
        verb = READ if store is None else WRITE
        if store == "aug":
            self.subscript(node, base, index, None)
        text = ast.unparse(node)
        where = ((self.at(node), text),)
        if not isinstance(index, Iv):
            index = UNKNOWN_INT
        if isinstance(index.lo, int) and isinstance(index.hi, int) and index.lo > index.hi:
            return  # a guard excludes every value: the code cannot run
        if isinstance(base, Arr):
            key = base.length_key(self.same_length)
            if index.lo is not None and index.lo >= 0 and isinstance(index.hi, Sym) \
                    and index.hi.key == key and index.hi.c <= -1:
                if verb == WRITE:
                    self.summary.write(base.param, None)
                return  # bounded by the array's own length
            if base.off is not None and isinstance(index.lo, int) and isinstance(index.hi, int) \
                    and (index.lo >= 0 or index.hi < 0):
                need = index.hi + 1 if index.lo >= 0 else -index.lo
                fact = self.length_fact(key)
                if fact is None or fact < need:
                    self.summary.uses.append(Use(base, need, index.hi if index.lo >= 0 else index.lo,
                                                 verb, where))
                if verb == WRITE:
                    if index.lo >= 0:
                        self.summary.write(base.param, (base.off + index.lo, base.off + index.hi))
                    else:
                        self.summary.write(base.param, None)
                return
        # Not bounded: checked in the kernel.
        if store == "other":
            self.unverifiable(node, "a write whose index it cannot bound, in a place "
                                    "it cannot check (write it as 'a[i] = value')")
            return
        if verb == WRITE or store == "aug":
            self.opaque_write(base)
        if (node.lineno, node.col_offset) not in self.summary.checked:
            self.summary.checked.append((node.lineno, node.col_offset))

    def local_subscript(self, where, local, need, whose):
        """A constant index into a local array must be inside it: the kernel checks
        only ``y``, ``dydt`` and ``p`` at run time. ``need`` (elements the index needs,
        None: unknown) comes from the subscript at ``where`` or a helper's use of it."""
        if need is None or need > local.length:
            self.summary.unverifiable.append(
                f"{where[0]}: {where[1]}: an index out of range of {whose} ({local.length} elements)")

    def local_need(self, index):
        if isinstance(index, Iv) and isinstance(index.lo, int) and isinstance(index.hi, int):
            if index.lo >= 0:
                return index.hi + 1
            if index.hi < 0:
                return -index.lo
        return 0  # not a constant: unchecked, as numba's own arrays are

    def opaque_write(self, base):
        if isinstance(base, Arr):
            self.summary.write(base.param, None)
        else:
            for i in range(len(self.params)):
                self.summary.write(i, None)

    def unverifiable(self, node, why):
        self.summary.unverifiable.append(f"{self.at(node)}: {ast.unparse(node)}: {why}")

    def ev_Call(self, node):
        args = [self.ev(a) for a in node.args]
        keywords = {k.arg: self.ev(k.value) for k in node.keywords}
        func = node.func
        if any(isinstance(a, ast.Starred) for a in node.args) or None in keywords:
            if any(_tracked(v) for v in args + list(keywords.values())):
                self.unverifiable(node, "an array passed with * or **")
            return TOP
        if isinstance(func, ast.Name):
            name = func.id
            callee = self.resolver(name) if name not in self.params and name not in self.env else None
            if callee is not None:
                return self.call_helper(node, callee, args, keywords)
            return self.call_builtin(node, name, args, keywords)
        if isinstance(func, ast.Attribute):
            owner = self.ev(func.value)
            if isinstance(owner, (Arr, AnyArr)):  # a method: it may write (fill, sort...)
                self.opaque_write(owner)
                return AnyArr() if func.attr in VIEW_CALLS else TOP
            module = _module_of(func.value, self.globals_)
            if module in ("numpy", "numba.np") and func.attr in ALLOCATIONS and args:
                shape = args[0].items[0] if isinstance(args[0], Tup) and args[0].items else args[0]
                length = _const(shape)
                if length is not None and length >= 0:
                    return Local(length)
            if module is not None and module.split(".")[0] in SAFE_MODULES:
                for v in args + list(keywords.values()):  # out=, copyto...: may write
                    if _tracked(v):
                        self.opaque_write(v if isinstance(v, Arr) else AnyArr())
                tracked_in = any(_tracked(v) for v in args + list(keywords.values()))
                return AnyArr() if tracked_in and func.attr in VIEW_CALLS else TOP
        if any(_tracked(v) for v in args + list(keywords.values())):
            self.unverifiable(node, f"an array passed to {ast.unparse(func)}, whose "
                                    "indices batchivp cannot see (use math/numpy, or a "
                                    "plain helper it can read)")
        return TOP

    def call_builtin(self, node, name, args, keywords):
        if name == "len" and len(args) == 1 and isinstance(args[0], Arr):
            return self.length(args[0])
        if name == "len" and len(args) == 1 and isinstance(args[0], Local):
            return Iv(args[0].length, args[0].length)
        if name in ("min", "max") and len(args) >= 2 and all(isinstance(a, Iv) for a in args):
            out = args[0]
            for b in args[1:]:
                if name == "min":
                    lo = None if out.lo is None or b.lo is None else min(out.lo, b.lo)
                    out = Iv(lo, _min_hi(out.hi, b.hi))
                else:
                    lo = out.lo if b.lo is None else (b.lo if out.lo is None else max(out.lo, b.lo))
                    hi = max(out.hi, b.hi) if isinstance(out.hi, int) and isinstance(b.hi, int) else None
                    out = Iv(lo, hi)
            return out
        if name == "abs" and len(args) == 1 and _bounded(args[0]):
            a = args[0]
            lo = 0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi))
            return Iv(lo, max(abs(a.lo), abs(a.hi)))
        if name in ("int", "round", "float", "bool", "complex", "range", "enumerate", "zip",
                    "sum", "min", "max", "abs", "len", "print", "reversed", "iter", "next",
                    "isinstance", "divmod", "pow", "all", "any", "sorted"):
            if name == "int" and len(args) == 1 and isinstance(args[0], Iv):
                return args[0]
            if name in ("sorted",) and any(_tracked(a) for a in args):
                return TOP
            return Iv(0, 1) if name in ("bool", "isinstance", "all", "any") else (
                UNKNOWN_INT if name in ("int", "round", "len") else TOP)
        if any(_tracked(v) for v in args + list(keywords.values())):
            self.unverifiable(node, f"an array passed to {name}(), whose indices batchivp "
                                    "cannot see")
        return TOP

    def call_helper(self, node, callee, args, keywords):
        """Map ``callee``'s uses of its parameters onto the arrays passed in."""
        if callee.needs_status:
            self.summary.status_calls.append((node.lineno, node.col_offset))
        bound = list(args) + [TOP] * (len(callee.params) - len(args))
        for name, value in keywords.items():
            if name in callee.params:
                bound[callee.params.index(name)] = value
        call_text = ast.unparse(node)
        if isinstance(node.func, ast.Name):  # the user's name, not the rendered one
            call_text = callee.name + call_text[len(node.func.id):]
        here = (self.at(node), call_text)
        for use in callee.uses:
            arg = bound[use.arr.param] if use.arr.param < len(bound) else TOP
            if isinstance(arg, Arr):
                composed = _compose(arg, use.arr)
                if composed is None:
                    self.summary.unverifiable.append(
                        f"{self.at(node)}: {call_text}: an array slice of unknown start "
                        "passed to a function that indexes it")
                    continue
                self.summary.uses.append(Use(composed, use.need, use.index, use.verb,
                                             (here,) + use.where))
            elif isinstance(arg, Local):
                view = use.arr
                in_view = view.off is not None and (view.cap is None or use.need <= view.cap)
                whole = view.off == 0 and view.cap is None
                need = (view.off + use.need if use.index >= 0 else use.need if whole else None
                        ) if in_view else None
                self.local_subscript(use.where[-1], arg, need, "the array it is given")
            elif isinstance(arg, AnyArr):
                self.summary.unverifiable.append(
                    f"{self.at(node)}: {call_text}: passes an array it cannot follow to "
                    f"{callee.name}, which indexes it at a fixed position")
        for param, intervals in callee.writes.items():
            arg = bound[param] if param < len(bound) else TOP
            if isinstance(arg, Arr):
                if intervals is None or arg.off is None:
                    self.summary.write(arg.param, None)
                else:
                    for lo, hi in intervals:
                        self.summary.write(arg.param, (arg.off + lo, arg.off + hi))
            elif _tracked(arg):
                self.opaque_write(AnyArr())
        self.summary.unverifiable.extend(callee.unverifiable)
        if callee.returns_view and any(_tracked(v) for v in bound):
            return AnyArr()
        return TOP

    # -- guards --

    def facts(self, test, body):
        """(name refinements, length facts) that hold where ``test`` is true, in
        ``body`` (the statements it guards: a name bound there is not refined)."""
        self.rebound = _bound_names(body)
        refined, lengths = {}, {}
        tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        for t in tests:
            if not isinstance(t, ast.Compare):
                continue
            operands = [t.left] + list(t.comparators)
            for left, op, right in zip(operands, t.ops, operands[1:]):
                self.fact(left, op, right, refined, lengths)
        return refined, lengths

    def fact(self, left, op, right, refined, lengths):
        flip = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
        for a, o, b in ((left, type(op), right), (right, flip.get(type(op)), left)):
            if o is None:
                continue
            if isinstance(a, ast.Name) and not self.assigned_in_guard(a.id):
                bv = self.ev(b)
                if not isinstance(bv, Iv):
                    continue
                current = refined.get(a.id, self.lookup(a.id))
                if o is ast.Lt:
                    refined[a.id] = _refine(current, hi=_shift(bv.hi, -1))
                elif o is ast.LtE:
                    refined[a.id] = _refine(current, hi=bv.hi)
                elif o is ast.Gt and bv.lo is not None:
                    refined[a.id] = _refine(current, lo=bv.lo + 1)
                elif o is ast.GtE and bv.lo is not None:
                    refined[a.id] = _refine(current, lo=bv.lo)
            length = self.ev(a)
            if isinstance(length, Iv) and isinstance(length.hi, Sym) and length.hi.c == 0 \
                    and isinstance(a, ast.Call):
                bound = _const(self.ev(b))
                if bound is not None and o in (ast.Gt, ast.GtE):
                    lengths[length.hi.key] = bound + (1 if o is ast.Gt else 0)

    def assigned_in_guard(self, name):
        return name in self.rebound

    # -- statements --

    def run(self):
        self.fixpoint()
        for stmt in self.node.body:
            self.stmt(stmt)
        return self.summary

    def fixpoint(self):
        """The union of every value each local is assigned (flow-insensitive)."""
        collector = _Assignments()
        collector.visit(self.node)
        self.locals_ = _bound_names(self.node.body)
        for i, name in enumerate(self.params):
            if name in self.locals_:  # a parameter rebound in the body: a local
                self.env[name] = Arr(i)
        quiet = _Quiet(self)
        for round_ in range(WIDEN_AFTER + 1):
            changed = False
            for target, kind, value in collector.items:
                new = quiet.value_of(kind, value, target)
                for name, v in _bind(target, new):
                    old = self.env.get(name, _UNSET)
                    merged = v if old is _UNSET else _hull(old, v)
                    if old is _UNSET or merged != old:
                        if round_ == WIDEN_AFTER:
                            merged = AnyArr() if _tracked(merged) else (
                                UNKNOWN_INT if isinstance(merged, Iv) else TOP)
                        self.env[name] = merged
                        changed = True
            if not changed:
                break
        quiet.done()

    def stmt(self, node):
        if isinstance(node, ast.Assign):
            self.ev(node.value)
            for target in node.targets:
                self.target(target)
        elif isinstance(node, ast.AugAssign):
            self.ev(node.value)
            if isinstance(node.target, ast.Subscript):
                self.ev_Subscript(node.target, store="aug")
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.ev(node.value)
            self.target(node.target, "other")
        elif isinstance(node, ast.If):
            self.ev(node.test)
            self.guards.append(self.facts(node.test, node.body))
            for s in node.body:
                self.stmt(s)
            self.guards.pop()
            for s in node.orelse:
                self.stmt(s)
        elif isinstance(node, (ast.For, ast.While)):
            self.ev(node.iter if isinstance(node, ast.For) else node.test)
            if isinstance(node, ast.For):
                self.target(node.target, "other")
            for s in node.body + node.orelse:
                self.stmt(s)
        elif isinstance(node, ast.Return):
            if node.value is not None:
                if _tracked(self.ev(node.value)):
                    self.summary.returns_view = True
        elif isinstance(node, ast.Expr):
            self.ev(node.value)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.stmt(child)
                elif isinstance(child, ast.expr):
                    self.ev(child)

    def target(self, node, store="set"):
        if isinstance(node, ast.Subscript):
            self.ev_Subscript(node, store=store)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for e in node.elts:
                self.target(e, store)
        elif isinstance(node, ast.Starred):
            self.target(node.value, "other")

    def generic_comprehension(self, node):
        for gen in node.generators:
            self.ev(gen.iter)
            for cond in gen.ifs:
                self.ev(cond)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                self.ev(getattr(node, part))
        return TOP

    ev_ListComp = ev_SetComp = ev_GeneratorExp = ev_DictComp = generic_comprehension

    def ev_List(self, node):
        for e in node.elts:
            self.ev(e)
        return TOP

    def ev_NamedExpr(self, node):
        return self.ev(node.value)

    def ev_Starred(self, node):
        return self.ev(node.value)

    def ev_Lambda(self, node):
        return TOP


_UNSET = object()


class _Quiet:
    """Evaluates assigned values during the fixpoint without recording uses."""

    def __init__(self, analysis):
        self.analysis = analysis
        self.saved = analysis.summary
        analysis.summary = Summary(analysis.display, analysis.params)

    def value_of(self, kind, value, target):
        a = self.analysis
        if kind == "value":
            return a.ev(value)
        if kind == "aug":
            op, operand = value
            return a.ev(ast.BinOp(left=_load(target), op=op, right=operand))
        if kind == "iter":
            return self.element(value)
        return TOP

    def element(self, iterable):
        a = self.analysis
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name):
            name = iterable.func.id
            args = [a.ev(x) for x in iterable.args]
            if name == "range" and a.resolver(name) is None and 1 <= len(args) <= 3:
                return _range_element(args)
            if name == "enumerate" and iterable.args:
                inner = a.ev(iterable.args[0])
                hi = a.length(inner).hi if isinstance(inner, Arr) else None
                if isinstance(hi, Sym):
                    hi = _shift(hi, -1)
                elif isinstance(inner, Tup):
                    hi = len(inner.items) - 1
                return Tup((Iv(0, hi), TOP))
            if name == "zip":
                return Tup(tuple(TOP for _ in args))
        v = a.ev(iterable)
        if isinstance(v, Tup) and v.items:
            out = v.items[0]
            for item in v.items[1:]:
                out = _hull(out, item)
            return out
        return TOP

    def done(self):
        self.analysis.summary = self.saved


def _range_element(args):
    if len(args) == 1:
        start, stop, step = Iv(0, 0), args[0], Iv(1, 1)
    else:
        start, stop = args[0], args[1]
        step = args[2] if len(args) == 3 else Iv(1, 1)
    s = _const(step)
    if not all(isinstance(v, Iv) for v in (start, stop)) or s is None or s == 0:
        return UNKNOWN_INT
    if s > 0:
        first, last = _const(start), _const(stop)
        if first is not None and last is not None:  # the last value taken
            if first >= last:
                return Iv(1, 0)  # an empty range: its body never runs
            return Iv(first, first + (last - 1 - first) // s * s)
        return Iv(start.lo, _shift(stop.hi, -1))
    lo = None if stop.lo is None else stop.lo + 1
    return Iv(lo, start.hi)


def _load(target):
    node = copy.deepcopy(target)
    for sub in ast.walk(node):
        if hasattr(sub, "ctx"):
            sub.ctx = ast.Load()
    return node


class _Assignments(ast.NodeVisitor):
    """Every binding of a local name: (target, kind, value)."""

    def __init__(self):
        self.items = []

    def visit_Assign(self, node):
        for t in node.targets:
            self.items.append((t, "value", node.value))
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.items.append((node.target, "value", node.value))

    def visit_AugAssign(self, node):
        if isinstance(node.target, ast.Name):
            self.items.append((node.target, "aug", (node.op, node.value)))
        self.generic_visit(node)

    def visit_For(self, node):
        self.items.append((node.target, "iter", node.iter))
        self.generic_visit(node)

    def visit_comprehension(self, node):
        self.items.append((node.target, "iter", node.iter))
        self.generic_visit(node)

    def visit_NamedExpr(self, node):
        self.items.append((node.target, "value", node.value))
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        for stmt in node.body:
            self.visit(stmt)


def _bind(target, value):
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, (ast.Tuple, ast.List)):
        out = []
        for i, e in enumerate(target.elts):
            item = value.items[i] if isinstance(value, Tup) and i < len(value.items) else (
                AnyArr() if _tracked(value) else TOP)
            out += _bind(e, item)
        return out
    if isinstance(target, ast.Starred):
        return _bind(target.value, AnyArr() if _tracked(value) else TOP)
    return []


def _bound_names(stmts):
    """Names bound anywhere in ``stmts`` (assignments, loop and comprehension
    targets, ``:=``, nested defs)."""
    names = set()
    for stmt in stmts:
        for node in ast.walk(stmt):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension,
                                   ast.NamedExpr)):
                targets = [node.target]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            for t in targets:  # names stored to, not those read in a subscript target
                names |= {n.id for n in ast.walk(t)
                          if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _compose(outer, inner):
    """The view ``inner`` of a parameter that received the view ``outer``."""
    if outer.off is None or inner.off is None:
        return None
    cap = inner.cap
    if outer.cap is not None:
        rest = max(outer.cap - inner.off, 0)
        cap = rest if cap is None else min(cap, rest)
    return Arr(outer.param, outer.off + inner.off, cap)


def _module_of(node, globals_):
    """The module a ``name`` or ``name.attr`` expression refers to, if any."""
    if isinstance(node, ast.Name):
        kind_value = globals_.get(node.id)
        if kind_value is not None and kind_value[0] == "module":
            return kind_value[1]
        if node.id in ("math", "np", "numpy") and node.id not in globals_:
            return {"np": "numpy"}.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _module_of(node.value, globals_)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal_value(text):
    """The abstract value of a resolved constant (registry or plain literal text)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return TOP
    return _abstract(value)


def _abstract(value):
    if isinstance(value, bool) or isinstance(value, int):
        return Iv(int(value), int(value))
    if isinstance(value, tuple):
        return Tup(tuple(_abstract(v) for v in value))
    return TOP


# ---- plugins ----

_lock = threading.Lock()
_reports = {}  # plugin key -> Report
_summaries = {}  # (function name, source, globals) -> Summary


def _parse_def(source):
    tree = ast.parse(source)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise Unverifiable("expected a def")
    return node


def _summary(name, display, source, globals_, resolver, same_length=None, stack=(),
             first_line=None):
    key = (name, display, first_line, source, repr(sorted(globals_.items())),
           repr(sorted((same_length or {}).items())))
    with _lock:
        cached = _summaries.get(key)
    if cached is not None:
        return cached
    node = _parse_def(source)
    summary = _FunctionAnalysis(node, globals_, resolver(stack + (name,)), same_length or {},
                                display, first_line).run()
    with _lock:
        _summaries[key] = summary
    return summary


def analyse(plugin):
    """The :class:`Report` of a registered, plain or composed plugin (cached by key).

    ``plugin`` has ``kind``, ``name``, ``source``, ``globals_``, ``key`` and optionally
    ``helpers`` (rendered by name, see :mod:`batchivp.plain`).
    """
    with _lock:
        cached = _reports.get(plugin.key)
    if cached is not None:
        return cached
    helpers = {h.rendered_name: h for h in getattr(plugin, "helpers", None) or ()}
    summaries = {}

    def resolver(stack):
        def resolve(name):
            helper = helpers.get(name)
            if helper is None:
                return None
            if name in stack:
                raise Unverifiable(f"{helper.name} calls itself (recursion)")
            if name not in summaries:
                summaries[name] = _summary(name, helper.name, helper.source, helper.globals_,
                                           resolver, None, stack)
            return summaries[name]
        return resolve

    roles = ROLES[plugin.kind]
    same_length = {3: 1} if plugin.kind == "rhs" else {}  # len(dydt) == len(y) == n
    summary = _summary(plugin.name, display_name(plugin), plugin.source, plugin.globals_,
                       resolver, same_length, (), getattr(plugin, "def_line", None))
    requirements = {role: [] for role in roles}
    out_of_view = []
    adapter = plugin.name.startswith(("plain_rhs_", "plain_event_"))
    for use in summary.uses:
        if adapter and len(use.where) > 1:  # the adapter's call of the user's function
            use = Use(use.arr, use.need, use.index, use.verb, use.where[1:])
        position = use.arr.param - 1
        if not 0 <= position < len(roles):
            continue
        role = roles[position]
        if use.arr.cap is not None and use.arr.cap < use.need:
            out_of_view.append((role, use))
            continue
        requirements[role].append(Requirement(role, use.arr.off + use.need,
                                              _root_index(use), use.verb, use.where))
    for role in requirements:
        requirements[role].sort(key=lambda r: -r.need)
    dydt_written = None
    if plugin.kind == "rhs":
        writes = summary.writes.get(3, [])
        if writes is not None:
            dydt_written = 1 + max((hi for _, hi in writes), default=-1)
    checked = {name: s.checked for name, s in summaries.items() if s.checked}
    if summary.checked:
        checked[plugin.name] = summary.checked
    status_calls = {name: s.status_calls for name, s in summaries.items() if s.status_calls}
    if summary.status_calls:
        status_calls[plugin.name] = summary.status_calls
    status_functions = frozenset(name for name, s in list(summaries.items())
                                 + [(plugin.name, summary)] if s.needs_status)
    report = Report(plugin.kind, display_name(plugin), requirements, out_of_view,
                    dydt_written, checked, status_calls, status_functions,
                    list(dict.fromkeys(summary.unverifiable)))
    with _lock:
        _reports[plugin.key] = report
    return report


def _root_index(use):
    if use.index >= 0:
        return use.arr.off + use.index
    return use.index if use.arr.off == 0 and use.arr.cap is None else None


def display_name(plugin):
    """How messages name a plugin: its registered name; for a plain callable's adapter
    or a composed plugin (which have ``helpers``), the Python function's name."""
    if getattr(plugin, "helpers", None) is not None:
        py_func = getattr(plugin, "py_func", None)
        name = getattr(py_func, "__name__", None)
        if name:
            return "lambda" if name == "<lambda>" else name
    return plugin.name


def verify(plugin, where):
    """Raise :class:`Unverifiable` naming ``where`` (the plugin, as the registry says
    it) if the analysis cannot follow some use; else return the :class:`Report`."""
    report = analyse(plugin)
    if report.unverifiable:
        raise Unverifiable(
            f"{where}: batchivp cannot prove that every index stays inside y, p and "
            f"dydt: {'; '.join(report.unverifiable)}")
    return report


# ---- the check before a kernel runs ----

@dataclass(frozen=True)
class Arguments:
    """How a front end names its arguments in messages.

    ``y``: ``"{n}"`` is the state size, e.g. ``"y0 has {n} columns per problem"``;
    ``p``: ``"{m}"`` the parameter count; ``no_p``: when no parameters were given;
    ``view``: for a function given a slice of ``p`` (an orbit ``UserForce``),
    ``"{need}"`` the values it reads and ``"{cap}"`` those it is given.
    """

    y: str = "y0 has {n} columns per problem"
    p: str = "params has {m} column{s} per problem"
    no_p: str = "no params were given"
    view: str = "it is given {cap} value{s} of p"
    transposed: str = "is y0 transposed? expected shape (N, {k})"


BATCH_ARGUMENTS = Arguments()


def check(functions, events, n, m, arguments=BATCH_ARGUMENTS):
    """Raise ``ValueError`` unless every index of ``functions`` (right-hand sides) and
    ``events`` is in range for ``n`` state components and ``m`` parameters (``m = 0``:
    none given; the kernel then passes one zero).

    Also checks the dimensions a function declares (``@rhs(n=..., n_params=...)``),
    refuses a right-hand side that certainly writes ``dydt`` only below ``k < n``, and
    raises :class:`Unverifiable` for a use the analysis cannot follow (possible only
    for plain and composed plugins: registration refuses the others).
    """
    for fn in list(functions) + list(events):
        label = f"{fn.kind} {display_name(fn)!r}"
        for dim, declared, have in (("n", getattr(fn, "declared_n", None), n),
                                    ("n_params", getattr(fn, "declared_n_params", None), m)):
            if declared is not None and declared != have:
                role = "y" if dim == "n" else "p"
                raise ValueError(f"{label} declares {dim}={declared} but "
                                 f"{_have(role, n, m, arguments)}")
        report = analyse(fn)
        if report.unverifiable:
            raise Unverifiable(
                f"{label}: batchivp cannot prove that every index stays inside y, p and "
                f"dydt: {'; '.join(report.unverifiable)}")
        _check_report(report, label, n, m, arguments)


def check_declared(fn):
    """Raise ``ValueError`` if ``fn``'s indices do not fit the dimensions it declares."""
    arguments = Arguments(y="it declares n={n}", p="it declares n_params={m}",
                          no_p="it declares n_params=0",
                          transposed="declare n={k}")
    _check_report(analyse(fn), f"{fn.kind} {display_name(fn)!r}", fn.declared_n,
                  fn.declared_n_params, arguments)


def _check_report(report, label, n, m, arguments):
    """The requirements of one :class:`Report` against ``n`` and ``m`` (None: not
    known)."""
    for role, use in report.out_of_view:
        raise ValueError(
            f"{_innermost(use.where)!r} (in {label}) {use.verb} {_view_text(use)} "
            f"{_where(use.where)}, but "
            + arguments.view.format(cap=use.arr.cap, need=use.need,
                                    s="" if use.arr.cap == 1 else "s"))
    for role, have in (("y", n), ("dydt", n), ("p", m)):
        if have is None:
            continue
        for req in report.requirements.get(role, ()):
            if req.need > have:
                raise ValueError(f"{label} {req.verb} {_index_text(role, req)} "
                                 f"{_where(req.where)} but {_have(role, n, m, arguments)}")
    if report.kind == "rhs" and n is not None and report.dydt_written is not None \
            and report.dydt_written < n:
        k = report.dydt_written
        written = (f"dydt[0..{k - 1}]" if k > 1 else "dydt[0]") if k else "no element of dydt"
        raise ValueError(
            f"{label} writes {written} only but {_have('y', n, m, arguments)}: the other "
            f"components would integrate uninitialised memory; "
            + arguments.transposed.format(k=k))


def _have(role, n, m, arguments):
    if role == "p":
        if m == 0:
            return arguments.no_p
        return arguments.p.format(m=m, s="" if m == 1 else "s")
    return arguments.y.format(n=n, s="" if n == 1 else "s")


def _index_text(role, req):
    if req.index is None:
        return f"{role}[...] (needing {req.need} elements)"
    return f"{role}[{req.index}]"


def _view_text(use):
    param = use.where[-1][1].split("[")[0]
    return f"{param}[{use.index}]"


def _where(where):
    """``(at f, line 12: y[5], called from g, line 3: f(t, y))``."""
    inner = where[-1]
    text = f"(at {inner[0]}: {inner[1]}"
    for outer in reversed(where[:-1]):
        text += f", called from {outer[0]}: {outer[1]}"
    return text + ")"


def _innermost(where):
    return where[-1][0].split(",")[0]


def rewrite_plan(plugins):
    """Per function of a module (a plugin's name, or a helper's rendered name): the
    subscripts to check, the calls to pass ``istate`` to, and whether it takes
    ``istate`` (see :func:`instrument`), merged over ``plugins``."""
    plan = {}
    for plugin in plugins:
        report = analyse(plugin)
        for name in set(report.checked) | set(report.status_calls) | report.status_functions:
            checked, calls, takes = plan.get(name, ((), (), False))
            plan[name] = (tuple(sorted(set(checked) | set(report.checked.get(name, ())))),
                          tuple(sorted(set(calls) | set(report.status_calls.get(name, ())))),
                          takes or name in report.status_functions)
    return plan


# ---- the rewrite of what the analysis could not bound ----

def instrument(source, def_name, checked, status_calls, takes_status):
    """``source`` (one ``def``) with the subscripts at ``checked`` positions rewritten
    into checked accesses and ``istate`` passed to the calls at ``status_calls``;
    ``takes_status``: add the ``istate`` parameter. Unchanged text when there is
    nothing to do."""
    if not (checked or status_calls or takes_status):
        return source
    node = _parse_def(source)
    _Instrument(set(checked), set(status_calls)).visit(node)
    if takes_status:
        node.args.args.append(ast.arg(arg=ISTATE_PARAM))
    ast.fix_missing_locations(node)
    return ast.unparse(node) + "\n"


def _istate():
    return ast.Name(id=ISTATE_PARAM, ctx=ast.Load())


class _Instrument(ast.NodeTransformer):
    """Rewrites the checked subscripts: a read into ``bounds_checked_read(a, i,
    istate)``; a write ``a[i] = v`` / ``a[i] op= v`` into ``k = bounds_checked_index(i,
    len(a), istate)`` then the write guarded by ``k >= 0``."""

    def __init__(self, checked, status_calls):
        self.checked = checked
        self.status_calls = status_calls
        self.counter = 0

    def is_checked(self, node):
        return isinstance(node, ast.Subscript) and (node.lineno, node.col_offset) in self.checked

    def visit_Call(self, node):
        position = (node.lineno, node.col_offset)
        self.generic_visit(node)
        if position in self.status_calls:
            node.args.append(_istate())
        return node

    def visit_Subscript(self, node):
        position = (node.lineno, node.col_offset)
        self.generic_visit(node)
        if position in self.checked and isinstance(node.ctx, ast.Load):
            return ast.Call(func=ast.Name(id="bounds_checked_read", ctx=ast.Load()),
                            args=[node.value, node.slice, _istate()], keywords=[])
        return node

    def checked_store(self, target, make_store, stmt):
        """Statements writing through the checked subscript ``target``."""
        self.counter += 1
        base = f"bounds_a{self.counter}"
        k = f"bounds_k{self.counter}"
        value = self.visit(target.value)
        index = self.visit(target.slice)
        new_target = ast.Subscript(value=ast.Name(id=base, ctx=ast.Load()),
                                   slice=ast.Name(id=k, ctx=ast.Load()), ctx=ast.Store())
        return [
            ast.Assign(targets=[ast.Name(id=base, ctx=ast.Store())], value=value),
            ast.Assign(targets=[ast.Name(id=k, ctx=ast.Store())], value=ast.Call(
                func=ast.Name(id="bounds_checked_index", ctx=ast.Load()),
                args=[index, ast.Call(func=ast.Name(id="len", ctx=ast.Load()),
                                      args=[ast.Name(id=base, ctx=ast.Load())], keywords=[]),
                      _istate()], keywords=[])),
            ast.If(test=ast.Compare(left=ast.Name(id=k, ctx=ast.Load()), ops=[ast.GtE()],
                                    comparators=[ast.Constant(0)]),
                   body=[make_store(new_target)], orelse=[]),
        ]

    def visit_Assign(self, node):
        if not any(self.is_checked(t) or (isinstance(t, (ast.Tuple, ast.List))
                                          and any(self.is_checked(e) for e in t.elts))
                   for t in node.targets):
            return self.generic_visit(node)
        self.counter += 1
        tmp = f"bounds_v{self.counter}"
        out = [ast.Assign(targets=[ast.Name(id=tmp, ctx=ast.Store())], value=self.visit(node.value))]
        for target in node.targets:
            out += self.store(target, ast.Name(id=tmp, ctx=ast.Load()))
        return out

    def store(self, target, value):
        if self.is_checked(target):
            return self.checked_store(
                target, lambda t: ast.Assign(targets=[t], value=value), None)
        if isinstance(target, (ast.Tuple, ast.List)) and any(self.is_checked(e) for e in target.elts):
            self.counter += 1
            names = [f"bounds_v{self.counter}_{i}" for i in range(len(target.elts))]
            out = [ast.Assign(targets=[ast.Tuple(elts=[ast.Name(id=n, ctx=ast.Store())
                                                      for n in names], ctx=ast.Store())],
                              value=value)]
            for element, name in zip(target.elts, names):
                out += self.store(element, ast.Name(id=name, ctx=ast.Load()))
            return out
        return [ast.Assign(targets=[self.visit(target)], value=value)]

    def visit_AugAssign(self, node):
        if not self.is_checked(node.target):
            return self.generic_visit(node)
        value = self.visit(node.value)
        op = node.op
        return self.checked_store(
            node.target, lambda t: ast.AugAssign(target=t, op=op, value=value), None)
