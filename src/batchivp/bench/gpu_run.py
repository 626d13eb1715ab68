"""The GPU acceptance run: ``batchivp bench --gpu`` (issue 17, part 5).

On a machine with an NVIDIA GPU, in one command of at most ``--budget-s`` (default
under ten minutes):

1. the cuda tests for real: ``BATCHIVP_TEST_CUDA=gpu pytest -m cuda`` in the source
   checkout (``tests/``; skipped from an installed wheel), over a few processes with
   pytest-xdist (each test compiles its own kernel with NVVM), stopped at
   ``--tests-budget-s``;
2. the benchmark: Kepler, ``--kepler-n`` near-circular Earth orbits (default 10^6) for
   one day, and Lorenz, DiffEqGPU's ensemble: ``--lorenz-n`` problems (default 2^23),
   sigma = 10, beta = 8/3, rho evenly spaced in [0, 28], y0 = (1, 0, 0), t in [0, 1];
   per dtype of ``--dtypes`` that ``solve_batch`` accepts (float64, and float32 and
   ``"mixed"`` once ``solve_batch`` has ``dtype=``), on ``cuda`` in each work shape
   (launches packed or whole, arrays problem-innermost or in rows: ``cuda_batch``), and
   on ``parallel`` on all cores. Each row prints DOP853 steps per second: accepted plus
   rejected steps of the whole batch over the wall time of the ``solve_batch`` call
   (upload and download included, compile excluded).

Sizes follow a time estimate: before a system's rows, runs of growing size (times 8
from 2^14) measure its speed until one takes a second, and the batch is cut (by powers
of two) until its planned rows fit the time left; a row that would not fit at all is
skipped and says so. ``--simulator --small`` runs the same code in numba's CUDA
simulator at a tiny size (no GPU; the times mean nothing there): the check that the
command works, ``tests/test_cli.py`` runs it.
"""

import inspect
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The work shapes of the cuda rows: (label, compaction, problem index innermost).
SHAPES = (("packed, coalesced", True, True), ("whole, coalesced", False, True),
          ("packed, rows", True, False), ("whole, rows", False, False))
FULL_SIZES = dict(kepler=10**6, lorenz=2**23)
SMALL_SIZES = dict(kepler=4, lorenz=8)
DTYPES = ("float64", "float32", "mixed")
PROBE_START = 2**14  # the first size of the time estimate's runs, times 8 after each
PROBE_ENOUGH_S = 1.0  # a run this long measures the speed
BUDGET_MARGIN = 0.8  # the share of the time left that the planned rows may take


@dataclass
class System:
    """One benchmark system: the right-hand side, its problems, tolerances per dtype."""

    name: str
    fun: object
    t_span: tuple
    y0: np.ndarray  # (N, n)
    params: np.ndarray  # (N, m)
    tolerances: dict  # dtype -> (rtol, atol)

    def solve(self, n, target, dtype, **options):
        rtol, atol = self.tolerances["float64" if dtype == "float64" else "float32"]
        if dtype != "float64":
            options["dtype"] = np.float32 if dtype == "float32" else dtype
        import batchivp as bi

        return bi.solve_batch(self.fun, self.t_span, self.y0[:n], self.params[:n], rtol=rtol,
                              atol=atol, target=target, **options)


def kepler_system(n, small):
    from batchivp import models
    from batchivp.orbit.constants import MU_EARTH

    from .batch_cases import random_orbits

    span = (0.0, 3600.0 if small else 86400.0)  # the simulator runs Python: an hour
    return System("kepler", models.two_body, span, random_orbits(n), np.full((n, 1), MU_EARTH),
                  {"float64": (1e-10, 1e-10), "float32": (1e-5, 1e-3)})


def lorenz_system(n):
    from batchivp import models

    params = np.column_stack([np.full(n, 10.0), np.linspace(0.0, 28.0, n),
                              np.full(n, 8.0 / 3.0)])
    y0 = np.tile([1.0, 0.0, 0.0], (n, 1))
    return System("lorenz", models.lorenz, (0.0, 1.0), y0, params,
                  {"float64": (1e-5, 1e-7), "float32": (1e-5, 1e-7)})


