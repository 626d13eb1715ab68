"""Summaries computed in the kernel (``summarize=``, ``observables=``, ``save_y=``)
against numpy's reductions over the trajectory the same solve stores, on every target."""

import math

import numpy as np
import pytest

import batchivp as bi
from batchivp.summaries import STATISTICS


@bi.rhs
def summ_oscillator(t, y, p, dydt):
    """x'' = -w^2 x, w = p[0]."""
    dydt[0] = y[1]
    dydt[1] = -p[0] * p[0] * y[0]


@bi.observable
def summ_energy(t, y, p):
    return 0.5 * (y[1] * y[1] + p[0] * p[0] * y[0] * y[0])


@bi.observable
def summ_gap(t, y, p):
    """NaN for t in [p[1], p[1] + 0.5]: numpy's min/max propagate it, argmin finds it."""
    if t >= p[1] and t <= p[1] + 0.5:
        return math.nan
    return y[0] - 0.25


@bi.event(terminal=True, direction=1)
def summ_stop(t, y, p):
    return t - p[2]


def numpy_statistics(x, t_eval):
    """The oracle: numpy over the last axis of the stored points ``x`` (v, k)."""
    return {"min": x.min(-1), "max": x.max(-1), "mean": x.mean(-1),
            "rms": np.sqrt((x * x).mean(-1)), "argmin": t_eval[x.argmin(-1)],
            "argmax": t_eval[x.argmax(-1)],
            "sign_changes": np.count_nonzero(np.diff(x < 0, axis=-1), axis=-1)}


def oscillators():
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    nan_at = np.array([100.0, 2.0, 100.0, 5.2, 100.0])  # problems 1, 3 see NaN
    stop_at = np.array([100.0, 100.0, 3.3, 100.0, 0.05])  # 2 stops mid-way, 4 before t_eval[1]
    y0 = np.array([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0], [3.0, -1.0], [-0.5, 0.5]])
    return y0, np.column_stack([w, nan_at, stop_at])


def test_summaries_equal_numpy_over_the_stored_trajectory(target):
    """Every statistic, for the state and two observables: min, max and the arg times
    bitwise, mean and rms to round-off; problems stopped by a terminal event are
    summarized over the points they reached; the steps are those of a plain solve."""
    y0, params = oscillators()
    t_eval = np.linspace(0.0, 8.0, 81)
    kw = dict(params=params, t_eval=t_eval, rtol=1e-9, atol=1e-12, events=summ_stop,
              target=target)
    plain = bi.solve_batch(summ_oscillator, (0.0, 8.0), y0, **kw)
    res = bi.solve_batch(summ_oscillator, (0.0, 8.0), y0, observables=[summ_energy, summ_gap],
                         summarize=tuple(STATISTICS), **kw)
    np.testing.assert_array_equal(res.y, plain.y)
    np.testing.assert_array_equal(res.nfev, plain.nfev)
    np.testing.assert_array_equal(res.status, [0, 0, 1, 0, 1])
    for i in range(len(y0)):
        reached = t_eval <= res.t_final[i]
        x = res.y[i][:, reached]
        w = params[i, 0]
        energy = 0.5 * (x[1] * x[1] + w * w * x[0] * x[0])  # summ_energy's order
        gap = np.where((t_eval[reached] >= params[i, 1]) & (t_eval[reached] <= params[i, 1] + 0.5),
                       np.nan, x[0] - 0.25)
        expected = numpy_statistics(np.vstack([x, energy, gap]), t_eval[reached])
        for name, value in expected.items():
            got = res.summary[name][i]
            assert got.shape == (4,)
            if name in ("mean", "rms"):
                np.testing.assert_allclose(got, value, rtol=1e-13, atol=1e-15, err_msg=name)
            else:
                np.testing.assert_array_equal(got, value, err_msg=f"{name}, problem {i}")
    assert np.isnan(res.summary["min"][[1, 3], 3]).all()  # the NaN window was reached
    np.testing.assert_allclose(res.summary["max"][:, 2], res.summary["min"][:, 2], rtol=1e-8)


