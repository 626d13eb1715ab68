"""orbit.propagate on every target, against physics and independent integrations.

Oracles: the analytic Kepler solution and the conservation of energy and angular
momentum; the secular J2 drift rates (Curtis, Example 12.2); scipy's DOP853 on the
same force models written here in numpy (vector form, SI units where the literature
uses them), with scipy's own event location.
"""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp

import batchivp as bi
from batchivp import orbit
from batchivp.orbit import constants as C
from batchivp.orbit import forces as F

DAY = 86400.0
EPOCH = 8.5e8  # TT s past J2000: 2026-12-08


# ---- the force models again, in numpy, for scipy ----

def norm(x):
    """The length of a 3-vector, summed in index order: ``np.linalg.norm`` sums with
    BLAS, in an order that depends on the CPU's kernel (README "Exactness")."""
    return math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2])


def numpy_rhs(j2=False, drag=None, sun=False, moon=False, srp=None, shadow="conical",
              epoch=EPOCH):
    """scipy's fun(t, y) for two-body gravity plus the models named."""
    def f(t, y):
        r, v = y[:3], y[3:]
        rn = norm(r)
        a = -C.MU_EARTH * r / rn ** 3
        if j2:  # Vallado eq. 8-30 in vector form
            z2 = (r[2] / rn) ** 2
            a = a - 1.5 * C.J2 * C.MU_EARTH * C.R_EARTH ** 2 / rn ** 5 * np.array(
                [r[0] * (1 - 5 * z2), r[1] * (1 - 5 * z2), r[2] * (3 - 5 * z2)])
        if drag is not None:  # (cd, A/m [m^2/kg]): SI, then back to km/s^2
            cd, am = drag
            v_rel = (v - np.cross([0.0, 0.0, C.OMEGA_EARTH], r)) * 1e3
            rho = orbit.exponential_density(rn - C.R_EARTH)
            a = a - 0.5 * rho * cd * am * norm(v_rel) * v_rel / 1e3
        tt = epoch + t
        for on, position, mu in ((sun, orbit.sun_position_array, C.MU_SUN),
                                 (moon, orbit.moon_position_array, C.MU_MOON)):
            if on:
                s = position(tt)
                a = a + mu * ((s - r) / norm(s - r) ** 3 - s / norm(s) ** 3)
        if srp is not None:  # (cr, A/m): P (AU/d)^2 cr A/m away from the Sun, in m/s^2
            cr, am = srp
            s = orbit.sun_position_array(tt)
            d = r - s
            light = 1.0 if shadow is None else F.conical_shadow(*r, *s)
            pressure = C.SOLAR_PRESSURE_1AU * (C.AU / norm(d)) ** 2
            a = a + light * pressure * cr * am * d / norm(d) / 1e3
        return np.concatenate([v, a])
    return f


def scipy_orbit(f, y0, t_end, t_eval=None, events=None, rtol=1e-10, atol=1e-9):
    return scipy_solve_ivp(f, (0.0, t_end), y0, method="DOP853", t_eval=t_eval,
                           events=events, rtol=rtol, atol=atol)


def leo(a=6778.0, ecc=0.001, inc=0.9, raan=0.3, argp=0.5, nu=0.1):
    r, v = orbit.coe2rv(a, ecc, inc, raan, argp, nu)
    return np.asarray(r), np.asarray(v)


# ---- two-body ----

def test_two_body_conserves_energy_and_momentum_and_follows_kepler(target):
    r0, v0 = leo(a=7200.0, ecc=0.05)
    n_orbits = 100
    t_end = n_orbits * orbit.period(7200.0)
    t_eval = np.linspace(0.0, t_end, 41)
    res = orbit.propagate(r0, v0, t_eval, rtol=1e-12, atol=1e-12, target=target)
    assert res.status.tolist() == [0]
    r, v = res.r[0].T, res.v[0].T  # (k, 3)
    energy = 0.5 * np.sum(v * v, 1) - C.MU_EARTH / np.linalg.norm(r, axis=1)
    h = np.cross(r, v)
    assert np.max(np.abs(energy / energy[0] - 1)) < 1e-9
    assert np.max(np.linalg.norm(h - h[0], axis=1)) / np.linalg.norm(h[0]) < 1e-9
    r_kepler, _ = orbit.kepler_propagate(np.tile(r0, (t_eval.size, 1)),
                                         np.tile(v0, (t_eval.size, 1)), t_eval)
    # Position error grows along track: 1e-9 of the orbit per revolution at most.
    assert np.max(np.linalg.norm(r - r_kepler, axis=1)) < 7200.0 * 1e-9 * n_orbits


