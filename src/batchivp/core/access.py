"""Index-checked array access for user functions, written once for every target.

Same contract as ``dop853.py``. :mod:`batchivp.bounds` proves most indices of a user
function in range before a kernel runs; the renderer rewrites the few it cannot bound
(an index computed at run time) into these calls, so that such an access never reads
or writes outside its array. Out of range, the access sets the problem's status to
``STATUS_INDEX`` in ``istate`` (every target can write it: it is the problem's own
row of a kernel argument), a read gives NaN and a write is dropped; the core tests the
status after each evaluation and ends the problem there.
"""

import math

from .dop853 import IS_STATUS, STATUS_INDEX


def bounds_checked_index(i, n, istate):
    """``i`` as an index into ``n`` elements (negative: from the end, as Python), or
    -1 with ``istate``'s status set to ``STATUS_INDEX`` when it is out of range."""
    if i < 0:
        i = i + n
    if i >= 0 and i < n:
        return i
    istate[IS_STATUS] = STATUS_INDEX
    return -1


def bounds_checked_read(a, i, istate):
    """``a[i]``, or NaN with the status set when ``i`` is out of range."""
    k = bounds_checked_index(i, len(a), istate)
    if k < 0:
        return math.nan
    return a[k]
