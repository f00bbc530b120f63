"""Regressions: results that were once silently wrong, each checked against jax or PyTorch.

Every case is float64 and compares the tape with an independent computation (``jax.grad``,
PyTorch's autograd with its own view semantics, or a derivative worked out by hand), or
checks that what cannot be supported raises an error naming the function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

RNG = np.random.default_rng(0)
V3 = RNG.standard_normal(3)
M23 = RNG.standard_normal((2, 3))


def _torch() -> Any:
    """PyTorch, or a skip of the calling test where it is not installed (only the tests that
    compare with PyTorch need it)."""
    return pytest.importorskip("torch")


def _torch_grad(fn: Callable[..., Any], *values: np.ndarray) -> list[np.ndarray]:
    """PyTorch's gradient of scalar ``fn(*leaves)`` w.r.t. each leaf (zeros where unused)."""
    torch = _torch()
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    fn(*leaves).backward()
    return [np.zeros_like(v) if t.grad is None else t.grad.numpy()
            for t, v in zip(leaves, values, strict=True)]


# --- array / asarray of tape arrays inside the function ----------------------------------------


def test_array_of_an_array_inside_the_function_keeps_the_gradient() -> None:
    x = tp.array(V3)
    gs = tp.gradient(lambda: tnp.sum(tnp.array(x) * x), tp.Params([x]))
    np.testing.assert_allclose(gs[x], jax.grad(lambda a: jnp.sum(jnp.array(a) * a))(V3))


def test_array_of_a_list_of_arrays_stacks_differentiably() -> None:
    a, b = tp.array(V3), tp.array(V3[::-1].copy())
    weights = np.arange(6.0).reshape(2, 3)
    gs = tp.gradient(lambda: tnp.sum(tp.array([a, b * b]) * weights), tp.Params([a, b]))
    ja, jb = jax.grad(lambda p, q: jnp.sum(jnp.array([p, q * q]) * weights), argnums=(0, 1))(
        V3, V3[::-1].copy())
    np.testing.assert_allclose(gs[a], ja)
    np.testing.assert_allclose(gs[b], jb)


def test_asarray_of_a_nested_list_with_numbers_and_elements() -> None:
    x = tp.array(V3)
    f = lambda: tnp.sum(tnp.asarray([[x[0], 2.0], [x[1] * x[2], x[0]]]) ** 2)  # noqa: E731
    gs = tp.gradient(f, tp.Params([x]))
    expected = jax.grad(lambda a: jnp.sum(jnp.asarray([[a[0], 2.0], [a[1] * a[2], a[0]]]) ** 2))(
        V3)
    np.testing.assert_allclose(gs[x], expected)


def test_array_with_a_float32_dtype_casts_differentiably() -> None:
    x = tp.array(V3)
    gs = tp.gradient(lambda: tnp.sum(tp.array([x, x], dtype=np.float32) * 3.0), tp.Params([x]))
    np.testing.assert_allclose(gs[x], np.full(3, 6.0))
    assert gs[x].dtype == np.float64


def test_array_outside_the_function_is_still_an_independent_copy() -> None:
    x = tp.array(V3)
    copied = tp.array(x)
    assert copied.base is copied and not np.shares_memory(copied.numpy(), x.numpy())
    gs = tp.gradient(lambda: tnp.sum(copied * x), tp.Params([x, copied]))
    np.testing.assert_allclose(gs[x], V3)
    np.testing.assert_allclose(gs[copied], V3)


# --- power ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [0.0, 0, np.array([0.0, 2.0, 0.0])], ids=str)
def test_zero_exponent_at_zero_has_zero_derivative_like_torch(exponent: object) -> None:
    torch = _torch()
    v = np.array([0.0, 0.0, 1.5])
    x = tp.array(v)
    gs = tp.gradient(lambda: tnp.sum(x ** exponent), tp.Params([x]))
    e = torch.tensor(exponent) if isinstance(exponent, np.ndarray) else exponent
    np.testing.assert_array_equal(gs[x], _torch_grad(lambda t: (t ** e).sum(), v)[0])
    assert np.isfinite(gs[x]).all()


def test_array_exponent_gradients_match_torch() -> None:
    xv, yv = np.array([0.0, 0.5, 2.0, 0.0]), np.array([0.0, 2.0, 0.0, 3.0])
    x, y = tp.array(xv), tp.array(yv)
    gs = tp.gradient(lambda: tnp.sum(x ** y), tp.Params([x, y]))
    tx, ty = _torch_grad(lambda a, b: (a ** b).sum(), xv, yv)
    np.testing.assert_allclose(gs[x], tx)
    np.testing.assert_allclose(gs[y], ty)


# --- integer element picks made outside the function ---------------------------------------------


