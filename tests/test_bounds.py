"""Every index of a user function stays inside y, dydt and p (issue 13, item 2).

The static analysis (``batchivp.bounds``) on small sources; the front ends refusing,
before any kernel runs, what would read or write out of range; the kernel ending a
problem with status -7 where an index is only known at run time, on every target,
while the rest of the batch matches scipy.
"""

import importlib
import math
import textwrap
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp

import batchivp as bi
from batchivp import Status
from batchivp import bounds, models, orbit, plain, registry, render
from batchivp.core import access
from batchivp.core import dop853 as core
from batchivp.source import Plugin

orbit_propagate = importlib.import_module("batchivp.orbit.propagate")  # the module, not the function


def fake_plugin(source, kind="rhs", globals_=None, helpers=()):
    """A plugin record as the registry makes one, without compiling it."""
    source = textwrap.dedent(source)
    name = source.split("def ", 1)[1].split("(", 1)[0]
    return Plugin(kind, name, source, globals_ or {}, helpers)


def needs(report):
    """Per role, the length the uses require (0: none)."""
    return {role: max((r.need for r in reqs), default=0)
            for role, reqs in report.requirements.items()}


# ---- the analysis ----

def test_constant_indices_give_the_lengths_needed():
    report = bounds.analyse(fake_plugin("""
        def lorenz(t, y, p, dydt):
            dydt[0] = p[0] * (y[1] - y[0])
            dydt[1] = y[0] * (p[1] - y[2]) - y[1]
            dydt[2] = y[0] * y[1] - p[2] * y[2]
    """))
    assert needs(report) == {"y": 3, "p": 3, "dydt": 3}
    assert report.dydt_written == 3
    assert report.checked == {} and report.unverifiable == []


def test_range_loops_and_module_constants_are_bounded():
    report = bounds.analyse(fake_plugin("""
        def gather(t, y, p, dydt):
            for i in range(N):
                dydt[i] = -y[IDX[i]]
            for j in range(1, 7, 2):
                dydt[j // 2] += p[j % 2]
    """, globals_={"N": ("const", "3"), "IDX": ("const", "(0, 2, 4, )")}))
    assert needs(report) == {"y": 5, "p": 2, "dydt": 3}
    assert report.dydt_written == 3
    assert report.checked == {}


def test_lengths_bound_indices_whatever_n_is():
    report = bounds.analyse(fake_plugin("""
        def ring(t, y, p, dydt):
            n = len(y)
            for i in range(n):
                dydt[i] = y[(i + 1) % n] - y[i]
            dydt[y.shape[0] - 1] += y[len(y) - 1]
    """))
    assert needs(report) == {"y": 0, "p": 0, "dydt": 0}
    assert report.checked == {}
    assert report.dydt_written is None  # it writes as many as there are


def test_negative_indices_need_that_many_elements():
    report = bounds.analyse(fake_plugin("""
        def last(t, y, p, dydt):
            dydt[0] = y[-3] + p[-1]
    """))
    assert needs(report) == {"y": 3, "p": 1, "dydt": 1}
    assert report.requirements["y"][0].index == -3


def test_guards_refine_indices_and_lengths():
    report = bounds.analyse(fake_plugin("""
        def guarded(t, y, p, dydt):
            for i in range(10):
                if i < 3:
                    dydt[i] = -y[i]
            dydt[0] += y[5] if len(y) > 5 else 0.0
    """))
    assert needs(report) == {"y": 3, "p": 0, "dydt": 3}
    assert report.checked == {}


