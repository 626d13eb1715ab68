"""CUDA without a GPU: PTX compilation and ptxas resource usage.

Everything CUDA-specific that is not generated code lives here, but for the simulator
workaround the renderer applies before it loads a cuda module
(:func:`batchivp.targets.apply_simulator_workarounds`; docs/architecture.md, "Testing
the CUDA target without a GPU").
"""

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

from . import abi, targets

PTX_CC = (9, 0)
PTXAS_ARCH = "sm_90"


def kernel_ptx(ndim=6, functions=None, events=(), norm=None, precision=abi.FLOAT64):
    """Compile the cuda module's entry point to PTX for sm_90 without a driver.

    The cuda module is rendered with its entry point undecorated (``cuda_ptx``: the
    same text but for the ``guvectorize`` line), and that per-problem function, the
    body the cuda gufunc wraps, is compiled as a kernel with
    ``numba.cuda.compile_ptx`` (NVVM from the CUDA wheels). ``norm``: as for
    :func:`batchivp.render.load_module` (a system with sensitivities); ``precision``:
    the kernel's dtypes (:class:`batchivp.abi.Precision`). Returns the PTX text.

    Workaround: this needs no driver only because every device function in the cuda
    module is declared ``inline=True`` (``render``'s cuda style). A device function
    that is not makes numba-cuda 0.30.4 ask the driver for the compute capability,
    which fails without one (``NUMBA_FORCE_CUDA_CC`` does not help). No upstream issue
    found (searched numba/numba and NVIDIA/numba-cuda issues for ``compile_ptx`` with
    device functions and the compute capability, 2026-12).
    """
    if targets.simulator_enabled():
        raise RuntimeError("PTX compilation needs the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
    from numba import cuda

    from . import render

    if functions is None:  # the report's standard case: Kepler orbits
        from .models import two_body

        functions, ndim = [two_body], 6
    module = render.load_module("cuda_ptx", ndim, functions, events, norm=norm,
                                precision=precision)
    ptx, _ = cuda.compile_ptx(module.dop853_kernel, abi.ptx_types(precision), cc=PTX_CC)
    return ptx


def copy_kernels_ptx():
    """The compaction's gather, scatter and column fill (``cuda_batch``) compiled to PTX
    for sm_90, for the strided float64 and int64 views they copy between; a dict of
    kernel name to PTX text."""
    if targets.simulator_enabled():
        raise RuntimeError("PTX compilation needs the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
    from numba import cuda
    from numba import types as nt

    from . import cuda_batch

    rows = nt.int64[::1]
    ptx = {}
    for dtype in (nt.float64, nt.int64):
        view = nt.Array(dtype, 2, "A")
        for kernel in (cuda_batch._gather, cuda_batch._scatter):
            name = f"{kernel.py_func.__name__.strip('_')} ({dtype})"
            ptx[name], _ = cuda.compile_ptx(kernel.py_func, (view, rows, view, nt.boolean),
                                            cc=PTX_CC)
    icfg = nt.Array(nt.int64, 2, "A")
    ptx["fill_column"], _ = cuda.compile_ptx(cuda_batch._fill_column.py_func,
                                             (icfg, nt.int64, nt.int64), cc=PTX_CC)
    return ptx


# PTX instructions that compute in double precision (moves, loads and stores excluded:
# they cost no arithmetic): arithmetic, fused multiply-adds, comparisons, conversions
# from or to a double, math approximations.
_DOUBLE_OPS = re.compile(r"^\s*(?:@%p\d+\s+)?((?:add|sub|mul|fma|div|rcp|sqrt|rsqrt|neg|abs|min|max|"
                         r"setp|selp|cvt|testp|copysign)[.\w]*\.f64)\b", re.MULTILINE)


def double_ops(ptx):
    """The number of double-precision arithmetic, comparison and conversion
    instructions in ``ptx`` (static: each counted once, wherever it is in a loop)."""
    return len(_DOUBLE_OPS.findall(ptx))


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
