"""Orbit events for :func:`batchivp.orbit.propagate`: re-entry, nodes, latitudes, shadow.

Each factory returns an :class:`OrbitEvent` (a :class:`batchivp.registry.EventFunction`,
found inside the kernel like any ``@bi.event``) with scipy's ``terminal`` and
``direction``. Their values are continuous functions of the state whose zeros are the
events. Their numbers (an altitude, the sine of a latitude: :attr:`OrbitEvent.values`)
are written into an event made alone; :func:`~batchivp.orbit.propagate` places each
event to read them from the parameter vector instead, so its code depends only on which
events are asked for and their order, and a new threshold runs the function already
compiled (see propagate's module docstring for the layout). ``p[0]`` is the epoch (TT
seconds past J2000), which the shadow events need for the Sun's position (they have
``uses_date = True``: ``propagate`` then requires ``epoch=``).

Altitudes are above the spherical Earth of radius ``R_EARTH`` (6378.137 km), as in
the drag models; latitudes are geocentric.
"""

import math
from dataclasses import dataclass

from ..plain import compose
from ..registry import EventFunction
from ..source import def_source
from .forces import R_EARTH, altitude_km, conical_angles, sun_xyz
from .units import plain

__all__ = ["OrbitEvent", "altitude_below", "altitude_crossing", "latitude_crossing",
           "node_crossing", "penumbra", "umbra"]


@dataclass(frozen=True)
class _Kind:
    """What makes an event's code: its name, body (``{0}``, ``{1}``...: its values),
    the plain functions the body calls, its role for propagate."""

    name: str
    body: tuple
    calls: tuple = ()
    role: str = None
    uses_date: bool = False

    def source(self, values, k):
        """The event's source: reading its values from ``p[k]`` on, or (``k`` None)
        with the values written in."""
        terms = [repr(float(v)) if k is None else f"p[{k + i}]" for i, v in enumerate(values)]
        return def_source(self.name, "event", [line.format(*terms) for line in self.body])


class OrbitEvent(EventFunction):
    """An orbit event, reading its :attr:`values` from ``p[k]``, ``p[k + 1]``, ...

    A factory's event has its values written into its code, so it works alone, with
    any ``p`` (each new value then compiles its own small function);
    :func:`~batchivp.orbit.propagate` places each after the forces' parameters, where
    one compiled function serves every value. To do the same with
    :func:`batchivp.solve_batch`, give it ``orbit.event_functions(forces, events)`` and
    ``orbit.parameter_matrix(forces, n, epoch, events)``.

    Attributes
    ----------
    values : tuple of float
        The event's numbers, in the order it reads them (empty for most).
    k : int or None
        The index in ``p`` of the first value (:meth:`at` places it); None: the values
        are written in.
    orbit_name, orbit_role, uses_date
        The factory's name, ``"reentry"`` for :func:`altitude_below` (propagate reports
        these as ``reentered``), whether it reads the epoch ``p[0]``.

    Other attributes: see :class:`batchivp.registry.EventFunction`.
    """

    def __init__(self, plugin, py_func, kind, values, k):
        super().__init__(plugin, py_func)
        self._kind = kind
        self.values = tuple(values)
        self.k = k
        self.orbit_name = kind.name  # the plugin's own name has a hash appended
        self.orbit_role = kind.role
        self.uses_date = kind.uses_date  # reads the epoch p[0]

    def at(self, k):
        """This event (same values and options) reading its values from ``p[k]`` on."""
        if k == self.k or not self.values:  # the code of an event without values has no k
            return self
        return _orbit_event(self._kind, self.values, k, self.terminal, self.direction)

    # Pickles as what makes it (for Dask workers): the kind, values, place and options.
    def __reduce__(self):
        return (_orbit_event, (self._kind, self.values, self.k, self.terminal, self.direction))


def _orbit_event(kind, values, k, terminal, direction):
    composed = compose("event", kind.source(values, k), dict(kind.calls),
                       origin=f"<batchivp.orbit.events {kind.name}>")
    event = OrbitEvent(composed.plugin, composed.py_func, kind, values, k)
    return event.with_options(terminal, direction)


def _event(name, body, calls, terminal, direction, values=(), role=None, uses_date=False):
    kind = _Kind(name, tuple(body), tuple(sorted(calls.items())), role, uses_date)
    return _orbit_event(kind, values, None, terminal, direction)


