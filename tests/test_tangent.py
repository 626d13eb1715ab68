"""Forward-mode source transformation (batchivp.tangent): the generated tangents
against central finite differences of the original functions (and analytic
derivatives where easy), their primal results bit for bit against the originals, the
same program compiled with numba.njit and for cuda, the index analysis bounding every
subscript of the tangents when called with constant slices, and the refusals."""

import importlib
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

from batchivp import models
from batchivp.tangent import Undifferentiable, tangent_name, tangent_program

# ---- running programs ----


def build(functions, generated, constants=None, jit=False):
    """A namespace holding the original functions (by key) and the generated tangents,
    all njit'd if ``jit`` (numba resolves the calls between them at compile time)."""
    ns = {"math": math, "np": np, **(constants or {})}
    for key, source in functions.items():
        local = {}
        exec(compile(textwrap.dedent(source), f"<{key}>", "exec"), ns, local)
        (ns[key],) = [v for v in local.values() if callable(v)]
    for key, source in generated.items():
        exec(compile(source, f"<{tangent_name(key)}>", "exec"), ns)
    if jit:
        for name in list(functions) + [tangent_name(k) for k in generated]:
            ns[name] = numba.njit(error_model="numpy")(ns[name])
    return ns


def primal(ns, key, args):
    """The outputs of ``key`` on ``args`` (copied), in blocks: the returned numbers,
    then each array's final contents."""
    args = [np.array(a, dtype=float) if np.ndim(a) else float(a) for a in args]
    result = ns[key](*args)
    returned = [] if result is None else list(np.atleast_1d(result))
    return [np.asarray(returned, float)] + [a for a in args if np.ndim(a)]


def tangent(ns, key, args, directions, offset=3):
    """``(outputs, tangents)`` of ``tangent_<key>`` on ``args`` along ``directions``,
    in the blocks of :func:`primal`. Each array's tangent is passed as a view at
    ``offset`` into a longer array, as sensitivity columns are; the rest of that array
    must stay untouched."""
    call, tangent_arrays = [], []
    for a, d in zip(args, directions):
        if np.ndim(a):
            a = np.array(a, dtype=float)
            big = np.full(len(a) + offset + 2, 7.0)
            big[offset:offset + len(a)] = d
            call += [a, big[offset:offset + len(a)]]
            tangent_arrays.append((a, big))
        else:
            call += [float(a), float(d)]
    result = ns[tangent_name(key)](*call)
    result = () if result is None else result
    k = len(result) // 2
    values = [np.asarray(result[:k], float)] + [a for a, _ in tangent_arrays]
    tangents = [np.asarray(result[k:], float)]
    for a, big in tangent_arrays:
        assert np.all(big[:offset] == 7.0) and np.all(big[offset + len(a):] == 7.0)
        tangents.append(big[offset:offset + len(a)])
    return values, tangents


def finite_difference(ns, key, args, directions, h):
    """Central differences with one Richardson step (error of order h^4), in blocks."""
    def at(s):
        moved = [np.asarray(a) + s * np.asarray(d) for a, d in zip(args, directions)]
        return primal(ns, key, moved)

    def central(step):
        return [(a - b) / (2.0 * step) for a, b in zip(at(step), at(-step))]

    return [(4.0 * a - b) / 3.0 for a, b in zip(central(h / 2.0), central(h))]


def directions_for(args, seed, scale=None):
    rng = np.random.default_rng(seed)
    scale = scale or [np.abs(a) + 1.0 for a in args]
    return [np.asarray(s) * rng.standard_normal(np.shape(a)) for a, s in zip(args, scale)]


def check(functions, entry, arrays, args, constants=None, h=1e-4, rtol=1e-7, scale=None,
          seeds=(1, 2), modules=None):
    """The tangents of ``entry`` match finite differences along random directions
    (``scale``: per input, the size of its component), output by output, and its primal
    outputs equal the original's bit for bit. Returns the generated text."""
    generated = tangent_program(functions, entry, frozenset(arrays), modules)
    ns = build(functions, generated, constants)
    for seed in seeds:
        directions = directions_for(args, seed, scale)
        values, tangents = tangent(ns, entry, args, directions)
        for got, expected in zip(values, primal(ns, entry, args)):
            np.testing.assert_array_equal(got, expected)
        for got, expected in zip(tangents, finite_difference(ns, entry, args, directions, h)):
            size = np.max(np.abs(expected), initial=0.0)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * size + 1e-300)
    return generated


