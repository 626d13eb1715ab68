"""``solve_ivp``: scipy's ``solve_ivp`` contract, solved by the compiled DOP853 kernel.

Change one import and keep your code: the arguments, the validation (scipy's own
checks, in scipy's order, with its texts), the ``OdeResult`` and its ``OdeSolution``
are scipy's; the steps, ``nfev``, ``t`` grid and states are those of scipy's DOP853
(see the README's Exactness section). Only the loop runs compiled.

How a call runs:

1. ``method`` other than DOP853 goes to scipy unchanged.
2. ``fun`` and the events are turned into kernel plugins: registered ``@batchivp.rhs``
   and ``@batchivp.event`` functions as they are (``args`` packed into ``p``),
   ordinary callables through :mod:`batchivp.plain`. A complex ``y0`` is integrated as
   real and imaginary parts with scipy's complex norms.
3. One problem runs in the kernel with the step record on (``core/driver.py``): every
   step's ``t`` and ``y`` when ``t_eval`` is None, every step's interpolant with
   ``dense_output``. The record grows by pausing and resuming; event buffers that
   overflow are enlarged by solving again.
4. If numba cannot compile an ordinary callable, scipy solves the problem instead and
   one :class:`CompilationWarning` names the construct: working code keeps working.
"""

import math
import os
import warnings

import numpy as np

# scipy is imported in the functions that use it: scipy.integrate alone takes most of a
# second to import, and ``import batchivp`` must answer at once (issue 15).
from . import abi, arguments, bounds, plain, render, source, targets
from .core import dop853 as core
from .host_loop import OneProblemChunks, run_kernel
from .registry import EventFunction, RhsFunction
from .status import Status, ivp_status

_PAUSED = int(Status.PAUSED)  # a plain int: numpy compares it at once

FIRST_RECORD_ROWS = 256
FIRST_EVENT_ROWS = 64
RK_OPTIONS = ("first_step", "max_step", "rtol", "atol")
# Accepted steps per kernel call: None sizes the calls from the measured speed
# (host_loop.OneProblemChunks, about half a second each), so that Ctrl-C is served
# between two calls; a number fixes it (tests use a small one to force many calls).
CHUNK_STEPS = None
IVP_ARGUMENTS = bounds.Arguments(y="y0 has {n} component{s}", p="args pack into {m} value{s}",
                                 no_p="no args were given",
                                 transposed="expected y0 of {k} components")


class CompilationWarning(UserWarning):
    """batchivp could not compile a callable and solved the problem with scipy instead."""