def test_indices_computed_at_run_time_are_checked():
    source = """
        def shifted(t, y, p, dydt):
            k = int(p[0])
            dydt[0] = -y[0]
            dydt[k] += y[k]
    """
    report = bounds.analyse(fake_plugin(source))
    assert needs(report)["p"] == 1
    assert len(report.checked["shifted"]) == 2  # dydt[k] (read and write) and y[k]
    assert report.dydt_written is None  # a write it cannot bound: no "transposed" claim
    # The rewrite checks just those, and runs as Python with the core's access functions.
    text = bounds.instrument(textwrap.dedent(source), "shifted", *bounds.rewrite_plan(
        [fake_plugin(source)])["shifted"])
    assert "bounds_checked_read(y, k, bounds_istate)" in text and "dydt[0] = -y[0]" in text
    namespace = {"bounds_checked_read": access.bounds_checked_read,
                 "bounds_checked_index": access.bounds_checked_index}
    exec(text, namespace)
    for k, expect_status in ((1, 0), (-1, 0), (2, Status.INDEX), (-3, Status.INDEX)):
        y, dydt = np.array([1.0, 2.0]), np.zeros(2)
        istate = np.zeros(core.ISTATE_SIZE, dtype=np.int64)
        namespace["shifted"](0.0, y, np.array([float(k)]), dydt, istate)
        assert istate[core.IS_STATUS] == expect_status
        if expect_status == 0:
            assert dydt[k] == y[k] + (-1.0 if k % 2 == 0 else 0.0)
        else:
            assert list(dydt) == [-1.0, 0.0]  # the write out of range was dropped


def quarter(t, y, q, dydt):
    dydt[3] += q[0] * y[4] + q[1]


def shift_y(a, i):
    return a[i + 1]


def test_helpers_map_their_arguments():
    composed = plain.compose("rhs", textwrap.dedent("""
        def model(t, y, p, dydt):
            dydt[0] = shift_y(y, 5)
            dydt[1] = 0.0
            dydt[2] = 0.0
            quarter(t, y, p[2:4], dydt)
    """), {"quarter": quarter, "shift_y": shift_y})
    report = bounds.analyse(composed)
    assert needs(report) == {"y": 5, "p": 4, "dydt": 4}
    assert report.dydt_written == 4
    # shift_y's index depends on its argument: checked inside it, which takes istate.
    assert any(name.startswith("plain_shift_y") for name in report.checked)
    assert any(name.startswith("plain_shift_y") for name in report.status_functions)
    assert composed.name in report.status_functions  # it passes istate on


def test_a_slice_read_beyond_its_end_is_always_out_of_range():
    composed = plain.compose("rhs", textwrap.dedent("""
        def model(t, y, p, dydt):
            quarter(t, y, p[1:2], dydt)
    """), {"quarter": quarter})
    report = bounds.analyse(composed)
    assert [(role, use.arr.cap, use.need) for role, use in report.out_of_view] == [("p", 1, 2)]
    with pytest.raises(ValueError, match=r"'quarter' .* reads q\[1\] .* given 1 value of p"):
        bounds.check([composed], [], 6, 10)


def test_uses_it_cannot_follow_are_reported_and_refused_at_registration():
    opaque = fake_plugin("""
        def opaque(t, y, p, dydt):
            dydt[0] = helpers.first(y)
    """, globals_={"helpers": ("module", "mypackage.helpers")})
    report = bounds.analyse(opaque)
    assert len(report.unverifiable) == 1 and "helpers.first(y)" in report.unverifiable[0]
    with pytest.raises(bounds.Unverifiable, match=r"cannot prove .* helpers.first\(y\)"):
        bounds.check([opaque], [], 1, 0)
    with pytest.raises(registry.RegistrationError, match=r"y\[0, 1\]: a tuple, None or \.\.\. index"):
        bi.register_rhs(textwrap.dedent("""
            def tuple_index_rhs(t, y, p, dydt):
                dydt[0] = y[0, 1]
        """))


# ---- the front ends refuse, before any kernel runs ----

@bi.rhs
def writes_dydt_10(t, y, p, dydt):
    dydt[0] = -y[0]
    dydt[10] = 1.0


@bi.rhs
def writes_dydt_far(t, y, p, dydt):
    dydt[0] = -y[0]
    dydt[100000000] = 1.0


