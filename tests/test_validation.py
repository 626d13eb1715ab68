"""Input validation of ``solve_batch``: bad arguments raise before anything compiles.

Every error must be a ``ValueError`` (``TypeError`` for a ``fun`` that is not
registered) whose message names the offending argument, raised by the host-side checks
before the generated module is rendered or loaded. The ``no_compile`` fixture replaces
``batchivp.render.load_module`` with a function that fails the test, so an error that
came only after compiling (or a valid input rejected for the wrong reason) shows up.
"""

import tracemalloc

import numpy as np
import pytest

import batchivp as bi
from batchivp import render

EPS = np.finfo(float).eps
N, NDIM = 3, 2


@bi.rhs
def val_decay(t, y, p, dydt):
    for i in range(y.shape[0]):
        dydt[i] = -p[0] * y[i]


@bi.rhs
def val_other(t, y, p, dydt):
    for i in range(y.shape[0]):
        dydt[i] = 0.0


def val_unregistered(t, y, p, dydt):
    dydt[0] = 0.0


class CompileAttempted(AssertionError):
    """Raised by the patched ``render.load_module``: validation let the call through."""


@pytest.fixture
def no_compile(monkeypatch):
    def refuse(target, ndim, functions, events=(), norm=None, observables=(), precision=None):
        raise CompileAttempted(f"load_module({target!r}, {ndim}, ...) was reached")

    monkeypatch.setattr(render, "load_module", refuse)


def call(**overrides):
    """``solve_batch`` on a valid (N=3, n=2) batch with some arguments replaced."""
    kwargs = dict(fun=val_decay, t_span=(0.0, 1.0), y0=np.ones((N, NDIM)), params=1.0,
                  target="cpu")
    kwargs.update(overrides)
    fun = kwargs.pop("fun")
    t_span = kwargs.pop("t_span")
    y0 = kwargs.pop("y0")
    return bi.solve_batch(fun, t_span, y0, **kwargs)


def _with(arr, index, value):
    arr = np.array(arr, dtype=float)
    arr[index] = value
    return arr


