"""Benchmark: a Python loop of scipy's DOP853 against batchivp's targets, in one run.

Run: ``batchivp bench --cases kepler,kepler+ev,lorenz``, or
``.venv/bin/python benchmarks/bench_batch.py`` (``--quick``: small and CI-sized;
``--json PATH`` keeps the numbers, ``--plot PATH`` draws them). Cases: Kepler, 256
near-circular Earth orbits for one day at rtol = atol = 1e-10; Lorenz, 4096 values of
rho evenly spaced in [0, 21] (sigma = 10, beta = 8/3, per problem in ``params``) from
(1, 1, 1) over t in [0, 1] at rtol = atol = 1e-8; Kepler+events, the Kepler batch with
two terminal radius events that never fire on those orbits (falling below 3,000 km,
rising above 100,000 km; the perigees lie above 5,900 km), for the cost of events when
none fires (the limit: 25% over the batch without events). For each case it times the
scipy baseline (``solve_ivp(method="DOP853")`` once per problem, calling the same
registered Python right-hand side through a small wrapper, so the arithmetic is
identical) and every available target (``cpu``, ``parallel``, ``cuda`` when a real GPU
is usable; never the CUDA simulator). For Lorenz scipy runs on an evenly spread sample
of ``--scipy-sample`` problems and its time is extrapolated linearly to the whole batch
(marked ``*``). ``--quick``: 32 orbits and 256 Lorenz problems (64 for scipy), repeat 1.

Reading the table:

- ``compile/load``: the first call of a target, on a 2-problem batch: rendering and
  compiling the kernel, or loading it from numba's disk cache. Not part of ``time``.
- ``time``: the full batch, best of ``--repeat`` calls, compiled kernel in memory.
- ``steps/s``, ``RHS evals/s``: accepted steps and right-hand side evaluations over
  the whole batch per second of ``time``.
- ``vs scipy``: scipy loop time / engine time (higher is better). ``parallel/cpu``
  is cpu time / parallel time; with ``c`` cores the ideal is about ``c``.

Correctness is checked on the problems scipy ran: every problem's ``nfev`` must equal
scipy's, and ``max rel dy`` is the largest ``max|y_final - y_scipy| / max|y_scipy|``
over those problems (round-off, ~1e-10 or smaller). scipy's sums go through BLAS, whose
order of summation decides some steps; the loop therefore runs with OpenBLAS's kernel
that sums in index order, as batchivp does, and then an ``nfev`` mismatch fails the run
(exit status 1). Where that order cannot be had, or with ``--scipy-blas stock``,
mismatches are reported and explained, not failed (:mod:`.scipy_ref`). The timings are
only reported, never asserted.

``lorenz-dtypes`` (own table, after the main one): 16,384 Lorenz problems (256 with
``--quick``), t in [0, 1], at issue 17's tolerances (rtol = 1e-5, atol = 1e-7), with
``dtype`` float64, float32 and "mixed" on each target: time, steps per second, speed
against float64 on the same target, and the largest and median error of ``y_final``
against float64 at rtol = atol = 1e-12 (relative to each problem's largest component).
"""

import math
import time
from dataclasses import dataclass

import numpy as np

import batchivp as bi
from batchivp import models
from batchivp.orbit.constants import MU_EARTH, R_EARTH

from .registry import register
from .scipy_ref import scipy_reference


kepler = models.two_body
lorenz = models.lorenz
EVENTS_OVERHEAD_LIMIT = 1.25


@bi.event(terminal=True, direction=-1)
def bench_radius_below(t, y, p):
    """Radius minus 3,000 km (an altitude event, as re-entry, that these orbits never reach)."""
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - 3000.0


@bi.event(terminal=True, direction=1)
def bench_escape(t, y, p):
    """Radius minus 100,000 km."""
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - 100000.0


