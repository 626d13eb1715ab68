"""What the index analysis reports: per function (:class:`Summary`) and per plugin
(:class:`Report`)."""

from dataclasses import dataclass, field

from .values import Arr


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
