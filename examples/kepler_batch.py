"""A batch of Kepler orbits around the Earth, one day, on the default target.

Run: ``make demo`` (or ``python examples/kepler_batch.py [N]``). Pick the target with
``BATCHIVP_TARGET=cpu|parallel|cuda|auto`` (default auto: cuda if a GPU is usable,
else all cores). The check printed at the end is a conservation law: two-body
motion keeps the specific orbital energy and angular momentum constant.
"""

import math
import sys
import time

import numpy as np

import batchivp as bi
from batchivp.orbit.constants import MU_EARTH, R_EARTH  # km^3/s^2, km


@bi.rhs
def kepler(t, y, p, dydt):
    """Two-body motion; y = (r, v) in km and km/s, p[0] = mu in km^3/s^2."""
    r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    k = -p[0] / (r * r * r)
    dydt[0] = y[3]
    dydt[1] = y[4]
    dydt[2] = y[5]
    dydt[3] = k * y[0]
    dydt[4] = k * y[1]
    dydt[5] = k * y[2]


def random_orbits(n, seed=1):
    """Near-circular orbits, 300-1500 km altitude, random planes, as (n, 6) states."""
    rng = np.random.default_rng(seed)
    radius = R_EARTH + rng.uniform(300.0, 1500.0, n)
    speed = np.sqrt(MU_EARTH / radius) * rng.uniform(0.97, 1.03, n)
    inc = rng.uniform(0.0, math.pi, n)
    raan = rng.uniform(0.0, 2 * math.pi, n)
    y0 = np.empty((n, 6))
    y0[:, 0] = radius * np.cos(raan)
    y0[:, 1] = radius * np.sin(raan)
    y0[:, 2] = 0.0
    y0[:, 3] = -speed * np.sin(raan) * np.cos(inc)
    y0[:, 4] = speed * np.cos(raan) * np.cos(inc)
    y0[:, 5] = speed * np.sin(inc)
    return y0


def energy(y):
    r = np.linalg.norm(y[..., :3], axis=-1)
    return 0.5 * np.sum(y[..., 3:] ** 2, axis=-1) - MU_EARTH / r


def main(n=4096):
    y0 = random_orbits(n)
    t_eval = np.linspace(0.0, 86400.0, 97)  # every 15 minutes
    target = bi.resolve_target()
    print(f"Propagating {n} Kepler orbits for one day on target '{target}' (rtol = atol = 1e-10)")
    start = time.perf_counter()
    res = bi.solve_batch(kepler, (0.0, 86400.0), y0, params=MU_EARTH, t_eval=t_eval,
                         rtol=1e-10, atol=1e-10)
    elapsed = time.perf_counter() - start
    ok = np.count_nonzero(res.status == 0)
    print(f"  {ok}/{n} reached the end; {elapsed:.2f} s including compilation "
          f"(cached on disk for the next run)")
    print(f"  steps per orbit problem: median {int(np.median(res.nstep))}, "
          f"RHS evaluations in total: {int(res.nfev.sum()):,}")
    drift = np.abs(energy(res.y_final) / energy(y0) - 1.0)
    print(f"  relative energy drift after one day: max {drift.max():.2e} (conservation check)")
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096))