@pytest.mark.parametrize("fun, y0, params, match", [
    (writes_dydt_10, np.ones((2, 3)), None,
     r"rhs 'writes_dydt_10' writes dydt\[10\] .* but y0 has 3 columns per problem"),
    (writes_dydt_far, np.ones((2, 3)), None,
     r"rhs 'writes_dydt_far' writes dydt\[100000000\] .* but y0 has 3 columns"),
    (models.lorenz, np.ones((2, 3)), 10.0,
     r"rhs 'lorenz' reads p\[2\] .* but params has 1 column per problem"),
    (models.lorenz, np.ones((2, 3)), None, r"rhs 'lorenz' reads p\[2\] .* but no params were given"),
    (models.lorenz, np.ones((2, 2)), [10.0, 28.0, 8 / 3],
     r"rhs 'lorenz' reads y\[2\] .* but y0 has 2 columns per problem"),
    (models.lorenz, np.ones((40, 3)).T, [10.0, 28.0, 8 / 3],
     r"rhs 'lorenz' writes dydt\[0..2\] only but y0 has 40 columns per problem.*"
     r"is y0 transposed\? expected shape \(N, 3\)"),
    (models.two_body, np.ones((2, 6)), None, r"rhs 'two_body' reads p\[0\] .* no params were given"),
])
def test_solve_batch_refuses_indices_out_of_range(no_compile, fun, y0, params, match):
    with pytest.raises(ValueError, match=match):
        bi.solve_batch(fun, (0.0, 1.0), y0, params)


@bi.event
def reads_p3(t, y, p):
    return y[0] - p[3]


def test_solve_batch_checks_events(no_compile):
    with pytest.raises(ValueError, match=r"event 'reads_p3' reads p\[3\] .* params has 3 columns"):
        bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((1, 3)), [10.0, 28.0, 8 / 3],
                       events=[reads_p3])


def test_solve_ivp_names_args_for_a_registered_rhs(no_compile):
    with pytest.raises(ValueError, match=r"rhs 'lorenz' reads p\[2\] .* args pack into 1 value"):
        bi.solve_ivp(models.lorenz, (0.0, 1.0), [1.0, 0.0, 0.0], args=(10.0,))
    with pytest.raises(ValueError, match=r"reads y\[2\] .* y0 has 2 components"):
        bi.solve_ivp(models.lorenz, (0.0, 1.0), [1.0, 0.0], args=(10.0, 28.0, 8 / 3))


def test_solve_ivp_plain_function_out_of_range_raises_as_scipy(no_compile):
    fun = lambda t, y: [y[5], y[0], y[1]]  # noqa: E731
    with pytest.raises(IndexError) as ours:
        bi.solve_ivp(fun, (0.0, 1.0), [1.0, 0.0, 0.0])
    with pytest.raises(IndexError) as theirs:
        scipy_solve_ivp(fun, (0.0, 1.0), [1.0, 0.0, 0.0], method="DOP853")
    assert str(ours.value) == str(theirs.value)


def rarely_out_of_range(t, y):
    if t > 10.0:  # never within the span: scipy runs it; the bound is not proven
        return [y[5], -y[0]]
    return [y[1], -y[0]]


def test_solve_ivp_plain_function_that_might_go_out_of_range_is_solved_by_scipy(no_compile):
    with pytest.warns(bi.CompilationWarning, match=r"reads y\[5\] .* y0 has 2 components"):
        ours = bi.solve_ivp(rarely_out_of_range, (0.0, 1.0), [1.0, 0.0])
    ref = scipy_solve_ivp(rarely_out_of_range, (0.0, 1.0), [1.0, 0.0], method="DOP853")
    np.testing.assert_array_equal(ours.y, ref.y)


def rarely_out_of_range_vectorized(t, y):
    return np.vstack((y[5] if t > 10.0 else y[1], -y[0]))


