"""The status table (``batchivp.Status``) against the kernel's codes, scipy's ``solve_ivp``
contract and the README; and every consumer reading its codes from it.

No kernel compiles here: the consumers are called on status arrays directly.
"""

import re
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp
from scipy.integrate._ivp.ivp import MESSAGES as SCIPY_MESSAGES

import batchivp as bi
from batchivp import batch, host_loop, status
from batchivp.core import dop853 as core
from batchivp.status import Status

README = Path(__file__).resolve().parent.parent / "README.md"


def core_namespace(**changes):
    """A stand-in for core/dop853.py: its STATUS_* constants, with ``changes`` (None
    removes a name)."""
    names = {name: getattr(core, name) for name in dir(core) if name.startswith("STATUS_")}
    names.update(changes)
    return types.SimpleNamespace(**{k: v for k, v in names.items() if v is not None})


def test_table_is_the_kernels_codes():
    """Every member is the int the kernel writes under its name, and the kernel writes
    no code the table lacks."""
    status.check_core(core)
    core_names = {name for name in dir(core) if name.startswith("STATUS_")}
    assert core_names == {f"STATUS_{s.name}" for s in Status}
    for member in Status:
        assert getattr(core, f"STATUS_{member.name}") == int(member)
    assert not hasattr(core, "STATUS_BUFFER")  # -4 was never set: an overflow is a count


@pytest.mark.parametrize("changes, named", [
    (dict(STATUS_BUDGET=-4), "STATUS_BUDGET = -4 in the core, -3 in Status"),
    (dict(STATUS_BUFFER=-4), "STATUS_BUFFER = -4 in the core, not in Status"),
    (dict(STATUS_PAUSED=None), "Status.PAUSED = 4 has no STATUS_PAUSED in the core"),
    (dict(STATUS_EVENT=1.0), "STATUS_EVENT = 1.0 in the core, 1 in Status"),
])
def test_check_core_names_a_mismatch(changes, named):
    with pytest.raises(RuntimeError, match="differ; edit both together") as info:
        status.check_core(core_namespace(**changes))
    assert named in str(info.value)


def test_success_and_solve_ivp_codes_are_scipys():
    """scipy's solve_ivp has 0 and 1 (with its MESSAGES) for success and -1 for any
    failure; our successful codes are exactly those, with scipy's texts."""
    assert {int(s) for s in Status if s.successful} == set(SCIPY_MESSAGES) == {0, 1}
    for member in Status:
        if member.successful:
            assert (member.ivp_status, member.ivp_message) == (
                int(member), SCIPY_MESSAGES[int(member)])
            assert member.message == SCIPY_MESSAGES[int(member)]
        else:
            assert member.ivp_status == -1
        assert status.ivp_status(np.int64(member)) == (member.ivp_status, member.ivp_message)
    assert status.ivp_status(np.int64(-4)) == (-1, "Integration failed with status -4.")


def test_step_too_small_is_scipys_text():
    """scipy's own failure (y' = y**2 blows up at t = 1) ends with the message we give
    for a step too small and for a non-finite derivative, which scipy rejects until the
    step is too small."""
    ref = scipy_solve_ivp(lambda t, y: y**2, (0.0, 2.0), [1.0], method="DOP853")
    assert ref.status == Status.STEP_TOO_SMALL.ivp_status == -1
    assert ref.message == Status.STEP_TOO_SMALL.message == Status.STEP_TOO_SMALL.ivp_message
    assert Status.NONFINITE.ivp_message == ref.message


def test_flags():
    """0 and 1 succeed; an interrupted batch leaves RUNNING and PENDING to run again;
    PAUSED, internal to solve_ivp, is neither."""
    assert status.SUCCESSFUL == (Status.FINISHED, Status.EVENT)
    assert status.UNFINISHED == (Status.RUNNING, Status.PENDING) == host_loop.UNFINISHED
    assert not Status.PAUSED.successful and not Status.PAUSED.unfinished
    assert all(int(s) < 0 for s in Status if s.kind == status.KIND_FAILURE)


def test_batch_result_reads_the_table():
    codes = np.array([int(s) for s in Status] + [-4], dtype=np.int64)
    n = len(codes)
    res = bi.BatchResult(t=None, y=None, t_final=np.zeros(n), y_final=np.zeros((n, 1)),
                         status=codes, nfev=np.zeros(n, int), nstep=np.zeros(n, int),
                         nreject=np.zeros(n, int), target="python")
    ivp_codes = np.array([status.ivp_status(c)[0] for c in codes])
    np.testing.assert_array_equal(res.success, ivp_codes >= 0)  # scipy's rule
    for i, member in enumerate(Status):
        assert res.message(i) == member.message
    assert res.message(n - 1) == "Unknown status -4."
    assert bi.MESSAGES == {int(s): s.message for s in Status}
    np.testing.assert_array_equal(host_loop.unfinished(codes),
                                  np.isin(codes, (Status.RUNNING, Status.PENDING)))


def test_interrupted_warning_counts_from_the_table():
    codes = np.array([Status.FINISHED, Status.RUNNING, Status.PENDING, Status.PENDING,
                      Status.BUDGET])
    with pytest.warns(RuntimeWarning, match=r"3 of 5 problems did not finish \(1 stopped "
                      r"mid-way, status 2; 2 not started, status 3\)"):
        batch._warn_interrupted(codes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch._warn_interrupted(codes[[0, 4]])
    assert "every problem had finished" in str(caught[0].message)


def test_readme_lists_every_failure():
    """The README's Failures paragraph names each failure code, and no other."""
    text = README.read_text()
    failures = re.search(r"- Failures are per problem:(.*?)\n- ", text, re.S).group(1)
    listed = {int(code) for code in re.findall(r"`(-\d+)`", failures)}
    assert listed == {int(s) for s in Status if s.kind == status.KIND_FAILURE}
    assert "bi.Status" in failures
