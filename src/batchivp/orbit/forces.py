"""Force models for Cowell propagation: accelerations as plain device functions.

Each model is a plain Python function ``name(t, y, q, dydt)`` following the core's
contract (docs/architecture.md, point 1: ``math`` only, no allocation, no ``raise``):
it reads the state ``y = (x, y, z, vx, vy, vz)`` [km, km/s] in the Earth-centred inertial
frame EME2000, the object's own parameters ``q`` (a slice of the problem's parameter
vector), and **adds** its acceleration [km/s^2] to ``dydt[3:6]``. Models that need
the date (third bodies, radiation pressure) take ``t`` as TT seconds past J2000;
the others ignore it. :func:`batchivp.orbit.propagate` renders the chosen models and
a two-body term into one right-hand side (one generated module per combination).

The classes at the end (:class:`J2`, :class:`ExponentialDrag`, ...) are what users
list in ``forces=``: each names its device function, its per-object parameters (a
scalar shared by the batch or an array with one value per object) and what it reads.

Unit conversions are written where they happen: densities are kg/m^3 and
area-to-mass ratios m^2/kg as in the literature, so drag carries a factor
``1e9 (kg/km^3 per kg/m^3) * 1e-6 (km^2 per m^2) = 1e3``; a pressure [N/m^2] times an
area-to-mass ratio [m^2/kg] is an acceleration in m/s^2, ``1e-3`` km/s^2.

References
----------
.. [1] D. A. Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed.,
       2013, Sec. 8.6 (zonal harmonics, drag, third body, solar radiation pressure).
.. [2] O. Montenbruck, E. Gill, "Satellite Orbits", Springer, 2000, Sec. 3.2-3.5
       (geopotential, third bodies with Battin's f(q), radiation pressure and the
       conical shadow function, eqs. 3.79-3.87 and 3.102).
.. [3] H. D. Curtis, "Orbital Mechanics for Engineering Students", 3rd ed., 2014,
       Sec. 12.7 (J2 perturbation) and Example 12.2.
.. [4] R. H. Battin, "An Introduction to the Mathematics and Methods of
       Astrodynamics", rev. ed., AIAA, 1999, Sec. 8.4 (the function f(q)).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .atmosphere import coesa76_density, exponential_density
from .constants import (AU, J2 as J2_EARTH, J3 as J3_EARTH, MU_EARTH, MU_MOON, MU_SUN,
                        OMEGA_EARTH, R_EARTH, SOLAR_PRESSURE_1AU)
from .ephemeris import moon_xyz, sun_xyz
from .units import plain

# Radius of the Sun [km], as used by Montenbruck & Gill's shadow function [2]_.
R_SUN = 696000.0
DRAG_UNITS = 1.0e3  # (kg/m^3 -> kg/km^3: 1e9) x (m^2/kg -> km^2/kg: 1e-6)
PRESSURE_UNITS = 1.0e-3  # N/m^2 x m^2/kg = m/s^2 -> km/s^2


# ---- device functions: each adds an acceleration to dydt[3:6] ----

def two_body_acceleration(t, y, q, dydt):
    """Point-mass Earth, ``-mu r / |r|^3``; also sets ``dydt[0:3] = v``."""
    r2 = y[0] * y[0] + y[1] * y[1] + y[2] * y[2]
    k = -MU_EARTH / (r2 * math.sqrt(r2))
    dydt[0] = y[3]
    dydt[1] = y[4]
    dydt[2] = y[5]
    dydt[3] = k * y[0]
    dydt[4] = k * y[1]
    dydt[5] = k * y[2]


def j2_acceleration(t, y, q, dydt):
    """Earth's oblateness J2: the gradient of ``-mu/r J2 (R/r)^2 P2(z/r)`` [1]_ eq. 8-30."""
    x, yy, z = y[0], y[1], y[2]
    r2 = x * x + yy * yy + z * z
    r = math.sqrt(r2)
    zr2 = z * z / r2
    k = -1.5 * J2_EARTH * MU_EARTH * R_EARTH * R_EARTH / (r2 * r2 * r)
    dydt[3] += k * x * (1.0 - 5.0 * zr2)
    dydt[4] += k * yy * (1.0 - 5.0 * zr2)
    dydt[5] += k * z * (3.0 - 5.0 * zr2)


