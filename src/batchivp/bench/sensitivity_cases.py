"""Benchmark: the cost of forward sensitivities, ``solve_batch(sensitivity=...)``.

Run: ``batchivp bench --cases sensitivity`` (part of ``--quick`` at small sizes). Issue
16's table: two batches of :mod:`.batch_cases`, each timed plain and with its
sensitivities on every selected target, in this process, alternating (best of
``--repeat``, default 5):

- ``kepler STM``: the Kepler batch with ``sensitivity="y0"``, 6 + 36 components
  (C = 6 columns);
- ``lorenz params``: the Lorenz batch with ``sensitivity="params"``, 3 + 9 components
  (C = 3).

The sensitivities stay out of the error norm, so both runs take the same steps (checked:
equal ``nstep`` and bitwise equal states, else the run fails as an nfev mismatch does);
the time ratio is the cost per step with sensitivities over the plain cost. The issue's
goal is ``1.2 (1 + C)``: the integrated system is ``1 + C`` times as large, and each
column's tangent should cost about one evaluation of the right-hand side. heyoka's
variational integration (Taylor's method, tolerance 1e-10 as the batch's rtol and
atol, one object after another on one core) is timed on the same problem where
``heyoka`` imports (``pip install heyoka``), else its row says it is absent; then the cpu target runs
the batch again at ``MATCHED_TOL``, where its accuracy matches heyoka's. The Kepler
rows give the largest final position error relative to the radius against the
analytic propagation, to compare the accuracy each reaches.
"""

import dataclasses
import math
import time

import numpy as np

from .. import solve_batch
from ..orbit.elements import kepler_propagate
from .batch_cases import kepler_case, lorenz_case
from .registry import register

TABLE = "sensitivity"
GOAL = 1.2  # per column of the system, over the plain cost per step
# The Kepler batch's tolerance at which batchivp's final positions are as accurate as
# heyoka's at 1e-10 (the max |dr|/r column shows both).
MATCHED_TOL = 1e-11


def _best(solve, repeat):
    best, res = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        res = solve()
        best = min(best, time.perf_counter() - start)
    return best, res


def _rows(case, mode, columns, target, repeat):
    """One row: the plain and the sensitivity solve of ``case`` on ``target``."""
    def solve(sensitivity):
        return lambda: solve_batch(case.fun, case.t_span, case.y0, case.params, rtol=case.tol,
                                   atol=case.tol, target=target, sensitivity=sensitivity)
    start = time.perf_counter()
    solve(mode)()
    compile_s = time.perf_counter() - start
    solve(None)()
    plain_s = sens_s = math.inf
    for _ in range(repeat):  # alternate, so that a noisy moment hits both alike
        t, plain = _best(solve(None), 1)
        plain_s = min(plain_s, t)
        t, sens = _best(solve(mode), 1)
        sens_s = min(sens_s, t)
    same = bool(np.array_equal(plain.nstep, sens.nstep)
                and np.array_equal(plain.y_final, sens.y_final))
    error = _kepler_error(case, sens.y_final) if mode == "y0" else None
    if not same:
        print(f"!!! {case.name}/{target}: the state's steps changed with sensitivities")
    label = f"{case.name} {mode}" + (f" tol {case.tol:g}" if case.tol == MATCHED_TOL else "")
    return dict(table=TABLE, case=label, engine=target, n=len(case.y0),
                columns=columns, compile_s=compile_s, plain_s=plain_s, time_s=sens_s,
                ratio=sens_s / plain_s, goal=GOAL * (1 + columns), max_rel_dr=error,
                nfev_equal=len(case.y0) if same else 0, nfev_checked=len(case.y0))


def _kepler_error(case, y_final):
    """Largest final position error relative to the orbit's radius, against the
    analytic propagation (the accuracy both Kepler rows reach at their tolerance)."""
    r, _ = kepler_propagate(case.y0[:, :3], case.y0[:, 3:], case.t_span[1] - case.t_span[0],
                            float(case.params[0, 0]))
    return float(np.max(np.linalg.norm(y_final[:, :3] - r, axis=1) / np.linalg.norm(r, axis=1)))