def _finite(value, name, unit):
    value = float(plain(value, unit, name))
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def altitude_crossing(altitude, direction=0.0, terminal=False):
    """The object crosses ``altitude`` [km] above the spherical Earth.

    ``direction=-1``: descending through it, ``+1`` ascending, ``0`` both.
    """
    h = _finite(altitude, "altitude", "km")
    return _event("altitude_crossing", ["return altitude_km(y) - {0}"],
                  {"altitude_km": altitude_km}, terminal, direction, values=(h,))


def altitude_below(altitude=100.0, terminal=True):
    """Re-entry: the object descends through ``altitude`` [km] (default 100 km, the
    Karman line). Terminal by default; :func:`propagate` reports these occurrences as
    ``reentered`` and ``t_reentry``."""
    h = _finite(altitude, "altitude", "km")
    return _event("altitude_below", ["return altitude_km(y) - {0}"],
                  {"altitude_km": altitude_km}, terminal, -1.0, values=(h,), role="reentry")


def node_crossing(direction=0.0, terminal=False):
    """The object crosses the equatorial plane: ``direction=+1`` at the ascending node
    (z rising through 0), ``-1`` at the descending node, ``0`` both."""
    return _event("node_crossing", ["return y[2]"], {}, terminal, direction)


def latitude_crossing(latitude, direction=0.0, terminal=False):
    """The object's geocentric latitude crosses ``latitude`` [deg] (``+1`` northward)."""
    lat = _finite(latitude, "latitude", "deg")
    if not -90.0 < lat < 90.0:
        raise ValueError(f"latitude must lie strictly between -90 and 90 degrees, got {lat!r}")
    s = math.sin(math.radians(lat))  # the value is sin(latitude): z / |r| crosses it
    return _event("latitude_crossing", [
        "r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])",
        "return y[2] / r - {0}",
    ], {}, terminal, direction, values=(s,))


def _shadow_event(name, shadow, direction, terminal, penumbra):
    if shadow not in ("conical", "cylindrical"):
        raise ValueError(f"shadow must be 'conical' or 'cylindrical', got {shadow!r}")
    if shadow == "cylindrical":
        if penumbra:
            raise ValueError("the cylindrical shadow has no penumbra; use shadow='conical'")
        # sqrt(|r|^2 - min(r.s, 0)^2) - R: the distance from the shadow axis behind the
        # Earth, |r| in front of it (equal where r.s = 0), minus R_EARTH.
        body = [
            "sx, sy, sz = sun_xyz(p[0] + t)",
            "along = (y[0] * sx + y[1] * sy + y[2] * sz) / math.sqrt(sx * sx + sy * sy + sz * sz)",
            "along = min(along, 0.0)",
            "return (math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2] - along * along)"
            f" - {R_EARTH!r})",
        ]
        return _event(name, body, {"sun_xyz": sun_xyz}, terminal, direction, uses_date=True)
    limit = "a + b" if penumbra else "b - a"
    body = [
        "sx, sy, sz = sun_xyz(p[0] + t)",
        "a, b, c = conical_angles(y[0], y[1], y[2], sx, sy, sz)",
        f"return c - ({limit})",
    ]
    return _event(name, body, {"sun_xyz": sun_xyz, "conical_angles": conical_angles},
                  terminal, direction, uses_date=True)


def umbra(direction=-1.0, terminal=False, shadow="conical"):
    """Umbra entry (``direction=-1``, the default) or exit (``+1``): the Earth's disc
    covers the Sun's entirely (conical model: the angle between their centres falls
    below the difference of their apparent radii; cylindrical: the object passes
    behind the Earth within R_EARTH of the Earth-Sun line). Reads the date: propagate
    with ``epoch=``."""
    return _shadow_event("umbra", shadow, direction, terminal, penumbra=False)


def penumbra(direction=-1.0, terminal=False):
    """Penumbra entry (``direction=-1``) or exit (``+1``) in the conical shadow model:
    the Earth's disc starts (stops) covering part of the Sun's. Reads the date:
    propagate with ``epoch=``."""
    return _shadow_event("penumbra", "conical", direction, terminal, penumbra=True)
