"""``solve_batch`` on Dask arrays: one task per block of problems, lazy results.

Any per-problem argument of :func:`batchivp.solve_batch` may be a Dask array. The
batch axis is cut as ``y0`` is (else as the first per-problem Dask argument), every
per-problem argument is cut the same way, and shared ones (a scalar ``rtol``, a
``(k,)`` ``t_eval``) go whole to every block. One task solves a block with the
ordinary in-process ``solve_batch`` on the worker that holds it, so each problem's
result is bitwise that of a local solve; the result's arrays are read from that task's
output, so computing them together solves each block once.

Shapes and dtypes are checked when the graph is built; values (NaN in ``y0``, a
``t_eval`` outside the span) when a block is computed. The target is resolved where
``solve_batch`` is called, but for ``"cuda"`` (see :func:`_block_target`). Dask is
imported only when a Dask array was passed.
"""

import dataclasses
import functools
import string

import numpy as np

from . import arguments, sensitivity, summaries
from .arguments import any_dask, is_dask


def solve_batch_dask(solve, fun, per_problem, options):
    """The fields of the lazy :class:`BatchResult` of ``solve(fun, **per_problem,
    **options)``.

    ``per_problem`` holds the arguments that may be per problem (``y0``, ``t_span``,
    ...), ``options`` the others; ``solve`` is ``solve_batch``, run on each block.
    """
    import dask.array as da

    n_prob, ndim = _check_shapes(fun, per_problem, options)
    options = dict(options, target=_block_target(options["target"]))
    event_slots, _ = arguments.events(options["events"])
    n_stored = arguments.stored_events(options["max_events"], event_slots)
    real = np.dtype(arguments.precision(options.get("dtype", np.float64)).real)  # y's dtype

    rows, shared, blocked, indices = _partition(per_problem, n_prob, ndim)
    block = functools.partial(_solve_block, solve, fun, tuple(blocked), {**shared, **options})
    solved = da.blockwise(block, "i", *indices, concatenate=True, adjust_chunks={"i": 1},
                          dtype=object, meta=np.empty((0,), dtype=object),
                          token="batchivp-solve_batch")

    def field(name, trailing=(), dtype=float, index=None):
        return solved.map_blocks(
            _take, name, index, chunks=(rows,) + tuple((s,) for s in trailing),
            new_axis=list(range(1, 1 + len(trailing))) or None, dtype=dtype,
            meta=np.empty((0,) * (1 + len(trailing)), dtype=dtype), token=f"batchivp-{name}")

    t_eval = per_problem["t_eval"]
    if t_eval is None:
        t, y = None, None
    else:
        t = blocked.get("t_eval", t_eval)
        t = t.astype(float) if is_dask(t) else arguments.t_eval_out(t)
        y = field("y", (ndim, np.shape(t_eval)[-1]), dtype=real) if options["save_y"] else None
    events = {}
    if event_slots:
        events = dict(
            t_events=[field("t_events", (n_stored,), index=e) for e in range(len(event_slots))],
            y_events=[field("y_events", (n_stored, ndim), dtype=real, index=e)
                      for e in range(len(event_slots))],
            n_events=field("n_events", (len(event_slots),), dtype=np.int64))
    names = summaries.statistics(options["summarize"])
    if names:
        width = ndim + len(arguments.observables(options["observables"]))
        events["summary"] = {
            name: field("summary", (width,), np.int64 if name == "sign_changes" else float,
                        index=name) for name in names}
    if options["sensitivity"] is not None:
        events.update(_sensitivity_fields(field, options["sensitivity"], per_problem["params"],
                                          ndim, t_eval, len(event_slots), n_stored))
    return dict(
        t=t, y=y, t_final=field("t_final"), y_final=field("y_final", (ndim,), dtype=real),
        status=field("status", dtype=np.int64), nfev=field("nfev", dtype=np.int64),
        nstep=field("nstep", dtype=np.int64), nreject=field("nreject", dtype=np.int64),
        target=options["target"], **events)


def _sensitivity_fields(field, mode, params, ndim, t_eval, n_slots, n_stored):
    """The lazy sensitivity fields (:mod:`batchivp.sensitivity`), None where not asked."""
    m = 1 if params is None or np.ndim(params) == 0 else np.shape(params)[-1]
    columns = sensitivity.Columns.of(mode, ndim, m, params is not None)
    fields = {}
    for suffix, width, on in (("dy0", ndim, columns.y0), ("dp", m, columns.params)):
        fields[f"dyf_{suffix}"] = field(f"dyf_{suffix}", (ndim, width)) if on else None
        fields[f"dy_{suffix}"] = (field(f"dy_{suffix}", (ndim, width, np.shape(t_eval)[-1]))
                                  if on and t_eval is not None else None)
        if n_slots:
            fields[f"dt_events_{suffix}"] = [
                field(f"dt_events_{suffix}", (n_stored, width), index=e)
                for e in range(n_slots)] if on else None
    return fields