def solve_ivp(fun, t_span, y0, method="DOP853", t_eval=None, dense_output=False,
              events=None, vectorized=False, args=None, *, target=None, **options):
    """Solve an initial value problem as ``scipy.integrate.solve_ivp`` does.

    A drop-in for ``scipy.integrate.solve_ivp``: same parameters, same result
    (``t, y, sol, t_events, y_events, nfev, njev, nlu, status, message, success``) and,
    for ``method="DOP853"``, the same steps and ``nfev``, compiled. Other methods are
    passed to scipy.

    Parameters
    ----------
    fun : callable
        ``fun(t, y, *args)`` returning ``dy/dt`` (list, tuple or array; scipy's
        contract; lambdas and closures work), or a right-hand side registered with
        :func:`batchivp.rhs` (``fun(t, y, p, dydt)``, ``args`` become ``p``).
    t_span, y0, method, t_eval, dense_output, events, vectorized, args
        As scipy's. ``y0`` may be complex. Events are callables with scipy's
        ``terminal``/``direction`` attributes or registered :func:`batchivp.event`\\ s.
    target : None or str
        ``"cpu"`` (default for one problem: ``"parallel"`` and ``"auto"`` run it on one
        core too) or ``"cuda"``, which needs a registered ``fun`` and events.
    **options
        ``rtol``, ``atol`` (scalar or per component), ``first_step``, ``max_step``;
        others (``jac``, ...) draw scipy's "no effect" warning.

    Returns
    -------
    scipy.integrate._ivp.ivp.OdeResult
        scipy's result object; ``sol`` is a ``scipy.integrate.OdeSolution``.
    """
    call = dict(fun=fun, t_span=t_span, y0=y0, method=method, t_eval=t_eval,
                dense_output=dense_output, events=events, vectorized=vectorized, args=args,
                options=options)
    _check_t_span(t_span)
    if not _is_dop853(method):
        return _scipy_solve(call)
    problem = _Problem.validate(call, target)
    if problem.empty:  # nothing to integrate: scipy's loop answers at once
        return _scipy_solve(call)
    if problem.fallback_reason is not None:
        return _scipy_fallback(call, problem.fallback_reason)
    # Not the function's failure, so never a fallback: a bad BATCHIVP_KERNEL, or the
    # linked core (batchivp's own code) failing to compile.
    if render.kernel_kind(problem.target) == "linked":
        render.linked_core(problem.target, problem.ndim, problem.norm)
    try:
        module = render.load_module(problem.target, problem.ndim, [problem.rhs],
                                    problem.events, norm=problem.norm, recording=True)
    except OSError:
        raise  # the disk (full, unreadable): not the function; render heals damaged files
    except Exception as exc:  # numba's errors have several types; all mean "cannot compile"
        if not problem.plain:
            raise
        _failed_plugins.add(problem.plugin_keys)
        return _scipy_fallback(call, _compile_error_summary(exc))
    result = problem.solve(module)
    if problem.plain and result.message == Status.USER_ERROR.ivp_message:
        # The function raised (a compiled C function can only print it): scipy's run
        # of the same call raises it to the caller, as scipy's solve_ivp does.
        return _scipy_solve(call)
    return result


def _is_dop853(method):
    if isinstance(method, str):
        return method == "DOP853"
    from scipy.integrate._ivp.rk import DOP853
    return method is DOP853


def _check_t_span(t_span):
    """A non-finite t0 or a NaN tf passes scipy's checks and then no comparison ends
    its loop: it runs for ever (and here in compiled code, deaf to Ctrl-C). tf = inf or
    -inf is legal: a terminal event ends the integration."""
    t0, tf = map(float, t_span)  # scipy's own unpacking, with its errors
    if not math.isfinite(t0):
        raise ValueError(f"`t_span[0]` (t0) must be finite, got {t0!r}.")
    if math.isnan(tf):
        raise ValueError("`t_span[1]` (tf) must not be NaN (inf or -inf is allowed, with a "
                         "terminal event to end the integration).")


def _check_not_nan(value, name):
    """scipy compares tolerances, ``first_step`` and ``t_eval`` with bounds, which NaN
    passes; then it loops for ever or drops the output silently."""
    if np.any(np.asarray(value) != np.asarray(value)):
        raise ValueError(f"`{name}` must not be NaN.")


def _scipy_solve(call):
    """The call, as given, solved by scipy's ``solve_ivp`` (its own, not the name
    ``scipy.integrate.solve_ivp``, which may be ours)."""
    # scipy's own function, whatever scipy.integrate.solve_ivp is set to: users
    # replace that name with ours, and our hand-offs to scipy must not come back here.
    from scipy.integrate._ivp.ivp import solve_ivp as scipy_solve_ivp
    return scipy_solve_ivp(
        call["fun"], call["t_span"], call["y0"], method=call["method"], t_eval=call["t_eval"],
        dense_output=call["dense_output"], events=call["events"],
        vectorized=call["vectorized"], args=call["args"], **call["options"])


def _scipy_fallback(call, reason):
    warnings.warn(
        f"batchivp.solve_ivp cannot compile {source.describe(call['fun'])}: {reason}; "
        "solving with scipy.integrate.solve_ivp instead (same results, scipy's speed). "
        "Register the function with @batchivp.rhs to see the full error.",
        CompilationWarning, stacklevel=3)
    return _scipy_solve(call)