# ---- J2: Curtis, Example 12.2 ----

def test_j2_drift_rates_match_curtis_example(target):
    # zp = 300 km, za = 3062 km, i = 28 deg, RAAN = 45 deg, w = 30 deg, nu = 40 deg.
    rp, ra = C.R_EARTH + 300.0, C.R_EARTH + 3062.0
    a, ecc = (rp + ra) / 2, (ra - rp) / (ra + rp)
    inc, raan, argp = np.radians([28.0, 45.0, 30.0])
    r0, v0 = orbit.coe2rv(a, ecc, inc, raan, argp, np.radians(40.0))
    hours = 48.0
    t_eval = np.linspace(0.0, hours * 3600.0, 193)
    res = orbit.propagate(r0, v0, t_eval, forces=[orbit.J2()],
                          events=[orbit.node_crossing(+1)], max_events=32, target=target)
    assert res.status.tolist() == [0]
    el = orbit.rv2coe(res.r[0].T, res.v[0].T)
    hours_axis = t_eval / 3600.0
    raan_rate = np.polyfit(hours_axis, np.degrees(np.unwrap(el.raan)), 1)[0]
    argp_rate = np.polyfit(hours_axis, np.degrees(np.unwrap(el.argp)), 1)[0]
    # The secular rates (Curtis eqs. 4.52-4.53) and the values the book prints.
    n = math.sqrt(C.MU_EARTH / a ** 3)
    factor = 1.5 * n * C.J2 * (C.R_EARTH / (a * (1 - ecc ** 2))) ** 2 * 3600 * 180 / math.pi
    want_raan, want_argp = -factor * math.cos(inc), factor * (2 - 2.5 * math.sin(inc) ** 2)
    assert raan_rate == pytest.approx(want_raan, rel=0.01)
    assert argp_rate == pytest.approx(want_argp, rel=0.01)
    assert raan_rate == pytest.approx(-0.172, rel=0.01)
    assert argp_rate == pytest.approx(0.282, rel=0.01)
    # Ascending nodes: z = 0 with z rising, one per revolution, as scipy finds them.
    t_nodes = res.t_events[0][0][: res.n_events[0, 0]]
    node = lambda t, y: y[2]
    node.direction = 1.0
    ref = scipy_orbit(numpy_rhs(j2=True), np.r_[r0, v0], t_eval[-1], events=[node])
    assert len(t_nodes) == len(ref.t_events[0]) >= hours * 3600 / orbit.period(a) - 1
    np.testing.assert_allclose(t_nodes, ref.t_events[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.y_events[0][0, : len(t_nodes), 2], 0.0, atol=1e-9)


def test_summaries_of_orbit_quantities_equal_numpy_over_the_stored_states(target):
    """Lowest altitude, largest eccentricity and when, computed in the kernel, against
    numpy on the stored states with the independent rv2coe; save_states=False gives
    the same without any (N, 6, k) array."""
    r0, v0 = orbit.coe2rv(np.array([6900.0, 7200.0, 8000.0]), np.array([0.01, 0.05, 0.2]),
                          0.9, 0.3, 0.2, 0.1)
    t_eval = np.linspace(0.0, 6 * 3600.0, 97)
    kw = dict(forces=[orbit.J2()], observables=["altitude", "eccentricity"],
              summarize=("min", "max", "argmin", "mean"), target=target)
    res = orbit.propagate(r0, v0, t_eval, **kw)
    alone = orbit.propagate(r0, v0, t_eval, save_states=False, **kw)
    assert alone.r is None and res.summary_names[-2:] == ("altitude", "eccentricity")
    altitude = res.altitude
    ecc = np.array([orbit.rv2coe(res.r[i].T, res.v[i].T).ecc for i in range(3)])
    np.testing.assert_allclose(res.statistic("min", "altitude"), altitude.min(1), rtol=1e-13)
    np.testing.assert_allclose(res.statistic("max", "eccentricity"), ecc.max(1), rtol=1e-9)
    np.testing.assert_allclose(res.statistic("mean", "x"), res.r[:, 0].mean(1), rtol=1e-12)
    np.testing.assert_array_equal(res.statistic("argmin", "altitude"), t_eval[altitude.argmin(1)])
    for name in kw["summarize"]:
        np.testing.assert_array_equal(alone.summary[name], res.summary[name])
    with pytest.raises(ValueError, match="unknown orbit quantity 'apogee'"):
        orbit.propagate(r0, v0, t_eval, observables=["apogee"], summarize="min")
    with pytest.raises(ValueError, match="was not summarized"):
        res.statistic("min", "speed")


# ---- drag and re-entry ----

def test_drag_decay_and_reentry_time_match_scipy(target):
    drag = (2.2, 0.08)  # cd, A/M [m^2/kg]: a light fragment
    r0, v0 = leo(a=C.R_EARTH + 180.0, ecc=0.0005)
    t_end = 2.0 * DAY
    def below_100_km(t, y):
        return np.linalg.norm(y[:3]) - C.R_EARTH - 100.0

    below_100_km.terminal, below_100_km.direction = True, -1.0
    ref = scipy_orbit(numpy_rhs(drag=drag), np.r_[r0, v0], t_end, events=[below_100_km])
    ref_reentry = ref.t_events[0][0]
    res = orbit.propagate(r0, v0, t_span=(0.0, t_end), forces=[orbit.ExponentialDrag(*drag)],
                          events=[orbit.altitude_below(100.0)], target=target)
    assert res.status.tolist() == [1]
    assert res.reentered.tolist() == [True]
    assert 3600.0 < ref_reentry < t_end  # it does decay within the span
    assert abs(res.t_reentry[0] - ref_reentry) < 1.0
    assert res.t_final[0] == res.t_reentry[0]
    assert np.linalg.norm(res.r_final[0]) == pytest.approx(C.R_EARTH + 100.0, abs=1e-6)
    # Without drag nothing re-enters: the decay is the drag's doing.
    calm = orbit.propagate(r0, v0, t_span=(0.0, 3 * 3600.0), events=[orbit.altitude_below(100.0)],
                           target="cpu")
    assert calm.reentered.tolist() == [False] and np.isnan(calm.t_reentry[0])


# ---- third bodies and radiation pressure ----

SSO = dict(a=C.R_EARTH + 700.0, ecc=0.01, inc=1.7)  # a sun-synchronous-like orbit
SRP = (1.5, 0.05)  # cr, A/M [m^2/kg]


def relative_difference(res, ref):
    y = np.concatenate([res.r[0], res.v[0]])
    return np.max(np.abs(y - ref.y) / np.max(np.abs(ref.y), axis=1, keepdims=True))


def test_third_bodies_and_radiation_pressure_match_scipy_after_one_day(target,
                                                                      scipy_in_index_order):
    """The same steps as scipy with index-order sums (and forces summed so); states to
    1e-8 relative."""
    r0, v0 = leo(**SSO)
    t_end = DAY
    t_eval = np.linspace(0.0, t_end, 9)
    tol = dict(rtol=1e-12, atol=1e-12)
    ref = scipy_orbit(numpy_rhs(sun=True, moon=True, srp=SRP, shadow=None), np.r_[r0, v0],
                      t_end, t_eval=t_eval, **tol)
    forces = [orbit.ThirdBody("sun"), orbit.ThirdBody("moon"),
              orbit.SolarRadiationPressure(*SRP, shadow=None)]
    res = orbit.propagate(r0, v0, t_eval, forces=forces, epoch=EPOCH, target=target, **tol)
    assert res.status.tolist() == [0]
    assert res.nfev[0] == ref.nfev
    assert relative_difference(res, ref) < 1e-8
    # The perturbations are resolved: without them the orbit is 1e-6 elsewhere.
    kepler = scipy_orbit(numpy_rhs(), np.r_[r0, v0], t_end, t_eval=t_eval, **tol)
    assert np.max(np.abs(kepler.y - ref.y) / np.max(np.abs(ref.y), axis=1, keepdims=True)) > 1e-6


def test_radiation_pressure_in_the_conical_shadow_and_shadow_events(target):
    r0, v0 = leo(**SSO)
    t_end = DAY / 2
    t_eval = np.linspace(0.0, t_end, 5)
    tol = dict(rtol=1e-12, atol=1e-12)
    ref = scipy_orbit(numpy_rhs(srp=SRP), np.r_[r0, v0], t_end, t_eval=t_eval, **tol)
    res = orbit.propagate(r0, v0, t_eval, forces=[orbit.SolarRadiationPressure(*SRP)],
                          epoch=EPOCH, events=[orbit.umbra(), orbit.penumbra(), orbit.umbra(+1.0)],
                          target=target, **tol)
    assert res.status.tolist() == [0]
    # The shadow's edges are kinks in the force: there the local order drops and two
    # integrations with last-bit differences take different steps, so agreement is
    # that of the integration error (measured: 1e-8 after a day), not round-off.
    assert relative_difference(res, ref) < 1e-7
    no_shadow = scipy_orbit(numpy_rhs(srp=SRP, shadow=None), np.r_[r0, v0], t_end, t_eval=t_eval, **tol)
    assert np.max(np.abs(no_shadow.y - ref.y) / np.max(np.abs(ref.y), axis=1, keepdims=True)) > 3e-7
    # Shadow events, once per pass: penumbra entry, umbra entry seconds later, umbra exit.
    n = res.n_events[0]
    assert n[0] >= 1 and n[0] == n[1] and abs(int(n[2]) - int(n[0])) <= 1
    t_pen, t_umb = res.t_events[1][0, 0], res.t_events[0][0, 0]
    assert t_pen < t_umb < t_pen + 60.0
    for e, t_ev in ((0, t_umb), (1, t_pen)):
        ry = res.y_events[e][0, 0]
        a, b, c = F.conical_angles(*ry[:3], *orbit.sun_position_array(EPOCH + t_ev))
        assert abs(c - ((b - a) if e == 0 else (a + b))) < 1e-10
    sun_at_umbra = orbit.sun_position_array(EPOCH + t_umb)
    assert F.conical_shadow(*res.y_events[0][0, 0, :3], *sun_at_umbra) < 1e-6
    # scipy finds the same umbra entries on its own trajectory.
    def umbra_g(t, y):
        a, b, c = F.conical_angles(*y[:3], *orbit.sun_position_array(EPOCH + t))
        return c - (b - a)

    umbra_g.direction = -1.0
    ref_events = scipy_orbit(numpy_rhs(srp=SRP), np.r_[r0, v0], t_end, events=[umbra_g], **tol)
    np.testing.assert_allclose(res.t_events[0][0, :n[0]], ref_events.t_events[0], rtol=0, atol=1e-4)


# ---- batches: per-object parameters, user forces ----

@bi.rhs
def along_track_thrust(t, y, q, dydt):
    """q[0]: acceleration [km/s^2] along the velocity."""
    v = math.sqrt(y[3] * y[3] + y[4] * y[4] + y[5] * y[5])
    dydt[3] += q[0] * y[3] / v
    dydt[4] += q[0] * y[4] / v
    dydt[5] += q[0] * y[5] / v


def radial_push(t, y, q, dydt):
    r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    dydt[3] += q[0] * y[0] / r
    dydt[4] += q[0] * y[1] / r
    dydt[5] += q[0] * y[2] / r


def test_batch_with_per_object_parameters_and_user_forces(target):
    n_obj = 6
    rng = np.random.default_rng(5)
    a = C.R_EARTH + rng.uniform(250.0, 600.0, n_obj)
    r0, v0 = orbit.coe2rv(a, 0.001, rng.uniform(0.2, 1.5, n_obj), 0.0, 0.0, rng.uniform(0, 6, n_obj))
    area = rng.uniform(0.005, 0.05, n_obj)
    thrust = rng.uniform(-1e-8, 1e-8, n_obj)
    forces = [orbit.J2(), orbit.COESA76Drag(cd=2.2, area_to_mass=area),
              orbit.UserForce(along_track_thrust, params=[thrust]),
              orbit.UserForce(radial_push, params=[1e-9])]
    t_end = 6 * 3600.0
    t_eval = np.linspace(0.0, t_end, 5)
    res = orbit.propagate(r0, v0, t_eval, forces=forces, target=target)
    assert res.status.tolist() == [0] * n_obj
    for i in range(n_obj):
        # Each object alone, with its own parameter values as scalars: bitwise equal.
        alone = orbit.propagate(r0[i], v0[i], t_eval, target=target, forces=[
            orbit.J2(), orbit.COESA76Drag(cd=2.2, area_to_mass=area[i]),
            orbit.UserForce(along_track_thrust, params=[thrust[i]]),
            orbit.UserForce(radial_push, params=[1e-9])])
        assert np.array_equal(alone.r[0], res.r[i]) and alone.nfev[0] == res.nfev[i]
    # The user forces act as written: against scipy with the same accelerations.
    i = int(np.argmax(np.abs(thrust)))

    def f(t, y):
        dydt = numpy_rhs(j2=True)(t, y)
        # Drag in the COESA table: the kernel's function, tested in test_orbit_forces.
        F.coesa76_drag_acceleration(t, y, np.array([2.2, area[i]]), dydt)
        along_track_thrust(t, y, np.array([thrust[i]]), dydt)
        radial_push(t, y, np.array([1e-9]), dydt)
        return dydt

    ref = scipy_orbit(f, np.r_[r0[i], v0[i]], t_end, t_eval=t_eval)
    np.testing.assert_allclose(res.r[i], ref.y[:3], rtol=0, atol=1e-6)


# ---- arguments ----

def test_propagate_checks_its_arguments():
    r0, v0 = leo()
    with pytest.raises(ValueError, match=r"r must have shape \(N, 3\) or \(3,\)"):
        orbit.propagate(np.zeros((2, 2)), v0, [0.0, 1.0])
    with pytest.raises(ValueError, match="r and v must have the same shape"):
        orbit.propagate(np.tile(r0, (2, 1)), v0, [0.0, 1.0])
    with pytest.raises(ValueError, match="give t_eval"):
        orbit.propagate(r0, v0)
    with pytest.raises(ValueError, match="zero position"):
        orbit.propagate(np.zeros(3), v0, [0.0, 1.0])
    with pytest.raises(TypeError, match=r"pass an instance, J2\(\)"):
        orbit.propagate(r0, v0, [0.0, 1.0], forces=[orbit.J2])
    with pytest.raises(TypeError, match="forces must hold force models"):
        orbit.propagate(r0, v0, [0.0, 1.0], forces=["drag"])
    with pytest.raises(ValueError, match=r"epoch .* must be a scalar or have one value per object, shape \(1,\)"):
        orbit.propagate(r0, v0, [0.0, 1.0], epoch=[1.0, 2.0])


# The orbit kernel's PTX (every force model, shadow and re-entry events) is compiled
# by `python -m batchivp cuda-report`, checked in tests/test_render.py.


# ---- Dask ----

def test_force_models_pickle_as_their_recipe():
    import pickle

    rhs = orbit.force_model([orbit.J2(), orbit.SolarRadiationPressure(shadow="cylindrical"),
                                orbit.UserForce(radial_push, params=[1.0])])
    again = pickle.loads(pickle.dumps(rhs))
    assert again.key == rhs.key and again.source == rhs.source
    ev = pickle.loads(pickle.dumps(orbit.altitude_below(120.0, terminal=3)))
    assert ev.key == orbit.altitude_below(120.0).key and ev.terminal == 3 and ev.direction == -1.0


def test_propagate_takes_dask_arrays_and_equals_a_local_run():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(3)
    n_obj = 40
    r0, v0 = orbit.coe2rv(C.R_EARTH + rng.uniform(200.0, 400.0, n_obj), 0.01, 1.0, 0.0, 0.0,
                          rng.uniform(0, 6, n_obj))
    area = rng.uniform(0.01, 0.2, n_obj)
    kwargs = dict(t_eval=np.linspace(0.0, 7200.0, 5), target="cpu",
                  forces=[orbit.J2(), orbit.ExponentialDrag(area_to_mass=area)],
                  events=[orbit.altitude_below(300.0)])  # perigees 130-330 km
    local = orbit.propagate(r0, v0, **kwargs)
    lazy = orbit.propagate(da.from_array(r0, chunks=15), da.from_array(v0, chunks=15), **kwargs)
    assert isinstance(lazy.r, da.Array)
    import dask

    with dask.config.set(scheduler="threads"):
        r, status, reentered, t_re = dask.compute(lazy.r, lazy.status, lazy.reentered, lazy.t_reentry)
    assert local.reentered.any() and not local.reentered.all()
    assert np.array_equal(r, local.r, equal_nan=True)
    assert np.array_equal(status, local.status) and np.array_equal(reentered, local.reentered)
    assert np.array_equal(t_re, local.t_reentry, equal_nan=True)
