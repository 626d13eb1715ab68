"""NASA Standard Breakup Model clouds: reproducibility and the model's published laws.

Statistical checks use fixed seeds, so they are deterministic; their tolerances are
several standard errors wide, so that any other seed would pass too.
"""

import math

import numpy as np
import pytest
from scipy import stats

from batchivp.orbit import breakup_cloud, coe2rv, fragment_count
from batchivp.orbit.breakup import (large_fragment_parameters, sample_char_length,
                                    small_fragment_parameters)

PARENT_R, PARENT_V = coe2rv(7200.0, 0.01, 1.7, 0.4, 0.9, 2.0)
N = 200_000


def test_same_seed_same_cloud_bitwise():
    a = breakup_cloud(PARENT_R, PARENT_V, 1000, seed=42)
    b = breakup_cloud(PARENT_R, PARENT_V, 1000, seed=42)
    c = breakup_cloud(PARENT_R, PARENT_V, 1000, seed=np.random.default_rng(42))
    for field in ("r", "v", "delta_v", "char_length", "area_to_mass", "area", "mass"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert np.array_equal(getattr(a, field), getattr(c, field)), field
    other = breakup_cloud(PARENT_R, PARENT_V, 1000, seed=43)
    assert not np.array_equal(a.char_length, other.char_length)


def test_shapes_units_and_parent_state():
    cloud = breakup_cloud(PARENT_R, PARENT_V, 500, seed=1)
    assert cloud.r.shape == cloud.v.shape == cloud.delta_v.shape == (500, 3)
    for field in ("char_length", "area_to_mass", "area", "mass"):
        assert getattr(cloud, field).shape == (500,)
        assert np.all(getattr(cloud, field) > 0)
    # All fragments start at the parent's position, with the parent's velocity plus
    # their ejection velocity; mass is area over A/M (Johnson et al.).
    assert np.array_equal(cloud.r, np.tile(PARENT_R, (500, 1)))
    np.testing.assert_allclose(cloud.v, PARENT_V + cloud.delta_v, rtol=1e-15)
    np.testing.assert_allclose(cloud.mass * cloud.area_to_mass, cloud.area, rtol=1e-15)
    np.testing.assert_allclose(cloud.area, 0.556945 * cloud.char_length ** 2.0047077,
                               rtol=1e-15)
    assert np.all((cloud.char_length >= 0.1) & (cloud.char_length <= 1.0))


@pytest.mark.parametrize("kind, exponent", [("explosion", 1.6), ("collision", 1.71)])
def test_size_distribution_follows_the_power_law(kind, exponent):
    l_min, l_max = 0.01, 10.0
    cloud = breakup_cloud(PARENT_R, PARENT_V, N, seed=7, kind=kind, l_min=l_min, l_max=l_max)
    lengths = np.sort(cloud.char_length)
    # Slope of the empirical N(> L) on log-log axes, below l_max / 100 where the
    # truncation term (L / l_max)^b is under 1e-3. With 2e5 samples the fitted slope
    # carries ~0.5 % noise; "within a few %" is 3 %.
    survivors = N - np.arange(N)
    keep = lengths < l_max / 100.0
    slope = np.polyfit(np.log(lengths[keep]), np.log(survivors[keep]), 1)[0]
    assert slope == pytest.approx(-exponent, rel=0.03)
    # And the whole sample against the truncated power law's CDF (Kolmogorov-Smirnov).
    def cdf(x):
        return (l_min ** -exponent - x ** -exponent) / (l_min ** -exponent - l_max ** -exponent)
    assert stats.kstest(lengths, cdf).pvalue > 1e-3


def test_inverse_cdf_limits():
    # u = 0 and u -> 1 map to the ends of the range.
    class Fixed:
        def __init__(self, u):
            self.u = u

        def random(self, n):
            return np.full(n, self.u)

    assert sample_char_length(Fixed(0.0), 1, 0.1, 2.0, 1.6)[0] == pytest.approx(2.0, rel=1e-14)
    assert sample_char_length(Fixed(1.0), 1, 0.1, 2.0, 1.6)[0] == pytest.approx(0.1, rel=1e-14)


@pytest.mark.parametrize("kind, slope, offset", [("explosion", 0.2, 1.85),
                                                 ("collision", 0.9, 2.9)])
def test_delta_v_law(kind, slope, offset):
    # Johnson et al. eqs. 11-12: log10(dv [m/s]) ~ N(slope chi + offset, 0.4).
    cloud = breakup_cloud(PARENT_R, PARENT_V, N, seed=11, kind=kind, l_min=0.05)
    chi = np.log10(cloud.area_to_mass)
    nu = np.log10(np.linalg.norm(cloud.delta_v, axis=-1) * 1000.0)
    residual = nu - (slope * chi + offset)
    # Standard error of the mean 0.4 / sqrt(2e5) = 9e-4: allow 5 of them.
    assert abs(residual.mean()) < 5 * 0.4 / math.sqrt(N)
    # Standard error of the standard deviation ~ 0.4 / sqrt(2 N) = 6e-4.
    assert residual.std() == pytest.approx(0.4, abs=4e-3)


def test_cloud_centre_stays_at_the_parent():
    # Isotropic directions: the mean ejection velocity is 0 within its standard error,
    # so the cloud's centre of velocity is the parent's.
    cloud = breakup_cloud(PARENT_R, PARENT_V, N, seed=3)
    dv = cloud.delta_v
    standard_error = dv.std(axis=0) / math.sqrt(N)
    assert np.all(np.abs(dv.mean(axis=0)) < 5 * standard_error)
    np.testing.assert_allclose(cloud.v.mean(axis=0), PARENT_V, rtol=0,
                               atol=5 * standard_error.max())
    # Directions are uniform on the sphere: each component of the unit vector has
    # mean 0 and variance 1/3.
    unit = dv / np.linalg.norm(dv, axis=-1, keepdims=True)
    np.testing.assert_allclose(unit.var(axis=0), 1.0 / 3.0, atol=5e-3)


def test_area_to_mass_coefficients_published_form():
    # Eqs. 5-7 of Johnson et al. evaluated by hand at lambda_c = log10(L_c / m) = 0
    # (1 m fragments) and -2 (1 cm).
    alpha, mu1, s1, mu2, s2 = large_fragment_parameters(np.array([0.0, -2.0]), "spacecraft")
    np.testing.assert_allclose(alpha, [0.3 + 0.4 * 1.2, 0.0])
    np.testing.assert_allclose(mu1, [-0.95, -0.6])
    np.testing.assert_allclose(s1, [0.3, 0.1])
    np.testing.assert_allclose(mu2, [-2.0, -1.2])
    np.testing.assert_allclose(s2, [0.3, 0.5])
    alpha, mu1, s1, mu2, s2 = large_fragment_parameters(np.array([-0.5]), "rocket_body")
    np.testing.assert_allclose([alpha[0], mu1[0], s1[0], mu2[0], s2[0]],
                               [1.0 - 0.3571 * 0.9, -0.45, 0.55, -0.9, 0.28 - 0.1636 * 0.5])
    mu, sigma = small_fragment_parameters(np.array([-2.0, -1.5, -1.0]))
    np.testing.assert_allclose(mu, [-0.3, -0.3 - 1.4 * 0.25, -1.0])
    np.testing.assert_allclose(sigma, [0.2 + 0.1333 * 1.5, 0.2 + 0.1333 * 2.0,
                                       0.2 + 0.1333 * 2.5])


@pytest.mark.parametrize("object_type", ["spacecraft", "rocket_body"])
def test_area_to_mass_sampling_large_fragments(object_type):
    # Above 11 cm, chi is the mixture alpha N(mu1, s1) + (1 - alpha) N(mu2, s2): its mean
    # is alpha mu1 + (1 - alpha) mu2 at each L_c.
    cloud = breakup_cloud(PARENT_R, PARENT_V, N, seed=5, object_type=object_type,
                          l_min=0.11, l_max=5.0)
    chi = np.log10(cloud.area_to_mass)
    alpha, mu1, s1, mu2, s2 = large_fragment_parameters(np.log10(cloud.char_length), object_type)
    mean = alpha * mu1 + (1 - alpha) * mu2
    variance = alpha * (s1 ** 2 + mu1 ** 2) + (1 - alpha) * (s2 ** 2 + mu2 ** 2) - mean ** 2
    assert abs(np.mean(chi - mean)) < 5 * math.sqrt(variance.mean() / N)
    np.testing.assert_allclose(np.mean((chi - mean) ** 2), variance.mean(), rtol=0.02)


def test_area_to_mass_sampling_small_fragments():
    cloud = breakup_cloud(PARENT_R, PARENT_V, N, seed=6, l_min=0.001, l_max=0.08)
    chi = np.log10(cloud.area_to_mass)
    mu, sigma = small_fragment_parameters(np.log10(cloud.char_length))
    z = (chi - mu) / sigma
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert z.std() == pytest.approx(1.0, abs=0.01)


def test_fragment_count_published_laws():
    # N(> 10 cm) = 6 S 0.1^-1.6 (explosion, S = 1) and 0.1 M^0.75 0.1^-1.71 (collision).
    assert fragment_count(0.1) == pytest.approx(6.0 * 10.0 ** 1.6, rel=1e-14)
    assert fragment_count(0.1, "collision", mass=1000.0) == pytest.approx(
        0.1 * 1000.0 ** 0.75 * 10.0 ** 1.71, rel=1e-14)
    with pytest.raises(ValueError):
        fragment_count(0.1, "collision")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        breakup_cloud(PARENT_R, PARENT_V, 10, kind="implosion")
    with pytest.raises(ValueError):
        breakup_cloud(PARENT_R, PARENT_V, 10, l_min=1.0, l_max=0.5)
    with pytest.raises(ValueError):
        breakup_cloud(PARENT_R, PARENT_V, 10, object_type="asteroid")
