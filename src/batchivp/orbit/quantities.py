"""Orbit quantities that :func:`batchivp.orbit.propagate` can summarize in the kernel.

Each is an observable (:func:`batchivp.observable`): a function ``g(t, y, p)`` of the
state ``y = (r, v)`` [km, km/s], composed like the orbit events (no name in the user's
registry), whose statistics over the ``t_eval`` points come back in
:attr:`OrbitResult.summary <batchivp.orbit.OrbitResult>` without storing the states:
the lowest altitude of every fragment over a day, the largest eccentricity.
"""

import math

from ..plain import compose
from ..source import def_source
from .constants import MU_EARTH
from .forces import altitude_km


def radius_km(y):
    """Distance from the Earth's centre [km]."""
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])


def speed_km_s(y):
    """Speed [km/s]."""
    return math.sqrt(y[3] * y[3] + y[4] * y[4] + y[5] * y[5])


def specific_energy_km2_s2(y):
    """Two-body specific orbital energy v^2 / 2 - mu / r [km^2/s^2]."""
    return 0.5 * (y[3] * y[3] + y[4] * y[4] + y[5] * y[5]) - MU_EARTH / radius_km(y)


def eccentricity_of(y):
    """Two-body eccentricity: the length of ((v^2 - mu/r) r - (r.v) v) / mu."""
    r = radius_km(y)
    v2 = y[3] * y[3] + y[4] * y[4] + y[5] * y[5]
    rv = y[0] * y[3] + y[1] * y[4] + y[2] * y[5]
    a = v2 - MU_EARTH / r
    ex = (a * y[0] - rv * y[3]) / MU_EARTH
    ey = (a * y[1] - rv * y[4]) / MU_EARTH
    ez = (a * y[2] - rv * y[5]) / MU_EARTH
    return math.sqrt(ex * ex + ey * ey + ez * ez)


# name -> (the plain function of y, unit)
QUANTITIES = {
    "altitude": (altitude_km, "km above the spherical Earth (R_EARTH)"),
    "radius": (radius_km, "km"),
    "speed": (speed_km_s, "km/s"),
    "eccentricity": (eccentricity_of, "none (two-body, osculating)"),
    "specific_energy": (specific_energy_km2_s2, "km^2/s^2 (two-body)"),
}


def observable(name):
    """The observable of the quantity ``name`` (a key of :data:`QUANTITIES`)."""
    if name not in QUANTITIES:
        raise ValueError(f"observables: unknown orbit quantity {name!r}; choose among "
                         f"{', '.join(QUANTITIES)}, or pass a function registered with "
                         "@batchivp.observable")
    function = QUANTITIES[name][0]
    return compose("event", def_source(f"orbit_{name}", "event",
                                       [f"return {function.__name__}(y)"]),
                   {function.__name__: function}, origin=f"<batchivp.orbit.quantities {name}>")
