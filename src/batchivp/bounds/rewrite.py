"""The rewrite of the subscripts the analysis could not bound into checked accesses
(``core/access.py``)."""

import ast

from .analysis import ISTATE_PARAM, analyse, parse_def


def instrument(source, def_name, checked, status_calls, takes_status):
    """``source`` (one ``def``) with the subscripts at ``checked`` positions rewritten
    into checked accesses and ``istate`` passed to the calls at ``status_calls``;
    ``takes_status``: add the ``istate`` parameter. Unchanged text when there is
    nothing to do."""
    if not (checked or status_calls or takes_status):
        return source
    node = parse_def(source)
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
