"""The scipy reference of the batch benchmarks, with a known order of summation.

scipy's DOP853 forms its stage sums and error estimates with ``np.dot`` and its norms
with ``np.linalg.norm``, i.e. with BLAS ``gemv`` and ``dot``. In which order those add
up depends on the BLAS kernel, which OpenBLAS picks for the CPU when it is loaded:
blocked and vectorized, with or without FMA. Where a step's error estimate is mostly
round-off, that order decides the next step size, so stock scipy's ``nfev`` depends on
the machine. On an AVX-512 machine with numpy's OpenBLAS 0.3.31 (DYNAMIC_ARCH), the
benchmark's 256 Kepler orbits at 1e-10 take different ``nfev`` on 49 orbits under the
default SkylakeX kernel and under the Haswell kernel (``OPENBLAS_CORETYPE=Haswell``),
both unmodified scipy.

batchivp sums in index order (README, "Exactness"). OpenBLAS's Sandybridge kernels do
too, for the shapes DOP853 uses on states of up to 15 components. So by default
(``--scipy-blas index``) the reference loop runs unmodified scipy, numpy and OpenBLAS
in a child process started with
``OPENBLAS_CORETYPE=Sandybridge``, after checking there that ``np.dot`` and the norm's
``dot`` sum in index order (:func:`blas_sums_in_index_order`). Then every problem must
take exactly scipy's steps, and the benchmark fails on any ``nfev`` mismatch. Where the
order cannot be had (another BLAS, another CPU family), and with ``--scipy-blas stock``,
scipy runs in this process as it is, and ``nfev`` mismatches are reported, not failed.
The figures are the same either way: the kernel choice changes the loop's time within
the noise (``benchmarks/README.md``, "The scipy loop's BLAS kernel").

The loop itself (:func:`run_scipy`) lives here, so that this module and the cases that
use it (:mod:`.batch_cases`) import in one direction only.
"""

import ctypes
import glob
import os
import pickle
import subprocess
import sys
import time

import numpy as np
from scipy.integrate._ivp.ivp import solve_ivp  # scipy's own, even if the name is replaced

INDEX_ORDER_CORETYPE = "Sandybridge"
BLAS_CHOICES = ("index", "stock")


def ordered_dot(M, w):
    """``M.T @ w`` for ``M`` of shape (s, n), summed over s in index order, as batchivp's
    stage sums (and the tests' scipy with index-order sums, ``tests/conftest.py``)."""
    acc = M[0] * w[0]
    for j in range(1, len(w)):
        acc = acc + M[j] * w[j]
    return acc


def blas_sums_in_index_order(ndim, trials=50, seed=0):
    """True when this process's ``np.dot`` sums in index order for the products scipy's
    DOP853 forms on a state of ``ndim`` components: ``K[:s].T @ a[:s]`` (s = 1..13
    stages) and the norm's ``x @ x``; checked bitwise on random data. (OpenBLAS's
    Sandybridge ``dot`` adds 16 or more terms in SIMD blocks, so the answer depends on
    ``ndim``.)"""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        K = rng.standard_normal((13, ndim))
        a = rng.standard_normal(13)
        for s in range(1, 14):
            if not np.array_equal(np.dot(K[:s].T, a[:s]), ordered_dot(K[:s], a[:s])):
                return False
        x = K[0]
        if x.dot(x) != ordered_dot(x[:, None], x)[0]:
            return False
    return True


def openblas_corename():
    """The OpenBLAS kernel numpy's BLAS runs here (e.g. ``"SkylakeX"``), or None when
    numpy's BLAS is not a scipy-openblas build."""
    libs = os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas*.so*")
    for path in glob.glob(libs):
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            func = getattr(lib, symbol, None)
            if func is not None:
                func.restype = ctypes.c_char_p
                return func().decode()
    return None


def scipy_event(ev, p):
    """A registered event as scipy's ``event(t, y)`` with ``terminal``/``direction``."""
    func = getattr(ev, "__wrapped__", ev)

    def event(t, y):
        return func(t, y, p)

    event.terminal, event.direction = ev.terminal, ev.direction
    return event


def run_scipy(case):
    """The scipy loop over ``case.scipy_idx`` (a :class:`.batch_cases.BatchCase`): time,
    nfev, accepted steps, final states."""
    func = getattr(case.fun, "__wrapped__", case.fun)
    n = case.y0.shape[1]
    nfev, nstep, y_final = [], [], []
    start = time.perf_counter()
    for i in case.scipy_idx:
        p = case.params[i]

        def wrapper(t, y, p=p):
            d = np.empty(n)
            func(t, y, p, d)
            return d

        events = [scipy_event(ev, p) for ev in case.events] or None
        sol = solve_ivp(wrapper, case.t_span, case.y0[i], method="DOP853",
                        rtol=case.tol, atol=case.tol, events=events)
        if sol.status < 0:  # loud but not fatal: the nfev check shows its effect
            print(f"!!! scipy failed on {case.name} problem {i}: {sol.message}")
        nfev.append(sol.nfev)
        nstep.append(len(sol.t) - 1)
        y_final.append(sol.y[:, -1])
    elapsed = time.perf_counter() - start
    return elapsed, np.array(nfev), np.array(nstep), np.array(y_final)


def scipy_reference(case, blas="index"):
    """Run the scipy loop of ``case`` (:func:`run_scipy`) with the BLAS order
    ``blas`` asks for: ``"index"`` (in a child process if needed, see the module
    docstring) or ``"stock"`` (here, as it is).

    Returns ``(elapsed, nfev, nstep, y_final, info)``; ``info``: ``index_order`` (the
    order was checked to be index order), ``corename`` and ``where`` (a description).
    """
    if blas not in BLAS_CHOICES:
        raise ValueError(f"blas must be one of {BLAS_CHOICES}, got {blas!r}")
    here = blas_sums_in_index_order(case.y0.shape[1])
    corename = openblas_corename()
    if blas == "stock" or here or corename is None:
        elapsed, nfev, nstep, y_final = run_scipy(case)
        where = (f"this process, BLAS kernel {corename or 'unknown'}, sums "
                 + ("in index order" if here else "not in index order"))
        return elapsed, nfev, nstep, y_final, dict(index_order=here, corename=corename,
                                                   where=where)
    env = dict(os.environ, OPENBLAS_CORETYPE=INDEX_ORDER_CORETYPE)
    proc = subprocess.run([sys.executable, "-m", __name__], input=pickle.dumps(case),
                          capture_output=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the scipy reference process failed:\n{proc.stderr.decode()}")
    sys.stdout.write(proc.stderr.decode())  # scipy's own complaints, if any
    elapsed, nfev, nstep, y_final, index_order, child_core = pickle.loads(proc.stdout)
    where = (f"child process with OPENBLAS_CORETYPE={INDEX_ORDER_CORETYPE} (kernel "
             f"{child_core}, sums {'in' if index_order else 'NOT in'} index order; "
             f"this process: {corename})")
    return elapsed, nfev, nstep, y_final, dict(index_order=index_order, corename=child_core,
                                               where=where)


def _child():
    """Run :func:`run_scipy` on the pickled case from stdin; the results to stdout."""
    case = pickle.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # run_scipy's prints must not mix with the pickle
    result = run_scipy(case)
    index_order = blas_sums_in_index_order(case.y0.shape[1])
    out.write(pickle.dumps((*result, index_order, openblas_corename())))
    out.flush()


if __name__ == "__main__":
    _child()