def j3_acceleration(t, y, q, dydt):
    """Earth's pear shape J3: the gradient of ``-mu/r J3 (R/r)^3 P3(z/r)`` [1]_ eq. 8-30."""
    x, yy, z = y[0], y[1], y[2]
    r2 = x * x + yy * yy + z * z
    r = math.sqrt(r2)
    zr = z / r
    k = -2.5 * J3_EARTH * MU_EARTH * R_EARTH * R_EARTH * R_EARTH / (r2 * r2 * r2)
    # d/dx and d/dy share 3 (z/r) - 7 (z/r)^3; d/dz adds the term of P3'(z/r).
    dydt[3] += k * x * (3.0 * zr - 7.0 * zr * zr * zr)
    dydt[4] += k * yy * (3.0 * zr - 7.0 * zr * zr * zr)
    dydt[5] += k * r * (6.0 * zr * zr - 7.0 * zr * zr * zr * zr - 0.6)


def drag_from_density(rho, y, ballistic, dydt):
    """Add ``-1/2 rho B |v_rel| v_rel`` with ``v_rel = v - omega x r`` (an atmosphere
    turning with the Earth [1]_ eq. 8-31); ``rho`` [kg/m^3], ``B = cd A/m`` [m^2/kg]."""
    vx = y[3] + OMEGA_EARTH * y[1]
    vy = y[4] - OMEGA_EARTH * y[0]
    vz = y[5]
    k = -0.5 * DRAG_UNITS * rho * ballistic * math.sqrt(vx * vx + vy * vy + vz * vz)
    dydt[3] += k * vx
    dydt[4] += k * vy
    dydt[5] += k * vz


def altitude_km(y):
    """Height above the spherical Earth of radius R_EARTH [km]."""
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - R_EARTH


def exponential_drag_acceleration(t, y, q, dydt):
    """Drag in Vallado's exponential atmosphere; ``q = (cd, A/m [m^2/kg])``."""
    drag_from_density(exponential_density(altitude_km(y)), y, q[0] * q[1], dydt)


def coesa76_drag_acceleration(t, y, q, dydt):
    """Drag in the tabulated U.S. Standard Atmosphere 1976; ``q = (cd, A/m [m^2/kg])``."""
    drag_from_density(coesa76_density(altitude_km(y)), y, q[0] * q[1], dydt)


def point_mass_perturbation(mu, sx, sy, sz, y, dydt):
    """Add the tidal acceleration of a point mass ``mu`` at ``s`` (geocentric) on the
    object at ``r = y[0:3]``: ``-mu/|r - s|^3 (r + f(q) s)``, Battin's form [4]_ of
    ``mu ((s - r)/|s - r|^3 - s/|s|^3)`` without its cancellation [2]_ eq. 3.39."""
    rx, ry, rz = y[0], y[1], y[2]
    s2 = sx * sx + sy * sy + sz * sz
    qq = (rx * (rx - 2.0 * sx) + ry * (ry - 2.0 * sy) + rz * (rz - 2.0 * sz)) / s2
    fq = qq * (3.0 + 3.0 * qq + qq * qq) / (1.0 + (1.0 + qq) ** 1.5)
    dx, dy, dz = rx - sx, ry - sy, rz - sz
    d2 = dx * dx + dy * dy + dz * dz
    k = -mu / (d2 * math.sqrt(d2))
    dydt[3] += k * (rx + fq * sx)
    dydt[4] += k * (ry + fq * sy)
    dydt[5] += k * (rz + fq * sz)


def sun_point_mass_acceleration(t, y, q, dydt):
    """The Sun as a third body (:func:`~batchivp.orbit.ephemeris.sun_xyz`); ``t`` is TT
    seconds past J2000."""
    sx, sy, sz = sun_xyz(t)
    point_mass_perturbation(MU_SUN, sx, sy, sz, y, dydt)


