"""Orbit mechanics on top of batchivp: the foundations (issue 5).

What is here, pure numpy or plain ``math``, with no use of the solver yet:

- :mod:`.constants`: Earth, Sun and Moon constants in km, s, kg (plain floats);
- :mod:`.elements`: classical elements <-> state vectors (:func:`coe2rv`,
  :func:`rv2coe`), :func:`period`, and :func:`kepler_propagate`, the analytic
  two-body solution that serves as an oracle for propagation tests;
- :mod:`.breakup`: fragment clouds from the NASA Standard Breakup Model
  (:func:`breakup_cloud`);
- :mod:`.ephemeris`: low-precision analytic Sun and Moon positions, as scalar
  kernel-ready functions (:func:`sun_position`, :func:`moon_position`) and numpy
  wrappers;
- :mod:`.atmosphere`: exponential (Vallado) and USSA76 density tables with scalar
  kernel-ready lookups.

Still to come: ``orbit.propagate`` (batched propagation through ``solve_batch``), the
force models (J2/J3, drag, third bodies, solar radiation pressure) and the events
(re-entry, node crossings).
"""

from .atmosphere import coesa76_density, exponential_density
from .breakup import FragmentCloud, breakup_cloud, fragment_count
from .constants import (AU, J2, J3, MU_EARTH, MU_MOON, MU_SUN, OMEGA_EARTH, R_EARTH,
                        SOLAR_PRESSURE_1AU)
from .elements import ClassicalElements, coe2rv, kepler_propagate, period, rv2coe
from .ephemeris import (j2000_tt_seconds, moon_position, moon_position_array, sun_position,
                        sun_position_array)

__all__ = [
    "AU",
    "ClassicalElements",
    "FragmentCloud",
    "J2",
    "J3",
    "MU_EARTH",
    "MU_MOON",
    "MU_SUN",
    "OMEGA_EARTH",
    "R_EARTH",
    "SOLAR_PRESSURE_1AU",
    "breakup_cloud",
    "coe2rv",
    "coesa76_density",
    "exponential_density",
    "fragment_count",
    "j2000_tt_seconds",
    "kepler_propagate",
    "moon_position",
    "moon_position_array",
    "period",
    "rv2coe",
    "sun_position",
    "sun_position_array",
]
