"""A JAX-callable batch solve whose derivatives come from the kernel's sensitivities.

:func:`solve_batch` runs :func:`batchivp.solve_batch` on the host through
``jax.pure_callback``, so it works inside ``jax.jit`` and ``jax.vmap``. Its
``jax.custom_jvp`` rule runs the same solve with ``sensitivity=...`` (only the columns
the tangents need: ``"y0"``, ``"params"`` or ``"all"``) and contracts the forward
sensitivities with the tangents in ``jnp`` ops,

    ``y_dot = dy/dy0 · y0_dot + dy/dp · p_dot``,

which is linear in the tangents: JAX transposes it, so ``jax.grad`` (reverse mode) and
``jax.jacfwd``/``jax.jacrev`` all use the one solve with sensitivities. First
derivatives only: a second derivative would differentiate the sensitivities, and
JAX refuses it (a ``pure_callback`` has no derivative of its own).

``y0`` and ``params`` may be traced; everything else is static (plain numbers and
arrays), and batchivp solves in float64, so JAX must run with
``jax_enable_x64``. The static arguments are checked when the call is traced, with
the ``ValueError`` naming the argument that :func:`batchivp.solve_batch` gives;
a callback must not raise, so a non-finite ``y0`` or ``params`` met at run time (a
sampler's wild proposal) gives NaN and ``Status.NONFINITE`` for its problem instead.

Under ``jax.vmap`` the callback receives the mapped inputs with leading batch axes
(``vmap_method="expand_dims"``) and solves them all as one batch of ``B * N``
problems.
"""

import inspect
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.custom_derivatives import SymbolicZero
except ImportError as exc:  # the extra is optional
    raise ImportError("batchivp.jax needs JAX: pip install 'batchivp[jax]'") from exc

from . import batch as _batch
from .status import Status

# The options that may be per problem, with the number of axes they have then (their
# first axis is N); other shapes are shared by every problem.
_PER_PROBLEM = {"t_span": 2, "t_eval": 2, "rtol": 2, "atol": 2, "first_step": 1,
                "max_step": 1, "fun_index": 1}
# Options of batchivp.solve_batch this bridge sets itself or has no output for.
_REFUSED = {
    "sensitivity": "the bridge chooses the sensitivity columns from the tangents",
    "events": "event times and states are not outputs of batchivp.jax.solve_batch "
              "(use batchivp.solve_batch(sensitivity=...) for their sensitivities)",
    "max_events": "batchivp.jax.solve_batch takes no events",
    "observables": "summaries are not outputs of batchivp.jax.solve_batch",
    "summarize": "summaries are not outputs of batchivp.jax.solve_batch",
    "save_y": "y at t_eval is an output of batchivp.jax.solve_batch when t_eval is given",
    "out": "the outputs are JAX arrays, not a store",
    "dtype": "the bridge and its derivatives work in float64",
}


class JaxBatchResult(NamedTuple):
    """What :func:`solve_batch` returns: JAX arrays over the batch axis (length ``N``).

    Attributes
    ----------
    y : jax.Array, shape (N, n, k), or None
        The solution at ``t_eval`` (``None`` without ``t_eval``); NaN where a problem
        stopped first. Differentiable with respect to ``y0`` and ``params``.
    y_final : jax.Array, shape (N, n)
        The state at ``t_final``. Differentiable with respect to ``y0`` and ``params``.
    t_final : jax.Array, shape (N,)
        The time each problem reached: the end of its span where it succeeded. Not
        differentiated (its tangent is zero).
    status : jax.Array of int32, shape (N,)
        :class:`batchivp.Status` codes, ``0`` on success.
    """

    y: object
    y_final: object
    t_final: object
    status: object

    @property
    def success(self):
        """(N,) bool: the problem finished (status 0 or 1, as scipy's ``status >= 0``)."""
        return (self.status == int(Status.FINISHED)) | (self.status == int(Status.EVENT))


