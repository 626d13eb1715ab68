"""The status of a problem: one table of codes, messages and their ``solve_ivp`` mapping.

:class:`Status` is the only definition of what a status code means. The kernel writes
plain ints (the ``STATUS_*`` constants of ``core/dop853.py``, which the renderer copies
into the generated code, where an enum cannot go); :func:`check_core` compares them
with this table when the module is imported, so the two cannot drift apart.

Every consumer derives from the table: ``BatchResult.success`` and ``.message``,
``solve_batch``'s Ctrl-C warning, the host loop's test for problems still to run
(:func:`unfinished`), and ``solve_ivp``'s ``status`` and ``message`` (:func:`ivp_status`).
Codes 0 and 1 are scipy's; the negative codes are failures (scipy has only -1, which
``solve_ivp`` reports for each of them); 2, 3 and 4 are states of a problem that has not
ended yet.
"""

import enum

from .core import dop853 as core

CORE_PREFIX = "STATUS_"

# The kinds of code, one per member (its flags derive from it).
KIND_SUCCESS = "success"  # ended as asked: scipy's status >= 0
KIND_FAILURE = "failure"  # ended before its end; scipy's -1
KIND_UNFINISHED = "unfinished"  # left by an interrupted batch; the host loop calls it again
KIND_PAUSED = "paused"  # internal to solve_ivp, never in a result: see Status.PAUSED

# A member's last field is solve_ivp's message: SAME for the member's own message, a
# text, or left out for GENERIC, which is also the text of a code the table lacks.
SAME = object()
GENERIC = "Integration failed with status {status}."


class Status(enum.IntEnum):
    """Status codes of a problem: ``BatchResult.status`` holds one per problem.

    Each member has its ``message`` (what ``BatchResult.message`` says), its kind and,
    for ``solve_ivp``, :attr:`ivp_status` and :attr:`ivp_message`: scipy's code (0, 1
    or -1) and scipy's text where scipy has one. :attr:`successful` members are scipy's
    0 and 1; :attr:`unfinished` ones (``RUNNING``, ``PENDING``) are what Ctrl-C leaves
    in a batch. ``PAUSED`` is neither: ``solve_ivp``'s kernel stops with it when its
    step record is full, and ``solve_ivp`` grows the record and resumes, so no result
    holds it (``solve_batch`` records no steps).
    """

    def __new__(cls, value, kind, message, ivp_message=None):
        member = int.__new__(cls, value)
        member._value_ = value
        member.kind = kind
        member.message = message
        member._ivp_message = ivp_message
        return member

    FINISHED = (0, KIND_SUCCESS,
                "The solver successfully reached the end of the integration interval.", SAME)
    EVENT = 1, KIND_SUCCESS, "A termination event occurred.", SAME
    STEP_TOO_SMALL = (-1, KIND_FAILURE,
                      "Required step size is less than spacing between numbers.", SAME)
    # scipy rejects a step with a non-finite derivative until the step is too small.
    NONFINITE = (-2, KIND_FAILURE,
                 "The right-hand side returned a non-finite value (NaN or inf).",
                 "Required step size is less than spacing between numbers.")
    BUDGET = (-3, KIND_FAILURE,
              "The step budget (max_steps) was exhausted before the end of the interval.")
    # scipy's brentq raises there; solve_ivp's event rule lets NaN at a step's end pass.
    EVENT_NONFINITE = (-5, KIND_FAILURE,
                       "An event function returned a non-finite value (NaN or inf).",
                       "An event function returned NaN while its root was searched in a step "
                       "(scipy's brentq raises ValueError there).")
    NAN_STEP = (-6, KIND_FAILURE,
                "The step size is NaN: a component's error scale atol + rtol * |y| "
                "is zero (atol = 0 where y = 0); give that component atol > 0.", SAME)
    INDEX = (-7, KIND_FAILURE,
             "An index computed at run time was out of range in a right-hand side or "
             "event function (the access was not made; see the README's Failures).", SAME)
    INFINITE_STEP = (-8, KIND_FAILURE,
                     "The step size grew to infinity: t_span ends at inf and no "
                     "terminal event ended the integration.", SAME)
    USER_ERROR = (-9, KIND_FAILURE,
                  "A right-hand side or event function raised an exception (numba printed "
                  "it on stderr); the problem ended there.", SAME)
    RUNNING = (2, KIND_UNFINISHED,
               "Integration stopped before the end of the interval (interrupted).")
    PENDING = 3, KIND_UNFINISHED, "Integration was not started (interrupted)."
    PAUSED = (4, KIND_PAUSED,
              "Integration paused because its step record is full; it can be resumed.")

    @property
    def successful(self):
        """The problem ended as asked: at the end of its span or at a terminal event."""
        return self.kind == KIND_SUCCESS

    @property
    def unfinished(self):
        """The problem has steps left that another kernel call would take."""
        return self.kind == KIND_UNFINISHED

    @property
    def ivp_status(self):
        """``solve_ivp``'s (scipy's) status: the code itself on success, else -1."""
        return int(self) if self.successful else -1

    @property
    def ivp_message(self):
        """``solve_ivp``'s (scipy's) message for this code."""
        if self._ivp_message is SAME:
            return self.message
        if self._ivp_message is None:
            return GENERIC.format(status=int(self))
        return self._ivp_message


