"""batchivp: scipy's DOP853 for one problem or millions, on cpu, all cores or CUDA.

Public API (docs/architecture.md): :func:`rhs`, :func:`register_rhs`, :func:`event`,
:func:`register_event`, :func:`observable`, :func:`solve_batch`, :class:`BatchResult`, :class:`Status`,
:func:`solve_ivp`
(a drop-in for ``scipy.integrate.solve_ivp``). The default target comes from ``BATCHIVP_TARGET``
(``cpu``, ``parallel``, ``cuda``, ``auto``); ``target=`` overrides it per call.
"""

from .batch import BatchResult, solve_batch
from .ivp import CompilationWarning, solve_ivp
from .registry import (EventFunction, RegistrationError, RhsFunction, event, observable,
                       register_event, register_rhs, rhs)
from .status import MESSAGES, Status
from .targets import resolve_target

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "CompilationWarning",
    "EventFunction",
    "MESSAGES",
    "RegistrationError",
    "RhsFunction",
    "Status",
    "event",
    "observable",
    "register_event",
    "register_rhs",
    "resolve_target",
    "rhs",
    "solve_batch",
    "solve_ivp",
    "__version__",
]
