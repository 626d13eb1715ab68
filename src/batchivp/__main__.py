"""Command line: ``python -m batchivp {info,cache,bench,cuda-report}`` (or ``batchivp ...``).

- ``info``: version, targets usable here (the GPU's name, or why cuda is not usable),
  the default target, the cache folder and its size.
- ``cache`` (``cache info``): the cache folder and its size; ``cache clear [--dry-run]``
  deletes batchivp's generated modules and numba's cache of them (:mod:`batchivp.cache`);
  ``cache warm [--targets cpu,parallel] [--dims 1-8]`` compiles the cores ahead of time.
- ``bench``: the benchmark suite against scipy (:mod:`batchivp.bench`); ``bench --gpu``
  the GPU acceptance run (:mod:`batchivp.bench.gpu_run`).
- ``cuda-report``: the cuda kernel compiled to PTX, registers and spills from ptxas (the
  plain Kepler kernel, with an event, the debris cloud's, and the Kepler state transition
  matrix's; ``--quick`` leaves out the last, which NVVM takes minutes over), per dtype
  (``--dtypes``; float64, float32 and mixed, only float64 with ``--quick``), with the
  number of double-precision instructions in the PTX, and the compaction's copy kernels.
"""

import argparse
import os
import sys


def _info(args):
    import numba

    import batchivp
    from batchivp import cache, targets

    print(f"batchivp {batchivp.__version__}, numba {numba.__version__}, Python {sys.version.split()[0]}")
    reason = targets.cuda_unusable_reason()
    usable = ["cpu", "parallel"] + (["cuda"] if reason is None else [])
    print(f"targets usable here: {', '.join(usable)} ({os.cpu_count()} cores, "
          f"{numba.config.NUMBA_NUM_THREADS} numba threads)")
    if reason is not None:
        print(f"cuda: not usable: {reason}")
    elif targets.simulator_enabled():
        print("cuda: usable, the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): no GPU, no speed")
    else:
        print(f"cuda: usable, GPU: {_gpu_name()}")
    try:
        default = targets.resolve_target(None)
    except (ValueError, RuntimeError) as exc:
        default = f"none: {exc}"
    print(f"default target: {default} "
          f"({targets.ENV_VAR}={os.environ.get(targets.ENV_VAR, '(unset: auto)')})")
    print(cache.cache_usage().summary())
    return 0


def _gpu_name():
    try:
        from numba import cuda

        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # a driver can fail here after is_available() said yes
        return f"(unknown: {exc})"


def _cache(args):
    from batchivp import cache

    if args.action == "warm":
        from batchivp import render

        try:
            if args.jobs is not None and args.jobs < 1:
                raise ValueError(f"cache warm: --jobs {args.jobs}: give at least 1")
            render.warm(args.targets.split(","), _dims(args.dims), jobs=args.jobs,
                        precisions=_precisions(args.dtypes, "cache warm"))
        except ValueError as exc:
            print(f"batchivp: error: {exc}", file=sys.stderr)
            return 2
        print(cache.cache_usage().summary())
        return 0
    if args.action != "clear":
        print(cache.cache_usage().summary())
        return 0
    usage = cache.clear_cache(dry_run=args.dry_run)
    if args.dry_run:
        for path in usage.files:
            print(path)
    verb = "would free" if args.dry_run else "freed"
    print(f"{verb} {cache.format_bytes(usage.nbytes)}: {len(usage.modules):,} generated modules, "
          f"{len(usage.numba_files):,} numba cache files, {len(usage.other_files):,} other files "
          f"in {usage.folder}")
    return 0


def _dims(text):
    """``"1-4,6"`` -> ``[1, 2, 3, 4, 6]``."""
    dims = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            dims.extend(range(int(first), int(last or first) + 1))
        except ValueError:
            raise ValueError(f"cache warm: --dims {text!r}: expected dimensions such as "
                             "1-4,6") from None
    if not dims or min(dims) < 1:
        raise ValueError(f"cache warm: --dims {text!r}: dimensions are positive integers")
    return dims


def _bench(args):
    from batchivp.bench import gpu_run, runner

    if args.gpu:
        return gpu_run.run(args)
    if args.simulator or args.small:
        print("batchivp: error: --simulator and --small go with --gpu", file=sys.stderr)
        return 2
    return runner.run(args)