def solve_batch(fun, t_span, y0, params=None, *, t_eval=None, rtol=1e-3, atol=1e-6,
                target=None, **options):
    """:func:`batchivp.solve_batch` as a JAX function of ``y0`` and ``params``.

    Differentiable with ``jax.grad``, ``jax.jacfwd``, ``jax.jacrev`` and ``jax.jvp``
    (first derivatives, from the kernel's forward sensitivities), and usable inside
    ``jax.jit`` and ``jax.vmap``. Needs ``jax.config.update("jax_enable_x64", True)``.

    Parameters
    ----------
    fun : RhsFunction or sequence of RhsFunction
        Registered with :func:`batchivp.rhs`, as for :func:`batchivp.solve_batch`; its
        tangent is generated from its source when a derivative is first asked for.
    t_span : (2,) or (N, 2) array_like
        Each problem's ``(t0, tf)``. Static: concrete numbers, not traced.
    y0 : (N, n) array_like or jax.Array
        Initial states; may be traced (differentiated, jitted, vmapped).
    params : None, scalar, (m,) or (N, m) array_like or jax.Array
        Parameter vector ``p``, shared or per problem; may be traced.
    t_eval : None, (k,) or (N, k) array_like
        Times to store the solution at. Static.
    rtol, atol : scalar, (n,), (N, 1) or (N, n) array_like
        Tolerances. Static.
    target : None or str
        ``"cpu"``, ``"parallel"``, ``"cuda"`` or ``"auto"``; the solve runs on the host
        (or its GPU through numba), wherever JAX runs.
    **options
        Further static options of :func:`batchivp.solve_batch`: ``first_step``,
        ``max_step``, ``max_steps``, ``fun_index``, ``chunk_steps``, ``progress``,
        ``sensitivity_error``. Not ``events`` (no event outputs here) nor
        ``sensitivity`` (chosen from the tangents: only the columns they need).

    Returns
    -------
    JaxBatchResult
        ``y`` (N, n, k) or None, ``y_final`` (N, n), ``t_final`` (N,), ``status`` (N,)
        as JAX arrays; ``y`` and ``y_final`` carry derivatives.

    Raises
    ------
    RuntimeError
        If JAX runs without 64-bit floats (``jax_enable_x64``).
    TypeError
        For a traced static argument (``t_span``, ``t_eval``, the tolerances, an
        option), naming it, or an option this function does not take.
    ValueError
        For a bad argument, naming it, as :func:`batchivp.solve_batch` (when traced).

    Notes
    -----
    A problem whose ``y0`` or ``params`` are not finite when the solve runs gets NaN
    and ``Status.NONFINITE``, not an exception (a JAX callback must not raise). A
    problem that fails (``status < 0``) has NaN in ``y`` after the failure, and so in
    the derivatives: a sampler sees a divergence there.

    Examples
    --------
    >>> loss = lambda p: jnp.sum((solve_batch(lotka, (0.0, 10.0), y0, params=p,
    ...                                       t_eval=te).y - data) ** 2)
    >>> jax.grad(loss)(p0)  # doctest: +SKIP
    """
    _require_x64()
    y0 = _as_float(y0, "y0")
    p = None if params is None else jnp.atleast_1d(_as_float(params, "params"))
    options.update(t_eval=t_eval, rtol=rtol, atol=atol, target=target)
    static = _Static.of(fun, t_span, y0.shape, None if p is None else p.shape, options)
    if p is not None and p.ndim == 2:
        p = jnp.broadcast_to(p, (static.n_prob, static.m))  # (1, m): one row for all
    y, y_final, t_final, status = _differentiable(static)(y0, p)
    return JaxBatchResult(y, y_final, t_final, status)


def _require_x64():
    if jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise RuntimeError(
            "batchivp.jax solves in float64, which JAX gives only with 64-bit floats "
            "enabled: call jax.config.update('jax_enable_x64', True) at startup (or set "
            "JAX_ENABLE_X64=1)")