@dataclass
class BatchCase:
    """One batch: its problems, tolerance, events, and the problems the scipy loop runs."""

    name: str
    fun: bi.RhsFunction
    t_span: tuple
    y0: np.ndarray  # (N, n)
    params: np.ndarray  # (N, m)
    tol: float
    scipy_idx: np.ndarray  # problems the scipy loop runs
    events: tuple = ()


def random_orbits(n, seed=1):
    """Near-circular orbits, 300-1500 km altitude, random planes (as examples/kepler_batch.py)."""
    rng = np.random.default_rng(seed)
    radius = R_EARTH + rng.uniform(300.0, 1500.0, n)
    speed = np.sqrt(MU_EARTH / radius) * rng.uniform(0.97, 1.03, n)
    inc = rng.uniform(0.0, math.pi, n)
    raan = rng.uniform(0.0, 2 * math.pi, n)
    return np.stack([radius * np.cos(raan), radius * np.sin(raan), np.zeros(n),
                     -speed * np.sin(raan) * np.cos(inc), speed * np.cos(raan) * np.cos(inc),
                     speed * np.sin(inc)], axis=1)


def sample_indices(n, k):
    """``k`` problem indices spread evenly over ``range(n)`` (all of them if k >= n)."""
    return np.arange(n) if k >= n else np.unique(np.linspace(0, n - 1, k).round().astype(int))


