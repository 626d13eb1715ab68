"""The linked kernel (user functions called by address, batchivp/linking.py) against the
inlined one: the same arithmetic, so every result is bitwise the same, on every feature
that passes through a user function (events, t_eval, dense output, step records,
several right-hand sides, run-time index checks, complex states). The rest of the suite
runs cpu and parallel on the linked kernel and cuda on the inlined one, against scipy."""

import numpy as np
import pytest

import batchivp as bi
from batchivp import Status, models, render

from problems import lotka, rotate

KINDS = ("linked", "inlined")


@bi.rhs
def link_pick(t, y, p, dydt):
    """dydt[0] = -y[k] with k = int(p[0]) computed at run time: checked (bounds/)."""
    k = int(p[0])
    dydt[0] = -y[k]
    dydt[1] = -2.0 * y[1]


@bi.rhs
def link_spin(t, y, p, dydt):
    """A rotation about the z axis at rate p[0], and decay of z at rate p[1]."""
    dydt[0] = -p[0] * y[1]
    dydt[1] = p[0] * y[0]
    dydt[2] = -p[1] * y[2]


@bi.event(terminal=1, direction=-1)
def link_below(t, y, p):
    """y[0] falls below p[1]."""
    return y[0] - p[1]


@bi.event
def link_zero(t, y, p):
    return y[1]


def _both(monkeypatch, run):
    """``run()`` under each kernel kind of the cpu target."""
    results = {}
    for kind in KINDS:
        monkeypatch.setenv(render.KERNEL_ENV_VAR, kind)
        results[kind] = run()
    return results["linked"], results["inlined"]


def _assert_same_batch(a, b):
    for name in ("t", "y", "t_final", "y_final", "status", "nfev", "n_events"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("t_events", "y_events"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) and len(x or ()) == len(y or ())
        for u, v in zip(x or (), y or ()):
            np.testing.assert_array_equal(u, v, err_msg=name)


def test_batches_with_events_t_eval_and_several_right_hand_sides(monkeypatch):
    n = 12
    rho = np.linspace(0.0, 28.0, n)
    p = np.column_stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)])

    def run():
        return bi.solve_batch([models.lorenz, link_spin], (0.0, 2.0), np.ones((n, 3)),
                              params=p, fun_index=np.arange(n) % 2, rtol=1e-9, atol=1e-9,
                              t_eval=np.linspace(0.0, 2.0, 7), target="cpu")

    _assert_same_batch(*_both(monkeypatch, run))

    def run_events():
        y0 = np.column_stack([np.linspace(1.0, 3.0, n), np.ones(n)])
        # y[0] falls by 0.5 in all: the event fires where the threshold is 0.25 below.
        params = np.column_stack([np.ones(n), y0[:, 0] - np.where(np.arange(n) % 2, 0.25, 1.0)])
        return bi.solve_batch(link_pick, (0.0, 5.0), y0, params=params,
                              events=[link_below, link_zero], rtol=1e-10, atol=1e-12,
                              target="cpu")

    linked, inlined = _both(monkeypatch, run_events)
    _assert_same_batch(linked, inlined)
    assert (linked.status == np.where(np.arange(n) % 2, Status.EVENT, Status.FINISHED)).all()
    assert (linked.n_events[:, 1] == 0).all()


def test_a_run_time_index_out_of_range_fails_the_problem_on_both(monkeypatch):
    def run():
        return bi.solve_batch(link_pick, (0.0, 1.0), np.ones((3, 2)),
                              params=[[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]], target="cpu")

    linked, inlined = _both(monkeypatch, run)
    _assert_same_batch(linked, inlined)
    assert linked.status.tolist() == [Status.FINISHED, Status.FINISHED, Status.INDEX]


@pytest.mark.parametrize("options", [dict(dense_output=True), dict(t_eval=[0.0, 0.5, 3.0]),
                                     dict(events=lambda t, y, *args: y[0] - 1.5)])
