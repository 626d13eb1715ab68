"""Summaries of each problem's trajectory at the ``t_eval`` points, on the host side.

The kernel keeps running accumulators per problem and variable (``core/summaries.py``:
the state's components, then the observables) instead of, or besides, the trajectory
``y``. This module owns the statistics users ask for by name (:data:`STATISTICS`), the
checks of ``summarize``, ``observables`` and ``save_y``, and the conversion of the
accumulators into :attr:`BatchResult.summary <batchivp.BatchResult>`.
"""

import numpy as np

from .core import summaries as core

# name -> what it is, over the t_eval points a problem reached (its docstring table).
STATISTICS = {
    "min": "the smallest value (NaN if any value is NaN, as numpy.min)",
    "max": "the largest value (NaN if any value is NaN, as numpy.max)",
    "mean": "the mean (numpy.mean, to round-off: the kernel sums in index order)",
    "rms": "the root mean square, sqrt(mean(x**2))",
    "argmin": "the t_eval time of the first minimum (or first NaN), as numpy.argmin",
    "argmax": "the t_eval time of the first maximum (or first NaN), as numpy.argmax",
    "sign_changes": "the number of consecutive points between which x < 0 changes, "
                    "numpy.count_nonzero(numpy.diff(x < 0)); an integer",
}


def statistics(summarize):
    """The statistics asked for, a tuple of names of :data:`STATISTICS` in the order
    given (repeats dropped); ``()`` for ``None``."""
    if summarize is None:
        return ()
    names = (summarize,) if isinstance(summarize, str) else summarize
    try:
        names = tuple(dict.fromkeys(names))
    except TypeError:
        raise ValueError(f"summarize must be a statistic's name or a sequence of them "
                         f"({', '.join(STATISTICS)}), got {summarize!r}") from None
    unknown = [name for name in names if name not in STATISTICS]
    if unknown or not names:
        what = f"unknown statistic {unknown[0]!r}" if unknown else "no statistic given"
        raise ValueError(f"summarize: {what}; choose among {', '.join(STATISTICS)}")
    return names


def check(names, observables, n_eval, save_y, sensitivity):
    """Refuse combinations that would silently give nothing: observables without
    statistics, statistics without ``t_eval``, summaries with sensitivities."""
    if not isinstance(save_y, (bool, np.bool_)):
        raise ValueError(f"save_y must be True or False, got {save_y!r}")
    if observables and not names:
        raise ValueError("observables are summarized, not stored: pass summarize=, for "
                         "example summarize=('min', 'max')")
    if names and n_eval == 0:
        raise ValueError("summarize: the statistics are over the t_eval points; pass "
                         "t_eval (for example np.linspace(t0, tf, 1001))")
    if names and sensitivity is not None:
        raise ValueError("summarize cannot be combined with sensitivity yet; solve twice, "
                         "or store y (save_y=True) and its sensitivities dy_dy0/dy_dp")


def results(summary, n_points, t_eval, names):
    """``{name: (N, v) array}`` from the kernel's accumulators ``summary`` (N, v,
    SUMMARY_SLOTS), the points each problem reached ``n_points`` (N,) and its
    ``t_eval`` (N, k) (broadcast rows). A problem that reached no point gets NaN
    (``sign_changes``: 0)."""
    reached = (n_points > 0)[:, None]
    count = np.maximum(n_points, 1)[:, None]
    out = {}
    for name in names:
        if name in ("min", "max"):
            value = summary[:, :, core.SU_MIN if name == "min" else core.SU_MAX].copy()
        elif name == "mean":
            value = summary[:, :, core.SU_SUM] / count
        elif name == "rms":
            value = np.sqrt(summary[:, :, core.SU_SUMSQ] / count)
        elif name in ("argmin", "argmax"):
            index = summary[:, :, core.SU_ARGMIN if name == "argmin" else core.SU_ARGMAX]
            index = np.where(reached, index, 0).astype(np.int64)
            value = np.take_along_axis(np.asarray(t_eval, dtype=float), index, axis=1)
        else:
            out[name] = np.where(reached, summary[:, :, core.SU_CHANGES], 0).astype(np.int64)
            continue
        out[name] = np.where(reached, value, np.nan)
    return out
