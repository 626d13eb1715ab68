"""Calling user functions by address: the linked kernels of the cpu and parallel targets.

A rendered module with the user's functions inlined into the step (``render.py``)
runs fastest, but compiling it takes seconds to minutes, for every new function. The
linked path compiles the numerical core once per target and state dimension, with
dispatchers that call a right-hand side or event function through its address (the
``handle`` the core passes on), and each user function alone as a ``numba.cfunc``
(a fraction of a second) in a small module of its own. Both are cached on disk.
The arithmetic is the same, so the results are bitwise those of the inlined kernel;
only the calls cost more per step (benchmarks/README.md, "First call").

The C signatures the two sides agree on, :data:`C_SIGNATURES` (:data:`RHS_SIGNATURE`,
:data:`EVENT_SIGNATURE`), are made from the parameters of each kind of user function
(:data:`batchivp.source.SIGNATURES`): the time as a float64, the data of each array
(``y``, ``p``, and ``dydt``), the problem's ``istate`` row (written by index checks,
``core/access.py``) and the arrays' lengths (of ``y`` and ``p``). The core's arrays
are contiguous rows (the host passes contiguous arrays, ``abi.py``), so a pointer and
a length describe each. CUDA has no function pointers: it keeps the inlined kernel.

Those are the float64 kernel's signatures; a kernel of another precision
(:class:`batchivp.abi.Precision`) passes its ``real`` dtype where these have float64,
and its ``stage`` dtype for ``dydt`` (:func:`c_signature`): each plugin compiles one
C function per precision it is used in, and the intrinsics read the precision from
the arrays the core hands them.
"""

import inspect

from llvmlite import ir
from numba.core import errors, types
from numba.extending import intrinsic

from . import abi
from .source import SIGNATURES

ISTATE = "istate"  # the name of the argument after the user function's own ones


def _return_type(signature, precision=abi.FLOAT64):
    """The numba type a user function of ``signature`` returns in ``precision`` (void:
    none; a value: the precision's ``real`` dtype)."""
    return types.void if signature.returns is None else getattr(types, precision.real)


def function_signature(kind):
    """The numba signature of a user function of ``kind`` itself: a float64 per scalar
    parameter, a 1-d float64 array per array (what the registry's trial compile uses)."""
    signature = SIGNATURES[kind]
    return _return_type(signature)(*[types.float64 if p.length is None else types.float64[:]
                                     for p in signature.parameters])


def _c_signature(signature, precision=abi.FLOAT64):
    """The numba signature of the C function of a user function of ``signature``
    (:class:`batchivp.source.Signature`) in ``precision``: the precision's ``real`` type
    per scalar parameter, a pointer to it per array (to its ``stage`` type for a stage),
    a pointer to int64 for ``istate``, an int64 per array length."""
    real, stage = getattr(types, precision.real), getattr(types, precision.stage)
    args = [real if p.length is None else types.CPointer(stage if p.stage else real)
            for p in signature.parameters]
    args += [types.CPointer(types.int64)] + [types.int64] * len(signature.lengths)
    return _return_type(signature, precision)(*args)


def c_signature(kind, precision="float64"):
    """The numba signature of the C function of a user function of ``kind`` in
    ``precision`` (a :class:`batchivp.abi.Precision` or its name)."""
    precision = abi.PRECISIONS.get(precision, precision)
    return _c_signature(SIGNATURES[kind], precision)


C_SIGNATURES = {kind: _c_signature(signature) for kind, signature in SIGNATURES.items()}
RHS_SIGNATURE = C_SIGNATURES["rhs"]
EVENT_SIGNATURE = C_SIGNATURES["event"]


def _precision_of(kind, arg_types):
    """The precision whose C signature of ``kind`` takes the user function's arguments
    of ``arg_types`` (numba types, in the kind's order), or a TypingError: the core
    handing a user function other dtypes than its C function takes is a bug."""
    for precision in abi.PRECISIONS.values():
        expected = _c_signature(SIGNATURES[kind], precision).args
        if all((a.dtype if isinstance(a, types.Array) else a)
               == (e.dtype if isinstance(e, types.CPointer) else e)
               for a, e in zip(arg_types, expected)):
            return precision
    raise errors.TypingError(f"call_{kind}_at: arguments {arg_types} match the C signature "
                             "of no precision (linking.c_signature)")


def c_parameters(kind):
    """The parameter names of the C function of ``kind``, in order: the user
    function's, ``istate``, then the arrays' lengths."""
    signature = SIGNATURES[kind]
    return signature.names + (ISTATE,) + signature.lengths


def _c_function_type(context, c_signature):
    """The LLVM type of a ``numba.cfunc`` of ``c_signature`` as numba's C wrapper
    declares it (``create_cfunc_wrapper`` in numba/core/cpu.py): each type's value type,
    so a void function returns a pointer. Derived, not written again, so the caller
    cannot disagree with the cfunc."""
    return ir.FunctionType(context.get_value_type(c_signature.return_type),
                           [context.get_value_type(a) for a in c_signature.args])


def _call_at(context, builder, signature, args, kind):
    """Call the C function of ``kind`` at address ``args[0]`` with the user function's
    arguments that follow (each array as its data pointer), ``istate``'s data pointer
    and the length of the first array of each length."""
    parameters = SIGNATURES[kind].parameters
    precision = _precision_of(kind, signature.args[1:1 + len(parameters)])
    values, lengths = [], {}
    for parameter, ty, value in zip(parameters + (None,), signature.args[1:], args[1:]):
        if parameter is not None and parameter.length is None:
            values.append(value)
            continue
        array = context.make_array(ty)(context, builder, value)
        values.append(array.data)
        if parameter is not None and parameter.length not in lengths:
            lengths[parameter.length] = builder.extract_value(array.shape, 0)
    fn_type = _c_function_type(context, c_signature(kind, precision))
    function = builder.inttoptr(args[0], fn_type.as_pointer())
    return builder.call(function, values + [lengths[name] for name in SIGNATURES[kind].lengths])


def _caller(kind):
    """The intrinsic ``call_<kind>_at(address, <the kind's parameters>, istate)``: the
    user function of ``kind`` whose C function is at ``address``. Its parameters come
    from the table (``__signature__``, which numba reads as the intrinsic's)."""
    signature = SIGNATURES[kind]

    def call_at(typingctx, address, *args):
        def codegen(context, builder, sig, values):
            result = _call_at(context, builder, sig, values, kind)
            return context.get_dummy_value() if signature.returns is None else result

        precision = _precision_of(kind, args[:len(signature.parameters)])
        return _return_type(signature, precision)(address, *args), codegen

    names = ("typingctx", "address") + signature.names + (ISTATE,)
    call_at.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    call_at.__name__ = call_at.__qualname__ = f"call_{kind}_at"
    call_at.__doc__ = (f"``{kind}({signature.text})`` of the {kind} function whose C "
                       "function is at ``address``.")
    return intrinsic(call_at)


call_rhs_at = _caller("rhs")
call_event_at = _caller("event")