@register("sensitivity", quick=True, notes=lambda rows: sensitivity_table(rows))
def run_sensitivity(config):
    repeat = config.repeat or 5
    rows = []
    for case, mode, columns in ((kepler_case(config), "y0", 6),
                                (lorenz_case(config), "params", 3)):  # C: 6 and 3 columns
        for target in config.targets:
            print(f"[sensitivity] {case.name} {mode} on {target} ...", flush=True)
            rows.append(_rows(case, mode, columns, target, repeat))
    rows += _heyoka_rows(config)
    return rows


def _heyoka_rows(config):
    """heyoka's variational integration of the Kepler batch (tolerance 1e-10, one object
    after another on one core) and the cpu target's at the tolerance that reaches the
    same accuracy (1e-11), or a row saying heyoka is absent."""
    try:
        import heyoka as hy  # optional: a peer, not a dependency
    except ImportError:
        return [dict(table=TABLE, case="kepler y0", engine="heyoka", n=0, absent=True)]
    tighter = dataclasses.replace(kepler_case(config), tol=MATCHED_TOL)
    return [_heyoka_row(hy, config), _rows(tighter, "y0", 6, "cpu", config.repeat or 5)]


def _heyoka_row(hy, config):
    case = kepler_case(config)
    x, y, z, vx, vy, vz = hy.make_vars("x", "y", "z", "vx", "vy", "vz")
    r3 = hy.sqrt(x * x + y * y + z * z) ** 3
    mu = float(case.params[0, 0])
    system = [(x, vx), (y, vy), (z, vz), (vx, -mu * x / r3), (vy, -mu * y / r3),
              (vz, -mu * z / r3)]
    times = {}
    for label, ode in (("plain", system), ("var", hy.var_ode_sys(system, hy.var_args.vars))):
        ta = hy.taylor_adaptive(ode, case.y0[0], tol=case.tol, compact_mode=True)
        start_state = ta.state.copy()
        best, final = math.inf, np.empty((len(case.y0), 6))
        for _ in range(config.repeat or 3):
            begin = time.perf_counter()
            for i, y0 in enumerate(case.y0):
                ta.time = case.t_span[0]
                ta.state[:] = start_state
                ta.state[:6] = y0
                ta.propagate_until(case.t_span[1])
                final[i] = ta.state[:6]
            best = min(best, time.perf_counter() - begin)
        times[label] = best
    return dict(table=TABLE, case="kepler y0", engine="heyoka", n=len(case.y0), columns=6,
                compile_s=None, plain_s=times["plain"], time_s=times["var"],
                ratio=times["var"] / times["plain"], goal=GOAL * 7,
                max_rel_dr=_kepler_error(case, final))


def sensitivity_table(rows):
    rows = [r for r in rows if r.get("table") == TABLE]
    if not rows:
        return []
    lines = ["", "Sensitivities: time per batch plain and with sensitivities (same steps)",
             f"{'case':<24}{'engine':<10}{'N':>6}{'C':>4}{'plain s':>10}{'sens s':>10}"
             f"{'ratio':>8}{'goal':>7}{'max |dr|/r':>12}  verdict"]
    for r in rows:
        if r.get("absent"):
            lines.append(f"{r['case']:<24}{r['engine']:<10}  not installed (pip install heyoka "
                         "to compare)")
            continue
        verdict = "within" if r["ratio"] <= r["goal"] else "OVER"
        error = "" if r.get("max_rel_dr") is None else f"{r['max_rel_dr']:.1e}"
        lines.append(f"{r['case']:<24}{r['engine']:<10}{r['n']:>6}{r['columns']:>4}"
                     f"{r['plain_s']:>10.4f}{r['time_s']:>10.4f}{r['ratio']:>8.2f}"
                     f"{r['goal']:>7.1f}{error:>12}  {verdict} the goal")
    return lines