def check_numba(functions, entry, arrays, args, constants=None):
    """The njit'd program gives what plain Python gives, and its primal outputs are
    the njit'd original's bit for bit."""
    generated = tangent_program(functions, entry, frozenset(arrays))
    python = build(functions, generated, constants)
    jitted = build(functions, generated, constants, jit=True)
    directions = directions_for(args, 3)
    expected = tangent(python, entry, args, directions)
    got = tangent(jitted, entry, args, directions)
    for a, b, c in zip(got[0], expected[0], primal(jitted, entry, args)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for a, b in zip(got[1], expected[1]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


# ---- right-hand sides ----

KEPLER = models.two_body.source  # def two_body(t, y, p, dydt), keyed "kepler" here
KEPLER_ARGS = [0.0, [7000.0, 300.0, -200.0, 0.2, 7.4, 1.0], [398600.4418], np.zeros(6)]


def test_kepler_against_the_analytic_jacobian():
    generated = check({"kepler": KEPLER}, "kepler", {"y", "p", "dydt"}, KEPLER_ARGS)
    ns = build({"kepler": KEPLER}, generated)
    y, mu = np.array(KEPLER_ARGS[1]), KEPLER_ARGS[2][0]
    r = y[:3]
    norm = np.linalg.norm(r)
    jacobian = np.zeros((6, 7))  # columns: y, then mu
    jacobian[:3, 3:6] = np.eye(3)
    jacobian[3:, :3] = -mu * (np.eye(3) / norm**3 - 3.0 * np.outer(r, r) / norm**5)
    jacobian[3:, 6] = -r / norm**3
    for j in range(7):
        dy, dp = np.zeros(6), np.zeros(1)
        (dy if j < 6 else dp)[j % 6] = 1.0
        _, tangents = tangent(ns, "kepler", KEPLER_ARGS, [0.0, dy, dp, np.zeros(6)])
        np.testing.assert_allclose(tangents[3], jacobian[:, j], rtol=1e-13,
                                   atol=1e-13 * np.abs(jacobian).max())
    # index arithmetic and loops are not differentiated; no structurally zero products
    assert "0.0 *" not in generated["kepler"] and "* 0.0" not in generated["kepler"]


LORENZ = """
def lorenz(t, y, p, dydt):
    dydt[0] = p[0] * (y[1] - y[0])
    dydt[1] = y[0] * (p[1] - y[2]) - y[1]
    dydt[2] = y[0] * y[1] - p[2] * y[2]
"""


def test_lorenz_parameter_sensitivities_analytic():
    args = [0.0, [1.0, 2.0, 20.0], [10.0, 28.0, 8.0 / 3.0], np.zeros(3)]
    generated = check({"lorenz": LORENZ}, "lorenz", {"y", "p", "dydt"}, args)
    ns = build({"lorenz": LORENZ}, generated)
    y = args[1]
    expected = np.array([[y[1] - y[0], 0.0, 0.0], [0.0, y[0], 0.0], [0.0, 0.0, -y[2]]])
    for j in range(3):
        dp = np.eye(3)[j]
        _, tangents = tangent(ns, "lorenz", args, [0.0, np.zeros(3), dp, np.zeros(3)])
        np.testing.assert_array_equal(tangents[3], expected[:, j])


VAN_DER_POL = """
def vdp(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = p[0] * (1.0 - y[0] ** 2) * y[1] - y[0]
"""


def test_van_der_pol():
    generated = check({"vdp": VAN_DER_POL}, "vdp", {"y", "p", "dydt"},
                      [0.0, [1.5, -0.4], [3.0], np.zeros(2)])
    assert "2 * y[0] * d_y[0]" in generated["vdp"]  # x ** 2: no pow left in the tangent


CHAIN = """
def chain(t, y, p, dydt):
    n = len(y)
    dydt[0] = -2.0 * y[0] + y[1]
    for i in range(1, n - 1):
        dydt[i] = y[i - 1] - 2.0 * y[i] + y[i + 1]
    dydt[n - 1] = y[n - 2] - 2.0 * y[n - 1] + p[0] * math.sin(t)
    total = 0.0
    for j in range(n):
        if j % 2 == 0:
            continue
        total += y[j] * y[j]
    k = 0
    while k < n:
        if y[k] > 100.0:
            break
        k += 1
    dydt[n - 1] += total * p[1] + y[-1] * y[-2]
"""


def test_loops_indices_and_negative_indices():
    args = [0.3, np.linspace(0.5, 2.0, 7), [0.7, 0.2], np.zeros(7)]
    generated = check({"chain": CHAIN}, "chain", {"y", "p", "dydt"}, args)
    text = generated["chain"]
    assert "d_i" not in text and "d_j" not in text and "d_k " not in text  # counters
    assert "d_n" not in text
    assert "d_y[i - 1]" in text  # the primal's index, as written
    assert "d_y[-1]" in text  # counted from the end of d_y, as long as y


BRANCHES = """
def branches(t, y, p, dydt):
    if y[0] > 0.0:
        s = y[0] * p[0]
    elif y[1] > 0.0:
        s = 2.0
    else:
        s = -y[1]
    a = abs(y[1]) + max(y[0], y[1]) + min(y[1], 0.5, y[0])
    b = y[0] if y[0] < y[1] else y[1] * y[1]
    c = float(y[0]) + int(y[1]) + round(y[0]) + math.floor(y[1]) + math.copysign(y[0], -1.0)
    flag = math.isfinite(y[0]) and y[0] < 1e300
    if flag and not math.isnan(y[1]):
        c += math.inf * 0.0 if False else math.pi * math.e
    dydt[0] = s * a
    dydt[1] = b + c
"""


@pytest.mark.parametrize("y", [[0.8, 1.3], [-0.8, 1.3], [-0.8, -1.3], [0.9, 0.2]])
def test_if_elif_else_conditional_expressions_and_builtins(y):
    generated = check({"branches": BRANCHES}, "branches", {"y", "p", "dydt"},
                      [0.0, y, [1.7], np.zeros(2)], h=1e-5,
                      scale=[1.0, [0.1, 0.1], [0.1], [1.0, 1.0]])
    # s is active, and where it gets a constant its tangent is zeroed there
    assert "d_s = 0.0" in generated["branches"]


POWERS = """
def powers(t, y, p):
    u = y[0] ** 3 + y[0] ** 0.5 + y[1] ** -2 + 2.0 ** y[1] + y[0] ** y[1] + y[0] ** p[0]
    v = pow(y[0], y[1]) + math.pow(y[1], 1.5) + p[0] ** 1
    w = y[0]
    w **= 2.5
    w *= u
    w /= v
    w -= u
    w += math.sqrt(v) + math.exp(y[1]) + math.log(u) + math.tan(y[0]) + math.tanh(y[1])
    return w
"""


def test_powers_and_augmented_assignments():
    check({"powers": POWERS}, "powers", {"y", "p"}, [0.0, [1.3, 0.7], [1.9]], h=1e-5,
          scale=[1.0, [0.1, 0.1], [0.1]])


MATH = """
def every_rule(t, y, p):
    a = y[0]
    b = y[1]
    s = (math.sqrt(a) + math.exp(a) + math.expm1(a) + math.log(a) + math.log1p(a)
         + math.log10(a) + math.log2(a) + math.sin(a) + math.cos(a) + math.tan(a)
         + math.asin(b) + math.acos(b) + math.atan(a) + math.atan2(a, b) + math.atan2(2.0, b)
         + math.atan2(a, 3.0) + math.sinh(a) + math.cosh(a) + math.tanh(a) + math.asinh(a)
         + math.acosh(a + 1.0) + math.atanh(b) + math.hypot(a, b) + math.hypot(a, 2.0)
         + math.fabs(b) + math.copysign(a, b) + math.erf(a) + math.erfc(b)
         + math.degrees(a) + math.radians(b) + math.floor(a) + math.ceil(a) + math.trunc(a))
    n = (np.sqrt(a) + np.exp(b) + np.arctan2(a, b) + np.arcsin(b) + np.abs(b)
         + np.minimum(a, b) + np.maximum(a, b) + np.float64(a) + np.power(a, b)
         + numpy.hypot(a, b) + np.pi)
    return s * n, s - n
"""


def test_every_math_rule():
    generated = check({"every_rule": MATH}, "every_rule", {"y", "p"}, [0.0, [1.4, 0.3], [0.0]],
                      constants={"numpy": np}, h=1e-5, scale=[1.0, [0.1, 0.1], [1.0]])
    assert "math.floor(a) *" not in generated["every_rule"]


HELPERS = """
def sun_like(t, y, p, dydt):
    x, yy, z = position(t * p[0])
    d = distance(x - y[0], yy - y[1], z - y[2])
    dydt[0] = p[1] * (x - y[0]) / (d * d * d) + 2.0 * distance(y[0], y[1], 0.0)
    dydt[1] = p[1] * (yy - y[1]) / (d * d * d)
    dydt[2] = scale(z, p[1:2]) * clamp(y[2] / 10.0) + distance(1.0, 2.0, 2.0)
    shift(y[1:3], dydt, p[0])
    dydt[0], dydt[1] = dydt[1], dydt[0]
    y[0], y[1] = y[1], y[0]
"""
POSITION = """
def position_of(t):
    a = reduce(t * 0.001)
    r = 5.0 + math.cos(a)
    return (r * math.cos(a), r * math.sin(a), 0.1 * math.sin(2.0 * a))
"""
REDUCE = """
def reduce(x):
    return x - 6.283185307179586 * math.floor(x / 6.283185307179586)
"""
DISTANCE = """
def distance(a, b, c):
    return math.sqrt(a * a + b * b + c * c)
"""
SCALE = """
def scale(v, q):
    return v * q[0]
"""
CLAMP = """
def clamp(x):
    return -1.0 if x < -1.0 else (1.0 if x > 1.0 else x)
"""
SHIFT = """
def shift(u, out, amount):
    for i in range(2):
        out[i + 1] += amount * u[i] * u[i]
"""
HELPER_FUNCTIONS = {"sun_like": HELPERS, "position": POSITION, "reduce": REDUCE,
                    "distance": DISTANCE, "scale": SCALE, "clamp": CLAMP, "shift": SHIFT}
HELPER_ARGS = [12.0, [1.0, -2.0, 3.0], [0.5, 2.0], np.zeros(3)]


def test_helpers_tuple_returns_slices_and_swaps():
    generated = check(HELPER_FUNCTIONS, "sun_like", {"y", "p", "dydt"}, HELPER_ARGS)
    assert set(generated) == set(HELPER_FUNCTIONS)
    text = generated["sun_like"]
    assert "tangent_scale(z, d_z, p[1:2], d_p[1:2])" in text
    assert "tangent_shift(y[1:3], d_y[1:3], dydt, d_dydt, p[0], d_p[0])" in text
    # a helper without arrays and without an argument that has a tangent: its primal
    assert "+ distance(1.0, 2.0, 2.0)" in text


def test_slices_with_a_step_travel_as_the_same_slice_of_the_tangent():
    source = ("def model(t, y, p, dydt):\n    dydt[0] = first(y[::2]) * p[0]\n"
              "    dydt[1] = first(y[3:0:-1])\n")
    functions = {"model": source, "first": "def first(a):\n    return a[0] * a[1] + a[-1]\n"}
    generated = check(functions, "model", {"y", "p", "dydt"},
                      [0.0, [1.0, 2.0, 3.0, 4.0], [2.0], np.zeros(2)])
    assert "tangent_first(y[3:0:-1], d_y[3:0:-1])" in generated["model"]


def test_numba_compiles_the_programs():
    check_numba(HELPER_FUNCTIONS, "sun_like", {"y", "p", "dydt"}, HELPER_ARGS)
    check_numba({"chain": CHAIN}, "chain", {"y", "p", "dydt"},
                [0.3, np.linspace(0.5, 2.0, 7), [0.7, 0.2], np.zeros(7)])
    check_numba({"powers": POWERS}, "powers", {"y", "p"}, [0.0, [1.3, 0.7], [1.9]])
    check_numba({"branches": BRANCHES}, "branches", {"y", "p", "dydt"},
                [0.0, [0.9, 0.2], [1.7], np.zeros(2)])
    check_numba({"every_rule": MATH}, "every_rule", {"y", "p"}, [0.0, [1.4, 0.3], [0.0]],
                constants={"numpy": np})


EDGES = """
def edges(t, y, p, out):
    a, b = y[0], y[1]
    a, b = b, a
    out[0], out[1], out[2] = triple(a * p[0])
    c = half(a) if a > 0.5 else half(b) * 2.0
    if b > 10.0:
        c = 0.0
    elif half(b) > 0.1:
        c += scaled(v=b, k=p[0])
    i = 0
    x = a
    while i < 5 and x < 100.0:
        x = x * 1.5 + b
        i += 1
    for k in range(3):
        x = x + k
    else:
        x *= 0.5
    for j in range(2):
        c -= x / (j + 1)
        j = c
    out[3] = c + x + j
"""
TRIPLE = """
def triple(s):
    return s, 2.0 * s * s, math.sin(s)
"""
HALF = "def half(v):\n    return 0.5 * v\n"
SCALED = "def scaled(k, v):\n    return k * v * v\n"
EDGE_FUNCTIONS = {"edges": EDGES, "triple": TRIPLE, "half": HALF, "scaled": SCALED}


@pytest.mark.parametrize("y", [[0.3, 0.9], [0.9, 0.3]])
def test_swaps_unpacking_keywords_conditional_calls_and_loops(y):
    generated = check(EDGE_FUNCTIONS, "edges", {"y", "p", "out"},
                      [0.0, y, [1.3], np.zeros(4)])
    text = generated["edges"]
    assert "d_a, d_b = (d_b, d_a)" in text
    # the branch not taken does not run: a conditional call becomes an if statement
    assert "if a > 0.5:" in text
    assert "d_j = 0.0" in text  # the loop counter, assigned a number in the body


def test_numba_compiles_the_edge_cases():
    check_numba(EDGE_FUNCTIONS, "edges", {"y", "p", "out"}, [0.0, [0.3, 0.9], [1.3], np.zeros(4)])


PTX_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
try:
    from numba import cuda, float64
    cuda.compile_ptx(lambda x: None, (float64[:],), cc=(9, 0))
except Exception as exc:  # no NVVM: nothing to check here
    print(exc)
    sys.exit(77)
import test_tangent as T
from batchivp.tangent import tangent_name, tangent_program
for functions, entry, arrays, call in [
        (T.HELPER_FUNCTIONS, "sun_like", {"y", "p", "dydt"},
         "(0.0, 1.0, y[:3], dy[3:6], p[:2], dp[2:4], out[:3], dout[3:6])"),
        (T.EDGE_FUNCTIONS, "edges", {"y", "p", "out"},
         "(0.0, 1.0, y[:2], dy[2:4], p[:1], dp[1:2], out[:4], dout[4:8])")]:
    generated = tangent_program(functions, entry, frozenset(arrays))
    ns = T.build(functions, generated)
    for name in list(functions) + [tangent_name(k) for k in generated]:
        ns[name] = cuda.jit(device=True, inline=True)(ns[name])  # inline: no driver needed
    exec(f"def kernel(y, p, out, dy, dp, dout):\\n    {tangent_name(entry)}{call}\\n", ns)
    cuda.compile_ptx(ns["kernel"], (float64[:],) * 6, cc=(9, 0))
"""


def test_cuda_device_functions_compile_to_ptx():
    """numba.cuda.jit(device=True) compiles the tangents (PTX for sm_90, no GPU needed;
    in a child process, as the test session runs the CUDA simulator)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", PTX_CHILD, str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True, timeout=300)
    if done.returncode == 77:
        pytest.skip(f"numba.cuda cannot compile here: {done.stdout.strip()}")
    assert done.returncode == 0, done.stderr


EVENT = """
def radius_crossing(t, y, p):
    return math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2]) - p[1]
"""


def test_event_function_returning_a_number():
    args = [0.0, [7000.0, 300.0, -200.0, 0.2, 7.4, 1.0], [398600.4418, 6478.0]]
    generated = check({"radius_crossing": EVENT}, "radius_crossing", {"y", "p"}, args)
    ns = build({"radius_crossing": EVENT}, generated)
    y = np.array(args[1])
    dy = np.zeros(6)
    dy[0] = 1.0
    _, tangents = tangent(ns, "radius_crossing", args, [0.0, dy, np.zeros(2)])
    assert tangents[0][0] == pytest.approx(y[0] / np.linalg.norm(y[:3]), rel=1e-15)


def test_generated_names_do_not_clash_with_the_users():
    source = """
    def clash(t, y, p, dydt):
        d_y = y[0] * p[0]
        o_y = math.sqrt(d_y)
        tmp_1 = o_y * t
        dydt[0] = tmp_1 + helper(tmp_1)
    """
    helper = "def helper(d_x):\n    return d_x * d_x\n"
    generated = check({"clash": source, "helper": helper}, "clash", {"y", "p", "dydt"},
                      [0.5, [2.0], [3.0], np.zeros(1)])
    assert "def tangent_clash(t, d__t, y, d__y, p, d__p, dydt, d__dydt)" in generated["clash"]


# ---- the orbit forces, as batchivp.orbit.propagate renders them ----

FORCES = ["J2", "J3", "drag", "coesa", "sun", "moon", "conical", "cylindrical", "srp"]
EPOCH = 7.0e8  # TT seconds past J2000 (mid 2022)
ORBIT_STATE = [6378.137 + 420.0, 300.0, -200.0, -0.3, 7.6, 1.1]  # between table nodes


def orbit_program(names):
    """(record, functions, constants, params) of the right-hand side of ``names``."""
    import batchivp.orbit.propagate  # noqa: F401  (the module; the package exports a function)
    from batchivp.orbit import forces as F
    propagate = sys.modules["batchivp.orbit.propagate"]
    chosen = {"J2": F.J2(), "J3": F.J3(), "drag": F.ExponentialDrag(),
              "coesa": F.COESA76Drag(cd=2.0, area_to_mass=0.02), "sun": F.ThirdBody("sun"),
              "moon": F.ThirdBody("moon"), "conical": F.SolarRadiationPressure(),
              "cylindrical": F.SolarRadiationPressure(shadow="cylindrical"),
              "srp": F.SolarRadiationPressure(shadow=None)}
    forces = [chosen[n] for n in names]
    record = propagate.force_model(forces).plugin
    functions = {record.name: record.source,
                 **{h.rendered_name: h.source for h in record.helpers}}
    constants = {}
    for helper in record.helpers:
        for name, (kind, value) in helper.globals_.items():
            constants[name] = (eval(value, {"math": math, "np": np}) if kind == "const"
                               else importlib.import_module(value))
    params = [EPOCH] + [v for f in forces for _, v in f.parameters]
    return record, forces, functions, constants, params


def helper_key(record, function):
    (key,) = [h.rendered_name for h in record.helpers if h.name == function.__name__]
    return key


@pytest.mark.parametrize("name", FORCES)
def test_each_orbit_force_against_finite_differences(name):
    record, (force,), functions, constants, _ = orbit_program([name])
    key = helper_key(record, force.function)
    q = [v for _, v in force.parameters] or [0.0]
    t = EPOCH + 1000.0 if force.uses_date else 1000.0
    args = [t, ORBIT_STATE, q, np.zeros(6)]
    # t moves by about 1000 s: smaller steps drown in the rounding of t near 7e8 s
    scale = [1e5, [1.0] * 3 + [1e-3] * 3, [0.1 * v for v in q], [0.0] * 6]
    check(functions, key, {"y", "q", "dydt"}, args, constants, h=1e-2, scale=scale, rtol=1e-7)


def test_composed_orbit_rhs_against_finite_differences():
    record, forces, functions, constants, params = orbit_program(FORCES)
    args = [1000.0, ORBIT_STATE, params, np.zeros(6)]
    arrays = {"y", "p", "dydt"}
    state = [0.0, [1.0] * 3 + [1e-3] * 3, [0.0] * len(params), [0.0] * 6]
    check(functions, record.name, arrays, args, constants, h=1e-2, scale=state, rtol=1e-7)
    # along t and p only: the forces' own parameters (the slices p[k:k+m]) and the date
    dated = [1000.0, [0.0] * 6, [1000.0] + [0.1 * v for v in params[1:]], [0.0] * 6]
    check(functions, record.name, arrays, args, constants, h=1.0, scale=dated, rtol=1e-7)


def test_conical_shadow_in_the_penumbra():
    record, (force,), functions, constants, _ = orbit_program(["conical"])
    key = helper_key(record, sys.modules[force.function.__module__].conical_shadow)
    ns = build(functions, {}, constants)
    sun = (1.496e8, 2.0e6, 1.0e6)
    # the point of the line x = -7000 km, z = 100 km nearest to half light
    ys = np.arange(6000.0, 6600.0, 0.5)
    light = np.array([ns[key](-7000.0, y, 100.0, *sun) for y in ys])
    y = float(ys[np.argmin(np.abs(light - 0.5))])
    assert 0.4 < ns[key](-7000.0, y, 100.0, *sun) < 0.6
    # Steps of about 0.5 km and 25000 km (the Sun): the overlap of the discs is
    # ill-conditioned (acos near 1), so smaller steps drown in its rounding.
    check(functions, key, set(), [-7000.0, y, 100.0, *sun], constants, h=0.5,
          scale=[1.0, 1.0, 1.0, 5e4, 5e4, 5e4], rtol=1e-6)


def test_orbit_forces_compile_with_numba():
    record, _, functions, constants, params = orbit_program(["drag", "conical"])
    check_numba(functions, record.name, {"y", "p", "dydt"},
                [1000.0, ORBIT_STATE, params, np.zeros(6)], constants)


# ---- what is refused, and how it is said ----

@pytest.mark.parametrize("body, line, match", [
    ("v = np.dot(y, p)\ndydt[0] = v", 2,
     r"numpy.dot has no derivative rule here; write the sum as a loop"),
    ("dydt[0] = scipy.special.gamma(y[0])", 2, r"scipy.special.gamma has no derivative rule"),
    ("f = lambda x: x\ndydt[0] = f(y[0])", 2, r"a lambda"),
    ("dydt[0] = sum([y[i] for i in range(3)])", 2, r"comprehension allocates"),
    ("for v in y:\n    dydt[0] += v", 2, r"only `for i in range\(...\)` loops"),
    ("global G\ndydt[0] = y[0]", 2, r"global state"),
    ("try:\n    dydt[0] = y[0]\nexcept Exception:\n    pass", 2, r"exceptions"),
    ("raise ValueError('no')", 2, r"exceptions cannot be raised"),
    ("v = (y[0], y[1])\ndydt[0] = v[0]", 2, r"unpack it into names"),
    ("dydt[0] = mystery(y[0])", 2, r"`mystery` is neither one of the functions given"),
    ("dydt[0] = math.sqrt(y)", 2, r"the array `y` is used as a number"),
    ("a = y[0:2]\ndydt[0] = a[0]", 2, r"slice of an array is only supported as an argument"),
    ("y = p\ndydt[0] = 1.0", 2, r"assigns the array parameter `y`"),
    ("dydt[0] = y[0] or p[0]", 2, r"`and`/`or` picks one of its operands"),
    ("def inner(x):\n    return x\ndydt[0] = inner(y[0])", 2, r"a nested function"),
    ("with open('f') as f:\n    pass", 2, r"`with` block"),
])
def test_refusals_name_the_line_and_the_reason(body, line, match):
    source = "def model(t, y, p, dydt):\n" + textwrap.indent(body, "    ") + "\n"
    with pytest.raises(Undifferentiable, match=match) as caught:
        tangent_program({"model": source}, "model", {"y", "p", "dydt"})
    error = caught.value
    assert (error.function, error.line) == ("model", line)
    assert error.text == source.splitlines()[line - 1].strip()
    assert str(error).startswith(f"model, line {line}: `{error.text}`: ")


def test_refusals_across_functions():
    recursive = "def fact(x):\n    return x * fact(x - 1.0) if x > 1.0 else 1.0\n"
    rhs = "def model(t, y, p, dydt):\n    dydt[0] = fact(y[0])\n"
    with pytest.raises(Undifferentiable, match=r"`fact` is called recursively") as caught:
        tangent_program({"model": rhs, "fact": recursive}, "model", {"y", "p", "dydt"})
    assert caught.value.function == "fact"
    mixed = ("def model(t, y, p, dydt):\n    dydt[0] = first(y)\n"
             "    dydt[1] = first(y[0])\n")
    with pytest.raises(Undifferentiable, match=r"`first` receives an array as its parameter "
                                               r"`a` from `model` and a number here"):
        tangent_program({"model": mixed, "first": "def first(a):\n    return a[0]\n"},
                        "model", {"y", "p", "dydt"})
    tuple_as_number = ("def model(t, y, p, dydt):\n    dydt[0] = 2.0 * pair(y[0])\n")
    with pytest.raises(Undifferentiable, match=r"returns a tuple of 2, used here as a number"):
        tangent_program({"model": tuple_as_number, "pair": "def pair(x):\n    return x, x\n"},
                        "model", {"y", "p", "dydt"})
    loop_call = ("def model(t, y, p, dydt):\n    i = 0\n    while half(y[0]) > i:\n"
                 "        i += 1\n    dydt[0] = i\n")
    with pytest.raises(Undifferentiable, match=r"`while` condition calls a function") as caught:
        tangent_program({"model": loop_call, "half": "def half(x):\n    return 0.5 * x\n"},
                        "model", {"y", "p", "dydt"})
    assert caught.value.line == 3


def test_module_aliases_of_the_plugin_globals():
    source = "def model(t, y, p, dydt):\n    dydt[0] = npy.sin(y[0]) * m.exp(p[0])\n"
    with pytest.raises(Undifferentiable, match=r"npy.sin has no derivative rule"):
        tangent_program({"model": source}, "model", {"y", "p", "dydt"})
    check({"model": source}, "model", {"y", "p", "dydt"}, [0.0, [0.4], [0.3], np.zeros(1)],
          constants={"npy": np, "m": math}, modules={"npy": "numpy", "m": "math"})


WRITER = "def bump(a):\n    a[0] += 1.0\n    return a[0]\n"
READER = "def peek(a):\n    return 2.0 * a[0]\n"


@pytest.mark.parametrize("line, refused", [
    ("dydt[0] = y[0] + bump(y)", True),  # y[0] read before bump writes it
    ("dydt[0] = bump(y) + y[0]", False),  # read after: as hoisted
    ("dydt[0] = y[0] * peek(y)", False),  # peek only reads
    ("y[0] += bump(y)", True),  # y[0] read, then bump
    ("dydt[0] = y[1] + (bump(y) if t > 0.0 else 0.0)", True),
])
def test_a_call_is_not_moved_before_a_read_of_what_it_writes(line, refused):
    source = f"def model(t, y, p, dydt):\n    {line}\n"
    functions = {"model": source, "bump": WRITER, "peek": READER}
    args = [0.5, [1.5, 2.0], [1.0], np.zeros(1)]
    if refused:
        with pytest.raises(Undifferentiable, match=r"`bump` may write `y`, which this "
                                                   r"statement reads before calling it"):
            tangent_program(functions, "model", {"y", "p", "dydt"})
    else:
        check(functions, "model", {"y", "p", "dydt"}, args)


@pytest.mark.parametrize("factory", [
    "altitude_below", "node_crossing", "latitude_crossing", "umbra", "umbra_cylindrical",
    "penumbra"])
def test_orbit_events_against_finite_differences(factory):
    from batchivp.orbit import events
    made = {"altitude_below": lambda: events.altitude_below(120.0),
            "node_crossing": events.node_crossing,
            "latitude_crossing": lambda: events.latitude_crossing(30.0),
            "umbra": events.umbra, "umbra_cylindrical": lambda: events.umbra(shadow="cylindrical"),
            "penumbra": events.penumbra}[factory]()
    record = made.plugin
    functions = {record.name: record.source,
                 **{h.rendered_name: h.source for h in record.helpers}}
    constants = {}
    for globals_ in [record.globals_] + [h.globals_ for h in record.helpers]:
        for name, (kind, value) in globals_.items():
            constants[name] = (eval(value, {"math": math, "np": np}) if kind == "const"
                               else importlib.import_module(value))
    args = [1000.0, ORBIT_STATE, [EPOCH]]
    check(functions, record.name, {"y", "p"}, args, constants, h=1e-2,
          scale=[1e5, [1.0] * 3 + [1e-3] * 3, [1e5]], rtol=1e-7)


# ---- the index analysis bounds every tangent subscript (batchivp.bounds) ----

SPRINGS = """
def springs(t, y, p, dydt):
    for i in range(3):
        dydt[i] = y[i + 3]
        dydt[i + 3] = -p[2] * y[i + 3]
    pull(y[0:3], p[0:2], dydt[3:6])
"""
PULL = """
def pull(x, q, out):
    for j in range(3):
        out[j] -= q[0] * x[j] + q[1] * x[j] ** 3
    for k in range(1, 3):  # not j: the index analysis gives a name one range
        out[k] += q[1] * x[k - 1] * x[k]
"""


def bounds_case(name):
    """(record, constants, (t, y, p), per column kind ``y`` and ``p``: (scale, h))."""
    from batchivp.source import Helper, Plugin
    if name == "orbit":
        record, _, _, constants, params = orbit_program(["J2", "drag", "sun"])
        return (record, constants, (1000.0, ORBIT_STATE, params),
                {"y": ([1.0] * 3 + [1e-3] * 3, 1e-2), "p": ([1e3] + [0.1 * v for v in params[1:]],
                                                            1.0)})
    record = {"kepler": Plugin("rhs", "kepler", KEPLER, {}),
              "lorenz": Plugin("rhs", "lorenz", LORENZ, {}),
              "springs": Plugin("rhs", "springs", SPRINGS, {},
                                helpers=[Helper("pull", "pull", PULL, {})])}[name]
    y, p = {"kepler": KEPLER_ARGS[1:3], "lorenz": ([1.0, 2.0, 20.0], [10.0, 28.0, 8.0 / 3.0]),
            "springs": ([0.3, -0.2, 0.5, 0.1, 0.0, -0.4], [2.0, 0.7, 0.1])}[name]
    scale = {k: ([abs(v) + 1.0 for v in a], 1e-4) for k, a in (("y", y), ("p", p))}
    return record, {}, (0.3, y, p), scale


def sensitivity_plugin(record, n, m, columns):
    """(plugin, functions, tangents): the right-hand side of ``record``'s state and
    ``columns`` sensitivity columns, laid out as batchivp.sensitivity lays them out
    (``y = [y, s_1, ...]``, ``p = [p, d_1, ...]``), that calls the entry's tangent with
    constant slices, one call per column, then the entry on the state."""
    from batchivp.source import Helper, Plugin, def_source
    entry = f"called_{record.name}"
    functions = {entry: record.source, **{h.rendered_name: h.source for h in record.helpers}}
    globals_of = {entry: record.globals_, **{h.rendered_name: h.globals_ for h in record.helpers}}
    tangents = tangent_program(functions, entry, {"y", "p", "dydt"})
    lines = []
    for c in range(1, columns + 1):
        column, direction = f"{c * n}:{(c + 1) * n}", f"{c * m}:{(c + 1) * m}"
        lines.append(f"{tangent_name(entry)}(t, 0.0, y[:{n}], y[{column}], p[:{m}], "
                     f"p[{direction}], dydt[:{n}], dydt[{column}])")
    lines.append(f"{entry}(t, y[:{n}], p[:{m}], dydt[:{n}])")
    helpers = list(record.helpers) + [Helper(record.name, entry, record.source, record.globals_)]
    helpers += [Helper(tangent_name(k), tangent_name(k), text, globals_of[k])
                for k, text in tangents.items()]
    source = def_source("sensitivity_rhs", "rhs", lines)
    return Plugin("rhs", "sensitivity_rhs", source, {}, helpers=helpers), functions, tangents


@pytest.mark.parametrize("name", ["kepler", "lorenz", "springs", "orbit"])
def test_the_index_analysis_bounds_every_subscript_of_the_tangents(name):
    """Called with constant slices, the tangents need no run-time index check where the
    primal needs none; and the columns they compute are J s + f_p d (against finite
    differences), the state's derivative the original's bit for bit."""
    from batchivp.bounds import analyse
    record, constants, (t, y, p), scale = bounds_case(name)
    n, m = len(y), len(p)
    assert analyse(record).checked == {}  # the primal's own subscripts: all bounded
    plugin, functions, tangents = sensitivity_plugin(record, n, m, columns=2)
    report = analyse(plugin)
    assert report.checked == {} and report.unverifiable == [] and report.out_of_view == []
    assert report.dydt_written == 3 * n  # every column written, through the views
    # Column 1 moves y only, column 2 p only (d_t is 0.0 in the calls).
    rng = np.random.default_rng(5)
    s = np.asarray(scale["y"][0]) * rng.standard_normal(n)
    d = np.asarray(scale["p"][0]) * rng.standard_normal(m)
    ns = build(functions, tangents, constants)
    exec(compile(plugin.source, "<sensitivity_rhs>", "exec"), ns)
    system = np.concatenate([y, s, np.zeros(n)])
    directions = np.concatenate([p, np.zeros(m), d])
    dydt = np.full(3 * n, np.nan)
    ns["sensitivity_rhs"](t, system, directions, dydt)
    entry = f"called_{record.name}"
    args = [t, y, p, np.zeros(n)]
    np.testing.assert_array_equal(dydt[:n], primal(ns, entry, args)[3])
    for c, direction, h in ((1, [0.0, s, np.zeros(m), np.zeros(n)], scale["y"][1]),
                            (2, [0.0, np.zeros(n), d, np.zeros(n)], scale["p"][1])):
        expected = finite_difference(ns, entry, args, direction, h)[3]
        # The differences' own rounding, 3 eps |f| / h, bounds what they can resolve
        # (the orbit's parameter column is ~1e-9 of the acceleration).
        rounding = 30.0 * np.finfo(float).eps * np.abs(dydt[:n]) / h
        error = np.abs(dydt[c * n:(c + 1) * n] - expected)
        np.testing.assert_array_less(error, 1e-7 * np.max(np.abs(expected)) + rounding
                                     + 1e-7 * np.abs(expected) + 1e-300)
