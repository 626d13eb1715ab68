"""Run registered benchmark cases: targets, table, JSON, plot, exit status.

``batchivp bench`` and ``benchmarks/bench_batch.py`` both end here. The runner knows
nothing of any case: it hands each one a :class:`BenchConfig` and prints what comes back
(the row contract is in the :mod:`batchivp.bench` docstring).
"""

import argparse
import json
import os
import sys
import time

from .registry import CASES, BenchConfig
from .scipy_ref import BLAS_CHOICES

ENGINE_TARGETS = ("cpu", "parallel", "cuda")  # rows of these engines are batchivp's


def available_targets(wanted):
    """Targets to run, and a note per skipped one."""
    from batchivp import targets

    run, skipped = [], {}
    for target in wanted:
        if target == "cuda" and targets.simulator_enabled():
            skipped[target] = "NUMBA_ENABLE_CUDASIM is set (simulator timings mean nothing)"
        elif target == "cuda" and not targets.cuda_usable():
            skipped[target] = targets.cuda_unusable_reason() or "not usable"
        else:
            run.append(target)
    return run, skipped


def warn_if_busy(when, seconds=0.5):
    """Cores busy over a short sample of /proc/stat (Linux), warning when others compete."""
    def busy_total():
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    try:
        b0, t0 = busy_total()
        time.sleep(seconds)
        b1, t1 = busy_total()
    except (OSError, ValueError, IndexError):
        return None
    busy = (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)
    if busy > 0.3:
        print(f"warning: {busy:.1f} of {os.cpu_count()} cores busy {when}: other processes "
              "compete for the cores, timings (parallel especially) are unreliable")
    return busy


def _seconds(value):
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.2e}"


def standard_rows(rows):
    """The rows of the standard table: not those of a case's own (a ``table`` key)."""
    return [r for r in rows if "table" not in r]


def print_table(rows, cases=()):
    """The table of ``rows``, its footnotes, parallel/cpu per case, then each case's notes
    (given all rows: those of a case's own table, with a ``table`` key, are not in this one)."""
    import numba

    all_rows, rows = rows, standard_rows(rows)
    width = max([9] + [len(r["case"]) for r in rows])
    head = (f"{'case':<{width}} {'engine':<11} {'compile/load':>12} {'time (s)':>10} {'steps/s':>10} "
            f"{'RHS evals/s':>12} {'vs scipy':>9}  {'nfev equal':>11} {'max rel dy':>10}")
    if rows:  # else every row is in a case's own table
        print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        comp = "" if r["compile_s"] is None else f"{r['compile_s']:.2f} s"
        t = _seconds(r["time_s"]) + ("*" if r["extrapolated"] else "")
        steps = f"{r['steps_per_s']:.3g}" if "steps_per_s" in r else ""
        fevals = f"{r['fevals_per_s']:.3g}" if "fevals_per_s" in r else ""
        check = f"{r['nfev_equal']}/{r['nfev_checked']}" if "nfev_equal" in r else ""
        rel = f"{r['max_rel_dy']:.1e}" if "max_rel_dy" in r else ""
        print(f"{r['case']:<{width}} {r['engine']:<11} {comp:>12} {t:>10} {steps:>10} "
              f"{fevals:>12} {r['speedup']:>8.1f}x  {check:>11} {rel:>10}")
    for r in rows:
        if r["extrapolated"]:
            print(f"* {r['case']}: scipy ran {r['scipy_problems']} of {r['n']} problems in "
                  f"{r['measured_s']:.2f} s, extrapolated linearly to the batch")
    by_key = {(r["case"], r["engine"]): r for r in rows}
    for case in dict.fromkeys(r["case"] for r in rows):
        cpu, par = by_key.get((case, "cpu")), by_key.get((case, "parallel"))
        if cpu and par:
            print(f"{case}: parallel/cpu = {cpu['time_s'] / par['time_s']:.2f}x "
                  f"on {numba.config.NUMBA_NUM_THREADS} threads")
    for case in cases:
        for line in case.notes(all_rows) if case.notes else ():
            print(line)


