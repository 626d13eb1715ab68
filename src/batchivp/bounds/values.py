"""The abstract values of the index analysis and their interval arithmetic.

An integer is an :class:`Iv` ``[lo, hi]`` whose ``hi`` may be symbolic (:class:`Sym`:
``len(array) + c``); an array is a view of a parameter (:class:`Arr`), maybe one of
them (:class:`AnyArr`) or a local array of known length (:class:`Local`); ``TOP`` is
anything else.
"""

import ast
from dataclasses import dataclass


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


def hull(a, b):
    if a == b:
        return a
    if a is None or b is None:
        return TOP if (a is None and not tracked(b)) or (b is None and not tracked(a)) else AnyArr()
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
        return Tup(tuple(hull(x, y) for x, y in zip(a.items, b.items)))
    if tracked(a) or tracked(b):
        return AnyArr()
    return TOP


def tracked(v):
    if isinstance(v, (Arr, AnyArr)):
        return True
    return isinstance(v, Tup) and any(tracked(x) for x in v.items)


def add(a, b, sign=1):
    """``a + sign * b`` for intervals."""
    if not (isinstance(a, Iv) and isinstance(b, Iv)):
        return UNKNOWN_INT
    if sign < 0:
        if isinstance(b.hi, Sym):
            return Iv(None, shift(a.hi, -b.lo) if b.lo is not None else None)
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


def shift(hi, d):
    if isinstance(hi, int):
        return hi + d
    if isinstance(hi, Sym):
        return Sym(hi.key, hi.c + d)
    return None


def const(v):
    return v.lo if isinstance(v, Iv) and isinstance(v.lo, int) and v.lo == v.hi else None


def bounded(v):
    return isinstance(v, Iv) and isinstance(v.lo, int) and isinstance(v.hi, int)


def elements_needed(v):
    """How many elements an array needs for every index in ``v``: ``hi + 1`` for
    indices from the start, ``-lo`` for indices from the end; None unless ``v`` is
    bounded and of one sign."""
    if not bounded(v) or (v.lo < 0 <= v.hi):
        return None
    return v.hi + 1 if v.lo >= 0 else -v.lo


def mul(a, b):
    if bounded(a) and bounded(b):
        products = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        return Iv(min(products), max(products))
    return UNKNOWN_INT


def floordiv(a, b):
    d = const(b)
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


def mod(a, b):
    if not isinstance(b, Iv) or b.lo is None or b.lo < 1:
        return UNKNOWN_INT
    return Iv(0, shift(b.hi, -1))  # Python's % takes the divisor's sign


def min_hi(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    for h in (a, b):  # a bound by an array's own length proves more
        if isinstance(h, Sym):
            return h
    return a if a is not None else b


def refine(v, lo=None, hi=None):
    if not isinstance(v, Iv):
        v = UNKNOWN_INT
    new_lo = v.lo if lo is None else (lo if v.lo is None else max(v.lo, lo))
    new_hi = v.hi if hi is None else min_hi(v.hi, hi)
    return Iv(new_lo, new_hi)


def range_element(args):
    if len(args) == 1:
        start, stop, step = Iv(0, 0), args[0], Iv(1, 1)
    else:
        start, stop = args[0], args[1]
        step = args[2] if len(args) == 3 else Iv(1, 1)
    s = const(step)
    if not all(isinstance(v, Iv) for v in (start, stop)) or s is None or s == 0:
        return UNKNOWN_INT
    if s > 0:
        first, last = const(start), const(stop)
        if first is not None and last is not None:  # the last value taken
            if first >= last:
                return Iv(1, 0)  # an empty range: its body never runs
            return Iv(first, first + (last - 1 - first) // s * s)
        return Iv(start.lo, shift(stop.hi, -1))
    lo = None if stop.lo is None else stop.lo + 1
    return Iv(lo, start.hi)


def compose(outer, inner):
    """The view ``inner`` of a parameter that received the view ``outer``."""
    if outer.off is None or inner.off is None:
        return None
    cap = inner.cap
    if outer.cap is not None:
        rest = max(outer.cap - inner.off, 0)
        cap = rest if cap is None else min(cap, rest)
    return Arr(outer.param, outer.off + inner.off, cap)


def literal_value(text):
    """The abstract value of a resolved constant (registry or plain literal text)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return TOP
    return abstract(value)


def abstract(value):
    if isinstance(value, bool) or isinstance(value, int):
        return Iv(int(value), int(value))
    if isinstance(value, tuple):
        return Tup(tuple(abstract(v) for v in value))
    return TOP
