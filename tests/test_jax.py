"""The JAX bridge (batchivp.jax) on every target: its derivatives against central
finite differences of tight plain solves and against jax.jacfwd of diffrax's Dopri8,
under jax.jit and jax.vmap. Skipped without JAX (the extra ``jax``).

Lotka–Volterra, n = 2 and m = 4: the bridge's derivatives with respect to both y0 and
params use the linked core of size 2 (1 + 2 + 4) = 14, the plain solves that of 2.
"""

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

import batchivp as bi  # noqa: E402
import batchivp.jax as bj  # noqa: E402

P = np.array([1.0, 0.1, 1.5, 0.075])
Y0 = np.array([[10.0, 5.0], [6.0, 8.0]])
SPAN = (0.0, 5.0)
TE = np.linspace(0.0, 5.0, 11)
TIGHT = dict(rtol=1e-12, atol=1e-12)
BRIDGE = dict(rtol=1e-10, atol=1e-10)
REPO = Path(__file__).resolve().parent.parent


@bi.rhs
def lotka(t, y, p, dydt):  # prey, predator; p = (alpha, beta, gamma, delta)
    dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    dydt[1] = p[3] * y[0] * y[1] - p[2] * y[1]


DATA = bi.solve_batch(lotka, SPAN, Y0, params=P * 1.1, t_eval=TE, **TIGHT).y


def bridge_loss(p, y0, target):
    res = bj.solve_batch(lotka, SPAN, y0, params=p, t_eval=TE, target=target, **BRIDGE)
    return jnp.sum((res.y - DATA) ** 2) + jnp.sum(res.y_final ** 2)


def plain_loss(p, y0):
    res = bi.solve_batch(lotka, SPAN, y0, params=p, t_eval=TE, target="cpu", **TIGHT)
    return np.sum((res.y - DATA) ** 2) + np.sum(res.y_final ** 2)


def central_differences(f, x, rel=1e-6):
    grad = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        h = rel * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        grad[j] = (f(up) - f(down)) / (2 * h)
    return grad


def test_gradient_of_a_least_squares_loss_is_finite_differences(target):
    grad_p, grad_y0 = jax.grad(bridge_loss, argnums=(0, 1))(jnp.asarray(P), jnp.asarray(Y0),
                                                            target)
    fd_p = central_differences(lambda p: plain_loss(p, Y0), P)
    fd_y0 = central_differences(lambda y0: plain_loss(P, y0), Y0)
    np.testing.assert_allclose(grad_p, fd_p, rtol=1e-5)
    np.testing.assert_allclose(grad_y0, fd_y0, rtol=1e-5)


def diffrax_trajectory(p, y0):
    """Dopri8 of diffrax at tight tolerances: (n, k) at TE."""
    import diffrax

    def f(t, y, p):
        return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[3] * y[0] * y[1] - p[2] * y[1]])

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f), diffrax.Dopri8(), SPAN[0], SPAN[1], 0.01, y0, args=p,
        saveat=diffrax.SaveAt(ts=jnp.asarray(TE)), max_steps=100_000,
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
        adjoint=diffrax.DirectAdjoint())  # forward mode through the steps
    return sol.ys.T


@functools.cache
def diffrax_jacobians():
    """jax.jacfwd of diffrax's trajectory by (params, y0) of the first problem."""
    return jax.jit(jax.jacfwd(diffrax_trajectory, argnums=(0, 1)))(jnp.asarray(P),
                                                                   jnp.asarray(Y0[0]))


