"""Render the generated module of a (target, dimension, plugin set).

The module holds the core's constants and functions (copied from ``batchivp.core``),
the user's functions (:class:`batchivp.source.Plugin` records), the dispatchers and
the kernel entry point, decorated for one target by ``templates/kernel.py.j2``.
:func:`load_module` hands the text to :func:`batchivp.cache.import_generated`, which
writes it once under its content hash to the cache folder and imports it from there:
numba's on-disk cache (``cache=True``) then works across processes and tracebacks
point at a real file.
"""

import ast
import functools
import hashlib
import itertools
import os
import sys
import threading
import time
import types
from pathlib import Path

from . import abi, bounds, cache, core, targets
from .source import SIGNATURES, record_of, rename_tokens

TEMPLATE_NAME = "kernel.py.j2"
PLUGIN_TEMPLATE_NAME = "plugin.py.j2"
CORE_FILES = ("coefficients.py", "dop853.py", "access.py", "events.py", "summaries.py",
              "driver.py")

# Per target: how device functions and the entry point are decorated, and how work
# arrays of compile-time shape are allocated (numba's CUDA target needs local arrays).
# The entry point's arguments, its guvectorize signature and layout: abi.ARGUMENTS.
_GUVECTORIZE = '@numba.guvectorize([{signature}], "' + abi.gufunc_layout() + '"'
_TARGET_STYLE = {
    "python": {"device": "", "inline": "", "kernel": "", "local": "np.empty({shape}, np.{dtype})",
               "imports": "", "helper": ""},
    "cpu": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": _GUVECTORIZE + ', target="cpu", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True, error_model='numpy')",  # as the gufunc kernel
    },
    "parallel": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": _GUVECTORIZE + ', target="parallel", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True, error_model='numpy')",  # as the gufunc kernel
    },
    "cuda": {
        # inline=True: compile_ptx works without a driver only when every device
        # function is inlined (numba-cuda 0.30.4; no upstream issue found: see
        # docs/architecture.md, "Testing the CUDA target without a GPU").
        "device": "@cuda.jit(device=True, inline=True)",
        "inline": "@cuda.jit(device=True, inline=True)",
        "kernel": _GUVECTORIZE + ', target="cuda")',
        "local": "cuda.local.array({shape}, numba.{dtype})",
        "imports": "cuda",
        "helper": "@cuda.jit(device=True, inline=True)",
    },
}
# Internal: the cuda module with its entry point left undecorated, so that
# cuda_support can hand it to numba.cuda.compile_ptx without a driver (building the
# cuda gufunc compiles it at once, and that asks the driver for the device).
_TARGET_STYLE["cuda_ptx"] = dict(_TARGET_STYLE["cuda"], kernel="")

# The step's hot path, decorated with the "inline" style: on cpu and parallel numba
# inlines these into their callers (``inline="always"``, at numba IR level), so that a
# step compiles as one function, without calls (and their reference counting of the
# ``K[s]`` rows handed to the right-hand side) between its stages. The rest stay calls:
# this set buys most of the run time that inlining can, for a little more compile time,
# where inlining every function buys little more and multiplies the compile time
# (measurements: benchmarks/README.md, "Inlining the step"). The right-hand side
# and event dispatchers and the user's functions they call are inlined too (their
# helpers are not). On cuda every device function is inlined anyway. Every name here
# must be a function of the core files (tests/test_render.py checks it).
INLINED = frozenset({
    "stage_state", "rk_step", "error_estimates", "error_norm", "np_maximum", "py_min",
    "py_max", "accepted_factor", "rejected_factor", "step_toward", "dop853_step",
    "dense_eval", "dense_coefficients", "bounds_checked_index", "bounds_checked_read",
    "output_t_eval", "store_point", "summarize_value",
})

# The core's precision names (core/dop853.py): the template defines them per module,
# before the core's constants, in place of the core's own (plain Python) definitions.
PRECISION_NAMES = ("REAL", "STAGE")
# Coefficient tables that scale time (the stage times t + C h): float64 in every
# precision; the others are rendered in the module's REAL dtype.
TIME_TABLES = frozenset({"C"})

_lock = threading.Lock()
_modules = {}  # (target, ndim, plugin keys, precision) -> module


