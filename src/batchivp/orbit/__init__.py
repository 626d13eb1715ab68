"""Orbit mechanics on top of batchivp: batches of Earth orbits by Cowell's method.

- :func:`propagate`: ``N`` orbits with two-body gravity plus any combination of
  force models (:class:`J2`, :class:`J3`, :class:`ExponentialDrag`,
  :class:`COESA76Drag`, :class:`ThirdBody`, :class:`SolarRadiationPressure`,
  :class:`UserForce`) and events (:func:`altitude_below`, :func:`node_crossing`,
  :func:`latitude_crossing`, :func:`umbra`, :func:`penumbra`), on every target;
- :mod:`.constants`: Earth, Sun and Moon constants in km, s, kg (plain floats;
  the zonal coefficients are ``constants.J2``, ``constants.J3``);
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
"""

from .atmosphere import coesa76_density, exponential_density
from .breakup import FragmentCloud, breakup_cloud, fragment_count
from .constants import (AU, MU_EARTH, MU_MOON, MU_SUN, OMEGA_EARTH, R_EARTH,
                        SOLAR_PRESSURE_1AU)
from .elements import ClassicalElements, coe2rv, kepler_propagate, period, rv2coe
from .ephemeris import (j2000_tt_seconds, moon_position, moon_position_array, sun_position,
                        sun_position_array)
from .events import (OrbitEvent, altitude_below, altitude_crossing, latitude_crossing,
                     node_crossing, penumbra, umbra)
from .forces import (J2, J3, COESA76Drag, ExponentialDrag, Force, SolarRadiationPressure,
                     ThirdBody, UserForce)
from .propagate import OrbitResult, event_functions, force_model, parameter_matrix, propagate

__all__ = [
    "AU",
    "COESA76Drag",
    "ExponentialDrag",
    "Force",
    "J2",
    "J3",
    "OrbitEvent",
    "OrbitResult",
    "SolarRadiationPressure",
    "ThirdBody",
    "UserForce",
    "altitude_below",
    "altitude_crossing",
    "event_functions",
    "force_model",
    "latitude_crossing",
    "node_crossing",
    "parameter_matrix",
    "penumbra",
    "propagate",
    "umbra",
    "ClassicalElements",
    "FragmentCloud",
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
