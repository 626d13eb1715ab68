"""Shared test setup: targets, and scipy as the oracle.

Without a GPU the ``cuda`` target runs in numba's CUDA simulator: the variable must be
set before numba.cuda is first imported. On a GPU machine run
``BATCHIVP_TEST_CUDA=gpu python -m pytest -m cuda`` for the real device.
"""

import os

if os.environ.get("BATCHIVP_TEST_CUDA") != "gpu":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import contextlib
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp
from scipy.integrate._ivp import common, rk

from batchivp.bench.scipy_ref import ordered_dot

# Every numerical test runs on every target; "cuda" is the simulator unless on a GPU.
TARGETS = ["cpu", "parallel", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=TARGETS)
def target(request):
    return request.param


def scipy_reference(fun, t_span, y0, p, events=None, blas="index", **kwargs):
    """scipy's DOP853 on one problem, calling the same Python functions as the kernel.

    ``fun`` is a registered right-hand side ``fun(t, y, p, dydt)``; the wrapper hands it
    a fresh ``dydt`` so the arithmetic is the user's own, as in the kernel. ``events``
    are registered event functions ``event(t, y, p)``, given to scipy with their
    ``terminal`` and ``direction``.

    ``blas="index"`` (default) runs scipy's own code with its BLAS sums in index order
    (:func:`index_order_sums`): then equal steps (``nfev``, grids, event times) are
    asserted on every machine. ``blas="stock"`` runs scipy as installed, whose sums
    follow the BLAS kernel of this CPU: compare only what holds on every kernel.
    """
    if blas not in ("index", "stock"):
        raise ValueError(f"blas must be 'index' or 'stock', got {blas!r}")
    p = np.atleast_1d(np.asarray(p, dtype=float))

    def f(t, y):
        dydt = np.empty_like(y)
        fun(t, y, p, dydt)
        return dydt

    if events is not None:
        events = [_scipy_event(ev, p) for ev in events]
    with index_order_sums() if blas == "index" else contextlib.nullcontext():
        return scipy_solve_ivp(f, t_span, np.asarray(y0, dtype=float), method="DOP853",
                               events=events, **kwargs)


def _scipy_event(ev, p):
    def g(t, y):
        return ev(t, y, p)

    g.terminal = ev.terminal
    g.direction = ev.direction
    return g


# ---- scipy's DOP853 with its BLAS sums replaced by sums in index order ----
# scipy forms stage sums and norms with np.dot / np.linalg.norm, whose order of
# summation is the BLAS build's; the kernel sums in index order (README, "Exactness").

def ordered_norm(x):
    """``numpy.linalg.norm`` summed in index order; for complex ``x`` numpy adds the sum
    over the real parts to the sum over the imaginary parts."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return math.sqrt(_sum_of_squares(x.real) + _sum_of_squares(x.imag))
    return math.sqrt(_sum_of_squares(x))


def _sum_of_squares(x):
    return sum(float(v) * float(v) for v in x)


def ordered_rk_step(fun, t, y, f, h, A, B, C, K):
    K[0] = f
    for s, (a, c) in enumerate(zip(A[1:], C[1:]), start=1):
        dy = ordered_dot(K[:s], a[:s]) * h
        K[s] = fun(t + c * h, y + dy)
    y_new = y + h * ordered_dot(K[:-1], B)
    f_new = fun(t + h, y_new)
    K[-1] = f_new
    return y_new, f_new


def ordered_error_norm(self, K, h, scale):
    err5 = ordered_dot(K, self.E5) / scale
    err3 = ordered_dot(K, self.E3) / scale
    err5_norm_2 = ordered_norm(err5) ** 2
    err3_norm_2 = ordered_norm(err3) ** 2
    if err5_norm_2 == 0 and err3_norm_2 == 0:
        return 0.0
    denom = err5_norm_2 + 0.01 * err3_norm_2
    return np.abs(h) * err5_norm_2 / np.sqrt(denom * len(scale))



def ordered_dense_output_impl(self):
    """scipy's ``DOP853._dense_output_impl`` with index-order sums."""
    K = self.K_extended
    h = self.h_previous
    for s, (a, c) in enumerate(zip(self.A_EXTRA, self.C_EXTRA), start=self.n_stages + 1):
        dy = ordered_dot(K[:s], a[:s]) * h
        K[s] = self.fun(self.t_old + c * h, self.y_old + dy)
    F = np.empty((7, self.n), dtype=self.y_old.dtype)
    f_old = K[0]
    delta_y = self.y - self.y_old
    F[0] = delta_y
    F[1] = h * f_old - delta_y
    F[2] = 2 * delta_y - h * (self.f + f_old)
    F[3:] = h * np.array([ordered_dot(K, d) for d in self.D])
    return rk.Dop853DenseOutput(self.t_old, self.t, self.y_old, F)


@contextlib.contextmanager
def index_order_sums():
    """scipy's own DOP853 code, with only its BLAS sums replaced by index-order sums,
    inside the ``with`` block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rk, "rk_step", ordered_rk_step)
        mp.setattr(rk.DOP853, "_dense_output_impl", ordered_dense_output_impl)
        mp.setattr(rk.DOP853, "_estimate_error_norm", ordered_error_norm)
        mp.setattr(common, "norm", lambda x: ordered_norm(x) / x.size ** 0.5)
        yield


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if a kernel would be loaded (and so run) at all: refusals come
    first. (test_validation has its own, which lets a test expect the attempt.)"""
    from batchivp import render

    def load_module(*args, **kwargs):
        # pytest.fail raises a BaseException, which solve_ivp's fallback to scipy
        # (after "except Exception") cannot turn into a silent scipy solve.
        pytest.fail("the call was not refused before compiling")

    monkeypatch.setattr(render, "load_module", load_module)


@pytest.fixture
def scipy_in_index_order():
    """scipy's own DOP853 code, with only its BLAS sums replaced by index-order sums,
    for the whole test (see :func:`index_order_sums`)."""
    with index_order_sums():
        yield
