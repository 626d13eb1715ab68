"""Elements, state vectors and Kepler propagation against textbook examples and scipy."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from batchivp.orbit import MU_EARTH, coe2rv, kepler_propagate, period, rv2coe
from batchivp.orbit.elements import CIRCULAR_ECC, stumpff_c2_c3

MU_CURTIS = 398600.0  # Curtis's examples use this rounded value [km^3/s^2]
TWO_PI = 2.0 * math.pi
rng = np.random.default_rng(20261205)


def rounds_to(value, printed, decimals):
    """``value`` rounds to the book's printed number (half a unit of its last digit)."""
    return abs(value - printed) <= 0.5 * 10.0 ** -decimals + 1e-12


def angle_difference(a, b):
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


# ---- textbook examples ------------------------------------------------------------------

def test_rv2coe_curtis_example_4_3():
    # Curtis, Orbital Mechanics for Engineering Students, 3rd ed., Example 4.3.
    el = rv2coe([-6045.0, -3490.0, 2500.0], [-3.457, 6.618, 2.533], MU_CURTIS)
    h = math.sqrt(MU_CURTIS * el.a * (1.0 - el.ecc ** 2))
    assert rounds_to(h, 58310.0, -1)  # printed "58,310 km^2/s"
    assert rounds_to(math.degrees(el.inc), 153.2, 1)
    assert rounds_to(math.degrees(el.raan), 255.3, 1)
    assert rounds_to(el.ecc, 0.1712, 4)
    assert rounds_to(math.degrees(el.argp), 20.07, 2)
    assert rounds_to(math.degrees(el.nu), 28.45, 2)


def test_coe2rv_curtis_example_4_7_hyperbola():
    # Curtis, Example 4.7: h = 80,000 km^2/s, e = 1.4, i = 30, RAAN = 40, argp = 60,
    # nu = 30 deg. A hyperbola: a = p / (1 - e^2) < 0.
    h, ecc = 80000.0, 1.4
    a = h * h / MU_CURTIS / (1.0 - ecc * ecc)
    r, v = coe2rv(a, ecc, *np.radians([30.0, 40.0, 60.0, 30.0]), mu=MU_CURTIS)
    for value, printed in zip(r, (-4040.0, 4815.0, 3629.0)):
        assert rounds_to(value, printed, 0)
    for value, printed, decimals in zip(v, (-10.39, -4.772, 1.744), (2, 3, 3)):
        assert rounds_to(value, printed, decimals)


def test_kepler_curtis_example_3_7():
    # Curtis, Example 3.7: r0 = 7000 i - 12124 j km, v0 = 2.6679 i + 4.6210 j km/s,
    # after 60 minutes r = -3297.8 i + 7413.4 j km (5 significant digits printed).
    r, v = kepler_propagate([7000.0, -12124.0, 0.0], [2.6679, 4.6210, 0.0], 3600.0, MU_CURTIS)
    assert rounds_to(r[0], -3297.8, 1)
    assert rounds_to(r[1], 7413.4, 1)
    assert r[2] == 0.0 and v[2] == 0.0


def test_period_of_geostationary_orbit():
    # A geostationary orbit (a = 42,164.17 km) has the sidereal day, 86,164.09 s.
    assert period(42164.17) == pytest.approx(86164.09, abs=0.05)
    assert np.isnan(period(-7000.0))
    np.testing.assert_allclose(period(np.array([7000.0, 8000.0])),
                               TWO_PI * np.sqrt(np.array([7000.0, 8000.0]) ** 3 / MU_EARTH))


# ---- round trips --------------------------------------------------------------------------

def random_elements(n):
    a = rng.uniform(6600.0, 50000.0, n)
    ecc = rng.uniform(0.001, 0.9, n)
    inc = rng.uniform(0.01, math.pi - 0.01, n)
    raan = rng.uniform(0.0, TWO_PI, n)
    argp = rng.uniform(0.0, TWO_PI, n)
    nu = rng.uniform(0.0, TWO_PI, n)
    return a, ecc, inc, raan, argp, nu


