"""``solve_batch(..., out=)``: results streamed to a Zarr store, block by block, resumable.

The batch is solved in blocks of rows, each block's kernel state about
``BLOCK_BYTES``; each finished block's results (every array field of
:class:`~batchivp.batch.BatchResult`, lists and dicts of arrays included) are written
to the store, then the block is marked done. Memory stays bounded by one block,
whatever ``N``. A run stopped by Ctrl-C, a crash or a killed process leaves the
blocks marked done complete; the same call with the same ``out`` solves only the
others. Each problem's result does not depend on the block it was solved in (the
kernel's state is resumable bit for bit, docs/architecture.md point 5), so the
result equals an uninterrupted in-memory solve bitwise.

Layout of the store (a Zarr v3 group):

- ``attrs["batchivp"]``: the store's format, the call's fingerprint (a hash of the
  arguments that determine the results), ``N``, the block's rows, the target, and
  once known ``fields``: each result field and its kind (an array, a list of
  arrays, a dict of arrays);
- one array per result field, ``(N, ...)``, chunked as the blocks (one chunk per
  block along the batch axis, the other axes whole), so that the writers of two
  blocks never share a chunk; a list field is a group of arrays ``0, 1, ...``, a dict
  field a group of arrays named by its keys; ``t`` when shared by all problems is one
  ``(k,)`` array written at the start;
- ``_done``: one byte per block, its own chunk each, written after the block's data
  (a process killed while writing a block leaves it not done: it is solved again).

Ctrl-C stops the run after the kernel call under way (``host_loop.py``): the block
it belongs to is not written unless all its problems had finished, the blocks done
stay, and the result read from the store has the problems not written at status
``PENDING`` (NaN elsewhere), with a warning that says to call again with the same
``out``.

With Dask inputs one task per block solves it (the ordinary in-memory
``solve_batch``) and writes its rows itself; the blocks are those of the Dask path
(``dask_batch.py``: the first chunk's rows of ``y0``, else of the first per-problem
Dask argument; an irregular chunking is read across the blocks, still correct). The
store is then shared by the workers: a path all of them reach.

Zarr is imported only when ``out`` is given (``pip install batchivp[zarr]``).
"""

import dataclasses
import hashlib
import math
import os
import warnings

import numpy as np

from . import arguments, dask_batch, host_loop
from .arguments import any_dask, is_dask
from .status import Status, unfinished

# Kernel state (and inputs) of one block of a streamed run, in bytes: the block's rows
# follow from the bytes per row. BLOCK_ROWS, when set, overrides it (tests).
BLOCK_BYTES = 256 * 2**20
BLOCK_ROWS = None
# The result read from the store holds NumPy arrays up to this many bytes in all, the
# other fields as zarr.Array (read when indexed), so that it stays bounded too. The
# status is always read (BatchResult's methods compare it: a zarr.Array's == is not
# elementwise), then these fields, then the others in BatchResult's order.
IN_MEMORY_BYTES = 512 * 2**20
READ_FIRST = ("status", "n_events", "nfev", "nstep", "nreject", "t_final", "y_final")
FORMAT = 1  # of the store's layout; part of the fingerprint
ATTRS = "batchivp"
DONE = "_done"
# Options that change how a run goes, not its results: left out of the fingerprint.
NOT_IN_RESULTS = frozenset({"chunk_steps"})
# BatchResult fields that are not arrays over the batch.
NOT_STORED = frozenset({"target", "interrupted"})


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a store cuts ``n_prob`` problems into blocks of ``block_rows`` rows."""

    n_prob: int
    block_rows: int

    @property
    def n_blocks(self):
        return max(1, math.ceil(self.n_prob / self.block_rows))

    def rows(self, block):
        """The block's rows ``(lo, hi)``."""
        lo = block * self.block_rows
        return lo, min(self.n_prob, lo + self.block_rows)


def solve_to_store(solve, fun, per_problem, options, out, progress):
    """:func:`batchivp.solve_batch` with ``out``: the batch solved into the store
    ``out`` block by block (the missing blocks only when it holds this call already),
    returned as a :class:`~batchivp.batch.BatchResult` read from it.

    ``solve`` is ``solve_batch``; ``per_problem`` and ``options`` its arguments as
    ``solve_batch`` sorts them.
    """
    zarr = _import_zarr()
    store = _store(out)
    if any_dask(per_problem.values()):
        return _solve_dask(zarr, solve, fun, per_problem, options, store, out)
    from . import batch as batch_module

    # Errors first; the results need not fit in memory.
    batch = batch_module.validate(fun, **per_problem, **options, streamed=True)
    fingerprint = fingerprint_call(fun, per_problem, options, batch.target)
    group, layout = open_store(zarr, store, out, fingerprint, batch.n_prob,
                               lambda: block_rows(batch), batch.target)
    _solve_blocks(batch, group, layout, progress, adaptive=options["chunk_steps"] is None)
    return _finish(group, layout, batch.target, out, batch.n_stored)


