"""Analytic Sun and Moon positions against astronomical events and an independent ephemeris."""

import datetime
import math
import types

import numpy as np
import pytest

from batchivp.orbit import ephemeris as eph
from batchivp.orbit.constants import AU

ARCSEC = math.pi / 648000.0


def precession_j2000_to_mean_of_date(t):
    """IAU 1976 precession matrix from the angles zeta, theta, z of Lieske et al. (1977).

    Independent of the module, which shifts ecliptic longitudes instead: rotating its
    EME2000 vectors with this matrix gives mean-equator-of-date coordinates.
    """
    T = t / 3155760000.0
    zeta = (2306.2181 * T + 0.30188 * T ** 2 + 0.017998 * T ** 3) * ARCSEC
    theta = (2004.3109 * T - 0.42665 * T ** 2 - 0.041833 * T ** 3) * ARCSEC
    z = (2306.2181 * T + 1.09468 * T ** 2 + 0.018203 * T ** 3) * ARCSEC

    def r3(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def r2(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])

    return r3(-z) @ r2(theta) @ r3(-zeta)


def declination_of_date_deg(t):
    r = precession_j2000_to_mean_of_date(t) @ eph.sun_position_array(t)
    return math.degrees(math.asin(r[2] / np.linalg.norm(r)))


def angle_deg(a, b):
    c = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, c)))


def test_j2000_epoch():
    # J2000 = 2000-01-01 12:00:00 TT = 11:58:55.816 UTC (TAI - UTC was 32 s).
    utc = datetime.datetime(2000, 1, 1, 11, 58, 55, 816000)
    assert eph.j2000_tt_seconds(utc, 32.0) == pytest.approx(0.0, abs=1e-6)


def test_sun_distance_over_a_year():
    # Earth's perihelion / aphelion distances are 0.9833 / 1.0167 AU.
    t0 = eph.j2000_tt_seconds(datetime.datetime(2024, 1, 1))
    d = np.linalg.norm(eph.sun_position_array(t0 + np.arange(0.0, 366 * 86400.0, 3600.0)),
                       axis=-1) / AU
    assert 0.983 <= d.min() < 0.984
    assert 1.016 < d.max() <= 1.017


# 2024 equinoxes and solstices, UTC to the minute (USNO, "Earth's Seasons"). The Sun's
# declination of date is 0 or +-obliquity (23.436 deg in 2024, +0.003 deg nutation)
# then; the Almanac series is good to 0.01 deg and the Sun moves 0.0003 deg/min.
SEASONS_2024 = [
    (datetime.datetime(2024, 3, 20, 3, 6), 0.0),
    (datetime.datetime(2024, 6, 20, 20, 51), 23.4387),
    (datetime.datetime(2024, 9, 22, 12, 44), 0.0),
    (datetime.datetime(2024, 12, 21, 9, 21), -23.4387),
]


@pytest.mark.parametrize("utc, declination", SEASONS_2024)
def test_sun_declination_at_equinoxes_and_solstices(utc, declination):
    t = eph.j2000_tt_seconds(utc, 37.0)
    assert declination_of_date_deg(t) == pytest.approx(declination, abs=0.01)


def test_sun_vallado_example_5_1():
    # Vallado, Fundamentals of Astrodynamics, 4th ed., Example 5-1: 2006 April 2,
    # 00:00 UTC, r = (146186178, 28788977, 12481472) km in the mean-of-date frame the
    # Almanac series refers to. The same series with our EME2000 handling, precessed
    # back to date, agrees to the neglected ecliptic motion (~0.001 deg).
    t = eph.j2000_tt_seconds(datetime.datetime(2006, 4, 2), 33.0)
    r_mod = precession_j2000_to_mean_of_date(t) @ eph.sun_position_array(t)
    vallado = np.array([146186178.0, 28788977.0, 12481472.0])
    assert angle_deg(r_mod, vallado) < 0.01
    assert np.linalg.norm(r_mod) == pytest.approx(np.linalg.norm(vallado), rel=1e-5)