def _cuda_report(args):
    from batchivp import abi, cuda_support, models, orbit, sensitivity

    debris_rhs = orbit.force_model([orbit.J2(), orbit.ExponentialDrag()])
    cases = [
        ("models.two_body, no events", [models.two_body], ()),
        ("models.two_body, one terminal event (models.radius_crossing)", [models.two_body],
         (models.radius_crossing.with_options(True, -1),)),
        ("orbit: J2 and exponential drag, re-entry event (the debris cloud)", [debris_rhs],
         (orbit.altitude_below(100.0),)),
    ]
    columns = sensitivity.Columns(6, 1, y0=True, params=False)  # sensitivity="y0": 6 + 36
    stm = sensitivity.augmented(models.two_body, columns.n, columns.m, columns.count)
    if not args.quick:  # NVVM takes minutes
        cases.append(("models.two_body with its state transition matrix", [stm], ()))
    if args.all_forces:  # every device function inlined: NVVM takes minutes
        full_rhs = orbit.force_model([
            orbit.J2(), orbit.J3(), orbit.ExponentialDrag(), orbit.ThirdBody("sun"),
            orbit.ThirdBody("moon"), orbit.SolarRadiationPressure(shadow="conical")])
        cases.append(("orbit: J2, J3, exponential drag, Sun, Moon, SRP (conical shadow); "
                      "events altitude_below, node_crossing, umbra", [full_rhs],
                      (orbit.altitude_below(100.0), orbit.node_crossing(), orbit.umbra())))
    try:
        default = "float64" if args.quick else "float64,float32,mixed"
        precisions = _precisions(args.dtypes or default)
    except ValueError as exc:
        print(f"batchivp: error: {exc}", file=sys.stderr)
        return 2
    for label, functions, events in cases:
        ndim = columns.ndim if functions[0] is stm else 6
        for precision in precisions:
            if functions[0] is stm and precision != abi.FLOAT64:
                continue  # sensitivities are float64 only (solve_batch refuses the others)
            ptx = cuda_support.kernel_ptx(ndim, functions, events, abi.Norm(6), precision)
            _print_ptx_report(f"{label}; n = {ndim}; dtype {precision.name}", ptx,
                              args.verbose)
    copies = {name: cuda_support.ptxas_report(ptx)
              for name, ptx in cuda_support.copy_kernels_ptx().items()}
    print("compaction copy kernels (cuda_batch), registers: "
          + ", ".join(f"{name} {r['registers']}" for name, r in copies.items())
          + f"; spills: {sum(r['spill_stores'] for r in copies.values())} bytes")
    return 0


def _precisions(text, command="cuda-report"):
    """``"float64,float32"`` -> those :class:`batchivp.abi.Precision`s."""
    from batchivp import abi

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in abi.PRECISIONS]
    if unknown or not names:
        raise ValueError(f"{command}: --dtypes {text!r}: expected a comma-separated list of "
                         f"{', '.join(abi.PRECISIONS)}")
    return [abi.PRECISIONS[name] for name in names]


def _print_ptx_report(label, ptx, verbose):
    from batchivp import cuda_support

    report = cuda_support.ptxas_report(ptx)
    print(f"DOP853 kernel ({label}), "
          f"ptxas -arch={cuda_support.PTXAS_ARCH}, PTX for cc {cuda_support.PTX_CC}:")
    print(f"  registers:   {report['registers']}")
    print(f"  stack frame: {report['stack_frame']} bytes")
    print(f"  spills:      {report['spill_stores']} bytes stored, {report['spill_loads']} bytes loaded")
    print(f"  double ops:  {cuda_support.double_ops(ptx)} PTX instructions (static count)")
    print(f"  PTX size:    {len(ptx)} characters")
    if verbose:
        print("\n".join(report["raw"]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="batchivp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, targets usable here, cache folder and size").set_defaults(run=_info)
    cache = sub.add_parser("cache", help="the cache folder's size (cache info), or clear it")
    cache.set_defaults(run=_cache, action="info", dry_run=False)
    cache_sub = cache.add_subparsers(dest="action")
    cache_sub.add_parser("info", help="the cache folder and its size")
    clear = cache_sub.add_parser("clear", help="delete the generated modules and numba's cache "
                                 "files of them (nothing else in the folder)")
    clear.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    warm = cache_sub.add_parser("warm", help="compile the cores of the cpu and parallel targets "
                                "ahead of time (each once per machine; a new function then "
                                "compiles in under a second)")
    warm.add_argument("--targets", default="cpu,parallel", help="comma-separated (default: %(default)s)")
    warm.add_argument("--dims", default="1-8",
                      help="state dimensions, e.g. 1-4,6 (default: %(default)s)")
    warm.add_argument("--dtypes", default="float64",
                      help="comma-separated dtypes of solve_batch: float64, float32, mixed "
                           "(default: %(default)s)")
    warm.add_argument("--jobs", type=int, default=None,
                      help="compiles at once (default: one per core)")
    bench_help = "the benchmark suite: scipy's DOP853 against each target"
    bench = sub.add_parser("bench", help=bench_help, description=bench_help + " (batchivp.bench)")
    bench.set_defaults(run=_bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options need the suite (numpy, scipy, the cases): only then
        from batchivp.bench import gpu_run, runner

        runner.add_arguments(bench)
        gpu_run.add_arguments(bench)
    report = sub.add_parser("cuda-report", help="compile the cuda kernel to PTX (no GPU needed) "
                            "and print registers, stack frame and spills from ptxas")
    report.add_argument("-v", "--verbose", action="store_true", help="print ptxas's own lines")
    report.add_argument("--quick", action="store_true",
                        help="leave out the Kepler state transition matrix's kernel (6 + 36 "
                             "components, minutes to compile)")
    report.add_argument("--dtypes", default=None,
                        help="comma-separated dtypes of solve_batch (float64, float32, mixed; "
                             "default: all three, float64 only with --quick: each dtype is "
                             "another NVVM compile of every case)")
    report.add_argument("--all-forces", action="store_true",
                        help="also the orbit kernel with every force model and shadow events "
                             "(minutes to compile)")
    report.set_defaults(run=_cuda_report)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
