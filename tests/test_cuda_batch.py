"""The GPU's work shape: launches over the open problems packed together (compaction),
stored with the problem index innermost (coalesced).

The oracles are the plain path, the batch launched whole every time in rows as the
host holds it, and the cpu target: packing and transposing rows must not change a bit
of any problem. The simulator runs the gather and scatter kernels and the gufunc on
strided views as a GPU would, a Python thread per GPU thread, so the batches are tiny.
"""

import numpy as np
import pytest

import batchivp as bi
from batchivp import Status, cuda_batch, host_loop, models

pytestmark = pytest.mark.cuda
FIELDS = ("y", "y_final", "t_final", "status", "nfev", "nstep", "nreject", "n_events")


@bi.event
def compaction_x_crossing(t, y, p):
    return y[0]


def stragglers(n=8):
    """Lorenz (chaotic, rho in [24, 30]) over spans of three lengths: most problems end
    early, one in four later, one much later, so the open rows shrink twice."""
    rho = np.linspace(24.0, 30.0, n)
    params = np.column_stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)])
    y0 = np.column_stack([np.ones(n), np.linspace(-1.0, 1.0, n), np.full(n, 0.5)])
    t_end = np.full(n, 0.2)
    t_end[1::4] = 1.0
    t_end[1] = 2.0
    t_span = np.column_stack([np.zeros(n), t_end])
    return t_span, y0, dict(params=params, t_eval=np.linspace(0.0, 0.2, 5), rtol=1e-6,
                            atol=1e-6, events=compaction_x_crossing,
                            summarize=("min", "argmax", "mean"))


def assert_same(res, ref):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)
    for mine, theirs in zip(res.t_events + res.y_events, ref.t_events + ref.y_events):
        np.testing.assert_array_equal(mine, theirs)
    assert res.summary.keys() == ref.summary.keys() == {"min", "argmax", "mean"}
    for name, values in res.summary.items():
        np.testing.assert_array_equal(values, ref.summary[name], err_msg=name)


@pytest.fixture
def launched_rows(monkeypatch):
    """The number of rows of each launch of the next solves."""
    sizes = []
    launch = cuda_batch.DeviceBatch.launch

    def counted(self, module):
        sizes.append(self.n_launched)
        return launch(self, module)

    monkeypatch.setattr(cuda_batch.DeviceBatch, "launch", counted)
    return sizes


@pytest.mark.parametrize("innermost, compaction", [(True, True), (False, True), (True, False)],
                         ids=["coalesced-packed", "rows-packed", "coalesced-whole"])
def test_work_shape_equals_plain_launches_and_cpu(monkeypatch, launched_rows, innermost,
                                                  compaction):
    """Chunks of 4 steps: with compaction the launches shrink from 8 rows to a few,
    then to 1 (rows packed out of packed rows); every problem ends bitwise as in the
    plain launches and on the cpu target."""
    t_span, y0, kw = stragglers()
    monkeypatch.setattr(cuda_batch, "BATCH_INNERMOST", innermost)
    monkeypatch.setattr(cuda_batch, "COMPACTION", compaction)
    shaped = bi.solve_batch(models.lorenz, t_span, y0, target="cuda", chunk_steps=4, **kw)
    sizes = sorted(set(launched_rows), reverse=True)
    if compaction:
        assert sizes[0] == 8 and sizes[-1] == 1 and len(sizes) >= 3, launched_rows
    else:
        assert sizes == [8]
    monkeypatch.setattr(cuda_batch, "BATCH_INNERMOST", False)
    monkeypatch.setattr(cuda_batch, "COMPACTION", False)
    plain = bi.solve_batch(models.lorenz, t_span, y0, target="cuda", chunk_steps=4, **kw)
    cpu = bi.solve_batch(models.lorenz, t_span, y0, target="cpu", **kw)
    assert np.all(cpu.status == Status.FINISHED) and cpu.n_events.max() > 0
    assert_same(shaped, plain)
    assert_same(shaped, cpu)


def test_compaction_with_host_sized_chunks_and_the_bar(monkeypatch, launched_rows, capsys):
    """The host's adaptive chunks (their length set on the packed rows) and the progress
    bar (the time fetched from packed, transposed rows): the same bits as the plain
    launches, every problem counted."""
    for name, value in dict(FIRST_CALL_STEPS=32, TARGET_CALL_S=1e-4, FIXED_CALL_S=0.0,
                            PROGRESS_INTERVAL_S=0.0).items():
        monkeypatch.setattr(host_loop, name, value)
    t_span, y0, kw = stragglers()
    shown = bi.solve_batch(models.lorenz, t_span, y0, target="cuda", progress=True, **kw)
    assert min(launched_rows) < 8, launched_rows
    assert "finished 8/8" in capsys.readouterr().err
    monkeypatch.setattr(cuda_batch, "BATCH_INNERMOST", False)
    monkeypatch.setattr(cuda_batch, "COMPACTION", False)
    assert_same(shown, bi.solve_batch(models.lorenz, t_span, y0, target="cuda", **kw))
