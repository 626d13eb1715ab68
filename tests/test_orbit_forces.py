"""The force models' device functions, run as plain Python, against their definitions.

Oracles: numerical gradients of the zonal potentials, the drag and radiation pressure
formulas worked in SI units, the direct third-body formula, and the shadow fraction
measured by sampling the Sun's disc. No compilation: these run in milliseconds.
"""

import math
import pickle

import numpy as np
import pytest

from batchivp import orbit
from batchivp.orbit import constants as C
from batchivp.orbit import forces as F

RNG = np.random.default_rng(20261122)
# Six states at 7000 km from the centre in random directions, random velocities.
STATES = [np.concatenate([7000.0 * r / np.linalg.norm(r), v])
          for r, v in zip(RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3)) * 5.0)]


def acceleration(function, y, q=(), t=0.0):
    dydt = np.zeros(6)
    function(t, y, np.asarray(q, dtype=float), dydt)
    return dydt[3:]


def zonal_potential(n, Jn, r):
    """-mu/r Jn (R/r)^n Pn(z/r): the Jn part of Earth's potential (a = grad U)."""
    rr = np.linalg.norm(r)
    s = r[2] / rr
    P = {2: (3 * s * s - 1) / 2, 3: (5 * s ** 3 - 3 * s) / 2}[n]
    return -C.MU_EARTH / rr * Jn * (C.R_EARTH / rr) ** n * P