def kepler_case(config, name="kepler", events=(), scipy_share=1):
    """The Kepler batch (32 orbits with ``config.quick``, else 256), the scipy loop on
    one problem in ``scipy_share`` (at least 2)."""
    n_orbits = 32 if config.quick else 256
    params = np.full((n_orbits, 1), MU_EARTH)
    return BatchCase(name, kepler, (0.0, 86400.0), random_orbits(n_orbits), params, 1e-10,
                sample_indices(n_orbits, max(2, n_orbits // scipy_share)), events)


def lorenz_case(config):
    n_lorenz = 256 if config.quick else 4096
    rho = np.linspace(0.0, 21.0, n_lorenz)
    lor_p = np.stack([np.full(n_lorenz, 10.0), rho, np.full(n_lorenz, 8.0 / 3.0)], axis=1)
    scipy_sample = config.scipy_sample or (64 if config.quick else 256)
    return BatchCase("lorenz", lorenz, (0.0, 1.0), np.ones((n_lorenz, 3)), lor_p, 1e-8,
                sample_indices(n_lorenz, scipy_sample))


def run_target(case, target, repeat, **options):
    """(compile/load seconds, best full-batch seconds, last result) on one target;
    ``options`` of solve_batch replace the case's (tolerances, events) or add to them."""
    options = dict(rtol=case.tol, atol=case.tol, events=case.events) | options

    def solve(sl):
        return bi.solve_batch(case.fun, case.t_span, case.y0[sl], case.params[sl],
                              target=target, **options)
    start = time.perf_counter()
    solve(slice(0, 2))
    compile_s = time.perf_counter() - start
    best, res = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        res = solve(slice(None))
        best = min(best, time.perf_counter() - start)
    return compile_s, best, res


def check_against_scipy(case, res, ref_nfev, ref_y, strict=True):
    """(nfev-equal count, max relative final-state difference); prints mismatches, loudly
    when ``strict`` (scipy summed in index order, so none may occur)."""
    idx = case.scipy_idx
    nfev = res.nfev[idx]
    bad = np.flatnonzero(nfev != ref_nfev)
    if bad.size:
        print(("!!! NFEV MISMATCH" if strict else "nfev differs (BLAS order, not failed):")
              + f" {case.name}/{res.target} on {bad.size} of {len(idx)} problems; "
              "first ones (problem: batchivp vs scipy): "
              + ", ".join(f"{idx[j]}: {nfev[j]} vs {ref_nfev[j]}" for j in bad[:10]))
    failed = np.flatnonzero(~res.success)  # a terminal event (a re-entry) is a success
    if failed.size:
        print(f"!!! {case.name}/{res.target}: {failed.size} problems failed (status not 0 or 1), "
              f"first {failed[0]}: {res.message(failed[0])}")
    scale = np.maximum(np.abs(ref_y).max(axis=1), np.finfo(float).tiny)
    rel = np.abs(res.y_final[idx] - ref_y).max(axis=1) / scale
    return len(idx) - len(bad), float(rel.max())


def bench_case(case, config):
    """Rows of the table for one case (scipy first); the scipy row holds the reference.
    ``config``: the targets to time, the repeat and the order of the scipy loop's BLAS
    sums (``config.scipy_blas``, :mod:`.scipy_ref`)."""
    engines, repeat = config.targets, default_repeat(config)
    print(f"\n[{case.name}] {len(case.y0)} problems, scipy loop on {len(case.scipy_idx)}", flush=True)
    sp_time, sp_nfev, sp_nstep, sp_y, blas = scipy_reference(case, config.scipy_blas)
    print(f"[{case.name}] scipy ran in {blas['where']}", flush=True)
    scale = len(case.y0) / len(case.scipy_idx)
    scipy_row = {"case": case.name, "engine": "scipy loop", "n": len(case.y0),
                 "compile_s": None, "time_s": sp_time * scale, "extrapolated": scale != 1,
                 "blas": blas["where"], "blas_index_order": blas["index_order"],
                 "scipy_problems": len(case.scipy_idx), "measured_s": sp_time,
                 "steps_per_s": sp_nstep.sum() / sp_time, "fevals_per_s": sp_nfev.sum() / sp_time,
                 "speedup": 1.0}
    rows = [scipy_row]
    for target in engines:
        print(f"[{case.name}] {target} ...", flush=True)
        compile_s, best, res = run_target(case, target, repeat)
        equal, rel = check_against_scipy(case, res, sp_nfev, sp_y, blas["index_order"])
        rows.append({"case": case.name, "engine": target, "n": len(case.y0),
                     "compile_s": compile_s, "time_s": best, "extrapolated": False,
                     "steps_per_s": int(res.nstep.sum()) / best,
                     "fevals_per_s": int(res.nfev.sum()) / best,
                     "speedup": scipy_row["time_s"] / best,
                     "nfev_equal": equal, "nfev_checked": len(case.scipy_idx),
                     "nfev_strict": blas["index_order"], "max_rel_dy": rel})
    return rows


def default_repeat(config):
    return config.repeat or (1 if config.quick else 3)


@register("kepler")
def run_kepler(config):
    return bench_case(kepler_case(config), config)


def events_overhead(rows):
    """Per target, the time of the batch with events over the same batch without."""
    by_key = {(r["case"], r["engine"]): r for r in rows}
    lines = []
    for (case, engine), r in by_key.items():
        plain = by_key.get(("kepler", engine))
        if case == "kepler+ev" and engine != "scipy loop" and plain:
            ratio = r["time_s"] / plain["time_s"]
            verdict = "within" if ratio <= EVENTS_OVERHEAD_LIMIT else "OVER"
            lines.append(f"events overhead on {engine}: kepler+ev / kepler = {ratio:.3f} "
                         f"({verdict} the {EVENTS_OVERHEAD_LIMIT:.2f} limit; no event fires)")
    return lines


@register("kepler+ev", notes=events_overhead)
def run_kepler_events(config):
    case = kepler_case(config, "kepler+ev", (bench_radius_below, bench_escape), scipy_share=4)
    return bench_case(case, config)


@register("lorenz", quick=True)
def run_lorenz(config):
    return bench_case(lorenz_case(config), config)


# ---- precision: float32 and mixed against float64 (solve_batch's dtype) ----

DTYPES = (("float64", np.float64), ("float32", np.float32), ("mixed", "mixed"))
DTYPE_RTOL, DTYPE_ATOL = 1e-5, 1e-7  # issue 17's example; float32 takes rtol >= 1.2e-6
DTYPE_REF_TOL = 1e-12


def dtype_case(config):
    """The Lorenz batch over t in [0, 1] (rho in [0, 21], 16,384 problems; 256 with
    ``config.quick``): short enough that the error is the tolerance's, not chaos's."""
    n_prob = 256 if config.quick else 16384
    rho = np.linspace(0.0, 21.0, n_prob)
    params = np.stack([np.full(n_prob, 10.0), rho, np.full(n_prob, 8.0 / 3.0)], axis=1)
    return BatchCase("lorenz-dtypes", lorenz, (0.0, 1.0), np.ones((n_prob, 3)), params,
                     DTYPE_RTOL, np.arange(0))


def relative_errors(y_final, reference):
    """Per problem, ``max |y - ref| / max |ref|``."""
    scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(float).tiny)
    return np.abs(y_final.astype(np.float64) - reference).max(axis=1) / scale


def dtype_rows(case, target, reference, repeat):
    """One row per dtype on ``target``: best time of ``repeat``, steps per second, the
    speed against float64 and the error against ``reference`` (float64, tight)."""
    rows = []
    for name, dtype in DTYPES:
        compile_s, best, res = run_target(case, target, repeat, rtol=DTYPE_RTOL,
                                          atol=DTYPE_ATOL, dtype=dtype)
        errors = relative_errors(res.y_final, reference)
        rows.append({"case": case.name, "engine": target, "table": "dtypes", "dtype": name,
                     "n": len(case.y0), "compile_s": compile_s, "time_s": best,
                     "steps_per_s": int(res.nstep.sum()) / best,
                     "mean_steps": float(res.nstep.mean()),
                     "max_rel_err": float(errors.max()),
                     "median_rel_err": float(np.median(errors)),
                     "failed": int((~res.success).sum())})
    for row in rows:
        row["vs_float64"] = rows[0]["time_s"] / row["time_s"]
    return rows


def dtype_table(rows):
    """The precision table: per target and dtype, speed and accuracy."""
    rows = [r for r in rows if r.get("table") == "dtypes"]
    if not rows:
        return []
    lines = [f"\n[lorenz-dtypes] {rows[0]['n']} Lorenz problems, t in [0, 1], rtol = "
             f"{DTYPE_RTOL:g}, atol = {DTYPE_ATOL:g}; error: max over components of |y_final "
             f"- ref| / max |ref|, ref = float64 at rtol = atol = {DTYPE_REF_TOL:g}",
             f"{'engine':<9} {'dtype':<8} {'compile/load':>12} {'time (s)':>9} "
             f"{'steps/s':>9} {'vs float64':>10} {'steps':>6} {'max rel err':>11} "
             f"{'median':>8} {'failed':>6}"]
    for r in rows:
        lines.append(f"{r['engine']:<9} {r['dtype']:<8} {r['compile_s']:>10.2f} s "
                     f"{r['time_s']:>9.3f} {r['steps_per_s']:>9.3g} {r['vs_float64']:>9.2f}x "
                     f"{r['mean_steps']:>6.1f} {r['max_rel_err']:>11.1e} "
                     f"{r['median_rel_err']:>8.1e} {r['failed']:>6}")
    return lines


@register("lorenz-dtypes", notes=dtype_table)
def run_dtypes(config):
    case = dtype_case(config)
    print(f"\n[{case.name}] {len(case.y0)} problems, reference: float64 at rtol = atol = "
          f"{DTYPE_REF_TOL:g}", flush=True)
    reference = bi.solve_batch(case.fun, case.t_span, case.y0, case.params, rtol=DTYPE_REF_TOL,
                               atol=DTYPE_REF_TOL, target=config.targets[-1]).y_final
    rows = []
    for target in config.targets:
        print(f"[{case.name}] {target} ...", flush=True)
        rows += dtype_rows(case, target, reference, default_repeat(config))
    return rows