def test_solve_ivp_with_dense_output_t_eval_and_events(monkeypatch, options):
    def run():
        return bi.solve_ivp(lotka, (0.0, 4.0), [1.0, 2.0], args=(1.5, 1.0, 3.0, 1.0),
                            rtol=1e-8, target="cpu", **options)

    linked, inlined = _both(monkeypatch, run)
    for name in ("t", "y", "nfev", "status", "t_events", "y_events"):
        a, b = getattr(linked, name), getattr(inlined, name)
        if isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    if linked.sol is not None:
        ts = np.linspace(0.0, 4.0, 33)
        np.testing.assert_array_equal(linked.sol(ts), inlined.sol(ts))


def test_a_complex_state(monkeypatch):
    def run():
        return bi.solve_ivp(rotate, (0.0, 3.0), [1.0 + 0.5j, -2.0j], args=(2.0,), rtol=1e-9,
                            target="cpu")

    linked, inlined = _both(monkeypatch, run)
    np.testing.assert_array_equal(linked.y, inlined.y)
    assert linked.nfev == inlined.nfev
    np.testing.assert_allclose(linked.y[:, -1], np.array([1.0 + 0.5j, -2.0j]) * np.exp(6.0j),
                               atol=1e-5)  # rtol=1e-9, atol=1e-6 (default)


def test_one_linked_core_serves_every_plugin_set_of_a_dimension(monkeypatch):
    """A new function compiles only itself: the kernel is the same object, and each
    function's handle is the address of its own compiled function."""
    monkeypatch.delenv(render.KERNEL_ENV_VAR, raising=False)
    one = render.load_module("cpu", 3, [models.lorenz])
    two = render.load_module("cpu", 3, [models.lorenz, link_spin], [link_below])
    assert one.dop853_kernel is two.dop853_kernel
    addresses = render.handles(two, "rhs", [models.lorenz, link_spin])
    assert addresses[0] == render.handles(one, "rhs", [models.lorenz])[0]
    assert len(set(addresses)) == 2 and min(addresses) > 0
    assert render.handles(two, "event", [link_below])[0] not in addresses


def test_the_c_signatures_are_the_table_s():
    """The C functions take the time, a pointer per array of the kind (y, p, dydt),
    istate's pointer, then the lengths of y and p; events return a float64."""
    from numba.core import types as nt

    from batchivp import linking

    f64, ptr, i64 = nt.float64, nt.CPointer(nt.float64), nt.int64
    assert linking.RHS_SIGNATURE == nt.void(f64, ptr, ptr, ptr, nt.CPointer(i64), i64, i64)
    assert linking.EVENT_SIGNATURE == nt.float64(f64, ptr, ptr, nt.CPointer(i64), i64, i64)
    assert linking.c_parameters("rhs") == ("t", "y", "p", "dydt", "istate", "n", "m")


def test_the_kernel_choice_is_checked(monkeypatch):
    monkeypatch.setenv(render.KERNEL_ENV_VAR, "fast")
    with pytest.raises(ValueError, match="BATCHIVP_KERNEL='fast': expected one of auto"):
        render.kernel_kind("cpu")
    monkeypatch.setenv(render.KERNEL_ENV_VAR, "linked")
    assert [render.kernel_kind(t) for t in ("cpu", "parallel", "cuda", "python")] == [
        "linked", "linked", "inlined", "inlined"]
    monkeypatch.setenv(render.KERNEL_ENV_VAR, "inlined")
    assert render.kernel_kind("cpu") == "inlined"


def _raises_below_half(t, y):
    if y[0] < 0.5:
        raise ValueError("y[0] fell below 0.5")
    return -y


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # numba's print
def test_solve_ivp_raises_what_the_function_raises_as_scipy_does(monkeypatch, kind):
    """A compiled C function cannot raise (numba prints the exception): the problem
    ends with Status.USER_ERROR and solve_ivp runs the call in scipy, which raises it."""
    monkeypatch.setenv(render.KERNEL_ENV_VAR, kind)
    with pytest.raises(ValueError, match="fell below 0.5"):
        bi.solve_ivp(_raises_below_half, (0.0, 2.0), [1.0], target="cpu")
