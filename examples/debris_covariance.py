"""How fast a debris cloud's position uncertainty grows: covariance by the state
transition matrix, along-track, cross-track and radial.

Run: ``python examples/debris_covariance.py`` (a few seconds after the first compile).
A spacecraft in a 500 km sun-synchronous orbit breaks up (NASA Standard Breakup
Model); each fragment's state after the breakup is known to 100 m and 0.1 m/s (one
sigma, per axis). batchivp propagates the fragments for ``--hours`` with J2 and
exponential-atmosphere drag (those descending through 100 km stop there) and, with
``stm=True``, each one's state transition matrix
Φ(t) from the forces' generated derivatives; ``res.covariance(P0)`` gives Φ P0 Φᵀ at
each output time. Rotated into each fragment's radial / along-track / cross-track frame
(RSW), the along-track sigma grows about linearly with time (the velocity error
changes the period, so the position drifts along the orbit), while the radial and
cross-track sigmas stay bounded and oscillate once per revolution. The script prints
the median sigmas and saves a plot to ``--out`` (``debris_covariance_output/``).
"""

import argparse
import math
from pathlib import Path

import numpy as np

from batchivp import orbit, targets
from batchivp.orbit import constants as C

PARENT_ALTITUDE = 500.0  # km, circular
PARENT_INCLINATION = 97.4  # deg: sun-synchronous at 500 km
SIGMA_R = 0.1  # km (100 m) per axis at the epoch
SIGMA_V = 1e-4  # km/s (0.1 m/s) per axis
REENTRY_ALTITUDE = 100.0  # km: a fragment that descends through it stops there


def rsw_sigmas(r, v, P):
    """One-sigma radial, along-track and cross-track position uncertainty [km].

    r, v: (N, 3, k) states; P: (N, 6, 6, k) covariances. The frame: radial along r,
    cross-track along r x v, along-track completing it (Vallado's RSW)."""
    radial = r / np.linalg.norm(r, axis=1, keepdims=True)
    cross = np.cross(r, v, axis=1)
    cross /= np.linalg.norm(cross, axis=1, keepdims=True)
    along = np.cross(cross, radial, axis=1)
    frame = np.stack([radial, along, cross], axis=1)  # (N, 3 axes, 3, k)
    P_rsw = np.einsum("naik,nijk,nbjk->nabk", frame, P[:, :3, :3, :], frame)
    return np.sqrt(np.diagonal(P_rsw, axis1=1, axis2=2))  # (N, k, 3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="number of fragments (default 500)")
    parser.add_argument("--hours", type=float, default=24.0, help="propagation span (default 24)")
    parser.add_argument("--target", default=None, help="cpu, parallel, cuda or auto")
    parser.add_argument("--out", default="debris_covariance_output", help="folder for the plot")
    parser.add_argument("--no-plots", action="store_true", help="skip matplotlib")
    args = parser.parse_args(argv)

    r_parent, v_parent = orbit.coe2rv(C.R_EARTH + PARENT_ALTITUDE, 0.0,
                                      math.radians(PARENT_INCLINATION), 0.0, 0.0, 0.0)
    cloud = orbit.breakup_cloud(r_parent, v_parent, n=args.n, seed=1)
    t_eval = np.linspace(0.0, args.hours * 3600.0, 97)
    res = orbit.propagate(cloud.r, cloud.v, t_eval,
                          forces=[orbit.J2(), orbit.ExponentialDrag(2.2, cloud.area_to_mass)],
                          events=[orbit.altitude_below(REENTRY_ALTITUDE)], stm=True,
                          target=targets.resolve_target(args.target))
    P0 = np.diag([SIGMA_R ** 2] * 3 + [SIGMA_V ** 2] * 3)
    ok = res.status == 0  # in orbit to the end (the others re-entered, or failed)
    sigmas = rsw_sigmas(res.r[ok], res.v[ok], res.covariance(P0)[ok]) * 1e3  # m
    median = np.median(sigmas, axis=0)
    print(f"{ok.sum()} of {args.n} fragments in orbit after {args.hours:g} h "
          f"({res.reentered.sum()} re-entered); median one-sigma position uncertainty [m]:")
    for k in range(0, len(t_eval), 24):
        print(f"  t = {t_eval[k] / 3600:5.1f} h: radial {median[k, 0]:8.1f}, "
              f"along-track {median[k, 1]:9.1f}, cross-track {median[k, 2]:8.1f}")
    if not args.no_plots:
        plot(t_eval, sigmas, Path(args.out))


def plot(t_eval, sigmas, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    hours = t_eval / 3600.0
    for axis, (name, color) in enumerate((("radial", "C0"), ("along-track", "C3"),
                                          ("cross-track", "C2"))):
        low, mid, high = np.percentile(sigmas[:, :, axis], [10, 50, 90], axis=0)
        ax.fill_between(hours, low, high, color=color, alpha=0.2)
        ax.plot(hours, mid, color=color, label=f"{name} (median, 10-90 %)")
    ax.set_yscale("log")
    ax.set_xlabel("time since breakup [h]")
    ax.set_ylabel("one-sigma position uncertainty [m]")
    ax.set_title("Debris fragments: covariance carried by the state transition matrix")
    ax.legend()
    fig.tight_layout()
    path = out / "uncertainty_rsw.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
