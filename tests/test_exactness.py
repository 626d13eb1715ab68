"""Step-for-step identity with scipy's DOP853, summation order aside.

scipy forms its sums with BLAS (``np.dot``, ``np.linalg.norm``), whose order of
summation is the BLAS kernel's. Where an error estimate is mostly round-off, that
order decides the next step (README, "Exactness"). Two oracles fix the order to index
order, batchivp's: scipy's own DOP853 code with only those sums replaced (in this
process), and unmodified scipy in a child process whose OpenBLAS kernel sums in index
order (``batchivp.bench.scipy_ref``). Then every problem, including the ones whose
first steps are round-off driven, must take exactly scipy's steps (equal ``nfev`` and
``t`` grid) on every target.
"""

import numpy as np
import pytest
from conftest import scipy_reference

import batchivp as bi
from batchivp import models
from batchivp.bench.batch_cases import BatchCase
from batchivp.bench.scipy_ref import scipy_reference as stock_scipy_loop
from batchivp.orbit.constants import MU_EARTH as MU


exact_kepler = models.two_body


def kepler_orbits(n, seed):
    """Orbits in the x-y plane (z = vz = 0: components that start at exactly zero,
    where round-off drives the first steps) and inclined ones."""
    rng = np.random.default_rng(seed)
    r = 6778.0 + rng.uniform(0.0, 2000.0, n)
    v = np.sqrt(MU / r) * rng.uniform(0.95, 1.05, n)
    inc = np.where(np.arange(n) % 2 == 0, 0.0, rng.uniform(0.1, 1.5, n))
    y0 = np.zeros((n, 6))
    y0[:, 0] = r
    y0[:, 4] = v * np.cos(inc)
    y0[:, 5] = v * np.sin(inc)
    return y0


def test_same_steps_as_scipy_with_index_order_sums(target, scipy_in_index_order):
    n = 6 if target == "cuda" else 24  # the simulator runs Python per thread
    y0 = kepler_orbits(n, seed=7)
    span = (0.0, 6000.0)
    res = bi.solve_batch(exact_kepler, span, y0, params=MU, rtol=1e-10, atol=1e-10,
                         target=target)
    for i in range(n):
        ref = scipy_reference(exact_kepler, span, y0[i], MU, rtol=1e-10, atol=1e-10)
        assert res.nfev[i] == ref.nfev, f"orbit {i}: nfev {res.nfev[i]} vs {ref.nfev}"
        assert res.nstep[i] == len(ref.t) - 1
        np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=1e-12, atol=1e-9)


def test_same_steps_as_unmodified_scipy_summing_in_index_order(target):
    """Unmodified scipy, numpy and OpenBLAS (a child process with
    ``OPENBLAS_CORETYPE=Sandybridge``): the same ``nfev``, steps and final states, to
    the last bit, on every orbit of a Kepler batch."""
    n = 6 if target == "cuda" else 24
    y0 = kepler_orbits(n, seed=11)
    case = BatchCase("exactness", exact_kepler, (0.0, 6000.0), y0, np.full((n, 1), MU), 1e-10,
                     np.arange(n))
    _, nfev, nstep, y_final, blas = stock_scipy_loop(case, "index")
    if not blas["index_order"]:
        pytest.skip(f"no BLAS kernel summing in index order here ({blas['where']})")
    res = bi.solve_batch(exact_kepler, case.t_span, y0, params=MU, rtol=1e-10, atol=1e-10,
                         target=target)
    np.testing.assert_array_equal(res.nfev, nfev)
    np.testing.assert_array_equal(res.nstep, nstep)
    np.testing.assert_array_equal(res.y_final, y_final)
