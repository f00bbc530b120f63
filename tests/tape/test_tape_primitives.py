"""Every primitive against float64 central finite differences and against ``jax.grad``.

Each case is ``fn(ns, *args)`` written once for both namespaces (``toolkit.tape.numpy`` and a
jax namespace with the same names). The checked loss is ``sum(fn(...) * r)`` with a random
``r``, so every output element gets its own weight.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tape_fd import finite_difference
from test_tape_ops import CASES as OPS_CASES

import toolkit.tape as tp
from toolkit.tape import numpy as tnp


def _jax_adjoint(x: jax.Array) -> jax.Array:
    return x.reshape(1, -1) if x.ndim == 1 else x.T


JNS = types.SimpleNamespace(
    **{name: getattr(jnp, name) for name in dir(jnp) if not name.startswith("_")},
    sigmoid=jax.nn.sigmoid, relu=jax.nn.relu, softmax=jax.nn.softmax,
    log_softmax=jax.nn.log_softmax, logsumexp=jax.scipy.special.logsumexp,
    adjoint=_jax_adjoint,
)
TNS = tnp

Fn = Callable[..., Any]


def _inputs(shapes: Sequence[tuple[int, ...]], domain: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        v = rng.standard_normal(s)
        out.append(np.abs(v) + 0.5 if domain == "positive" else v)
    return out


def _check(fn: Fn, shapes: Sequence[tuple[int, ...]], domain: str = "real", seed: int = 0,
           fd: bool = True) -> None:
    """Tape gradients of ``sum(fn(*args) * r)`` equal jax.grad's and finite differences."""
    values = _inputs(shapes, domain, seed)
    args = [tp.array(v) for v in values]
    r = np.random.default_rng(seed + 100).standard_normal(fn(TNS, *args).shape)

    def tape_loss() -> tp.Array:
        return tnp.sum(fn(TNS, *args) * r)

    value, gs = tp.withgradient(tape_loss, tp.Params(args))
    # One compiled program per case: much faster than dispatching jax ops one by one.
    jax_value, jax_grads = jax.jit(jax.value_and_grad(
        lambda *a: jnp.sum(fn(JNS, *a) * r), argnums=tuple(range(len(args)))))(*values)
    np.testing.assert_allclose(value, jax_value, rtol=1e-10, atol=1e-12)
    for a, jg in zip(args, jax_grads, strict=True):
        assert gs[a].shape == a.shape and gs[a].dtype == np.float64
        np.testing.assert_allclose(gs[a], jg, rtol=1e-9, atol=1e-12)
        if fd:
            np.testing.assert_allclose(gs[a], finite_difference(tape_loss, a),
                                       rtol=1e-5, atol=1e-7)



BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((3, 1), ()), ((), (2, 3))]

