"""Low-precision analytic Sun and Moon positions, geocentric, in EME2000 [km].

Time is ``t``, seconds of TT past the J2000 epoch (JD 2451545.0 TT, that is
2000-01-01 12:00:00 TT); :func:`j2000_tt_seconds` converts a UTC datetime.

Frame: Earth's mean equator and equinox of J2000 (EME2000; it differs from GCRF by
the frame bias, about 0.02 arcsec, far below these series' accuracy). The Sun series
of the Astronomical Almanac [1]_ (Vallado's Algorithm 29 [2]_) gives the ecliptic
longitude referred to the mean equinox *of date*; we take the general precession in
longitude, 1.3972 deg per Julian century, off it to refer it to J2000, as Montenbruck
and Gill's Moon series [3]_ does, and rotate both with the J2000 obliquity. The Sun's
latitude over the J2000 ecliptic (below 47 arcsec per century) is neglected.
Accuracy: Sun about 0.01 deg and 1e-4 AU [1]_; Moon a few arcmin and about
500 km [3]_, between 1950 and 2050. Sun series are nominally in UT1; TT - UT1 is
about a minute, 0.001 deg of solar motion.

The scalar functions :func:`sun_xyz`, :func:`moon_xyz` (returning a tuple),
:func:`sun_position`, :func:`moon_position` (writing ``out``) and their helper
:func:`reduced_angle` follow the core's contract (docs/architecture.md, point 1:
``math`` only, results written into ``out``, no allocation, no ``raise``, no default
arguments), so that force models can render them into a kernel; they read the module
constants below and ``AU`` from ``orbit.constants``. The ``*_array`` functions are
host-side numpy wrappers around them and are not for rendering.

References
----------
.. [1] U.S. Naval Observatory, "The Astronomical Almanac", Sec. C, "Low precision
       formulas for the Sun".
.. [2] D. A. Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed.,
       2013, Algorithm 29 (SUN) and Example 5-1.
.. [3] O. Montenbruck, E. Gill, "Satellite Orbits", Springer, 2000, Sec. 3.3.2
       (low-precision Sun and Moon coordinates).
"""

import datetime
import math

import numpy as np

from .constants import AU

SECONDS_PER_JULIAN_CENTURY = 3155760000.0  # 36525 days
DEG = 0.017453292519943295  # pi / 180
ARCSEC = 4.84813681109536e-06  # pi / 648000
OBLIQUITY_J2000 = 0.40909280422232897  # 23.43929111 deg [3]_ (IAU 1976 value)
PRECESSION_IN_LONGITUDE = 1.3972  # deg per Julian century, mean equinox of date -> J2000 [3]_


def reduced_angle(degrees):
    """An angle in degrees reduced to [0, 360) and returned in radians.

    ``x - 360 floor(x / 360)`` rather than ``math.fmod``, which numba does not compile.
    """
    return (degrees - 360.0 * math.floor(degrees / 360.0)) * DEG


def sun_xyz(t):
    """Geocentric Sun position in EME2000 [km], as a tuple ``(x, y, z)``.

    ``t`` [s] is TT past J2000. Astronomical Almanac series with Vallado's digits
    (Alg. 29): mean longitude, mean anomaly, ecliptic longitude, distance.
    """
    T = t / SECONDS_PER_JULIAN_CENTURY
    mean_longitude = reduced_angle(280.460 + 36000.771 * T)
    M = reduced_angle(357.5291092 + 35999.05034 * T)  # mean anomaly
    longitude = mean_longitude + DEG * (1.914666471 * math.sin(M)
                                        + 0.019994643 * math.sin(2.0 * M)
                                        - PRECESSION_IN_LONGITUDE * T)
    distance = (1.000140612 - 0.016708617 * math.cos(M) - 0.000139589 * math.cos(2.0 * M)) * AU
    x = distance * math.cos(longitude)
    y_ecliptic = distance * math.sin(longitude)
    return (x, y_ecliptic * math.cos(OBLIQUITY_J2000), y_ecliptic * math.sin(OBLIQUITY_J2000))


def sun_position(t, out):
    """Geocentric Sun position in EME2000 [km], written to ``out[0:3]`` (:func:`sun_xyz`)."""
    out[0], out[1], out[2] = sun_xyz(t)


