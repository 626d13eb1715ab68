"""The right-hand side registry: handles, checks at registration, globals.

Every function registered here is named ``reg_*`` (the registry is process-global and
keyed by name). Functions given to ``@bi.rhs`` are defined at module level so that
``inspect.getsource`` finds them; most are registered inside the tests, so that a
failure stays local to its test. Lines that registration must reject carry a
``# forbidden: <name>`` comment: the tests look up their line numbers in this file.
"""

import ast
import math
import re
import time

import numpy as np
import pytest

import batchivp as bi
from batchivp import registry
from batchivp.registry import RegistrationError

THIS_FILE = __file__


def _line_of(name):
    """Line number (1-based) in this file of the line marked ``# forbidden: name``."""
    marker = "# forbidden: " + name
    with open(THIS_FILE) as handle:
        hits = [i for i, line in enumerate(handle, 1) if line.rstrip().endswith(marker)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


# ---- well-formed right-hand sides ----

REG_K = 2.0
REG_RATES = (1.0, 9.0)


def reg_plain(t, y, p, dydt):
    dydt[0] = p[0] * y[1] + t
    dydt[1] = -y[0]


def reg_plain_other(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0]


def reg_decay_globals(t, y, p, dydt):
    dydt[0] = -REG_K * y[0]
    dydt[1] = -math.sqrt(REG_RATES[1]) * y[1]


@bi.rhs
def reg_decorated(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]


# ---- wrong arity ----

def reg_three_args(t, y, p):
    pass


def reg_five_args(t, y, p, dydt, extra):
    dydt[0] = extra


def reg_star_args(t, y, *args):
    pass


def reg_default_arg(t, y, p, dydt=None):
    dydt[0] = 0.0


def reg_keyword_only(t, y, p, *, dydt):
    dydt[0] = 0.0


# ---- constructs device code cannot run ----

def reg_raise(t, y, p, dydt):
    dydt[0] = y[0]
    if y[0] < 0:
        raise ValueError("negative")  # forbidden: reg_raise


def reg_assert(t, y, p, dydt):
    assert y[0] >= 0  # forbidden: reg_assert
    dydt[0] = y[0]


def reg_try(t, y, p, dydt):
    dydt[0] = 0.0
    try:  # forbidden: reg_try
        dydt[0] = 1.0 / y[0]
    except ZeroDivisionError:
        dydt[0] = 0.0


def reg_list_literal(t, y, p, dydt):
    k = 2.0
    c = [k, 1.0]  # forbidden: reg_list_literal
    dydt[0] = c[0] * y[0]


def reg_list_comprehension(t, y, p, dydt):
    s = sum([v * v for v in y])  # forbidden: reg_list_comprehension
    dydt[0] = s


def reg_np_zeros(t, y, p, dydt):
    tmp = np.zeros(2)  # forbidden: reg_np_zeros
    dydt[0] = tmp[0]


def _identity(func):
    return func


@_identity
@_identity
def reg_decorated_raise(t, y, p, dydt):
    """A docstring, then a forbidden line."""
    dydt[0] = y[0]
    raise RuntimeError("no")  # forbidden: reg_decorated_raise


def reg_return_value(t, y, p, dydt):
    dydt[0] = -y[0]
    return dydt  # forbidden: reg_return_value


# ---- globals ----

REG_ARRAY = np.ones(2)
REG_TABLE = {"k": 1.0}
REG_LABEL = "decay"


def reg_helper(x):
    return 2.0 * x


def reg_array_global(t, y, p, dydt):
    dydt[0] = REG_ARRAY[0] * y[0]


def reg_dict_global(t, y, p, dydt):
    dydt[0] = REG_TABLE["k"] * y[0]


def reg_str_global(t, y, p, dydt):
    dydt[0] = len(REG_LABEL) * y[0]


def reg_function_global(t, y, p, dydt):
    dydt[0] = reg_helper(y[0])


def reg_undefined_name(t, y, p, dydt):
    dydt[0] = reg_nowhere_defined * y[0]  # noqa: F821


# ---- bodies numba cannot compile ----

def reg_time_call(t, y, p, dydt):
    dydt[0] = time.time()


def reg_array_attribute(t, y, p, dydt):
    dydt[0] = y.no_such_attribute


def reg_open_call(t, y, p, dydt):
    dydt[0] = open("reg_nothing.txt")


# =====================================================================================
# identity (dispatcher handles belong to the rendered module: test_render.py)
# =====================================================================================

def test_registration_returns_a_registered_rhs_function():
    f = bi.rhs(reg_plain)
    assert isinstance(f, bi.RhsFunction)
    assert f.name == "reg_plain"
    assert registry.registered()["reg_plain"] is f
    assert "'reg_plain'" in repr(f) and f.key in repr(f)


def test_reregistering_returns_same_object():
    f = bi.rhs(reg_plain)
    bi.rhs(reg_plain_other)  # another registration in between changes nothing
    again = bi.rhs(reg_plain)
    assert again is f
    assert bi.rhs(f) is f  # decorating a registered function is a no-op


def test_decorator_result_is_registered_and_idempotent():
    assert isinstance(reg_decorated, bi.RhsFunction)
    assert registry.registered()["reg_decorated"] is reg_decorated
    assert bi.rhs(reg_decorated.py_func) is reg_decorated
    assert bi.rhs(reg_decorated) is reg_decorated


def test_different_functions_get_different_keys_and_rendered_names():
    fs = [bi.rhs(reg_plain), bi.rhs(reg_plain_other), reg_decorated,
          bi.register_rhs("def reg_src_handle(t, y, p, dydt):\n    dydt[0] = 0.0\n")]
    assert len({f.key for f in fs}) == len({f.rendered_name for f in fs}) == len(fs)


def test_register_rhs_same_source_returns_same_object():
    src = "import math\n\ndef reg_src_same(t, y, p, dydt):\n    dydt[0] = math.cos(t)\n"
    f = bi.register_rhs(src)
    g = bi.register_rhs(src)
    assert g is f
    assert f.name == "reg_src_same"


def test_duplicate_name_with_different_source_is_rejected():
    first = bi.register_rhs("def reg_dup(t, y, p, dydt):\n    dydt[0] = 1.0\n")
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_dup' .*a different rhs named 'reg_dup' is already registered"):
        bi.register_rhs("def reg_dup(t, y, p, dydt):\n    dydt[0] = 2.0\n")
    # The first registration is untouched.
    assert registry.registered()["reg_dup"] is first
    dydt = np.zeros(1)
    first(0.0, np.zeros(1), np.zeros(1), dydt)
    assert dydt[0] == 1.0


def test_duplicate_name_with_different_globals_is_rejected():
    first = bi.register_rhs("C = 1.0\ndef reg_dup_global(t, y, p, dydt):\n    dydt[0] = C\n")
    with pytest.raises(RegistrationError, match=r"'reg_dup_global'.*already registered"):
        bi.register_rhs("C = 5.0\ndef reg_dup_global(t, y, p, dydt):\n    dydt[0] = C\n")
    assert registry.registered()["reg_dup_global"] is first


# =====================================================================================
# still plain Python
# =====================================================================================

def test_registered_function_is_callable_as_plain_python():
    f = bi.rhs(reg_plain)
    y = np.array([1.5, -2.0])
    p = np.array([3.0])
    dydt = np.full(2, np.nan)
    assert f(0.25, y, p, dydt) is None
    np.testing.assert_array_equal(dydt, [3.0 * -2.0 + 0.25, -1.5])

    dydt = np.full(1, np.nan)
    reg_decorated(0.0, np.array([4.0]), np.array([0.5]), dydt)
    np.testing.assert_array_equal(dydt, [-2.0])


# =====================================================================================
# signature
# =====================================================================================

@pytest.mark.parametrize("func, takes", [
    (reg_three_args, "t, y, p"),
    (reg_five_args, "t, y, p, dydt, extra"),
    (reg_star_args, "t, y, *args"),
    (reg_default_arg, "t, y, p, dydt=None"),
    (reg_keyword_only, "t, y, p, *, dydt"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_wrong_arity_is_rejected(func, takes):
    name = func.__name__
    with pytest.raises(RegistrationError,
                       match=rf"rhs '{name}' .*must take exactly 4 positional arguments "
                             rf"\(t, y, p, dydt\) with no defaults, \*args or keywords; "
                             rf"it takes \({re.escape(takes)}\)"):
        bi.rhs(func)
    assert name not in registry.registered()


def test_wrong_arity_from_source_is_rejected():
    with pytest.raises(RegistrationError, match=r"rhs 'reg_src_arity' .*must take exactly 4"):
        bi.register_rhs("def reg_src_arity(t, y, dydt):\n    dydt[0] = 0.0\n")


# =====================================================================================
# forbidden constructs: named function, this file, the offending line
# =====================================================================================

@pytest.mark.parametrize("func, what", [
    (reg_raise, "'raise'"),
    (reg_assert, "'assert'"),
    (reg_try, "'try'"),
    (reg_list_literal, "a list"),
    (reg_list_comprehension, "a list comprehension"),
    (reg_np_zeros, "a call to zeros() (allocation)"),
    (reg_return_value, "'return <value>'"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_forbidden_construct_names_function_and_line(func, what):
    name = func.__name__
    line = _line_of(name)
    with pytest.raises(RegistrationError,
                       match=rf"rhs '{name}' \(.*test_registry\.py:\d+\): line {line} uses "
                             rf"{re.escape(what)}[ ,]"):
        bi.rhs(func)
    assert name not in registry.registered()


def test_forbidden_construct_line_counts_decorator_lines():
    # inspect.getsource includes the decorators: the reported line is still the file's.
    line = _line_of("reg_decorated_raise")
    with pytest.raises(RegistrationError,
                       match=rf"rhs 'reg_decorated_raise' \(.*test_registry\.py:\d+\): "
                             rf"line {line} uses 'raise'"):
        bi.rhs(reg_decorated_raise)


@pytest.mark.parametrize("body, what", [
    ("    raise ValueError('x')\n", "'raise'"),
    ("    assert t > 0\n", "'assert'"),
    ("    dydt[0] = [t][0]\n", "a list"),
    ("    dydt[0] = sum([v for v in y])\n", "a list comprehension"),
    ("    dydt[0] = np.zeros(1)[0]\n", "a call to zeros()"),
    ("    return 1.0\n", "'return <value>'"),
    ("    with open('x') as f:\n        pass\n", "'with'"),
    ("    dydt[0] = {'a': t}['a']\n", "a dict"),
    ("    dydt[0] = f'{t}'\n", "an f-string"),
    ("    g = lambda x: x\n    dydt[0] = g(t)\n", "a lambda"),
], ids=["raise", "assert", "list", "listcomp", "np.zeros", "return", "with", "dict",
        "f-string", "lambda"])
def test_forbidden_construct_from_source(body, what):
    name = "reg_src_forbidden_" + re.sub(r"\W", "", what)
    # The def is the first line of the text, so the def's line 3 is the text's line 3.
    src = f"def {name}(t, y, p, dydt):\n    dydt[0] = t\n" + body
    with pytest.raises(RegistrationError, match=rf"rhs '{name}' .*line 3 uses {re.escape(what)}[ ,]"):
        bi.register_rhs(src)
    assert name not in registry.registered()


def test_forbidden_construct_line_counts_from_start_of_source():
    src = ("import math\n"                         # 1
           "K = 1.0\n"                             # 2
           "\n"                                    # 3
           "def reg_src_raise_after_prelude(t, y, p, dydt):\n"  # 4
           "    dydt[0] = K * math.cos(t)\n"       # 5
           "    raise ValueError('x')\n")          # 6
    with pytest.raises(RegistrationError, match=r"'reg_src_raise_after_prelude'.*line 6 uses 'raise'"):
        bi.register_rhs(src)


# =====================================================================================
# globals
# =====================================================================================

@pytest.mark.parametrize("func, gname, tname", [
    (reg_array_global, "REG_ARRAY", "ndarray"),
    (reg_dict_global, "REG_TABLE", "dict"),
    (reg_str_global, "REG_LABEL", "str"),
    (reg_function_global, "reg_helper", "function"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_unsupported_global_is_rejected(func, gname, tname):
    name = func.__name__
    with pytest.raises(RegistrationError,
                       match=rf"rhs '{name}' .*uses the global '{gname}' of type {tname}, "
                             r"which cannot be carried into the generated kernel"):
        bi.rhs(func)
    assert name not in registry.registered()


def test_unsupported_global_from_source_is_rejected():
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_src_complex_global' .*uses the global 'Z' of type complex"):
        bi.register_rhs("Z = 1j\ndef reg_src_complex_global(t, y, p, dydt):\n"
                        "    dydt[0] = Z.real\n")


def test_undefined_name_is_rejected():
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_undefined_name' .*uses the undefined name 'reg_nowhere_defined'"):
        bi.rhs(reg_undefined_name)
    assert "reg_undefined_name" not in registry.registered()


def test_supported_globals_are_recorded():
    f = bi.rhs(reg_decay_globals)
    assert set(f.globals_) == {"REG_K", "REG_RATES", "math"}
    assert f.globals_["math"] == ("module", "math")
    kind, text = f.globals_["REG_K"]
    assert kind == "const" and ast.literal_eval(text) == REG_K
    kind, text = f.globals_["REG_RATES"]
    assert kind == "const" and ast.literal_eval(text) == REG_RATES


def test_number_tuple_and_module_globals_are_used_in_a_solve():
    f = bi.rhs(reg_decay_globals)
    y0 = np.array([[1.0, 1.0], [2.0, -0.5]])
    t_eval = np.linspace(0.0, 1.5, 7)
    res = bi.solve_batch(f, (0.0, 1.5), y0, t_eval=t_eval, rtol=1e-12, atol=1e-14,
                         target="cpu")
    assert np.all(res.status == 0), res.status
    rates = np.array([REG_K, math.sqrt(REG_RATES[1])])  # 2 and 3
    exact = y0[:, :, None] * np.exp(-rates[None, :, None] * t_eval[None, None, :])
    np.testing.assert_allclose(res.y, exact, rtol=1e-8, atol=0)
    np.testing.assert_allclose(res.y_final, y0 * np.exp(-rates * 1.5), rtol=1e-8, atol=0)


def test_same_named_globals_of_two_functions_stay_separate_in_one_batch():
    a = bi.register_rhs("K = 1.0\n\ndef reg_decay_k_one(t, y, p, dydt):\n    dydt[0] = -K * y[0]\n")
    b = bi.register_rhs("K = 3.0\n\ndef reg_decay_k_three(t, y, p, dydt):\n    dydt[0] = -K * y[0]\n")
    # As plain Python each sees its own K ...
    da, db = np.zeros(1), np.zeros(1)
    a(0.0, np.ones(1), np.zeros(1), da)
    b(0.0, np.ones(1), np.zeros(1), db)
    assert (da[0], db[0]) == (-1.0, -3.0)
    # ... and so does each problem in one compiled batch.
    y0 = np.array([[1.0], [1.0], [2.0], [0.5]])
    fun_index = np.array([0, 1, 1, 0])
    k = np.array([1.0, 3.0])[fun_index]
    t_eval = np.linspace(0.0, 1.0, 5)
    res = bi.solve_batch([a, b], (0.0, 1.0), y0, fun_index=fun_index, t_eval=t_eval,
                         rtol=1e-12, atol=1e-14, target="cpu")
    assert np.all(res.status == 0), res.status
    exact = y0[:, :, None] * np.exp(-k[:, None, None] * t_eval[None, None, :])
    np.testing.assert_allclose(res.y, exact, rtol=1e-8, atol=0)


def test_infinite_float_global_is_usable_in_a_solve():
    f = bi.register_rhs("import math\nREG_CAP = math.inf\n\n"
                        "def reg_inf_cap(t, y, p, dydt):\n"
                        "    dydt[0] = -min(REG_CAP, 2.0) * y[0]\n")
    res = bi.solve_batch(f, (0.0, 1.0), np.ones((2, 1)), rtol=1e-12, atol=1e-14, target="cpu")
    np.testing.assert_allclose(res.y_final[:, 0], math.exp(-2.0), rtol=1e-8)


# =====================================================================================
# bodies numba cannot compile (the trial compile at registration)
# =====================================================================================

@pytest.mark.parametrize("func, offending", [
    (reg_time_call, "time.time()"),
    (reg_array_attribute, "y.no_such_attribute"),
    (reg_open_call, "open("),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_uncompilable_body_is_rejected_at_registration(func, offending):
    name = func.__name__
    with pytest.raises(RegistrationError,
                       match=rf"rhs '{name}' \(.*test_registry\.py:\d+\): numba cannot compile "
                             r"it for the cpu target") as excinfo:
        bi.rhs(func)
    # numba's own report, with the offending source line, is kept in the message.
    assert offending in str(excinfo.value)
    assert name not in registry.registered()


def test_uncompilable_body_from_source_is_rejected():
    src = "import time\n\ndef reg_src_time(t, y, p, dydt):\n    dydt[0] = time.time()\n"
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_src_time' .*numba cannot compile it for the cpu target"):
        bi.register_rhs(src)
    assert "reg_src_time" not in registry.registered()


# =====================================================================================
# source text problems and wrong argument types
# =====================================================================================

def test_syntax_error_in_source_names_line():
    src = "import math\n\ndef reg_src_syntax(t, y, p, dydt)\n    dydt[0] = math.pi\n"
    with pytest.raises(RegistrationError, match=r"rhs source 'reg_src_syntax' has a syntax error at line 3"):
        bi.register_rhs(src)
    assert "reg_src_syntax" not in registry.registered()


def test_source_must_hold_exactly_one_def():
    two = ("def reg_src_two_a(t, y, p, dydt):\n    dydt[0] = 0.0\n"
           "def reg_src_two_b(t, y, p, dydt):\n    dydt[0] = 0.0\n")
    with pytest.raises(RegistrationError, match=r"exactly one top-level def, found 2"):
        bi.register_rhs(two)
    with pytest.raises(RegistrationError, match=r"exactly one top-level def, found 0"):
        bi.register_rhs("REG_X = 1.0\n")


def test_source_that_fails_to_run_is_rejected():
    src = "import reg_no_such_module\n\ndef reg_src_bad_import(t, y, p, dydt):\n    dydt[0] = 0.0\n"
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_src_bad_import': running its source failed: ModuleNotFoundError"):
        bi.register_rhs(src)


@pytest.mark.parametrize("value, tname", [(123, "int"), (b"def f(): pass", "bytes"),
                                          (reg_plain, "function"), (None, "NoneType")])
def test_register_rhs_requires_a_string(value, tname):
    with pytest.raises(RegistrationError,
                       match=rf"register_rhs\(source\) expects the source text as a str, got {tname}"):
        bi.register_rhs(value)


class _CallableObject:
    def __call__(self, t, y, p, dydt):
        dydt[0] = 0.0


@pytest.mark.parametrize("value, tname", [
    (42, "int"),
    (math.sin, "builtin_function_or_method"),
    (_CallableObject(), "_CallableObject"),
    (_CallableObject, "type"),
    ("def f(t, y, p, dydt): pass", "str"),
], ids=["int", "builtin", "callable-object", "class", "str"])
def test_rhs_decorator_rejects_non_functions(value, tname):
    with pytest.raises(RegistrationError,
                       match=rf"@batchivp\.rhs expects a plain Python function, got {tname}"):
        bi.rhs(value)


def test_rhs_decorator_rejects_function_without_source():
    namespace = {}
    exec("def reg_exec_only(t, y, p, dydt):\n    dydt[0] = 0.0\n", namespace)
    with pytest.raises(RegistrationError,
                       match=r"rhs 'reg_exec_only': its source cannot be read"):
        bi.rhs(namespace["reg_exec_only"])


reg_lambda = lambda t, y, p, dydt: None  # noqa: E731


def test_rhs_decorator_rejects_lambda_on_its_own_line():
    with pytest.raises(RegistrationError, match=r"rhs '<lambda>' .*defined with a plain def"):
        bi.rhs(reg_lambda)


def test_rhs_decorator_rejects_lambda_inside_an_expression():
    funcs = sorted(
        [lambda t, y, p, dydt: None], key=id)
    with pytest.raises(RegistrationError, match=r"rhs '<lambda>'"):
        bi.rhs(funcs[0])
