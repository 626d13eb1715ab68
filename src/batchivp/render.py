"""Render, write and import the generated module of a (target, dimension, plugin set).

The module holds the core's constants and functions (copied from ``batchivp.core``),
the user's functions, the dispatcher and the kernel entry point, decorated for one
target by ``templates/kernel.py.j2``. It is written once under a content hash to the
cache folder and imported from there with importlib: numba's on-disk cache
(``cache=True``) then works across processes and tracebacks point at a real file.
"""

import ast
import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

import jinja2

from . import core
from .registry import rename_tokens

TEMPLATE_NAME = "kernel.py.j2"
CORE_FILES = ("coefficients.py", "dop853.py", "events.py", "driver.py")
CACHE_ENV_VAR = "BATCHIVP_CACHE_DIR"
MODULE_PREFIX = "batchivp_generated_"

# Per target: how device functions and the entry point are decorated, and how work
# arrays of compile-time shape are allocated (numba's CUDA target needs local arrays).
# Arguments: y0, p, rtol, atol, tcfg, t_eval, icfg, ecfg | fstate, istate, f, yout, g,
# n_events, t_events, y_events, rec_t, rec_y, rec_F | y. The resumable state (fstate ...
# rec_F) is updated
# in place: numba cannot size output-only core dimensions, and the host passes
# exact-dtype contiguous arrays (device arrays on cuda), so the kernel writes into the
# caller's memory. A batch without events passes event arrays of one slot (e = 1), one
# without a step record record arrays of one row (r = 1), one without dense output an
# interpolant array of one row (q = 1).
_KERNEL_SIGNATURE = (
    '"void(float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], '
    'int64[:], int64[:, :], float64[:], int64[:], float64[:], float64[:, :], '
    'float64[:], int64[:], float64[:, :], float64[:, :, :], float64[:], float64[:, :], '
    'float64[:, :, :], float64[:])"'
)
KERNEL_LAYOUT = ("(n),(m),(n),(n),(c),(k),(i),(e,d),(s),(j),(n),(n,k),(e),(e),(e,b),(e,b,n),"
                 "(r),(r,n),(q,w,n)->(n)")