def template_dir():
    """The templates folder: inside the installed package, else the repository's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parents[1] / "templates"):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"batchivp's {TEMPLATE_NAME} is missing (looked in {here / 'templates'})")


@functools.lru_cache(maxsize=None)
def _core_parts(files=CORE_FILES):
    """Constant assignments and function definitions of the core ``files``, as source text."""
    constants, functions = [], []
    core_dir = Path(core.__file__).resolve().parent
    for name in files:
        text = (core_dir / name).read_text()
        lines = text.splitlines()
        for node in ast.parse(text).body:
            segment = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            if isinstance(node, ast.FunctionDef):
                functions.append({"name": node.name, "source": segment})
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
                # Coefficient tables become global arrays, which numba freezes into
                # the compiled code; a tuple indexed at run time compiles to a switch.
                name = node.targets[0].id
                body = "\n".join(lines[node.value.lineno - 1 : node.value.end_lineno])
                body = body[body.index("(") :]
                dtype = "np.float64" if name in TIME_TABLES else "REAL"
                constants.append(f"{name} = np.array({body}, dtype={dtype})")
            elif isinstance(node, ast.Assign) and node.targets[0].id not in PRECISION_NAMES:
                constants.append(segment)
    return constants, functions


def _unique(records):
    """``records`` without repeats (equal keys: the same code, whatever an event's
    options), in order of first appearance: the order of the dispatchers' handles."""
    unique = {}
    for record in records:
        unique.setdefault(record.key, record)
    return list(unique.values())


def global_name(number, name):
    """The module's name for the global ``name`` of the ``number``-th user function.

    No two can be equal (the number ends at the first ``_`` after ``glob_``), nor
    equal a rendered function: plugins are ``user_<kind>_<name>``, plain helpers
    ``plain_...``, registered functions a composed plugin calls ``called_...``
    (:func:`batchivp.plain.called_name`), the core's names none of these."""
    return f"glob_{number}_{name}"


def render_source(target, ndim, functions, events=(), norm=None, recording=False,
                  observables=(), precision=abi.FLOAT64):
    """The generated module's text and content hash for ``target``, state dimension
    ``ndim``, the right-hand sides ``functions`` and the event slots ``events``
    (:class:`batchivp.source.Plugin` records, or function objects holding one).

    The dispatchers' handles are the positions in ``functions`` and in ``events``,
    repeats (equal keys) left out; :func:`handles` reads them from the loaded module.
    ``len(events)`` is the module's number of event slots. ``norm``
    (:class:`batchivp.abi.Norm`, default ``Norm(ndim)``) is what the error norm sees:
    a complex state stored as real parts then imaginary parts, or the first components
    of a real one (``core/dop853.py``). ``recording`` compiles in the step record
    (``core/driver.py``) that ``solve_ivp`` needs; batches go without it.
    ``observables``: functions of the event kind that are summarized, not events
    (``core/summaries.py``); the event dispatcher has them after the event slots'.
    ``precision`` (:class:`batchivp.abi.Precision`): the dtypes of the state and the
    stages.
    """
    text, content_hash, _ = _render_inlined(target, ndim, functions, events, norm,
                                            recording, observables, precision)
    return text, content_hash


def _render_inlined(target, ndim, functions, events, norm, recording, observables=(),
                    precision=abi.FLOAT64):
    """:func:`render_source`'s text and hash, and the dispatchers' handles it rendered:
    ``{"rhs": {key: handle}, "event": {key: handle}}``, the one numbering of both."""
    functions = _unique(map(record_of, functions))
    event_functions = _unique(map(record_of, [*events, *observables]))
    handles = {kind: {record.key: handle for handle, record in enumerate(records)}
               for kind, records in (("rhs", functions), ("event", event_functions))}
    user = _user_parts(functions + event_functions, handles)
    text, content_hash = _render_kernel(
        target, ndim, norm, recording, precision, linked=False,
        index_checks=user["index_checks"],
        rhs_names=[fn.name for fn in functions], user_imports=user["imports"],
        event_names=[fn.name for fn in event_functions], n_event_slots=len(events),
        user_constants=user["constants"], user_functions=user["functions"])
    return text, content_hash, handles


def render_linked(target, ndim, norm=None, precision=abi.FLOAT64):
    """The text and content hash of the linked module for ``target`` (cpu or parallel)
    and state dimension ``ndim``: the core with dispatchers that call user functions by
    address (:mod:`batchivp.linking`), for every plugin set of ``precision``. It keeps a
    step record when asked (``RECORDING = 1``), checks the status after every user call
    (``INDEX_CHECKS = 1``), and reads its number of events from ``icfg``."""
    return _render_kernel(
        target, ndim, norm, True, precision, linked=True, index_checks=1, rhs_names=[],
        user_imports=[], event_names=[], n_event_slots=0, user_constants=[],
        user_functions=[])


