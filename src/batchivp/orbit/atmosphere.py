"""Atmospheric density [kg/m^3] against geometric altitude [km], as plain tables.

Two static models for drag:

- :func:`exponential_density`: Vallado's piecewise exponential model [1]_, Table 8-4
  (CIRA-72 based): in the band whose base ``h0`` is the highest one not above ``h``,
  ``rho = rho0 exp(-(h - h0) / H)``.
- :func:`coesa76_density`: the U.S. Standard Atmosphere 1976 [2]_ tabulated at 51
  altitudes and interpolated linearly in ``log(rho)``.

Both functions follow the core's contract (docs/architecture.md, point 1): ``math``
only, no allocation, no ``raise``, no default arguments, module constants as tuples
of float literals, so that a drag model can render them into a kernel. Outside the
tables they extrapolate the nearest band or segment (below 0 km the first, above the
top the last); a NaN altitude gives NaN.

References
----------
.. [1] D. A. Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed., 2013,
       Table 8-4 (the same table is in the 2nd and 3rd editions).
.. [2] NOAA, NASA, USAF, "U.S. Standard Atmosphere, 1976", NOAA-S/T 76-1562,
       Washington, 1976, Table I (geometric altitude).
.. [3] H. D. Curtis, "Orbital Mechanics for Engineering Students", 3rd ed., 2014,
       Appendix D, function ``atmosphere.m`` (USSA76 densities at 28 altitudes).
"""

import math

# ---- Vallado Table 8-4: base altitude [km], nominal density [kg/m^3], scale height [km].
# Values as printed in [1]_; several independent transcriptions agree with them.
EXPONENTIAL_BANDS = 28
EXPONENTIAL_BASE_KM = (
    0.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0,
    110.0, 120.0, 130.0, 140.0, 150.0, 180.0, 200.0, 250.0, 300.0, 350.0,
    400.0, 450.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0,
)
EXPONENTIAL_RHO0 = (
    1.225, 3.899e-2, 1.774e-2, 3.972e-3, 1.057e-3, 3.206e-4, 8.770e-5, 1.905e-5, 3.396e-6,
    5.297e-7, 9.661e-8, 2.438e-8, 8.484e-9, 3.845e-9, 2.070e-9, 5.464e-10, 2.789e-10,
    7.248e-11, 2.418e-11, 9.518e-12, 3.725e-12, 1.585e-12, 6.967e-13, 1.454e-13,
    3.614e-14, 1.170e-14, 5.245e-15, 3.019e-15,
)
EXPONENTIAL_SCALE_KM = (
    7.249, 6.349, 6.682, 7.554, 8.382, 7.714, 6.549, 5.799, 5.382, 5.877,
    7.263, 9.473, 12.636, 16.149, 22.523, 29.740, 37.105, 45.546, 53.628, 53.298,
    58.515, 60.828, 63.822, 71.835, 88.667, 124.64, 181.05, 268.00,
)

# ---- U.S. Standard Atmosphere 1976, density [kg/m^3] at geometric altitude [km].
# Sources, all rounded to 4 significant digits:
# - the 28 altitudes of Curtis's table [3]_ (0, 25, 30, 40 ... 150, 180, 200, 250, 300,
#   350 ... 500, 600 ... 1000 km), which are the standard's printed values;
# - 5, 10, 15, 20, 35, 45, 55, 65, 75 km: the standard's defining
#   hydrostatic layers [2]_ (base temperatures, lapse rates and pressures), evaluated by
#   us and checked against the hapsira 0.18 implementation (agreement 1e-5); 86 km is
#   the standard's printed 6.958e-6;
# - 95, 105, 115, 125, 160, 170, 190, 225, 275, 550, 650, 750, 850 km: hapsira 0.18's
#   COESA76, whose fits above 86 km match the printed values at Curtis's altitudes to
#   0.08 %. Not checked against the printed Table I itself: marked for checking.
# They were added because log-linear interpolation on Curtis's nodes alone is off by
# 25 % at 10 km and 8 % at 115 km; on these nodes it stays within 2.5 % of the model.
COESA76_NODES = 51
COESA76_ALT_KM = (
    0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0,
    50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 86.0, 90.0, 95.0,
    100.0, 105.0, 110.0, 115.0, 120.0, 125.0, 130.0, 140.0, 150.0, 160.0,
    170.0, 180.0, 190.0, 200.0, 225.0, 250.0, 275.0, 300.0, 350.0, 400.0,
    450.0, 500.0, 550.0, 600.0, 650.0, 700.0, 750.0, 800.0, 850.0, 900.0,
    1000.0,
)
COESA76_DENSITY = (
    1.225, 7.364e-1, 4.135e-1, 1.948e-1, 8.891e-2, 4.008e-2, 1.841e-2, 8.463e-3, 3.996e-3,
    1.966e-3, 1.027e-3, 5.681e-4, 3.097e-4, 1.632e-4, 8.283e-5, 3.992e-5, 1.846e-5,
    6.958e-6, 3.416e-6, 1.394e-6, 5.606e-7, 2.324e-7, 9.708e-8, 4.288e-8, 2.222e-8,
    1.291e-8, 8.152e-9, 3.831e-9, 2.076e-9, 1.233e-9, 7.815e-10, 5.194e-10, 3.580e-10,
    2.541e-10, 1.184e-10, 6.073e-11, 3.329e-11, 1.916e-11, 7.014e-12, 2.803e-12,
    1.184e-12, 5.215e-13, 2.385e-13, 1.137e-13, 5.713e-14, 3.070e-14, 1.789e-14,
    1.136e-14, 7.825e-15, 5.759e-15, 3.561e-15,
)


def exponential_density(alt_km):
    """Density [kg/m^3] of Vallado's exponential model at altitude ``alt_km`` [km].

    The band is the last one whose base is not above ``alt_km`` (the first band
    below 0 km, the 1000 km band above it). Scalar; ``math`` only.
    """
    i = 0
    while i < EXPONENTIAL_BANDS - 1 and alt_km >= EXPONENTIAL_BASE_KM[i + 1]:
        i += 1
    return EXPONENTIAL_RHO0[i] * math.exp((EXPONENTIAL_BASE_KM[i] - alt_km)
                                          / EXPONENTIAL_SCALE_KM[i])


def coesa76_density(alt_km):
    """Density [kg/m^3] of the U.S. Standard Atmosphere 1976 at ``alt_km`` [km].

    Linear interpolation of ``log(rho)`` between the tabulated altitudes; the first
    and last segments are extrapolated outside [0, 1000] km. Scalar; ``math`` only.
    """
    i = 0
    while i < COESA76_NODES - 2 and alt_km >= COESA76_ALT_KM[i + 1]:
        i += 1
    h0 = COESA76_ALT_KM[i]
    fraction = (alt_km - h0) / (COESA76_ALT_KM[i + 1] - h0)
    return COESA76_DENSITY[i] * math.exp(
        fraction * math.log(COESA76_DENSITY[i + 1] / COESA76_DENSITY[i]))