def test_jacobians_are_those_of_diffrax(target):
    pytest.importorskip("diffrax")

    def trajectory(p, y0):
        res = bj.solve_batch(lotka, SPAN, y0[None, :], params=p, t_eval=TE, target=target,
                             **BRIDGE)
        return res.y[0]

    p, y0 = jnp.asarray(P), jnp.asarray(Y0[0])
    theirs = diffrax_jacobians()
    for mode in (jax.jacfwd, jax.jacrev):
        ours = mode(trajectory, argnums=(0, 1))(p, y0)
        for a, b in zip(ours, theirs):  # (n, k, m) and (n, k, n)
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def test_under_jit_the_values_are_the_plain_solve_and_the_gradient_the_same(target):
    solve = jax.jit(lambda p, y0: bj.solve_batch(lotka, SPAN, y0, params=p, t_eval=TE,
                                                  target=target, **BRIDGE))
    res = solve(jnp.asarray(P), jnp.asarray(Y0))
    plain = bi.solve_batch(lotka, SPAN, Y0, params=P, t_eval=TE, target=target, **BRIDGE)
    np.testing.assert_array_equal(res.y, plain.y)
    np.testing.assert_array_equal(res.y_final, plain.y_final)
    np.testing.assert_array_equal(res.t_final, plain.t_final)
    np.testing.assert_array_equal(res.status, plain.status)
    assert res.success.all()
    grad = jax.grad(bridge_loss, argnums=(0, 1))
    jitted = jax.jit(grad, static_argnums=2)(jnp.asarray(P), jnp.asarray(Y0), target)
    eager = grad(jnp.asarray(P), jnp.asarray(Y0), target)
    for a, b in zip(jitted, eager):
        np.testing.assert_array_equal(a, b)


def test_vmap_solves_every_mapped_problem_as_its_own():
    """The mapped problems are one batch on the host, whatever the target."""
    target = "cpu"
    ps = jnp.asarray(np.stack([P, P * 0.9, P * 1.2]))
    y0s = jnp.asarray(np.stack([Y0, Y0 * 1.5, Y0]))
    grad = jax.grad(functools.partial(bridge_loss, target=target), argnums=(0, 1))
    mapped = jax.vmap(grad)(ps, y0s)
    shared = jax.vmap(grad, in_axes=(0, None))(ps, jnp.asarray(Y0))
    for b in range(3):
        one = grad(ps[b], y0s[b])
        np.testing.assert_allclose(mapped[0][b], one[0], rtol=1e-12)
        np.testing.assert_allclose(mapped[1][b], one[1], rtol=1e-12)
        np.testing.assert_allclose(shared[0][b], grad(ps[b], jnp.asarray(Y0))[0], rtol=1e-12)


@pytest.mark.parametrize("wrt, mode", [((0,), "params"), ((1,), "y0"), ((0, 1), "all")])
def test_the_solve_integrates_only_the_columns_the_tangents_need(monkeypatch, wrt, mode):
    asked = []

    def call(static, mode, y0, p):  # the outputs' shapes, no solve
        asked.append(mode)
        shapes = bj._output_shapes(static, mode)
        return {name: jnp.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}

    monkeypatch.setattr(bj, "_call", call)
    jax.grad(bridge_loss, argnums=wrt)(jnp.asarray(P), jnp.asarray(Y0), "cpu")
    assert asked == [mode]
    asked.clear()
    bridge_loss(jnp.asarray(P), jnp.asarray(Y0), "cpu")
    assert asked == [None]


def test_shared_and_per_problem_params_have_their_gradients():
    def loss(p, y0):  # by y0 too: the sensitivities of the other tests, no other core
        return jnp.sum(bj.solve_batch(lotka, SPAN, y0, params=p, target="cpu",
                                      **BRIDGE).y_final)

    grad = jax.grad(loss, argnums=(0, 1))
    y0 = jnp.asarray(Y0)
    shared = grad(jnp.asarray(P), y0)[0]
    rows = grad(jnp.asarray(np.stack([P, P])), y0)[0]
    assert rows.shape == (2, 4)
    np.testing.assert_allclose(rows.sum(axis=0), shared, rtol=1e-12)
    one_row = grad(jnp.asarray(P[None, :]), y0)[0]
    assert one_row.shape == (1, 4)
    np.testing.assert_allclose(one_row[0], shared, rtol=1e-12)


