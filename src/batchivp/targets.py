"""Which compilation target a call uses: ``target=`` if given, else ``BATCHIVP_TARGET``.

``cpu``: one core. ``parallel``: all cores (numba's parallel gufunc). ``cuda``: one
thread per problem on an NVIDIA GPU (or the numba CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1``). ``auto``: cuda if a real GPU is usable, else parallel.
``python`` is internal: the same generated module undecorated, the test oracle.
"""

import functools
import os
import sys
import threading
import warnings

PUBLIC_TARGETS = ("cpu", "parallel", "cuda", "auto")
INTERNAL_TARGETS = ("python",)
ENV_VAR = "BATCHIVP_TARGET"
DEFAULT_TARGET = "auto"


def resolve_target(target=None):
    """Return the concrete target (``cpu``, ``parallel``, ``cuda`` or ``python``).

    Raises ``ValueError`` naming the valid values for a bad ``target=`` or
    ``BATCHIVP_TARGET``, and ``RuntimeError`` when cuda is asked for but not usable.
    """
    if target is None:
        source = f"the environment variable {ENV_VAR}"
        target = os.environ.get(ENV_VAR, DEFAULT_TARGET).strip().lower() or DEFAULT_TARGET
    else:
        source = "target="
        if not isinstance(target, str):
            raise TypeError(f"target= must be a string, one of {', '.join(PUBLIC_TARGETS)}; "
                            f"got {type(target).__name__}")
        target = target.strip().lower()
    if target not in PUBLIC_TARGETS + INTERNAL_TARGETS:
        raise ValueError(f"{source} is {target!r}; valid targets are "
                         f"{', '.join(repr(t) for t in PUBLIC_TARGETS)}")
    if target == "auto":
        return "cuda" if cuda_usable() else "parallel"
    if target == "cuda":
        reason = cuda_unusable_reason()
        if reason is not None:
            raise RuntimeError(
                f"target 'cuda' is not usable here: {reason}. Install the extra "
                "(pip install 'batchivp[cuda]') on a machine with an NVIDIA GPU, set "
                "NUMBA_ENABLE_CUDASIM=1 to run the CUDA simulator, or choose "
                "target='parallel'")
    return target


def simulator_enabled():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def cuda_unusable_reason():
    """``None`` if the cuda target can run (GPU or simulator), else why not."""
    try:
        from numba import cuda
    except ImportError as exc:  # numba-cuda missing
        return f"numba's CUDA support cannot be imported ({exc})"
    if simulator_enabled():
        return None
    try:
        if not cuda.is_available():
            return "no CUDA driver or GPU was found"
    except Exception as exc:  # the driver can fail in many ways
        return f"the CUDA driver failed ({exc})"
    return None


def cuda_usable():
    """True when a real GPU is usable (the simulator does not count for ``auto``)."""
    return not simulator_enabled() and cuda_unusable_reason() is None


# ---- the parallel target's threading layer ----
# numba runs target="parallel" kernels on a threading layer chosen when its threads
# start: "tbb", "omp" or "workqueue" (numba's docs, "The Threading Layers"). On Linux
# "omp" is GNU OpenMP, which is not fork-safe: after one parallel solve, a
# multiprocessing fork pool hangs or its children abort ("Terminating: fork() called
# from a process already using GNU OpenMP"). "workqueue" is fork-safe but not
# thread-safe: two threads launching kernels at once (Dask's threads do) abort the
# process. "tbb" is both; numba calls it "safe". batchivp depends on the tbb package
# where it has wheels and selects it, unless the user chose a layer.
THREADING_ENV_VAR = "NUMBA_THREADING_LAYER"
_TBB_LIBRARY = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}
_TBB_MIN_INTERFACE = 12060  # numba's minimum, TBB 2021 update 6
_layer_lock = threading.Lock()
_layer_chosen = False


def use_fork_safe_threading_layer():
    """Have numba's parallel target run on TBB (``"safe"``: fork- and thread-safe), when
    TBB loads and numba's threads have not started; leave a layer the user chose
    (``NUMBA_THREADING_LAYER``, ``numba.config.THREADING_LAYER``, numba's config file)
    alone. Call before a parallel kernel is compiled or loaded; once per process."""
    global _layer_chosen
    with _layer_lock:
        if _layer_chosen:
            return
        _layer_chosen = True
        from numba.core import config
        from numba.np.ufunc import parallel

        os.register_at_fork(before=_warn_fork_unsafe_layer)

        def chosen():  # started, or chosen by the user
            return (parallel._is_initialized or os.environ.get(THREADING_ENV_VAR)
                    or str(config.THREADING_LAYER).lower() != "default")

        if chosen():
            return
        # A compile reloads numba's config when NUMBA_* variables changed since the last
        # reload, which would undo our choice: reload now, so it has nothing to undo.
        config.reload_config()
        if not chosen() and _load_tbb():
            config.THREADING_LAYER = "safe"


def _load_tbb():
    """Load TBB's library where numba's ``tbbpool`` will look for it; True if it can
    serve numba.

    Workaround: pip installs ``libtbb.so.12`` into ``<prefix>/lib``, which the dynamic
    loader does not search in a virtual environment or a user install, so numba
    finds no TBB (numba/numba#6108). Loaded by path first, the library is found by its
    name afterwards."""
    import ctypes
    import importlib.metadata

    name = _TBB_LIBRARY.get(sys.platform)
    if name is None:
        return False
    try:
        files = importlib.metadata.files("tbb") or ()
    except importlib.metadata.PackageNotFoundError:
        files = ()
    paths = [str(f.locate()) for f in files if f.name == name] + [name]
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            version = library.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        if version() < _TBB_MIN_INTERFACE:
            return False
        try:
            from numba.np.ufunc import tbbpool  # noqa: F401 (numba's TBB layer links)
        except ImportError:
            return False
        return True
    return False


def _warn_fork_unsafe_layer():
    """Before a fork: warn when numba's threads run on GNU OpenMP, which the child
    inherits broken."""
    from numba.np.ufunc import parallel

    if parallel._is_initialized and parallel._threading_layer == "omp" and sys.platform == "linux":
        warnings.warn(
            "fork() after batchivp's parallel target ran on numba's 'omp' threading layer "
            "(GNU OpenMP, not fork-safe): the child may hang or abort. Install tbb "
            "(pip install tbb) and leave NUMBA_THREADING_LAYER unset or set it to 'safe', "
            "or start processes with multiprocessing's 'spawn' or 'forkserver'.",
            RuntimeWarning, stacklevel=2)


def apply_simulator_workarounds():
    """Make numba-cuda's gufunc machinery run under ``NUMBA_ENABLE_CUDASIM=1``.

    Workaround: ``guvectorize(target="cuda")`` calls ``numba.cuda.is_cuda_array``,
    which the simulator module lacks in numba-cuda 0.30 (its ``api.py`` defines it,
    ``simulator/api.py`` does not; numba/numba#7505). We give it the simulator's own
    test for a device array (``FakeCUDAArray`` has no ``__cuda_array_interface__``), so
    device arrays passed to the gufunc are used in place, as on a GPU. The other gap,
    broadcasting a gufunc input (numba/numba#5640), is avoided by the host passing
    full-size arrays to the kernel (``host_loop``).
    """
    if not simulator_enabled():
        return
    from numba import cuda

    if not hasattr(cuda, "is_cuda_array"):
        from numba.cuda.simulator.cudadrv.devicearray import is_cuda_ndarray

        cuda.is_cuda_array = is_cuda_ndarray
