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

from .analysis import ISTATE_PARAM, ROLES, Unverifiable, analyse, display_name, verify
from .check import BATCH_ARGUMENTS, Arguments, check, check_declared
from .rewrite import instrument, rewrite_plan

__all__ = ["ISTATE_PARAM", "ROLES", "Unverifiable", "analyse", "display_name", "verify",
           "BATCH_ARGUMENTS", "Arguments", "check", "check_declared", "instrument",
           "rewrite_plan"]
