"""``orbit.propagate``: batches of Earth orbits by Cowell's method on solve_batch.

The state of each object is ``y = (r, v)`` [km, km/s] in EME2000. The right-hand side
is rendered from the chosen force models (:mod:`.forces`): the two-body term, then
each model's acceleration in the order listed. Each combination of models is one
generated module, compiled once per target and kept in the disk cache.

The parameter vector of every object is ``p = (epoch, q_1, q_2, ..., e_1, e_2, ...)``:
the epoch in TT seconds past J2000 (so ``t + p[0]`` is the date for ephemerides), then
each model's per-object parameters in the order listed, then the values of each orbit
event (:attr:`~batchivp.orbit.events.OrbitEvent.values`: an altitude, the sine of a
latitude) in the order of ``events``. Each orbit event reads its values at its place
(:func:`event_functions`), so its code does not depend on them: one compile serves
every threshold. User event functions (``@bi.event``) passed in ``events`` read the
epoch and the forces' parameters, whose places do not depend on the events.

Arguments with units may be astropy quantities (and the epoch an astropy ``Time``):
they are converted (:mod:`.units`), never read as bare numbers in another unit.
"""

import datetime
import math
from dataclasses import dataclass, field

import numpy as np

from .. import EventFunction, bounds, solve_batch
from ..arguments import is_dask
from ..plain import compose
from ..source import def_source
from .constants import R_EARTH
from . import units
from .ephemeris import j2000_tt_seconds
from . import quantities
from .events import OrbitEvent
from .forces import Force, UserForce, per_object_values, two_body_acceleration

DEFAULT_RTOL = 1e-10
DEFAULT_ATOL = 1e-9  # km and km/s: 1 m and 1 mm/s at most, far below rtol for LEO
STATE_NAMES = ("x", "y", "z", "vx", "vy", "vz")  # the summary's first columns
ORBIT_ARGUMENTS = bounds.Arguments(
    y="the orbit state has {n} components (r, v)",
    p="the parameter vector has {m} value{s} (the epoch, each force's parameters, then "
      "each orbit event's values)",
    view="it is given {cap} parameter{s}: pass UserForce(..., params=[...]) with {need} values",
    transposed="expected a state of {k} components")


