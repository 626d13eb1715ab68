"""Calling user functions by address: the linked kernels of the cpu and parallel targets.

A rendered module with the user's functions inlined into the step (``render.py``)
runs fastest, but compiling it takes seconds to minutes, for every new function. The
linked path compiles the numerical core once per target and state dimension, with
dispatchers that call a right-hand side or event function through its address (the
``handle`` the core passes on), and each user function alone as a ``numba.cfunc``
(a fraction of a second) in a small module of its own. Both are cached on disk.
The arithmetic is the same, so the results are bitwise those of the inlined kernel;
only the calls cost more per step (benchmarks/README.md, "First call").

The C signatures the two sides agree on are :data:`RHS_SIGNATURE` and
:data:`EVENT_SIGNATURE`: the time, the data of ``y``, ``p`` (and ``dydt``), the
problem's ``istate`` row (written by index checks, ``core/access.py``) and the
lengths of ``y`` and ``p``. The core's arrays are contiguous rows (the host passes
contiguous arrays, ``abi.py``), so a pointer and a length describe each. CUDA has no
function pointers: it keeps the inlined kernel.
"""

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

RHS_SIGNATURE = types.void(types.float64, types.CPointer(types.float64),
                           types.CPointer(types.float64), types.CPointer(types.float64),
                           types.CPointer(types.int64), types.int64, types.int64)
EVENT_SIGNATURE = types.float64(types.float64, types.CPointer(types.float64),
                                types.CPointer(types.float64), types.CPointer(types.int64),
                                types.int64, types.int64)


def _c_function_type(context, c_signature):
    """The LLVM type of a ``numba.cfunc`` of ``c_signature`` as numba's C wrapper
    declares it (``create_cfunc_wrapper`` in numba/core/cpu.py): each type's value type,
    so a void function returns a pointer. Derived, not written again, so the caller
    cannot disagree with the cfunc."""
    return ir.FunctionType(context.get_value_type(c_signature.return_type),
                           [context.get_value_type(a) for a in c_signature.args])


def _call_at(context, builder, signature, args, c_signature):
    """Call the C function of ``c_signature`` at address ``args[0]`` with the time
    ``args[1]``, the data pointers of the arrays that follow, and the lengths of the
    first two arrays."""
    fn_type = _c_function_type(context, c_signature)
    arrays = [context.make_array(ty)(context, builder, value)
              for ty, value in zip(signature.args[2:], args[2:])]
    lengths = [builder.extract_value(a.shape, 0) for a in arrays[:2]]
    function = builder.inttoptr(args[0], fn_type.as_pointer())
    return builder.call(function, [args[1]] + [a.data for a in arrays] + lengths)


@intrinsic
def call_rhs_at(typingctx, address, t, y, p, dydt, istate):
    """``fun(t, y, p, dydt)`` of the right-hand side whose cfunc is at ``address``."""
    def codegen(context, builder, signature, args):
        _call_at(context, builder, signature, args, RHS_SIGNATURE)
        return context.get_dummy_value()

    return types.void(address, t, y, p, dydt, istate), codegen


@intrinsic
def call_event_at(typingctx, address, t, y, p, istate):
    """``event(t, y, p)`` of the event function whose cfunc is at ``address``."""
    def codegen(context, builder, signature, args):
        return _call_at(context, builder, signature, args, EVENT_SIGNATURE)

    return types.float64(address, t, y, p, istate), codegen