def test_integer_index_outside_is_a_zero_d_view_of_the_memory() -> None:
    x = tp.array(V3, name="x")
    element = x[1]
    assert element.shape == () and element.base is x and element.parent is x
    assert np.shares_memory(element._data, x._data)
    element[...] = 5.0
    element += 1.0
    assert x.numpy()[1] == 6.0
    corner = tp.array(M23)[1, 2]
    assert corner.shape == () and np.shares_memory(corner._data, corner.base._data)


def test_element_pick_under_both_policies_matches_torch() -> None:
    torch = _torch()
    x = tp.array(V3)
    element = x[1]
    f = lambda: element * tnp.sum(x * x) + tnp.sin(element)  # noqa: E731
    with pytest.warns(tp.AliasWarning):
        storage = tp.gradient(f, tp.Params([x, element]), alias="storage")
    identity = tp.gradient(f, tp.Params([x, element]))

    # Storage: the element is a torch view of x, so x.grad is the total derivative.
    tx = torch.tensor(V3, requires_grad=True)
    te = tx[1]
    (te * (tx * tx).sum() + torch.sin(te)).backward()
    np.testing.assert_allclose(storage[x], tx.grad.numpy())
    np.testing.assert_allclose(storage[element], tx.grad.numpy()[1])
    assert storage[element].shape == ()
    # Identity: the element made outside is its own leaf (detached in torch).
    gx, ge = _torch_grad(lambda a, e: e * (a * a).sum() + torch.sin(e), V3, V3[1])
    np.testing.assert_allclose(identity[x], gx)
    np.testing.assert_allclose(identity[element], ge)


def test_augmented_assignment_to_an_element_writes_the_memory() -> None:
    x = tp.array(V3)
    w = tp.array(M23)
    x[1] += 10.0  # Python reads x[1], adds in place, then stores it back
    w[0, 2] *= 5.0
    np.testing.assert_allclose(x.numpy(), V3 + np.array([0.0, 10.0, 0.0]))
    np.testing.assert_allclose(w.numpy(), M23 * [[1.0, 1.0, 5.0], [1.0, 1.0, 1.0]])


def test_iterating_over_an_array_gives_differentiable_elements() -> None:
    x = tp.array(V3)
    f = lambda: sum(x) * 2.0 + max(x) * x[0]  # Python's sum and max  # noqa: E731
    gs = tp.gradient(f, tp.Params([x]))
    np.testing.assert_allclose(gs[x], _torch_grad(lambda t: t.sum() * 2.0 + t.max() * t[0],
                                                  V3)[0])


def test_in_place_write_through_an_element_view_is_caught_before_back() -> None:
    x = tp.array(V3, name="x")
    element = x[0]
    _, back = tp.pullback(lambda: tnp.sum(x * x), tp.Params([x]))
    element -= 1.0
    with pytest.raises(RuntimeError, match="array 'x' was modified in place"):
        back()


def test_view_of_a_view_made_outside_then_written_in_place() -> None:
    torch = _torch()
    w = tp.array(M23)
    column = w.T[1]  # a view of a view: w[:, 1]
    assert column.base is w and column.parent.parent is w
    column += 10.0
    np.testing.assert_allclose(w.numpy()[:, 1], M23[:, 1] + 10.0)
    gs = tp.gradient(lambda: tnp.sum(tnp.tanh(column)) + tnp.sum(w * w),
                     tp.Params([w]), alias="storage")
    tw = torch.tensor(w.numpy(), requires_grad=True)
    (torch.tanh(tw.T[1]).sum() + (tw * tw).sum()).backward()
    np.testing.assert_allclose(gs[w], tw.grad.numpy())


# --- 0-d arrays ---------------------------------------------------------------------------------


def test_zero_d_result_computed_outside_keeps_its_shape() -> None:
    x = tp.array(V3)
    total = tnp.sum(x)  # computed outside any function: a fresh 0-d array
    assert tnp.expand_dims(total, 0).shape == (1,)
    assert total.shape == ()
    gs = tp.gradient(lambda: total * total, tp.Params([total]), alias="storage")
    assert total.shape == () and gs[total].shape == ()
    np.testing.assert_allclose(gs[total], 2 * V3.sum())
    total += 1.0  # an in-place write to a 0-d array lands in its memory
    np.testing.assert_allclose(total.numpy(), V3.sum() + 1.0)


def test_expand_dims_of_a_zero_d_param() -> None:
    s = tp.array(2.0)
    row = tnp.expand_dims(s, 0)
    assert row.shape == (1,) and row.base is s
    gs = tp.gradient(lambda: tnp.sum(row * row) + s, tp.Params([s]), alias="storage")
    np.testing.assert_allclose(gs[s], 2 * 2.0 + 1)