def rarely_out_of_range_complex(t, y):
    return [y[5] if t > 10.0 else 1j * y[1], -1j * y[0]]


@pytest.mark.parametrize("fun, y0, vectorized", [
    (rarely_out_of_range_vectorized, [1.0, 0.0], True),
    (rarely_out_of_range_complex, [1.0 + 0j, 1j], False)], ids=["vectorized", "complex"])
def test_plain_function_given_a_copy_of_y_is_checked_against_its_length(no_compile, fun, y0,
                                                                        vectorized):
    """A vectorized or complex function gets a local copy of y, which the kernel does
    not check: an index beyond it must be proven absent, or scipy solves."""
    with pytest.warns(bi.CompilationWarning, match=r"y\[5\]: an index out of range .*2 elements"):
        ours = bi.solve_ivp(fun, (0.0, 1.0), y0, vectorized=vectorized)
    ref = scipy_solve_ivp(fun, (0.0, 1.0), y0, method="DOP853", vectorized=vectorized)
    np.testing.assert_array_equal(ours.y, ref.y)


def radial_thrust(t, y, q, dydt):
    r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    dydt[3] += q[0] * y[0] / r
    dydt[4] += q[1] * y[1] / r


def test_propagate_checks_user_forces_and_events(no_compile):
    r, v = orbit.coe2rv(6778.0, 0.001, 0.9, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"'radial_thrust' .* reads q\[1\] .* given 1 "
                                         r"parameter: pass UserForce\(\.\.\., params"):
        orbit.propagate(r, v, t_eval=[0.0, 60.0],
                        forces=[orbit.UserForce(radial_thrust, params=[1e-9])])
    with pytest.raises(ValueError, match=r"event 'reads_p3' reads p\[3\] .* the parameter "
                                         r"vector has 3 values"):
        orbit.propagate(r, v, t_eval=[0.0, 60.0], forces=[orbit.ExponentialDrag()],
                        events=[reads_p3])


def test_standard_models_and_orbit_forces_pass():
    bounds.check([models.lorenz], [], 3, 3)
    bounds.check([models.two_body], [models.radius_crossing], 6, 2)
    forces = [orbit.J2(), orbit.J3(), orbit.ExponentialDrag(), orbit.COESA76Drag(),
              orbit.ThirdBody("sun"), orbit.ThirdBody("moon"), orbit.SolarRadiationPressure(),
              orbit.SolarRadiationPressure(shadow="cylindrical"),
              orbit.UserForce(radial_thrust, params=[1e-9, 2e-9])]
    events = [orbit.altitude_below(), orbit.altitude_crossing(300.0), orbit.node_crossing(),
              orbit.latitude_crossing(30.0), orbit.umbra(), orbit.penumbra(),
              orbit.umbra(shadow="cylindrical")]
    rhs = orbit_propagate.force_model(forces)
    m = orbit_propagate.parameter_matrix(forces, 1, epoch=0.0).shape[1]
    bounds.check([rhs], events, 6, m, orbit_propagate.ORBIT_ARGUMENTS)
    # Bounded everywhere: nothing is checked at run time in the built-in models.
    for plugin in [models.lorenz, models.two_body, models.radius_crossing, rhs, *events]:
        assert bounds.analyse(plugin).checked == {}


def test_proven_functions_render_as_written():
    text, _ = render.render_source("cpu", 3, [models.lorenz])
    assert "bounds_checked" not in text.split("# ---- numerical core")[0]
    assert "user_rhs_lorenz(REAL(t), y, p, dydt)\n" in text  # no istate: nothing to check
    assert "\nINDEX_CHECKS = 0" in text  # the core's status tests compile out
    text, _ = render.render_source("cpu", 2, [shifted_decay])
    assert "\nINDEX_CHECKS = 1" in text and "user_rhs_shifted_decay(REAL(t), y, p, dydt, istate)" in text


# ---- declared dimensions ----

