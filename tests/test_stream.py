"""solve_batch(out=): results streamed to a Zarr store, resumable.

The oracle is the same batch solved in memory without ``out``: every array of the
result read from the store, NaN positions included, must be equal, whether the run
went through at once, was stopped by Ctrl-C, or its process was killed (SIGKILL)
mid-way and the call repeated.
"""

import dataclasses
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import batchivp as bi
from batchivp import batch, host_loop, models, stream, targets

zarr = pytest.importorskip("zarr", minversion="3")


@bi.event(terminal=3)
def stream_x_crossing(t, y, p):
    """x = 0: a Lorenz trajectory switching wings (stops at the third)."""
    return y[0]


@bi.observable
def stream_radius(t, y, p):
    return math.sqrt(y[0] * y[0] + y[1] * y[1])


def lorenz_batch(n, t_end=4.0):
    rho = np.linspace(15.0, 30.0, n)
    params = np.column_stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)])
    y0 = np.column_stack([np.linspace(-2.0, 2.0, n), np.ones(n), np.full(n, 20.0)])
    t_span = np.column_stack([np.zeros(n), np.linspace(1.0, t_end, n)])
    return t_span, y0, params


def assert_bitwise_equal(res, ref):
    """Every field of BatchResult equal (arrays read whole from a zarr.Array)."""
    assert not res.interrupted and res.target == ref.target
    for field in dataclasses.fields(ref):
        expected, got = getattr(ref, field.name), getattr(res, field.name)
        if isinstance(expected, list):
            assert len(got) == len(expected), field.name
            pairs = zip(got, expected)
        elif isinstance(expected, dict):
            assert got.keys() == expected.keys(), field.name
            pairs = ((got[k], expected[k]) for k in expected)
        elif isinstance(expected, np.ndarray):
            pairs = [(got, expected)]
        else:
            assert got == expected, field.name
            continue
        for a, b in pairs:
            a = np.asarray(a)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), field.name


@pytest.fixture
def count_blocks(monkeypatch):
    """The rows of each kernel run (a block, or a whole in-memory batch), in order."""
    rows = []
    original = batch._run

    def run(one_block, *args):
        rows.append(one_block.n_prob)
        return original(one_block, *args)

    monkeypatch.setattr(batch, "_run", run)
    return rows


