"""solve_batch on Dask arrays: one task per block, lazy results, bitwise local results.

The oracle is the same batch solved locally with NumPy arrays: every array of the
result, NaN positions included, must be equal, with the threaded scheduler and with a
``dask.distributed`` cluster of two worker processes.
"""

import subprocess
import sys

import numpy as np
import pytest

import batchivp as bi
from batchivp import dask_batch, models, targets

da = pytest.importorskip("dask.array")

FIELDS = ("y", "y_final", "t_final", "status", "nfev", "nstep", "nreject", "n_events")


@bi.event(terminal=3)
def dask_x_crossing(t, y, p):
    """x = 0: a Lorenz trajectory switching wings (stops at the third)."""
    return y[0]


def lorenz_batch(n):
    """n Lorenz problems with rho over [15, 30], their own start and end times."""
    rho = np.linspace(15.0, 30.0, n)
    params = np.column_stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)])
    y0 = np.column_stack([np.linspace(-2.0, 2.0, n), np.ones(n), np.full(n, 20.0)])
    t_span = np.column_stack([np.zeros(n), np.linspace(1.0, 4.0, n)])
    return t_span, y0, params


def assert_bitwise_equal(lazy, local, **compute_kwargs):
    computed = lazy.compute(**compute_kwargs)
    assert not computed.interrupted and computed.target == local.target
    for name in FIELDS:
        if getattr(local, name) is None:
            assert getattr(computed, name) is None, name
            continue
        assert np.array_equal(getattr(computed, name), getattr(local, name), equal_nan=True), name
    for e in range(len(local.t_events)):
        assert np.array_equal(computed.t_events[e], local.t_events[e], equal_nan=True)
        assert np.array_equal(computed.y_events[e], local.y_events[e], equal_nan=True)
    return computed