def add_arguments(parser):
    """The options of ``batchivp bench --gpu``."""
    group = parser.add_argument_group("the GPU acceptance run (--gpu)")
    group.add_argument("--gpu", action="store_true",
                       help="the GPU acceptance run instead of the suite: the cuda tests for "
                       "real, then Kepler and Lorenz on cuda (each work shape) and parallel")
    group.add_argument("--simulator", action="store_true",
                       help="with --gpu: numba's CUDA simulator instead of a GPU (no speed)")
    group.add_argument("--small", action="store_true",
                       help=f"with --gpu: tiny sizes {SMALL_SIZES} (for the simulator)")
    group.add_argument("--kepler-n", type=int, default=None, help="Kepler orbits "
                       f"(default {FULL_SIZES['kepler']:,}, before the time estimate)")
    group.add_argument("--lorenz-n", type=int, default=None, help="Lorenz problems "
                       f"(default {FULL_SIZES['lorenz']:,}, before the time estimate)")
    group.add_argument("--parallel-n", type=int, default=None,
                       help="problems of the parallel rows (default: as cuda's, or fewer "
                       "if the estimate says so)")
    group.add_argument("--dtypes", default=",".join(DTYPES),
                       help="comma-separated; those solve_batch does not accept are skipped "
                       "(default: %(default)s)")
    group.add_argument("--budget-s", type=float, default=570.0,
                       help="the whole run's time, tests included (default: %(default)s)")
    group.add_argument("--tests-budget-s", type=float, default=240.0,
                       help="the cuda tests' share of it (default: %(default)s)")
    group.add_argument("--pytest", default="-m cuda -q",
                       help="pytest's arguments for the cuda tests (default: %(default)r)")
    group.add_argument("--no-tests", action="store_true", help="leave out the cuda tests")


def run(args):
    """The acceptance run of parsed ``args``; the exit status (1 if the tests failed or a
    row's problems did not all succeed)."""
    start = time.perf_counter()
    deadline = start + args.budget_s
    if args.simulator:
        if "numba.cuda" in sys.modules and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise RuntimeError("--simulator: numba.cuda was imported before the simulator "
                               "was chosen; set NUMBA_ENABLE_CUDASIM=1 instead")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        from numba.core import config

        config.reload_config()  # numba read its environment when imported
    print(environment_line())
    failed = 0
    if not args.no_tests:
        failed += run_tests(args.pytest, min(deadline, start + args.tests_budget_s),
                            args.simulator)
    sizes = dict(SMALL_SIZES if args.small else FULL_SIZES)
    sizes.update({k: v for k, v in (("kepler", args.kepler_n), ("lorenz", args.lorenz_n))
                  if v is not None})
    dtypes, skipped = accepted_dtypes([d.strip() for d in args.dtypes.split(",") if d.strip()])
    for dtype, why in skipped.items():
        print(f"dtype {dtype}: skipped, {why}")
    systems = [kepler_system(sizes["kepler"], args.small), lorenz_system(sizes["lorenz"])]
    rows = []
    for k, system in enumerate(systems):
        share = (deadline - time.perf_counter()) / (len(systems) - k)
        rows += bench_system(system, dtypes, time.perf_counter() + share, args)
    print_rows(rows)
    failed += sum(1 for r in rows if r.get("failed") or r.get("failed_check"))
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump({"environment": environment_line(), "rows": rows}, fh, indent=2)
    print(f"\nacceptance run: {time.perf_counter() - start:.0f} s"
          + (f", {failed} failure(s)" if failed else ", no failures"))
    return 1 if failed else 0


def environment_line():
    import numba

    import batchivp
    from batchivp import targets

    if targets.simulator_enabled():
        device = "the CUDA simulator (no GPU: times mean nothing)"
    elif targets.cuda_usable():
        from numba import cuda

        name = cuda.get_current_device().name
        device = f"GPU {name.decode() if isinstance(name, bytes) else name}"
    else:
        device = f"no usable GPU ({targets.cuda_unusable_reason()})"
    return (f"batchivp {batchivp.__version__}, numba {numba.__version__}, {device}, "
            f"{os.cpu_count()} cores, {numba.config.NUMBA_NUM_THREADS} numba threads")


def accepted_dtypes(wanted):
    """The dtypes of ``wanted`` that ``solve_batch`` takes, and why each other is not."""
    import batchivp as bi

    has_dtype = "dtype" in inspect.signature(bi.solve_batch).parameters
    dtypes, skipped = [], {}
    for dtype in wanted:
        if dtype not in DTYPES:
            skipped[dtype] = f"unknown (known: {', '.join(DTYPES)})"
        elif dtype != "float64" and not has_dtype:
            skipped[dtype] = "solve_batch has no dtype= argument yet"
        else:
            dtypes.append(dtype)
    return dtypes, skipped