def _render_kernel(target, ndim, norm, recording, precision, **user):
    style = _TARGET_STYLE[target]
    core_constants, core_functions = _core_parts()
    work_arrays = [(name, shape, precision.dtype(holds, dtype), what)
                   for name, shape, dtype, holds, what in abi.WORK_ARRAYS]
    return _render(
        TEMPLATE_NAME, target=target, ndim=ndim, precision=precision,
        norm=abi.Norm(ndim) if norm is None else norm, recording=int(bool(recording)),
        core_constants=core_constants, core_functions=core_functions,
        device_decorator=style["device"], inline_decorator=style["inline"],
        kernel_decorator=style["kernel"].format(signature=abi.gufunc_signature(precision)),
        inlined=INLINED, helper_decorator=style["helper"], target_imports=style["imports"],
        local_array=lambda shape, dtype: style["local"].format(shape=shape, dtype=dtype),
        kernel_parameters=abi.parameters(len("def dop853_kernel(")),
        advance_arguments=abi.advance_arguments(len("    dop853_advance(")),
        work_arrays=work_arrays, parameters=_PARAMETERS, call_arguments=_CALL_ARGUMENTS,
        **user)


# The dispatchers' parameter lists after ``handle``, per kind (before ``istate``), and
# the arguments they call user functions with: time, a float64 in the core, in the
# module's REAL dtype (a no-op in float64), as the user function's arrays.
_PARAMETERS = {kind: signature.text for kind, signature in SIGNATURES.items()}
_CALL_ARGUMENTS = {kind: ", ".join(p.name if p.length is not None else f"REAL({p.name})"
                                   for p in signature.parameters)
                   for kind, signature in SIGNATURES.items()}


def render_plugin(plugin, precision=abi.FLOAT64):
    """The text and content hash of the module compiling the one user function
    ``plugin`` (a record or a function object holding one) as a C function, named
    ``address``, that linked kernels of ``precision`` call (:mod:`batchivp.linking`)."""
    from . import linking  # here: it imports numba

    record = record_of(plugin)
    user = _user_parts([record])
    core_constants, _ = _core_parts(("dop853.py",))
    _, access = _core_parts(("access.py",))
    signature = SIGNATURES[record.kind]
    # The C function's arrays arrive as pointers: the user function gets them as arrays.
    call_arguments = ", ".join(p.name if p.length is None else f"carray({p.name}, {p.length})"
                               for p in signature.parameters)
    return _render(
        PLUGIN_TEMPLATE_NAME, fn=user["functions"][0], precision=precision,
        c_parameters=", ".join(linking.c_parameters(record.kind)),
        call_arguments=call_arguments, returns=signature.returns is not None,
        user_imports=user["imports"], user_constants=user["constants"],
        core_constants=core_constants, core_functions=access)


@functools.lru_cache(maxsize=None)
def _template(name):
    """The jinja template ``name`` and the first 16 hex digits of its sha256."""
    import jinja2  # here, not at the top: import batchivp stays quick

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    digest = hashlib.sha256((template_dir() / name).read_bytes()).hexdigest()[:16]
    return env.get_template(name), digest


@functools.lru_cache(maxsize=None)
def _linking_hash():
    """The hash of :mod:`batchivp.linking`'s source, which linked modules import: in
    their header, so that a new version renders new modules."""
    return hashlib.sha256((Path(__file__).resolve().parent / "linking.py").read_bytes()
                          ).hexdigest()[:16]


def _render(template_name, **context):
    """``(text, content hash)`` of ``template_name`` filled with ``context``."""
    template, template_hash = _template(template_name)
    body = template.render(template_name=template_name, template_hash=template_hash,
                           linking_hash=_linking_hash(), content_hash="@@HASH@@", **context)
    content_hash = hashlib.sha256(body.encode()).hexdigest()[:20]
    return body.replace("@@HASH@@", content_hash), content_hash


