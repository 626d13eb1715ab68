"""astropy quantities and times at the orbit interface: converted, never misread.

The orbit functions take plain numbers in km, km/s, s, rad and, for the force models'
coefficients, the literature's units (A/M in m^2/kg). numpy reads an astropy
``Quantity`` as its bare values in whatever unit it carries, so ``6778 km`` given as
``6.778e6 m`` would be read as 6.778e6 km. Every argument with a unit therefore goes
through :func:`plain`: a ``Quantity`` (or a list of them) is converted to the unit the
argument is documented in, and one of another physical type is a ``ValueError`` naming
the argument. astropy is only looked at when the caller has imported it: without it
in ``sys.modules`` no value can be one of its objects.
"""

import sys

import numpy as np

from .constants import SECONDS_PER_DAY

# The J2000 epoch (2000-01-01 12:00 TT) as a Julian date.
J2000_JD = 2451545.0


def _astropy(module):
    """``astropy.<module>`` if the caller has imported it, else None."""
    return sys.modules.get(f"astropy.{module}")


def is_quantity(value):
    units = _astropy("units")
    return units is not None and isinstance(value, units.Quantity)


def is_time(value):
    time = _astropy("time")
    return time is not None and isinstance(value, time.Time)


def _holds_quantity(value):
    """A list or tuple (nested) with a Quantity in it: numpy would drop the units."""
    if isinstance(value, (list, tuple)):
        return any(is_quantity(v) or _holds_quantity(v) for v in value)
    return False


def plain(value, unit, name):
    """``value`` as plain numbers in ``unit`` (astropy's spelling: ``"km"``,
    ``"km / s"``, ``"m2 / kg"``, ``""`` for a pure number).

    Values without units are returned as they are (assumed to be in ``unit``, as
    documented). ``unit=None``: the argument has no one unit (a ``UserForce``
    parameter, ``atol`` in km and km/s), so only a dimensionless Quantity is accepted.
    """
    if is_time(value):
        raise TypeError(f"{name} is an astropy Time; give "
                        f"{'a number' if unit is None else 'a Quantity or a number in ' + unit}"
                        " (a time since the epoch is (t - epoch).to(u.s))")
    if _holds_quantity(value):
        value = _astropy("units").Quantity(value)
    if not is_quantity(value):
        return value
    units = _astropy("units")
    target = units.dimensionless_unscaled if not unit else units.Unit(unit)
    try:
        return value.to_value(target)
    except units.UnitConversionError:
        wanted = ("plain numbers (it has no unit of its own)" if unit is None
                  else f"a quantity in {unit}" if unit else "a pure number")
        raise ValueError(f"{name} is a Quantity in {value.unit} ({value.unit.physical_type}); "
                         f"it must be {wanted}") from None


def tt_seconds(epoch):
    """An astropy ``Time`` as TT seconds past J2000 (a float or an array of them)."""
    tt = epoch.tt
    # jd1 holds the whole days: subtract J2000 there first, keeping jd2's precision.
    seconds = ((tt.jd1 - J2000_JD) + tt.jd2) * SECONDS_PER_DAY
    return float(seconds) if np.ndim(seconds) == 0 else np.asarray(seconds, dtype=float)
