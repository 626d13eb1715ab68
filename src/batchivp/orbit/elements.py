"""Classical orbital elements, state vectors and analytic two-body propagation (numpy).

Host-side helpers: vectorized over leading axes, never rendered into a kernel. Units
are km, km/s, km^3/s^2, s and radians throughout; astropy quantities are converted to
them (angles in degrees included), never read as bare numbers (:mod:`.units`). For one
orbit, scalars come back as numpy ``float64`` scalars, vectors as arrays of shape (3,).

Conventions for the angles that an orbit leaves undefined follow Vallado [1]_
(Ch. 2), folded into the defined ones so that ``coe2rv(*rv2coe(r, v))``
gives back ``(r, v)``:

- circular inclined (``ecc < CIRCULAR_ECC``): ``argp = 0`` and ``nu`` is the argument
  of latitude u (from the ascending node to r);
- elliptic equatorial (``sin(inc) < EQUATORIAL_SIN_INC``): ``raan = 0`` and ``argp``
  is the true longitude of periapsis (from the x axis to periapsis);
- circular equatorial: ``raan = argp = 0`` and ``nu`` is the true longitude (from
  the x axis to r).

Angles "from the x axis" are measured in the direction of motion, so a retrograde
equatorial orbit (``inc = pi``) measures them clockwise seen from +z, as the rotation
``R3(-raan) R1(-inc) R3(-argp)`` does.

References
----------
.. [1] D. A. Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed.,
       2013, Ch. 2: algorithms KEPLER (universal variables), RV2COE and COE2RV with
       their special cases.
.. [2] H. D. Curtis, "Orbital Mechanics for Engineering Students", 3rd ed., 2014,
       Algorithms 3.3-3.4 (universal Kepler equation, Lagrange coefficients), 4.2
       and 4.5.
"""

from typing import NamedTuple

import numpy as np

from .constants import MU_EARTH
from .units import plain

MU_UNIT = "km3 / s2"

# Below these thresholds an orbit is treated as circular / equatorial and the
# conventions of the module docstring apply. atan2 keeps the angles well conditioned
# down to round-off, so the thresholds only pick the convention; the price is that
# ``coe2rv(*rv2coe(r, v))`` is exact only to O(threshold) relative below them (the
# dropped periapsis or node direction carries a weight ecc or sin(inc)).
CIRCULAR_ECC = 1e-11
EQUATORIAL_SIN_INC = 1e-11

_STUMPFF_SERIES_TERMS = 12  # |z| < 1: the dropped term is below 1/(2*12+3)! ~ 1e-28
_KEPLER_MAX_ITER = 50


class ClassicalElements(NamedTuple):
    """Classical orbital elements; each field has the batch shape of the input.

    ``a`` [km] is negative for hyperbolic orbits (``ecc > 1``); angles are in radians,
    ``inc`` in [0, pi], the others in [0, 2 pi).
    """

    a: np.ndarray
    ecc: np.ndarray
    inc: np.ndarray
    raan: np.ndarray
    argp: np.ndarray
    nu: np.ndarray


def period(a, mu=MU_EARTH):
    """Orbital period ``2 pi sqrt(a^3 / mu)`` [s] for semi-major axis ``a`` [km].

    NaN where ``a <= 0`` (open orbits). ``a`` may be a scalar or an array.
    """
    a = np.asarray(plain(a, "km", "a"), dtype=float)
    mu = plain(mu, MU_UNIT, "mu")
    with np.errstate(invalid="ignore"):
        return _scalar(np.where(a > 0, 2.0 * np.pi * np.sqrt(np.abs(a) ** 3 / mu), np.nan))


def _scalar(x):
    """A 0-d array as a numpy float64 scalar (``np.where`` returns 0-d arrays, ufuncs
    scalars); arrays of higher rank as they are."""
    return np.asarray(x)[()]


