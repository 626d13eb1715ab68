"""``solve_batch(dtype=np.float32 | "mixed")`` against scipy's float64 DOP853 at a tight
tolerance (the oracle), on every target; the tolerances float32 cannot honour; the
dtypes of the results.

Accuracy stated: at ``rtol = 1e-5, atol = 1e-7`` on the Lorenz batch below (t in
[0, 1], rho from 0.5 to 28), each problem's largest error over the ``t_eval`` points,
relative to its largest component, stays under ``ACCURACY * rtol``. Measured
(benchmarks/README.md, "Precision"): 14.2 rtol for float32, 13.9 for mixed, and 14.7
for float64 itself at the same tolerance; the error is the method's (the
tolerance's), float32's round-off (about 1e-7 relative a step) adds little to it, so
the bound is float64's own error with a margin of two.

One state dimension (3, which the suite compiles anyway) keeps the new compiled cores
to one per dtype and target.
"""

import numpy as np
import pytest

import batchivp as bi
from batchivp import models

from conftest import scipy_reference

RTOL, ATOL = 1e-5, 1e-7
ACCURACY = 30  # in units of rtol; see the module docstring
DTYPES = {np.float32: np.float32, "mixed": np.float64}  # dtype -> dtype of the results


@bi.event(direction=1)
def dtype_z_up(t, y, p):
    """z rises through rho - 1 (the convecting fixed points' height)."""
    return y[2] - (p[1] - 1.0)


def _lorenz(n_prob):
    rho = np.linspace(0.5, 28.0, n_prob)
    params = np.stack([np.full(n_prob, 10.0), rho, np.full(n_prob, 8.0 / 3.0)], axis=1)
    y0 = 1.0 + np.linspace(0.0, 1.0, n_prob)[:, None] * np.ones((1, 3))
    return y0, params, np.linspace(0.0, 1.0, 11)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=["float32", "mixed"])
def test_lower_precision_matches_scipy_within_its_accuracy(target, dtype):
    n_prob = 6 if target == "cuda" else 16  # the simulator runs Python
    y0, params, t_eval = _lorenz(n_prob)
    res = bi.solve_batch(models.lorenz, (0.0, 1.0), y0, params, t_eval=t_eval, rtol=RTOL,
                         atol=ATOL, target=target, dtype=dtype, events=dtype_z_up,
                         max_events=4)
    assert res.success.all()
    real = DTYPES[dtype]
    assert res.y.dtype == real and res.y_final.dtype == real and res.y_events[0].dtype == real
    assert res.t_final.dtype == np.float64 and res.t_events[0].dtype == np.float64
    for i in range(n_prob):
        ref = scipy_reference(models.lorenz, (0.0, 1.0), y0[i], params[i], t_eval=t_eval,
                              events=[dtype_z_up], rtol=1e-12, atol=1e-12)
        scale = np.abs(ref.y).max()
        error = np.abs(res.y[i].astype(np.float64) - ref.y).max() / scale
        assert error < ACCURACY * RTOL, (i, error / RTOL)
        np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=0,
                                   atol=ACCURACY * RTOL * scale)
        # The same crossings, at times within the state's accuracy over |dz/dt|.
        times = ref.t_events[0]
        assert res.n_events[i, 0] == len(times), i
        found = res.t_events[0][i, :len(times)]
        np.testing.assert_allclose(found, times[:4], rtol=0, atol=1e-3)


@pytest.mark.parametrize("dtype", ["mixed", np.float32, "float32"])
def test_tolerance_below_float32_is_refused_naming_the_smallest(dtype):
    smallest = 10 * np.finfo(np.float32).eps
    with pytest.raises(ValueError, match=r"rtol=1e-06 .*smallest rtol accepted is 1\.19e-06"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((2, 3)), [10.0, 28.0, 8 / 3],
                       rtol=1e-6, target="cpu", dtype=dtype)
    with pytest.raises(ValueError, match=r"atol=1e-40 is below float32's smallest normal"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((2, 3)), [10.0, 28.0, 8 / 3],
                       rtol=smallest, atol=1e-40, target="cpu", dtype=dtype)


def test_unknown_dtype_and_overflowing_state_are_refused():
    with pytest.raises(ValueError, match=r"dtype='float16': expected np.float64"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((2, 3)), [10.0, 28.0, 8 / 3],
                       target="cpu", dtype="float16")
    with pytest.raises(ValueError, match=r"y0 holds a value beyond float32's range"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.full((2, 3), 1e39), [10.0, 28.0, 8 / 3],
                       target="cpu", dtype=np.float32)
