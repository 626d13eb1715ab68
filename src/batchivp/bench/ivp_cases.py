"""Benchmark: single ``solve_ivp`` calls, scipy's against batchivp's drop-in, in one run.

Run: ``.venv/bin/python benchmarks/bench_ivp.py`` (``--repeat N``, ``--json PATH``), or
the cases in the table of ``batchivp bench`` (each a ``scipy`` row and a ``cpu`` row).
The same plain Python functions go to ``scipy.integrate.solve_ivp(method="DOP853")``
and to ``batchivp.solve_ivp`` (the import swap a user makes):

- ``lotka``: Lotka-Volterra, ``args=(1.5, 1, 3, 1)``, t in [0, 15], rtol 1e-8;
- ``arenstorf``: Hairer's Arenstorf orbit over one period at rtol = atol = 1e-10
  (the issue's target: at least 50x scipy, compile excluded);
- ``arenstorf+dense``: the same with ``dense_output=True`` and 1,000 ``t_eval`` points;
- ``trivial``: y' = -y on [0, 1] at the default tolerances, the per-call overhead
  (target: a warm call cheaper than scipy's own call).

``compile`` is the first batchivp call in this process (render and compile, or load
from numba's disk cache), reported apart. ``time`` is the best of ``--repeat`` warm
calls (``batchivp bench``: 20, 5 with ``--quick``). ``nfev`` must equal scipy's (the
script exits with status 1 otherwise).
"""

import argparse
import functools
import json
import time

import numpy as np
from scipy.integrate._ivp.ivp import solve_ivp as scipy_solve_ivp  # not a replaced name

import batchivp as bi

from .registry import register
from .scipy_ref import blas_sums_in_index_order

MU = 0.012277471
ARENSTORF_Y0 = [0.994, 0.0, 0.0, -2.00158510637908252240537862224]
ARENSTORF_PERIOD = 17.0652165601579625588917206249


def lotka(t, y, a, b, c, d):
    return [a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]]


def arenstorf(t, y, mu):
    a, b = y[0] + mu, y[0] - 1 + mu
    r1 = (a * a + y[1] * y[1]) ** 1.5
    r2 = (b * b + y[1] * y[1]) ** 1.5
    return (y[2], y[3],
            y[0] + 2 * y[3] - (1 - mu) * a / r1 - mu * b / r2,
            y[1] - 2 * y[2] - (1 - mu) * y[1] / r1 - mu * y[1] / r2)


def decay(t, y):
    return -y


PROBLEMS = {  # name -> (fun, t_span, y0, solve_ivp options)
    "lotka": (lotka, (0.0, 15.0), [10.0, 5.0], dict(args=(1.5, 1, 3, 1), rtol=1e-8)),
    "arenstorf": (arenstorf, (0.0, ARENSTORF_PERIOD), ARENSTORF_Y0,
                  dict(args=(MU,), rtol=1e-10, atol=1e-10)),
    "arenstorf+dense": (arenstorf, (0.0, ARENSTORF_PERIOD), ARENSTORF_Y0,
                        dict(args=(MU,), rtol=1e-10, atol=1e-10, dense_output=True,
                             t_eval=np.linspace(0.0, ARENSTORF_PERIOD, 1000))),
    "trivial": (decay, (0.0, 1.0), [1.0], {}),
}


def best_time(call, repeat):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(name, repeat):
    """Time problem ``name``: batchivp's first call (compile), best of ``repeat`` warm
    calls, scipy's best of ``max(3, repeat // 4)``. Returns the row of ``bench_ivp.py``
    and both results."""
    fun, span, y0, options = PROBLEMS[name]

    def ours():
        return bi.solve_ivp(fun, span, y0, method="DOP853", target="cpu", **options)

    def theirs():
        return scipy_solve_ivp(fun, span, y0, method="DOP853", **options)

    start = time.perf_counter()
    ours()
    compile_s = time.perf_counter() - start
    t_ours, r_ours = best_time(ours, repeat)
    t_scipy, r_scipy = best_time(theirs, max(3, repeat // 4))
    row = dict(case=name, nfev=int(r_ours.nfev), nfev_scipy=int(r_scipy.nfev), scipy_s=t_scipy,
               batchivp_s=t_ours, compile_s=compile_s, ratio=t_scipy / t_ours)
    return row, r_ours, r_scipy


def main(argv=None):
    """``benchmarks/bench_ivp.py``: this module's cases in a table of their own."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cases", default=",".join(PROBLEMS))
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)

    rows, ok = [], True
    print(f"{'case':<16} {'nfev':>6} {'scipy':>10} {'batchivp':>10} {'compile':>9} {'vs scipy':>9}")
    for name in args.cases.split(","):
        row, _, _ = measure(name, args.repeat)
        same = row["nfev"] == row["nfev_scipy"]
        ok &= same
        print(f"{name:<16} {row['nfev']:>6} {row['scipy_s'] * 1e3:>8.3f}ms "
              f"{row['batchivp_s'] * 1e3:>8.3f}ms {row['compile_s']:>8.2f}s "
              f"{row['ratio']:>8.1f}x{'' if same else '  nfev differs from scipy!'}")
        rows.append(row)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0 if ok else 1


def suite_rows(name, config):
    """The ``batchivp bench`` rows of problem ``name``: scipy's call and batchivp's on cpu
    (one problem runs on one core; none without ``cpu`` among the targets)."""
    if "cpu" not in config.targets:
        print(f"\n[{name}] skipped: one solve_ivp call runs on cpu, not among the targets")
        return []
    print(f"\n[{name}] one solve_ivp call, scipy and cpu ...", flush=True)
    row, r_ours, r_scipy = measure(name, config.repeat or (5 if config.quick else 20))
    # scipy runs here as installed: its nfev must equal ours only where its BLAS sums in
    # index order for this state size (scipy_ref); elsewhere a difference is reported.
    strict = blas_sums_in_index_order(np.size(PROBLEMS[name][2]))
    y_ours, y_scipy = r_ours.y[:, -1], r_scipy.y[:, -1]
    rel = np.abs(y_ours - y_scipy).max() / max(np.abs(y_scipy).max(), np.finfo(float).tiny)
    common = {"case": name, "n": 1, "extrapolated": False}
    return [dict(common, engine="scipy", compile_s=None, time_s=row["scipy_s"], speedup=1.0,
                 fevals_per_s=row["nfev_scipy"] / row["scipy_s"]),
            dict(common, engine="cpu", compile_s=row["compile_s"], time_s=row["batchivp_s"],
                 speedup=row["ratio"], fevals_per_s=row["nfev"] / row["batchivp_s"],
                 nfev_equal=int(row["nfev"] == row["nfev_scipy"]), nfev_checked=1,
                 nfev_strict=strict, max_rel_dy=float(rel))]


for _name in PROBLEMS:
    register(_name, quick=_name != "lotka")(functools.partial(suite_rows, _name))
