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
import hashlib
import itertools
import sys
import threading
from pathlib import Path

import jinja2

from . import abi, bounds, cache, core, targets
from .cache import MODULE_PREFIX
from .source import record_of, rename_tokens

TEMPLATE_NAME = "kernel.py.j2"
CORE_FILES = ("coefficients.py", "dop853.py", "access.py", "events.py", "driver.py")

# Per target: how device functions and the entry point are decorated, and how work
# arrays of compile-time shape are allocated (numba's CUDA target needs local arrays).
# The entry point's arguments, its guvectorize signature and layout: abi.ARGUMENTS.
_GUVECTORIZE = f'@numba.guvectorize([{abi.gufunc_signature()}], "{abi.gufunc_layout()}"'
_TARGET_STYLE = {
    "python": {"device": "", "inline": "", "kernel": "", "local": "np.empty({shape}, np.{dtype})",
               "imports": "", "helper": ""},
    "cpu": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": _GUVECTORIZE + ', target="cpu", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True)",
    },
    "parallel": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": _GUVECTORIZE + ', target="parallel", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True)",
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
    "output_t_eval",
})

_lock = threading.Lock()
_modules = {}  # (target, ndim, plugin keys) -> module


def template_dir():
    """The templates folder: inside the installed package, else the repository's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parents[1] / "templates"):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"batchivp's {TEMPLATE_NAME} is missing (looked in {here / 'templates'})")


def _core_parts():
    """Constant assignments and function definitions of the core files, as source text."""
    constants, functions = [], []
    core_dir = Path(core.__file__).resolve().parent
    for name in CORE_FILES:
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
                constants.append(f"{name} = np.array({body})")
            elif isinstance(node, ast.Assign):
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
    equal a rendered function: plugins are ``user_<kind>_<name>``, helpers
    ``plain_...`` or ``user_...``, the core's names none of these."""
    return f"glob_{number}_{name}"


def render_source(target, ndim, functions, events=(), norm_dim=None, recording=False):
    """The generated module's text and content hash for ``target``, state dimension
    ``ndim``, the right-hand sides ``functions`` and the event slots ``events``
    (:class:`batchivp.source.Plugin` records, or function objects holding one).

    The dispatchers' handles are the positions in ``functions`` and in ``events``,
    repeats (equal keys) left out; :func:`handles` reads them from the loaded module.
    ``len(events)`` is the module's number of event slots. ``norm_dim`` (default
    ``ndim``) is ``ndim // 2`` for a complex state stored as real parts then
    imaginary parts (``core/dop853.py``). ``recording`` compiles in the step record
    (``core/driver.py``) that ``solve_ivp`` needs; batches go without it.
    """
    functions = _unique(map(record_of, functions))
    event_functions = _unique(map(record_of, events))
    style = _TARGET_STYLE[target]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template(TEMPLATE_NAME)
    template_hash = hashlib.sha256(
        (template_dir() / TEMPLATE_NAME).read_bytes()).hexdigest()[:16]
    core_constants, core_functions = _core_parts()
    user = _user_parts(functions + event_functions)

    context = dict(
        template_name=TEMPLATE_NAME, template_hash=template_hash, target=target, ndim=ndim,
        norm_dim=ndim if norm_dim is None else norm_dim, recording=int(bool(recording)),
        index_checks=user["index_checks"],
        rhs_names=[fn.name for fn in functions], user_imports=user["imports"],
        event_names=[fn.name for fn in event_functions], n_event_slots=len(events),
        core_constants=core_constants, core_functions=core_functions,
        user_constants=user["constants"], user_functions=user["functions"],
        device_decorator=style["device"], kernel_decorator=style["kernel"],
        inline_decorator=style["inline"], inlined=INLINED,
        helper_decorator=style["helper"], target_imports=style["imports"],
        local_array=lambda shape, dtype: style["local"].format(shape=shape, dtype=dtype),
        kernel_parameters=abi.parameters(len("def dop853_kernel(")),
        advance_arguments=abi.advance_arguments(len("    dop853_advance(")),
        work_arrays=abi.WORK_ARRAYS,
    )
    body = template.render(content_hash="@@HASH@@", **context)
    content_hash = hashlib.sha256(body.encode()).hexdigest()[:20]
    return body.replace("@@HASH@@", content_hash), content_hash


def _user_parts(records):
    """The template's user part for the plugin ``records``: import lines, constant
    lines, the functions (each with its helpers; a helper shared by several plugins
    is rendered once: equal rendered names, equal code) and whether any function
    checks an index at run time."""
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
            "checked": record.name in plan and plan[record.name][2],
            "source": rendered(record.name, record.rendered_name, record.source,
                               record.globals_, record.name),
        })
    return dict(imports=imports, constants=constants, functions=functions,
                index_checks=int(any(takes for _, _, takes in plan.values())))


def load_module(target, ndim, functions, events=(), norm_dim=None, recording=False):
    """The imported generated module for this target, dimension and plugin set
    (arguments: see :func:`render_source`), written to and imported from the cache
    folder by :func:`batchivp.cache.import_generated`.

    The module's ``PLUGIN_HANDLES`` maps ``"rhs"`` and ``"event"`` to a map of each
    plugin key to its dispatcher handle in the module (read with :func:`handles`).
    """
    functions = _unique(map(record_of, functions))
    events = [record_of(event) for event in events]
    event_functions = _unique(events)
    key = (target, ndim, norm_dim, bool(recording), tuple(r.key for r in functions),
           tuple(r.key for r in event_functions), len(events))
    with _lock:
        module = _modules.get(key)
        if module is not None:
            return module
        if target == "cuda":
            targets.apply_simulator_workarounds()
        if target == "parallel":
            targets.use_fork_safe_threading_layer()
        text, content_hash = render_source(target, ndim, functions, events, norm_dim, recording)
        stem = f"{MODULE_PREFIX}{target}_n{ndim}_{content_hash}"
        module = sys.modules.get(stem)
        if module is None:
            module = cache.import_generated(cache.usable_cache_dir() / f"{stem}.py", text)
        # Equal text, equal dispatchers: another plugin set rendering the same module
        # adds its keys to the same handles.
        table = module.__dict__.setdefault("PLUGIN_HANDLES", {"rhs": {}, "event": {}})
        for kind, records in (("rhs", functions), ("event", event_functions)):
            table[kind].update((record.key, handle) for handle, record in enumerate(records))
        _modules[key] = module
        return module


def handles(module, kind, plugins):
    """The dispatcher handle of each of ``plugins`` (of ``kind``, ``"rhs"`` or
    ``"event"``; records or function objects holding one) in the loaded ``module``."""
    table = module.PLUGIN_HANDLES[kind]
    return [table[record_of(plugin).key] for plugin in plugins]
