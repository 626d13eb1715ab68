"""Nothing goes stale: a value a function reads is the value it has at the solve.

For every way a function can read a value (a global, a closure, a module attribute
``cfg.K``, a nested one ``pkg.sub.K``, a class attribute ``Config.K``, a default
argument, a value read by a helper it calls, an array's content), the value is changed
between two solves and each answer is checked against the analytic solution
``y = exp(-K t)`` for the value of that solve; then the same across processes that
share one disk cache. Also here: the source that registration and the plain-callable
analysis render is the one that defined the function, and keyword arguments named like
globals survive the renaming into the generated module.
"""

import importlib
import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import batchivp as bi
from batchivp import plain, source
from batchivp.registry import RegistrationError
from batchivp.source import rename_tokens

A, B = 0.5, 1.5  # the two values of K
TOL = dict(rtol=1e-10, atol=1e-12)


def _module(tmp_path, monkeypatch, name, text):
    """Import ``text`` as a fresh module ``name`` from a file in ``tmp_path``."""
    path = tmp_path / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def _rate(result):
    """The K of ``y = exp(-K t)`` at t = 1 from a solve_ivp result."""
    assert result.status == 0, result.message
    return -math.log(result.y[0, -1])


# ---- plain callables through solve_ivp: each way of reading a value ----

# name -> (module text, how to set K in the module object)
PLAIN_CASES = {
    "module attribute": """
        K = 0.5
        def rhs(t, y):
            return -cfg_self.K * y
        import sys; cfg_self = sys.modules[__name__]
        """,
    "class attribute": """
        class Config:
            K = 0.5
        def rhs(t, y):
            return -Config.K * y
        """,
    "global": """
        K = 0.5
        def rhs(t, y):
            return -K * y
        """,
    "helper reads a module attribute": """
        import sys
        K = 0.5
        def decay(y):
            return -cfg_self.K * y
        def rhs(t, y):
            return cfg_self.decay(y)
        cfg_self = sys.modules[__name__]
        """,
    "helper reads a global": """
        K = 0.5
        def decay(y):
            return -K * y
        def rhs(t, y):
            return decay(y)
        """,
    "array content": """
        import numpy as np
        RATES = np.array([0.5])
        def rhs(t, y):
            return -RATES[0] * y
        """,
    "closure": """
        def make():
            k = 0.5
            def rhs(t, y):
                return -k * y
            def set_k(value):
                nonlocal k
                k = value
            return rhs, set_k
        rhs, set_k = make()
        """,
}


def _set_plain(module, case, value):
    if case == "class attribute":
        module.Config.K = value
    elif case == "array content":
        module.RATES[0] = value  # in place: the same array object
    elif case == "closure":
        module.set_k(value)  # the same function object, its cell changed
    else:
        module.K = value


@pytest.mark.parametrize("case", list(PLAIN_CASES))
def test_plain_callable_uses_the_current_value(case, tmp_path, monkeypatch):
    name = "stale_plain_" + case.replace(" ", "_")
    module = _module(tmp_path, monkeypatch, name, PLAIN_CASES[case])
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", bi.CompilationWarning)  # compiled, not scipy's
        for value in (A, B, A):
            _set_plain(module, case, value)
            rates.append(_rate(bi.solve_ivp(module.rhs, (0.0, 1.0), [1.0], **TOL)))
    np.testing.assert_allclose(rates, [A, B, A], rtol=1e-8)