@dataclass
class OrbitResult:
    """Results of :func:`propagate`, arrays over the objects (length ``N``).

    Attributes
    ----------
    t : ndarray, shape (k,), or None
        The ``t_eval`` times [s since the epoch].
    r, v : ndarray, shape (N, 3, k), or None
        Position [km] and velocity [km/s] at ``t``; NaN after an object's terminal event.
    t_final : ndarray, shape (N,)
        Time each object reached [s]: the end of the span, or its terminal event.
    r_final, v_final : ndarray, shape (N, 3)
        State at ``t_final``.
    status : ndarray of int, shape (N,)
        0 reached the end, 1 stopped by a terminal event (e.g. re-entry), negative: a
        failure, see :meth:`message`.
    reentered : ndarray of bool, shape (N,)
        The object descended through an :func:`~batchivp.orbit.altitude_below` altitude.
    t_reentry : ndarray, shape (N,)
        Time of the first such crossing [s], NaN where none.
    t_events, y_events : list of ndarray
        Per event in ``events``, as :class:`batchivp.BatchResult` (NaN padded).
    n_events : ndarray of int, shape (N, len(events)), or None
    nfev, nstep : ndarray of int, shape (N,)
        Right-hand side evaluations and accepted steps.
    stm : ndarray, shape (N, 6, 6, k), or None
        With ``stm=True``: the state transition matrix ``d(r, v)(t) / d(r0, v0)`` at
        ``t``, from the dense output. Its blocks have units: ``dr/dr0`` and ``dv/dv0``
        none, ``dr/dv0`` s, ``dv/dr0`` 1/s.
    stm_final : ndarray, shape (N, 6, 6), or None
        The same at ``t_final`` (after a terminal event, including the move of its time).
    summary : dict of ndarray, shape (N, 6 + len(observables)) each, or None
        With ``summarize``: each statistic over the ``t_eval`` points, for the columns
        :attr:`summary_names` (``x, y, z`` [km], ``vx, vy, vz`` [km/s], then the
        observables in their units; ``argmin``/``argmax`` in s). See :meth:`statistic`.
    batch : BatchResult
        The underlying :func:`batchivp.solve_batch` result.
    forces, events : tuple
        What was propagated.
    """

    t: object
    r: object
    v: object
    t_final: np.ndarray
    r_final: np.ndarray
    v_final: np.ndarray
    status: np.ndarray
    reentered: np.ndarray
    t_reentry: np.ndarray
    t_events: object
    y_events: object
    n_events: object
    nfev: np.ndarray
    nstep: np.ndarray
    batch: object = field(repr=False)
    stm: object = field(default=None, repr=False)
    stm_final: object = field(default=None, repr=False)
    forces: tuple = ()
    events: tuple = ()
    summary: object = field(default=None, repr=False)
    summary_names: tuple = ()

    def statistic(self, name, quantity):
        """``summary[name]`` of one quantity, ``(N,)``: a state component (``"x"`` ...
        ``"vz"``) or an observable by its name (``res.statistic("min", "altitude")``)."""
        if self.summary is None or name not in self.summary:
            raise ValueError(f"statistic {name!r} was not computed: propagate with "
                             f"summarize=(..., {name!r}, ...) and t_eval")
        if quantity not in self.summary_names:
            raise ValueError(f"quantity {quantity!r} was not summarized; summarized: "
                             f"{', '.join(self.summary_names)}")
        return self.summary[name][:, self.summary_names.index(quantity)]

    @property
    def altitude(self):
        """(N, k) height above the spherical Earth [km] at ``t``."""
        return np.sqrt(np.sum(self.r * self.r, axis=1)) - R_EARTH

    @property
    def success(self):
        """Per object: it reached the end of the span or a terminal event (as
        :attr:`batchivp.BatchResult.success`)."""
        return self.batch.success

    @property
    def interrupted(self):
        """Ctrl-C stopped the propagation early (see :class:`batchivp.BatchResult`)."""
        return self.batch.interrupted

    def message(self, i):
        """The status message of object ``i``."""
        return self.batch.message(i)

    def covariance(self, P0):
        """The state covariance at ``t`` carried linearly from the epoch:
        ``Φ(t) P0 Φ(t)ᵀ``, with ``Φ`` the :attr:`stm` (propagate with ``stm=True``).

        Parameters
        ----------
        P0 : array_like, shape (6, 6) or (N, 6, 6)
            Covariance of ``(r, v)`` at ``t = 0``, shared or per object: km^2 in the
            position block, km^2/s between position and velocity, km^2/s^2 in the
            velocity block.

        Returns
        -------
        ndarray, shape (N, 6, 6, k)
            In the same units, at each ``t_eval`` point.
        """
        if self.stm is None:
            raise ValueError("covariance needs the state transition matrix: propagate with "
                             "stm=True and t_eval")
        P0 = np.asarray(units.plain(P0, None, "P0"), dtype=float)
        if P0.shape not in ((6, 6), (self.stm.shape[0], 6, 6)):
            raise ValueError(f"P0 must have shape (6, 6) or (N, 6, 6) with N = "
                             f"{self.stm.shape[0]}, got {P0.shape}")
        P0 = np.broadcast_to(P0, (self.stm.shape[0], 6, 6))
        return np.einsum("nikt,nkl,njlt->nijt", self.stm, P0, self.stm)


def force_model(forces):
    """The right-hand side (a rendered plugin) of two-body gravity plus ``forces``,
    reading ``p`` as :func:`parameter_matrix` lays it out."""
    forces = _check_forces(forces)
    lines = ["two_body_acceleration(t, y, p, dydt)"]
    calls = {"two_body_acceleration": two_body_acceleration}
    if any(f.uses_date for f in forces):
        lines.insert(0, "tt = p[0] + t  # TT seconds past J2000")
    k = 1
    for i, force in enumerate(forces):
        m = len(force.parameters)
        calls[f"force_{i}"] = force.function
        lines.append(f"force_{i}({'tt' if force.uses_date else 't'}, y, p[{k}:{k + m}], dydt)"
                     f"  # {force.signature()}")
        k += m
    return compose("rhs", def_source("orbit_rhs", "rhs", lines), calls,
                   origin="<batchivp.orbit.propagate>")


def event_functions(forces, events):
    """``events`` as the kernel runs them with ``forces``: each orbit event reading its
    values where :func:`parameter_matrix` puts them, other events unchanged."""
    events = _event_tuple(events)
    return tuple(ev if k is None else ev.at(k)
                 for ev, k in zip(events, _event_places(_check_forces(forces), events)))