def run_tests(pytest_args, deadline, simulator):
    """``pytest -m cuda`` (``pytest_args``) in the source checkout on the GPU (the
    simulator with ``simulator``), stopped at ``deadline``; 1 if it failed, else 0."""
    repo = Path(__file__).resolve().parents[3]
    if not (repo / "tests" / "conftest.py").is_file():
        print("cuda tests: skipped, no source checkout (tests/) beside this batchivp")
        return 0
    env = dict(os.environ)
    if not simulator:
        env["BATCHIVP_TEST_CUDA"] = "gpu"
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    command = [sys.executable, "-m", "pytest", *shlex.split(pytest_args)]
    workers = min(8, os.cpu_count() or 1)
    if workers > 1 and not simulator and _has_xdist():
        command += ["-n", str(workers), "--dist", "loadfile"]  # NVVM compiles in parallel
    seconds = max(1.0, deadline - time.perf_counter())
    print(f"\ncuda tests: {' '.join(command[1:])} (at most {seconds:.0f} s)", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=repo, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        print(f"cuda tests: stopped after {seconds:.0f} s (--tests-budget-s); not failed, "
              "but not all ran")
        return 0
    print(f"cuda tests: exit status {code} in {time.perf_counter() - start:.0f} s", flush=True)
    return 0 if code == 0 else 1


def _has_xdist():
    import importlib.util

    return importlib.util.find_spec("xdist") is not None


def bench_system(system, dtypes, deadline, args):
    """The rows of ``system``: on cuda each dtype in each work shape, then parallel per
    dtype, at sizes cut to end by ``deadline`` (cuda gets two thirds of the time)."""
    n_full = len(system.y0)
    rows, reference, compile_s = [], {}, {}
    now = time.perf_counter()
    cuda_deadline = now + (deadline - now) * 2 / 3
    print(f"\n[{system.name}] up to {n_full:,} problems", flush=True)
    n = fit_size(system, "cuda", n_full, len(dtypes) * len(SHAPES), cuda_deadline, compile_s)
    for dtype in dtypes:
        for shape in SHAPES:
            rows.append(bench_row(system, n, "cuda", dtype, shape, cuda_deadline, reference,
                                  compile_s))
    n_par = args.parallel_n or n_full
    n_par = fit_size(system, "parallel", min(n_par, n_full), len(dtypes), deadline, compile_s)
    for dtype in dtypes:
        rows.append(bench_row(system, n_par, "parallel", dtype, None, deadline, reference,
                              compile_s))
    return rows


def fit_size(system, target, n_full, runs, deadline, compile_s):
    """The largest ``n_full / 2^k`` whose ``runs`` runs fit before ``deadline``, by the
    speed of runs of growing size (float64, the default work shape; compiled first)."""
    compile_s[(target, "float64")] = warm_up(system, target, "float64", SHAPES[0])
    n = min(PROBE_START, n_full)
    while True:
        start = time.perf_counter()
        system.solve(n, target, "float64")
        seconds = time.perf_counter() - start
        if seconds >= PROBE_ENOUGH_S or n == n_full or time.perf_counter() > deadline:
            break
        n = min(8 * n, n_full)
    per_problem = seconds / n
    fitted = n_full
    left = (deadline - time.perf_counter()) * BUDGET_MARGIN
    while fitted > 1 and fitted * per_problem * runs > left:
        fitted //= 2
    print(f"[{system.name}] {target}: {n:,} problems in {seconds:.2f} s; "
          f"{runs} run(s) of {fitted:,} fit in the {left:.0f} s left", flush=True)
    return max(1, fitted)


def warm_up(system, target, dtype, shape):
    """Compile (or load) the kernel and the copy kernels of this work shape, on two
    problems that finish at different chunks (so one compaction runs); the seconds."""
    import batchivp as bi

    t0, t1 = system.t_span
    spans = np.array([[t0, t0], [t0, t0 + (t1 - t0) / 64]])
    rtol, atol = system.tolerances["float64" if dtype == "float64" else "float32"]
    options = {} if dtype == "float64" else {"dtype": np.float32 if dtype == "float32" else dtype}
    start = time.perf_counter()
    with work_shape(shape):
        bi.solve_batch(system.fun, spans, system.y0[:2], system.params[:2], rtol=rtol,
                       atol=atol, target=target, chunk_steps=1, **options)
    return time.perf_counter() - start


class work_shape:
    """Within the block, cuda launches in the work ``shape`` (an entry of ``SHAPES``, or
    None for the defaults)."""

    def __init__(self, shape):
        self.shape = shape

    def __enter__(self):
        from batchivp import cuda_batch

        self.saved = cuda_batch.COMPACTION, cuda_batch.BATCH_INNERMOST
        if self.shape is not None:
            cuda_batch.COMPACTION, cuda_batch.BATCH_INNERMOST = self.shape[1:]

    def __exit__(self, *exc_info):
        from batchivp import cuda_batch

        cuda_batch.COMPACTION, cuda_batch.BATCH_INNERMOST = self.saved
        return False


def bench_row(system, n, target, dtype, shape, deadline, reference, compile_s):
    """One row: the batch of ``n`` problems timed once (compiled first), checked against
    the row of the same target and dtype before it (bitwise: work shapes change no bit)
    or the float64 row of the same target (relative difference)."""
    row = dict(system=system.name, n=n, target=target, dtype=dtype,
               shape=shape[0] if shape else "", compile_s=None)
    key = (target, dtype)
    guess = compile_s.get(key, max(compile_s.values(), default=0.0))
    if time.perf_counter() + guess > deadline:
        return dict(row, skipped="the time left (--budget-s)")
    print(f"[{system.name}] {target} {dtype} {row['shape']} ...", flush=True)
    try:
        # Again for each work shape: its copy kernels compile at their first use.
        warm_s = warm_up(system, target, dtype, shape) if key not in compile_s or shape else None
        compile_s.setdefault(key, warm_s)
        row["compile_s"] = compile_s[key] if key not in reference else warm_s
        with work_shape(shape):
            start = time.perf_counter()
            res = system.solve(n, target, dtype)
            row["time_s"] = time.perf_counter() - start
    except (TypeError, ValueError) as exc:
        if dtype != "float64":  # a dtype or its tolerances refused: said, not failed
            return dict(row, skipped=f"refused: {exc}")
        return dict(row, skipped=f"FAILED: {type(exc).__name__}: {exc}", failed=True)
    except Exception as exc:  # a row's error (device memory...) does not end the run
        return dict(row, skipped=f"FAILED: {type(exc).__name__}: {exc}", failed=True)
    steps = int(res.nstep.sum() + res.nreject.sum())
    row.update(steps=steps, steps_per_s=steps / row["time_s"],
               failed=int((~res.success).sum()))
    row.update(compare(res, reference.get(key), reference.get(("cuda", dtype)),
                       reference.get((target, "float64"))))
    reference.setdefault(key, res)
    return row


def compare(res, same, cuda, float64):
    """The check of a result: bitwise against the first row of its target and dtype
    (work shapes must change no bit: a difference fails the run); else against cuda's
    of its dtype (parallel; reported), else against float64's of its target (the
    largest relative difference of y_final), each where the sizes agree."""
    if same is not None and len(same) == len(res):
        equal = bitwise_equal(res, same)
        return {"check": "bitwise equal" if equal else "DIFFERS", "failed_check": not equal}
    if cuda is not None and len(cuda) == len(res):
        equal = bitwise_equal(res, cuda)
        return {"check": "bitwise equal to cuda" if equal else
                f"vs cuda {max_rel_difference(res, cuda):.1e}"}
    if float64 is not None and len(float64) == len(res):
        rel = max_rel_difference(res, float64)
        return {"check": f"vs float64 {rel:.1e}", "max_rel_dy": rel}
    return {"check": "reference"}


def bitwise_equal(res, other):
    return all(np.array_equal(getattr(res, f), getattr(other, f), equal_nan=True)
               for f in ("y_final", "t_final", "status", "nfev", "nstep", "nreject"))


def max_rel_difference(res, other):
    """The largest ``max|y - y_other| / max|y_other|`` over the problems (final states)."""
    scale = np.maximum(np.abs(other.y_final).max(axis=1), np.finfo(float).tiny)
    return float(np.nanmax(np.abs(res.y_final - other.y_final).max(axis=1) / scale))


def print_rows(rows):
    """The table: DOP853 steps (accepted + rejected) per second of each row."""
    head = (f"{'system':<7} {'N':>10} {'target':<9} {'dtype':<8} {'work shape':<18} "
            f"{'compile':>8} {'time (s)':>9} {'steps':>14} {'steps/s':>10}  check")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        lead = f"{r['system']:<7} {r['n']:>10,} {r['target']:<9} {r['dtype']:<8} {r['shape']:<18} "
        if "skipped" in r:
            print(lead + f"skipped: {r['skipped']}")
            continue
        comp = "" if r["compile_s"] is None else f"{r['compile_s']:.1f} s"
        check = r["check"] + (f"; {r['failed']} problems failed" if r["failed"] else "")
        print(lead + f"{comp:>8} {r['time_s']:>9.3f} {r['steps']:>14,} "
              f"{r['steps_per_s']:>10.3g}  {check}")