# --- copying reshapes ---------------------------------------------------------------------------


def test_a_reshape_that_copies_warns_at_the_call() -> None:
    w = tp.array(M23, name="w")
    with pytest.warns(tp.AliasWarning, match=r"reshape of a view of array 'w'.*copy") as record:
        flat = w.T.reshape(6)
    assert record[0].filename == __file__
    assert flat.base is flat and flat.parent is None
    w[0, 0] = 100.0
    assert flat.numpy()[0] == M23[0, 0]  # a copy: no alias
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = tp.array(w.T).reshape(6)  # the fix the warning suggests
    assert explicit.shape == (6,)


def test_a_ravel_that_copies_warns_and_one_that_views_does_not() -> None:
    w = tp.array(M23, name="w")
    with pytest.warns(tp.AliasWarning, match="ravel of a view of array 'w'"):
        assert tnp.ravel(w.T).base is not w
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tnp.ravel(w).base is w


def test_a_reshape_that_is_a_view_does_not_warn() -> None:
    w = tp.array(M23)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = w.reshape(6)
        inside = tp.gradient(lambda: tnp.sum(w.T.reshape(6) * np.arange(6.0)), tp.Params([w]))
    assert flat.base is w
    np.testing.assert_allclose(inside[w], np.arange(6.0).reshape(3, 2).T)


# --- nested gradients ---------------------------------------------------------------------------


def test_nested_gradient_of_an_outer_variable_is_refused() -> None:
    x = tp.array([1.0, 2.0])
    y = tp.array([3.0])

    def f() -> tp.Array:
        h = x * x
        inner = tp.gradient(lambda: tnp.sum(h * y), tp.Params([y]))  # = sum(h): depends on x
        return tnp.sum(h * inner[y])

    with pytest.raises(NotImplementedError, match=r"gradient.*inside a function being "
                                                  r"differentiated.*no higher-order"):
        tp.gradient(f, tp.Params([x]))


def test_second_derivative_through_a_param_is_refused() -> None:
    x = tp.array(V3, name="x")

    def f() -> tp.Array:
        return tnp.sum(tp.gradient(lambda: tnp.sum(x * x * x), tp.Params([x]))[x])

    with pytest.raises(NotImplementedError, match="array 'x'"):
        tp.gradient(f, tp.Params([x]))
    view = x[1:]
    with pytest.raises(NotImplementedError, match="view of array 'x'"):
        tp.gradient(lambda: tnp.sum(tp.jacobian(lambda: view * view, [view])[view]),
                    tp.Params([x]), alias="storage")


def test_nested_gradient_independent_of_the_outer_params_is_a_constant() -> None:
    x, y = tp.array(V3), tp.array([1.0, 2.0, 3.0])

    def f() -> tp.Array:
        inner = tp.gradient(lambda: tnp.sum(y * y * y), tp.Params([y]))[y]  # 3 y², no x
        return tnp.sum(x * inner)

    np.testing.assert_allclose(tp.gradient(f, tp.Params([x]))[x], 3 * y.numpy() ** 2)


# --- Python scalars -----------------------------------------------------------------------------


def test_float_or_item_of_a_param_dependent_value_inside_is_refused() -> None:
    x = tp.array(V3, name="x")
    with pytest.raises(TypeError, match=r"float\(\) of .* would drop its gradient"):
        tp.gradient(lambda: tnp.sum(x * float(tnp.sum(x))), tp.Params([x]))
    with pytest.raises(TypeError, match=r"item\(\) of a view of array 'x'"):
        tp.gradient(lambda: tnp.sum(x) * x[0].item(), tp.Params([x]))
    with pytest.raises(TypeError, match="view of array 'x'"):
        element = x[2]
        tp.gradient(lambda: tnp.sum(x) * float(element), tp.Params([x]), alias="storage")


def test_float_of_a_constant_inside_is_allowed() -> None:
    x = tp.array(V3)
    scale = tp.array(2.5)
    gs = tp.gradient(lambda: tnp.sum(x) * float(scale), tp.Params([x]))
    np.testing.assert_allclose(gs[x], np.full(3, 2.5))


def test_python_and_numpy_scalars_mix_in() -> None:
    x = tp.array(V3)
    f = lambda: tnp.sum(2 * x + np.float64(0.5) * x ** 2 - 1.0) + tnp.sum(3.0)  # noqa: E731
    gs = tp.gradient(f, tp.Params([x]))
    np.testing.assert_allclose(gs[x], jax.grad(
        lambda a: jnp.sum(2 * a + 0.5 * a ** 2 - 1.0) + jnp.sum(3.0))(V3))


# --- lists and keyword arguments ------------------------------------------------------------------