def test_declared_dimensions_are_checked():
    @bi.rhs(n=2, n_params=1)
    def declared_oscillator(t, y, p, dydt):
        dydt[0] = y[1]
        dydt[1] = -p[0] * y[0]

    assert (declared_oscillator.declared_n, declared_oscillator.declared_n_params) == (2, 1)
    with pytest.raises(ValueError, match=r"declares n=2 but y0 has 3 columns per problem"):
        bi.solve_batch(declared_oscillator, (0.0, 1.0), np.ones((1, 3)), 1.0)
    with pytest.raises(ValueError, match=r"declares n_params=1 but params has 2 columns"):
        bi.solve_batch(declared_oscillator, (0.0, 1.0), np.ones((1, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"declares n_params=1 but no params were given"):
        bi.solve_batch(declared_oscillator, (0.0, 1.0), np.ones((1, 2)))
    # A declaration the indices contradict is refused at once.
    with pytest.raises(registry.RegistrationError, match=r"reads y\[1\] .* it declares n=1"):
        bi.rhs(declared_oscillator, n=1)
    with pytest.raises(registry.RegistrationError, match=r"event 'declared_level' reads "
                                                         r"p\[1\] .* declares n_params=1"):
        @bi.event(terminal=True, n_params=1)
        def declared_level(t, y, p):
            return y[0] - p[1]


# ---- indices known only at run time: status -7 on every target ----

@bi.rhs
def shifted_decay(t, y, p, dydt):
    k = int(p[0])
    dydt[0] = -y[0]
    dydt[1] = -0.5 * y[1]
    dydt[k] += 0.25 * y[k]


@bi.event
def shifted_level(t, y, p):
    return y[int(p[1])] - 0.5


def read_from(t, y, q, dydt):
    dydt[0] = -y[0]
    dydt[1] = -y[1] * y[int(q[0])]


COMPOSED = plain.compose("rhs", "def via_helper(t, y, p, dydt):\n    read_from(t, y, p, dydt)\n",
                         {"read_from": read_from})


def test_indices_out_of_range_at_run_time_fail_with_their_status(target):
    # (fun, p): in range, rhs index 7, rhs index -3, event index 9, index -1 (the
    # last, as Python), a helper's index 4.
    cases = [(0, [0.0, 0.0]), (0, [7.0, 0.0]), (0, [-3.0, 0.0]), (0, [1.0, 9.0]),
             (0, [-1.0, 1.0]), (1, [4.0, 0.0]), (1, [1.0, 0.0])]
    fun_index = np.array([f for f, _ in cases])
    params = np.array([p for _, p in cases])
    y0 = np.array([[1.0, 2.0]] * len(cases))
    res = bi.solve_batch([shifted_decay, COMPOSED], (0.0, 2.0), y0, params,
                         fun_index=fun_index, events=[shifted_level], rtol=1e-8, atol=1e-10,
                         target=target)
    expected_fail = [False, True, True, True, False, True, False]
    np.testing.assert_array_equal(res.status == Status.INDEX, expected_fail)
    assert "index computed at run time was out of range" in res.message(1)
    for i, failed in enumerate(expected_fail):
        if failed:
            assert res.nfev[i] <= 2 and res.t_final[i] == 0.0  # stopped at once
            continue
        fun = (shifted_decay if fun_index[i] == 0 else COMPOSED)
        p = params[i]

        def f(t, y, fun=fun, p=p):
            dydt = np.empty(2)
            fun(t, y, p, dydt)
            return dydt

        def level(t, y, p=p):
            return shifted_level(t, y, p)

        ref = scipy_solve_ivp(f, (0.0, 2.0), y0[i], method="DOP853", rtol=1e-8, atol=1e-10,
                              events=[level])
        assert res.status[i] == ref.status == 0
        np.testing.assert_allclose(res.y_final[i], ref.y[:, -1], rtol=1e-6, atol=1e-9)
        assert res.n_events[i, 0] == len(ref.t_events[0])