# Plain ints: ``numpy.int64 in`` a tuple of enum members compares through the enum,
# far slower in the host loop's test of every problem.
SUCCESSFUL = tuple(int(s) for s in Status if s.successful)
UNFINISHED = tuple(int(s) for s in Status if s.unfinished)
MESSAGES = {int(s): s.message for s in Status}
_IVP = {int(s): (s.ivp_status, s.ivp_message) for s in Status}


def _any_of(status, codes):
    """``status`` equals one of ``codes``: a mask for arrays (NumPy or Dask) alike."""
    mask = status == codes[0]
    for code in codes[1:]:
        mask = mask | (status == code)
    return mask


def successful(status):
    """Boolean mask of ``status`` (codes, any shape): the problem ended as asked."""
    return _any_of(status, SUCCESSFUL)


def unfinished(status):
    """Boolean mask of ``status`` (codes, any shape): the problem is not done, running or
    not started."""
    return _any_of(status, UNFINISHED)


def status_message(code):
    """The message of one status code (an int), naming a code the table lacks."""
    code = int(code)
    return MESSAGES.get(code, f"Unknown status {code}.")


def ivp_status(code):
    """``solve_ivp``'s ``(status, message)`` for the kernel's status ``code`` (an int)."""
    code = int(code)
    if code in _IVP:
        return _IVP[code]
    return -1, GENERIC.format(status=code)


def check_core(namespace):
    """Raise ``RuntimeError`` unless ``namespace`` (the core module, or a stand-in with
    the same attributes) defines ``STATUS_<NAME> = value`` for exactly the members of
    :class:`Status`."""
    core_codes = {name[len(CORE_PREFIX):]: getattr(namespace, name)
                  for name in dir(namespace) if name.startswith(CORE_PREFIX)}
    table = {s.name: int(s) for s in Status}
    problems = [f"{CORE_PREFIX}{name} = {code} in the core, {table[name]} in Status"
                for name, code in core_codes.items()
                if name in table and (type(code) is not int or code != table[name])]
    problems += [f"{CORE_PREFIX}{name} = {core_codes[name]} in the core, not in Status"
                 for name in sorted(core_codes.keys() - table.keys())]
    problems += [f"Status.{name} = {table[name]} has no {CORE_PREFIX}{name} in the core"
                 for name in sorted(table.keys() - core_codes.keys())]
    if problems:
        raise RuntimeError(
            "batchivp's status table (batchivp/status.py) and the codes the kernel writes "
            f"(the {CORE_PREFIX}* constants of {getattr(namespace, '__name__', namespace)}) "
            "differ; edit both together: " + "; ".join(problems) + ".")


check_core(core)
