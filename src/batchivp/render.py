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
import threading
import time
from pathlib import Path

import jinja2

from . import abi, bounds, cache, core, targets
from .cache import CACHE_ENV_VAR, MODULE_PREFIX, cache_dir  # noqa: F401 (the names render had)
from .registry import rename_tokens

TEMPLATE_NAME = "kernel.py.j2"
CORE_FILES = ("coefficients.py", "dop853.py", "access.py", "events.py", "driver.py")
LOCK_NOTICE_SECONDS = 5.0  # a compile-lock wait longer than this says what it waits for

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

    event_functions, _ = unique_functions(events)
    # Indices the analysis could not bound are checked at run time (the bounds package).
    plan = bounds.rewrite_plan(list(functions) + event_functions)

    def rendered(name, rendered_name, source, globals_, rendered_global, plan_name):
        """``source`` with its unbounded indices checked, its name and globals renamed;
        its imports and constants go to the module's lists."""
        if plan_name in plan:
            source = bounds.instrument(source, name, *plan[plan_name])
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

    emitted = set()  # helpers shared by several plugins are rendered once (equal names: equal code)
    for fn in list(functions) + event_functions:
        helpers = []
        for h in getattr(fn, "helpers", ()):
            if h.rendered_name not in emitted:
                emitted.add(h.rendered_name)
                helpers.append(rendered(h.name, h.rendered_name, h.source, h.globals_,
                                        lambda gname, h=h: f"{h.rendered_name}__{gname}",
                                        h.rendered_name))
        user_functions.append({
            "kind": fn.kind, "name": fn.name, "origin": fn.origin,
            "rendered_name": fn.rendered_name, "helpers": helpers,
            "checked": fn.name in plan and plan[fn.name][2],
            "source": rendered(fn.name, fn.rendered_name, fn.source, fn.globals_,
                               fn.rendered_global, fn.name),
        })

    context = dict(
        template_name=TEMPLATE_NAME, template_hash=template_hash, target=target, ndim=ndim,
        norm_dim=ndim if norm_dim is None else norm_dim, recording=int(bool(recording)),
        index_checks=int(any(takes for _, _, takes in plan.values())),
        rhs_names=[fn.name for fn in functions], user_imports=user_imports,
        event_names=[fn.name for fn in event_functions], n_event_slots=len(events),
        core_constants=core_constants, core_functions=core_functions,
        user_constants=user_constants, user_functions=user_functions,
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


def _write_once(path, text):
    """Write ``text`` to ``path`` atomically unless it is already there.

    An existing file is never rewritten: its mtime keys numba's on-disk cache (a
    damaged one is replaced by :func:`cache.replace_damaged_module`). Two processes
    rendering at once both write a temporary file and rename it into place; the
    contents are equal, so either rename wins.
    """
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.write_atomic(path, text)


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
            targets.apply_simulator_workarounds()
        if target == "parallel":
            targets.use_fork_safe_threading_layer()
        text, content_hash = render_source(target, ndim, functions, events, norm_dim, recording)
        stem = f"{MODULE_PREFIX}{target}_n{ndim}_{content_hash}"
        module = sys.modules.get(stem)
        if module is None:
            module = _import_generated(cache.usable_cache_dir() / f"{stem}.py", text)
        _modules[key] = module
        return module


def _import_generated(path, text):
    """Write (or heal) the generated module ``text`` at ``path`` and import it.

    A file that does not hold ``text`` is damaged (its name is ``text``'s hash) and is
    replaced; numba's cache files that fail to load are removed and the module is
    compiled again (:mod:`batchivp.cache`), each with one warning. The module is
    compiled from ``text``, not from a ``.pyc``: that is one cache file less to go bad.
    """
    _write_once(path, text)
    if not cache.module_file_intact(path, text):
        with _compile_lock(path, always=True):
            if not cache.module_file_intact(path, text):  # else another process healed it
                cache.replace_damaged_module(path, text)
    stem, healed = path.stem, set()
    while True:
        spec = importlib.util.spec_from_file_location(stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[stem] = module
        try:
            with _compile_lock(path, always=bool(healed)):
                exec(compile(text, str(path), "exec", dont_inherit=True), module.__dict__)
            return module
        except Exception as exc:
            del sys.modules[stem]
            with _compile_lock(path, always=True):
                removed = set(cache.remove_damaged_numba_files(path, exc))
            if not removed - healed:
                raise
            healed |= removed
        except BaseException:
            del sys.modules[stem]
            raise


@contextlib.contextmanager
def _compile_lock(path, always=False):
    """Let one process at a time compile the generated module at ``path``.

    Workaround: numba's disk cache is not safe against processes compiling the same
    gufunc at once: the kernel's cache files and its wrapper's (``guf-*``) can then come
    from different processes, and every later load segfaults (numba/numba#10128). Dask
    workers and parallel test runs on a cold cache do just that. Once the wrapper's
    index is there the cache is complete and loading needs no lock (unless ``always``:
    healing a damaged cache). POSIX only (``fcntl``); elsewhere there is no lock.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    complete = not always and any((path.parent / "__pycache__").glob(f"guf-{path.stem}.*.nbi"))
    if fcntl is None or complete:
        yield
        return
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as handle:
        _wait_for_lock(fcntl, handle, path, lock_path)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # who holds it, for those who wait
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_lock(fcntl, handle, path, lock_path):
    """Take the exclusive lock on ``handle``. A wait longer than
    :data:`LOCK_NOTICE_SECONDS` prints one line on stderr naming the module, the lock
    file and the process holding it. Polls (``LOCK_NB``), so Ctrl-C interrupts the
    wait at once in any thread that gets it."""
    start, told = time.monotonic(), False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not told and time.monotonic() - start > LOCK_NOTICE_SECONDS:
            told = True
            print(f"batchivp: waiting for {_lock_holder(lock_path)} to finish compiling "
                  f"{path.name} (lock file {lock_path}); compiles take seconds to minutes",
                  file=sys.stderr, flush=True)
        time.sleep(0.05)


def _lock_holder(lock_path):
    """``"process 1234"`` (the pid the holder wrote, if that process runs), else
    ``"another process"``."""
    try:
        pid = int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return "another process"
    return f"process {pid}"
