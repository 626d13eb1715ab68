"""A batch on the GPU: its arrays on the device, launches over the unfinished problems
packed together (compaction), and the copies back to the host.

The host loop (``host_loop._run_cuda``) launches the kernel in chunks of steps. A
launch runs one thread per row, and a finished problem's thread returns at once; but a
warp takes as long as its slowest thread, so once the open problems are few and spread
over the batch, nearly every warp still holds one and the launch costs about what it
cost with every problem open. After a chunk, :meth:`DeviceBatch.compact` gathers the
rows of the open problems, of every input and state array, into packed device arrays
that the next launches run alone; the packed state goes back to the full arrays at the
next compaction and at the end (:meth:`DeviceBatch.finish`). The kernel is resumable
bit for bit (docs/architecture.md, point 5), so a packed problem ends exactly as it
would have in the full batch. Gathers and scatters run on the device: a large batch
does not cross the bus at each compaction.
"""

import math

import numpy as np
from numba import cuda

from . import abi, targets
from .core import dop853 as core
from .status import unfinished

# Compaction: after a chunk, pack the open problems when at most COMPACT_SHARE of the
# launched rows are still open. Each compaction then at least halves the launched rows:
# over a run, the rows gathered add up to fewer than the batch's N and there are at most
# log2(N) compactions, each a device copy of the open rows' state, small beside a
# chunk's steps (each a dozen right-hand side evaluations per row). With a smaller
# share, launches would keep more idle warps between compactions; with a larger one
# the host would compact after nearly every chunk for a few rows each time.
# COMPACTION = False launches the whole batch every time (tests and the benchmark
# compare both).
COMPACTION = True
COMPACT_SHARE = 0.5
# Launch size of the gather and scatter kernels: a grid-stride loop over the elements,
# so any size of grid covers any array. The simulator runs a Python thread per GPU
# thread: a warp's worth there keeps a compaction of a tiny batch under a second.
COPY_THREADS = 32 if targets.simulator_enabled() else 256
COPY_MAX_BLOCKS = 4096


# Compiled for each array type at first use. (Module-level: the simulator gives a kernel
# its own ``cuda`` by replacing the global of that name.)
@cuda.jit
def _gather(src, rows, dst):
    """``dst[i, :] = src[rows[i], :]``; neighbouring threads copy neighbouring elements
    of a row (C-contiguous rows: coalesced)."""
    width = dst.shape[1]
    for k in range(cuda.grid(1), dst.shape[0] * width, cuda.gridsize(1)):
        i = k // width
        j = k - i * width
        dst[i, j] = src[rows[i], j]


@cuda.jit
def _scatter(src, rows, dst):
    """``dst[rows[i], :] = src[i, :]``."""
    width = src.shape[1]
    for k in range(cuda.grid(1), src.shape[0] * width, cuda.gridsize(1)):
        i = k // width
        j = k - i * width
        dst[rows[i], j] = src[i, j]


@cuda.jit
def _fill_column(a, column, value):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i, column] = value


def _launch_size(elements):
    return max(1, min(COPY_MAX_BLOCKS, math.ceil(elements / COPY_THREADS))), COPY_THREADS


def _as_rows(array):
    """An ``(N, ...)`` C-contiguous device array as ``(N, R)``, the same memory."""
    return array.reshape(array.shape[0], int(np.prod(array.shape[1:], dtype=np.int64)))


def gather_rows(array, d_rows):
    """A new device array of ``array``'s rows ``d_rows`` (a device int64 array)."""
    out = cuda.device_array((len(d_rows),) + array.shape[1:], array.dtype)
    src, dst = _as_rows(array), _as_rows(out)
    if dst.size:
        _gather[_launch_size(dst.size)](src, d_rows, dst)
    return out


def scatter_rows(array, d_rows, into):
    """``into[d_rows] = array`` on the device."""
    src, dst = _as_rows(array), _as_rows(into)
    if src.size:
        _scatter[_launch_size(src.size)](src, d_rows, dst)


class DeviceBatch:
    """The inputs (:class:`abi.Inputs`) and state (:class:`abi.State`) of a batch on the
    device, and the rows a launch covers.

    ``full`` is the whole state on the device; ``inputs`` and ``state`` what a launch
    gets: the full arrays, or after :meth:`compact` packed rows, the problems ``rows``
    of the batch (``None``: all). The host ``istate`` and ``fstate`` are kept current
    for the launched rows by :meth:`fetch`; the rest of the host state by
    :meth:`finish`.
    """

    def __init__(self, inputs, state):
        # Workaround: the cuda gufunc cannot broadcast inputs (numba/numba#5640; the
        # simulator fails on it too), so every input goes to the device at full size.
        self.inputs = type(inputs)(*(cuda.to_device(np.ascontiguousarray(a)) for a in inputs))
        self.host = state
        self.full = type(state)(*(cuda.to_device(a) for a in state))
        self.state = self.full
        self.rows = None
        self._d_rows = None
        self._chunk_steps = None
        self.compactions = 0

    @property
    def n_launched(self):
        return len(self.state.istate)

    def launch(self, module):
        module.dop853_kernel(*abi.kernel_arguments(self.inputs, self.state))

    def set_chunk_steps(self, steps):
        """Steps per problem and launch (``icfg``'s chunk length), set on the device."""
        if steps != self._chunk_steps:
            icfg = self.inputs.icfg
            _fill_column[_launch_size(len(icfg))](icfg, core.IC_CHUNK_STEPS, steps)
            self._chunk_steps = steps

    def fetch(self, name):
        """Copy the launched rows of the state array ``name`` to the host's (waits for
        the kernel)."""
        host, device = getattr(self.host, name), getattr(self.state, name)
        if self.rows is None:
            device.copy_to_host(host)
        else:
            host[self.rows] = device.copy_to_host()

    def compact(self):
        """Pack the open problems (by the host ``istate``: :meth:`fetch` it first) when
        the rule of :data:`COMPACT_SHARE` says so; True if it did."""
        launched = self.host.istate if self.rows is None else self.host.istate[self.rows]
        open_rows = np.flatnonzero(unfinished(launched[:, core.IS_STATUS]))
        if not COMPACTION or not 0 < len(open_rows) <= COMPACT_SHARE * len(launched):
            return False
        d_open = cuda.to_device(open_rows.astype(np.int64))
        inputs = type(self.inputs)(*(gather_rows(a, d_open) for a in self.inputs))
        state = type(self.state)(*(gather_rows(a, d_open) for a in self.state))
        self._scatter_back()
        self.rows = open_rows if self.rows is None else self.rows[open_rows]
        self._d_rows = cuda.to_device(self.rows)
        self.inputs, self.state = inputs, state
        self.compactions += 1
        return True

    def _scatter_back(self):
        """Put the packed rows' state back into the full arrays."""
        if self.rows is not None:
            for packed, full in zip(self.state, self.full):
                scatter_rows(packed, self._d_rows, full)

    def finish(self):
        """Copy the whole state to the host: the packed rows put back first."""
        self._scatter_back()
        for host, device in zip(self.host, self.full):
            device.copy_to_host(host)
