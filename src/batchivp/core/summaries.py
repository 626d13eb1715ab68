"""Summaries of a problem's trajectory at the ``t_eval`` points, without storing it.

Same contract as ``dop853.py``. Each ``t_eval`` point the driver reaches
(``driver.py``, :func:`store_point`) goes to ``yout`` unless the batch keeps only
summaries (``icfg[IC_SAVE_Y] == 0``), and, with ``icfg[IC_SUMMARIZE]``, updates the
running statistics of every state component and of every observable: a function
``g(t, y, p) -> float`` called through the event dispatcher ``event(handle, t, y, p,
istate)`` with the handles at ``icfg[ICFG_SIZE:]``.

``summary[v, :]`` holds, for the ``v``-th variable (the state's components, then the
observables), the accumulators below, over the points ``0 .. i_eval`` reached so far.
They reproduce numpy's reductions over the stored points: ``min``/``max`` propagate a
NaN and ``argmin``/``argmax`` give the first index of the extreme value (or of the
first NaN), as ``numpy.argmin`` does; the sums are taken in index order (numpy sums
pairwise, so means agree to round-off); a sign change is a step between consecutive
points from ``x < 0`` to ``x >= 0`` or back, ``numpy.count_nonzero(numpy.diff(x <
0))``. The host turns sums into means and indices into times (``batchivp.summaries``).
"""

from .dop853 import ICFG_SIZE, IC_N_OBSERVABLES, IC_SAVE_Y, IC_SUMMARIZE

SU_MIN = 0
SU_ARGMIN = 1  # index into t_eval, as a float
SU_MAX = 2
SU_ARGMAX = 3
SU_SUM = 4
SU_SUMSQ = 5
SU_CHANGES = 6  # sign changes between consecutive points
SU_LAST = 7  # the last point's value (for the next sign change)
SUMMARY_SLOTS = 8


def summarize_value(summary, v, i_eval, x):
    """Add ``x``, variable ``v``'s value at point ``i_eval``, to its accumulators."""
    if i_eval == 0:
        summary[v, SU_MIN] = x
        summary[v, SU_ARGMIN] = 0.0
        summary[v, SU_MAX] = x
        summary[v, SU_ARGMAX] = 0.0
        summary[v, SU_SUM] = x
        summary[v, SU_SUMSQ] = x * x
        summary[v, SU_CHANGES] = 0.0
        summary[v, SU_LAST] = x
        return
    low = summary[v, SU_MIN]
    if low == low and not x >= low:  # smaller, or the first NaN (numpy's NaN wins)
        summary[v, SU_MIN] = x
        summary[v, SU_ARGMIN] = i_eval
    high = summary[v, SU_MAX]
    if high == high and not x <= high:
        summary[v, SU_MAX] = x
        summary[v, SU_ARGMAX] = i_eval
    summary[v, SU_SUM] += x
    summary[v, SU_SUMSQ] += x * x
    if (x < 0.0) != (summary[v, SU_LAST] < 0.0):
        summary[v, SU_CHANGES] += 1.0
    summary[v, SU_LAST] = x


def store_point(icfg, t, i_eval, yv, p, yout, summary, istate, n):
    """The state ``yv`` at ``t``, the ``i_eval``-th ``t_eval`` point: into ``yout``
    (unless only summaries are kept) and into the summaries of the state's components
    and the observables. The caller tests the status after it (an observable's index
    checked at run time, or one that raised, ends the problem as an event would)."""
    if icfg[IC_SAVE_Y] != 0:
        for i in range(n):
            yout[i, i_eval] = yv[i]
    if icfg[IC_SUMMARIZE] == 0:
        return
    for i in range(n):
        summarize_value(summary, i, i_eval, yv[i])
    for o in range(icfg[IC_N_OBSERVABLES]):
        x = event(icfg[ICFG_SIZE + o], t, yv, p, istate)
        summarize_value(summary, n + o, i_eval, x)