@bi.rhs
def oscillator(t, y, p, dydt):  # y'' = -p y
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0]


def test_a_scalar_parameter_has_a_scalar_gradient_the_analytic_one():
    """y = a cos(w t) + b sin(w t) / w with w = sqrt(p): dy/dp = dy/dw / (2 w)."""
    (a, b), p, t = (0.7, -0.4), 2.0, 3.0

    def position(p, y0):  # by y0 too: the core of test_sensitivity's 'all' with m = 1
        res = bj.solve_batch(oscillator, (0.0, t), y0[None, :], params=p, target="cpu",
                             rtol=1e-12, atol=1e-12)
        return res.y_final[0, 0]

    grad_p, grad_y0 = jax.grad(position, argnums=(0, 1))(jnp.asarray(p), jnp.asarray([a, b]))
    w = np.sqrt(p)
    dy_dw = -a * t * np.sin(w * t) + b * (t * np.cos(w * t) / w - np.sin(w * t) / w ** 2)
    assert grad_p.shape == ()
    np.testing.assert_allclose(grad_p, dy_dw / (2 * w), rtol=1e-9)
    np.testing.assert_allclose(grad_y0, [np.cos(w * t), np.sin(w * t) / w], rtol=1e-9)


def test_a_non_finite_input_gives_nan_and_its_status_not_an_exception():
    y0 = jnp.asarray(Y0).at[1, 0].set(jnp.nan)
    res = jax.jit(lambda y0: bj.solve_batch(lotka, SPAN, y0, params=P, target="cpu"))(y0)
    assert list(res.status) == [bi.Status.FINISHED, bi.Status.NONFINITE]
    assert np.isfinite(res.y_final[0]).all() and np.isnan(res.y_final[1]).all()


def test_static_arguments_must_be_concrete_and_named():
    with pytest.raises(TypeError, match="t_span must be concrete"):
        jax.jit(lambda tf: bj.solve_batch(lotka, (0.0, tf), Y0, params=P))(5.0)
    with pytest.raises(TypeError, match="t_eval must be concrete"):
        jax.jit(lambda te: bj.solve_batch(lotka, SPAN, Y0, params=P, t_eval=te))(TE)
    with pytest.raises(TypeError, match="events is not an option"):
        bj.solve_batch(lotka, SPAN, Y0, params=P, events=[object()])
    with pytest.raises(TypeError, match="unexpected keyword argument 'rtoll'"):
        bj.solve_batch(lotka, SPAN, Y0, params=P, rtoll=1e-3)
    with pytest.raises(ValueError, match="y0 must have shape"):
        bj.solve_batch(lotka, SPAN, Y0[0], params=P)
    with pytest.raises(ValueError, match="params must be a scalar"):
        bj.solve_batch(lotka, SPAN, Y0, params=np.ones((3, 4)))
    with pytest.raises(ValueError, match="reads p\\[3\\]"):
        bj.solve_batch(lotka, SPAN, Y0, params=P[:2])


def test_without_64_bit_floats_the_error_says_how_to_enable_them():
    with jax.enable_x64(False):
        with pytest.raises(RuntimeError, match="jax_enable_x64"):
            bj.solve_batch(lotka, SPAN, Y0, params=P)


def test_nuts_example_runs_quick():
    pytest.importorskip("numpyro")
    out = subprocess.run([sys.executable, str(REPO / "examples" / "lotka_nuts.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "posterior mean" in out.stdout


@pytest.mark.parametrize("name, value", [("summarize", "min"), ("out", "x.zarr"),
                                         ("save_y", False), ("dtype", np.float32)])
def test_options_without_an_output_here_are_refused_by_name(name, value):
    with pytest.raises(TypeError, match=f"{name} is not an option of batchivp.jax"):
        bj.solve_batch(lotka, SPAN, jnp.asarray(Y0), params=jnp.asarray(P), t_eval=TE,
                       target="cpu", **{name: value})