def parameter_matrix(forces, n_obj, epoch=None, events=()):
    """Each object's parameter vector ``p = (epoch, q_1, q_2, ..., e_1, ...)``, as an
    ``(n_obj, 1 + m)`` array: the epoch (see :func:`propagate`; 0.0 when not given and
    nothing reads the date), then each force's per-object parameters in the order
    listed (checked, see :meth:`Force.columns`), then each orbit event's values in the
    order of ``events`` (read by :func:`event_functions`'s events)."""
    forces, events = _check_forces(forces), _event_tuple(events)
    _check_epoch_given(epoch, forces, events)
    columns = [_epoch(epoch, n_obj)[:, None]]
    columns += [force.columns(n_obj) for force in forces]
    columns += [np.tile(np.asarray(ev.values, dtype=float), (n_obj, 1))
                for ev in events if isinstance(ev, OrbitEvent)]
    return np.concatenate(columns, axis=1)


def _event_tuple(events):
    """``events`` as a tuple: one event function, or a list or tuple of them."""
    return tuple(events) if isinstance(events, (list, tuple)) else (events,)


def _event_places(forces, events):
    """The index in ``p`` of each orbit event's first value (None for other events):
    after the epoch and the forces' parameters, in the order of ``events``."""
    k = 1 + sum(len(force.parameters) for force in forces)
    places = []
    for ev in events:
        ours = isinstance(ev, OrbitEvent)
        places.append(k if ours else None)
        k += len(ev.values) if ours else 0
    return places


def propagate(r, v, t_eval=None, *, t_span=None, forces=(), events=(), epoch=None,
              rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL, max_events=None, max_step=math.inf,
              max_steps=None, target=None, progress=False, stm=False, observables=(),
              summarize=None, save_states=True):
    """Propagate ``N`` Earth orbits with two-body gravity plus ``forces`` (Cowell).

    Parameters
    ----------
    r, v : array_like, shape (N, 3) or (3,)
        Initial positions [km] and velocities [km/s] in EME2000 (Earth-centred
        inertial, mean equator and equinox of J2000).
    t_eval : array_like, shape (k,), optional
        Times [s since the epoch] at which to report the states (dense output).
    t_span : (float, float), optional
        Start and end [s since the epoch]; default ``(0, t_eval[-1])``. The end may be
        ``inf`` (or ``-inf``) with a terminal event, e.g. until re-entry.
    forces : sequence of Force
        Perturbations: :class:`J2`, :class:`J3`, :class:`ExponentialDrag`,
        :class:`COESA76Drag`, :class:`ThirdBody`, :class:`SolarRadiationPressure`,
        :class:`UserForce`, in any combination (each combination compiles once).
    events : sequence of event functions
        From :mod:`batchivp.orbit.events` (:func:`altitude_below` ...) or
        ``@bi.event`` functions reading ``p`` as the module docstring describes.
    epoch : None, float, datetime.datetime, astropy Time or (N,) array
        The date at ``t = 0``: TT seconds past J2000 (``0.0`` is J2000 itself), a
        naive UTC datetime, or an astropy ``Time`` (scalar or one per object). Only the
        Sun and Moon (:class:`ThirdBody`, :class:`SolarRadiationPressure`, the
        :func:`umbra` and :func:`penumbra` events, ``UserForce(uses_date=True)``) read
        it, and these require it: without ``epoch`` they raise ``ValueError``.
    rtol, atol : float or array_like
        Tolerances, as :func:`batchivp.solve_batch` (``atol`` in km and km/s).
    max_events, max_step, max_steps, target, progress
        As :func:`batchivp.solve_batch`.
    stm : bool
        Also integrate each object's state transition matrix (the variational
        equations of the chosen forces, derived from their code:
        ``solve_batch(sensitivity="y0")``): :attr:`OrbitResult.stm`,
        :attr:`OrbitResult.stm_final` and :meth:`OrbitResult.covariance`. The states
        and steps are those without it.
    observables, summarize, save_states : sequence of str or EventFunction; str(s); bool
        Statistics over ``t_eval`` computed in the kernel, as :func:`batchivp.solve_batch`,
        of the state and of orbit quantities (:data:`.quantities.QUANTITIES`:
        ``"altitude"``, ``"eccentricity"``, ...) or observables reading ``p`` as above:
        :attr:`OrbitResult.summary`, :meth:`OrbitResult.statistic`.
        ``save_states=False``: no ``r``, ``v`` at ``t_eval``, only summaries.

    Arguments with units (``r``, ``v``, ``t_eval``, ``t_span``, ``max_step``, the
    forces' ``area_to_mass``...) may be astropy quantities: they are converted to the
    units above, and a quantity of another kind (seconds for ``r``) is a ``ValueError``.

    ``r`` and ``v`` may be Dask arrays chunked along the objects: the result's arrays are
    then lazy Dask arrays, each chunk solved by the compiled kernel where it lies
    (``batchivp[dask]``; per-object force parameters are read eagerly).

    Returns
    -------
    OrbitResult

    Examples
    --------
    >>> from batchivp import orbit
    >>> r, v = orbit.coe2rv(6778.0, 0.001, 0.9, 0.0, 0.0, 0.0)
    >>> res = orbit.propagate(r, v, t_eval=[0.0, 3600.0], forces=[orbit.J2()])
    >>> res.r.shape
    (1, 3, 2)
    """
    call = _validate(r, v, t_eval, t_span, forces, events, epoch, max_step, rtol, atol,
                     observables)
    rhs, p, placed, y0 = _pack(call)
    res = solve_batch(rhs, call.t_span, y0, p, t_eval=call.t_eval, events=placed,
                      max_events=max_events, rtol=call.rtol, atol=call.atol,
                      max_step=call.max_step, max_steps=max_steps, target=target,
                      progress=progress, sensitivity="y0" if stm else None,
                      observables=[f for _, f in call.observables], summarize=summarize,
                      save_y=save_states)
    return _orbit_result(res, call.forces, call.events, call.observables)