@pytest.mark.filterwarnings("ignore:.*max_events=2 holds")  # from worker threads too
def test_threaded_scheduler_bitwise_equal(target):
    """Per-problem arguments as Dask arrays chunked differently, NumPy arrays and shared
    Dask values (a 0-d atol, a (k,) t_eval): the blocks are cut as y0 is."""
    n = 6 if target == "cuda" else 20000
    t_span, y0, params = lorenz_batch(n)
    rtol = np.linspace(1e-7, 1e-5, n)[:, None]
    max_step = np.linspace(0.05, 1.0, n)
    t_eval = np.linspace(0.0, 0.3, 4)
    kw = dict(events=[dask_x_crossing], max_events=2, target=target)
    local = bi.solve_batch(models.lorenz, t_span, y0, params=params, rtol=rtol, atol=1e-7,
                           max_step=max_step, t_eval=t_eval, **kw)
    assert local.status.min() == 0 and local.status.max() == 1 and local.events_overflowed.any()
    blocks = 3 if target == "cuda" else n // 4
    lazy = bi.solve_batch(models.lorenz, t_span, da.from_array(y0, chunks=(blocks, 2)),
                          params=da.from_array(params, chunks=(n // 3 + 1, 3)),
                          rtol=da.from_array(rtol, chunks=n // 2 + 1),
                          atol=da.from_array(np.array(1e-7)), max_step=max_step,
                          t_eval=da.from_array(t_eval, chunks=2), **kw)
    assert lazy.y.chunks == (da.from_array(y0, chunks=blocks).chunks[0], (3,), (4,))
    assert isinstance(lazy.status, da.Array) and lazy.status.dtype == np.int64
    assert lazy.t_events[0].shape == (n, 2) and lazy.y_events[0].shape == (n, 2, 3)
    # numba's CUDA simulator is not thread-safe (it swaps module globals while a kernel
    # runs; see NVIDIA/numba-cuda#690): its blocks run one after the other.
    scheduler = "sync" if target == "cuda" and targets.simulator_enabled() else "threads"
    computed = assert_bitwise_equal(lazy, local, scheduler=scheduler)
    np.testing.assert_array_equal(computed.t, t_eval)


def test_distributed_cluster_of_two_processes():
    """20,000 problems in 5 blocks on two worker processes, which get the right-hand
    side and the event (defined here) by pickling and the kernel from the disk cache."""
    distributed = pytest.importorskip("distributed")
    n = 20000
    t_span, y0, params = lorenz_batch(n)
    kw = dict(params=params, events=[dask_x_crossing], rtol=1e-6, atol=1e-6, target="cpu")
    local = bi.solve_batch(models.lorenz, t_span, y0, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        lazy = bi.solve_batch(models.lorenz, da.from_array(t_span, chunks=(4000, 2)),
                              da.from_array(y0, chunks=(4000, 3)), **kw)
        assert lazy.status.numblocks == (5,)
        assert_bitwise_equal(lazy, local)


def test_lazy_and_one_solve_per_block(monkeypatch):
    """Nothing is solved before compute; computing every array solves each block once."""
    solved = []
    original = dask_batch._solve_block

    def counting(*args):
        solved.append(len(args[-1]))
        return original(*args)

    monkeypatch.setattr(dask_batch, "_solve_block", counting)
    t_span, y0, params = lorenz_batch(100)
    lazy = bi.solve_batch(models.lorenz, t_span, da.from_array(y0, chunks=30), params=params,
                          events=dask_x_crossing, t_eval=[0.0, 0.2], target="cpu")
    assert solved == []
    computed = lazy.compute(scheduler="sync")
    assert sorted(solved) == [10, 30, 30, 30]
    assert computed.compute() is computed  # no Dask arrays left: itself


def explode(block):
    raise AssertionError("validation computed a block")


def test_shapes_and_dtypes_checked_without_computing():
    t_span, y0, params = lorenz_batch(10)
    untouchable = da.from_array(y0, chunks=5).map_blocks(explode, dtype=float)
    times = da.linspace(0.0, 1.0, 5)
    unknown_length = times[times > 0.5]  # its length is known only when computed
    cases = [
        (dict(y0=untouchable[:, 0]), r"y0 must have shape \(N, n\)"),
        (dict(y0=untouchable.astype(complex)), "y0 is complex"),
        (dict(t_span=da.zeros((10, 3))), r"t_span must have shape \(2,\) or \(10, 2\), got \(10, 3\)"),
        (dict(params=da.ones((9, 3))), r"params must be a scalar, shape \(m,\) shared or \(10, m\)"),
        (dict(rtol=da.ones((10, 2))), r"rtol must be a scalar or of shape \(3,\), \(10, 1\) or \(10, 3\)"),
        (dict(t_eval=da.ones((2, 10, 3))), r"t_eval must have shape \(k,\) shared or \(10, k\)"),
        (dict(max_step=da.ones((10, 1))), r"max_step must be a scalar or of shape \(10,\)"),
        (dict(t_eval=unknown_length), r"t_eval must have shape \(k,\).*got shape \(nan,\)"),
        (dict(fun_index=da.zeros(10)), "fun_index must be a 1-D array of integers"),
        (dict(max_steps=0), "max_steps must be a positive integer"),
        (dict(events=[models.lorenz]), None),
    ]
    for change, message in cases:
        kw = dict(dict(t_span=t_span, y0=untouchable, params=params, target="cpu"), **change)
        error = TypeError if message is None else ValueError
        with pytest.raises(error, match=message):
            bi.solve_batch(models.lorenz, kw.pop("t_span"), kw.pop("y0"), **kw)


def test_values_checked_per_block_when_computed():
    t_span, y0, params = lorenz_batch(10)
    y0[7, 1] = np.nan
    lazy = bi.solve_batch(models.lorenz, t_span, da.from_array(y0, chunks=5), params=params,
                          target="cpu")
    assert lazy.status[:5].compute().tolist() == [0] * 5  # the first block is fine
    with pytest.raises(ValueError, match=r"y0 holds a non-finite value \(NaN or inf\) at index \(2, 1\)"):
        lazy.status.compute()


def test_dask_is_imported_only_for_dask_arrays():
    code = ("import sys, numpy as np, batchivp as bi; from batchivp import models; "
            "bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((2, 3)), "
            "params=(10.0, 28.0, 8.0 / 3.0), target='cpu'); "
            "assert 'dask' not in sys.modules, 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_block_target_leaves_cuda_to_the_workers(monkeypatch):
    """Target "cuda" is checked where a block runs (the workers may have the GPU);
    None and "auto" are resolved here."""
    monkeypatch.setattr(targets, "resolve_target", lambda target: pytest.fail("resolved"))
    assert dask_batch._block_target(" CUDA") == "cuda"
    monkeypatch.undo()
    assert dask_batch._block_target("auto") == targets.resolve_target("auto")