def test_save_y_false_keeps_no_trajectory_and_the_same_summaries(target):
    y0, params = oscillators()
    t_eval = np.linspace(0.0, 8.0, 81)
    kw = dict(params=params, t_eval=t_eval, rtol=1e-9, atol=1e-12, target=target,
              observables=summ_energy, summarize=("min", "argmax", "sign_changes"))
    stored = bi.solve_batch(summ_oscillator, (0.0, 8.0), y0, **kw)
    alone = bi.solve_batch(summ_oscillator, (0.0, 8.0), y0, save_y=False, **kw)
    assert alone.y is None and stored.y is not None
    for name in ("min", "argmax", "sign_changes"):
        np.testing.assert_array_equal(alone.summary[name], stored.summary[name])
    np.testing.assert_array_equal(alone.y_final, stored.y_final)
    # The exact solution: x = cos(w t) for problem 0 crosses zero at t = pi/2 + j pi.
    crossings = np.count_nonzero((np.pi / 2 + np.pi * np.arange(5)) < 8.0)
    assert alone.summary["sign_changes"][0, 0] == crossings


def test_empty_span_summarizes_y0(target):
    """t0 == tf: every t_eval point is y0 (scipy's corner case), and so are its
    statistics."""
    res = bi.solve_batch(summ_oscillator, (3.0, 3.0), [[1.0, -0.5]], params=[[2.0, 9.0, 9.0]],
                         t_eval=[3.0], summarize=("min", "mean", "argmax"),
                         observables=summ_energy, target=target)
    energy = 0.5 * (0.25 + 4.0)
    np.testing.assert_array_equal(res.summary["min"][0], [1.0, -0.5, energy])
    np.testing.assert_array_equal(res.summary["argmax"][0], [3.0, 3.0, 3.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(observables=summ_energy), "pass summarize="),
    (dict(summarize="median"), "unknown statistic 'median'"),
    (dict(summarize=()), "no statistic given"),
    (dict(summarize="min", t_eval=None), "pass t_eval"),
    (dict(save_y="no"), "save_y must be True or False"),
    (dict(summarize="min", sensitivity="y0"), "cannot be combined with sensitivity"),
])
def test_bad_summary_arguments_are_refused_by_name(kwargs, match):
    kw = dict(params=[[1.0, 9.0, 9.0]], t_eval=[0.0, 1.0], target="cpu") | kwargs
    with pytest.raises(ValueError, match=match):
        bi.solve_batch(summ_oscillator, (0.0, 1.0), [[1.0, 0.0]], **kw)


def test_an_observable_must_be_registered():
    with pytest.raises(TypeError, match="@batchivp.observable"):
        bi.solve_batch(summ_oscillator, (0.0, 1.0), [[1.0, 0.0]], params=[[1.0, 9.0, 9.0]],
                       t_eval=[0.0, 1.0], observables=[lambda t, y, p: y[0]], summarize="min")


def test_dask_blocks_carry_the_summaries():
    """Lazy summaries, one task per block: bitwise the local solve's."""
    da = pytest.importorskip("dask.array")
    y0, params = oscillators()
    y0, params = np.tile(y0, (4, 1)), np.tile(params, (4, 1))
    kw = dict(t_eval=np.linspace(0.0, 8.0, 41), rtol=1e-9, atol=1e-12, target="cpu",
              observables=summ_energy, summarize=("max", "sign_changes"), save_y=False)
    local = bi.solve_batch(summ_oscillator, (0.0, 8.0), y0, params=params, **kw)
    lazy = bi.solve_batch(summ_oscillator, (0.0, 8.0), da.from_array(y0, chunks=(7, 2)),
                          params=params, **kw)
    assert lazy.y is None and lazy.summary["max"].chunks == ((7, 7, 6), (3,))
    computed = lazy.compute(scheduler="sync")
    for name in ("max", "sign_changes"):
        assert computed.summary[name].dtype == local.summary[name].dtype
        np.testing.assert_array_equal(computed.summary[name], local.summary[name])