@dataclass(frozen=True)
class _Orbits:
    """One validated call of :func:`propagate`: plain numbers in the units of its
    docstring, the forces and events checked."""

    r0: object  # (N, 3) [km], a Dask array when lazy
    v0: object  # (N, 3) [km/s]
    lazy: bool  # r or v is a Dask array
    t_eval: object
    t_span: object
    forces: tuple
    events: tuple
    epoch: object
    max_step: object
    rtol: object
    atol: object
    observables: tuple = ()  # (name, observable function)


def _validate(r, v, t_eval, t_span, forces, events, epoch, max_step, rtol, atol,
              observables=()):
    """The :class:`_Orbits` of a call, or the error naming the first bad argument
    (the epoch's values and the indices of forces and events are :func:`_pack`'s)."""
    r, v = units.plain(r, "km", "r"), units.plain(v, "km / s", "v")
    t_eval = units.plain(t_eval, "s", "t_eval")
    t_span = units.plain(t_span, "s", "t_span")
    max_step = units.plain(max_step, "s", "max_step")
    rtol, atol = units.plain(rtol, "", "rtol"), units.plain(atol, None, "atol (km for r, km/s for v)")
    lazy = is_dask(r) or is_dask(v)
    r0, v0 = _initial_state(r, v, lazy)
    t_span = _span(t_span, t_eval)
    events = _event_tuple(events)
    forces = _check_forces(forces)
    _check_epoch_given(epoch, forces, events)
    return _Orbits(r0=r0, v0=v0, lazy=lazy, t_eval=t_eval, t_span=t_span, forces=forces,
                   events=events, epoch=epoch, max_step=max_step, rtol=rtol, atol=atol,
                   observables=_observables(observables))


def _observables(observables):
    """``(name, function)`` of each observable: an orbit quantity by name, or a
    registered function (named as registered)."""
    if isinstance(observables, (str, EventFunction)):
        observables = (observables,)
    return tuple((item, quantities.observable(item)) if isinstance(item, str)
                 else (getattr(item, "name", repr(item)), item) for item in observables)


def _initial_state(r, v, lazy):
    """``r`` and ``v`` (plain numbers) as two (N, 3) arrays, checked as far as their
    values are known here."""
    r0 = _state_part(r, "r", lazy)
    v0 = _state_part(v, "v", lazy)
    if r0.shape != v0.shape:
        raise ValueError(f"r and v must have the same shape (N, 3), got {r0.shape} and {v0.shape}")
    if not lazy and np.any(np.sum(r0 * r0, axis=1) == 0.0):
        raise ValueError("r holds a zero position vector (the centre of the Earth)")
    return r0, v0


def _span(t_span, t_eval):
    """``t_span``, by default ``(0, t_eval[-1])``."""
    if t_span is None:
        if t_eval is None:
            raise ValueError("give t_eval (times to report) or t_span=(t0, tf) [s since the epoch]")
        t_last = np.asarray(t_eval, dtype=float).reshape(-1)
        if t_last.size == 0:
            raise ValueError("t_eval is empty")
        t_span = (0.0, float(t_last[-1]))
    return t_span


