"""A debris cloud for one day: breakup, J2 + drag propagation, re-entries and plots.

Run: ``make demo`` (or ``python examples/debris_cloud.py``). A spacecraft in a 500 km
sun-synchronous orbit explodes; the NASA Standard Breakup Model gives the fragments'
ejection velocities and area-to-mass ratios; batchivp propagates them all for a day
with Earth's J2 and atmospheric drag (Vallado's exponential atmosphere, each
fragment's own A/M) and stops each fragment that descends through 100 km.

Scale and target: ``--n 100000`` for a full cloud (about a minute per 100,000
fragment-days on two CPU cores at these tolerances, seconds on a GPU);
``BATCHIVP_TARGET=cpu|parallel|cuda`` or ``--target`` picks the target (default:
cuda when a GPU is usable, else all cores). Plots go to ``--out``
(``debris_cloud_output/``): altitude against time for a sample of fragments, the
Gabbard diagram (apogee and perigee altitude against period) at the start and the
end, and the spread of the cloud along the parent's orbit.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from batchivp import orbit, targets
from batchivp.orbit import constants as C

PARENT_ALTITUDE = 500.0  # km, circular
PARENT_INCLINATION = 97.4  # deg: sun-synchronous at 500 km
PARENT_AREA_TO_MASS = 0.005  # m^2/kg, a compact spacecraft
REENTRY_ALTITUDE = 100.0  # km


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="number of fragments (default 20000)")
    parser.add_argument("--hours", type=float, default=24.0, help="propagation span (default 24)")
    parser.add_argument("--target", default=None, help="cpu, parallel, cuda or auto "
                        "(default: $BATCHIVP_TARGET, else auto)")
    parser.add_argument("--seed", type=int, default=1, help="breakup seed (default 1)")
    parser.add_argument("--out", default="debris_cloud_output", help="folder for the plots")
    parser.add_argument("--no-plots", action="store_true", help="skip matplotlib")
    args = parser.parse_args(argv)
    target = targets.resolve_target(args.target)

    # The parent and its breakup.
    r_parent, v_parent = orbit.coe2rv(C.R_EARTH + PARENT_ALTITUDE, 0.0,
                                      math.radians(PARENT_INCLINATION), 0.0, 0.0, 0.0)
    cloud = orbit.breakup_cloud(r_parent, v_parent, n=args.n, seed=args.seed)
    dv = np.linalg.norm(cloud.delta_v, axis=1) * 1e3
    print(f"breakup at {PARENT_ALTITUDE:.0f} km, i = {PARENT_INCLINATION} deg: {args.n} fragments, "
          f"L_c {cloud.char_length.min() * 100:.0f}-{cloud.char_length.max() * 100:.0f} cm, "
          f"A/M median {np.median(cloud.area_to_mass):.3f} m^2/kg, "
          f"delta-v median {np.median(dv):.0f} m/s (95% below {np.percentile(dv, 95):.0f} m/s)")

    # Object 0 is the parent (no delta-v): the reference for the cloud's spread.
    r0 = np.vstack([r_parent, cloud.r])
    v0 = np.vstack([v_parent, cloud.v])
    area_to_mass = np.concatenate([[PARENT_AREA_TO_MASS], cloud.area_to_mass])
    t_eval = np.linspace(0.0, args.hours * 3600.0, int(args.hours * 6) + 1)  # every 10 min
    forces = [orbit.J2(), orbit.ExponentialDrag(cd=2.2, area_to_mass=area_to_mass)]
    events = [orbit.altitude_below(REENTRY_ALTITUDE)]

    start = time.perf_counter()  # compile (or load from the disk cache) on two objects
    orbit.propagate(r0[:2], v0[:2], t_eval[:2], forces=[orbit.J2(), orbit.ExponentialDrag()],
                    events=events, target=target)
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    res = orbit.propagate(r0, v0, t_eval, forces=forces, events=events, target=target,
                          progress=sys.stderr.isatty())
    elapsed = time.perf_counter() - start
    n_obj = r0.shape[0]
    print(f"target {target}: compile/load {compiled:.1f} s, propagation {elapsed:.1f} s "
          f"({n_obj / elapsed:,.0f} objects/s, {res.nstep.sum() / elapsed:,.0f} steps/s, "
          f"{args.hours:g} h each)")

    failed = ~res.success
    if failed.any():
        print(f"{int(failed.sum())} objects failed: {res.message(int(np.argmax(failed)))}")
    fragments = slice(1, None)
    reentered = res.reentered[fragments]
    print(f"re-entered below {REENTRY_ALTITUDE:.0f} km: {int(reentered.sum())} of {args.n} "
          f"fragments ({100 * reentered.mean():.1f}%)")
    if reentered.any():
        t_re = res.t_reentry[fragments][reentered] / 3600.0
        print(f"  re-entry times: first {t_re.min():.2f} h, median {np.median(t_re):.2f} h")

    # Along-track spread: each fragment's argument of latitude minus the parent's.
    elements = orbit.rv2coe(np.moveaxis(res.r, 2, 1), np.moveaxis(res.v, 2, 1))
    u = elements.argp + elements.nu  # (N, k) argument of latitude
    spread = np.degrees(np.angle(np.exp(1j * (u[fragments] - u[0]))))
    alive = np.isfinite(spread[:, -1])
    print(f"along-track spread after {args.hours:g} h: {np.percentile(np.abs(spread[alive, -1]), 50):.1f} deg "
          f"median offset from the parent, {np.mean(np.abs(spread[alive, -1]) > 90):.0%} more "
          "than 90 deg away")
    if not args.no_plots:
        paths = plot(res, elements, spread, t_eval, Path(args.out))
        print("plots: " + ", ".join(str(p) for p in paths))
    return 0


def gabbard(elements, k):
    """Period [min], apogee and perigee altitude [km] at sample ``k``."""
    a, ecc = elements.a[:, k], elements.ecc[:, k]
    bound = np.isfinite(a) & (a > 0)
    period = 2 * math.pi * np.sqrt(a[bound] ** 3 / C.MU_EARTH) / 60.0
    return period, a[bound] * (1 + ecc[bound]) - C.R_EARTH, a[bound] * (1 - ecc[bound]) - C.R_EARTH


def plot(res, elements, spread, t_eval, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    hours = t_eval / 3600.0
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    rng = np.random.default_rng(0)
    reentered = np.flatnonzero(res.reentered)
    others = np.flatnonzero(~res.reentered[1:]) + 1
    sample = np.concatenate([rng.choice(reentered, min(10, reentered.size), replace=False),
                             rng.choice(others, min(30, others.size), replace=False)])
    for i in sample:
        ax.plot(hours, res.altitude[i], lw=0.7, color="C3" if res.reentered[i] else "C0")
    ax.plot(hours, res.altitude[0], lw=2, color="k", label="parent")
    ax.axhline(REENTRY_ALTITUDE, color="0.5", ls="--", lw=1)
    ax.set(xlabel="time [h]", ylabel="altitude [km]", ylim=(0, None),
           title="Altitude of a sample of fragments (red: re-entered)")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out / "altitude.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    for ax, k, label in ((axes[0], 0, "after the breakup"), (axes[1], -1, f"after {hours[-1]:g} h")):
        period, apogee, perigee = gabbard(elements, k)
        ax.scatter(period, apogee, s=1, color="C3", label="apogee")
        ax.scatter(period, perigee, s=1, color="C0", label="perigee")
        ax.set(xlabel="period [min]", title=f"Gabbard diagram {label}")
        ax.axhline(REENTRY_ALTITUDE, color="0.5", ls="--", lw=1)
    # Frame the bulk of the cloud; a few fragments thrown far off would squash it.
    period, apogee, perigee = gabbard(elements, 0)
    axes[0].set_xlim(*np.percentile(period, [0.5, 99.5]) + np.array([-2.0, 2.0]))
    axes[1].set_xlim(axes[0].get_xlim())
    axes[0].set_ylim(min(0.0, np.percentile(perigee, 0.5)), np.percentile(apogee, 99.5) * 1.1)
    axes[0].set_ylabel("altitude [km]")
    axes[0].legend(loc="upper left", markerscale=8)
    paths.append(_save(fig, out / "gabbard.png"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.linspace(-180, 180, 73)
    for k in np.unique(np.linspace(0, len(t_eval) - 1, 5).astype(int))[1:]:
        values = spread[:, k][np.isfinite(spread[:, k])]
        ax.hist(values, bins=bins, histtype="step", lw=1.5, label=f"{hours[k]:g} h")
    ax.set(xlabel="argument of latitude minus the parent's [deg]", ylabel="fragments",
           title="Spread of the cloud along the orbit")
    ax.legend()
    paths.append(_save(fig, out / "spread.png"))
    return paths


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