def _partition(per_problem, n_prob, ndim):
    """How the arguments reach the blocks: ``(rows, shared, blocked, indices)``.

    ``rows``: the block sizes along the batch axis. ``shared``: NumPy values passed
    whole to every block. ``blocked``: Dask arrays, the per-problem ones cut into
    ``rows`` (other axes whole), the shared ones in one chunk; ``indices``: them with
    their ``blockwise`` indices (``i`` the batch axis, a letter of their own for
    each other axis, so one block of each comes whole).
    """
    import dask.array as da

    rows = next((a.chunks[0] for name, a in per_problem.items()
                 if is_dask(a) and arguments.is_per_problem(name, a.shape, n_prob, ndim)),
                (n_prob,))
    shared, blocked, indices = {}, {}, []
    letters = iter(string.ascii_lowercase.replace("i", ""))
    for name, value in per_problem.items():
        if value is None:
            continue
        if arguments.is_per_problem(name, np.shape(value), n_prob, ndim):
            chunks = (rows,) + tuple((s,) for s in np.shape(value)[1:])
            value = value.rechunk(chunks) if is_dask(value) else da.from_array(
                np.asarray(value), chunks=chunks)
            index = "i" + "".join(next(letters) for _ in value.shape[1:])
        elif is_dask(value):
            value = value.rechunk(-1)
            index = "".join(next(letters) for _ in value.shape)
        else:
            shared[name] = value
            continue
        blocked[name] = value
        indices += [value, index]
    return rows, shared, blocked, indices


def _block_target(target):
    """The target of the blocks, resolved here (``None`` and ``"auto"`` by this
    machine's hardware), except that ``"cuda"`` is checked where a block runs: the
    workers may have GPUs that this machine lacks."""
    from . import targets

    if isinstance(target, str) and target.strip().lower() == "cuda":
        return "cuda"
    return targets.resolve_target(target)


def _solve_block(solve, fun, names, shared, *blocks):
    """One block of problems solved in this process, as a one-element object array."""
    kwargs = dict(shared, **dict(zip(names, blocks)))
    result = solve(fun, kwargs.pop("t_span"), kwargs.pop("y0"), **kwargs)
    if result.interrupted:
        # Ctrl-C reached a block solved in the main thread (Dask's synchronous
        # scheduler): abort the computation as an ordinary Ctrl-C would.
        raise KeyboardInterrupt
    out = np.empty(1, dtype=object)
    out[0] = result
    return out


def _take(block, name, index):
    value = getattr(block[0], name)
    return value if index is None else value[index]


def compute_result(result, **kwargs):
    """``result`` with all its Dask arrays computed in one ``dask.compute``."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    lazy = [v for value in fields.values()
            for v in (value if isinstance(value, list) else [value])]
    if not any_dask(lazy):
        return result
    import dask

    (computed,) = dask.compute(fields, **kwargs)
    return dataclasses.replace(result, **computed)


def _check_shapes(fun, per_problem, options):
    """Everything about the arguments that needs no values: dtypes, shapes (the rules of
    ``arguments.py``), options. Returns ``(N, n)``."""
    y0 = per_problem["y0"]
    if is_dask(y0) and any(np.isnan(c) for c in y0.chunks[0]):
        raise ValueError("y0 has unknown chunk sizes along the batch axis; call "
                         "y0.compute_chunk_sizes() first")
    for name, value in per_problem.items():
        if value is not None and name != "fun_index":
            dtype = value.dtype if is_dask(value) else np.asarray(value).dtype
            arguments.check_float_dtype(dtype, name)
    n_prob, ndim = arguments.y0_shape(np.shape(y0))
    fun_index = per_problem["fun_index"]
    arguments.functions(fun, np.empty(0, fun_index.dtype) if is_dask(fun_index) else fun_index)
    arguments.positive_int(options["max_steps"], "max_steps", 1)
    arguments.positive_int(options["chunk_steps"], "chunk_steps", 1)
    for name, value in per_problem.items():
        if value is not None:
            arguments.SHAPE_RULES[name](np.shape(value), n_prob, ndim)
    return n_prob, ndim