BAD_INPUTS = [
    # y0
    ("y0-1d", dict(y0=np.ones(NDIM)), r"y0 must have shape \(N, n\).*got shape \(2,\)"),
    ("y0-3d", dict(y0=np.ones((N, NDIM, 1))), r"y0 must have shape \(N, n\).*got shape \(3, 2, 1\)"),
    ("y0-empty", dict(y0=np.ones((0, NDIM))), r"y0 must hold at least one problem"),
    ("y0-nan", dict(y0=_with(np.ones((N, NDIM)), (1, 0), np.nan)),
     r"y0 holds a non-finite value \(NaN or inf\) at index \(1, 0\)"),
    ("y0-inf", dict(y0=_with(np.ones((N, NDIM)), (2, 1), np.inf)),
     r"y0 holds a non-finite value \(NaN or inf\) at index \(2, 1\)"),
    ("y0-neg-inf", dict(y0=_with(np.ones((N, NDIM)), (0, 1), -np.inf)),
     r"y0 holds a non-finite value"),
    ("y0-complex", dict(y0=np.ones((N, NDIM), dtype=complex)), r"y0 is complex"),
    ("y0-complex-zero-imag", dict(y0=np.ones((N, NDIM)) + 0j), r"y0 is complex"),
    ("y0-str", dict(y0=[["a", "b"]] * N), r"y0 must be numeric, got dtype <U1"),
    ("y0-object", dict(y0=np.array([[1.0, None]] * N, dtype=object)),
     r"y0 must be numeric, got dtype object"),
    ("y0-ragged", dict(y0=[[1.0, 2.0], [1.0]]), r"y0 cannot be converted to an array"),
    # t_span
    ("t_span-3", dict(t_span=(0.0, 1.0, 2.0)), r"t_span must have shape \(2,\) or \(3, 2\), got \(3,\)"),
    ("t_span-scalar", dict(t_span=1.0), r"t_span must have shape \(2,\) or \(3, 2\), got \(\)"),
    ("t_span-N+1-rows", dict(t_span=np.tile([0.0, 1.0], (N + 1, 1))),
     r"t_span must have shape \(2,\) or \(3, 2\), got \(4, 2\)"),
    ("t_span-3-cols", dict(t_span=np.zeros((N, 3))), r"t_span must have shape .*got \(3, 3\)"),
    # (tf = inf or -inf is legal, as in scipy: tests/test_hangs.py)
    ("t_span-t0-inf", dict(t_span=(np.inf, 1.0)), r"t_span\[:, 0\] \(t0\) must be finite, got inf"),
    ("t_span-t0-nan", dict(t_span=(np.nan, 1.0)), r"t_span\[:, 0\] \(t0\) must be finite, got nan"),
    ("t_span-per-problem-t0-inf", dict(t_span=_with(np.tile([0.0, 1.0], (N, 1)), (2, 0), -np.inf)),
     r"t_span\[:, 0\] \(t0\) must be finite, got -inf in problem 2"),
    ("t_span-tf-nan", dict(t_span=_with(np.tile([0.0, 1.0], (N, 1)), (1, 1), np.nan)),
     r"t_span\[:, 1\] \(tf\) is NaN in problem 1"),
    ("t_span-str", dict(t_span=("0", "1")), r"t_span must be numeric"),
    # params
    ("params-N+1-rows", dict(params=np.ones((N + 1, 2))),
     r"params must be a scalar, shape \(m,\) shared or \(3, m\) per problem, got shape \(4, 2\)"),
    ("params-3d", dict(params=np.ones((N, 1, 1))), r"params must be a scalar.*got shape \(3, 1, 1\)"),
    ("params-empty", dict(params=np.ones((N, 0))), r"params must be a scalar.*got shape \(3, 0\)"),
    ("params-complex", dict(params=1j), r"params is complex"),
    ("params-nan-one-problem", dict(params=_with(np.ones((N, 2)), (2, 1), np.nan)),
     r"params holds a non-finite value \(NaN or inf\): params\[2, 1\] = nan \(problem 2\)"),
    ("params-inf-shared", dict(params=[1.0, np.inf]),
     r"params holds a non-finite value \(NaN or inf\): params\[1\] = inf, shared by every"),
    ("params-nan-scalar", dict(params=np.nan), r"params holds a non-finite value"),
    # rtol / atol
    ("rtol-1d-length-N", dict(rtol=np.full(N, 1e-6)),
     r"rtol of shape \(3,\): a 1-D rtol is per component and must have length n = 2"),
    ("rtol-N+1-rows", dict(rtol=np.full((N + 1, 1), 1e-6)),
     r"rtol must be a scalar or of shape \(2,\), \(3, 1\) or \(3, 2\), got shape \(4, 1\)"),
    ("rtol-nan", dict(rtol=np.nan), r"rtol holds NaN"),
    ("atol-wrong-cols", dict(atol=np.full((N, NDIM + 1), 1e-6)),
     r"atol must be a scalar or of shape .*got shape \(3, 3\)"),
    ("atol-3d", dict(atol=np.full((N, NDIM, 1), 1e-6)), r"atol must be a scalar or of shape"),
    ("atol-negative", dict(atol=-1e-6), r"atol must be non-negative"),
    ("atol-one-negative-component", dict(atol=[1e-6, -1e-9]), r"atol must be non-negative"),
    ("atol-nan", dict(atol=np.nan), r"atol holds NaN"),
    # t_eval
    ("t_eval-above-span", dict(t_eval=[0.5, 1.5]),
     r"t_eval holds values outside t_span \(first in problem 0, span \["),
    ("t_eval-below-span", dict(t_eval=[-0.5, 0.5]), r"t_eval holds values outside t_span"),
    ("t_eval-outside-one-problem", dict(t_span=[[0.0, 1.0], [0.0, 1.0], [0.0, 0.25]],
                                        t_eval=[0.1, 0.5]),
     r"t_eval holds values outside t_span \(first in problem 2, span \["),
    ("t_eval-outside-backward", dict(t_span=(1.0, 0.0), t_eval=[0.5, -0.1]),
     r"t_eval holds values outside t_span"),
    ("t_eval-unsorted-forward", dict(t_eval=[0.5, 0.2]),
     r"t_eval must be strictly sorted in the direction of integration \(problem 0 runs from"),
    ("t_eval-duplicate-forward", dict(t_eval=[0.2, 0.2, 0.5]), r"t_eval must be strictly sorted"),
    ("t_eval-unsorted-backward", dict(t_span=(1.0, 0.0), t_eval=[0.2, 0.5]),
     r"t_eval must be strictly sorted in the direction of integration \(problem 0 runs from"),
    ("t_eval-unsorted-one-problem", dict(t_eval=[[0.1, 0.2], [0.1, 0.2], [0.2, 0.1]]),
     r"t_eval must be strictly sorted .*\(problem 2 runs"),
    ("t_eval-2d-N+1-rows", dict(t_eval=np.tile(np.linspace(0.0, 1.0, 5), (N + 1, 1))),
     r"t_eval must have shape \(k,\) shared or \(3, k\) per problem, got shape \(4, 5\)"),
    ("t_eval-3d", dict(t_eval=np.zeros((N, 2, 1))), r"t_eval must have shape \(k,\)"),
    ("t_eval-empty", dict(t_eval=[]), r"t_eval must have shape \(k,\).*got shape \(0,\)"),
    ("t_eval-nan", dict(t_eval=[0.1, np.nan]), r"t_eval holds a non-finite value"),
    # first_step / max_step / max_steps
    ("first_step-zero", dict(first_step=0.0), r"first_step must be positive"),
    ("first_step-negative", dict(first_step=-0.1), r"first_step must be positive"),
    ("first_step-nan", dict(first_step=np.nan), r"first_step must be positive"),
    ("first_step-one-problem-zero", dict(first_step=[0.1, 0.0, 0.1]), r"first_step must be positive"),
    ("first_step-beyond-span", dict(first_step=1.5),
     r"first_step exceeds the span of problem 0 \(\|tf - t0\| = "),
    ("first_step-beyond-backward-span", dict(t_span=(1.0, 0.5), first_step=0.75),
     r"first_step exceeds the span of problem 0 \(\|tf - t0\| = "),
    ("first_step-beyond-one-span", dict(t_span=[[0.0, 1.0], [0.0, 0.1], [0.0, 1.0]],
                                        first_step=0.5),
     r"first_step exceeds the span of problem 1"),
    ("first_step-wrong-shape", dict(first_step=np.full(N + 1, 0.1)),
     r"first_step must be a scalar or of shape \(3,\), got shape \(4,\)"),
    ("max_step-zero", dict(max_step=0.0), r"max_step must be positive"),
    ("max_step-negative", dict(max_step=-1.0), r"max_step must be positive"),
    ("max_step-nan", dict(max_step=np.nan), r"max_step must be positive"),
    ("max_step-wrong-shape", dict(max_step=np.ones((N, 1))),
     r"max_step must be a scalar or of shape \(3,\), got shape \(3, 1\)"),
    ("max_steps-zero", dict(max_steps=0), r"max_steps must be a positive integer or None, got 0"),
    ("max_steps-negative", dict(max_steps=-5), r"max_steps must be a positive integer or None, got -5"),
    ("max_steps-fractional", dict(max_steps=1.5), r"max_steps must be a positive integer or None, got 1\.5"),
    ("max_steps-integral-float", dict(max_steps=100.0), r"max_steps must be a positive integer"),
    ("max_steps-bool", dict(max_steps=True), r"max_steps must be a positive integer or None, got True"),
    ("max_steps-str", dict(max_steps="100"), r"max_steps must be a positive integer"),
    ("chunk_steps-zero", dict(chunk_steps=0), r"chunk_steps must be a positive integer"),
    # fun / fun_index
    ("fun-list-without-fun_index", dict(fun=[val_decay, val_other]),
     r"fun is a list of right-hand sides: pass fun_index="),
    ("fun-empty-list", dict(fun=[]), r"fun must name at least one right-hand side"),
    ("fun_index-too-large", dict(fun=[val_decay, val_other], fun_index=[0, 2, 1]),
     r"fun_index values must lie in \[0, 1\]"),
    ("fun_index-negative", dict(fun=[val_decay, val_other], fun_index=[0, -1, 1]),
     r"fun_index values must lie in \[0, 1\]"),
    ("fun_index-single-fun-out-of-range", dict(fun_index=[0, 1, 0]),
     r"fun_index values must lie in \[0, 0\]"),
    ("fun_index-float", dict(fun=[val_decay, val_other], fun_index=[0.0, 1.0, 0.0]),
     r"fun_index must be a 1-D array of integers, got dtype float64"),
    ("fun_index-2d", dict(fun=[val_decay, val_other], fun_index=[[0], [1], [0]]),
     r"fun_index must be a 1-D array of integers.*shape \(3, 1\)"),
    ("fun_index-wrong-length", dict(fun=[val_decay, val_other], fun_index=[0, 1, 0, 1]),
     r"fun_index must have shape \(3,\), got \(4,\)"),
]


