"""Benchmark: the cost of summaries computed in the kernel, ``solve_batch(summarize=...)``.

Run: ``batchivp bench --cases summaries`` (part of ``--quick`` at small sizes). The
Kepler batch of :mod:`.batch_cases` (256 orbits for a day at 1e-10; 32 with
``--quick``) with a ``t_eval`` point every 10 s (8,641 points; 865 with ``--quick``),
on every selected target, timed three ways in this process, alternating (best of
``--repeat``, default 5):

- ``store y``: the trajectory stored at the points, no summaries (the baseline);
- ``summaries``: min, max, mean and argmin of the six components and of the altitude
  (an observable) with ``save_y=False``: no trajectory at all;
- ``both``: the summaries and the stored trajectory.

All three take the same steps (checked: equal ``nstep`` and final states). ``ratio`` is
the time over the baseline's; issue 17's goal is 1.1 for ``summaries``. ``MB``: the
result's and the kernel state's memory for the batch; ``per problem`` the bytes a
problem needs, from which the memory of 10^7 problems at 10^3 points follows (printed
under the table): summaries need no memory per point.
"""

import math
import time

import numpy as np

from .. import abi, observable, solve_batch
from ..orbit.constants import R_EARTH
from .batch_cases import kepler_case
from .registry import register

TABLE = "summaries"
GOAL = 1.1
STATISTICS = ("min", "max", "mean", "argmin")


@observable
def bench_altitude(t, y, p):
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - R_EARTH


MODES = {
    "store y": dict(),
    "summaries": dict(observables=[bench_altitude], summarize=STATISTICS, save_y=False),
    "both": dict(observables=[bench_altitude], summarize=STATISTICS),
}


def state_bytes_per_problem(n, k, summarized, save_y):
    """Bytes of the kernel's state per problem of ``n`` components, ``k`` points."""
    sizes = abi.core_sizes(n, 1, k, save_y=save_y, n_summarized=summarized, n_observables=1)
    return abi.state_bytes(1, sizes)


def _rows(case, t_eval, target, repeat):
    def solve(mode):
        return solve_batch(case.fun, case.t_span, case.y0, case.params, rtol=case.tol,
                           atol=case.tol, target=target, t_eval=t_eval, **MODES[mode])
    for mode in MODES:  # compile (or load) everything first
        solve(mode)
    best, results = dict.fromkeys(MODES, math.inf), {}
    for _ in range(repeat):  # alternate, so that a noisy moment hits all alike
        for mode in MODES:
            start = time.perf_counter()
            results[mode] = solve(mode)
            best[mode] = min(best[mode], time.perf_counter() - start)
    base = results["store y"]
    rows = []
    for mode, res in results.items():
        same = (np.array_equal(res.nstep, base.nstep)
                and np.array_equal(res.y_final, base.y_final))
        if not same:
            print(f"!!! summaries/{target}/{mode}: the steps changed")
        n, k = case.y0.shape[1], len(t_eval)
        summarized = (n + 1) if "summarize" in MODES[mode] else 0
        per_problem = state_bytes_per_problem(n, k, summarized, "save_y" not in MODES[mode])
        rows.append(dict(table=TABLE, case=f"kepler {mode}", engine=target, n=len(case.y0),
                         points=k, time_s=best[mode], ratio=best[mode] / best["store y"],
                         steps=int(res.nstep.sum()), per_problem_bytes=per_problem,
                         nfev_equal=len(case.y0) if same else 0, nfev_checked=len(case.y0)))
    return rows


@register("summaries", quick=True, notes=lambda rows: summaries_table(rows))
def run_summaries(config):
    case = kepler_case(config)
    t_eval = np.linspace(*case.t_span, 865 if config.quick else 8641)
    rows = []
    for target in config.targets:
        print(f"[summaries] kepler on {target} ...", flush=True)
        rows += _rows(case, t_eval, target, config.repeat or 5)
    return rows


def summaries_table(rows):
    rows = [r for r in rows if r.get("table") == TABLE]
    if not rows:
        return []
    lines = ["", "Summaries: time per batch storing y, summarizing only, or both (same steps)",
             f"{'case':<22}{'engine':<10}{'N':>6}{'points':>8}{'time s':>10}{'ratio':>8}"
             f"{'per problem':>14}"]
    for r in rows:
        lines.append(f"{r['case']:<22}{r['engine']:<10}{r['n']:>6}{r['points']:>8}"
                     f"{r['time_s']:>10.4f}{r['ratio']:>8.2f}{r['per_problem_bytes']:>12,d} B")
    big = state_bytes_per_problem(6, 1000, 7, False) * 10**7
    stored = state_bytes_per_problem(6, 1000, 0, True) * 10**7
    lines.append(f"Kernel state of 10^7 Kepler problems at 10^3 points in one call: "
                 f"{big / 1e9:.2f} GB summarized (6 components + 1 observable), "
                 f"{stored / 1e9:.1f} GB storing y (out= bounds it by the block instead). "
                 f"The goal for summaries only is a ratio <= {GOAL}.")
    return lines