def _compile_error_summary(exc):
    """The first lines of numba's message that name the construct."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keep = [line for line in lines if not line.startswith(("Failed in", "During:"))][:4]
    return " | ".join(keep) or type(exc).__name__


_failed_plugins = set()  # plugin keys numba could not compile: go to scipy at once
_adapters = {}  # (kind, fingerprint, shape of the call) -> plugin or Uncompilable


def _scipy_checks(call):
    """scipy's checks of a call, in scipy's order and with its texts, plus the NaN
    checks scipy lacks. Returns ``(t0, tf, t_eval, y0, rtol, atol, max_step,
    first_step, event_list)`` (``first_step`` None: selected as scipy does;
    ``event_list`` None without events)."""
    from scipy.integrate._ivp import common as scipy_common
    from scipy.integrate._ivp.base import check_arguments
    from scipy.integrate._ivp.ivp import prepare_events
    t0, tf = map(float, call["t_span"])
    args = call["args"]
    if args is not None:
        try:
            _ = [*(args)]
        except TypeError as exp:
            raise TypeError("Supplied 'args' cannot be unpacked. Please supply `args`"
                            f" as a tuple (e.g. `args=({args},)`)") from exp
    t_eval = call["t_eval"]
    if t_eval is not None:
        t_eval = np.asarray(t_eval)
        if t_eval.ndim != 1:
            raise ValueError("`t_eval` must be 1-dimensional.")
        if np.any(t_eval < min(t0, tf)) or np.any(t_eval > max(t0, tf)):
            raise ValueError("Values in `t_eval` are not within `t_span`.")
        d = np.diff(t_eval)
        if tf > t0 and np.any(d <= 0) or tf < t0 and np.any(d >= 0):
            raise ValueError("Values in `t_eval` are not properly sorted.")
        _check_not_nan(t_eval, "t_eval")
    _, y0 = check_arguments(call["fun"], call["y0"], support_complex=True)
    options = dict(call["options"])
    scipy_common.warn_extraneous({k: v for k, v in options.items() if k not in RK_OPTIONS})
    rtol, atol = scipy_common.validate_tol(options.get("rtol", 1e-3), options.get("atol", 1e-6),
                                           y0.size)
    _check_not_nan(rtol, "rtol")
    _check_not_nan(atol, "atol")
    max_step = scipy_common.validate_max_step(options.get("max_step", np.inf))
    first_step = options.get("first_step")
    if first_step is not None:
        first_step = scipy_common.validate_first_step(first_step, t0, tf)
        _check_not_nan(first_step, "first_step")
    event_list = None
    if call["events"] is not None:
        event_list, _, _ = prepare_events(call["events"])
    return t0, tf, t_eval, y0, rtol, atol, max_step, first_step, event_list


class _Problem:
    """One validated call: the kernel's inputs, plugins and what to return.

    :meth:`validate` sets every attribute; an empty problem (scipy answers it) or one
    with a ``fallback_reason`` (scipy solves it) keeps the defaults below for what it
    does not need.
    """

    target = None
    plain_rhs = False  # fun is an ordinary callable
    plain = False  # fun or an event is
    p = None  # the packed args
    rtol = atol = None  # (ndim,)
    first_step = max_step = None
    rhs = None
    events = ()
    plugin_keys = ()

    @classmethod
    def validate(cls, call, target):
        self = cls()
        t0, tf, t_eval, y0, rtol, atol, max_step, first_step, event_list = _scipy_checks(call)
        self.t0, self.tf, self.t_eval, self.y0 = t0, tf, t_eval, y0
        self.dense_output = bool(call["dense_output"])
        self.complex = np.iscomplexobj(y0)
        self.m = y0.size
        self.ndim = 2 * self.m if self.complex else self.m
        self.norm = abi.Norm(self.m, bool(self.complex))
        self.has_events = event_list is not None
        self.empty = self.m == 0
        self.fallback_reason = None
        if self.empty:
            return self
        self.target = _solve_ivp_target(target)
        self.plain_rhs = not isinstance(call["fun"], RhsFunction)
        self.plain = self.plain_rhs or any(not isinstance(e, EventFunction)
                                           for e in event_list or ())
        self._check_kinds(event_list)
        self.fallback_reason = self._make_plugins(call, event_list)
        if self.fallback_reason is None:  # else scipy solves the call, with its own checks
            self.rtol, self.atol = (self._per_component(tol) for tol in (rtol, atol))
            self.first_step = 0.0 if first_step is None else float(first_step)
            self.max_step = float(max_step)
        return self

    def _per_component(self, tol):
        """A tolerance (scalar or ``(m,)``, scipy's ``validate_tol``) as one value per
        real component: a complex component's real and imaginary parts share its own."""
        per = np.empty((2, self.m) if self.complex else self.m)
        per[...] = tol
        return per.reshape(-1)

    def _check_kinds(self, event_list):
        """A complex state needs a plain rhs, cuda registered functions."""
        if not self.plain_rhs and self.complex:
            raise ValueError("`y0` is complex, but a registered right-hand side works on real "
                             "states: pass an ordinary Python function, or split y into real "
                             "and imaginary parts")
        if self.target == "cuda" and self.plain:
            raise ValueError(
                "target='cuda' needs fun and events registered with @batchivp.rhs and "
                "@batchivp.event (device code cannot call ordinary Python callables); "
                "use target='cpu' or register them")

    def _make_plugins(self, call, event_list):
        """Set ``p``, ``rhs``, ``events``, ``plugin_keys``; returns why scipy must solve
        the call instead (None: the kernel can)."""
        fun, args = call["fun"], call["args"]
        try:
            self.p, layout = plain.pack_args(args)
            if self.plain_rhs:
                self.rhs = _plain_plugin(fun, "rhs", self, args, layout, vectorized=call["vectorized"])
            else:
                self.rhs = fun.current()  # values it reads changed: render anew
            self.events = []
            for ev in event_list or ():
                if isinstance(ev, EventFunction):
                    self.events.append(ev.current())
                else:
                    base = _plain_plugin(ev, "event", self, args, layout, vectorized=False)
                    self.events.append(base.with_options(
                        getattr(ev, "terminal", None) or False, getattr(ev, "direction", 0)))
        except source.Uncompilable as exc:
            return str(exc)
        reason = _check_indices(self.rhs, self.events, self.ndim, layout.size)
        if reason is not None:
            return reason
        self.plugin_keys = (self.rhs.key,) + tuple(e.key for e in self.events)
        if self.plugin_keys in _failed_plugins:
            return "numba could not compile it before (see the first warning)"
        return None

    def solve(self, module):
        rows = FIRST_EVENT_ROWS
        while True:
            state = self._run(module, rows)
            n_events = state.n_events[0, :len(self.events)]
            if not self.events or n_events.max() <= rows:
                return self._result(state)
            rows = int(n_events.max())  # overflowed: solve again with room for all

    def _run(self, module, event_rows):
        n, real = self.ndim, self._real
        y0 = real(self.y0)
        t_eval = np.zeros(1) if self.t_eval is None else np.asarray(self.t_eval, dtype=float)
        n_eval = 0 if self.t_eval is None else len(t_eval)
        record = core.RECORD_DENSE if self.dense_output else (
            core.RECORD_STEPS if self.t_eval is None else core.RECORD_NONE)
        rows = FIRST_RECORD_ROWS if record != core.RECORD_NONE else 2
        slots, ecfg = arguments.events(self.events)
        handle, ecfg = arguments.handles(module, [self.rhs], 0, slots, ecfg)
        tcfg, icfg = abi.pack_config(
            1, t0=self.t0, tf=self.tf, first_step=self.first_step, max_step=self.max_step,
            handle=handle, n_eval=n_eval, max_steps=abi.UNLIMITED_STEPS,
            chunk_steps=CHUNK_STEPS or abi.UNLIMITED_STEPS, event_buffer=event_rows,
            record=record, record_rows=rows,
            event_rule=core.EVENTS_SCIPY,  # NaN at a step's end: no sign change
            n_events=len(slots))
        inputs = abi.Inputs(y0=y0[None], p=self.p[None], rtol=self.rtol[None],
                            atol=self.atol[None], tcfg=tcfg, t_eval=t_eval[None], icfg=icfg,
                            ecfg=ecfg[None])
        grown = ("rec_t", "rec_y", "rec_F") if record == core.RECORD_DENSE else ("rec_t", "rec_y")
        state = abi.new_state(1, abi.core_sizes(n, self.p.size, len(t_eval), ecfg.shape[0],
                                                event_rows, rows,
                                                rows if record == core.RECORD_DENSE else 1))
        while True:
            # In calls of bounded length (the state resumes bit for bit): between two of
            # them Python's own SIGINT handler raises KeyboardInterrupt, scipy's contract.
            run_kernel(module, self.target, inputs, state,
                       schedule=OneProblemChunks(state.istate) if CHUNK_STEPS is None else None)
            if state.istate[0, core.IS_STATUS] != _PAUSED:
                return state
            # The step record is full: double it and resume where the problem paused.
            rows *= 2
            icfg[0, core.IC_RECORD_ROWS] = rows
            state = state._replace(**{name: _grown(getattr(state, name), rows) for name in grown})
            state.istate[0, core.IS_STATUS] = Status.RUNNING

    def _real(self, y):
        """A complex state as its real parts, then imaginary parts."""
        y = np.asarray(y)
        if self.complex:
            return np.concatenate([y.real, y.imag], axis=-1).astype(float)
        return np.ascontiguousarray(y, dtype=float)

    def _state(self, x):
        """Inverse of :meth:`_real` along the last axis."""
        if self.complex:
            return x[..., :self.m] + 1j * x[..., self.m:]
        return x

    def _result(self, state):
        fstate, istate, yout = state.fstate[0], state.istate[0], state.yout[0]
        n_events, t_events, y_events = state.n_events[0], state.t_events[0], state.y_events[0]
        rec_t, rec_y, rec_F = state.rec_t[0], state.rec_y[0], state.rec_F[0]
        status, message = ivp_status(istate[core.IS_STATUS])
        n_rec = int(istate[core.IS_N_REC])
        steps_t = rec_t[:n_rec].copy()
        steps_y = self._state(rec_y[:n_rec])
        keep = np.ones(n_rec, dtype=bool)
        last = 1
        if self.t_eval is None:
            if self.dense_output:
                # scipy does not append a step that ends where the last appended one did
                # (a terminal event at the step's start), and drops its interpolant; the
                # rule applies once a step has been appended after t0.
                for k in range(2, n_rec):
                    if steps_t[k] == steps_t[last]:
                        keep[k] = False
                    else:
                        last = k
            ts = steps_t[keep]
            ys = steps_y[keep].T.copy()
        else:
            reached = int(istate[core.IS_I_EVAL])
            # t0 == tf: scipy takes t_eval for a backward one (tf > t0 is False) and its
            # forward search past t0 finds no point, so it returns none (scipy 1.17).
            if reached == 0 or self.t0 == self.tf:
                ts, ys = [], []
            else:
                ts = self.t_eval[:reached].copy()
                ys = self._state(yout[:, :reached].T).T.copy()
        sol = None
        if self.dense_output:
            sol = self._solution(steps_t, steps_y, rec_F, keep, fstate)
        t_ev = y_ev = None
        if self.has_events:
            t_ev, y_ev = [], []
            for e in range(len(self.events)):
                count = int(n_events[e])
                t_ev.append(np.asarray(t_events[e, :count].copy()))
                y_ev.append(np.asarray(self._state(y_events[e, :count])) if count else np.asarray([]))
        from scipy.integrate._ivp.ivp import OdeResult
        return OdeResult(t=ts, y=ys, sol=sol, t_events=t_ev, y_events=y_ev,
                         nfev=int(istate[core.IS_NFEV]), njev=0, nlu=0, status=status,
                         message=message, success=status >= 0)

    def _solution(self, steps_t, steps_y, rec_F, keep, fstate):
        """scipy's ``OdeSolution`` over the recorded steps' interpolants."""
        from scipy.integrate._ivp import common as scipy_common
        from scipy.integrate._ivp.base import ConstantDenseOutput
        from scipy.integrate._ivp.rk import Dop853DenseOutput
        n_rec = len(steps_t)
        ts, interpolants = [steps_t[0]], []
        for k in range(1, n_rec):
            if not keep[k]:
                continue
            t_old = steps_t[k - 1]
            # The last step ends at the solver's t (past a terminal event's root).
            t_end = fstate[core.FS_T_NEW] if k == n_rec - 1 else steps_t[k]
            if t_end == t_old:
                interpolants.append(ConstantDenseOutput(t_old, t_end, steps_y[k]))
            else:
                interpolants.append(Dop853DenseOutput(t_old, t_end, steps_y[k - 1],
                                                      self._state(rec_F[k].copy())))
            ts.append(steps_t[k])
        return scipy_common.OdeSolution(ts, interpolants, alt_segment=False)


def _grown(record, rows):
    """A step record array of one problem with ``rows`` rows, the first ones ``record``'s
    (zeros after them: the kernel writes rows in order)."""
    grown = np.zeros((1, rows) + record.shape[2:])
    grown[:, :record.shape[1]] = record
    return grown


def _check_indices(rhs, events, n, m):
    """``bounds.check`` of each plugin. A registered function out of range raises
    ``ValueError``; for a plain callable the reason is returned, and scipy solves the
    problem instead: scipy raises ``IndexError`` from the function if, and only if,
    the integration reaches that index (a branch the trial call did not take)."""
    for plugin in [rhs] + list(events):
        registered = plugin.plugin.registered
        try:
            bounds.check([plugin] if plugin.kind == "rhs" else [],
                         [plugin] if plugin.kind == "event" else [], n, m, IVP_ARGUMENTS)
        except ValueError as exc:
            if registered:
                raise
            return str(exc)
    return None


def _solve_ivp_target(target):
    """The target of one problem: ``cpu`` unless ``cuda`` is asked for by name.

    ``parallel`` cannot spread one problem over cores and ``auto`` must not send an
    ordinary callable to a GPU, so both run on one core; a bad name is an error as
    everywhere (``targets.resolve_target``).
    """
    requested = target if target is not None else os.environ.get(targets.ENV_VAR, "")
    if isinstance(requested, str) and requested.strip().lower() in ("", "auto"):
        return "cpu"
    resolved = targets.resolve_target(target)
    return "cpu" if resolved == "parallel" else resolved


def _plain_plugin(func, kind, problem, args, layout, vectorized):
    """The cached adapter plugin of a plain callable (trial call on first use)."""
    if not callable(func):  # scipy's first call of it fails with Python's own words
        raise TypeError(f"'{type(func).__name__}' object is not callable")
    fingerprint = source.fingerprint(func)
    key = (kind, fingerprint, problem.ndim, problem.complex, bool(vectorized),
           layout.expressions)
    cached = _adapters.get(key)
    if cached is None:
        cached = _new_plugin(func, kind, problem, args, layout, vectorized)
        _adapters[key] = cached
    if isinstance(cached, source.Uncompilable):
        raise cached
    return cached


def _new_plugin(func, kind, problem, args, layout, vectorized):
    y = problem.y0
    if vectorized:
        y = y[:, None]
    value = func(problem.t0, y, *(args or ()))
    expected = problem.m if kind == "rhs" else 1
    output = plain.output_kind(value, expected, vectorized)
    if output is None:
        return source.Uncompilable(
            f"its value at t0 ({type(value).__name__}"
            f"{' of shape ' + str(np.shape(value)) if hasattr(value, 'shape') else ''}) is not "
            f"{expected} number{'s' if expected > 1 else ''}")
    try:
        return plain.adapter(func, kind, problem.ndim, problem.complex, vectorized, layout, output)
    except source.Uncompilable as exc:
        return exc
