"""Events inside the kernel: scipy's detection, Brent's root finder, termination counts.

The same contract as ``dop853.py`` (plain Python, ``math`` only, no allocation, no
raise), rendered into every target's module next to it. Event functions are called
through the dispatcher ``event(handle, t, y, p, istate)``, which the renderer defines
(``istate``: see ``dop853.py``, point 1; the driver tests the status after them).

scipy's ``solve_ivp`` semantics [1]_, step for step:

1. After each accepted step, event ``e`` is *active* when its value goes from ``g <= 0``
   to ``g_new >= 0`` (up) or from ``g >= 0`` to ``g_new <= 0`` (down), in its
   direction (``find_active_events``; a zero at the start of a step counts).
2. The root of each active event is found by Brent's method on the step's interpolant,
   ``brentq(lambda t: event(t, sol(t)), t_old, t, xtol=4 EPS, rtol=4 EPS)``; the state
   at the root is ``sol(root)``.
3. Counts include the new roots; if one reaches its event's terminal count, the roots
   are ordered in the direction of integration and cut after the first that
   terminates (``handle_events``). Integration then ends at that root.

Per problem the kernel holds, for ``n_ev`` event slots (rows of ``ecfg``: dispatcher
handle, direction sign, terminal count with 0 meaning never): ``g`` (values at the
current time, part of the resumable state), ``n_events`` (occurrences so far; they
keep counting when the buffers are full), and the buffers ``t_events[e, :]`` and
``y_events[e, :, :]`` of ``icfg[IC_EVENT_BUFFER]`` entries each. Buffers are written
at index ``n_events[e]``, so a host can grow them and resume a problem.

References
----------
.. [1] scipy.integrate._ivp.ivp: ``find_active_events``, ``handle_events``,
       ``solve_event_equation``; scipy/optimize/Zeros/brentq.c (C. Harris).
"""

import math

from .dop853 import dense_eval

EVENT_TOL = 8.881784197001252e-16  # 4 * EPS: scipy's xtol and rtol for event roots
BRENT_MAXITER = 100  # scipy.optimize.brentq's default

EC_HANDLE = 0
EC_DIRECTION = 1  # -1, 0 or 1
EC_TERMINAL = 2  # occurrences that stop the integration; 0: never
ECFG_SIZE = 3
# What step_events returns instead of the position of a terminating root.
NO_TERMINAL_ROOT = -1
ROOT_SEARCH_FAILED = -2


def event_values(ecfg, t, y, p, g, n_ev, istate):
    """``g[e] = event_e(t, y, p)`` for every slot; False if one is not finite."""
    finite = True
    for e in range(n_ev):
        g[e] = event(ecfg[e, EC_HANDLE], t, y, p, istate)
        if not math.isfinite(g[e]):
            finite = False
    return finite


def event_value_fails(value, nonfinite_fails):
    """Whether an event value in the root search ends the problem: NaN always (scipy's
    ``brentq`` raises), inf too when ``nonfinite_fails`` (the batch rule)."""
    if nonfinite_fails:
        return not math.isfinite(value)
    return value != value


def find_active_events(g, g_new, ecfg, active, n_ev):
    """scipy's ``find_active_events``: slots whose sign changed in their direction go,
    in slot order, into ``active``; returns how many."""
    count = 0
    for e in range(n_ev):
        up = g[e] <= 0.0 and g_new[e] >= 0.0
        down = g[e] >= 0.0 and g_new[e] <= 0.0
        d = ecfg[e, EC_DIRECTION]
        if (up and d > 0) or (down and d < 0) or ((up or down) and d == 0):
            active[count] = e
            count += 1
    return count


def event_on_interpolant(handle, p, F, y_old, t_old, h, t, yw, n, istate):
    """``event(t, sol(t))`` with ``sol`` the step's interpolant (``yw``: work array)."""
    dense_eval(F, y_old, t_old, h, t, yw, n)
    return event(handle, t, yw, p, istate)