def coe2rv(a, ecc, inc, raan, argp, nu, mu=MU_EARTH):
    """State vectors from classical elements (Vallado's COE2RV, Curtis Alg. 4.5).

    Parameters
    ----------
    a : float or array_like, shape (N,)
        Semi-major axis [km]; negative for a hyperbola. Parabolas (``ecc == 1``)
        are not representable with ``a``.
    ecc, inc, raan, argp, nu : float or array_like, shape (N,)
        Eccentricity, inclination, right ascension of the ascending node, argument of
        periapsis and true anomaly [rad]; see the module docstring for circular and
        equatorial orbits. For a hyperbola ``|nu|`` must stay below ``arccos(-1/ecc)``.
    mu : float
        Gravitational parameter [km^3/s^2].

    Returns
    -------
    r, v : ndarray, shape (N, 3) or (3,)
        Position [km] and velocity [km/s] in the frame the angles refer to.
    """
    a = plain(a, "km", "a")
    ecc = plain(ecc, "", "ecc")
    inc, raan, argp, nu = (plain(x, "rad", name) for x, name in
                           ((inc, "inc"), (raan, "raan"), (argp, "argp"), (nu, "nu")))
    mu = plain(mu, MU_UNIT, "mu")
    a, ecc, inc, raan, argp, nu = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (a, ecc, inc, raan, argp, nu)))
    p = a * (1.0 - ecc * ecc)
    cos_nu, sin_nu = np.cos(nu), np.sin(nu)
    radius = p / (1.0 + ecc * cos_nu)
    speed = np.sqrt(mu / p)
    # Perifocal components, then the rotation R3(-raan) R1(-inc) R3(-argp) applied via
    # the perifocal unit vectors P (to periapsis) and Q (90 deg ahead) [1]_.
    x_pf, y_pf = radius * cos_nu, radius * sin_nu
    vx_pf, vy_pf = -speed * sin_nu, speed * (ecc + cos_nu)
    co, so = np.cos(raan), np.sin(raan)
    cw, sw = np.cos(argp), np.sin(argp)
    ci, si = np.cos(inc), np.sin(inc)
    P = np.stack([co * cw - so * sw * ci, so * cw + co * sw * ci, sw * si], axis=-1)
    Q = np.stack([-co * sw - so * cw * ci, -so * sw + co * cw * ci, cw * si], axis=-1)
    r = x_pf[..., None] * P + y_pf[..., None] * Q
    v = vx_pf[..., None] * P + vy_pf[..., None] * Q
    return r, v


def _angle(u, w, normal):
    """Angle [0, 2 pi) from ``u`` to ``w`` about ``normal`` (all shape (..., 3))."""
    y = np.einsum("...i,...i->...", normal, np.cross(u, w))
    x = np.einsum("...i,...i->...", u, w)
    return np.mod(np.arctan2(y, x), 2.0 * np.pi)


def rv2coe(r, v, mu=MU_EARTH):
    """Classical elements from state vectors (Vallado's RV2COE, Curtis Alg. 4.2).

    Angles come from ``atan2`` of sine and cosine projections, not ``arccos``, so
    they stay accurate near 0 and pi. Orbits below ``CIRCULAR_ECC`` or
    ``EQUATORIAL_SIN_INC`` follow the conventions of the module docstring.

    Parameters
    ----------
    r : array_like, shape (N, 3) or (3,)
        Position [km].
    v : array_like, shape (N, 3) or (3,)
        Velocity [km/s].
    mu : float
        Gravitational parameter [km^3/s^2].

    Returns
    -------
    ClassicalElements
        ``(a, ecc, inc, raan, argp, nu)``, each of shape (N,), or each a numpy
        ``float64`` scalar for one state; ``a`` [km] is negative for hyperbolas and
        infinite for an exact parabola.
    """
    r = np.asarray(plain(r, "km", "r"), dtype=float)
    v = np.asarray(plain(v, "km / s", "v"), dtype=float)
    mu = plain(mu, MU_UNIT, "mu")
    r, v = np.broadcast_arrays(r, v)
    rnorm = np.linalg.norm(r, axis=-1)
    h = np.cross(r, v)
    hnorm = np.linalg.norm(h, axis=-1)
    h_hat = h / hnorm[..., None]
    node = np.stack([-h[..., 1], h[..., 0], np.zeros_like(hnorm)], axis=-1)  # z x h
    ecc_vec = np.cross(v, h) / mu - r / rnorm[..., None]
    ecc = np.linalg.norm(ecc_vec, axis=-1)
    p = hnorm * hnorm / mu
    with np.errstate(divide="ignore"):
        a = p / (1.0 - ecc * ecc)

    sin_inc = np.hypot(h[..., 0], h[..., 1]) / hnorm
    inc = np.arctan2(np.hypot(h[..., 0], h[..., 1]), h[..., 2])
    equatorial = sin_inc < EQUATORIAL_SIN_INC
    circular = ecc < CIRCULAR_ECC

    # Reference directions: the ascending node, or the x axis for an equatorial
    # orbit; periapsis, or that node direction for a circular orbit.
    x_axis = np.broadcast_to(np.array([1.0, 0.0, 0.0]), r.shape)
    node_ref = np.where(equatorial[..., None], x_axis, node)
    peri_ref = np.where(circular[..., None], node_ref, ecc_vec)

    raan = np.where(equatorial, 0.0, np.mod(np.arctan2(h[..., 0], -h[..., 1]), 2.0 * np.pi))
    argp = np.where(circular, 0.0, _angle(node_ref, ecc_vec, h_hat))
    nu = _angle(peri_ref, r, h_hat)
    return ClassicalElements(*(_scalar(x) for x in (a, ecc, inc, raan, argp, nu)))


