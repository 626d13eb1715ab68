"""Orbit inputs that cannot be misread (issue 13, item 6).

- astropy quantities and times at the orbit interface are converted to the documented
  units (km, km/s, s, rad, m^2/kg; TT seconds past J2000 for the epoch); a quantity of
  another physical type is an error naming the argument. Oracles: the same call in
  plain numbers of the documented units (the conversion must be exact up to the
  rounding of one multiplication), astropy's own time scales, Kepler's solution.
- Forces and events that read the date refuse to run without ``epoch=``.
- ``rv2coe`` returns one type for every element of a single state.

Propagations here are one object for minutes, on the cpu: what is tested happens on
the host, before any kernel runs (the kernels are tested in test_orbit_propagate.py).
"""

import datetime
import math

import numpy as np
import pytest

from batchivp import orbit
from batchivp.orbit import constants as C

u = pytest.importorskip("astropy.units")
Time = pytest.importorskip("astropy.time").Time

R0 = np.array([C.R_EARTH + 500.0, 0.0, 0.0])
V0 = np.array([0.0, 7.6, 0.6])


# ---- quantities converted ----

def test_propagate_converts_quantities_to_km_km_s_and_s():
    """r in metres, v in m/s, t_eval in minutes: the same bits as the numbers astropy
    converts them to in km, km/s and s; the km input's orbit to round-off (the
    conversion may move an input by an ulp), and Kepler's orbit."""
    r_m, v_m_s, t_min = R0 * 1e3 * u.m, V0 * 1e3 * u.m / u.s, [0.0, 5.0, 10.0] * u.min
    kw = dict(rtol=1e-10, atol=1e-9, target="cpu")
    ours = orbit.propagate(r_m, v_m_s, t_min, **kw)
    converted = orbit.propagate(r_m.to_value(u.km), v_m_s.to_value(u.km / u.s),
                                t_min.to_value(u.s), **kw)
    for name in ("t", "r", "v", "nfev"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(converted, name))
    km = orbit.propagate(R0, V0, [0.0, 300.0, 600.0], **kw)
    np.testing.assert_allclose(ours.r, km.r, rtol=1e-11)
    r_kepler, _ = orbit.kepler_propagate(R0, V0, 600.0)
    np.testing.assert_allclose(ours.r[0, :, -1], r_kepler, atol=1e-5)  # km


def test_propagate_converts_t_span_and_max_step():
    ours = orbit.propagate(R0, V0, t_span=(0.0, 0.1) * u.h, max_step=1.0 * u.min,
                           target="cpu")
    plain = orbit.propagate(R0, V0, t_span=(0.0, 360.0), max_step=60.0, target="cpu")
    assert ours.t_final[0] == plain.t_final[0] == 360.0
    assert ours.nstep[0] == plain.nstep[0] and plain.nstep[0] >= 6  # max_step 60 s bound it