def moon_point_mass_acceleration(t, y, q, dydt):
    """The Moon as a third body (:func:`~batchivp.orbit.ephemeris.moon_xyz`); ``t`` is
    TT seconds past J2000."""
    sx, sy, sz = moon_xyz(t)
    point_mass_perturbation(MU_MOON, sx, sy, sz, y, dydt)


def clamp_unit(x):
    """``x`` limited to [-1, 1] (an acos/asin argument off by round-off)."""
    return -1.0 if x < -1.0 else (1.0 if x > 1.0 else x)


def cylindrical_shadow(rx, ry, rz, sx, sy, sz):
    """Fraction of sunlight (1 or 0) at ``r`` with the Sun at ``s``: in the umbra when
    behind the Earth (``r . s < 0``) within R_EARTH of the Earth-Sun line [1]_ Alg. 34."""
    s = math.sqrt(sx * sx + sy * sy + sz * sz)
    along = (rx * sx + ry * sy + rz * sz) / s
    if along >= 0.0:
        return 1.0
    across2 = rx * rx + ry * ry + rz * rz - along * along
    return 1.0 if across2 > R_EARTH * R_EARTH else 0.0


def conical_angles(rx, ry, rz, sx, sy, sz):
    """Apparent radii of the Sun ``a`` and the Earth ``b`` seen from ``r`` and the angle
    ``c`` between their centres [rad] ([2]_ eqs. 3.84-3.86)."""
    dx, dy, dz = sx - rx, sy - ry, sz - rz
    d = math.sqrt(dx * dx + dy * dy + dz * dz)
    r = math.sqrt(rx * rx + ry * ry + rz * rz)
    a = math.asin(clamp_unit(R_SUN / d))
    b = math.asin(clamp_unit(R_EARTH / r))
    c = math.acos(clamp_unit(-(rx * dx + ry * dy + rz * dz) / (r * d)))
    return a, b, c


def conical_shadow(rx, ry, rz, sx, sy, sz):
    """Fraction of the Sun's disc visible from ``r`` past the Earth's disc, the conical
    shadow model of [2]_ Sec. 3.4.2: 1 in sunlight, 0 in the umbra, between in the
    penumbra (``1 - b^2/a^2`` in the annular case)."""
    a, b, c = conical_angles(rx, ry, rz, sx, sy, sz)
    if c >= a + b:
        return 1.0
    if c <= b - a:
        return 0.0
    if c <= a - b:
        return 1.0 - b * b / (a * a)
    x = (c * c + a * a - b * b) / (2.0 * c)
    h = math.sqrt(max(a * a - x * x, 0.0))
    overlap = (a * a * math.acos(clamp_unit(x / a)) + b * b * math.acos(clamp_unit((c - x) / b))
               - c * h)
    return 1.0 - overlap / (math.pi * a * a)


def add_radiation_pressure(light, sx, sy, sz, y, q, dydt):
    """Add the cannonball radiation pressure ``light P (AU/d)^2 cr A/m`` directed from
    the Sun to the object ([2]_ eq. 3.75, [1]_ eq. 8-44); ``q = (cr, A/m [m^2/kg])``,
    ``light`` the visible fraction of the Sun."""
    dx, dy, dz = y[0] - sx, y[1] - sy, y[2] - sz
    d2 = dx * dx + dy * dy + dz * dz
    d = math.sqrt(d2)
    k = light * PRESSURE_UNITS * SOLAR_PRESSURE_1AU * (AU * AU / d2) * q[0] * q[1] / d
    dydt[3] += k * dx
    dydt[4] += k * dy
    dydt[5] += k * dz


def srp_acceleration(t, y, q, dydt):
    """Solar radiation pressure without shadow; ``t`` TT s past J2000."""
    sx, sy, sz = sun_xyz(t)
    add_radiation_pressure(1.0, sx, sy, sz, y, q, dydt)


def srp_cylindrical_acceleration(t, y, q, dydt):
    """Solar radiation pressure switched off in the cylindrical shadow."""
    sx, sy, sz = sun_xyz(t)
    light = cylindrical_shadow(y[0], y[1], y[2], sx, sy, sz)
    add_radiation_pressure(light, sx, sy, sz, y, q, dydt)