def test_coe_round_trip_elliptic_and_hyperbolic():
    a, ecc, inc, raan, argp, nu = random_elements(2000)
    # Hyperbolas in half of them: a < 0, |nu| inside the asymptotes.
    hyp = np.arange(a.size) % 2 == 1
    ecc = np.where(hyp, rng.uniform(1.05, 4.0, a.size), ecc)
    a = np.where(hyp, -a, a)
    nu_limit = np.arccos(-1.0 / np.where(hyp, ecc, 2.0))
    nu = np.where(hyp, rng.uniform(-0.9, 0.9, a.size) * nu_limit, nu)
    el = rv2coe(*coe2rv(a, ecc, inc, raan, argp, nu))
    # Conditioning: eccentricity >= 1e-3 and sin(inc) >= 1e-2 amplify round-off by
    # at most ~1e3 in the angles, so 1e-10 holds with margin.
    np.testing.assert_allclose(el.a, a, rtol=1e-10)
    np.testing.assert_allclose(el.ecc, ecc, rtol=1e-10)
    for got, want in ((el.inc, inc), (el.raan, raan), (el.argp, argp), (el.nu, nu)):
        assert np.max(angle_difference(got, want)) < 1e-10


def special_states():
    """Near-circular, circular, near-equatorial, equatorial and retrograde orbits."""
    a, ecc, inc, raan, argp, nu = random_elements(1200)
    k = np.arange(a.size) % 12
    ecc = np.select([k == 0, k == 1, k == 2, k == 3], [0.0, 1e-13, 1e-9, 1e-6], ecc)
    inc = np.select([k == 4, k == 5, k == 6, k == 7, k == 8, k == 9],
                    [0.0, 1e-13, 1e-9, math.pi, math.pi - 1e-13, math.pi - 1e-9], inc)
    ecc = np.where(k == 10, 0.0, ecc)
    inc = np.where(k == 10, 0.0, inc)  # circular equatorial
    ecc = np.where(k == 11, 1e-12, ecc)
    inc = np.where(k == 11, math.pi - 1e-12, inc)  # near-circular, near-retrograde-equatorial
    return coe2rv(a, ecc, inc, raan, argp, nu)


def test_state_round_trip_including_singular_orbits():
    r, v = special_states()
    r2, v2 = coe2rv(*rv2coe(r, v))
    # Position and velocity depend smoothly on the folded angles (u, true longitude),
    # so the round trip is good to a few ulps where the angles are defined. Below the
    # thresholds the convention drops an O(ecc) periapsis direction or an O(sin inc)
    # node direction, so there the error is O(1e-11); measured worst 2e-12.
    rscale = np.linalg.norm(r, axis=-1, keepdims=True)
    vscale = np.linalg.norm(v, axis=-1, keepdims=True)
    assert np.max(np.abs(r2 - r) / rscale) < 1e-10
    assert np.max(np.abs(v2 - v) / vscale) < 1e-10


def test_conventions_for_undefined_angles():
    # Circular equatorial: raan = argp = 0, nu = true longitude, atan2(y, x).
    el = rv2coe([7000.0, 7000.0, 0.0], [-math.sqrt(MU_EARTH / 9899.494936611665) / math.sqrt(2.0),
                                       math.sqrt(MU_EARTH / 9899.494936611665) / math.sqrt(2.0), 0.0])
    assert el.ecc < CIRCULAR_ECC
    assert el.raan == 0.0 and el.argp == 0.0
    assert el.nu == pytest.approx(math.pi / 4, abs=1e-12)
    # Circular inclined: argp = 0, nu = argument of latitude (node to r).
    r, v = coe2rv(7000.0, 0.0, 0.5, 1.0, 0.0, 2.0)
    el = rv2coe(r, v)
    assert el.argp == 0.0
    assert el.raan == pytest.approx(1.0, abs=1e-12)
    assert el.nu == pytest.approx(2.0, abs=1e-12)
    # Elliptic equatorial: raan = 0, argp = longitude of periapsis from the x axis.
    r, v = coe2rv(9000.0, 0.2, 0.0, 0.0, 1.2, 0.3)
    el = rv2coe(r, v)
    assert el.raan == 0.0
    assert el.argp == pytest.approx(1.2, abs=1e-12)
    assert el.nu == pytest.approx(0.3, abs=1e-12)
    # Retrograde equatorial: angles run with the motion, clockwise seen from +z.
    r, v = coe2rv(9000.0, 0.2, math.pi, 0.0, 1.2, 0.3)
    assert r[1] < 0  # periapsis at longitude -1.2 rad, the body 0.3 rad further on
    el = rv2coe(r, v)
    assert el.inc == pytest.approx(math.pi, abs=1e-15)
    assert el.argp == pytest.approx(1.2, abs=1e-12)


