"""The values locals take, flow-insensitively: every assignment of a function and the
union of what each assigns (used by :class:`~batchivp.bounds.analysis._FunctionAnalysis`)."""

import ast
import copy

from .report import Summary
from .values import TOP, AnyArr, Arr, Iv, Sym, Tup, hull, range_element, shift, tracked

UNSET = object()


class Quiet:
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
                return range_element(args)
            if name == "enumerate" and iterable.args:
                inner = a.ev(iterable.args[0])
                hi = a.length(inner).hi if isinstance(inner, Arr) else None
                if isinstance(hi, Sym):
                    hi = shift(hi, -1)
                elif isinstance(inner, Tup):
                    hi = len(inner.items) - 1
                return Tup((Iv(0, hi), TOP))
            if name == "zip":
                return Tup(tuple(TOP for _ in args))
        v = a.ev(iterable)
        if isinstance(v, Tup) and v.items:
            out = v.items[0]
            for item in v.items[1:]:
                out = hull(out, item)
            return out
        return TOP

    def done(self):
        self.analysis.summary = self.saved


def _load(target):
    node = copy.deepcopy(target)
    for sub in ast.walk(node):
        if hasattr(sub, "ctx"):
            sub.ctx = ast.Load()
    return node


class Assignments(ast.NodeVisitor):
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


def bind(target, value):
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, (ast.Tuple, ast.List)):
        out = []
        for i, e in enumerate(target.elts):
            item = value.items[i] if isinstance(value, Tup) and i < len(value.items) else (
                AnyArr() if tracked(value) else TOP)
            out += bind(e, item)
        return out
    if isinstance(target, ast.Starred):
        return bind(target.value, AnyArr() if tracked(value) else TOP)
    return []


def bound_names(stmts):
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