def _user_parts(records, handles=None):
    """The template's user part for the plugin ``records``: import lines, constant
    lines, the functions (each with its helpers, a helper shared by several plugins
    rendered once: equal rendered names, equal code; and its dispatcher handle, from
    ``handles``: kind -> {key: handle}) and whether any function checks an index at
    run time."""
    # Indices the analysis could not bound are checked at run time (the bounds package).
    plan = bounds.rewrite_plan(records)
    imports, constants, functions, emitted = [], [], [], set()
    numbers = itertools.count()

    def rendered(name, rendered_name, source, globals_, plan_name):
        """``source`` with its unbounded indices checked, its name and globals renamed;
        its imports and constants go to the module's lists."""
        if plan_name in plan:
            source = bounds.instrument(source, name, *plan[plan_name])
        number = next(numbers)
        mapping = {name: rendered_name}
        for gname, (gkind, value) in sorted(globals_.items()):
            if gkind == "module" and gname == value.split(".")[-1] and "." not in value:
                line = f"import {value}"
            else:
                mapping[gname] = global_name(number, gname)
                line = (f"import {value} as {mapping[gname]}" if gkind == "module"
                        else f"{mapping[gname]} = {value}")
            if gkind == "module":
                if line not in imports and line not in ("import math", "import numpy as np"):
                    imports.append(line)
            else:
                constants.append(line)
        return rename_tokens(source, mapping).rstrip() + "\n"

    for record in records:
        helpers = []
        for h in record.helpers:
            if h.rendered_name not in emitted:
                emitted.add(h.rendered_name)
                helpers.append(rendered(h.name, h.rendered_name, h.source, h.globals_,
                                        h.rendered_name))
        functions.append({
            "kind": record.kind, "name": record.name, "origin": record.origin,
            "rendered_name": record.rendered_name, "helpers": helpers,
            "handle": None if handles is None else handles[record.kind][record.key],
            "checked": record.name in plan and plan[record.name][2],
            "source": rendered(record.name, record.rendered_name, record.source,
                               record.globals_, record.name),
        })
    return dict(imports=imports, constants=constants, functions=functions,
                index_checks=int(any(takes for _, _, takes in plan.values())))


def load_module(target, ndim, functions, events=(), norm=None, recording=False,
                observables=(), precision=abi.FLOAT64):
    """The kernel module for this target, dimension and plugin set (arguments: see
    :func:`render_source`): on cpu and parallel a linked kernel, else (or with
    ``$BATCHIVP_KERNEL=inlined``) the generated module with the plugins inlined
    (:func:`kernel_kind`). Same arithmetic, bitwise the same results.

    The module's ``PLUGIN_HANDLES`` maps ``"rhs"`` and ``"event"`` to a map of each
    plugin key to its dispatcher handle in the module (read with :func:`handles`):
    positions in the inlined module, addresses in a linked kernel.
    """
    functions = _unique(map(record_of, functions))
    events = [record_of(event) for event in events]
    observables = [record_of(observable) for observable in observables]
    event_functions = _unique(events + observables)
    kind = kernel_kind(target)
    key = (target, kind, ndim, norm, bool(recording), tuple(r.key for r in functions),
           tuple(r.key for r in event_functions), len(events), precision)
    with _lock:
        module = _modules.get(key)
        if module is not None:
            return module
        if target == "cuda":
            targets.apply_simulator_workarounds()
        if target == "parallel":
            targets.use_fork_safe_threading_layer()
        if kind == "linked":
            module = _linked_kernel(target, ndim, norm, functions, event_functions, precision)
        else:
            module = _inlined_module(target, ndim, functions, events, norm, recording,
                                     observables, precision)
        _modules[key] = module
        return module


def _inlined_module(target, ndim, functions, events, norm, recording, observables,
                    precision):
    text, content_hash, handles = _render_inlined(target, ndim, functions, events, norm,
                                                  recording, observables, precision)
    module = _import(_stem(target, f"n{ndim}", precision, content_hash), text)
    # Equal text, equal dispatchers: another plugin set rendering the same module
    # adds its keys to the same handles.
    table = module.__dict__.setdefault("PLUGIN_HANDLES", {kind: {} for kind in handles})
    for kind, keys in handles.items():
        table[kind].update(keys)
    return module


# ---- linked kernels: user functions called by address (batchivp/linking.py) ----

KERNEL_ENV_VAR = "BATCHIVP_KERNEL"  # "auto" (default), "linked" or "inlined"
KERNEL_KINDS = ("auto", "linked", "inlined")
LINKED_TARGETS = ("cpu", "parallel")
_linked_cores = {}  # (target, ndim, norm, $BATCHIVP_CACHE_DIR) -> linked core module


