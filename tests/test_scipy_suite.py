"""scipy's own ``solve_ivp`` test module, with its DOP853 calls routed to batchivp.

The installed ``scipy/integrate/_ivp/tests/test_ivp.py`` is imported (not copied) and
its tests are collected here with the module's ``solve_ivp`` replaced by a router:
calls with ``method="DOP853"`` (or the ``DOP853`` class) go to ``batchivp.solve_ivp``
and run in our kernel; the others keep scipy's default method (RK45) and go to scipy.
A DOP853 call that fell back to scipy would warn (``CompilationWarning``), which this
module turns into an error, so every DOP853 call in scipy's suite runs compiled.
"""

import inspect

import pytest
from scipy.integrate import DOP853
from scipy.integrate import solve_ivp as scipy_solve_ivp

import batchivp

scipy_tests = pytest.importorskip("scipy.integrate._ivp.tests.test_ivp")

# The last test counts the calls the others routed, so under pytest-xdist the module's
# tests must run on one worker, in order (``--dist loadfile``, see the Makefile).
pytestmark = pytest.mark.filterwarnings("error::batchivp.CompilationWarning")

_SCIPY_SIGNATURE = inspect.signature(scipy_solve_ivp)
routed_calls = []  # (test, method) of every call that batchivp solved


def _routed_solve_ivp(*args, **kwargs):
    bound = _SCIPY_SIGNATURE.bind(*args, **kwargs)
    method = bound.arguments.get("method", "RK45")
    if method == "DOP853" or method is DOP853:
        routed_calls.append(method)
        return batchivp.solve_ivp(*args, **kwargs)
    return scipy_solve_ivp(*args, **kwargs)


@pytest.fixture(autouse=True)
def _route_to_batchivp(monkeypatch):
    monkeypatch.setattr(scipy_tests, "solve_ivp", _routed_solve_ivp)


@pytest.fixture
def num_parallel_threads():
    """scipy's conftest fixture: the tests run on one thread here."""
    return 1


for _name, _test in vars(scipy_tests).items():
    if _name.startswith("test_") and callable(_test):
        globals()[_name] = _test
del _name, _test


def test_zz_dop853_calls_were_routed():
    """The router saw DOP853 calls (scipy's suite has dozens); run after the others."""
    if len(routed_calls) == 0:
        pytest.skip("run with the scipy suite's tests to count routed calls")
    assert len(routed_calls) >= 30
