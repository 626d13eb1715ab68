"""Peak memory of solve_batch with and without ``out=`` (benchmarks/README.md,
"Streamed output").

    python benchmarks/stream_memory.py memory 1e6 100     # in memory
    python benchmarks/stream_memory.py stream 1e6 100     # streamed to /tmp/stream_memory.zarr
    python benchmarks/stream_memory.py stream 1e7 1000 --stop-after 3
    python benchmarks/stream_memory.py stream 1e7 1000 --summarize --stop-after 3

N harmonic oscillators (n = 2) on cpu, k points of t_eval stored. ``--stop-after B``
sends Ctrl-C after B blocks are written: everything a full run holds in memory (the
inputs, their fingerprint, the store, a block, the result) without its hours and its
disk. ``--summarize``: min, max and mean at the points instead of the trajectory
(``save_y=False``). Run it once per mode: the peak (``ru_maxrss``) is the process's.
"""

import argparse
import resource
import shutil
import signal
import time
import warnings

import numpy as np

import batchivp as bi
from batchivp import stream

STORE = "/tmp/stream_memory.zarr"


@bi.rhs
def memory_oscillator(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0]


def rss_now_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def stop_after(blocks):
    """Ctrl-C (a real SIGINT) once ``blocks`` blocks are written."""
    original, written = stream.write_block, []

    def write_block(*args):
        original(*args)
        written.append(1)
        if len(written) == blocks:
            signal.raise_signal(signal.SIGINT)

    stream.write_block = write_block


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["memory", "stream"])
    parser.add_argument("n", type=float)
    parser.add_argument("k", type=int)
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    n = int(args.n)
    y0 = np.column_stack([np.ones(n), np.zeros(n)])
    kw = dict(params=np.linspace(1.0, 4.0, n)[:, None], t_eval=np.linspace(0.0, 1.0, args.k),
              rtol=1e-6, atol=1e-9, target="cpu")
    if args.summarize:
        kw.update(summarize=("min", "max", "mean"), save_y=False)
    out = None if args.mode == "memory" else STORE
    bi.solve_batch(memory_oscillator, (0.0, 1.0), y0[:10], **dict(kw, params=1.0))  # compile
    shutil.rmtree(STORE, ignore_errors=True)
    if args.stop_after:
        stop_after(args.stop_after)
    before, start = rss_now_mb(), time.perf_counter()
    with warnings.catch_warnings(record=True):
        res = bi.solve_batch(memory_oscillator, (0.0, 1.0), y0, out=out, **kw)
    print(f"{args.mode}: N={n} k={args.k}: RSS before the solve {before:.0f} MB, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
          f"{time.perf_counter() - start:.1f} s, y as {type(res.y).__name__}, "
          f"{int(np.sum(res.status == 0))} problems finished")


if __name__ == "__main__":
    main()
