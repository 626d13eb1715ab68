"""Benchmark: a debris cloud under J2 and drag for one day, ``batchivp bench --cases orbit``.

The case of ``examples/debris_cloud.py`` and issue 5: an explosion in a 500 km
sun-synchronous orbit (NASA Standard Breakup Model, seed 1), 100,000 fragments (1,000
with ``--quick``) propagated for 24 h with J2 and exponential-atmosphere drag (cd 2.2,
each fragment's own A/M) and a terminal re-entry event at 100 km, at
rtol = atol = 1e-10 (``orbit.propagate``'s default tolerances are tighter in atol; the
figure is the same to a few percent). The right-hand side and event are the ones
``orbit.propagate`` renders (:func:`batchivp.orbit.force_model`,
:func:`~batchivp.orbit.event_functions`), solved by
``solve_batch`` with the per-object parameter vector ``propagate`` builds.

scipy runs ``solve_ivp(method="DOP853")`` on an evenly spread sample of
``--scipy-sample`` fragments (default 64; 16 with ``--quick``), calling the same force
functions as plain Python, and its time is extrapolated linearly to the whole cloud
(``*``): a full scipy loop would take hours. The note after the table gives objects
per second per engine.
"""

import numpy as np

from .. import orbit
from ..orbit import constants as C
from .batch_cases import BatchCase, bench_case, sample_indices
from .registry import register

PARENT_ALTITUDE = 500.0  # km
PARENT_INCLINATION = 97.4  # deg


def cloud_case(config):
    n = 1_000 if config.quick else 100_000
    r, v = orbit.coe2rv(C.R_EARTH + PARENT_ALTITUDE, 0.0, np.radians(PARENT_INCLINATION),
                        0.0, 0.0, 0.0)
    cloud = orbit.breakup_cloud(r, v, n=n, seed=1)
    drag = orbit.ExponentialDrag(cd=2.2, area_to_mass=cloud.area_to_mass)
    forces = [orbit.J2(), drag]
    events = [orbit.altitude_below(100.0)]
    rhs = orbit.force_model(forces)
    # (epoch = 0, cd, A/M, 100 km), the event reading its altitude at p[3], as propagate's
    params = orbit.parameter_matrix(forces, n, events=events)
    y0 = np.concatenate([cloud.r, cloud.v], axis=1)
    sample = config.scipy_sample or (16 if config.quick else 64)
    return BatchCase("orbit", rhs, (0.0, 86400.0), y0, params, 1e-10,
                     sample_indices(n, sample), orbit.event_functions(forces, events))


def objects_per_second(rows):
    return [f"orbit: {r['n'] / r['time_s']:,.0f} objects/s on {r['engine']}"
            + (" (extrapolated)" if r.get("extrapolated") else "")
            for r in rows if r["case"] == "orbit"]


@register("orbit", notes=objects_per_second)
def run_orbit(config):
    return bench_case(cloud_case(config), config)
