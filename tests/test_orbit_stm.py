"""orbit.propagate(stm=True): the state transition matrix of Cowell's equations with
perturbations, against central differences of scipy solves of the same forces written
in numpy (test_orbit_propagate.numpy_rhs), on every target; covariance = Φ P0 Φᵀ."""

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp

from batchivp import orbit
from test_orbit_propagate import EPOCH, leo, numpy_rhs

HOUR = 3600.0
STEPS = np.array([1e-3] * 3 + [1e-6] * 3)  # km, km/s


@functools.lru_cache(maxsize=None)
def scipy_stm(model_id, t_end):
    """The STM by central differences of scipy solves of MODELS[model_id], once for all
    targets."""
    r0, v0 = leo(a=6700.0)
    return finite_difference_stm(numpy_rhs(**MODELS[model_id]), np.r_[r0, v0], t_end)


def finite_difference_stm(f, y0, t_end):
    columns = []
    for j in range(6):
        e = np.zeros(6)
        e[j] = STEPS[j]
        plus, minus = (scipy_solve_ivp(f, (0.0, t_end), y0 + s * e, method="DOP853",
                                       rtol=1e-13, atol=1e-13).y[:, -1] for s in (1, -1))
        columns.append((plus - minus) / (2 * STEPS[j]))
    return np.stack(columns, axis=1)


MODELS = {"j2-drag": dict(j2=True, drag=(2.2, 0.02)),
          "sun-moon-srp": dict(sun=True, moon=True, srp=(1.3, 0.05), shadow=None)}


@pytest.mark.parametrize("forces, model", [
    ([orbit.J2(), orbit.ExponentialDrag(2.2, 0.02)], "j2-drag"),
    ([orbit.ThirdBody("sun"), orbit.ThirdBody("moon"),
      orbit.SolarRadiationPressure(1.3, 0.05, shadow=None)], "sun-moon-srp"),
], ids=["j2-drag", "sun-moon-srp"])
def test_stm_matches_finite_differences_of_scipy(target, forces, model):
    r0, v0 = leo(a=6700.0)
    t_eval = np.linspace(0.0, HOUR, 3)
    res = orbit.propagate(r0, v0, t_eval, forces=forces, epoch=EPOCH, rtol=1e-12, atol=1e-12,
                          stm=True, target=target)
    assert res.stm.shape == (1, 6, 6, 3) and res.stm_final.shape == (1, 6, 6)
    np.testing.assert_allclose(res.stm[0, :, :, 0], np.eye(6), atol=0)
    fd = scipy_stm(model, HOUR)
    np.testing.assert_allclose(res.stm_final[0], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())
    np.testing.assert_allclose(res.stm[0, :, :, -1], res.stm_final[0], rtol=1e-12)


def test_covariance_is_carried_by_the_stm():
    r0, v0 = leo()
    t_eval = np.linspace(0.0, 2 * HOUR, 5)
    res = orbit.propagate(np.stack([r0, r0]), np.stack([v0, v0 * 1.001]), t_eval,
                          forces=[orbit.J2()], stm=True, target="cpu")
    P0 = np.diag([0.1 ** 2] * 3 + [1e-4 ** 2] * 3)  # 100 m, 0.1 m/s
    P = res.covariance(P0)
    assert P.shape == (2, 6, 6, 5)
    np.testing.assert_allclose(P[:, :, :, 0], np.broadcast_to(P0, (2, 6, 6)), atol=0)
    for k in range(5):
        phi = res.stm[1, :, :, k]
        np.testing.assert_allclose(P[1, :, :, k], phi @ P0 @ phi.T, rtol=1e-12)
    # Along-track uncertainty grows (the mean-motion spread); the matrix stays symmetric.
    np.testing.assert_allclose(P, np.swapaxes(P, 1, 2), rtol=1e-12)
    assert np.trace(P[0, :3, :3, -1]) > 10 * np.trace(P0[:3, :3])
    with pytest.raises(ValueError, match="P0 must have shape"):
        res.covariance(np.eye(3))
    plain = orbit.propagate(r0, v0, t_eval, target="cpu")
    with pytest.raises(ValueError, match="stm=True"):
        plain.covariance(P0)


def test_the_covariance_example_runs(tmp_path, capsys):
    """examples/debris_covariance.py, small: the along-track sigma outgrows the others."""
    import runpy

    example = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "debris_covariance.py"))
    example["main"](["--n", "8", "--hours", "3", "--target", "cpu", "--out", str(tmp_path),
                     "--no-plots"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    radial, along, cross = (float(x.split()[-1]) for x in last.split(":")[1].split(","))
    assert along > 10 * max(radial, cross)  # the drift along the orbit dominates


def test_stm_after_reentry_keeps_the_event_altitude(target):
    """A terminal re-entry ends where |r| = R + 100 km whatever the initial state: the
    final radius has no sensitivity, r̂ · d r_final / d(r0, v0) = 0 (the root's move is in
    stm_final)."""
    r0, v0 = orbit.coe2rv(6378.137 + 130.0, 0.0005, 0.9, 0.0, 0.0, 0.0)
    res = orbit.propagate(r0, v0, t_span=(0.0, 5 * 86400.0),
                          forces=[orbit.J2(), orbit.ExponentialDrag(2.2, 0.05)],
                          events=[orbit.altitude_below(100.0)], stm=True, target=target)
    assert res.reentered[0] and res.status[0] == 1
    r_hat = res.r_final[0] / np.linalg.norm(res.r_final[0])
    radial = r_hat @ res.stm_final[0][:3]
    assert np.abs(radial).max() < 1e-9 * np.abs(res.stm_final[0][:3]).max()


def gamma_push(t, y, q, dydt):  # a user's force whose derivative batchivp has no rule for
    dydt[3] += 1e-12 * math.gamma(2.0 + y[0] * 1e-4)


def test_an_undifferentiable_user_force_is_named():
    r0, v0 = leo()
    with pytest.raises(ValueError, match=r"in 'gamma_push', which it calls.*math\.gamma"):
        orbit.propagate(r0, v0, [0.0, 60.0], forces=[orbit.UserForce(gamma_push)], stm=True,
                        target="cpu")