def test_nested_module_attribute_is_current(tmp_path, monkeypatch):
    """``pkg.sub.K``: a chain through two modules."""
    (tmp_path / "stale_pkg").mkdir()
    (tmp_path / "stale_pkg" / "__init__.py").write_text("from . import sub\n")
    _module(tmp_path / "stale_pkg", monkeypatch, "sub", "K = 0.5\n")
    sys.modules.pop("stale_pkg", None)
    sys.modules.pop("stale_pkg.sub", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = importlib.import_module("stale_pkg")

    def rhs(t, y):
        return -pkg.sub.K * y

    rates = []
    for value in (A, B):
        pkg.sub.K = value
        rates.append(_rate(bi.solve_ivp(rhs, (0.0, 1.0), [1.0], **TOL)))
    np.testing.assert_allclose(rates, [A, B], rtol=1e-8)


def test_default_argument_is_its_value_at_def_time(tmp_path, monkeypatch):
    """``def f(t, y, k=K)``: Python uses the value of K when the def ran, whatever K is
    now (rendering the expression ``K`` would read the new one); a new default is used."""
    module = _module(tmp_path, monkeypatch, "stale_default", """
        K = 0.5
        def rhs(t, y, k=K):
            return -k * y
        K = 1.5
        """)
    warnings.simplefilter("error", bi.CompilationWarning)  # compiled, not scipy's
    assert _rate(bi.solve_ivp(module.rhs, (0.0, 1.0), [1.0], **TOL)) == pytest.approx(A, rel=1e-8)
    module.rhs.__defaults__ = (B,)
    assert _rate(bi.solve_ivp(module.rhs, (0.0, 1.0), [1.0], **TOL)) == pytest.approx(B, rel=1e-8)


def test_fingerprint_covers_chains_defaults_and_array_content(tmp_path, monkeypatch):
    """Cheap re-validation: the fingerprint changes exactly when a value read changes."""
    module = _module(tmp_path, monkeypatch, "stale_print", """
        import numpy as np
        class Config:
            K = 0.5
        ARR = np.zeros(3)
        def rhs(t, y, k=1.0):
            return -k * Config.K * ARR[0] * y
        """)
    before = source.fingerprint(module.rhs)
    assert source.fingerprint(module.rhs) == before
    for change, undo in [
            (lambda: setattr(module.Config, "K", 2.0), lambda: setattr(module.Config, "K", 0.5)),
            (lambda: module.ARR.__setitem__(0, 1.0), lambda: module.ARR.__setitem__(0, 0.0)),
            (lambda: setattr(module.rhs, "__defaults__", (3.0,)),
             lambda: setattr(module.rhs, "__defaults__", (1.0,)))]:
        change()
        assert source.fingerprint(module.rhs) != before
        undo()
        assert source.fingerprint(module.rhs) == before


# ---- registered functions through solve_batch ----

REGISTERED = """
    import math
    import sys
    K = 0.5
    LEVEL = 0.5
    cfg_self = sys.modules[__name__]
    class Config:
        K = 0.5
    @bi.rhs
    def {name}_module(t, y, p, dydt):
        dydt[0] = -cfg_self.K * y[0]
    @bi.rhs
    def {name}_class(t, y, p, dydt):
        dydt[0] = -Config.K * y[0]
    @bi.rhs
    def {name}_global(t, y, p, dydt):
        dydt[0] = -K * y[0]
    @bi.event(terminal=True, direction=-1)
    def {name}_below(t, y, p):
        return y[0] - cfg_self.LEVEL
    """


@pytest.fixture
def registered(tmp_path_factory, monkeypatch):
    """The module imported anew for each test, from one file (as a re-import would)."""
    name = "stale_reg"
    return _module(tmp_path_factory.getbasetemp() / "registered", monkeypatch, name,
                   "import batchivp as bi\n" + textwrap.dedent(REGISTERED).format(name=name))


def _set_registered(module, way, value):
    if way == "class":
        module.Config.K = value
    else:
        module.K = value


@pytest.mark.parametrize("way", ["module", "class", "global"])
def test_registered_rhs_uses_the_value_changed_after_registration(registered, way):
    fun = getattr(registered, f"stale_reg_{way}")
    finals = []
    for value in (A, B, A):
        _set_registered(registered, way, value)
        res = bi.solve_batch(fun, (0.0, 1.0), np.ones((2, 1)), target="cpu", **TOL)
        assert np.all(res.status == 0)
        finals.append(res.y_final[0, 0])
    np.testing.assert_allclose(finals, np.exp([-A, -B, -A]), rtol=1e-8)
    # solve_ivp with a registered function takes the current values too.
    _set_registered(registered, way, B)
    assert _rate(bi.solve_ivp(fun, (0.0, 1.0), [1.0], **TOL)) == pytest.approx(B, rel=1e-8)


def test_registered_event_uses_the_value_changed_after_registration(registered, target):
    rhs, event = registered.stale_reg_global, registered.stale_reg_below
    registered.K = 1.0
    times = []
    for level in (A, 0.25):
        registered.LEVEL = level
        res = bi.solve_batch(rhs, (0.0, 5.0), np.ones((2, 1)), events=event, target=target, **TOL)
        assert np.all(res.status == 1), res.status
        times.append(res.t_events[0][0, 0])
    np.testing.assert_allclose(times, [-math.log(A), -math.log(0.25)], rtol=1e-8)
    assert event.terminal is True and event.direction == -1  # the options survive


def test_reregistering_a_function_whose_value_changed_renders_it_anew(registered):
    fun = registered.stale_reg_global
    registered.K = 0.75
    again = bi.rhs(fun.py_func)
    assert again.name == fun.name and again.key != fun.key
    assert again.current() is again


# ---- across processes, through the disk cache ----

CHILD = """
import sys
import numpy as np
import batchivp as bi
import stale_cfg

def plain_rhs(t, y):
    return -stale_cfg.K * y

@bi.rhs
def stale_child_rhs(t, y, p, dydt):
    dydt[0] = -stale_cfg.K * y[0]

a = bi.solve_ivp(plain_rhs, (0.0, 1.0), [1.0], rtol=1e-10, atol=1e-12).y[0, -1]
b = bi.solve_batch(stale_child_rhs, (0.0, 1.0), np.ones((1, 1)), rtol=1e-10, atol=1e-12,
                   target="cpu").y_final[0, 0]
print(float(a), float(b))
"""


def test_a_new_value_in_another_process_is_not_read_from_the_disk_cache(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, BATCHIVP_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    for k in (A, B):
        (tmp_path / "stale_cfg.py").write_text(f"K = {k!r}\n")
        out = subprocess.run([sys.executable, str(tmp_path / "child.py")], env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        values = [float(v) for v in out.stdout.split()]
        np.testing.assert_allclose(values, [math.exp(-k)] * 2, rtol=1e-8, err_msg=f"K = {k}")


# ---- the source rendered is the one that defined the function ----

def test_a_file_edited_after_import_is_refused(tmp_path, monkeypatch):
    module = _module(tmp_path, monkeypatch, "stale_edited", """
        def stale_edited_rhs(t, y, p, dydt):
            dydt[0] = -0.5 * y[0]
        def plain_rhs(t, y):
            return -0.5 * y
        """)
    # The script is edited while it runs: same names, same lines, other bodies.
    (tmp_path / "stale_edited.py").write_text(textwrap.dedent("""
        def stale_edited_rhs(t, y, p, dydt):
            dydt[0] = -9.0 * y[0]
        def plain_rhs(t, y):
            return -9.0 * y
        """))
    with pytest.raises(RegistrationError, match=r"stale_edited\.py at line 2 does not compile "
                                                r"to 'stale_edited_rhs': the file changed"):
        bi.rhs(module.stale_edited_rhs)
    # solve_ivp cannot compile it, and says so; scipy solves the function as defined.
    with pytest.warns(bi.CompilationWarning, match="the file changed"):
        res = bi.solve_ivp(module.plain_rhs, (0.0, 1.0), [1.0], **TOL)
    assert _rate(res) == pytest.approx(0.5, rel=1e-8)


def test_a_function_defined_from_other_text_is_not_rendered_from_its_file():
    namespace = {}
    # exec'd text under this file's name: the file's line 1 is not this function.
    exec(compile("def other(t, y):\n    return -2.0 * y\n", __file__, "exec"), namespace)
    with pytest.warns(bi.CompilationWarning, match="does not compile to 'other'"):
        res = bi.solve_ivp(namespace["other"], (0.0, 1.0), [1.0], **TOL)
    assert _rate(res) == pytest.approx(2.0, rel=1e-8)


def _doubled(func):
    import functools

    @functools.wraps(func)
    def wrapper(t, y, p, dydt):
        func(t, y, p, dydt)
        dydt[0] = 2.0 * dydt[0]
    return wrapper


def test_a_wrapped_function_is_not_registered_as_the_function_it_wraps():
    """inspect.getsource follows ``__wrapped__``: the undecorated body would have been
    registered under the wrapper's name, silently without the wrapper's doubling."""
    @_doubled
    def stale_wrapped(t, y, p, dydt):
        dydt[0] = -y[0]
    with pytest.raises(RegistrationError, match="'wrapper' defined there, under the name "
                                                "'stale_wrapped'"):
        bi.rhs(stale_wrapped)


def _twice(func):
    def wrapper(t, y):
        return 2.0 * func(t, y)
    return wrapper


def test_plain_callable_decorated_by_a_wrapper_solves_the_wrapper():
    @_twice
    def half_decay(t, y):
        return -0.25 * y
    with warnings.catch_warnings():
        warnings.simplefilter("error", bi.CompilationWarning)
        res = bi.solve_ivp(half_decay, (0.0, 1.0), [1.0], **TOL)
    assert _rate(res) == pytest.approx(0.5, rel=1e-8)


# ---- keyword arguments named like globals ----

ACC = 0.5


def accelerate(y, ACC=1.0):
    return -ACC * y


def calls_with_keyword(t, y):
    return accelerate(y, ACC=ACC)


def test_rename_tokens_keeps_keyword_and_parameter_names():
    text = "def f(t, ACC=ACC):\n    return g(ACC=ACC, k=ACC) + h(ACC = ACC)\n"
    renamed = rename_tokens(text, {"ACC": "X"})
    assert renamed == "def f(t, ACC=X):\n    return g(ACC=X, k=X) + h(ACC = X)\n"


def test_keyword_argument_named_like_a_global_in_a_plain_callable():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bi.CompilationWarning)
        res = bi.solve_ivp(calls_with_keyword, (0.0, 1.0), [1.0], **TOL)
    assert _rate(res) == pytest.approx(ACC, rel=1e-8)


def keyword_force(t, y, p, dydt):
    dydt[0] = accelerate(y[0], ACC=ACC)


@pytest.mark.parametrize("target", ["cpu", "parallel"])
def test_keyword_argument_named_like_a_global_in_a_composed_rhs(target):
    """As a force in an orbit model: hapsira's ``J2_perturbation(..., J2=J2, R=R)``.
    (Not on cuda: numba's CUDA simulator does not pass keyword arguments to device
    functions.)"""
    rhs = plain.compose("rhs", "def stale_kw(t, y, p, dydt):\n    force(t, y, p, dydt)\n",
                        {"force": keyword_force})
    res = bi.solve_batch(rhs, (0.0, 1.0), np.ones((2, 1)), target=target, **TOL)
    np.testing.assert_allclose(res.y_final[:, 0], math.exp(-ACC), rtol=1e-8)