def _import_zarr():
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is None or int(zarr.__version__.split(".")[0]) < 3:
        raise ImportError("solve_batch(out=...) writes a Zarr store, which needs the zarr "
                          "package, version 3 or later: pip install batchivp[zarr]")
    return zarr


def _store(out):
    """``out`` as zarr takes it: a path as a string, or the zarr store itself."""
    if isinstance(out, (str, os.PathLike)):
        return os.fspath(out)
    from zarr.abc.store import Store

    if isinstance(out, Store):
        return out
    raise TypeError(f"out must be a path (str or os.PathLike) or a zarr store, got "
                    f"{type(out).__name__} {out!r}")


def block_rows(batch):
    """Rows per block of a validated batch: its kernel state and inputs within
    ``BLOCK_BYTES`` (``BLOCK_ROWS`` when set)."""
    from . import abi
    from . import batch as batch_module

    if BLOCK_ROWS is not None:
        return int(BLOCK_ROWS)
    sizes = batch_module._sizes(batch)
    row = abi.state_bytes(1, sizes)
    for arg in abi.ARGUMENTS:
        if arg.role != abi.INPUT:
            continue
        value = getattr(batch, arg.name, None)
        if value is None:  # packed for the block (tcfg, icfg, ecfg)
            row += np.dtype(arg.dtype).itemsize * math.prod(sizes[d] for d in arg.dims)
        elif value.strides[0] != 0:  # a shared row (broadcast) is not the block's
            row += value[:1].nbytes
    return max(1, BLOCK_BYTES // row)


# ---- the store: opened or created, refused when it holds another call ----

def open_store(zarr, store, out, fingerprint, n_prob, default_rows, target):
    """The group of ``store`` for this call and its :class:`Layout`: created (blocks of
    ``default_rows()`` rows) if absent, else checked to hold this call (its
    fingerprint); a ``ValueError`` naming ``out`` otherwise."""
    group = _existing_group(zarr, store, out)
    if group is None:
        layout = Layout(n_prob, int(default_rows()))
        meta = dict(format=FORMAT, fingerprint=fingerprint, n_prob=n_prob,
                    block_rows=layout.block_rows, target=target)
        group = zarr.open_group(store, mode="a", attributes={ATTRS: meta})
    else:
        meta = group.attrs.get(ATTRS)
        if not isinstance(meta, dict) or "fingerprint" not in meta:
            raise ValueError(f"out={_name(out)} is a Zarr store that solve_batch did not "
                             "write; pass another out= path, or delete it")
        if meta["fingerprint"] != fingerprint:
            raise ValueError(
                f"out={_name(out)} holds the results of another solve_batch call "
                f"(N={meta.get('n_prob')}, target {meta.get('target')!r}, fingerprint "
                f"{meta['fingerprint'][:12]}; this call's is {fingerprint[:12]}): the "
                "arguments that determine the results differ. Pass another out= path for "
                f"this call, or delete {_name(out)} to solve this one there.")
        layout = Layout(int(meta["n_prob"]), int(meta["block_rows"]))
    # require: a process killed right after creating the group left it without.
    group.require_array(DONE, shape=(layout.n_blocks,), dtype="uint8", chunks=(1,),
                        fill_value=0)
    return group, layout


def _existing_group(zarr, store, out):
    """The group at ``store``, or None where there is nothing; a ``ValueError`` for
    something else (a file, a folder of other files, another Zarr node)."""
    if isinstance(store, str) and not os.path.isdir(store):
        if os.path.exists(store):
            raise ValueError(f"out={_name(out)} is a file, not a Zarr store of "
                             "solve_batch; pass another out= path, or delete it")
        return None
    try:
        return zarr.open_group(store, mode="r+")
    except FileNotFoundError:  # zarr's GroupNotFoundError included
        pass
    except (zarr.errors.BaseZarrError, ValueError) as exc:
        raise ValueError(f"out={_name(out)} cannot be opened as a Zarr group ({exc}); "
                         "pass another out= path, or delete it") from None
    if isinstance(store, str) and os.listdir(store):
        raise ValueError(f"out={_name(out)} is a folder of other files, not a Zarr store "
                         "of solve_batch; pass another out= path, or delete it")
    return None


def _name(out):
    return repr(os.fspath(out)) if isinstance(out, (str, os.PathLike)) else repr(out)


# ---- the call's fingerprint ----

def fingerprint_call(fun, per_problem, options, target):
    """A hex digest of what determines a call's results: the right-hand sides and
    events (their keys and settings), every per-problem argument's values (Dask
    arrays by their token), the options but ``NOT_IN_RESULTS``, the resolved target,
    batchivp's version and the store's format."""
    from . import __version__

    h = hashlib.blake2b(digest_size=20)
    _feed(h, ("batchivp stream", FORMAT, __version__, target))
    _feed(h, fun)
    _feed(h, per_problem)
    _feed(h, {k: v for k, v in options.items() if k not in NOT_IN_RESULTS and k != "target"})
    return h.hexdigest()


def _feed(h, value):
    """Add ``value`` to the hash ``h``, each kind tagged so that kinds never collide."""
    from .registry import EventFunction, UserFunction

    if isinstance(value, UserFunction):
        value = value.current()  # as the solve renders it
        h.update(f"<{value.kind} {value.key} {value.declared_n} {value.declared_n_params}"
                 .encode())
        if isinstance(value, EventFunction):
            h.update(f" {value.max_count()} {np.sign(value.direction)}".encode())
        h.update(b">")
    elif is_dask(value):
        from dask.base import tokenize

        h.update(f"<dask {tokenize(value)}>".encode())
    elif isinstance(value, dict):
        h.update(f"<dict {len(value)}".encode())
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
        h.update(b">")
    elif value is None or isinstance(value, (bool, str)):
        h.update(f"<{type(value).__name__} {value!r}>".encode())
    else:
        _feed_other(h, value)


def _feed_other(h, value):
    """Numbers and arrays by their dtype, shape and bytes; sequences item by item;
    anything else by its type and repr."""
    try:
        array = np.asarray(value)
    except Exception:  # a ragged sequence
        array = None
    if array is not None and array.dtype.kind in "biufcmM":
        _feed_array(h, array)
    elif isinstance(value, (list, tuple)):
        h.update(f"<seq {len(value)}".encode())
        for item in value:
            _feed(h, item)
        h.update(b">")
    else:
        h.update(f"<{type(value).__qualname__} {value!r}>".encode())


def _feed_array(h, array):
    """An array's dtype, shape and values; a broadcast axis (stride 0) by its first
    entry, so that a broadcast view costs no copy of its full size."""
    h.update(f"<array {array.dtype.str} {array.shape}".encode())
    if array.size == 0:
        return
    index = tuple(0 if stride == 0 else slice(None) for stride in array.strides)
    h.update(f" {[i == 0 for i in index]}>".encode())
    array = array[index]
    if array.ndim == 0:
        h.update(array.tobytes())
        return
    step = max(1, 2**24 // max(1, array[:1].nbytes))  # hashed by slices of rows
    for lo in range(0, len(array), step):
        h.update(np.ascontiguousarray(array[lo:lo + step]).data)


# ---- solving and writing blocks ----

def _solve_blocks(batch, group, layout, progress, adaptive):
    """Solve the blocks of ``batch`` not done in ``group``, writing each as it finishes,
    until Ctrl-C (the block it stops is not written unless all its problems finished)."""
    from . import batch as batch_module

    done = group[DONE][:]
    todo = [b for b in range(layout.n_blocks) if not done[b]]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=layout.n_blocks, initial=layout.n_blocks - len(todo),
                   desc="solve_batch", unit="block")
    interruptible = host_loop.sigint_interceptable()
    try:
        for block in todo:
            lo, hi = layout.rows(block)
            with warnings.catch_warnings():
                # Said once for the whole batch (_finish), not per block.
                warnings.filterwarnings("ignore", "solve_batch was interrupted", RuntimeWarning)
                warnings.filterwarnings("ignore", ".*more occurrences of an event",
                                        RuntimeWarning)
                result = batch_module._run(batch_module._rows(batch, lo, hi), False, adaptive)
            if result.interrupted and np.any(unfinished(result.status)):
                return
            if "fields" not in group.attrs[ATTRS]:
                create_fields(group, layout, result)
            write_block(group, layout, block, result)
            if bar is not None:
                bar.update()
            if result.interrupted:
                return
    except KeyboardInterrupt:  # Ctrl-C between two kernel calls (loading, writing)
        if not interruptible:
            raise
        return
    finally:
        if bar is not None:
            bar.close()


def result_fields(result):
    """The fields of a result (a ``BatchResult`` or the dict of one's fields) that the
    store holds: every array, list and dict of arrays over the batch, not None."""
    if dataclasses.is_dataclass(result):
        result = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return {name: value for name, value in result.items()
            if name not in NOT_STORED and value is not None}


def _flat(fields):
    """``(path, array)`` of each array of ``fields``: a list's items at ``name/0``,
    ``name/1``..., a dict's at ``name/key``."""
    for name, value in fields.items():
        if isinstance(value, (list, tuple)):
            yield from ((f"{name}/{i}", item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            yield from ((f"{name}/{key}", item) for key, item in value.items())
        else:
            yield name, value


def _kinds(fields):
    """How to rebuild each field from its arrays (``read_result``), as JSON."""
    return {name: ({"list": len(value)} if isinstance(value, (list, tuple)) else
                   {"dict": [str(k) for k in value]} if isinstance(value, dict) else "array")
            for name, value in fields.items()}


def _shared_t(path, value):
    """``t`` of ``(k,)``: the same for every problem, stored once."""
    return path == "t" and np.ndim(value) == 1


def create_fields(group, layout, result):
    """The store's arrays for the fields of ``result`` (a block's, or the lazy result of
    Dask inputs: shapes and dtypes only), chunked as the blocks; their list is written
    to the group's attributes last."""
    fields = result_fields(result)
    for path, value in _flat(fields):
        shared = _shared_t(path, value)
        shape = tuple(value.shape) if shared else (layout.n_prob, *value.shape[1:])
        chunks = shape if shared else (layout.block_rows, *shape[1:])
        parent, _, name = path.rpartition("/")
        node = group.require_group(parent) if parent else group
        array = node.require_array(name, shape=shape, dtype=value.dtype,
                                   chunks=tuple(max(1, c) for c in chunks),
                                   fill_value=_fill(path, np.dtype(value.dtype)),
                                   compressors=_compressor())
        if shared:
            array[...] = np.asarray(value)
    meta = dict(group.attrs[ATTRS])
    meta["fields"] = _kinds(fields)
    group.attrs[ATTRS] = meta


def _compressor():
    """Blosc's LZ4 on shuffled bytes: trajectories are floats that zarr's default (zstd
    on the bytes as they are) compresses less, at a fraction of the speed (see
    benchmarks/README.md, "Streamed output")."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def _fill(path, dtype):
    """What a row of a block not written reads as: status PENDING (not started), NaN,
    zero counts."""
    if path == "status":
        return int(Status.PENDING)
    return np.nan if dtype.kind in "fc" else 0


def write_block(group, layout, block, result):
    """Write a solved block's fields into its rows, then mark it done (last: a block
    whose writing was cut short is solved again)."""
    lo, hi = layout.rows(block)
    for path, value in _flat(result_fields(result)):
        if not _shared_t(path, value):
            group[path][lo:hi] = np.asarray(value)
    group[DONE][block] = 1


# ---- the result, read from the store ----

def _finish(group, layout, target, out, n_stored):
    """The result read from the store, with the warnings for the whole batch: Ctrl-C
    (how to resume) and full event buffers."""
    done = group[DONE][:].astype(bool)
    interrupted = not done.all()  # Ctrl-C during the last block, which finished: complete
    if interrupted:
        rows = sum(layout.rows(b)[1] - layout.rows(b)[0] for b in np.flatnonzero(done))
        warnings.warn(
            f"solve_batch was interrupted (Ctrl-C): {int(done.sum())} of {layout.n_blocks} "
            f"blocks ({rows} of {layout.n_prob} problems) are in out={_name(out)}; the "
            f"other problems read status {int(Status.PENDING)} (not started) and NaN. Call "
            f"solve_batch again with the same arguments and out={_name(out)} to solve the "
            "rest.", RuntimeWarning, stacklevel=4)
    result = read_result(group, layout, target, interrupted)
    _warn_overflow(result.n_events, layout, n_stored)
    return result


def read_result(group, layout, target, interrupted):
    """The :class:`~batchivp.batch.BatchResult` the store holds, its arrays read into
    memory while their total stays within ``IN_MEMORY_BYTES`` (``status`` always,
    then ``READ_FIRST``, then the others in field order), the others left as
    ``zarr.Array``. A store interrupted before its first block has only the status
    (all pending) and zero counts."""
    from .batch import BatchResult

    values = {f.name: None for f in dataclasses.fields(BatchResult)
              if f.default is dataclasses.MISSING and f.name not in NOT_STORED}
    kinds = group.attrs[ATTRS].get("fields")
    if kinds is None:
        values.update(status=np.full(layout.n_prob, int(Status.PENDING), dtype=np.int64),
                      **{name: np.zeros(layout.n_prob, dtype=np.int64)
                         for name in ("nfev", "nstep", "nreject")})
        kinds = {}
    for name, kind in kinds.items():
        if kind == "array":
            values[name] = group[name]
        elif "list" in kind:
            values[name] = [group[f"{name}/{i}"] for i in range(kind["list"])]
        else:
            values[name] = {key: group[f"{name}/{key}"] for key in kind["dict"]}
    budget = _Budget(IN_MEMORY_BYTES)
    for name in sorted(kinds, key=lambda k: READ_FIRST.index(k) if k in READ_FIRST else
                       len(READ_FIRST)):
        value = values[name]
        if isinstance(value, list):
            values[name] = [budget.read(a, name == "status") for a in value]
        elif isinstance(value, dict):
            values[name] = {k: budget.read(a, False) for k, a in value.items()}
        else:
            values[name] = budget.read(value, name == "status")
    return BatchResult(**values, target=target, interrupted=interrupted)


class _Budget:
    """Bytes left to read into memory."""

    def __init__(self, left):
        self.left = left

    def read(self, array, always):
        """``array`` (a ``zarr.Array``) read, if it fits (or ``always``), else itself."""
        if not always and array.nbytes > self.left:
            return array
        self.left -= array.nbytes
        return array[...]


def _warn_overflow(n_events, layout, n_stored):
    """Warn once if any problem had more occurrences of an event than are stored
    (``n_events`` read block by block: it may be a zarr.Array)."""
    if n_events is None:
        return
    over, most = 0, 0
    for block in range(layout.n_blocks):
        counts = np.asarray(n_events[slice(*layout.rows(block))])
        over += int(np.any(counts > n_stored, axis=1).sum())
        most = max(most, int(counts.max(initial=0)))
    if over:
        warnings.warn(
            f"{over} problem(s) had more occurrences of an event than "
            f"max_events={n_stored} holds; the first {n_stored} of each are kept and "
            f"n_events has the full counts. Pass max_events={most} to keep them all.",
            RuntimeWarning, stacklevel=5)


# ---- Dask inputs: a task per block, each writing its own rows ----

def _solve_dask(zarr, solve, fun, per_problem, options, store, out):
    """The blocks not done solved by Dask tasks (the current scheduler), each writing
    its rows; the result read from the store once they are all written."""
    import dask

    lazy = dask_batch.solve_batch_dask(solve, fun, per_problem, options)  # checks shapes
    fingerprint = fingerprint_call(fun, per_problem, options, lazy["target"])
    n_prob, ndim = arguments.y0_shape(np.shape(per_problem["y0"]))
    group, layout = open_store(zarr, store, out, fingerprint, n_prob,
                               lambda: lazy["status"].chunks[0][0], lazy["target"])
    if "fields" not in group.attrs[ATTRS]:
        create_fields(group, layout, lazy)
    done = group[DONE][:]
    options = dict(options, target=lazy["target"])
    tasks = [dask.delayed(_solve_and_write, pure=False)(
                 solve, fun, store, layout, block,
                 _block_arguments(per_problem, options, layout, block, ndim))
             for block in range(layout.n_blocks) if not done[block]]
    interruptible = host_loop.sigint_interceptable()
    try:
        dask.compute(*tasks)
    except KeyboardInterrupt:  # the blocks written are kept: _finish says how to resume
        if not interruptible:
            raise
    event_slots, _ = arguments.events(options["events"])
    n_stored = arguments.stored_events(options["max_events"], event_slots)
    return _finish(group, layout, lazy["target"], out, n_stored)


def _block_arguments(per_problem, options, layout, block, ndim):
    """``solve_batch``'s keyword arguments for one block: the per-problem ones cut to
    its rows (Dask arrays stay lazy: the task computes its slice), the others whole."""
    lo, hi = layout.rows(block)
    kwargs = dict(options)
    for name, value in per_problem.items():
        if value is not None and arguments.is_per_problem(name, np.shape(value),
                                                          layout.n_prob, ndim):
            value = (value if is_dask(value) else np.asarray(value))[lo:hi]
        kwargs[name] = value
    return kwargs


def _solve_and_write(solve, fun, store, layout, block, kwargs):
    """One block solved in this process (a Dask task) and written to the store."""
    kwargs = dict(kwargs)
    result = solve(fun, kwargs.pop("t_span"), kwargs.pop("y0"), **kwargs)
    if result.interrupted:
        # Ctrl-C reached a block solved in the main thread (Dask's synchronous
        # scheduler): abort the computation as an ordinary Ctrl-C would.
        raise KeyboardInterrupt
    write_block(_import_zarr().open_group(store, mode="r+"), layout, block, result)