def test_single_and_batched_shapes():
    r, v = coe2rv(7000.0, 0.01, 0.5, 0.1, 0.2, 0.3)
    assert r.shape == (3,) and v.shape == (3,)
    el = rv2coe(r, v)
    assert np.ndim(el.a) == 0
    rb, vb = coe2rv(*random_elements(5))
    assert rb.shape == (5, 3)
    assert rv2coe(rb, vb).nu.shape == (5,)
    r2, v2 = kepler_propagate(r, v, np.array([0.0, 10.0, 20.0]))
    assert r2.shape == (3, 3)
    np.testing.assert_allclose(r2[0], r, rtol=1e-15)


# ---- Kepler propagation -----------------------------------------------------------------

def two_body(t, y):
    r = y[:3]
    return np.concatenate([y[3:], -MU_EARTH * r / np.linalg.norm(r) ** 3])


@pytest.mark.parametrize("a, ecc, dt", [
    (7000.0, 0.001, 5400.0),        # LEO, about one revolution
    (26600.0, 0.74, 3.0 * 43000.0),  # Molniya-like, three revolutions through perigee
    (42164.0, 0.0, -20000.0),       # GEO, backwards
    (-20000.0, 1.5, 30000.0),       # hyperbolic escape
    (9000.0, 0.95, 2.0e4),          # nearly parabolic ellipse
])
def test_kepler_against_solve_ivp(a, ecc, dt):
    r0, v0 = coe2rv(a, ecc, 0.7, 0.3, 1.1, 0.2)
    sol = solve_ivp(two_body, (0.0, dt), np.concatenate([r0, v0]), method="DOP853",
                    rtol=1e-12, atol=1e-12)
    r, v = kepler_propagate(r0, v0, dt)
    # DOP853 at rtol = 1e-12 over a few revolutions keeps ~1e-10 relative accuracy; the
    # analytic solution is better, so 1e-8 separates an error from round-off.
    np.testing.assert_allclose(r, sol.y[:3, -1], rtol=0, atol=1e-8 * np.linalg.norm(r))
    np.testing.assert_allclose(v, sol.y[3:, -1], rtol=0, atol=1e-8 * np.linalg.norm(v))


def test_kepler_parabola_against_barker():
    # Barker's equation (Curtis Ch. 3, Vallado Ch. 2): on a parabola of
    # semi-latus rectum p, t = (1/2) sqrt(p^3 / mu) (D + D^3 / 3) with D = tan(nu / 2),
    # counted from periapsis.
    rp = 7000.0
    p = 2.0 * rp
    r0 = np.array([rp, 0.0, 0.0])
    v0 = np.array([0.0, math.sqrt(2.0 * MU_EARTH / rp), 0.0])
    for t in (600.0, 3600.0, 86400.0, -5000.0):
        rhs = 2.0 * t * math.sqrt(MU_EARTH / p ** 3)
        roots = np.roots([1.0 / 3.0, 0.0, 1.0, -rhs])
        D = roots[np.argmin(np.abs(roots.imag))].real
        nu = 2.0 * math.atan(D)
        expected = p / (1.0 + math.cos(nu)) * np.array([math.cos(nu), math.sin(nu), 0.0])
        r, _ = kepler_propagate(r0, v0, t)
        np.testing.assert_allclose(r, expected, rtol=0, atol=1e-10 * np.linalg.norm(expected))