def test_a_list_of_quantities_is_converted():
    """numpy would drop the units of the items (reading metres as km)."""
    p = orbit.parameter_matrix([orbit.ExponentialDrag(area_to_mass=[1.0 * u.cm**2 / u.g,
                                                                     0.02 * u.m**2 / u.kg])], 2)
    np.testing.assert_allclose(p[:, 2], [0.1, 0.02], rtol=1e-15)
    r, v = orbit.coe2rv([7000.0 * u.km, 7.0e6 * u.m], 0.0, 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(r[:, 0], [7000.0, 7000.0], rtol=1e-15)


def test_force_parameters_are_converted_to_their_units():
    """A/M in cm^2/g is 0.1 m^2/kg per unit; cd and cr are pure numbers."""
    forces = [orbit.ExponentialDrag(cd=2.2 * u.one, area_to_mass=np.array([1.0, 2.0]) * u.cm**2 / u.g),
              orbit.SolarRadiationPressure(cr=1.3, area_to_mass=50.0 * u.cm**2 / u.kg),
              orbit.UserForce(lambda t, y, q, dydt: None, params=[3.0 * u.one])]
    p = orbit.parameter_matrix(forces, 2, epoch=0.0)
    np.testing.assert_allclose(p, [[0.0, 2.2, 0.1, 1.3, 0.005, 3.0],
                                   [0.0, 2.2, 0.2, 1.3, 0.005, 3.0]], rtol=1e-15)


def test_event_thresholds_are_converted():
    # The thresholds are run-time values (the code is the same for all): compare those.
    assert orbit.altitude_below(100.0 * u.km).values == orbit.altitude_below(100.0).values
    assert orbit.altitude_crossing(2.5e5 * u.m).values == orbit.altitude_crossing(250.0).values
    in_rad = math.pi / 6 * u.rad
    assert (orbit.latitude_crossing(in_rad).values
            == orbit.latitude_crossing(in_rad.to_value(u.deg)).values)


def test_element_functions_convert_quantities():
    a, inc, nu = 7000.0, 0.9, 0.3
    r, v = orbit.coe2rv(a * 1e3 * u.m, 0.01, math.degrees(inc) * u.deg, 0.0, 0.0, nu * u.rad)
    r_km, v_km = orbit.coe2rv(a, 0.01, inc, 0.0, 0.0, nu)
    np.testing.assert_allclose(r, r_km, rtol=1e-14)
    np.testing.assert_allclose(v, v_km, rtol=1e-14)
    el = orbit.rv2coe(r * u.km, v * 1e3 * u.m / u.s)
    np.testing.assert_allclose([el.a, el.ecc, el.inc, el.nu], [a, 0.01, inc, nu], rtol=1e-12)
    np.testing.assert_allclose(orbit.kepler_propagate(r, v, 1.0 * u.h)[0],
                               orbit.kepler_propagate(r, v, 3600.0)[0], rtol=1e-14)
    assert orbit.period(a * u.km) == orbit.period(a)
    assert orbit.period(4.2e7 * u.m) == orbit.period(42000.0)
    cloud = orbit.breakup_cloud(r * 1e3 * u.m, v * u.km / u.s, 20, seed=3, l_min=5.0 * u.cm)
    plain = orbit.breakup_cloud(r, v, 20, seed=3, l_min=0.05)
    np.testing.assert_allclose(cloud.r, plain.r, rtol=1e-15)
    np.testing.assert_array_equal(cloud.area_to_mass, plain.area_to_mass)
    assert orbit.fragment_count(10.0 * u.cm) == orbit.fragment_count(0.1)


# ---- the date: astropy Time and Quantity epochs ----

def test_epoch_as_astropy_time_is_tt_seconds_past_j2000():
    """TT seconds past J2000 as astropy computes them (its leap-second table): the same
    as a UTC datetime in 2026 (37 leap seconds), and one value per object from a Time
    array."""
    sun = [orbit.ThirdBody("sun")]
    when = Time("2026-01-01T00:00:00", scale="utc")
    p = orbit.parameter_matrix(sun, 1, epoch=when)
    expected = (when.tt - Time("J2000", scale="tt")).to_value(u.s)
    assert p[0, 0] == pytest.approx(expected, abs=1e-6)
    assert p[0, 0] == pytest.approx(orbit.j2000_tt_seconds(datetime.datetime(2026, 1, 1)), abs=1e-6)
    both = orbit.parameter_matrix(sun, 2, epoch=Time(["2000-01-01T12:00:00", "2000-01-02T12:00:00"],
                                                     scale="tt"))
    np.testing.assert_allclose(both[:, 0], [0.0, 86400.0], atol=1e-6)
    assert orbit.parameter_matrix(sun, 1, epoch=2.0 * u.day)[0, 0] == 172800.0


# ---- quantities of the wrong kind: refused, naming the argument ----

@pytest.mark.parametrize("kwargs, match", [
    (dict(r=R0 * u.s), r"r is a Quantity in s \(time\); it must be a quantity in km"),
    (dict(v=V0 * u.km), r"v is a Quantity in km \(length\); it must be a quantity in km / s"),
    (dict(t_eval=[0.0, 60.0] * u.km), r"t_eval is a Quantity in km"),
    (dict(t_span=(0.0, 1.0) * u.m), r"t_span is a Quantity in m"),
    (dict(t_eval=Time(["2026-01-01", "2026-01-02"])), r"t_eval is an astropy Time.*\(t - epoch\)"),
    (dict(epoch=1.0 * u.km), r"epoch is a Quantity in km"),
    (dict(atol=1e-9 * u.km), r"atol \(km for r, km/s for v\) is a Quantity in km"),
    (dict(forces=[orbit.J2()], max_step=3.0 * u.kg), r"max_step is a Quantity in kg"),
])
def test_propagate_refuses_quantities_of_another_kind(kwargs, match, no_compile):
    call = dict(r=R0, v=V0, t_eval=[0.0, 60.0])
    call.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        orbit.propagate(call.pop("r"), call.pop("v"), call.pop("t_eval"), **call)


def test_forces_events_and_elements_refuse_quantities_of_another_kind():
    with pytest.raises(ValueError, match=r"ExponentialDrag: area_to_mass is a Quantity in kg"):
        orbit.ExponentialDrag(area_to_mass=1.0 * u.kg)
    with pytest.raises(ValueError, match=r"COESA76Drag: cd is a Quantity in m .*pure number"):
        orbit.COESA76Drag(cd=2.2 * u.m)
    with pytest.raises(ValueError, match=r"UserForce\('<lambda>'\): params\[0\] is a Quantity in"
                                         r" km / s2 .*plain numbers"):
        orbit.UserForce(lambda t, y, q, dydt: None, params=[1e-9 * u.km / u.s**2])
    with pytest.raises(ValueError, match="altitude is a Quantity in s"):
        orbit.altitude_below(100.0 * u.s)
    with pytest.raises(ValueError, match="inc is a Quantity in m"):
        orbit.coe2rv(7000.0, 0.0, 1.0 * u.m, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="r is a Quantity in km / s"):
        orbit.rv2coe(V0 * u.km / u.s, V0)
    with pytest.raises(ValueError, match="dt is a Quantity in km"):
        orbit.kepler_propagate(R0, V0, 1.0 * u.km)
    with pytest.raises(ValueError, match="parent_v is a Quantity in km"):
        orbit.breakup_cloud(R0, V0 * u.km, 10)


# ---- forces and events that read the date need an epoch ----

@pytest.mark.parametrize("forces, events, name", [
    ([orbit.ThirdBody("sun")], (), r"ThirdBody\('sun'\)"),
    ([orbit.J2(), orbit.ThirdBody("moon")], (), r"ThirdBody\('moon'\)"),
    ([orbit.SolarRadiationPressure(shadow=None)], (), r"SolarRadiationPressure\(cr=1.3, .*\)"),
    ([orbit.UserForce(lambda t, y, q, dydt: None, uses_date=True)], (), r"UserForce\('<lambda>'\)"),
    ([], [orbit.umbra()], "the umbra event"),
    ([orbit.J2()], [orbit.altitude_below(), orbit.penumbra(+1.0)], "the penumbra event"),
    ([], [orbit.umbra(shadow="cylindrical")], "the umbra event"),
])
def test_the_date_is_required_by_what_reads_it(forces, events, name, no_compile):
    with pytest.raises(ValueError, match=name + r" depends on the date .*pass epoch=.*"
                                                r"datetime\(2026, 1, 1\).*epoch=0\.0 for J2000"):
        orbit.propagate(R0, V0, [0.0, 60.0], forces=forces, events=events)


def test_parameter_matrix_needs_the_epoch_for_date_forces_only():
    with pytest.raises(ValueError, match=r"ThirdBody\('sun'\) depends on the date"):
        orbit.parameter_matrix([orbit.ThirdBody("sun")], 2)
    assert orbit.parameter_matrix([orbit.ThirdBody("sun")], 2, epoch=0.0)[:, 0].tolist() == [0.0, 0.0]
    assert orbit.parameter_matrix([orbit.J2()], 2).tolist() == [[0.0], [0.0]]


def test_an_explicit_j2000_epoch_runs():
    """epoch=0.0 is J2000, given on purpose: the shadow event compiles and runs."""
    res = orbit.propagate(R0, V0, [0.0, 60.0], events=[orbit.umbra()], epoch=0.0, target="cpu")
    assert res.status[0] == 0


# ---- one type for the elements of one state ----

def test_rv2coe_returns_float64_scalars_for_one_state_and_arrays_for_many():
    """Circular equatorial, elliptic inclined: every element a numpy float64 scalar, as
    ``period`` of one orbit; ``coe2rv`` and ``kepler_propagate`` give (3,) vectors."""
    for r, v in ((R0, [0.0, 7.6, 0.0]), (R0, V0)):
        el = orbit.rv2coe(r, v)
        assert [type(x) for x in el] == [np.float64] * 6, [type(x) for x in el]
        assert type(orbit.period(el.a)) is np.float64
        r2, v2 = orbit.coe2rv(*el)
        assert r2.shape == v2.shape == (3,)
        np.testing.assert_allclose(r2, r, rtol=1e-12, atol=1e-9)
    rk, vk = orbit.kepler_propagate(R0, V0, 60.0)
    assert rk.shape == vk.shape == (3,)
    many = orbit.rv2coe(np.tile(R0, (2, 1)), np.tile(V0, (2, 1)))
    assert all(isinstance(x, np.ndarray) and x.shape == (2,) for x in many)
    assert orbit.period(np.array([7000.0, 8000.0])).shape == (2,)