@pytest.mark.parametrize("overrides, pattern", [pytest.param(o, p, id=i) for i, o, p in BAD_INPUTS])
def test_bad_input_raises_value_error_before_compiling(no_compile, overrides, pattern):
    with pytest.raises(ValueError, match=pattern) as excinfo:
        call(**overrides)
    assert not isinstance(excinfo.value, CompileAttempted)


@pytest.mark.parametrize("overrides, plain", [
    pytest.param(dict(t_eval=[0.5, 1.5]), r"span \[0\.0, 1\.0\]\)", id="t_eval-outside"),
    pytest.param(dict(t_span=(1.0, 0.0), t_eval=[0.2, 0.5]), r"runs from 1\.0 to 0\.0\)",
                 id="t_eval-unsorted"),
    pytest.param(dict(first_step=1.5), r"\|tf - t0\| = 1\.0\)", id="first_step-beyond-span"),
])
def test_messages_show_plain_numbers(no_compile, overrides, plain):
    with pytest.raises(ValueError, match=plain):
        call(**overrides)


@pytest.mark.parametrize("fun", [
    pytest.param(val_unregistered, id="plain-function"),
    pytest.param([val_decay, val_unregistered], id="list-with-plain-function"),
    pytest.param(val_decay.py_func, id="wrapped-python-function"),
    pytest.param("val_decay", id="name-string"),
])
def test_unregistered_fun_raises_type_error(no_compile, fun):
    with pytest.raises(TypeError, match=r"fun must be a right-hand side registered with "
                                        r"@batchivp\.rhs"):
        call(fun=fun, fun_index=[0, 1, 0] if isinstance(fun, list) else None)