def srp_conical_acceleration(t, y, q, dydt):
    """Solar radiation pressure scaled by the conical shadow function."""
    sx, sy, sz = sun_xyz(t)
    light = conical_shadow(y[0], y[1], y[2], sx, sy, sz)
    add_radiation_pressure(light, sx, sy, sz, y, q, dydt)


# ---- what users list in ``forces=`` ----

class Force:
    """A force model for :func:`batchivp.orbit.propagate`.

    Subclasses set ``function`` (a device function as above), ``uses_date`` (it
    takes TT seconds past J2000 rather than seconds since the epoch) and
    ``parameters``: the per-object values in the order the function reads them from
    ``q``, each a scalar shared by the batch or an array of shape (N,).
    """

    function = None
    uses_date = False
    parameters = ()
    nonnegative = True  # physical coefficients and ratios cannot be negative

    def columns(self, n_obj):
        """The parameters as an (n_obj, m) float array (checked: finite, one per object)."""
        cols = []
        for name, value in self.parameters:
            arr = per_object_values(value, n_obj, f"{type(self).__name__}: {name}")
            if self.nonnegative and np.any(arr < 0):
                raise ValueError(f"{type(self).__name__}: {name} must be non-negative")
            cols.append(arr)
        return np.stack(cols, axis=1) if cols else np.zeros((n_obj, 0))

    def signature(self):
        """The model and the names of its parameters, without their values (the text
        that goes into the generated right-hand side)."""
        return f"{type(self).__name__}({', '.join(name for name, _ in self.parameters)})"

    def __repr__(self):
        args = ", ".join(f"{name}={value!r}" if np.ndim(value) == 0 else
                         f"{name}=<array {np.shape(value)}>" for name, value in self.parameters)
        return f"{type(self).__name__}({args})"


def per_object_values(value, n_obj, name):
    """``value``, a scalar or one value per object, as an (n_obj,) float array; a
    ``ValueError`` naming ``name`` if it has another shape or a non-finite value."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n_obj, float(arr))
    if arr.shape != (n_obj,):
        raise ValueError(f"{name} must be a scalar or have one value per object, shape "
                         f"({n_obj},); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds a non-finite value")
    return arr


def _per_object(owner, name, value, unit):
    """A parameter as given: a scalar, or an array with one value per object; an
    astropy Quantity converted to ``unit`` (see :func:`.units.plain`)."""
    value = plain(value, unit, f"{owner}: {name}")
    return (name, value if np.ndim(value) else float(value))


class J2(Force):
    """Earth's oblateness, J2 = 1.08262668e-3 (EGM96), R = 6378.137 km."""

    function = staticmethod(j2_acceleration)


class J3(Force):
    """Earth's third zonal harmonic, J3 = -2.53265649e-6 (EGM96). Add :class:`J2` too
    for a J2 + J3 field."""

    function = staticmethod(j3_acceleration)


class ExponentialDrag(Force):
    """Atmospheric drag in Vallado's exponential atmosphere (Table 8-4, 0-1000 km),
    with the atmosphere turning with the Earth.

    Parameters
    ----------
    cd : float or (N,) array
        Drag coefficient (2.2 is usual for compact objects).
    area_to_mass : float or (N,) array
        Area-to-mass ratio A/M [m^2/kg] (an astropy quantity is converted).
    """

    function = staticmethod(exponential_drag_acceleration)

    def __init__(self, cd=2.2, area_to_mass=0.01):
        owner = type(self).__name__
        self.parameters = (_per_object(owner, "cd", cd, ""),
                           _per_object(owner, "area_to_mass", area_to_mass, "m2 / kg"))


class COESA76Drag(ExponentialDrag):
    """Atmospheric drag in the U.S. Standard Atmosphere 1976, tabulated at 51 altitudes
    (0-1000 km) and interpolated in log(density); parameters as :class:`ExponentialDrag`."""

    function = staticmethod(coesa76_drag_acceleration)