@pytest.mark.filterwarnings("ignore:.*max_events=2 holds")
def test_streamed_equals_in_memory(target, tmp_path, monkeypatch, count_blocks):
    """Blocks of 7 rows, events overflowing their buffers, a (k,) t_eval, summaries (a
    dict field): each array bitwise the in-memory one, read as zarr.Array
    (IN_MEMORY_BYTES = 0) and as NumPy; the second call with the same out= solves
    nothing."""
    n = 6 if target == "cuda" else 40
    t_span, y0, params = lorenz_batch(n)
    kw = dict(params=params, t_eval=np.linspace(0.0, 0.5, 5), events=[stream_x_crossing],
              max_events=2, rtol=1e-6, target=target, observables=stream_radius,
              summarize=("max", "argmin", "sign_changes"))
    ref = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    assert ref.events_overflowed.any() and set(ref.status) == {0, 1}
    count_blocks.clear()
    monkeypatch.setattr(stream, "BLOCK_ROWS", 4 if target == "cuda" else 7)
    monkeypatch.setattr(stream, "IN_MEMORY_BYTES", 0)
    with pytest.warns(RuntimeWarning, match="max_events=2 holds"):
        res = bi.solve_batch(models.lorenz, t_span, y0, out=tmp_path / "run.zarr", **kw)
    assert isinstance(res.y, zarr.Array) and res.y.chunks == (stream.BLOCK_ROWS, 3, 5)
    assert isinstance(res.summary["max"], zarr.Array) and res.summary["max"].shape == (n, 4)
    assert isinstance(res.status, np.ndarray)  # always: BatchResult's methods compare it
    assert_bitwise_equal(res, ref)
    solved = len(count_blocks)
    assert solved == -(-n // stream.BLOCK_ROWS)
    monkeypatch.setattr(stream, "IN_MEMORY_BYTES", 2**20)
    again = bi.solve_batch(models.lorenz, t_span, y0, out=str(tmp_path / "run.zarr"), **kw)
    assert len(count_blocks) == solved and isinstance(again.y, np.ndarray)
    assert_bitwise_equal(again, ref)


# The child solves into the store; at block STALL it writes garbage into some of the
# block's rows, says so and waits: killed there, mid-write, its block is not done.
CHILD = """
import sys, time
import numpy as np
import batchivp as bi
from batchivp import models, stream

out, data, rows, stall, target = sys.argv[1:]
stream.BLOCK_ROWS = int(rows)
original = stream.write_block

def write_block(group, layout, block, result):
    if block == int(stall):
        lo, hi = layout.rows(block)
        group["y"][lo:hi] = -1.0
        group["status"][lo:hi] = 0
        print("stalled", flush=True)
        time.sleep(600)
    original(group, layout, block, result)

stream.write_block = write_block
data = np.load(data)
bi.solve_batch(models.lorenz, data["t_span"], data["y0"], params=data["params"],
               t_eval=data["t_eval"], rtol=1e-8, target=target, out=out)
"""


def test_killed_mid_write_then_resumed(target, tmp_path, count_blocks):
    """A child process solving into the store is killed (SIGKILL) while writing its
    third block; the same call here solves the blocks not marked done (the third
    too) and gives the uninterrupted in-memory result bitwise."""
    n, rows, stall = (4, 1, 2) if target == "cuda" else (12, 3, 2)
    t_span, y0, params = lorenz_batch(n)
    t_eval = np.linspace(0.0, 1.0, 6)
    ref = bi.solve_batch(models.lorenz, t_span, y0, params=params, t_eval=t_eval, rtol=1e-8,
                         target=target)
    count_blocks.clear()
    np.savez(tmp_path / "data.npz", t_span=t_span, y0=y0, params=params, t_eval=t_eval)
    (tmp_path / "child.py").write_text(CHILD)
    out = tmp_path / "run.zarr"
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "child.py"), str(out), str(tmp_path / "data.npz"),
         str(rows), str(stall), target], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        # Blocks until the child stalls (or exits: then its error is the message).
        stalled = any(line == "stalled\n" for line in child.stdout)
        assert stalled, child.communicate(timeout=60)[1][-3000:]
        assert zarr.open_array(out / "_done", mode="r")[:].tolist() == [1, 1, 0, 0]
    finally:
        child.kill()  # SIGKILL
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    res = bi.solve_batch(models.lorenz, t_span, y0, params=params, t_eval=t_eval, rtol=1e-8,
                         target=target, out=out)
    assert count_blocks == [rows, rows]  # the two blocks not done, the stalled one too
    assert_bitwise_equal(res, ref)


def test_ctrl_c_keeps_the_blocks_done_and_resumes(tmp_path, monkeypatch, count_blocks):
    """Ctrl-C in the second block's first kernel call: the first block is in the store,
    the second not (its problems unfinished); the warning says how to resume, and the
    call repeated (another chunk_steps: not part of the call's identity) completes it."""
    if not host_loop.sigint_interceptable():
        pytest.skip("SIGINT is not Python's default handler here")
    t_span, y0, params = lorenz_batch(12)
    kw = dict(params=params, t_eval=[0.0, 0.5], target="cpu")
    ref = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    count_blocks.clear()
    monkeypatch.setattr(stream, "BLOCK_ROWS", 5)
    original = host_loop.WholeBatch.record

    def record(self, seconds):
        original(self, seconds)
        if len(count_blocks) == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(host_loop.WholeBatch, "record", record)
    out = tmp_path / "run.zarr"
    with pytest.warns(RuntimeWarning, match=r"1 of 3 blocks \(5 of 12 problems\).*same "
                                            r"arguments and out="):
        res = bi.solve_batch(models.lorenz, t_span, y0, out=out, chunk_steps=20, **kw)
    assert res.interrupted and count_blocks == [5, 5]
    np.testing.assert_array_equal(res.status[:5], ref.status[:5])
    assert np.all(res.status[5:] == bi.Status.PENDING) and np.isnan(res.y[5:]).all()
    monkeypatch.setattr(host_loop.WholeBatch, "record", original)
    assert_bitwise_equal(bi.solve_batch(models.lorenz, t_span, y0, out=out, **kw), ref)
    assert count_blocks == [5, 5, 5, 2]