def test_mean_and_sum_of_a_list_of_arrays() -> None:
    x, y = tp.array(V3), tp.array(V3 * 2)
    f = lambda: tnp.mean([x, y * y]) + tnp.sum([x[0], y[1]]) * tnp.sum((x, y), axis=0)[2]  # noqa: E731
    gs = tp.gradient(f, tp.Params([x, y]))
    jf = lambda a, b: (jnp.mean(jnp.stack([a, b * b])) + jnp.sum(jnp.stack([a[0], b[1]]))  # noqa: E731
                       * jnp.sum(jnp.stack([a, b]), axis=0)[2])
    jx, jy = jax.grad(jf, argnums=(0, 1))(V3, V3 * 2)
    np.testing.assert_allclose(gs[x], jx)
    np.testing.assert_allclose(gs[y], jy)


def test_swapaxes_with_keyword_axes() -> None:
    w = tp.array(RNG.standard_normal((2, 3, 4)))
    r = RNG.standard_normal((4, 3, 2))
    gs = tp.gradient(lambda: tnp.sum(tnp.swapaxes(w, axis1=0, axis2=-1) * r), tp.Params([w]))
    np.testing.assert_allclose(gs[w], jax.grad(
        lambda a: jnp.sum(jnp.swapaxes(a, axis1=0, axis2=-1) * r))(w.numpy()))


def test_keywords_and_negative_axes_of_existing_functions() -> None:
    w = tp.array(RNG.standard_normal((2, 3, 4)))
    r = RNG.standard_normal((3, 2))

    def loss(ns: object, a: object) -> object:
        return (ns.sum(ns.max(a, axis=-1).T * r)
                + ns.sum(ns.mean(a, axis=(-1, 0), keepdims=True))
                + ns.sum(ns.transpose(a, axes=(-1, 0, 1))[0] * r.T)
                + ns.sum(ns.expand_dims(a, axis=-1) ** 2)
                + ns.sum(ns.take(a, indices=np.array([0, 0, 2]), axis=-2) * 0.5)
                + ns.sum(ns.reshape(a, (4, -1))[1]))

    gs = tp.gradient(lambda: loss(tnp, w), tp.Params([w]))
    np.testing.assert_allclose(gs[w], jax.grad(lambda a: loss(jnp, a))(w.numpy()))


# --- casts and float32 ---------------------------------------------------------------------------


def test_cast_to_integers_has_zero_derivative_like_jax() -> None:
    v = np.array([1.5, -2.5, 3.25])
    x = tp.array(v)
    gs = tp.gradient(lambda: tnp.sum(x.astype(np.int64) * 1.5 + x), tp.Params([x]))
    np.testing.assert_array_equal(
        gs[x], jax.grad(lambda a: jnp.sum(a.astype(jnp.int64) * 1.5 + a))(v))


def test_float32_params_match_torch_in_float32() -> None:
    torch = _torch()
    v = RNG.standard_normal((2, 3)).astype(np.float32)
    w = tp.array(v)
    row = w[1]
    gs = tp.gradient(lambda: tnp.sum(tnp.tanh(w) * row) + tnp.mean(row ** 0.0),
                     tp.Params([w]), alias="storage")
    tw = torch.tensor(v, requires_grad=True)
    (torch.tanh(tw) * tw[1]).sum().backward()
    assert gs[w].dtype == np.float32
    np.testing.assert_allclose(gs[w], tw.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("tape_fn", "jax_fn"),
    [
        (lambda x: tnp.sum(tnp.concatenate([[1.0], x]) ** 2),
         lambda x: jnp.sum(jnp.concatenate([jnp.array([1.0]), x]) ** 2)),
        (lambda x: tnp.sum(tnp.stack([[1.0, 5.0], x]) ** 2),
         lambda x: jnp.sum(jnp.stack([jnp.array([1.0, 5.0]), x]) ** 2)),
        (lambda x: tnp.dot([1.0, 3.0], x) * tnp.sum(x),
         lambda x: jnp.dot(jnp.array([1.0, 3.0]), x) * jnp.sum(x)),
        (lambda x: tnp.sum(tnp.matmul(x, [[1.0, 2.0], [3.0, 4.0]]) ** 2),
         lambda x: jnp.sum(jnp.matmul(x, jnp.array([[1.0, 2.0], [3.0, 4.0]])) ** 2)),
    ],
    ids=["concatenate", "stack", "dot", "matmul"],
)
def test_list_operands_are_constants_like_numpy_arrays(tape_fn, jax_fn):
    x = tp.array([0.5, -2.0], name="x")
    got = tp.gradient(lambda: tape_fn(x), tp.Params([x]))[x]
    with jax.enable_x64():
        want = jax.grad(jax_fn)(jnp.array([0.5, -2.0], dtype=jnp.float64))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12)