class ThirdBody(Force):
    """The Sun's or the Moon's attraction as a point mass (``body="sun"`` or ``"moon"``),
    from the low-precision analytic ephemerides of :mod:`batchivp.orbit.ephemeris`
    (Sun about 0.01 deg, Moon a few arcmin). Reads the date: propagate with ``epoch=``."""

    uses_date = True
    _FUNCTIONS = {"sun": sun_point_mass_acceleration, "moon": moon_point_mass_acceleration}

    def __init__(self, body):
        key = str(body).lower()
        if key not in self._FUNCTIONS:
            raise ValueError(f"ThirdBody: body must be 'sun' or 'moon', got {body!r}")
        self.body = key
        self.function = self._FUNCTIONS[key]

    def __repr__(self):
        return f"ThirdBody({self.body!r})"


class SolarRadiationPressure(Force):
    """Solar radiation pressure on a sphere (cannonball model), 4.56e-6 N/m^2 at 1 AU.

    Parameters
    ----------
    cr : float or (N,) array
        Reflectivity coefficient, 1 (absorbing) to 2 (mirror).
    area_to_mass : float or (N,) array
        Area-to-mass ratio A/M [m^2/kg].
    shadow : {"conical", "cylindrical", None}
        Earth's shadow: the conical model with penumbra (Montenbruck & Gill 3.4.2),
        a cylinder of the Earth's radius, or none.

    Reads the date (the Sun's position): propagate with ``epoch=``. ``area_to_mass``
    may be an astropy quantity (converted to m^2/kg).
    """

    uses_date = True
    _FUNCTIONS = {"conical": srp_conical_acceleration,
                  "cylindrical": srp_cylindrical_acceleration, None: srp_acceleration}

    def __init__(self, cr=1.3, area_to_mass=0.01, shadow="conical"):
        if shadow not in self._FUNCTIONS:
            raise ValueError("SolarRadiationPressure: shadow must be 'conical', "
                             f"'cylindrical' or None, got {shadow!r}")
        self.shadow = shadow
        self.function = self._FUNCTIONS[shadow]
        self.parameters = (_per_object("SolarRadiationPressure", "cr", cr, ""),
                           _per_object("SolarRadiationPressure", "area_to_mass", area_to_mass,
                                       "m2 / kg"))


class UserForce(Force):
    """A force of your own: ``function(t, y, q, dydt)``, written like a ``@bi.rhs``
    function (a plain ``def`` or one registered with :func:`batchivp.rhs`), that
    **adds** its acceleration [km/s^2] to ``dydt[3]``, ``dydt[4]``, ``dydt[5]``
    (``+=``; the two-body term is already there). ``y`` is the state (km, km/s), ``q``
    the object's values of ``params`` in order, and ``t`` seconds since the epoch, or
    TT seconds past J2000 with ``uses_date=True``. To run on cuda it must follow the
    device rules of ``@bi.rhs`` (``math`` only, no allocation).

    Parameters
    ----------
    function : function
        The acceleration function.
    params : sequence of (float or (N,) array), optional
        Per-object parameters, read as ``q[0]``, ``q[1]``, ...
    uses_date : bool
        Pass TT seconds past J2000 as ``t`` (propagate then requires ``epoch=``).

    Examples
    --------
    >>> def radial_thrust(t, y, q, dydt):    # q[0]: acceleration [km/s^2]
    ...     r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    ...     dydt[3] += q[0] * y[0] / r
    ...     dydt[4] += q[0] * y[1] / r
    ...     dydt[5] += q[0] * y[2] / r
    >>> thrust = UserForce(radial_thrust, params=[1e-9])
    """

    nonnegative = False

    def __init__(self, function, params=(), uses_date=False):
        if not callable(function):
            raise TypeError(f"UserForce: function must be a Python function, got {function!r}")
        self.function = function
        self.uses_date = bool(uses_date)
        self.parameters = tuple(_per_object(repr(self), f"params[{i}]", value, None)
                                for i, value in enumerate(params))

    def __repr__(self):
        return f"UserForce({getattr(self.function, '__name__', self.function)!r})"
