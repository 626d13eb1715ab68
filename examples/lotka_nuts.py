"""Bayesian inference of a Lotka–Volterra model with NUTS, gradients through batchivp.

Noisy prey and predator counts are simulated from known parameters; numpyro's NUTS
then samples the four rates, the initial populations and the noise levels. Every
gradient NUTS takes is one ``batchivp.jax.solve_batch`` whose derivatives come from the
kernel's forward sensitivities (6 columns: 2 initial states, 4 rates).

Run: ``python examples/lotka_nuts.py`` (about a minute on two cores, of which some
20 s are JAX compiling numpyro's sampler), or with ``--quick`` for a short chain (half
a minute, mostly that compile). Needs ``pip install 'batchivp[jax]'``; the first run
also compiles batchivp's core for this system, once per machine (half a minute).
"""

import argparse
import functools
import time

import jax

jax.config.update("jax_enable_x64", True)  # batchivp solves in float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median  # noqa: E402

import batchivp as bi  # noqa: E402
from batchivp.jax import solve_batch as jsolve  # noqa: E402

TRUE_RATES = np.array([0.55, 0.028, 0.84, 0.026])  # alpha, beta, gamma, delta
TRUE_Y0 = np.array([33.0, 6.0])  # prey, predators
TRUE_SIGMA = 0.25  # log-normal observation noise
T_OBS = np.linspace(0.0, 20.0, 21)
NAMES = ["alpha", "beta", "gamma", "delta", "prey0", "predators0"]


@bi.rhs
def lotka(t, y, p, dydt):
    """Prey y[0] and predators y[1]; p = (alpha, beta, gamma, delta)."""
    dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    dydt[1] = p[3] * y[0] * y[1] - p[2] * y[1]


def populations(rates, y0, target):
    """(2, k) populations at T_OBS; NaN past a failed solve (a divergence for NUTS)."""
    res = jsolve(lotka, (T_OBS[0], T_OBS[-1]), y0[None, :], params=rates, t_eval=T_OBS,
                 rtol=1e-6, atol=1e-6, target=target, max_steps=20_000)
    return res.y[0]


def model(counts, target):
    rates = numpyro.sample("rates", dist.LogNormal(jnp.log(jnp.array([1.0, 0.05, 1.0, 0.05])),
                                                   0.5))
    y0 = numpyro.sample("y0", dist.LogNormal(jnp.log(10.0), 1.0).expand([2]))
    sigma = numpyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]))
    numpyro.sample("counts", dist.LogNormal(jnp.log(populations(rates, y0, target)),
                                            sigma[:, None]), obs=counts)


def simulate(seed):
    res = bi.solve_batch(lotka, (T_OBS[0], T_OBS[-1]), TRUE_Y0[None, :], params=TRUE_RATES,
                         t_eval=T_OBS, rtol=1e-10, atol=1e-10)
    rng = np.random.default_rng(seed)
    return res.y[0] * np.exp(TRUE_SIGMA * rng.standard_normal(res.y[0].shape))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short chain, seconds")
    parser.add_argument("--samples", type=int, default=200, help="warmup and draws each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="cpu", help="batchivp target (one problem: cpu)")
    args = parser.parse_args(argv)
    samples = 30 if args.quick else args.samples
    counts = jnp.asarray(simulate(args.seed))
    kernel = NUTS(functools.partial(model, target=args.target), init_strategy=init_to_median,
                  max_tree_depth=6 if args.quick else 10)
    mcmc = MCMC(kernel, num_warmup=samples, num_samples=samples, progress_bar=False)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(args.seed), counts, extra_fields=("num_steps", "diverging"))
    elapsed = time.perf_counter() - start
    draws = mcmc.get_samples()
    extra = mcmc.get_extra_fields()
    steps = int(np.sum(extra["num_steps"]))
    means = np.concatenate([np.mean(draws["rates"], axis=0), np.mean(draws["y0"], axis=0)])
    sds = np.concatenate([np.std(draws["rates"], axis=0), np.std(draws["y0"], axis=0)])
    truth = np.concatenate([TRUE_RATES, TRUE_Y0])
    print(f"NUTS: {samples} warmup + {samples} draws, {steps} leapfrog steps after warmup, "
          f"{elapsed:.1f} s ({int(np.sum(extra['diverging']))} divergences)")
    print(f"{'':>12} {'true':>9} {'posterior mean':>15} {'sd':>9}")
    for name, t, m, s in zip(NAMES, truth, means, sds):
        print(f"{name:>12} {t:9.4f} {m:15.4f} {s:9.4f}")
    sigma = np.mean(draws["sigma"], axis=0)
    print(f"{'sigma':>12} {TRUE_SIGMA:9.4f} {sigma[0]:15.4f} (prey) {sigma[1]:.4f} (predators)")


if __name__ == "__main__":
    main()
