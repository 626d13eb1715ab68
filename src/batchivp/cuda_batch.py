"""A batch on the GPU: its arrays on the device, launches over the unfinished problems
packed together (compaction) in a layout where neighbouring threads touch neighbouring
addresses (coalesced), and the copies back to the host.

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

Layout: the host's arrays hold a problem per row, ``(N, ...)`` C-contiguous, so the
``j``-th element of neighbouring problems lies a row apart and a warp reading ``y[j]``
touches 32 rows. With :data:`BATCH_INNERMOST`, the launched arrays are stored ``(...,
M)``, the problem index innermost, and the kernel gets the ``(M, ...)`` strided view
of them: the gufunc is compiled for strided (``A``) arrays (its signature's
``float64[:]``), so the same compiled kernel reads a problem's row at a stride of
``M`` elements, and a warp's 32 reads of ``y[j]`` are 32 neighbouring addresses. The
full arrays stay in rows: the first gather (all rows) and the scatters back transpose
on the device, and the host copies rows as before, with no transposition of its own.
The device then holds the state twice (the full arrays and the launched copy) and the
inputs once (their full copies are dropped after the first gather).
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
# Launched arrays stored with the problem index innermost (the module's docstring);
# False: in rows, as on the host (tests compare both).
BATCH_INNERMOST = True
# Launch size of the gather and scatter kernels: a grid-stride loop over the elements,
# so any size of grid covers any array. The simulator runs a Python thread per GPU
# thread (a millisecond or more each): there one block of two threads (still striding)
# keeps the copies of a tiny batch cheap.
COPY_THREADS, COPY_MAX_BLOCKS = (2, 1) if targets.simulator_enabled() else (256, 4096)


# Compiled for each array type and layout at first use. (Module-level: the simulator
# gives a kernel its own ``cuda`` by replacing the global of that name.) They see every
# array as ``(rows, R)``, ``R`` its elements per problem, with any strides; ``by_row``
# orders the loop so that neighbouring threads take neighbouring rows (for a side
# stored problem-innermost) rather than neighbouring elements of a row.
@cuda.jit(device=True, inline=True)
def _element(k, m, width, by_row):
    """The ``k``-th element ``(i, j)`` of an ``(m, width)`` array in the copy's order."""
    if by_row:
        j = k // m
        return k - j * m, j
    i = k // width
    return i, k - i * width


@cuda.jit
def _gather(src, rows, dst, by_row):
    """``dst[i, :] = src[rows[i], :]``."""
    m, width = dst.shape
    for k in range(cuda.grid(1), m * width, cuda.gridsize(1)):
        i, j = _element(k, m, width, by_row)
        dst[i, j] = src[rows[i], j]


@cuda.jit
def _scatter(src, rows, dst, by_row):
    """``dst[rows[i], :] = src[i, :]``."""
    m, width = src.shape
    for k in range(cuda.grid(1), m * width, cuda.gridsize(1)):
        i, j = _element(k, m, width, by_row)
        dst[rows[i], j] = src[i, j]


@cuda.jit
def _fill_column(a, column, value):
    """``a[:, column] = value`` for an ``(M, R)`` view."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i, column] = value


def _launch_size(elements):
    return max(1, min(COPY_MAX_BLOCKS, math.ceil(elements / COPY_THREADS))), COPY_THREADS


def _batch_first(storage):
    """The ``(M, ...)`` view of an array stored ``(..., M)`` (the same memory).

    numba-cuda's own ``transpose`` copies (and only 2-D arrays), so the view is built
    from the storage's pointer with the strides permuted; the simulator's arrays are
    NumPy's, whose ``transpose`` is a view."""
    axes = (storage.ndim - 1, *range(storage.ndim - 1))
    if targets.simulator_enabled():
        return storage.transpose(axes)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(tuple(storage.shape[a] for a in axes),
                         tuple(storage.strides[a] for a in axes), storage.dtype,
                         gpu_data=storage.gpu_data)


class Layout:
    """Where a problem's elements lie in a device array of ``M`` problems: in a row,
    ``(M, ...)`` (``innermost=False``), or the problem index innermost, ``(..., M)``."""

    def __init__(self, innermost):
        self.innermost = innermost

    def empty(self, m, tail, dtype):
        return cuda.device_array((*tail, m) if self.innermost else (m, *tail), dtype)

    def tail(self, storage):
        """The per-problem dimensions of ``storage``."""
        shape = tuple(storage.shape)  # the simulator's shapes take no negative index
        return shape[:-1] if self.innermost else shape[1:]

    def kernel_view(self, storage):
        """``storage`` as the kernel takes it, ``(M, ...)``."""
        return _batch_first(storage) if self.innermost else storage

    def rows_view(self, storage):
        """``storage`` as ``(M, R)``, for the copy kernels."""
        width = int(np.prod(self.tail(storage), dtype=np.int64))
        if self.innermost:
            return _batch_first(storage.reshape(width, tuple(storage.shape)[-1]))
        return storage.reshape(storage.shape[0], width)

    def to_host(self, storage):
        """A host copy of ``storage`` as ``(M, ...)``."""
        host = storage.copy_to_host()
        return np.moveaxis(host, -1, 0) if self.innermost else host


ROWS = Layout(False)


