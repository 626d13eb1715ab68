"""Plain right-hand sides shared by the tests that compare solve_ivp with scipy (scipy's
``fun(t, y, *args)`` contract), so each is written once."""


def decay(t, y, k):
    """y' = -k y: y0 exp(-k t)."""
    return -k * y


def lotka(t, y, a, b, c, d):
    """Lotka-Volterra predator and prey."""
    return [a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]]


def rotate(t, y, omega):
    """A complex state turning at ``omega``: y0 exp(i omega t)."""
    return 1j * omega * y
