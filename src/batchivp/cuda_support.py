"""CUDA without a GPU: the simulator workaround, PTX compilation and ptxas resource usage.

Everything CUDA-specific that is not generated code lives here, so the workarounds
for the numba CUDA simulator stay in one place (DESIGN.md, "Testing the CUDA target
without a GPU").
"""

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

from . import targets

PTX_CC = (9, 0)
PTXAS_ARCH = "sm_90"


def apply_simulator_workarounds():
    """Make numba-cuda's gufunc machinery run under ``NUMBA_ENABLE_CUDASIM=1``.

    Workaround: ``guvectorize(target="cuda")`` calls ``numba.cuda.is_cuda_array``,
    which the simulator module lacks in numba-cuda 0.30 (its ``api.py`` defines it,
    ``simulator/api.py`` does not). We give it the simulator's own test for a device
    array (``FakeCUDAArray`` has no ``__cuda_array_interface__``), so device arrays
    passed to the gufunc are used in place, as on a GPU. The other gap, broadcasting
    a gufunc input, is avoided by the host passing full-size arrays to the kernel.
    """
    if not targets.simulator_enabled():
        return
    from numba import cuda

    if not hasattr(cuda, "is_cuda_array"):
        from numba.cuda.simulator.cudadrv.devicearray import is_cuda_ndarray

        cuda.is_cuda_array = is_cuda_ndarray


def kernel_ptx(ndim=6, functions=None, events=()):
    """Compile the cuda module's entry point to PTX for sm_90 without a driver.

    The cuda module is rendered with its entry point undecorated (``cuda_ptx``: the
    same text but for the ``guvectorize`` line), and that per-problem function, the
    body the cuda gufunc wraps, is compiled as a kernel with
    ``numba.cuda.compile_ptx`` (NVVM from the CUDA wheels). Returns the PTX text.
    """
    if targets.simulator_enabled():
        raise RuntimeError("PTX compilation needs the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
    from numba import cuda
    from numba import types as nt

    from . import render

    if functions is None:  # the report's standard case: Kepler orbits
        from .models import two_body

        functions, ndim = [two_body], 6
    module = render.load_module("cuda_ptx", ndim, functions, events)
    f1, f2, f3 = nt.float64[::1], nt.float64[:, ::1], nt.float64[:, :, ::1]
    i1, i2 = nt.int64[::1], nt.int64[:, ::1]
    # y0, p, rtol, atol, tcfg, t_eval, icfg, ecfg | fstate, istate, f, yout, g, n_events,
    # t_events, y_events, rec_t, rec_y, rec_F | y (render.KERNEL_LAYOUT).
    sig = (f1, f1, f1, f1, f1, f1, i1, i2, f1, i1, f1, f2, f1, i1, f2, f3, f1, f2, f3, f1)
    ptx, _ = cuda.compile_ptx(module.dop853_kernel, sig, cc=PTX_CC)
    return ptx


def find_ptxas():
    """The ``ptxas`` binary of the ``nvidia-cuda-nvcc`` wheel (or one on PATH)."""
    candidates = []
    for entry in sys.path:
        candidates += glob.glob(os.path.join(entry, "nvidia", "cu*", "bin", "ptxas"))
        candidates += glob.glob(os.path.join(entry, "nvidia", "cuda_nvcc", "bin", "ptxas"))
    for path in os.environ.get("PATH", "").split(os.pathsep):
        candidates.append(os.path.join(path, "ptxas"))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def ptxas_report(ptx):
    """Run ``ptxas -arch=sm_90 -v`` on ``ptx``; return a dict of resource usage.

    Keys: ``registers``, ``stack_frame`` (bytes), ``spill_stores``, ``spill_loads``
    (bytes), ``raw`` (ptxas's own lines).
    """
    ptxas = find_ptxas()
    if ptxas is None:
        raise FileNotFoundError(
            "ptxas not found: install the nvidia-cuda-nvcc wheel (pip install 'batchivp[cuda]')")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        done = subprocess.run(
            [ptxas, f"-arch={PTXAS_ARCH}", "-v", str(src), "-o", str(Path(tmp) / "kernel.cubin")],
            capture_output=True, text=True, check=False)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{text}")

    def number(pattern):
        found = re.findall(pattern, text)
        return max(int(v) for v in found) if found else 0

    return {
        "registers": number(r"Used (\d+) registers"),
        "stack_frame": number(r"(\d+) bytes stack frame"),
        "spill_stores": number(r"(\d+) bytes spill stores"),
        "spill_loads": number(r"(\d+) bytes spill loads"),
        "raw": [line for line in text.splitlines() if line.strip()],
    }
