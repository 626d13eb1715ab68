"""Shared test setup: targets, and scipy as the oracle.

Without a GPU the ``cuda`` target runs in numba's CUDA simulator: the variable must be
set before numba.cuda is first imported. On a GPU machine run
``BATCHIVP_TEST_CUDA=gpu python -m pytest -m cuda`` for the real device.
"""

import os

if os.environ.get("BATCHIVP_TEST_CUDA") != "gpu":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp

# Every numerical test runs on every target; "cuda" is the simulator unless on a GPU.
TARGETS = ["cpu", "parallel", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=TARGETS)
def target(request):
    return request.param


def scipy_reference(fun, t_span, y0, p, **kwargs):
    """scipy's DOP853 on one problem, calling the same Python function as the kernel.

    ``fun`` is a registered right-hand side ``fun(t, y, p, dydt)``; the wrapper hands it
    a fresh ``dydt`` so the arithmetic is the user's own, as in the kernel.
    """
    p = np.atleast_1d(np.asarray(p, dtype=float))

    def f(t, y):
        dydt = np.empty_like(y)
        fun(t, y, p, dydt)
        return dydt

    return scipy_solve_ivp(f, t_span, np.asarray(y0, dtype=float), method="DOP853", **kwargs)