def kernel_kind(target):
    """``"linked"`` or ``"inlined"``: the kernel that runs plugins on ``target``.
    Linked on cpu and parallel (``auto``, the default of ``$BATCHIVP_KERNEL``): it
    compiles the core once per target and dimension and each user function alone, for a
    step a little dearer than the inlined kernel's (benchmarks/README.md, "First call").
    CUDA has no function pointers, and the python target is the inlined module run as
    Python: always inlined."""
    choice = os.environ.get(KERNEL_ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in KERNEL_KINDS:
        raise ValueError(f"{KERNEL_ENV_VAR}={choice!r}: expected one of {', '.join(KERNEL_KINDS)}")
    return "linked" if target in LINKED_TARGETS and choice != "inlined" else "inlined"


def _linked_kernel(target, ndim, norm, functions, event_functions, precision):
    """A module-like object: the linked core's ``dop853_kernel`` and the addresses of the
    plugins' C functions as their handles."""
    core_module = linked_core(target, ndim, norm, precision)
    plugins = {kind: {r.key: plugin_module(r, precision) for r in records}
               for kind, records in (("rhs", functions), ("event", event_functions))}
    return types.SimpleNamespace(
        __name__=core_module.__name__, NDIM=ndim, dop853_kernel=core_module.dop853_kernel,
        PLUGIN_MODULES=plugins,  # keeps the C functions alive while their addresses are used
        PLUGIN_HANDLES={kind: {key: module.address.address for key, module in table.items()}
                        for kind, table in plugins.items()})


def linked_core(target, ndim, norm=None, precision=abi.FLOAT64):
    """The linked core module of ``target``, ``ndim`` and ``precision``: loaded from the
    disk cache, or compiled, once per machine, saying so on stderr (it takes seconds)."""
    key = (target, ndim, norm, precision, os.environ.get(cache.CACHE_ENV_VAR))
    core_module = _linked_cores.get(key)
    if core_module is not None:  # solve_ivp asks on every call: no rendering then
        return core_module
    stem, text = _linked_stem(target, ndim, norm, precision)
    if stem not in sys.modules and not _linked_compiled(stem):
        which = "" if precision == abi.FLOAT64 else f" ({precision.name})"
        print(f"batchivp: compiling the {target} core{which} for {ndim}-dimensional states, once on "
              f"this machine (seconds to a minute; `batchivp cache warm` does it ahead of time)",
              file=sys.stderr, flush=True)
    core_module = _linked_cores[key] = _import(stem, text)
    return core_module


def _linked_stem(target, ndim, norm=None, precision=abi.FLOAT64):
    text, content_hash = render_linked(target, ndim, norm, precision)
    return _stem("linked", target, f"n{ndim}", precision, content_hash), text


def _stem(*parts):
    """The cache stem of a module named by ``parts``, where a :class:`abi.Precision`
    part is its tag: float64 modules keep the names they had before precisions."""
    return cache.module_stem(*(p.tag if isinstance(p, abi.Precision) else p
                               for p in parts if not isinstance(p, abi.Precision) or p.tag))


def _linked_compiled(stem):
    return cache.is_compiled(cache.module_path(stem))


def warm(target_names, dims, jobs=None, out=sys.stdout, precisions=(abi.FLOAT64,)):
    """Compile (or find compiled) the linked cores of ``target_names`` (cpu, parallel)
    for the state dimensions ``dims`` in ``precisions``, ``jobs`` at a time in processes
    of their own (default: one per core); print one line each. ``batchivp cache warm``
    runs it."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    work = [(target, int(ndim), precision.name) for target in target_names for ndim in dims
            for precision in precisions]
    for target, _, _ in work:
        if target not in LINKED_TARGETS:
            raise ValueError(f"cache warm: target {target!r} has no linked core; expected one "
                             f"of {', '.join(LINKED_TARGETS)} (cuda kernels compile per plugin set)")
    context = multiprocessing.get_context("spawn")  # numba's state is not fork-safe
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count(), mp_context=context) as pool:
        for (target, ndim, name), (seconds, compiled) in zip(work, pool.map(_warm_one, work)):
            how = f"compiled in {seconds:.1f} s" if compiled else "already compiled"
            which = "" if name == abi.FLOAT64.name else f" ({name})"
            print(f"{target} core{which}, {ndim}-dimensional states: {how}", file=out,
                  flush=True)


def _warm_one(item):
    target, ndim, name = item
    precision = abi.PRECISIONS[name]
    if target == "parallel":
        targets.use_fork_safe_threading_layer()
    compiled = not _linked_compiled(_linked_stem(target, ndim, None, precision)[0])
    start = time.perf_counter()
    linked_core(target, ndim, None, precision)
    return time.perf_counter() - start, compiled


def plugin_module(plugin, precision=abi.FLOAT64):
    """The module of ``plugin``'s C function ``address`` in ``precision`` (compiled, or
    loaded from the disk cache, once per process)."""
    text, content_hash = render_plugin(plugin, precision)
    return _import(_stem("plugin", precision, content_hash), text)


def _import(stem, text):
    module = sys.modules.get(stem)
    if module is None:
        module = cache.import_generated(cache.module_path(stem), text)
    return module


def handles(module, kind, plugins):
    """The dispatcher handle of each of ``plugins`` (of ``kind``, ``"rhs"`` or
    ``"event"``; records or function objects holding one) in the loaded ``module``."""
    table = module.PLUGIN_HANDLES[kind]
    return [table[record_of(plugin).key] for plugin in plugins]