def stumpff_c2_c3(z):
    """Stumpff functions ``C(z) = (1 - cos sqrt z) / z``, ``S(z) = (sqrt z - sin sqrt z) / sqrt z^3``.

    Continued analytically to ``z < 0`` with cosh/sinh; a Taylor series is used for
    ``|z| < 1``, where the closed forms cancel. ``z`` is an array of any shape.
    """
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1.0
    # Series C = sum_k (-z)^k / (2k+2)! = (1/2)(1 - z/(3*4) (1 - z/(5*6) (...))) and
    # S = sum_k (-z)^k / (2k+3)! = (1/6)(1 - z/(4*5) (1 - z/(6*7) (...))), in Horner form.
    zs = np.where(small, z, 0.0)
    t2 = np.ones_like(z)
    t3 = np.ones_like(z)
    for k in range(_STUMPFF_SERIES_TERMS, 0, -1):
        t2 = 1.0 - zs * t2 / ((2 * k + 1) * (2 * k + 2))
        t3 = 1.0 - zs * t3 / ((2 * k + 2) * (2 * k + 3))
    c2 = 0.5 * t2
    c3 = t3 / 6.0
    pos = ~small & (z > 0)
    neg = ~small & (z < 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        s = np.sqrt(np.abs(z))
        c2_pos = 2.0 * np.sin(0.5 * s) ** 2 / z  # = (1 - cos s) / z without cancellation
        c3_pos = (s - np.sin(s)) / (s * s * s)
        c2_neg = 2.0 * np.sinh(0.5 * s) ** 2 / -z
        c3_neg = (np.sinh(s) - s) / (s * s * s)
    c2 = np.where(pos, c2_pos, np.where(neg, c2_neg, c2))
    c3 = np.where(pos, c3_pos, np.where(neg, c3_neg, c3))
    return c2, c3


def kepler_propagate(r0, v0, dt, mu=MU_EARTH):
    """Analytic two-body propagation by the universal-variable Kepler equation.

    Newton's method on the universal Kepler equation (Curtis Alg. 3.3, Vallado's
    KEPLER), then the Lagrange coefficients f, g, fdot, gdot (Curtis Alg. 3.4). For a
    closed orbit ``dt`` is first reduced by whole periods to ``|dt| <= P / 2`` so that
    long propagations keep full accuracy. Elliptic, parabolic and hyperbolic orbits,
    forward or backward in time.

    Parameters
    ----------
    r0, v0 : array_like, shape (N, 3) or (3,)
        Initial position [km] and velocity [km/s].
    dt : float or array_like, shape (N,)
        Time of flight [s], broadcast against the leading axes of ``r0``.
    mu : float
        Gravitational parameter [km^3/s^2].

    Returns
    -------
    r, v : ndarray, shape (N, 3) or (3,)
        Position [km] and velocity [km/s] after ``dt``.

    Raises
    ------
    RuntimeError
        If Newton's method has not converged in 50 iterations. Members with a
        non-finite state or ``dt`` give NaN instead.
    """
    r0 = np.asarray(plain(r0, "km", "r0"), dtype=float)
    v0 = np.asarray(plain(v0, "km / s", "v0"), dtype=float)
    dt = np.asarray(plain(dt, "s", "dt"), dtype=float)
    mu = plain(mu, MU_UNIT, "mu")
    shape = np.broadcast_shapes(r0.shape[:-1], v0.shape[:-1], dt.shape)
    r0 = np.broadcast_to(r0, shape + (3,))
    v0 = np.broadcast_to(v0, shape + (3,))
    dt = np.broadcast_to(dt, shape)

    sqrt_mu = np.sqrt(mu)
    r0n = np.linalg.norm(r0, axis=-1)
    rv0 = np.einsum("...i,...i->...", r0, v0)
    alpha = 2.0 / r0n - np.einsum("...i,...i->...", v0, v0) / mu  # 1 / a

    dt, chi = _kepler_start(alpha, r0n, rv0, dt, mu, sqrt_mu)
    chi = _kepler_newton(chi, alpha, r0n, rv0, dt, sqrt_mu)
    radius, _, z, c2, c3 = _universal_kepler(chi, alpha, r0n, rv0, dt, sqrt_mu)
    chi2 = chi * chi
    f = 1.0 - chi2 / r0n * c2
    g = dt - chi2 * chi / sqrt_mu * c3
    fdot = sqrt_mu / (radius * r0n) * chi * (z * c3 - 1.0)
    gdot = 1.0 - chi2 / radius * c2
    r = f[..., None] * r0 + g[..., None] * v0
    v = fdot[..., None] * r0 + gdot[..., None] * v0
    return r, v


def _kepler_start(alpha, r0n, rv0, dt, mu, sqrt_mu):
    """``dt`` reduced by whole periods for a closed orbit (``alpha = 1/a > 0``), and
    the first guess of the universal variable ``chi``."""
    closed = alpha > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        period_ = np.where(closed, 2.0 * np.pi / (np.sqrt(mu) * np.abs(alpha) ** 1.5), np.inf)
        dt = np.where(closed, dt - period_ * np.rint(dt / period_), dt)

        # Initial guesses (Vallado's KEPLER): ellipse sqrt(mu) alpha dt; hyperbola a
        # logarithmic estimate, falling back to Curtis's sqrt(mu) |alpha| dt.
        chi = sqrt_mu * np.abs(alpha) * dt
        a_hyp = 1.0 / alpha
        sgn = np.sign(dt)
        arg = (-2.0 * mu * alpha * dt) / (rv0 + sgn * np.sqrt(-mu * a_hyp) * (1.0 - r0n * alpha))
        chi_hyp = sgn * np.sqrt(-a_hyp) * np.log(arg)
    use_hyp = (alpha < 0) & np.isfinite(chi_hyp) & (arg > 0)
    return dt, np.where(use_hyp, chi_hyp, chi)


def _kepler_newton(chi, alpha, r0n, rv0, dt, sqrt_mu):
    """``chi`` solving the universal Kepler equation, by Newton's method from ``chi``;
    RuntimeError if it has not converged in ``_KEPLER_MAX_ITER`` iterations."""
    for _ in range(_KEPLER_MAX_ITER):
        radius, residual, z, c2, c3 = _universal_kepler(chi, alpha, r0n, rv0, dt, sqrt_mu)
        step = residual / radius  # dF/dchi = radius
        chi = chi - step
        # Non-finite members (a NaN state) are left to give NaN, not to stall the batch.
        tolerance = 4.0 * np.finfo(float).eps * np.maximum(np.abs(chi), 1.0)
        if np.all(~np.isfinite(step) | (np.abs(step) <= tolerance)):
            return chi
    raise RuntimeError("kepler_propagate: Newton's method did not converge in "
                       f"{_KEPLER_MAX_ITER} iterations")


def _universal_kepler(chi, alpha, r0n, rv0, dt, sqrt_mu):
    """At ``chi``: the radius (the derivative of the residual), the residual of the
    universal Kepler equation, ``z = alpha chi^2`` and the Stumpff ``C(z)``, ``S(z)``."""
    z = alpha * chi * chi
    c2, c3 = stumpff_c2_c3(z)
    chi2 = chi * chi
    radius = chi2 * c2 + rv0 / sqrt_mu * chi * (1.0 - z * c3) + r0n * (1.0 - z * c2)
    residual = chi2 * chi * c3 + rv0 / sqrt_mu * chi2 * c2 + r0n * chi * (1.0 - z * c3) \
        - sqrt_mu * dt
    return radius, residual, z, c2, c3
