"""The static interval analysis of one function, and of a plugin with its helpers
(:func:`analyse`); see :mod:`batchivp.bounds`."""

import ast
import threading

from ..source import SIGNATURES, record_of
from .flow import UNSET, Assignments, Quiet, bind, bound_names
from .report import Report, Requirement, Summary, Use
from .values import (TOP, UNKNOWN_INT, AnyArr, Arr, Iv, Local, Sym, Tup, add, bounded,
                     compose, const, elements_needed, floordiv, hull, literal_value, min_hi,
                     mod, mul, refine, shift, tracked)

# Per kind: the position of each array parameter -> its name (the "role" of an index).
ROLES = {kind: {i: p.name for i, p in enumerate(signature.parameters) if p.length is not None}
         for kind, signature in SIGNATURES.items()}
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
            return literal_value(kind_value[1])
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
            return mul(v, Iv(-1, -1)) if bounded(v) else UNKNOWN_INT
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Not):
            return Iv(0, 1)
        return UNKNOWN_INT

    def ev_BinOp(self, node):
        a, b = self.ev(node.left), self.ev(node.right)
        op = type(node.op)
        if op is ast.Add:
            return add(a, b)
        if op is ast.Sub:
            return add(a, b, -1)
        if op is ast.Mult:
            return mul(a, b)
        if op is ast.FloorDiv:
            return floordiv(a, b)
        if op is ast.Mod:
            return mod(a, b)
        if tracked(a) or tracked(b):
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
        return hull(a, b)

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
            k = const(index)
            if k is not None and -len(base.items) <= k < len(base.items):
                return base.items[k]
            out = base.items[0] if base.items else TOP
            for item in base.items[1:]:
                out = hull(out, item)
            return out
        if isinstance(base, Local) and not isinstance(sl, ast.Slice):
            index = self.ev(sl)
            first = index.items[0] if isinstance(index, Tup) and index.items else index
            need = elements_needed(first)
            if need is not None:  # else not a constant: unchecked, as numba's own arrays are
                self.local_subscript((self.at(node), ast.unparse(node)), base, need,
                                     "a local array")
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
        parts = [None if part is None else const(self.ev(part))
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
            need = elements_needed(index)
            if base.off is not None and need is not None:
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
            if any(tracked(v) for v in args + list(keywords.values())):
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
            module = module_of(func.value, self.globals_)
            if module in ("numpy", "numba.np") and func.attr in ALLOCATIONS and args:
                shape = args[0].items[0] if isinstance(args[0], Tup) and args[0].items else args[0]
                length = const(shape)
                if length is not None and length >= 0:
                    return Local(length)
            if module is not None and module.split(".")[0] in SAFE_MODULES:
                for v in args + list(keywords.values()):  # out=, copyto...: may write
                    if tracked(v):
                        self.opaque_write(v if isinstance(v, Arr) else AnyArr())
                tracked_in = any(tracked(v) for v in args + list(keywords.values()))
                return AnyArr() if tracked_in and func.attr in VIEW_CALLS else TOP
        if any(tracked(v) for v in args + list(keywords.values())):
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
                    out = Iv(lo, min_hi(out.hi, b.hi))
                else:
                    lo = out.lo if b.lo is None else (b.lo if out.lo is None else max(out.lo, b.lo))
                    hi = max(out.hi, b.hi) if isinstance(out.hi, int) and isinstance(b.hi, int) else None
                    out = Iv(lo, hi)
            return out
        if name == "abs" and len(args) == 1 and bounded(args[0]):
            a = args[0]
            lo = 0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi))
            return Iv(lo, max(abs(a.lo), abs(a.hi)))
        if name in ("int", "round", "float", "bool", "complex", "range", "enumerate", "zip",
                    "sum", "min", "max", "abs", "len", "print", "reversed", "iter", "next",
                    "isinstance", "divmod", "pow", "all", "any", "sorted"):
            if name == "int" and len(args) == 1 and isinstance(args[0], Iv):
                return args[0]
            if name in ("sorted",) and any(tracked(a) for a in args):
                return TOP
            return Iv(0, 1) if name in ("bool", "isinstance", "all", "any") else (
                UNKNOWN_INT if name in ("int", "round", "len") else TOP)
        if any(tracked(v) for v in args + list(keywords.values())):
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
                composed = compose(arg, use.arr)
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
            elif tracked(arg):
                self.opaque_write(AnyArr())
        self.summary.unverifiable.extend(callee.unverifiable)
        if callee.returns_view and any(tracked(v) for v in bound):
            return AnyArr()
        return TOP

    # -- guards --

    def facts(self, test, body):
        """(name refinements, length facts) that hold where ``test`` is true, in
        ``body`` (the statements it guards: a name bound there is not refined)."""
        self.rebound = bound_names(body)
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
                    refined[a.id] = refine(current, hi=shift(bv.hi, -1))
                elif o is ast.LtE:
                    refined[a.id] = refine(current, hi=bv.hi)
                elif o is ast.Gt and bv.lo is not None:
                    refined[a.id] = refine(current, lo=bv.lo + 1)
                elif o is ast.GtE and bv.lo is not None:
                    refined[a.id] = refine(current, lo=bv.lo)
            length = self.ev(a)
            if isinstance(length, Iv) and isinstance(length.hi, Sym) and length.hi.c == 0 \
                    and isinstance(a, ast.Call):
                bound = const(self.ev(b))
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
        collector = Assignments()
        collector.visit(self.node)
        self.locals_ = bound_names(self.node.body)
        for i, name in enumerate(self.params):
            if name in self.locals_:  # a parameter rebound in the body: a local
                self.env[name] = Arr(i)
        quiet = Quiet(self)
        for round_ in range(WIDEN_AFTER + 1):
            changed = False
            for target, kind, value in collector.items:
                new = quiet.value_of(kind, value, target)
                for name, v in bind(target, new):
                    old = self.env.get(name, UNSET)
                    merged = v if old is UNSET else hull(old, v)
                    if old is UNSET or merged != old:
                        if round_ == WIDEN_AFTER:
                            merged = AnyArr() if tracked(merged) else (
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
                if tracked(self.ev(node.value)):
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


def module_of(node, globals_):
    """The module a ``name`` or ``name.attr`` expression refers to, if any."""
    if isinstance(node, ast.Name):
        kind_value = globals_.get(node.id)
        if kind_value is not None and kind_value[0] == "module":
            return kind_value[1]
        if node.id in ("math", "np", "numpy") and node.id not in globals_:
            return {"np": "numpy"}.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = module_of(node.value, globals_)
        return None if base is None else f"{base}.{node.attr}"
    return None


# ---- plugins ----

_lock = threading.Lock()
_reports = {}  # plugin key -> Report
_summaries = {}  # (function name, source, globals) -> Summary


def parse_def(source):
    tree = ast.parse(source)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise Unverifiable("expected a def")
    return node


def function_summary(name, display, source, globals_, resolver, same_length=None, stack=(),
             first_line=None):
    key = (name, display, first_line, source, repr(sorted(globals_.items())),
           repr(sorted((same_length or {}).items())))
    with _lock:
        cached = _summaries.get(key)
    if cached is not None:
        return cached
    node = parse_def(source)
    summary = _FunctionAnalysis(node, globals_, resolver(stack + (name,)), same_length or {},
                                display, first_line).run()
    with _lock:
        _summaries[key] = summary
    return summary


def analyse(plugin):
    """The :class:`Report` of a registered, plain or composed plugin (cached by key).

    ``plugin`` is a :class:`batchivp.source.Plugin` or a function object holding one;
    its helpers are called by their rendered names.
    """
    plugin = record_of(plugin)
    with _lock:
        cached = _reports.get(plugin.key)
    if cached is not None:
        return cached
    helpers = {h.rendered_name: h for h in plugin.helpers}
    summaries = {}

    def resolver(stack):
        def resolve(name):
            helper = helpers.get(name)
            if helper is None:
                return None
            if name in stack:
                raise Unverifiable(f"{helper.name} calls itself (recursion)")
            if name not in summaries:
                summaries[name] = function_summary(name, helper.name, helper.source, helper.globals_,
                                           resolver, None, stack)
            return summaries[name]
        return resolve

    roles = ROLES[plugin.kind]
    same_length = SIGNATURES[plugin.kind].same_length  # rhs: len(dydt) == len(y) == n
    summary = function_summary(plugin.name, display_name(plugin), plugin.source, plugin.globals_,
                       resolver, same_length, (), plugin.def_line)
    requirements = {role: [] for role in roles.values()}
    out_of_view = []
    adapter = plugin.name.startswith(("plain_rhs_", "plain_event_"))
    for use in summary.uses:
        if adapter and len(use.where) > 1:  # the adapter's call of the user's function
            use = Use(use.arr, use.need, use.index, use.verb, use.where[1:])
        role = roles.get(use.arr.param)
        if role is None:
            continue
        if use.arr.cap is not None and use.arr.cap < use.need:
            out_of_view.append((role, use))
            continue
        requirements[role].append(Requirement(role, use.arr.off + use.need,
                                              root_index(use), use.verb, use.where))
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


def root_index(use):
    if use.index >= 0:
        return use.arr.off + use.index
    return use.index if use.arr.off == 0 and use.arr.cap is None else None


def display_name(plugin):
    """How messages name a plugin: its registered name; for a plain callable's adapter
    or a composed plugin, the Python function's name (:attr:`Plugin.display`)."""
    return record_of(plugin).display


def verify(plugin, where):
    """Raise :class:`Unverifiable` naming ``where`` (the plugin, as the registry says
    it) if the analysis cannot follow some use; else return the :class:`Report`."""
    report = analyse(plugin)
    if report.unverifiable:
        raise Unverifiable(
            f"{where}: batchivp cannot prove that every index stays inside y, p and "
            f"dydt: {'; '.join(report.unverifiable)}")
    return report