def test_unregistered_fun_message_shows_the_object(no_compile):
    with pytest.raises(TypeError, match=r"got <function val_unregistered"):
        call(fun=val_unregistered)


VALID_TARGETS_LISTED = r"valid targets are 'cpu', 'parallel', 'cuda', 'auto'"


@pytest.mark.parametrize("bad", ["gpu", "CPUS", "", "numba"])
def test_bad_target_argument(no_compile, bad):
    with pytest.raises(ValueError, match=rf"target= is {bad.lower()!r}; {VALID_TARGETS_LISTED}"):
        call(target=bad)


def test_non_string_target_argument(no_compile):
    with pytest.raises(TypeError, match=r"target= must be a string, one of cpu, parallel, cuda, auto; got int"):
        call(target=3)


@pytest.mark.parametrize("bad", ["gpu", "openmp"])
def test_bad_target_environment_variable(no_compile, monkeypatch, bad):
    monkeypatch.setenv("BATCHIVP_TARGET", bad)
    with pytest.raises(ValueError, match=rf"the environment variable BATCHIVP_TARGET is {bad!r}; "
                                         rf"{VALID_TARGETS_LISTED}"):
        call(target=None)


def test_target_argument_overrides_bad_environment_variable(no_compile, monkeypatch):
    # target= wins over BATCHIVP_TARGET, so the bad variable is never read: the call
    # gets through validation to the (patched) compile step.
    monkeypatch.setenv("BATCHIVP_TARGET", "gpu")
    with pytest.raises(CompileAttempted, match=r"load_module\('cpu', 2"):
        call(target="cpu")


def test_environment_variable_selects_target(no_compile, monkeypatch):
    monkeypatch.setenv("BATCHIVP_TARGET", " CPU ")
    with pytest.raises(CompileAttempted, match=r"load_module\('cpu', 2"):
        call(target=None)