def plot_speedups(rows, path, title):
    """A bar chart of ``rows``: speed-up over scipy per case, one bar per target (Agg)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = standard_rows(rows)
    engines = [e for e in ENGINE_TARGETS if any(r["engine"] == e for r in rows)]
    cases = list(dict.fromkeys(r["case"] for r in rows if r["engine"] in engines))
    speedup = {(r["case"], r["engine"]): r["speedup"] for r in rows}
    fig = Figure(figsize=(max(6.0, 1.1 * len(cases) + 2.0), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(cases))
    width = 0.8 / max(len(engines), 1)
    for k, engine in enumerate(engines):
        heights = [speedup.get((case, engine), np.nan) for case in cases]
        bars = ax.bar(x + (k - (len(engines) - 1) / 2) * width, heights, width, label=engine)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.axhline(1.0, color="grey", linewidth=0.8)  # scipy
    ax.set_yscale("log")
    ax.set_xticks(x, cases, rotation=20)
    ax.set_ylabel("speed-up vs scipy (scipy time / time)")
    ax.set_title(title, fontsize=9)
    if engines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def add_arguments(parser, default_cases=None, quick_help=None):
    """The options of ``batchivp bench`` (``default_cases``: None for all registered
    ones, the quick ones with ``--quick``)."""
    quick = [name for name, case in CASES.items() if case.quick]
    parser.add_argument("--quick", action="store_true", help=quick_help or (
        "small sizes and the quick cases (" + ",".join(quick) + "), for CI"))
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed runs per engine, best kept (default: each case's, 3 for batches)")
    parser.add_argument("--scipy-sample", type=int, default=None,
                        help="Lorenz problems the scipy loop runs (default 256, 64 with --quick)")
    parser.add_argument("--scipy-blas", choices=BLAS_CHOICES, default="index",
                        help="order of the scipy loop's BLAS sums: 'index' (default; OpenBLAS's "
                        "kernel that sums in index order, as batchivp, in a child process if "
                        "needed: any nfev mismatch fails the run) or 'stock' (this process's "
                        "kernel: mismatches are reported, not failed)")
    parser.add_argument("--targets", default="cpu,parallel,cuda", help="comma-separated targets")
    parser.add_argument("--cases", default=default_cases, type=case_names,
                        help="comma-separated cases out of " + ",".join(CASES)
                        + (f" (default {default_cases})" if default_cases else " (default all)"))
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="draw the speed-ups as a bar chart (PNG, needs matplotlib)")


def case_names(text):
    """``--cases``: comma-separated registered names (argparse reports an unknown one)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown case(s) {', '.join(unknown)}; "
                                         f"registered: {', '.join(CASES)}")
    return names


def selected_cases(names, quick):
    """The registered cases in ``names`` (None: all of them, or the quick ones with
    ``quick``), in registration order."""
    if names is None:
        return [case for case in CASES.values() if case.quick or not quick]
    return [case for case in CASES.values() if case.name in names]


def run(args):
    """Run the cases of parsed ``args``; 1 on an nfev mismatch against scipy, else 0."""
    import numba
    import numpy as np

    import batchivp

    cases = selected_cases(args.cases, args.quick)
    if args.plot:
        import matplotlib  # noqa: F401  (fail before the run, not after it)
    engines, skipped = available_targets([t.strip() for t in args.targets.split(",") if t.strip()])
    env = {"batchivp": batchivp.__version__, "numba": numba.__version__, "numpy": np.__version__,
           "python": sys.version.split()[0], "cpus": os.cpu_count(),
           "numba_threads": numba.config.NUMBA_NUM_THREADS}
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    for target, why in skipped.items():
        print(f"skipping target {target}: {why}")
    env["busy_cores_before"] = warn_if_busy("before the run")

    config = BenchConfig(tuple(engines), args.quick, args.repeat, args.scipy_sample,
                         args.scipy_blas)
    rows = []
    for case in cases:
        rows += case.run(config)
    print_table(rows, cases)
    env["busy_cores_after"] = warn_if_busy("after the run")

    mismatches = sum(r["nfev_checked"] - r["nfev_equal"] for r in rows
                     if "nfev_equal" in r and r.get("nfev_strict", True))
    tolerated = sum(r["nfev_checked"] - r["nfev_equal"] for r in rows
                    if "nfev_equal" in r and not r.get("nfev_strict", True))
    meta = dict(env, quick=args.quick, repeat=args.repeat, skipped=skipped,
                cases=[case.name for case in cases])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows, "nfev_mismatches": mismatches,
                       "nfev_differences_blas_order": tolerated}, fh, indent=2)
    if args.plot:
        title = (f"batchivp {env['batchivp']}, {env['cpus']} cores"
                 + (", quick sizes" if args.quick else ""))
        plot_speedups(rows, args.plot, title)
    if tolerated:
        print(f"\nnote: {tolerated} nfev differences against a scipy whose BLAS does not sum "
              "in index order (not failed). scipy sums the stages with BLAS (np.dot); where a "
              "step's error estimate is mostly round-off, the order of summation decides the "
              "next step size, so two BLAS kernels give scipy itself different nfev "
              "(README, 'Exactness'; --scipy-blas index).")
    if mismatches:
        print(f"\n!!! {mismatches} nfev mismatches against scipy summing in index order, "
              "as batchivp does (see above): batchivp did not take scipy's steps.")
        return 1
    return 0


def main(argv=None, description=None, default_cases=None, quick_help=None):
    """Parse ``argv`` with :func:`add_arguments` and :func:`run`; the exit status."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser, default_cases, quick_help)
    return run(parser.parse_args(argv))