def moon_xyz(t):
    """Geocentric Moon position in EME2000 [km], as a tuple ``(x, y, z)``.

    ``t`` [s] is TT past J2000. Montenbruck & Gill, Sec. 3.3.2: Brown's theory cut to
    14 terms in longitude, 8 in latitude and 9 in distance.
    """
    T = t / SECONDS_PER_JULIAN_CENTURY
    # Fundamental arguments [rad]; the mean longitude is referred to the J2000 equinox.
    L0 = reduced_angle(218.31617 + 481267.88088 * T - PRECESSION_IN_LONGITUDE * T)
    l = reduced_angle(134.96292 + 477198.86753 * T)  # Moon's mean anomaly
    lp = reduced_angle(357.52543 + 35999.04944 * T)  # Sun's mean anomaly
    F = reduced_angle(93.27283 + 483202.01873 * T)  # mean argument of latitude
    D = reduced_angle(297.85027 + 445267.11135 * T)  # mean elongation from the Sun
    longitude = L0 + ARCSEC * (
        22640.0 * math.sin(l) + 769.0 * math.sin(2.0 * l)
        - 4586.0 * math.sin(l - 2.0 * D) + 2370.0 * math.sin(2.0 * D)
        - 668.0 * math.sin(lp) - 412.0 * math.sin(2.0 * F)
        - 212.0 * math.sin(2.0 * l - 2.0 * D) - 206.0 * math.sin(l + lp - 2.0 * D)
        + 192.0 * math.sin(l + 2.0 * D) - 165.0 * math.sin(lp - 2.0 * D)
        + 148.0 * math.sin(l - lp) - 125.0 * math.sin(D)
        - 110.0 * math.sin(l + lp) - 55.0 * math.sin(2.0 * F - 2.0 * D))
    latitude = ARCSEC * (
        18520.0 * math.sin(F + longitude - L0
                           + ARCSEC * (412.0 * math.sin(2.0 * F) + 541.0 * math.sin(lp)))
        - 526.0 * math.sin(F - 2.0 * D) + 44.0 * math.sin(l + F - 2.0 * D)
        - 31.0 * math.sin(-l + F - 2.0 * D) - 25.0 * math.sin(-2.0 * l + F)
        - 23.0 * math.sin(lp + F - 2.0 * D) + 21.0 * math.sin(-l + F)
        + 11.0 * math.sin(-lp + F - 2.0 * D))
    distance = (385000.0 - 20905.0 * math.cos(l) - 3699.0 * math.cos(2.0 * D - l)
                - 2956.0 * math.cos(2.0 * D) - 570.0 * math.cos(2.0 * l)
                + 246.0 * math.cos(2.0 * l - 2.0 * D) - 205.0 * math.cos(lp - 2.0 * D)
                - 171.0 * math.cos(l + 2.0 * D) - 152.0 * math.cos(l + lp - 2.0 * D))
    # Ecliptic to equator: rotation by -obliquity about the x axis.
    x = distance * math.cos(latitude) * math.cos(longitude)
    y = distance * math.cos(latitude) * math.sin(longitude)
    z = distance * math.sin(latitude)
    ce = math.cos(OBLIQUITY_J2000)
    se = math.sin(OBLIQUITY_J2000)
    return (x, ce * y - se * z, se * y + ce * z)


def moon_position(t, out):
    """Geocentric Moon position in EME2000 [km], written to ``out[0:3]`` (:func:`moon_xyz`)."""
    out[0], out[1], out[2] = moon_xyz(t)


def _positions(position, t):
    t = np.asarray(t, dtype=float)
    flat = t.reshape(-1)
    result = np.empty((flat.size, 3))
    for i in range(flat.size):
        position(float(flat[i]), result[i])
    return result.reshape(t.shape + (3,))


def sun_position_array(t):
    """:func:`sun_position` over an array of times ``t`` [s TT past J2000].

    Returns an ndarray of shape ``t.shape + (3,)`` [km]. A Python loop over the
    scalar function, so the host runs the very source a kernel would.
    """
    return _positions(sun_position, t)


def moon_position_array(t):
    """:func:`moon_position` over an array of times ``t`` [s TT past J2000].

    Returns an ndarray of shape ``t.shape + (3,)`` [km].
    """
    return _positions(moon_position, t)


def j2000_tt_seconds(utc, tai_minus_utc=37.0):
    """Seconds of TT past J2000 for a naive UTC ``datetime.datetime``.

    ``tai_minus_utc`` is the leap-second count in force at that date (37 s since
    2017-01-01, 33 s in 2006, 32 s in 2000; IERS Bulletin C); TT = TAI + 32.184 s.
    """
    since = utc - datetime.datetime(2000, 1, 1, 12, 0, 0)
    return since.total_seconds() + tai_minus_utc + 32.184