def gradient(U, r, h=1e-2):
    g = np.empty(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        # 4th-order central difference: error ~ h^4 U''''' << 1e-10 relative here.
        g[i] = (-U(r + 2 * e) + 8 * U(r + e) - 8 * U(r - e) + U(r - 2 * e)) / (12 * h)
    return g


@pytest.mark.parametrize("n, Jn, function", [(2, C.J2, F.j2_acceleration),
                                             (3, C.J3, F.j3_acceleration)])
def test_zonal_accelerations_are_the_gradient_of_their_potential(n, Jn, function):
    for y in STATES:
        a = acceleration(function, y)
        want = gradient(lambda r: zonal_potential(n, Jn, r), y[:3])
        np.testing.assert_allclose(a, want, rtol=1e-7, atol=1e-9 * np.linalg.norm(want))


def test_two_body_sets_velocity_and_inverse_square_gravity():
    y = STATES[0]
    dydt = np.full(6, np.nan)
    F.two_body_acceleration(0.0, y, np.zeros(0), dydt)
    assert np.array_equal(dydt[:3], y[3:])
    r = np.linalg.norm(y[:3])
    np.testing.assert_allclose(dydt[3:], -C.MU_EARTH * y[:3] / r ** 3, rtol=1e-15)


@pytest.mark.parametrize("function, density", [
    (F.exponential_drag_acceleration, orbit.exponential_density),
    (F.coesa76_drag_acceleration, orbit.coesa76_density)])
def test_drag_in_si_units(function, density):
    cd, am = 2.2, 0.013  # -, m^2/kg
    for y in STATES[:3]:
        y = y.copy()
        y[:3] *= (C.R_EARTH + 250.0) / np.linalg.norm(y[:3])  # 250 km up
        r_m, v_ms = y[:3] * 1e3, y[3:] * 1e3
        omega = np.array([0.0, 0.0, C.OMEGA_EARTH])
        v_rel = v_ms - np.cross(omega, r_m)
        rho = density(np.linalg.norm(y[:3]) - C.R_EARTH)  # kg/m^3
        a_si = -0.5 * rho * cd * am * np.linalg.norm(v_rel) * v_rel  # m/s^2
        np.testing.assert_allclose(acceleration(function, y, (cd, am)), a_si / 1e3, rtol=1e-13)


@pytest.mark.parametrize("function, position, mu", [
    (F.sun_point_mass_acceleration, orbit.sun_position_array, C.MU_SUN),
    (F.moon_point_mass_acceleration, orbit.moon_position_array, C.MU_MOON)])
def test_third_body_equals_the_direct_formula(function, position, mu):
    t = 8.5e8  # TT s past J2000 (2026)
    s = position(t)
    for y in STATES:
        r = y[:3]
        direct = mu * ((s - r) / np.linalg.norm(s - r) ** 3 - s / np.linalg.norm(s) ** 3)
        # The direct form cancels ~|s|/|r| of its digits (1e4 for the Sun); Battin's
        # does not, so the difference measures the direct form's round-off.
        rtol = 1e-14 * np.linalg.norm(s) / np.linalg.norm(r) * 10
        np.testing.assert_allclose(acceleration(function, y, t=t), direct, rtol=max(rtol, 1e-12))


def sunlit_fraction_by_sampling(r, s, n=400):
    """Fraction of the Sun's disc not hidden by the Earth's, seen from r: a grid over
    the Sun's disc in the observer's tangent plane (small-angle geometry)."""
    d = s - r
    dist = np.linalg.norm(d)
    u = d / dist
    a = math.asin(F.R_SUN / dist)
    b = math.asin(C.R_EARTH / np.linalg.norm(r))
    e = -r / np.linalg.norm(r)
    c = math.acos(np.clip(u @ e, -1, 1))
    # Put the Sun at the origin and the Earth at distance c on the x axis (angles).
    x, y = np.meshgrid(np.linspace(-a, a, n), np.linspace(-a, a, n))
    on_sun = x * x + y * y <= a * a
    hidden = (x - c) ** 2 + y * y <= b * b
    return 1.0 - np.count_nonzero(on_sun & hidden) / np.count_nonzero(on_sun)


def test_conical_shadow_matches_the_covered_fraction_of_the_suns_disc():
    s = orbit.sun_position_array(8.5e8)
    u = s / np.linalg.norm(s)
    # An orbit radius of 7000 km; points behind the Earth at growing distance from
    # the shadow axis sweep umbra -> penumbra -> sunlight.
    side = np.cross(u, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    fractions = []
    for offset in np.linspace(6300.0, 6420.0, 25):
        along = -math.sqrt(7000.0 ** 2 - offset ** 2)
        r = along * u + offset * side
        got = F.conical_shadow(*r, *s)
        want = sunlit_fraction_by_sampling(r, s)
        assert abs(got - want) < 0.01, (offset, got, want)
        fractions.append(got)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert np.all(np.diff(fractions) >= 0)
    # The cylindrical model switches at R_EARTH from the axis.
    assert F.cylindrical_shadow(*(-7000.0 * u + 6370.0 * side), *s) == 0.0
    assert F.cylindrical_shadow(*(-7000.0 * u + 6390.0 * side), *s) == 1.0
    assert F.cylindrical_shadow(*(7000.0 * u), *s) == 1.0


def test_radiation_pressure_in_si_units_and_off_in_the_umbra():
    t = 8.5e8
    s = orbit.sun_position_array(t)
    cr, am = 1.5, 0.02
    y = np.r_[7000.0 * s / np.linalg.norm(s), 0.0, 7.5, 0.0]  # sunlit side
    d = y[:3] - s
    flux_pressure = C.SOLAR_PRESSURE_1AU * (C.AU / np.linalg.norm(d)) ** 2  # N/m^2
    a_si = flux_pressure * cr * am * d / np.linalg.norm(d)  # m/s^2, away from the Sun
    for function in (F.srp_acceleration, F.srp_cylindrical_acceleration, F.srp_conical_acceleration):
        np.testing.assert_allclose(acceleration(function, y, (cr, am), t), a_si / 1e3, rtol=1e-14)
    behind = np.r_[-y[:3], y[3:]]
    assert np.array_equal(acceleration(F.srp_conical_acceleration, behind, (cr, am), t), np.zeros(3))
    assert np.array_equal(acceleration(F.srp_cylindrical_acceleration, behind, (cr, am), t), np.zeros(3))
    assert np.any(acceleration(F.srp_acceleration, behind, (cr, am), t) != 0.0)


def test_force_parameters_are_checked_and_laid_out_per_object():
    drag = orbit.ExponentialDrag(cd=2.2, area_to_mass=np.array([0.01, 0.02, 0.03]))
    cols = drag.columns(3)
    assert cols.shape == (3, 2)
    assert np.array_equal(cols[:, 0], [2.2] * 3) and np.array_equal(cols[:, 1], [0.01, 0.02, 0.03])
    with pytest.raises(ValueError, match=r"area_to_mass must be a scalar or have one value per object, shape \(4,\)"):
        drag.columns(4)
    with pytest.raises(ValueError, match="cd must be non-negative"):
        orbit.ExponentialDrag(cd=-1.0).columns(2)
    with pytest.raises(ValueError, match="non-finite"):
        orbit.SolarRadiationPressure(cr=np.nan).columns(2)
    with pytest.raises(ValueError, match="body must be 'sun' or 'moon'"):
        orbit.ThirdBody("mars")
    with pytest.raises(ValueError, match="shadow must be"):
        orbit.SolarRadiationPressure(shadow="round")
    # A user force's parameters may be negative (a thrust direction).
    assert orbit.UserForce(F.j2_acceleration, params=[-1.0]).columns(2).tolist() == [[-1.0], [-1.0]]
    # The generated code names the parameters, not their values: one module per model.
    assert drag.signature() == "ExponentialDrag(cd, area_to_mass)"
    a = orbit.force_model([orbit.ExponentialDrag(cd=2.0)])
    b = orbit.force_model([orbit.ExponentialDrag(cd=2.5, area_to_mass=np.ones(7))])
    assert a.key == b.key


def event_value(event, y, forces=(), events=None):
    """``event`` at ``y`` as propagate runs it: placed among ``events`` (default: alone)
    after ``forces``, reading the parameter vector propagate builds."""
    events = [event] if events is None else events
    p = orbit.parameter_matrix(forces, 1, epoch=0.0, events=events)[0]
    return orbit.event_functions(forces, events)[events.index(event)](0.0, y, p)


def test_event_values_are_altitude_node_and_latitude():
    y = np.array([4000.0, 3000.0, 5000.0, 1.0, 2.0, 3.0])
    r = np.linalg.norm(y[:3])
    assert event_value(orbit.altitude_below(120.0), y) == pytest.approx(r - C.R_EARTH - 120.0, rel=1e-15)
    assert event_value(orbit.node_crossing(), y) == 5000.0
    lat = math.degrees(math.asin(5000.0 / r))
    assert abs(event_value(orbit.latitude_crossing(lat), y)) < 1e-15
    ev = orbit.altitude_below(100.0)
    assert ev.terminal is True and ev.direction == -1.0
    with pytest.raises(ValueError, match="latitude must lie strictly between"):
        orbit.latitude_crossing(90.0)
    with pytest.raises(ValueError, match="no penumbra"):
        orbit.events._shadow_event("penumbra", "cylindrical", -1.0, False, penumbra=True)


def test_event_thresholds_are_run_time_values_one_code_for_all():
    # The generated code names the event and its place, not its threshold: one module.
    forces = [orbit.J2(), orbit.ExponentialDrag()]
    for make, low, high in [(orbit.altitude_below, 100.0, 120.0),
                            (orbit.altitude_crossing, 150.0, 300.0),
                            (orbit.latitude_crossing, -30.0, 60.0)]:
        assert make(low).key != make(high).key  # alone: the value is written in
        assert make(low).at(1).key == make(high).at(1).key
        placed = [orbit.event_functions(forces, [orbit.node_crossing(), make(h)])[1]
                  for h in (low, high)]
        assert placed[0].key == placed[1].key
    # Each event reads its own value after the forces' and the events' before it.
    y = np.array([4000.0, 3000.0, 5000.0, 1.0, 2.0, 3.0])
    r = np.linalg.norm(y[:3])
    lat = math.degrees(math.asin(5000.0 / r))
    events = [orbit.altitude_crossing(300.0), orbit.node_crossing(), orbit.latitude_crossing(lat),
              orbit.altitude_below(120.0)]
    p = orbit.parameter_matrix(forces, 2, epoch=0.0, events=events)
    assert p.shape == (2, 1 + 2 + 3)  # epoch, cd, A/M, then the events' values
    np.testing.assert_allclose(p[:, 3:], [[300.0, 5000.0 / r, 120.0]] * 2, rtol=1e-15)
    assert event_value(events[0], y, forces, events) == pytest.approx(r - C.R_EARTH - 300.0, rel=1e-15)
    assert event_value(events[1], y, forces, events) == 5000.0
    assert abs(event_value(events[2], y, forces, events)) < 1e-15
    assert event_value(events[3], y, forces, events) == pytest.approx(r - C.R_EARTH - 120.0, rel=1e-15)
    # Placing keeps what the user set: terminal and direction are options, not code.
    events[3].terminal = 2
    placed = orbit.event_functions(forces, events)
    assert (placed[3].terminal, placed[3].direction) == (2, -1.0)
    assert (placed[2].terminal, placed[2].direction) == (False, 0.0)
    # A placed event pickles (to Dask workers) as itself, in its place.
    again = pickle.loads(pickle.dumps(placed[3]))
    assert (again.key, again.k, again.values) == (placed[3].key, placed[3].k, (120.0,))
    assert (again.orbit_role, again.terminal, again.direction) == ("reentry", 2, -1.0)
