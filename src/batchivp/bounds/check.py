"""The check before a kernel runs: a batch's dimensions against its plugins' reports."""

from dataclasses import dataclass

from .analysis import Unverifiable, analyse, display_name


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
