"""Benchmark: the first answer for a new function, before (inlined kernel) and now (linked).

Run: ``batchivp bench --cases first-call`` (not part of ``--quick``: it starts some
thirty processes and compiles whole kernels, minutes on two cores; with ``--quick`` each
linked figure is one run instead of the best of three). Issue 15's table, measured side
by side on this machine. Each figure of the first table is a fresh Python process
(:mod:`.first_call_child`) calling a function **new to the disk cache** (its source holds
a random constant, so no earlier run compiled it), on ``cpu`` (and ``c`` also on
``parallel`` where that target is selected):

- ``inlined (before)``: ``BATCHIVP_KERNEL=inlined``, the kernel rendered with the user's
  functions inlined and compiled whole for this plugin set; one run each (each costs
  tens of seconds);
- ``linked (now)``: the default on cpu and parallel, the core compiled once per target
  and state dimension, the new function compiled alone; best of three processes, each
  with its own new function;
- ``scipy``: ``scipy.integrate.solve_ivp(method="DOP853")`` on the same call, in the
  same process, after batchivp's (scipy's import apart, on the import row).

Rows: ``core compile``, ``batchivp cache warm`` for the dimensions used here, once per
machine (``cached``: an earlier run did it; then no figure includes it); ``import``,
``import batchivp``; a, the first ``bi.solve_ivp`` call on a new lambda (Lotka-Volterra,
t in [0, 15], rtol 1e-8); b, the same lambda in a second process (its compiled code now
on disk); c, a new ``@bi.rhs`` (Lorenz) through ``solve_batch``, 16 problems; d, a new
``@bi.event`` with the registered two-body rhs through ``solve_batch``, 2 orbits, 600 s;
e, a new ``orbit.UserForce`` through ``orbit.propagate``, 2 objects, 600 s; f, a new
threshold of an existing event, ``altitude_below(h)`` with J2 through ``propagate`` (the
thresholds of orbit events are run-time parameters on both kinds now, so f's "before"
is today's inlined kernel, not issue 15's, which compiled a kernel per threshold).
From c on, a figure runs from importing the function's module (its registration, with
numba's trial compile) to the answer. d and f take their existing functions compiled by
an earlier process of the same kind.

The second table is the per-step cost: the Kepler and Lorenz batches of
:mod:`.batch_cases`, compiled, timed in this process under each kernel kind in turn (best
of ``--repeat``, default 10: a batch takes tens of ms), the ratio linked / inlined (the issue's limit: 1.5), and
whether both give bitwise the same ``y_final`` and ``nfev``: a difference fails the run,
as an nfev mismatch against scipy does. Timings are only reported; with other work on
the machine (the load average is printed) they are noisy.
"""

import contextlib
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .. import render
from .batch_cases import kepler_case, lorenz_case, run_target
from .registry import register

TABLE = "first-call"  # rows of this table stay out of the runner's standard one
KINDS = ("inlined", "linked")
CORE_DIMS = {"cpu": "2,3,6", "parallel": "3,6"}  # the states of the scenarios and batches
CORE_MESSAGE = "batchivp: compiling the"  # render.linked_core's line on stderr
CHILD = Path(__file__).with_name("first_call_child.py")
BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
CHILD_TIMEOUT = 1200  # s: an inlined compile takes 15-150 s on two busy cores

# The new function of each scenario; {c} is a constant no earlier run has used.
SOURCES = {
    "solve_ivp": "f = lambda t, y: [{c} * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]]\n",
    "solve_batch": """import batchivp as bi


@bi.rhs
def rhs(t, y, p, dydt):
    dydt[0] = {c} * (y[1] - y[0])
    dydt[1] = y[0] * (p[0] - y[2]) - y[1]
    dydt[2] = y[0] * y[1] - p[1] * y[2]
""",
    "event": """import math

import batchivp as bi


@bi.event(terminal=True, direction=-1)
def event(t, y, p):
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - {c} * 3000.0
""",
    "user_force": """import math


def force(t, y, q, dydt):
    r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    dydt[3] += {c} * q[0] * y[0] / r
    dydt[4] += {c} * q[0] * y[1] / r
    dydt[5] += {c} * q[0] * y[2] / r
""",
}
BASES = {"solve_ivp": 1.5, "solve_batch": 10.0, "event": 1.0, "user_force": 1.0}
SCENARIOS = (  # row key, label, child scenario
    ("a", "a. solve_ivp, a new lambda", "solve_ivp"),
    ("c", "c. a new @bi.rhs, solve_batch", "solve_batch"),
    ("d", "d. a new @bi.event, solve_batch", "event"),
    ("e", "e. a new orbit.UserForce, propagate", "user_force"),
    ("f", "f. a new altitude_below(h), propagate", "threshold"),
)