def test_kepler_conserves_energy_and_angular_momentum():
    a, ecc, inc, raan, argp, nu = random_elements(500)
    r0, v0 = coe2rv(a, ecc, inc, raan, argp, nu)
    dt = rng.uniform(-3.0e5, 3.0e5, a.size)
    r, v = kepler_propagate(r0, v0, dt)

    def energy(r, v):
        return 0.5 * np.sum(v * v, axis=-1) - MU_EARTH / np.linalg.norm(r, axis=-1)

    # Both are conserved exactly by the two-body flow; the f, g solution keeps them to
    # round-off amplified by the Lagrange coefficients (|f|, |g| v / r of order 1-10);
    # measured worst 1.4e-14 (energy) and 3e-15 (h).
    np.testing.assert_allclose(energy(r, v), energy(r0, v0), rtol=1e-12)
    h0, h = np.cross(r0, v0), np.cross(r, v)
    assert np.max(np.linalg.norm(h - h0, axis=-1) / np.linalg.norm(h0, axis=-1)) < 1e-12
    # And the orbit is the same one: elements other than nu are unchanged.
    el = rv2coe(r, v)
    np.testing.assert_allclose(el.a, a, rtol=1e-10)
    assert np.max(angle_difference(el.argp, argp)) < 1e-9


def test_kepler_whole_periods_return_to_start():
    r0, v0 = coe2rv(7500.0, 0.3, 1.0, 2.0, 3.0, 4.0)
    P = float(period(7500.0))
    r, v = kepler_propagate(r0, v0, np.array([P, 10.0 * P, -7.0 * P, 1000.0 * P]))
    # Reducing dt by whole periods keeps the error at the level of one revolution,
    # plus the round-off of 1000 P ~ 6.5e6 s (ulp 1e-9 s, times 7 km/s): measured
    # 2.6e-8 km, tolerance 1e-10 relative.
    np.testing.assert_allclose(r, np.broadcast_to(r0, r.shape), rtol=0, atol=1e-10 * 7500.0)
    np.testing.assert_allclose(v, np.broadcast_to(v0, v.shape), rtol=0, atol=1e-10 * 10.0)


def test_kepler_zero_time_is_identity():
    r0, v0 = coe2rv(*random_elements(50))
    r, v = kepler_propagate(r0, v0, 0.0)
    np.testing.assert_allclose(r, r0, rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(v, v0, rtol=1e-15, atol=1e-15)


def test_stumpff_functions():
    # Closed forms C(z) = (1 - cos sqrt z) / z, S(z) = (sqrt z - sin sqrt z) / z^1.5
    # away from 0, the limits 1/2 and 1/6 at 0, and the series (|z| < 1) against the
    # closed forms just inside the hand-over at |z| = 1, where these lose at most a
    # few ulps to cancellation (s - sin s ~ s^3 / 6).
    c2, c3 = stumpff_c2_c3(np.array([4.0, -4.0, 0.0]))
    np.testing.assert_allclose(c2, [(1 - math.cos(2)) / 4, (math.cosh(2) - 1) / 4, 0.5], rtol=1e-15)
    np.testing.assert_allclose(c3, [(2 - math.sin(2)) / 8, (math.sinh(2) - 2) / 8, 1 / 6],
                               rtol=1e-14)
    z = 1.0 - 1e-12
    s = math.sqrt(z)
    np.testing.assert_allclose(stumpff_c2_c3(np.array([z, -z])),
                               [[(1 - math.cos(s)) / z, (math.cosh(s) - 1) / z],
                                [(s - math.sin(s)) / s ** 3, (math.sinh(s) - s) / s ** 3]],
                               rtol=1e-14)
