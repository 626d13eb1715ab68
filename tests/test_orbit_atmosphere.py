"""Density models of batchivp.orbit.atmosphere against their published tables."""

import math

import numpy as np
import pytest

from batchivp.orbit import atmosphere as atm

# Vallado, Fundamentals of Astrodynamics, 4th ed., Table 8-4, a few rows typed in again
# from the book (base km, rho0 kg/m^3, H km), independently of the module's tuples.
VALLADO_ROWS = [
    (0.0, 1.225, 7.249),
    (100.0, 5.297e-7, 5.877),
    (200.0, 2.789e-10, 37.105),
    (350.0, 9.518e-12, 53.298),
    (400.0, 3.725e-12, 58.515),
    (1000.0, 3.019e-15, 268.00),
]

# U.S. Standard Atmosphere 1976 at altitudes that are NOT table nodes [kg/m^3]:
# below 86 km from the standard's hydrostatic layer definition, above from hapsira
# 0.18's COESA76 (which matches the standard's printed values to 0.1 %).
COESA76_OFF_NODE = [
    (2.0, 1.0066),
    (11.25, 3.5095e-1),
    (47.5, 1.4011e-3),
    (82.5, 1.2378e-5),
    (112.5, 6.2984e-8),
    (135.0, 5.4647e-9),
    (212.5, 1.7095e-10),
    (325.0, 1.1433e-11),
    (475.0, 7.8213e-13),
    (950.0, 4.4531e-15),
]


def test_tables_are_consistent():
    assert len(atm.EXPONENTIAL_BASE_KM) == atm.EXPONENTIAL_BANDS
    assert len(atm.EXPONENTIAL_RHO0) == atm.EXPONENTIAL_BANDS
    assert len(atm.EXPONENTIAL_SCALE_KM) == atm.EXPONENTIAL_BANDS
    assert len(atm.COESA76_ALT_KM) == atm.COESA76_NODES
    assert len(atm.COESA76_DENSITY) == atm.COESA76_NODES
    assert np.all(np.diff(atm.EXPONENTIAL_BASE_KM) > 0)
    assert np.all(np.diff(atm.COESA76_ALT_KM) > 0)


@pytest.mark.parametrize("base, rho0, scale", VALLADO_ROWS)
def test_exponential_reproduces_vallado_rows(base, rho0, scale):
    # At a band base the model is rho0; half a scale height up (still inside each of
    # these bands) it is rho0 / sqrt(e).
    assert atm.exponential_density(base) == pytest.approx(rho0, rel=1e-14)
    if base < 1000.0:
        inside = base + 0.5 * scale
        assert atm.exponential_density(inside) == pytest.approx(rho0 * math.exp(-0.5), rel=1e-14)


def test_exponential_every_band_base():
    for base, rho0 in zip(atm.EXPONENTIAL_BASE_KM, atm.EXPONENTIAL_RHO0):
        assert atm.exponential_density(base) == pytest.approx(rho0, rel=1e-14)


def test_exponential_bands_meet_continuously():
    # Vallado derived each H from the densities at both ends of its band and printed
    # 4-5 digits, so adjacent bands meet to within that rounding (worst 0.14 %, at
    # 25 km). A mistyped digit in rho0 or H shows up here as a jump of percents.
    for i in range(1, atm.EXPONENTIAL_BANDS):
        h = atm.EXPONENTIAL_BASE_KM[i]
        from_below = atm.EXPONENTIAL_RHO0[i - 1] * math.exp(
            (atm.EXPONENTIAL_BASE_KM[i - 1] - h) / atm.EXPONENTIAL_SCALE_KM[i - 1])
        assert from_below == pytest.approx(atm.exponential_density(h), rel=2e-3), h
        assert atm.exponential_density(h - 1e-9) == pytest.approx(from_below, rel=1e-9)


def test_exponential_outside_the_table():
    # Below 0 km the first band, above 1000 km the last one, extrapolated.
    assert atm.exponential_density(-1.0) == pytest.approx(1.225 * math.exp(1.0 / 7.249), rel=1e-14)
    assert atm.exponential_density(1268.0) == pytest.approx(3.019e-15 * math.exp(-1.0), rel=1e-14)
    assert math.isnan(atm.exponential_density(math.nan))


def test_coesa76_published_points():
    # The values quoted for USSA76: 1.225 at sea level, about 5.6e-7 at 100 km and
    # 2.8e-12 at 400 km (Curtis App. D prints 5.606e-7 and 2.803e-12).
    assert atm.coesa76_density(0.0) == pytest.approx(1.225, rel=1e-14)
    assert atm.coesa76_density(100.0) == pytest.approx(5.606e-7, rel=1e-12)
    assert atm.coesa76_density(400.0) == pytest.approx(2.803e-12, rel=1e-12)


def test_coesa76_nodes():
    for h, rho in zip(atm.COESA76_ALT_KM, atm.COESA76_DENSITY):
        assert atm.coesa76_density(h) == pytest.approx(rho, rel=1e-12)


@pytest.mark.parametrize("alt, rho", COESA76_OFF_NODE)
def test_coesa76_interpolation_against_the_standard(alt, rho):
    # Linear interpolation of log(rho) errs by (dh^2 / 8) |d2 log(rho) / dh2|: the
    # worst of the table's segments (the tropopause kink at 11 km, the thermosphere's
    # steep temperature rise near 115 km) measured at quarter points is 2.4 %.
    assert atm.coesa76_density(alt) == pytest.approx(rho, rel=0.03)


def test_coesa76_outside_the_table():
    # Below 0 and above 1000 km the end segments are extrapolated (log-linear).
    below = atm.coesa76_density(-5.0)
    assert below == pytest.approx(1.225 * (1.225 / 0.7364), rel=1e-12)
    above = atm.coesa76_density(1100.0)
    assert above == pytest.approx(3.561e-15 * (3.561e-15 / 5.759e-15), rel=1e-12)
    assert math.isnan(atm.coesa76_density(math.nan))


@pytest.mark.parametrize("density", [atm.exponential_density, atm.coesa76_density])
def test_density_decreases_with_altitude(density):
    h = np.linspace(-10.0, 1500.0, 15101)
    rho = np.array([density(x) for x in h])
    assert np.all(rho > 0)
    # Vallado's bands meet only to 0.14 %, so allow a step up of that size at a base.
    assert np.all(rho[1:] <= rho[:-1] * (1.0 + 2e-3))
    if density is atm.coesa76_density:
        assert np.all(np.diff(rho) < 0)


def test_models_agree_roughly():
    # Two renderings of a mean atmosphere: CIRA-72 (Vallado) and USSA76 differ by tens
    # of percent in the thermosphere but not by orders of magnitude.
    for h in (0.0, 50.0, 100.0, 200.0, 400.0, 700.0, 1000.0):
        ratio = atm.exponential_density(h) / atm.coesa76_density(h)
        assert 0.5 < ratio < 2.0, h


@pytest.mark.parametrize("density", [atm.exponential_density, atm.coesa76_density])
def test_density_compiles_with_numba(density):
    # Kernel-ready: numba's njit (cpu target) compiles the lookups over the module's
    # tuples and returns the same numbers to round-off.
    numba = pytest.importorskip("numba")
    compiled = numba.njit(density)
    for h in (-3.0, 0.0, 87.3, 412.0, 999.0, 1300.0):
        assert compiled(h) == pytest.approx(density(h), rel=1e-14)