def gather_rows(storage, layout, d_rows, into):
    """New device storage, in the layout ``into``, of the rows ``d_rows`` (device int64)
    of ``storage`` (in ``layout``)."""
    out = into.empty(len(d_rows), layout.tail(storage), storage.dtype)
    src, dst = layout.rows_view(storage), into.rows_view(out)
    if dst.size:
        _gather[_launch_size(dst.size)](src, d_rows, dst, into.innermost)
    return out


def scatter_rows(storage, layout, d_rows, full):
    """``full[d_rows] = storage`` on the device (``full`` in rows, ``storage`` in
    ``layout``)."""
    src, dst = layout.rows_view(storage), ROWS.rows_view(full)
    if src.size:
        _scatter[_launch_size(src.size)](src, d_rows, dst, layout.innermost)


class DeviceBatch:
    """The inputs (:class:`abi.Inputs`) and state (:class:`abi.State`) of a batch on the
    device, and the rows a launch covers.

    ``full`` is the whole state on the device, in rows; ``inputs`` and ``state`` what
    a launch gets (the kernel's views): the full arrays, or packed rows, the problems
    ``rows`` of the batch (``None``: the full arrays), stored in ``layout``. The host
    ``istate`` and ``fstate`` are kept current for the launched rows by :meth:`fetch`
    (the fields it is asked for); the rest of the host state by :meth:`finish`.
    """

    def __init__(self, inputs, state):
        # Workaround: the cuda gufunc cannot broadcast inputs (numba/numba#5640; the
        # simulator fails on it too), so every input goes to the device at full size.
        full_inputs = [cuda.to_device(np.ascontiguousarray(a)) for a in inputs]
        self.host = state
        self.full = type(state)(*(cuda.to_device(a) for a in state))
        self.layout = Layout(BATCH_INNERMOST)
        self.rows = None
        self._d_rows = None
        self._chunk_steps = None
        self.compactions = 0
        self._set(full_inputs, list(self.full))
        if self.layout.innermost:  # every row, transposed on the device
            self._pack(np.arange(len(state.istate)))

    def _set(self, inputs, state):
        """Launch these storages (lists in :class:`abi.Inputs` and :class:`abi.State`
        order) from now on."""
        self._storage = (inputs, state)
        view = self._launched_layout.kernel_view
        self.inputs, self.state = abi.Inputs(*map(view, inputs)), abi.State(*map(view, state))

    @property
    def _launched_layout(self):
        return ROWS if self.rows is None else self.layout

    @property
    def n_launched(self):
        return len(self.state.istate)

    def launch(self, module):
        module.dop853_kernel(*abi.kernel_arguments(self.inputs, self.state))

    def set_chunk_steps(self, steps):
        """Steps per problem and launch (``icfg``'s chunk length), set on the device."""
        if steps != self._chunk_steps:
            icfg = self._launched_layout.rows_view(
                self._storage[0][abi.Inputs._fields.index("icfg")])
            _fill_column[_launch_size(len(icfg))](icfg, core.IC_CHUNK_STEPS, steps)
            self._chunk_steps = steps

    def fetch(self, name, fields):
        """Copy the elements ``fields`` of the launched rows of the state array ``name``
        (``fstate`` or ``istate``) to the host's (waits for the kernel). Stored
        problem-innermost, each field's values are contiguous and only those cross the
        bus; stored in rows, the whole rows do."""
        host = getattr(self.host, name)
        storage = self._storage[1][abi.State._fields.index(name)]
        if self.rows is None:
            storage.copy_to_host(host)
        elif self.layout.innermost:
            for field in fields:
                host[self._host_rows, field] = storage[field].copy_to_host()
        else:
            host[self._host_rows] = storage.copy_to_host()

    @property
    def _host_rows(self):
        """The launched rows as an index of the host arrays: a slice when all (no
        copy), else ``rows``."""
        every = self.rows is None or len(self.rows) == len(self.host.istate)
        return slice(None) if every else self.rows

    def compact(self):
        """Pack the open problems (by the host ``istate``: :meth:`fetch` its status
        first) when the rule of :data:`COMPACT_SHARE` says so; True if it did."""
        status = self.host.istate[self._host_rows, core.IS_STATUS]
        open_rows = np.flatnonzero(unfinished(status))
        if not COMPACTION or not 0 < len(open_rows) <= COMPACT_SHARE * len(status):
            return False
        self._pack(open_rows)
        self.compactions += 1
        return True

    def _pack(self, local_rows):
        """Launch the rows ``local_rows`` of the launched arrays from now on, packed in
        :attr:`layout`; the state of those launched until now goes back to the full
        arrays."""
        d_local = cuda.to_device(local_rows.astype(np.int64))
        layout = self._launched_layout
        inputs, state = ([gather_rows(a, layout, d_local, self.layout) for a in arrays]
                         for arrays in self._storage)
        self._scatter_back()
        self.rows = local_rows if self.rows is None else self.rows[local_rows]
        self._d_rows = cuda.to_device(self.rows)
        self._set(inputs, state)

    def _scatter_back(self):
        """Put the packed rows' state back into the full arrays."""
        if self.rows is not None:
            for packed, full in zip(self._storage[1], self.full):
                scatter_rows(packed, self.layout, self._d_rows, full)

    def finish(self):
        """Copy the whole state to the host: the packed rows put back first."""
        self._scatter_back()
        for host, device in zip(self.host, self.full):
            device.copy_to_host(host)