# The valid neighbours of the bad inputs above pass validation and reach the compile
# step (the patched load_module), so the errors above are about the bad values only.
VALID_INPUTS = [
    ("defaults", dict()),
    ("t_span-per-problem-mixed-directions", dict(t_span=[[0.0, 1.0], [1.0, 0.0], [-2.0, 3.0]])),
    ("t_eval-backward-sorted", dict(t_span=(1.0, 0.0), t_eval=[1.0, 0.5, 0.0])),
    ("t_eval-per-problem", dict(t_eval=[[0.1, 0.2], [0.3, 0.4], [0.0, 1.0]])),
    ("t_eval-endpoints", dict(t_eval=[0.0, 1.0])),
    ("params-scalar", dict(params=2.0)),
    ("params-shared-vector", dict(params=[1.0, 2.0, 3.0, 4.0])),
    ("params-per-problem", dict(params=np.ones((N, 2)))),
    # No params: valid for a right-hand side that reads no p (one that reads p[0] is
    # refused by the index check, tests/test_bounds.py).
    ("params-none", dict(fun=val_other, params=None)),
    ("rtol-per-component", dict(rtol=[1e-6, 1e-8])),
    ("rtol-per-problem", dict(rtol=np.full((N, 1), 1e-6))),
    ("atol-per-problem-and-component", dict(atol=np.full((N, NDIM), 1e-9))),
    ("atol-zero", dict(atol=0.0)),
    ("first_step-equal-to-span", dict(first_step=1.0)),
    ("first_step-per-problem", dict(first_step=[0.1, 0.2, 0.3])),
    ("max_step-per-problem", dict(max_step=[0.1, np.inf, 1.0])),
    ("max_steps-numpy-int", dict(max_steps=np.int64(10))),
    ("fun-list-with-fun_index", dict(fun=[val_decay, val_other], fun_index=[1, 0, 1])),
    ("integer-y0", dict(y0=np.ones((N, NDIM), dtype=int))),
]


@pytest.mark.parametrize("overrides", [pytest.param(o, id=i) for i, o in VALID_INPUTS])
def test_valid_input_reaches_compile_step(no_compile, overrides):
    with pytest.raises(CompileAttempted):
        call(**overrides)


def test_output_that_cannot_fit_in_memory_is_refused_before_allocating(no_compile):
    """10**7 problems at 10**5 t_eval points need 8 TB for y: refused with the size and
    the arguments to change, before compiling and before any large allocation (the
    traced peak is what y0 and the per-problem settings take, under 1 GB)."""
    y0 = np.ones((10**7, 1))
    t_eval = np.linspace(0.0, 1.0, 10**5)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"output needs 8,0\d\d\.\d GB.* t_eval .*"
                                             r"max_events.*split the batch"):
            bi.solve_batch(val_decay, (0.0, 1.0), y0, params=1.0, t_eval=t_eval, target="cpu")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1e9


def test_small_rtol_warns_and_still_solves():
    y0 = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.25]])
    rates = np.array([[1.0], [2.0], [0.5]])
    t_eval = np.linspace(0.0, 2.0, 9)
    with pytest.warns(UserWarning, match=r"rtol"):
        res = bi.solve_batch(val_decay, (0.0, 2.0), y0, params=rates, t_eval=t_eval,
                             rtol=[1e-20, 1e-3], atol=1e-14, target="cpu")
    assert np.all(res.status == 0), res.status
    exact = y0[:, :, None] * np.exp(-rates[:, :, None] * t_eval[None, None, :])
    # Component 0 was asked for rtol 1e-20 and integrated at 100*EPS: very accurate.
    np.testing.assert_allclose(res.y[:, 0, :], exact[:, 0, :], rtol=1e-10, atol=0)
    np.testing.assert_allclose(res.y[:, 1, :], exact[:, 1, :], rtol=1e-2, atol=0)
    np.testing.assert_allclose(res.t_final, 2.0)


def test_tolerances_at_limit_do_not_warn(no_compile):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CompileAttempted):
            call(rtol=100 * EPS)