_TARGET_STYLE = {
    "python": {"device": "", "inline": "", "kernel": "", "local": "np.empty({shape}, np.{dtype})",
               "imports": "", "helper": ""},
    "cpu": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": f'@numba.guvectorize([{_KERNEL_SIGNATURE}], "{KERNEL_LAYOUT}", target="cpu", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True)",
    },
    "parallel": {
        "device": "@numba.njit(cache=True)",
        "inline": "@numba.njit(cache=True, inline='always')",
        "kernel": f'@numba.guvectorize([{_KERNEL_SIGNATURE}], "{KERNEL_LAYOUT}", target="parallel", cache=True)',
        "local": "np.empty({shape}, np.{dtype})",
        "imports": "numba",
        "helper": "@numba.njit(cache=True)",
    },
    "cuda": {
        # inline=True: compile_ptx works without a driver only when every device
        # function is inlined (numba-cuda 0.30.4; see DESIGN.md).
        "device": "@cuda.jit(device=True, inline=True)",
        "inline": "@cuda.jit(device=True, inline=True)",
        "kernel": f'@numba.guvectorize([{_KERNEL_SIGNATURE}], "{KERNEL_LAYOUT}", target="cuda")',
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
# ``K[s]`` rows handed to the right-hand side) between its stages. With the rest
# left as calls, the Kepler benchmark batch takes 0.70 of the time it took with none
# inlined (34 vs 49 ms on 2 cores) and a cold compile about 1 s more (8-9 s); inlining
# every function saves 1 ms more but triples the compile time. The right-hand side
# and event dispatchers and the user's functions they call are inlined too (their
# helpers are not). On cuda every device function is inlined anyway.
INLINED = frozenset({
    "stage_state", "rk_step", "error_estimates", "error_norm", "np_maximum", "py_min",
    "py_max", "accepted_factor", "rejected_factor", "step_toward", "dop853_step",
    "dense_eval", "dense_coefficients",
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


def cache_dir():
    """Where generated modules go: ``$BATCHIVP_CACHE_DIR`` or the user cache folder."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("batchivp")) / "generated"


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


def unique_functions(functions):
    """``functions`` without repeats (equal keys: the same source, whatever the event
    options), in order of first appearance, and each item's position in that list
    (the dispatcher handle of each item)."""
    unique, position = [], {}
    for fn in functions:
        if fn.key not in position:
            position[fn.key] = len(unique)
            unique.append(fn)
    return unique, [position[fn.key] for fn in functions]


def render_source(target, ndim, functions, events=(), norm_dim=None, recording=False):
    """The generated module's text for ``target``, state dimension ``ndim``, the
    registered right-hand sides ``functions`` and the event slots ``events``.

    Positions in ``functions`` and in ``unique_functions(events)`` are the dispatchers'
    handles; ``len(events)`` is the module's number of event slots. ``norm_dim``
    (default ``ndim``) is ``ndim // 2`` for a complex state stored as real parts then
    imaginary parts (``core/dop853.py``). ``recording`` compiles in the step record
    (``core/driver.py``) that ``solve_ivp`` needs; batches go without it.
    """
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

    user_imports, user_constants, user_functions = [], [], []
    seen_imports = set()

    def rendered(name, rendered_name, source, globals_, rendered_global):
        """``source`` with its name and globals renamed; its imports and constants
        go to the module's lists."""
        mapping = {name: rendered_name}
        for gname, (gkind, value) in sorted(globals_.items()):
            if gkind == "module" and gname == value.split(".")[-1] and "." not in value:
                line = f"import {value}"
            else:
                mapping[gname] = rendered_global(gname)
                line = (f"import {value} as {mapping[gname]}" if gkind == "module"
                        else f"{mapping[gname]} = {value}")
            if gkind == "module":
                if line not in seen_imports and line not in ("import math", "import numpy as np"):
                    seen_imports.add(line)
                    user_imports.append(line)
            else:
                user_constants.append(line)
        return rename_tokens(source, mapping).rstrip() + "\n"

    event_functions, _ = unique_functions(events)
    emitted = set()  # helpers shared by several plugins are rendered once (equal names: equal code)
    for fn in list(functions) + event_functions:
        helpers = []
        for h in getattr(fn, "helpers", ()):
            if h.rendered_name not in emitted:
                emitted.add(h.rendered_name)
                helpers.append(rendered(h.name, h.rendered_name, h.source, h.globals_,
                                        lambda gname, h=h: f"{h.rendered_name}__{gname}"))
        user_functions.append({
            "kind": fn.kind, "name": fn.name, "origin": fn.origin,
            "rendered_name": fn.rendered_name, "helpers": helpers,
            "source": rendered(fn.name, fn.rendered_name, fn.source, fn.globals_,
                               fn.rendered_global),
        })

    context = dict(
        template_name=TEMPLATE_NAME, template_hash=template_hash, target=target, ndim=ndim,
        norm_dim=ndim if norm_dim is None else norm_dim, recording=int(bool(recording)),
        rhs_names=[fn.name for fn in functions], user_imports=user_imports,
        event_names=[fn.name for fn in event_functions], n_event_slots=len(events),
        core_constants=core_constants, core_functions=core_functions,
        user_constants=user_constants, user_functions=user_functions,
        device_decorator=style["device"], kernel_decorator=style["kernel"],
        inline_decorator=style["inline"], inlined=INLINED,
        helper_decorator=style["helper"], target_imports=style["imports"],
        local_array=lambda shape, dtype: style["local"].format(shape=shape, dtype=dtype),
    )
    body = template.render(content_hash="@@HASH@@", **context)
    content_hash = hashlib.sha256(body.encode()).hexdigest()[:20]
    return body.replace("@@HASH@@", content_hash), content_hash


def _write_once(path, text):
    """Write ``text`` to ``path`` atomically unless it is already there.

    An existing file is never rewritten: its mtime keys numba's on-disk cache. Two
    processes rendering at once both write a temporary file and rename it into place;
    the contents are equal, so either rename wins.
    """
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_module(target, ndim, functions, events=(), norm_dim=None, recording=False):
    """The imported generated module for this target, dimension and plugin set
    (``norm_dim``, ``recording``: see :func:`render_source`)."""
    key = (target, ndim, norm_dim, bool(recording), tuple(fn.key for fn in functions),
           tuple(fn.key for fn in unique_functions(events)[0]), len(events))
    with _lock:
        module = _modules.get(key)
        if module is not None:
            return module
        if target == "cuda":
            from . import cuda_support

            cuda_support.apply_simulator_workarounds()
        text, content_hash = render_source(target, ndim, functions, events, norm_dim, recording)
        stem = f"{MODULE_PREFIX}{target}_n{ndim}_{content_hash}"
        path = cache_dir() / f"{stem}.py"
        _write_once(path, text)
        module = sys.modules.get(stem)
        if module is None:
            spec = importlib.util.spec_from_file_location(stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[stem] = module
            try:
                with _compile_lock(path):
                    spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[stem]
                raise
        _modules[key] = module
        return module


@contextlib.contextmanager
def _compile_lock(path):
    """Let one process at a time compile the generated module at ``path``.

    Workaround: numba's disk cache is not safe against processes compiling the same
    gufunc at once: the kernel's cache files and its wrapper's (``guf-*``) can then come
    from different processes, and every later load segfaults (numba/numba#10128). Dask
    workers and parallel test runs on a cold cache do just that. Once the wrapper's
    index is there the cache is complete and loading needs no lock. POSIX only
    (``fcntl``); elsewhere there is no lock.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    complete = any((path.parent / "__pycache__").glob(f"guf-{path.stem}.*.nbi"))
    if fcntl is None or complete:
        yield
        return
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