def new_constant(base):
    """``base`` with six random digits appended after its sixth decimal, as text."""
    return f"{base:.6f}{secrets.randbelow(10**6):06d}"


def new_function(scenario, target, folder):
    """The child's spec for ``scenario`` with a function no earlier run has compiled,
    its module written into ``folder``."""
    spec = {"scenario": scenario, "target": target}
    if scenario == "threshold":
        return dict(spec, altitude=float(new_constant(100.0)))
    module = f"fc_{scenario}_{secrets.token_hex(6)}"
    source = SOURCES[scenario].replace("{c}", new_constant(BASES[scenario]))
    (Path(folder) / f"{module}.py").write_text(source)
    return dict(spec, module=module)


def child(args, kind, folder):
    """Run ``python args`` in a fresh process with ``$BATCHIVP_KERNEL=kind`` in
    ``folder``; its stdout, and whether it compiled a linked core (its stderr line)."""
    env = dict(os.environ, **{render.KERNEL_ENV_VAR: kind})
    proc = subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"first-call: the process {' '.join(args[-2:])} failed "
                           f"(status {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, CORE_MESSAGE in proc.stderr


def measure(spec, kind, folder):
    """One fresh process of :mod:`.first_call_child` on ``spec``: its JSON figures."""
    stdout, core_compiled = child(["-c", BOOT, str(CHILD), json.dumps(spec)], kind, folder)
    out = json.loads(stdout.strip().splitlines()[-1])
    out["core_compiled"] = core_compiled
    print(f"[first-call] {spec['scenario']} {spec['target']} {kind}: {out['call_s']:.3f} s"
          + (" (compiled a linked core)" if core_compiled else ""), flush=True)
    return out


def warm_cores(targets, folder):
    """``batchivp cache warm`` for each target in a fresh process: one row per target,
    the seconds spent compiling (None: all cores were compiled already)."""
    rows = []
    for target in targets:
        stdout, _ = child(["-m", "batchivp", "cache", "warm", "--targets", target,
                           "--dims", CORE_DIMS[target], "--jobs", "1"], "linked", folder)
        seconds = [float(s) for s in re.findall(r"compiled in ([\d.]+) s", stdout)]
        print(f"[first-call] {target} cores ({CORE_DIMS[target]}): "
              + (f"compiled in {sum(seconds):.1f} s" if seconds else "already compiled"),
              flush=True)
        rows.append(row("core", f"core compile, once per machine (n = {CORE_DIMS[target]})",
                        target, linked_s=sum(seconds) if seconds else None))
    return rows


def row(key, label, target, **figures):
    return dict(table=TABLE, case="first-call", scenario=key, label=label, target=target,
                **figures)


def scenario_runs(scenario, target, kind, runs, folder):
    """``runs`` fresh processes, each on its own new function; for ``solve_ivp`` each
    also followed by a second process on the same function (``"again"``)."""
    outs = []
    for _ in range(runs):
        spec = new_function(scenario, target, folder)
        out = measure(spec, kind, folder)
        if scenario == "solve_ivp":
            out["again"] = measure(spec, kind, folder)
        outs.append(out)
    return outs


def best(outs, field="call_s"):
    return min(out[field] for out in outs) if outs else None


def scenario_rows(targets, runs, folder):
    """The rows of scenarios a to f (and b, and the import row) on ``targets``."""
    for kind in KINDS:  # what d and f take as existing, compiled or loaded once
        measure({"scenario": "existing", "target": "cpu"}, kind, folder)
    rows, imports = [], {kind: [] for kind in KINDS}
    for key, label, scenario in SCENARIOS:
        for target in [t for t in targets if t == "cpu" or scenario == "solve_batch"]:
            outs = {kind: scenario_runs(scenario, target, kind, 1 if kind == "inlined" else runs,
                                        folder) for kind in KINDS}
            for kind in KINDS:
                imports[kind] += outs[kind]
            rows.append(row(key, label, target, inlined_s=best(outs["inlined"]),
                            linked_s=best(outs["linked"]), runs=outs,
                            core_compiled=any(o["core_compiled"] for o in outs["linked"])))
            if scenario == "solve_ivp":
                rows[-1].update(solve_ivp_figures(outs))
                rows.append(row("b", "b. the same lambda, a second process", target,
                                inlined_s=best([o["again"] for o in outs["inlined"]]),
                                linked_s=best([o["again"] for o in outs["linked"]])))
    rows.insert(0, row("import", "import batchivp (scipy: scipy.integrate)", "",
                       inlined_s=best(imports["inlined"], "import_s"),
                       linked_s=best(imports["linked"], "import_s"),
                       scipy_s=best([o for r in rows if r["scenario"] == "a"
                                     for kind in KINDS for o in r["runs"][kind]],
                                    "scipy_import_s")))
    return rows