# Geocentric positions [km] from astropy 8.0.2, get_body(..., ephemeris="builtin")
# (ERFA epv00 for the Sun, Meeus/ELP2000-82 "moon98" for the Moon), GCRS frame, at TT
# instants given as seconds past J2000. GCRS and EME2000 differ by the 0.02" frame
# bias; astropy's positions include aberration (Sun 20" ~ 0.006 deg).
ASTROPY_SUN = [
    (0.0, (26484406.9, -132759867.4, -57557778.9)),
    (197208065.184, (146236325.8, 28584350.4, 12392402.2)),
    (429993000.0, (-123037830.4, 81022778.4, 35125170.1)),
    (764176029.184, (148976449.3, -804598.1, -349279.0)),
    (1004940000.0, (-109066281.9, -92233862.0, -39979987.7)),
    (1488196800.0, (137986727.1, -49500665.2, -21455909.8)),
]
ASTROPY_MOON = [
    (0.0, (-291581.7, -266691.8, -76092.2)),
    (197208065.184, (187621.1, 286908.8, 155695.5)),
    (429993000.0, (10598.1, -343378.3, -121811.4)),
    (764176029.184, (-220497.1, 291971.7, 164731.8)),
    (1004940000.0, (-175848.9, 346307.4, 112620.1)),
    (1488196800.0, (390871.1, 78157.6, 72829.4)),
]


@pytest.mark.parametrize("t, expected", ASTROPY_SUN)
def test_sun_against_astropy(t, expected):
    # Almanac accuracy 0.01 deg, plus aberration in the oracle: 0.02 deg. Distance:
    # the three-term series is good to ~1e-4 AU (measured 8.7e-5 over 1995-2045).
    r = eph.sun_position_array(t)
    assert angle_deg(r, expected) < 0.02
    assert np.linalg.norm(r) == pytest.approx(np.linalg.norm(expected), rel=1.5e-4)


@pytest.mark.parametrize("t, expected", ASTROPY_MOON)
def test_moon_against_astropy(t, expected):
    # Montenbruck & Gill quote "several arcmin" and ~500 km for the truncated series;
    # over 1995-2045 the worst seen against astropy is 0.08 deg and 514 km.
    r = eph.moon_position_array(t)
    assert angle_deg(r, expected) < 0.15
    assert abs(np.linalg.norm(r) - np.linalg.norm(expected)) < 1000.0


@pytest.mark.parametrize("month", range(1, 13))
def test_moon_distance_over_a_month(month):
    # Perigee and apogee lie between 356,400 and 406,700 km; each month of 2024
    # passes through one of each (a 27.55-day anomalistic month).
    t0 = eph.j2000_tt_seconds(datetime.datetime(2024, month, 1))
    d = np.linalg.norm(eph.moon_position_array(t0 + np.arange(0.0, 30 * 86400.0, 1800.0)),
                       axis=-1)
    assert 356000.0 <= d.min() < 370000.0
    assert 404000.0 < d.max() <= 407000.0


def test_scalar_functions_write_out_and_match_wrappers():
    # The kernel-ready form: any indexable ``out``, nothing returned, the same numbers
    # as the host wrappers bit for bit.
    t = np.array([-3.0e8, 0.0, 1.234e8, 7.7e8])
    for scalar, wrapper in ((eph.sun_position, eph.sun_position_array),
                            (eph.moon_position, eph.moon_position_array)):
        rows = []
        for ti in t:
            out = [0.0, 0.0, 0.0]
            assert scalar(float(ti), out) is None
            rows.append(out)
        assert np.array_equal(np.array(rows), wrapper(t))
        assert wrapper(t.reshape(2, 2)).shape == (2, 2, 3)


def test_scalar_functions_compile_with_numba():
    # What a force model will do with them: decorate every function of the module with
    # numba's njit (cpu target), as the renderer does in a generated module, and get the
    # same results to round-off.
    numba = pytest.importorskip("numba")
    namespace = dict(vars(eph))
    namespace["reduced_angle"] = numba.njit(eph.reduced_angle)
    for helper in (eph.sun_xyz, eph.moon_xyz):
        namespace[helper.__name__] = numba.njit(
            types.FunctionType(helper.__code__, namespace, helper.__name__))
    out_py, out_nb = np.empty(3), np.empty(3)
    for scalar in (eph.sun_position, eph.moon_position):
        compiled = numba.njit(types.FunctionType(scalar.__code__, namespace, scalar.__name__))
        for t in (0.0, 7.7e8):
            scalar(t, out_py)
            compiled(t, out_nb)
            np.testing.assert_allclose(out_nb, out_py, rtol=1e-13)