def event_root(handle, p, F, y_old, t_old, h, t_new, yw, n, nonfinite_fails, istate):
    """The root of ``event(t, sol(t))`` on ``[t_old, t_new]``: scipy's ``brentq``.

    The iteration is scipy's brentq.c (the version whose loop compares signs, not
    their product) line for line, with ``xtol = rtol = 4 EPS``; ``h = t_new - t_old``
    scales the interpolant, the bracket's ends are ``t_old`` and ``t_new`` themselves.
    Where scipy raises, this returns instead:

    - NaN if the event is NaN somewhere, or not finite with ``nonfinite_fails`` (a
      failure status for the problem);
    - ``t_new`` if the interpolant's values at the two ends have one sign (round-off
      between the step's end state and the interpolant there): the sign change was
      seen at the end of the step;
    - the last iterate after ``BRENT_MAXITER`` iterations.
    """
    xpre = t_old
    xcur = t_new
    fpre = event_on_interpolant(handle, p, F, y_old, t_old, h, xpre, yw, n, istate)
    fcur = event_on_interpolant(handle, p, F, y_old, t_old, h, xcur, yw, n, istate)
    if event_value_fails(fpre, nonfinite_fails) or event_value_fails(fcur, nonfinite_fails):
        return math.nan
    if fpre == 0.0:
        return xpre
    if fcur == 0.0:
        return xcur
    if (fpre < 0.0) == (fcur < 0.0):
        return xcur
    xblk = 0.0
    fblk = 0.0
    spre = 0.0
    scur = 0.0
    for _ in range(BRENT_MAXITER):
        # Signs compared, not the product, which underflows for tiny values.
        if fpre != 0.0 and fcur != 0.0 and (fpre < 0.0) != (fcur < 0.0):
            xblk = xpre
            fblk = fpre
            spre = xcur - xpre
            scur = spre
        if abs(fblk) < abs(fcur):
            xpre = xcur
            xcur = xblk
            xblk = xpre
            fpre = fcur
            fcur = fblk
            fblk = fpre
        delta = (EVENT_TOL + EVENT_TOL * abs(xcur)) / 2.0
        sbis = (xblk - xcur) / 2.0
        if fcur == 0.0 or abs(sbis) < delta:
            return xcur
        bisect = True
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)  # interpolate
            else:
                dpre = (fpre - fcur) / (xpre - xcur)  # extrapolate
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            limit = 3.0 * abs(sbis) - delta
            if abs(spre) < limit:
                limit = abs(spre)
            if 2.0 * abs(stry) < limit:  # good short step
                spre = scur
                scur = stry
                bisect = False
        if bisect:
            spre = sbis
            scur = sbis
        xpre = xcur
        fpre = fcur
        if abs(scur) > delta:
            xcur += scur
        elif sbis > 0.0:
            xcur += delta
        else:
            xcur -= delta
        fcur = event_on_interpolant(handle, p, F, y_old, t_old, h, xcur, yw, n, istate)
        if event_value_fails(fcur, nonfinite_fails):
            return math.nan
    return xcur


def first_terminating(ecfg, n_events, active, n_active):
    """Position in ``active[:n_active]`` of the first slot whose next occurrence reaches
    its terminal count, or ``NO_TERMINAL_ROOT`` if none does."""
    for a in range(n_active):
        e = active[a]
        if ecfg[e, EC_TERMINAL] > 0 and n_events[e] + 1 >= ecfg[e, EC_TERMINAL]:
            return a
    return NO_TERMINAL_ROOT


def step_events(ecfg, p, F, y_old, t_old, h, t_new, n_active, active, roots, n_events,
                max_stored, t_events, y_events, yw, n, nonfinite_fails, istate):
    """Roots of the active events of the step ``[t_old, t_new]`` and their record.

    ``active[:n_active]`` are the active slots (from :func:`find_active_events`), ``F``
    the step's interpolant. Records the roots scipy reports, in ``t_events`` and
    ``y_events`` while they fit. Returns the index in ``roots`` of the root that ends
    the integration, ``NO_TERMINAL_ROOT`` if none, or ``ROOT_SEARCH_FAILED`` if an
    event value failed the root search (:func:`event_value_fails`).
    """
    for a in range(n_active):
        roots[a] = event_root(ecfg[active[a], EC_HANDLE], p, F, y_old, t_old, h, t_new, yw, n,
                              nonfinite_fails, istate)
        if roots[a] != roots[a]:
            return ROOT_SEARCH_FAILED
    n_keep = n_active
    stop = first_terminating(ecfg, n_events, active, n_active) >= 0
    if stop:
        # Order the roots in the direction of integration, then cut after the first
        # terminating one. A stable insertion sort: numpy's argsort (scipy's) may order
        # equal roots otherwise, depending on the CPU's sorting kernel; that is the one
        # case (tied roots of a terminating step) where the recorded events can differ.
        direction = 1.0 if h > 0.0 else -1.0
        for a in range(1, n_active):
            r = roots[a]
            e = active[a]
            b = a - 1
            while b >= 0 and direction * roots[b] > direction * r:
                roots[b + 1] = roots[b]
                active[b + 1] = active[b]
                b -= 1
            roots[b + 1] = r
            active[b + 1] = e
        n_keep = first_terminating(ecfg, n_events, active, n_active) + 1
    for a in range(n_keep):
        e = active[a]
        k = n_events[e]
        if k < max_stored:
            t_events[e, k] = roots[a]
            dense_eval(F, y_old, t_old, h, roots[a], y_events[e, k], n)
        n_events[e] = k + 1
    if stop:
        return n_keep - 1
    return NO_TERMINAL_ROOT


def events_at_rest(ecfg, t, y, g, n_events, max_stored, t_events, y_events, active, n_ev, n):
    """scipy's events when ``t0 == tf``: its one "step" goes nowhere, so the events
    that are zero at ``t0`` occur there (brentq on ``[t0, t0]`` returns ``t0``), with
    the state ``y``; the roots tie, so a terminating one cuts the slots after it.
    Returns True if one of them terminates."""
    n_active = find_active_events(g, g, ecfg, active, n_ev)
    first = first_terminating(ecfg, n_events, active, n_active)
    n_keep = n_active if first < 0 else first + 1
    for a in range(n_keep):
        e = active[a]
        k = n_events[e]
        if k < max_stored:
            t_events[e, k] = t
            for i in range(n):
                y_events[e, k, i] = y[i]
        n_events[e] = k + 1
    return first >= 0
