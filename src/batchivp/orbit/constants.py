"""Physical constants for Earth orbits, as plain floats in km, s, kg and rad.

Every name is a plain assignment of a float literal, so that a force model that reads
one carries its value into the generated kernel module as a constant (the globals of
a plugin are resolved to values: docs/architecture.md, point 3). Units are km, km/s
and km^3/s^2 unless the name says otherwise.

References
----------
.. [1] NIMA TR8350.2, "Department of Defense World Geodetic System 1984", 3rd ed.,
       2000 (WGS-84: a, omega).
.. [2] F. G. Lemoine et al., "The Development of the Joint NASA GSFC and NIMA
       Geopotential Model EGM96", NASA/TP-1998-206861 (J2, J3 from the normalized
       C20, C30).
.. [3] D. A. Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed.,
       2013, Appendix D (astrodynamic constants) and Ch. 8 (solar pressure).
.. [4] E. M. Standish, "JPL Planetary and Lunar Ephemerides, DE405/LE405", JPL IOM
       312.F-98-048, 1998; R. S. Park et al., "The JPL Planetary and Lunar
       Ephemerides DE440 and DE441", AJ 161:105, 2021 (GM of Sun and Moon).
.. [5] IAU 2012 Resolution B2 (the astronomical unit, exact).
.. [6] O. Montenbruck, E. Gill, "Satellite Orbits", Springer, 2000, Sec. 3.4.
"""

# Earth's gravitational parameter GM, including the atmosphere [km^3/s^2]: EGM96 and
# WGS-84 (G1150 update) value, also Vallado's [3] Table D-3.
MU_EARTH = 398600.4418

# Earth's equatorial radius [km]: the WGS-84 semi-major axis [1].
R_EARTH = 6378.137

# Unnormalized zonal coefficient J2 = -C20 = sqrt(5) * 4.84165371736e-4 (EGM96 [2];
# Vallado [3] prints 0.0010826267). We keep EGM96's digits rather than Curtis's rounded
# 1.08263e-3 so that J2, J3 and MU_EARTH come from one gravity model; the two differ
# by 3e-6 relative, below the printed precision of Curtis's worked examples.
J2 = 1.08262668e-3

# Unnormalized zonal coefficient J3 = -C30 = -sqrt(7) * 9.57254173792e-7 (EGM96 [2];
# Vallado [3]: -0.0000025326564853).
J3 = -2.53265649e-6

# Earth's rotation rate [rad/s], WGS-84 [1] (mean sidereal rate, 7.2921158553e-5 in
# the IERS conventions; the difference is irrelevant at drag-model accuracy).
OMEGA_EARTH = 7.292115e-5

# Sun's gravitational parameter [km^3/s^2], DE405/DE440 [4].
MU_SUN = 1.32712440018e11

# Moon's gravitational parameter [km^3/s^2], DE430/DE440 [4].
MU_MOON = 4902.800066

# Astronomical unit [km], exact by definition [5].
AU = 149597870.7

# Solar radiation pressure on a perfectly absorbing surface at 1 AU [N/m^2]: the solar
# flux 1367 W/m^2 divided by the speed of light (Montenbruck & Gill [6]; Vallado [3]).
SOLAR_PRESSURE_1AU = 4.56e-6

# Seconds in a day of 86,400 SI seconds, the day of Julian dates and Julian centuries.
SECONDS_PER_DAY = 86400.0
