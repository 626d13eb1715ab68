"""Which compilation target a call uses: ``target=`` if given, else ``BATCHIVP_TARGET``.

``cpu``: one core. ``parallel``: all cores (numba's parallel gufunc). ``cuda``: one
thread per problem on an NVIDIA GPU (or the numba CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1``). ``auto``: cuda if a real GPU is usable, else parallel.
``python`` is internal: the same generated module undecorated, the test oracle.
"""

import functools
import os

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