def solve_ivp_figures(outs):
    """scipy's best time on the same calls, and their nfev against batchivp's (reported,
    not failed: scipy's BLAS may not sum in index order here, :mod:`.scipy_ref`)."""
    every = outs["inlined"] + outs["linked"]
    return {"scipy_s": best(every, "scipy_s"), "nfev_checked": len(every),
            "nfev_equal": sum(o["nfev"] == o["scipy_nfev"] for o in every),
            "nfev_strict": False}


@contextlib.contextmanager
def kernel(kind):
    """``$BATCHIVP_KERNEL`` set to ``kind`` inside the block (read at each call)."""
    old = os.environ.get(render.KERNEL_ENV_VAR)
    os.environ[render.KERNEL_ENV_VAR] = kind
    try:
        yield
    finally:
        if old is None:
            del os.environ[render.KERNEL_ENV_VAR]
        else:
            os.environ[render.KERNEL_ENV_VAR] = old


def per_step_row(case, target, repeat):
    """A warm batch under each kernel kind in turn (best of ``repeat``): the row of the
    per-step table; a bitwise difference between the kinds is counted as a mismatch."""
    seconds, results = {kind: math.inf for kind in KINDS}, {}
    print(f"[first-call] per step: {case.name} on {target}, {len(case.y0)} problems ...",
          flush=True)
    for _ in range(repeat):
        for kind in KINDS:
            with kernel(kind):
                _, time_s, results[kind] = run_target(case, target, 1)
            seconds[kind] = min(seconds[kind], time_s)
    a, b = results["inlined"], results["linked"]
    same = np.all(a.y_final == b.y_final, axis=1) & (a.nfev == b.nfev)
    bitwise = bool(np.array_equal(a.y_final, b.y_final) and np.array_equal(a.nfev, b.nfev))
    if not bitwise:
        print(f"!!! {case.name}/{target}: the linked kernel's y_final or nfev differ from the "
              f"inlined kernel's on {np.count_nonzero(~same)} of {len(same)} problems")
    return row("per-step", f"{case.name}, {len(case.y0)} problems", target,
               inlined_s=seconds["inlined"], linked_s=seconds["linked"],
               ratio=seconds["linked"] / seconds["inlined"], bitwise_equal=bitwise,
               nfev_equal=int(same.sum()), nfev_checked=len(same))


def _seconds(value, missing="-"):
    if value is None:
        return missing
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def first_call_table(rows):
    """The lines of both tables (after the runner's), from this case's rows."""
    rows = [r for r in rows if r.get("table") == TABLE]
    if not rows:
        return []
    head = f"{'first call, a new function':<46} {'target':<8} {'inlined (before)':>16} " \
           f"{'linked (now)':>13} {'scipy':>9}"
    lines = ["", head, "-" * len(head)]
    for r in rows:
        if r["scenario"] != "per-step":
            linked = _seconds(r.get("linked_s"), "cached" if r["scenario"] == "core" else "-")
            lines.append(f"{r['label']:<46} {r['target']:<8} {_seconds(r.get('inlined_s')):>16} "
                         f"{linked:>13} {_seconds(r.get('scipy_s'), ''):>9}")
    head = f"{'per step, a warm batch':<46} {'target':<8} {'inlined':>9} {'linked':>9} " \
           f"{'linked/inlined':>15} {'bitwise equal':>14}"
    lines += ["", head, "-" * len(head)]
    for r in rows:
        if r["scenario"] == "per-step":
            lines.append(f"{r['label']:<46} {r['target']:<8} {_seconds(r['inlined_s']):>9} "
                         f"{_seconds(r['linked_s']):>9} {r['ratio']:>14.2f}x "
                         f"{r['nfev_equal']:>7}/{r['nfev_checked']}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return lines + [f"first-call: load average {load} on {os.cpu_count()} cores at the end "
                    "(other work on the machine inflates the compile times)"]


@register("first-call", notes=first_call_table)
def run_first_call(config):
    targets = [t for t in config.targets if t in render.LINKED_TARGETS]
    if not targets:
        print("[first-call] skipped: no cpu or parallel target selected")
        return []
    print(f"\n[first-call] load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          "inlined figures take tens of seconds each", flush=True)
    runs = 1 if config.quick else 3
    with tempfile.TemporaryDirectory(prefix="batchivp-first-call-") as folder:
        rows = warm_cores(targets, folder) + scenario_rows(targets, runs, folder)
    repeat = config.repeat or (2 if config.quick else 10)
    return rows + [per_step_row(case, target, repeat)
                   for case in (kepler_case(config), lorenz_case(config)) for target in targets]