def test_a_store_of_another_call_is_refused(tmp_path, monkeypatch):
    """Another call's store, a folder of other files, a file, a missing zarr: refused
    before anything compiles, each error naming out= and the way forward."""
    t_span, y0, params = lorenz_batch(3)
    out = tmp_path / "run.zarr"
    bi.solve_batch(models.lorenz, t_span, y0, params=params, target="cpu", out=out)
    from batchivp import render

    def load_module(*args, **kwargs):
        pytest.fail("the call was not refused before compiling")

    monkeypatch.setattr(render, "load_module", load_module)
    other = dict(params=params * 1.001, target="cpu")
    with pytest.raises(ValueError, match=r"out='.*run.zarr' holds the results of another "
                                         r"solve_batch call .*another out= path.* delete"):
        bi.solve_batch(models.lorenz, t_span, y0, out=out, **other)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    (tmp_path / "file").write_text("mine")
    for path in (tmp_path / "notes", tmp_path / "file"):
        with pytest.raises(ValueError, match=r"out=.* another out= path, or delete it"):
            bi.solve_batch(models.lorenz, t_span, y0, out=path, **other)
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"
    with pytest.raises(TypeError, match="out must be a path"):
        bi.solve_batch(models.lorenz, t_span, y0, out=3, **other)
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr raises ImportError
    with pytest.raises(ImportError, match=r"pip install batchivp\[zarr\]"):
        bi.solve_batch(models.lorenz, t_span, y0, out=tmp_path / "new.zarr", **other)


def test_dask_blocks_write_their_own_rows(target, tmp_path, monkeypatch):
    """Dask inputs: one task per block writes its rows, the store chunked as the
    blocks; a block marked not done (and damaged) is solved again, alone. Summaries
    without the trajectory (save_y=False): no y in the store."""
    da = pytest.importorskip("dask.array")
    import dask

    n, chunk = (6, 3) if target == "cuda" else (20, 5)
    t_span, y0, params = lorenz_batch(n)
    kw = dict(params=params, t_eval=np.linspace(0.0, 0.5, 3), events=stream_x_crossing,
              max_events=4, target=target, summarize=("min", "mean"), save_y=False)
    ref = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    written = []
    original = stream._solve_and_write

    def solve_and_write(*args):
        written.append(args[4])
        return original(*args)

    monkeypatch.setattr(stream, "_solve_and_write", solve_and_write)
    # numba's CUDA simulator is not thread-safe (NVIDIA/numba-cuda#690): blocks in turn.
    scheduler = "sync" if target == "cuda" and targets.simulator_enabled() else "threads"
    out = tmp_path / "run.zarr"
    lazy_y0 = da.from_array(y0, chunks=(chunk, 3))
    with dask.config.set(scheduler=scheduler):
        res = bi.solve_batch(models.lorenz, t_span, lazy_y0, out=out, **kw)
        assert sorted(written) == list(range(n // chunk))
        written.clear()
        group = zarr.open_group(out, mode="r+")
        assert "y" not in group and res.y is None
        assert group["summary/min"].chunks == (chunk, 3) and group["t_events/0"].chunks == (chunk, 4)
        assert_bitwise_equal(res, ref)
        group["_done"][1] = 0
        group["summary/min"][chunk:2 * chunk] = -1.0
        again = bi.solve_batch(models.lorenz, t_span, lazy_y0, out=out, **kw)
    assert written == [1]
    assert_bitwise_equal(again, ref)