BINARY = {
    "add": lambda ns, x, y: ns.add(x, y),
    "subtract": lambda ns, x, y: x - y,
    "multiply": lambda ns, x, y: ns.multiply(x, y),
    "divide": lambda ns, x, y: x / y,
    "maximum": lambda ns, x, y: ns.maximum(x, y),
    "minimum": lambda ns, x, y: ns.minimum(x, y),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
def test_binary_broadcasting(name: str, shapes: tuple[tuple[int, ...], ...]) -> None:
    _check(BINARY[name], shapes, domain="positive" if name == "divide" else "real")


def test_power_both_operands() -> None:
    _check(lambda ns, x, y: ns.power(x, y), [(3, 4), (4,)], domain="positive")
    _check(lambda ns, x: x ** 3, [(5,)])
    _check(lambda ns, x: 2.0 ** x, [(5,)])


UNARY = {
    "negative": (lambda ns, x: -x, "real"),
    "exp": (lambda ns, x: ns.exp(x), "real"),
    "log": (lambda ns, x: ns.log(x), "positive"),
    "sin": (lambda ns, x: ns.sin(x), "real"),
    "cos": (lambda ns, x: ns.cos(x), "real"),
    "tanh": (lambda ns, x: ns.tanh(x), "real"),
    "sigmoid": (lambda ns, x: ns.sigmoid(x), "real"),
    "relu": (lambda ns, x: ns.relu(x), "real"),
    "abs": (lambda ns, x: ns.abs(x), "real"),
    "sqrt": (lambda ns, x: ns.sqrt(x), "positive"),
    "square": (lambda ns, x: ns.square(x), "real"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name: str) -> None:
    fn, domain = UNARY[name]
    _check(fn, [(3, 4)], domain=domain)


def test_constants_mix_in() -> None:
    c = np.random.default_rng(5).standard_normal((3, 4))
    _check(lambda ns, x: 2.0 * x - c + 1 / (x * x + 1.5) - 3, [(3, 4)])
    _check(lambda ns, x: c.T @ x + c[0], [(3, 4)])


def test_where_broadcasts_both_branches() -> None:
    cond = np.random.default_rng(6).standard_normal((3, 4)) > 0
    _check(lambda ns, x, y: ns.where(cond, x, y), [(3, 4), (4,)])
    _check(lambda ns, x: ns.where(cond, x, 0.0), [(3, 4)])


MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
          ((2, 3, 4), (4, 5)), ((2, 3, 4), (1, 4, 2)), ((3, 4), (2, 4, 5))]


@pytest.mark.parametrize("shapes", MATMUL, ids=str)
def test_matmul(shapes: tuple[tuple[int, ...], ...]) -> None:
    _check(lambda ns, x, y: x @ y, shapes)


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 2)), ((), (3,))],
                         ids=str)
def test_dot(shapes: tuple[tuple[int, ...], ...]) -> None:
    _check(lambda ns, x, y: ns.dot(x, y), shapes)


REDUCTIONS = ["sum", "mean", "max", "min", "logsumexp"]
AXES = [None, 0, -1, (0, 2)]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(name: str, axis: Any, keepdims: bool) -> None:
    _check(lambda ns, x: getattr(ns, name)(x, axis=axis, keepdims=keepdims), [(2, 3, 4)])


def test_reduction_methods() -> None:
    _check(lambda ns, x: x.sum(axis=0) + x.mean(axis=0) + x.max(axis=0) + x.min(axis=0),
           [(3, 4)])


def test_max_ties_share_the_gradient_like_jax() -> None:
    v = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x = tp.array(v)
    for axis in (None, 1):
        gs = tp.gradient(lambda axis=axis: tnp.sum(tnp.max(x, axis=axis)), tp.Params([x]))
        np.testing.assert_allclose(gs[x], jax.grad(lambda a, axis=axis: jnp.sum(
            jnp.max(a, axis=axis)))(v))
    y = tp.array(v[::-1].copy())
    gs = tp.gradient(lambda: tnp.sum(tnp.maximum(x, y)), tp.Params([x, y]))
    jx, jy = jax.grad(lambda a, b: jnp.sum(jnp.maximum(a, b)), argnums=(0, 1))(v, v[::-1])
    np.testing.assert_allclose(gs[x], jx)
    np.testing.assert_allclose(gs[y], jy)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_family(name: str, axis: int) -> None:
    _check(lambda ns, x: getattr(ns, name)(x, axis=axis), [(3, 4)])