def _pack(call):
    """What :func:`batchivp.solve_batch` takes for a validated call: the right-hand
    side, the parameter matrix, the events placed in it and ``y0`` (lazy if ``r`` or
    ``v`` is)."""
    forces, events, n_obj = call.forces, call.events, call.r0.shape[0]
    rhs = force_model(forces)
    p = parameter_matrix(forces, n_obj, call.epoch, events)
    placed = event_functions(forces, events)
    # Forces and events index y and p in range (a UserForce within its own params).
    bounds.check([rhs], [e for e in placed if isinstance(e, EventFunction)], 6, p.shape[1],
                 ORBIT_ARGUMENTS)
    if call.lazy:  # one block of objects per chunk of r, each solved where it lies
        import dask.array as da

        r0 = da.asarray(call.r0)
        y0 = da.concatenate([r0, da.asarray(call.v0).rechunk(r0.chunks)], axis=1)
    else:
        y0 = np.concatenate([call.r0, call.v0], axis=1)
    return rhs, p, placed, y0


def _orbit_result(res, forces, events, observables=()):
    """The :class:`OrbitResult` of :func:`batchivp.solve_batch`'s result ``res``."""
    n_obj = res.status.shape[0]
    reentered = np.zeros(n_obj, dtype=bool)
    t_reentry = np.full(n_obj, np.nan)
    for e, ev in enumerate(events):
        if getattr(ev, "orbit_role", None) == "reentry":
            first = res.t_events[e][:, 0]
            earlier = np.isfinite(first) & ~(t_reentry <= first)
            t_reentry = np.where(earlier, first, t_reentry)
            reentered = reentered | (res.n_events[:, e] > 0)  # not |=: may be lazy (Dask)
    y = res.y
    return OrbitResult(
        t=res.t, r=None if y is None else y[:, 0:3, :], v=None if y is None else y[:, 3:6, :],
        t_final=res.t_final, r_final=res.y_final[:, 0:3], v_final=res.y_final[:, 3:6],
        status=res.status, reentered=reentered, t_reentry=t_reentry,
        t_events=res.t_events, y_events=res.y_events, n_events=res.n_events,
        nfev=res.nfev, nstep=res.nstep, forces=forces, events=events, batch=res,
        stm=res.dy_dy0, stm_final=res.dyf_dy0, summary=res.summary,
        summary_names=STATE_NAMES + tuple(name for name, _ in observables))


def _check_forces(forces):
    if isinstance(forces, Force):
        forces = (forces,)
    try:
        forces = tuple(forces)
    except TypeError:
        raise TypeError(f"forces must be a list of force models (orbit.J2(), ...), got {forces!r}") from None
    checked = []
    for item in forces:
        if isinstance(item, type) and issubclass(item, Force):
            raise TypeError(f"forces holds the class {item.__name__}; pass an instance, "
                            f"{item.__name__}()")
        if not isinstance(item, Force):
            if callable(item):
                item = UserForce(item)
            else:
                raise TypeError(f"forces must hold force models (orbit.J2(), orbit.ExponentialDrag(...), "
                                f"orbit.UserForce(f)), got {item!r}")
        checked.append(item)
    return tuple(checked)


def _state_part(value, name, lazy):
    """``r`` or ``v`` as (N, 3); a Dask array stays lazy (its values are checked per
    block, by solve_batch's check of ``y0``)."""
    arr = value if is_dask(value) else np.asarray(value, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 3) or (3,), got shape {np.shape(value)}")
    if not lazy and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds a non-finite value (NaN or inf)")
    return arr


def _check_epoch_given(epoch, forces, events):
    """Forces and events that read the date need ``epoch``: a silent J2000 would put
    the Sun and Moon where they were in 2000."""
    if epoch is not None:
        return
    needs = [repr(f) for f in forces if f.uses_date]
    needs += [f"the {getattr(e, 'orbit_name', None) or getattr(e, 'name', e)} event"
              for e in events if getattr(e, "uses_date", False)]
    if needs:
        raise ValueError(
            f"{needs[0]} depends on the date (the Sun's or Moon's position): pass epoch=, "
            "the date at t = 0, e.g. epoch=datetime(2026, 1, 1) (UTC), an astropy Time, "
            "or epoch=0.0 for J2000 (TT seconds past J2000)")


def _epoch(epoch, n_obj):
    if epoch is None:  # nothing reads it (_check_epoch_given)
        return np.zeros(n_obj)
    if isinstance(epoch, datetime.datetime):
        return np.full(n_obj, j2000_tt_seconds(epoch))
    if units.is_time(epoch):
        epoch = units.tt_seconds(epoch)
    epoch = units.plain(epoch, "s", "epoch")
    return per_object_values(epoch, n_obj, "epoch (TT seconds past J2000, or a UTC datetime)")
