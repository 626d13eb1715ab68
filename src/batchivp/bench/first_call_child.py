"""One fresh process of ``batchivp bench --cases first-call``: one scenario, one JSON line.

:mod:`.first_call_cases` runs this file with ``runpy`` from ``python -c`` in a process
of its own, never imports it: importing :mod:`batchivp.bench` registers (and compiles)
the bench's own functions and so warms numba, which the figures must not include. The
last argument is the scenario as JSON: ``scenario`` (a key of :data:`SCENARIOS`),
``target``, ``module`` (the module holding the new function, written by the parent
into the process's working folder) and the scenario's values. ``$BATCHIVP_KERNEL``
picks the kernel kind. The last line printed is a JSON object: ``import_s`` (``import
batchivp``), ``call_s`` (from importing the function's module to the answer: its
registration and the first call), and the scenario's own figures.
"""

import importlib
import json
import sys
import time
import warnings

ORBIT_RADIUS = 7000.0  # km: two circular orbits, 622 km up, a short span


def _timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def _two_orbits(mu):
    import numpy as np

    speed = (mu / ORBIT_RADIUS) ** 0.5
    r = np.array([[ORBIT_RADIUS, 0.0, 0.0], [0.0, ORBIT_RADIUS, 0.0]])
    v = np.array([[0.0, speed, 0.0], [0.0, 0.0, speed]])
    return r, v


def _checked(res):
    """The batch or orbit result, after checking no problem failed."""
    if not res.success.all():
        raise RuntimeError(f"a problem failed: status {res.status.tolist()}")
    return {"nfev_total": int(res.nfev.sum())}


def solve_ivp_call(spec):
    """``bi.solve_ivp`` on the module's new lambda ``f`` (Lotka-Volterra), then scipy's
    DOP853 on the same call; scipy.integrate's import is timed apart (``scipy_import_s``)."""
    import batchivp as bi
    from batchivp.ivp import CompilationWarning

    warnings.simplefilter("error", CompilationWarning)  # a fallback to scipy is a failure
    fun = importlib.import_module(spec["module"]).f
    scipy_import_s, _ = _timed(lambda: importlib.import_module("scipy.integrate"))
    from scipy.integrate._ivp.ivp import solve_ivp as scipy_solve_ivp  # not a replaced name

    call = (fun, (0.0, 15.0), [10.0, 5.0])
    call_s, res = _timed(lambda: bi.solve_ivp(*call, rtol=1e-8))
    scipy_s, ref = _timed(lambda: scipy_solve_ivp(*call, method="DOP853", rtol=1e-8))
    return {"call_s": call_s, "scipy_s": scipy_s, "scipy_import_s": scipy_import_s,
            "nfev": int(res.nfev), "scipy_nfev": int(ref.nfev)}


def solve_batch_call(spec):
    """The module's new ``@bi.rhs`` ``rhs`` (Lorenz, rho and beta in ``p``) through
    ``solve_batch`` on 16 problems."""
    import numpy as np

    import batchivp as bi

    n = 16
    params = np.stack([np.linspace(0.0, 21.0, n), np.full(n, 8.0 / 3.0)], axis=1)

    def call():
        rhs = importlib.import_module(spec["module"]).rhs
        return bi.solve_batch(rhs, (0.0, 1.0), np.ones((n, 3)), params, rtol=1e-8,
                              atol=1e-8, target=spec["target"])
    call_s, res = _timed(call)
    return dict(_checked(res), call_s=call_s)


def _two_body_batch(target, events):
    """The registered two-body rhs (:data:`batchivp.models.two_body`) on two orbits."""
    import numpy as np

    import batchivp as bi
    from batchivp import models
    from batchivp.orbit.constants import MU_EARTH

    r, v = _two_orbits(MU_EARTH)
    return bi.solve_batch(models.two_body, (0.0, 600.0), np.concatenate([r, v], axis=1),
                          np.full((2, 1), MU_EARTH), rtol=1e-10, atol=1e-10, events=events,
                          target=target)


def event_call(spec):
    """The module's new ``@bi.event`` ``event`` with the two-body rhs through
    ``solve_batch``."""
    call_s, res = _timed(lambda: _two_body_batch(
        spec["target"], [importlib.import_module(spec["module"]).event]))
    return dict(_checked(res), call_s=call_s)


def user_force_call(spec):
    """The module's new ``force`` as an ``orbit.UserForce`` through ``orbit.propagate``."""
    from batchivp import orbit

    r, v = _two_orbits(orbit.MU_EARTH)

    def call():
        force = orbit.UserForce(importlib.import_module(spec["module"]).force, params=[1e-9])
        return orbit.propagate(r, v, t_span=(0.0, 600.0), forces=[force], target=spec["target"])
    call_s, res = _timed(call)
    return dict(_checked(res), call_s=call_s)


def threshold_call(spec):
    """``orbit.propagate`` with J2 and ``altitude_below(spec["altitude"])``."""
    from batchivp import orbit

    r, v = _two_orbits(orbit.MU_EARTH)
    call_s, res = _timed(lambda: orbit.propagate(
        r, v, t_span=(0.0, 600.0), forces=[orbit.J2()],
        events=[orbit.altitude_below(spec["altitude"])], target=spec["target"]))
    return dict(_checked(res), call_s=call_s)


def existing_call(spec):
    """Compile (or load) what scenarios d and f take as existing: the two-body rhs alone
    through ``solve_batch``, J2 with ``altitude_below(100)`` through ``propagate``."""
    call_s, res = _timed(lambda: _two_body_batch(spec["target"], []))
    return dict(_checked(res), call_s=call_s,
                threshold_s=threshold_call(dict(spec, altitude=100.0))["call_s"])


SCENARIOS = {"solve_ivp": solve_ivp_call, "solve_batch": solve_batch_call,
             "event": event_call, "user_force": user_force_call,
             "threshold": threshold_call, "existing": existing_call}


def main():
    spec = json.loads(sys.argv[-1])
    sys.path.insert(0, ".")  # the working folder, where the parent wrote the module
    import_s, _ = _timed(lambda: importlib.import_module("batchivp"))
    out = SCENARIOS[spec["scenario"]](spec)
    print(json.dumps(dict(out, import_s=import_s)))


if __name__ == "__main__":
    main()