def _as_float(value, name):
    """``value`` as a float64 JAX array (traced or not), or the ``ValueError`` naming it."""
    try:
        array = jnp.asarray(value)
    except TypeError as exc:
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from None
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise ValueError(f"{name} is complex; batchivp integrates real systems (split real "
                         "and imaginary parts into separate components)")
    if not (jnp.issubdtype(array.dtype, jnp.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return array.astype(jnp.float64)


@dataclass(frozen=True, eq=False)
class _Static:
    """The part of a call that JAX does not trace: the function, the concrete options
    of :func:`batchivp.solve_batch` and the shapes (``N``, ``n``, ``m``, ``k``)."""

    fun: object
    options: dict  # t_span and every other keyword, concrete
    n_prob: int
    n: int
    m: object  # None without params
    p_rows: bool  # params per problem, (N, m)
    k: object  # len(t_eval), None without

    @classmethod
    def of(cls, fun, t_span, y0_shape, p_shape, options):
        """Check the static arguments (when traced: before anything runs) with the
        errors of :func:`batchivp.solve_batch`, which name the argument."""
        options = _concrete(dict(options, t_span=t_span))
        if len(y0_shape) != 2:
            raise ValueError(f"y0 must have shape (N, n) (one row per problem), got shape "
                             f"{tuple(y0_shape)}; for a single problem pass y0[None, :]")
        static = cls(fun, options, y0_shape[0], y0_shape[1],
                     None if p_shape is None else p_shape[-1],
                     p_shape is not None and len(p_shape) == 2,
                     None if options.get("t_eval") is None else 0)
        batch = static.validate(None, p_shape)
        return static if static.k is None else cls(**{**static.__dict__, "k": batch.n_eval})

    def validate(self, mode, p_shape=None):
        """batchivp's checks of this call with zeros for ``y0`` and ``params`` and
        ``sensitivity=mode``: the ``ValueError`` naming a bad argument or the line of
        ``fun`` that cannot be differentiated."""
        if p_shape is None and self.m is not None:
            p_shape = (self.n_prob, self.m) if self.p_rows else (self.m,)
        arguments = dict(_DEFAULTS, **self.options, sensitivity=mode)
        for name in ("progress", "out"):  # not checks of the batch (validate's arguments)
            arguments.pop(name)
        return _batch.validate(self.fun, y0=np.zeros((self.n_prob, self.n)),
                               params=None if p_shape is None else np.zeros(p_shape),
                               **arguments)

    def rows(self, index):
        """The options for the problems ``index`` (indices into the ``N`` problems)."""
        options = dict(self.options)
        for name, ndim in _PER_PROBLEM.items():
            value = options.get(name)
            if value is not None and np.ndim(value) == ndim and len(value) == self.n_prob:
                options[name] = np.asarray(value)[index]
        return options


_DEFAULTS = {name: parameter.default
             for name, parameter in inspect.signature(_batch.solve_batch).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


def _concrete(options):
    """``options`` with arrays as numpy arrays; a ``TypeError`` naming a traced one, an
    unknown one or one this bridge does not take."""
    out = {}
    for name, value in options.items():
        if name not in _DEFAULTS and name != "t_span":
            raise TypeError(f"solve_batch() got an unexpected keyword argument {name!r}")
        if name in _REFUSED and not _unset(value):
            raise TypeError(f"{name} is not an option of batchivp.jax.solve_batch: "
                            f"{_REFUSED[name]}")
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value)):
            raise TypeError(f"{name} must be concrete numbers, not traced by JAX (only y0 "
                            "and params may be): pass it as a constant, outside jax.jit's "
                            "arguments or as a static argument")
        out[name] = np.asarray(value) if isinstance(value, jax.Array) else value
    return out


def _unset(value):
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _differentiable(static):
    """``(y0, p) -> (y, y_final, t_final, status)`` with its JVP from the sensitivities."""

    @jax.custom_jvp
    def solve(y0, p):
        return _outputs(_call(static, None, y0, p))

    def jvp(primals, tangents):
        (y0, p), (y0_dot, p_dot) = primals, tangents
        y0_dot = None if isinstance(y0_dot, SymbolicZero) else y0_dot
        p_dot = None if p is None or isinstance(p_dot, SymbolicZero) else p_dot
        mode = {(True, True): "all", (True, False): "y0", (False, True): "params"}.get(
            (y0_dot is not None, p_dot is not None))
        if mode is not None:
            static.validate(mode)  # a line of fun that cannot be differentiated: now
        out = _call(static, mode, y0, p)
        y, y_final, t_final, status = _outputs(out)
        p_index = "lj" if static.p_rows else "j"
        y_final_dot = _contract(out, "dyf", y0_dot, p_dot, p_index, jnp.zeros_like(y_final))
        y_dot = None if y is None else _contract(out, "dy", y0_dot, p_dot, p_index,
                                                 jnp.zeros_like(y), "k")
        status_dot = np.zeros(status.shape, dtype=jax.dtypes.float0)
        return ((y, y_final, t_final, status),
                (y_dot, y_final_dot, jnp.zeros_like(t_final), status_dot))

    solve.defjvp(jvp, symbolic_zeros=True)
    return solve


def _contract(out, prefix, y0_dot, p_dot, p_index, zero, time=""):
    """``d/dy0 · y0_dot + d/dp · p_dot`` of ``out[prefix + "_dy0"]``, ``..._dp``:
    ``(N, n[, k])``, linear in the tangents (so JAX transposes it for reverse mode);
    a tangent that is ``None`` is zero."""
    result = zero
    for tangent, name, index in ((y0_dot, "_dy0", "lj"), (p_dot, "_dp", p_index)):
        if tangent is not None:
            result = result + jnp.einsum(f"lij{time},{index}->li{time}", out[prefix + name],
                                         tangent)
    return result


def _outputs(out):
    return out.get("y"), out["y_final"], out["t_final"], out["status"]


def _call(static, mode, y0, p):
    """The host solve as a ``jax.pure_callback``: a dict of the outputs and, with
    ``mode``, the sensitivities (``dy_dy0``, ``dyf_dy0``, ``dy_dp``, ``dyf_dp``)."""
    shapes = {name: jax.ShapeDtypeStruct(shape, dtype)
              for name, (shape, dtype) in _output_shapes(static, mode).items()}
    args = (y0,) if p is None else (y0, p)
    return jax.pure_callback(_HostSolve(static, mode), shapes, *args,
                             vmap_method="expand_dims")


def _output_shapes(static, mode):
    n_prob, n, m, k = static.n_prob, static.n, static.m, static.k
    shapes = dict(y_final=((n_prob, n), np.float64), t_final=((n_prob,), np.float64),
                  status=((n_prob,), np.int32))
    if k is not None:
        shapes["y"] = ((n_prob, n, k), np.float64)
    for suffix, c, asked in (("y0", n, mode in ("y0", "all")),
                             ("p", m, mode in ("params", "all"))):
        if asked:
            shapes[f"dyf_d{suffix}"] = ((n_prob, n, c), np.float64)
            if k is not None:
                shapes[f"dy_d{suffix}"] = ((n_prob, n, c, k), np.float64)
    return shapes


class _HostSolve:
    """The callback: numpy in, numpy out. Under ``jax.vmap`` its inputs have leading
    batch axes (size 1 where not mapped); their problems are solved as one batch."""

    def __init__(self, static, mode):
        self.static, self.mode = static, mode

    def __call__(self, y0, p=None):
        static = self.static
        lead, y0, p = _flatten(static, np.asarray(y0, np.float64),
                               None if p is None else np.asarray(p, np.float64))
        out = {name: np.full((len(y0),) + shape[1:], np.nan if name != "status"
                             else int(Status.NONFINITE), dtype)
               for name, (shape, dtype) in _output_shapes(static, self.mode).items()}
        finite = np.isfinite(y0).all(axis=1)
        if p is not None:
            finite &= np.isfinite(p).all(axis=-1)
        index = np.flatnonzero(finite)
        if index.size:
            shared = p is None or p.ndim == 1
            options = static.rows(index % static.n_prob)
            res = _batch.solve_batch(static.fun, options.pop("t_span"), y0[index],
                                     params=p if shared else p[index],
                                     sensitivity=self.mode, **options)
            for name, array in out.items():
                array[index] = getattr(res, name)
        return {name: array.reshape(lead + (static.n_prob,) + array.shape[1:])
                for name, array in out.items()}


def _flatten(static, y0, p):
    """``(lead, y0, p)``: the batch axes a ``vmap`` added, and ``y0`` and ``p`` with
    them folded into the problems' axis (``p`` stays ``(m,)`` where shared by all)."""
    n_prob, n = static.n_prob, static.n
    core_p = 2 if static.p_rows else 1
    shapes = [y0.shape[:-2]] + ([] if p is None else [p.shape[:p.ndim - core_p]])
    lead = tuple(np.broadcast_shapes(*shapes))
    y0 = np.broadcast_to(y0, lead + (n_prob, n)).reshape(-1, n)
    if p is not None and (lead or static.p_rows):
        rows = p if static.p_rows else p[..., None, :]
        p = np.broadcast_to(rows, lead + (n_prob, static.m)).reshape(-1, static.m)
    return lead, y0, p