SHAPE_OPS = {
    "reshape": (lambda ns, x: ns.reshape(x, (4, 3)), (3, 4)),
    "reshape_method": (lambda ns, x: x.reshape(2, -1), (3, 4)),
    "transpose": (lambda ns, x: ns.transpose(x, (2, 0, 1)), (2, 3, 4)),
    "transpose_negative_axes": (lambda ns, x: ns.transpose(x, (-1, 0, 1)), (2, 3, 4)),
    "T": (lambda ns, x: x.T, (3, 4)),
    "swapaxes": (lambda ns, x: ns.swapaxes(x, 0, 2), (2, 3, 4)),
    "expand_dims": (lambda ns, x: ns.expand_dims(x, 1), (3, 4)),
    "squeeze": (lambda ns, x: ns.squeeze(x, 1), (3, 1, 4)),
    "adjoint_vector": (lambda ns, x: ns.adjoint(x), (4,)),
    "adjoint_matrix": (lambda ns, x: ns.adjoint(x), (3, 4)),
    "broadcast_to": (lambda ns, x: ns.broadcast_to(x, (2, 3, 4)), (3, 1)),
    "basic_index": (lambda ns, x: x[1:3, ::-2], (4, 5)),
    "int_index": (lambda ns, x: x[0] * x[-1], (4, 5)),
    "ellipsis_newaxis": (lambda ns, x: x[..., None, 2], (4, 5)),
    "repeated_int_index": (lambda ns, x: x[np.array([0, 2, 0, 0])], (4, 5)),
    "two_axis_fancy_index": (lambda ns, x: x[np.array([1, 1]), np.array([2, 2])], (4, 5)),
    "bool_mask": (lambda ns, x: x[np.array([True, False, True, True])], (4, 5)),
    "take_flat_repeated": (lambda ns, x: ns.take(x, np.array([0, 3, 3, -1])), (4, 5)),
    "take_axis": (lambda ns, x: ns.take(x, np.array([1, 1, 0]), axis=1), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_and_indexing(name: str) -> None:
    fn, shape = SHAPE_OPS[name]
    _check(fn, [shape])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis: int) -> None:
    c = np.ones((3, 4))
    _check(lambda ns, x, y: ns.concatenate([x, c, y], axis=axis), [(3, 4), (3, 4)])
    _check(lambda ns, x, y: ns.stack([x, c, y], axis=axis), [(3, 4), (3, 4)])


def test_composite_network() -> None:
    """A small MLP with a cross-entropy loss: every piece at once."""
    data = np.random.default_rng(7).standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])

    def loss(ns: Any, w1: Any, b1: Any, w2: Any) -> Any:
        h = ns.tanh(data @ w1 + b1)
        logits = ns.relu(h) @ w2
        picked = ns.take(ns.log_softmax(logits, axis=-1).reshape(-1),
                         np.arange(5) * 3 + labels)
        return -ns.mean(picked) + 0.1 * ns.sum(ns.square(w1))

    _check(loss, [(3, 4), (4,), (4, 3)])


@settings(max_examples=25, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                max_side=3),
       name=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_binary_broadcasting_property(shapes: Any, name: str, seed: int) -> None:
    _check(BINARY[name], shapes.input_shapes, seed=seed, fd=False,
           domain="positive" if name == "divide" else "real")


def test_astype_casts_gradients_back() -> None:
    _check(lambda ns, x: x.astype(ns.float32).astype(ns.float64) * x, [(3,)], fd=False)
    _check(lambda ns, x: ns.asarray(x, dtype=ns.float32) * 2.0, [(3,)], fd=False)


def test_float32_gradients_stay_float32() -> None:
    x = tp.array(np.ones(3), dtype=np.float32)
    gs = tp.gradient(lambda: tnp.sum(x * 2.0 + np.ones(3)), tp.Params([x]))
    assert gs[x].dtype == np.float32


def test_every_registered_primitive_is_covered() -> None:
    covered = {"add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "negative",
               "exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "sqrt", "square",
               "where", "matmul", "sum", "mean", "max", "min", "logsumexp", "softmax",
               "log_softmax", "reshape", "transpose", "swapaxes", "expand_dims", "squeeze",
               "adjoint", "broadcast_to", "getitem", "getitem_gather", "take", "concatenate",
               "stack", "astype"}
    specs = [f._spec for f in vars(tnp).values() if hasattr(f, "_spec")]
    differentiable = {s.name for s in specs if s.makers or s.argnum_maker}
    assert differentiable <= covered | set(OPS_CASES)
