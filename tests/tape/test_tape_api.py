"""Arrays and views, Params and Grads, pullback/jacobian, and the storage policy on views."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tape_fd import finite_difference

import toolkit.tape as tp
from toolkit.tape import numpy as tnp


def test_array_copies_its_data_and_owns_its_storage() -> None:
    data = np.array([1.0, 2.0])
    x = tp.array(data, name="x")
    data[0] = 9.0
    assert x.numpy().tolist() == [1.0, 2.0]
    assert x.base is x and x.parent is None
    assert (x.shape, x.ndim, x.size, x.dtype) == ((2,), 1, 2, np.float64)
    assert tp.array([1, 2]).dtype.kind == "i"
    assert tp.array([1.0], dtype=np.float32).dtype == np.float32


def test_views_share_memory_and_know_their_parent() -> None:
    x = tp.array(np.arange(6.0).reshape(2, 3))
    views = [x.T, x.transpose((1, 0)), x.reshape(3, 2), x.reshape((6,)), x[:, 1:], x[0],
             tp.adjoint(x)]
    for v in views:
        assert v.parent is x and v.base is x
    row = tp.adjoint(tp.array([1.0, 2.0]))
    assert row.shape == (1, 2)
    nested = x.T[1:]
    assert nested.parent.parent is x and nested.base is x
    x[...] = 0.0
    assert all(not v.numpy().any() for v in views)


def test_writes_through_a_view_update_the_base() -> None:
    x = tp.array(np.zeros((2, 3)))
    x.T[2] = [1.0, 2.0]
    x[:, 0] += 5.0
    tail = x.reshape(6)[4:]
    tail -= 1.0
    np.testing.assert_array_equal(x.numpy(), [[5.0, 0.0, 1.0], [5.0, -1.0, 1.0]])


def test_integer_array_indexing_copies() -> None:
    x = tp.array([1.0, 2.0, 3.0])
    picked = x[[0, 0]]
    assert picked.parent is None and picked.base is picked
    picked[...] = 7.0
    assert x.numpy().tolist() == [1.0, 2.0, 3.0]


def test_numpy_returns_a_copy() -> None:
    x = tp.array([1.0])
    x.numpy()[0] = 5.0
    assert float(x.numpy()[0]) == 1.0


def test_operators_and_constants_from_either_side() -> None:
    x = tp.array([1.0, 2.0])
    c = np.array([3.0, 4.0])
    out = (c * x + x * c - c / x + 2 ** x - x ** 2 + c @ x + x @ c + abs(-x) + (+x)).numpy()
    v = x.numpy()
    np.testing.assert_allclose(out, c * v + v * c - c / v + 2 ** v - v ** 2 + 2 * (c @ v)
                               + v + v)
    assert (x > 1.5).numpy().tolist() == [False, True]
    assert isinstance(c * x, tp.Array)


def test_params_are_ordered_and_keyed_by_identity() -> None:
    x = tp.array([1.0])
    twin = tp.array([1.0])
    ps = tp.Params([x, twin, x])
    assert list(ps) == [x, twin] and len(ps) == 2
    assert x in ps and tp.array([1.0]) not in ps
    ps.add(x)
    assert len(ps) == 2


def test_grads_mapping_interface() -> None:
    x = tp.array([1.0, 2.0], name="x")
    unused = tp.array([5.0])
    ps = tp.Params([x, unused])
    gs = tp.gradient(lambda: tnp.sum(x * x), ps)
    assert x in gs and unused in gs and tp.array([1.0]) not in gs
    assert gs[unused] is None
    assert [p is q for (p, _), q in zip(gs.items(), [x, unused], strict=True)] == [True, True]
    assert list(gs.keys()) == [x, unused] and len(gs) == 2
    np.testing.assert_array_equal(gs.values()[0], [2.0, 4.0])
    np.testing.assert_array_equal(gs.globals["x"], [2.0, 4.0])
    with pytest.raises(KeyError, match="not one of the 2 params"):
        gs[tp.array([1.0])]


def test_grads_arithmetic_map_and_copy() -> None:
    x = tp.array([1.0, 2.0])
    y = tp.array([3.0])
    ps = tp.Params([x, y])
    a = tp.gradient(lambda: tnp.sum(x * x), ps)
    b = tp.gradient(lambda: tnp.sum(x) + tnp.sum(y), ps)
    np.testing.assert_array_equal((a + b)[x], [3.0, 5.0])
    np.testing.assert_array_equal((a + b)[y], [1.0])
    np.testing.assert_array_equal((a - b)[y], [-1.0])
    np.testing.assert_array_equal((2 * a)[x], [4.0, 8.0])
    np.testing.assert_array_equal((a * 0.5)[x], [1.0, 2.0])
    np.testing.assert_array_equal((-a / 2)[x], [-1.0, -2.0])
    assert (a * 3)[y] is None
    np.testing.assert_array_equal(a.map(np.sqrt)[x], np.sqrt([2.0, 4.0]))
    c = a.copy()
    c[x][0] = 100.0
    assert a[x][0] == 2.0
    # Equal Params built separately (in any order) add up, as in Zygote; other params do not.
    other = tp.gradient(lambda: tnp.sum(x), tp.Params([y, x]))
    np.testing.assert_array_equal((a + other)[x], [3.0, 5.0])
    assert (a + other)[y] is None
    with pytest.raises(ValueError, match="same params"):
        _ = a + tp.gradient(lambda: tnp.sum(x), tp.Params([x]))


def test_gradients_are_fresh_unaliased_arrays() -> None:
    x = tp.array([1.0, 2.0], name="x")
    y = tp.array([3.0, 4.0], name="y")
    gs = tp.gradient(lambda: tnp.sum(x + y), tp.Params([x, y]))
    assert gs[x] is not gs[y] and not np.shares_memory(gs[x], gs[y])
    assert not np.shares_memory(gs[x], gs.globals["x"])
    gs[x][0] = 10.0
    assert gs[y][0] == 1.0


def test_pullback_back_runs_many_times_and_is_linear() -> None:
    x = tp.array([1.0, 2.0, 3.0])
    value, back = tp.pullback(lambda: tnp.tanh(x) * x, tp.Params([x]))
    np.testing.assert_allclose(value, np.tanh([1.0, 2.0, 3.0]) * [1.0, 2.0, 3.0])
    seed = np.array([1.0, -2.0, 0.5])
    first = back(seed)[x]
    np.testing.assert_array_equal(back(seed)[x], first)
    np.testing.assert_allclose(back(3 * seed)[x], 3 * first)


def test_withgradient_returns_the_value() -> None:
    x = tp.array([3.0])
    value, gs = tp.withgradient(lambda: tnp.sum(x * x), tp.Params([x]))
    assert float(value) == 9.0 and gs[x].tolist() == [6.0]


def test_jacobian_matches_jax() -> None:
    v = np.array([[0.5, -1.0], [2.0, 0.3]])
    w = tp.array(v)
    b = tp.array([0.1, 0.2])
    jac = tp.jacobian(lambda: tnp.tanh(w @ b) * b, tp.Params([w, b]))
    jw, jb = jax.jacobian(lambda a, c: jnp.tanh(a @ c) * c, argnums=(0, 1))(v, b.numpy())
    assert jac[w].shape == (2, 2, 2)
    np.testing.assert_allclose(jac[w], jw, rtol=1e-12)
    np.testing.assert_allclose(jac[b], jb, rtol=1e-12)


def test_storage_policy_partial_view_sees_its_slice_of_the_total() -> None:
    x = tp.array(np.arange(5.0), name="x")
    middle = x[1:3]
    middle.name = "x[1:3]"
    f = lambda: tnp.sum(middle * middle) + tnp.sum(x)  # noqa: E731
    total = 2 * np.where((np.arange(5) >= 1) & (np.arange(5) < 3), np.arange(5.0), 0) + 1
    storage = tp.gradient(f, tp.Params([middle]), alias="storage")
    np.testing.assert_array_equal(storage[middle], total[1:3])
    identity = tp.gradient(f, tp.Params([x, middle]))
    np.testing.assert_array_equal(identity[x], np.ones(5))
    np.testing.assert_array_equal(identity[middle], [2.0, 4.0])


def test_storage_policy_through_transposed_and_reversed_views() -> None:
    w = tp.array(np.arange(6.0).reshape(2, 3))
    flipped = w[:, ::-1].T  # (3, 2), negative strides
    f = lambda: tnp.sum(flipped * np.arange(6.0).reshape(3, 2)) + tnp.sum(w * w)  # noqa: E731
    with pytest.warns(tp.AliasWarning):
        gs = tp.gradient(f, tp.Params([w, flipped]), alias="storage")
    expected = 2 * w.numpy() + np.arange(6.0).reshape(3, 2).T[:, ::-1]
    np.testing.assert_array_equal(gs[w], expected)
    np.testing.assert_array_equal(gs[flipped], expected[:, ::-1].T)
    assert gs.shared_storage == [(w, flipped)]


def test_view_made_inside_the_function_reaches_its_parent_under_identity() -> None:
    w = tp.array(np.ones((2, 3)))
    gs = tp.gradient(lambda: tnp.sum(w.T[1:] * 2.0), tp.Params([w]))
    np.testing.assert_array_equal(gs[w], [[0.0, 2.0, 2.0], [0.0, 2.0, 2.0]])


def test_unnamed_leaves_have_no_global_entries() -> None:
    x = tp.array([1.0])
    gs = tp.gradient(lambda: tnp.sum(x), tp.Params([x]))
    assert gs.globals == {}


def test_custom_primitive_with_defvjp() -> None:
    cube = tp.primitive(lambda x: x ** 3, "cube_test")
    tp.defvjp(cube, lambda ans, x: lambda g: 3 * x ** 2 * g)
    x = tp.array([2.0])
    assert tp.gradient(lambda: tnp.sum(cube(x)), tp.Params([x]))[x].tolist() == [12.0]
    assert "cube_test" in tp.REGISTRY


def test_output_reused_by_another_gradient_before_back() -> None:
    x = tp.array([1.0, 2.0])
    kept: list[tp.Array] = []

    def f() -> tp.Array:
        kept.append(tnp.sum(x * x))
        return kept[-1]

    _, back = tp.pullback(f, tp.Params([x]))
    inner = tp.gradient(lambda: kept[0] * 3.0, tp.Params([kept[0]]))
    assert float(inner[kept[0]]) == 3.0
    np.testing.assert_array_equal(back()[x], [2.0, 4.0])


VIEW_STEPS = {
    "T": lambda a: a.T,
    "flip": lambda a: a[::-1],
    "tail": lambda a: a[1:],
    "step": lambda a: a[::2],
    "row": lambda a: a[0] if a.ndim > 1 else a,
    "adjoint": lambda a: tp.adjoint(a) if a.ndim <= 2 else a,
}


def _apply_views(steps: list[str], a: tp.Array) -> tp.Array:
    """``a`` seen through the chain of views ``steps`` (stopping before an axis runs out)."""
    for step in steps:
        if min(a.shape, default=0) < 2:
            break
        a = VIEW_STEPS[step](a)
    return a



@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.sampled_from(sorted(VIEW_STEPS)), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_storage_policy_matches_finite_differences_through_any_view_chain(
        steps: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    owner = tp.array(rng.standard_normal((3, 4, 2)))
    view = _apply_views(steps, owner)
    r_view = rng.standard_normal(view.shape)
    r_owner = rng.standard_normal(owner.shape)
    f = lambda: tnp.sum(tnp.square(view) * r_view) + tnp.sum(owner * r_owner)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tp.AliasWarning)
        gs = tp.gradient(f, tp.Params([owner, view]), alias="storage")
    total = finite_difference(f, owner)
    np.testing.assert_allclose(gs[owner], total, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gs[view], _apply_views(steps, tp.array(total)).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_params_equality_is_by_identity_and_order() -> None:
    x, y = tp.array([1.0]), tp.array([1.0])
    assert tp.Params([x, y]) == tp.Params([x, y, x])
    assert tp.Params([x, y]) != tp.Params([y, x]) and tp.Params([x, y]).issetequal([y, x])
    assert tp.Params([x]) != tp.Params([y])  # equal values, different arrays
    assert tp.Params([x]) != [x]
    with pytest.raises(TypeError, match="unhashable"):
        hash(tp.Params([x]))


def test_params_union_intersection_and_removal() -> None:
    x, y, z = tp.array([1.0]), tp.array([2.0]), tp.array([3.0])
    ps = tp.Params([x, y])
    assert list(ps | tp.Params([z, x])) == [x, y, z]
    assert list(ps.union([z], [y])) == [x, y, z] and list(ps) == [x, y]
    assert list(ps & tp.Params([y, z])) == [y]
    assert list(ps.intersection([y, x], [x])) == [x]
    ps.update([z, x])
    assert list(ps) == [x, y, z]
    ps.remove(y)
    assert list(ps) == [x, z] and y not in ps and ps.index(z) == 1
    ps.discard(y)
    with pytest.raises(KeyError, match="is not in these Params"):
        ps.remove(y)
    with pytest.raises(TypeError, match=r"Params holds toolkit\.tape arrays"):
        ps.union([np.ones(1)])


def test_params_flatten_and_assign_round_trip() -> None:
    x = tp.array([1.0, 2.0])
    w = tp.array([[3.0, 4.0], [5.0, 6.0]])
    ps = tp.Params([x, w.T])
    v = ps.flatten()
    np.testing.assert_array_equal(v, [1.0, 2.0, 3.0, 5.0, 4.0, 6.0])
    v[0] = 100.0  # a new vector: the params are not touched
    assert x.numpy()[0] == 1.0
    ps.assign(np.arange(6.0))
    np.testing.assert_array_equal(x.numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(w.numpy(), [[2.0, 4.0], [3.0, 5.0]])  # written through w.T
    np.testing.assert_array_equal(ps.flatten(), np.arange(6.0))
    with pytest.raises(ValueError, match=r"hold 6 numbers in all .* shape \(5,\)"):
        ps.assign(np.zeros(5))
    assert tp.Params().flatten().shape == (0,)


def test_grads_item_assignment_update_and_merge() -> None:
    x, y = tp.array([1.0, 2.0], name="x"), tp.array([3.0], name="y")
    gx = tp.gradient(lambda: tnp.sum(x * x), tp.Params([x]))
    gy = tp.gradient(lambda: tnp.sum(y * x), tp.Params([y]))
    merged = gx | gy
    assert list(merged) == [x, y] and list(gx) == [x]
    np.testing.assert_array_equal(merged[x], [2.0, 4.0])
    np.testing.assert_array_equal(merged[y], [3.0])  # d/dy of y·(1 + 2)
    np.testing.assert_array_equal(merged.globals["x"], [3.0, 3.0])  # the later one wins
    ps = gx.params
    gx.update(gy)
    assert list(gx) == [x, y] and list(ps) == [x]
    gx[y] = [7]
    assert gx[y].dtype == np.float64 and gx[y].tolist() == [7.0]
    gx[x] = None
    assert gx[x] is None
    with pytest.raises(ValueError, match=r"must have its shape \(2,\)"):
        gx[x] = np.ones(3)
    with pytest.raises(KeyError, match="is not one of the 2 params"):
        gx[tp.array([1.0])] = np.ones(1)
    with pytest.raises(ValueError, match="alias='storage'"):
        gx.update(tp.gradient(lambda: tnp.sum(y), tp.Params([y]), alias="storage"))


def test_grads_plus_a_dict_keyed_by_param_names() -> None:
    x, y = tp.array([1.0, 2.0], name="x"), tp.array([3.0], name="y")
    gs = tp.gradient(lambda: tnp.sum(x * x), tp.Params([x, y]))
    total = gs + {"x": [10.0, 20.0], "y": 1.0}
    np.testing.assert_array_equal(total[x], [12.0, 24.0])
    np.testing.assert_array_equal(total[y], [1.0])  # None (zero) plus 1
    np.testing.assert_array_equal(({"x": 1.0} + gs)[x], [3.0, 5.0])
    assert gs[y] is None  # the sum is a new Grads
    with pytest.raises(KeyError, match="'z' must name exactly one param; 0 do"):
        _ = gs + {"z": 1.0}


def test_grads_flatten_and_assign() -> None:
    x, y = tp.array([1.0, 2.0]), tp.array([[3.0]])
    gs = tp.gradient(lambda: tnp.sum(x * x), tp.Params([x, y]))
    np.testing.assert_array_equal(gs.flatten(), [2.0, 4.0, 0.0])
    gs.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gs[y], [[3.0]])
    with pytest.raises(ValueError, match="hold 3 numbers"):
        gs.assign(np.zeros((3, 1)))
    w = tp.array([[1.0, 2.0]])
    wt = w.T
    structural = tp.gradient(lambda: tnp.sum(wt.parent), tp.Params([wt]))
    with pytest.raises(TypeError, match="structural"):
        structural.flatten()


def test_iterating_grads_yields_the_params() -> None:
    x, y = tp.array([1.0]), tp.array([2.0])
    gs = tp.gradient(lambda: tnp.sum(x * y), tp.Params([x, y]))
    assert [p is q for p, q in zip(iter(gs), [x, y], strict=True)] == [True, True]
    assert [g.tolist() for g in (gs[p] for p in gs)] == [[2.0], [1.0]]


def test_withjacobian_and_zeros_for_unused_params() -> None:
    x = tp.array([1.0, 2.0])
    unused = tp.array([[5.0, 6.0, 7.0]])
    value, jac = tp.withjacobian(lambda: x * x, tp.Params([x, unused]))
    np.testing.assert_array_equal(value, [1.0, 4.0])
    np.testing.assert_array_equal(jac[x], [[2.0, 0.0], [0.0, 4.0]])
    assert jac[unused].shape == (2, 1, 3) and not jac[unused].any()
    assert tp.jacobian(lambda: x * x, tp.Params([unused]))[unused].shape == (2, 1, 3)


def test_withgradient_of_a_tuple_differentiates_the_first_element() -> None:
    x = tp.array([1.0, -2.0])
    (loss, aux, label), gs = tp.withgradient(
        lambda: (tnp.sum(x * x * x), tnp.tanh(x), "label"), tp.Params([x]))
    assert float(loss) == -7.0 and label == "label"
    assert isinstance(aux, np.ndarray)
    np.testing.assert_allclose(aux, np.tanh([1.0, -2.0]))
    np.testing.assert_array_equal(gs[x], [3.0, 12.0])  # d/dx sum(x³) = 3x², not the aux's


def test_withgradient_keeps_a_namedtuples_fields() -> None:
    class Out(NamedTuple):
        loss: Any
        hidden: Any

    x = tp.array([2.0])
    out, gs = tp.withgradient(lambda: Out(tnp.sum(x * x), x * 3), [x])
    assert isinstance(out, Out) and float(out.loss) == 4.0 and out.hidden.tolist() == [6.0]
    assert gs[x].tolist() == [4.0]


@pytest.mark.parametrize("make", [lambda x: (tnp.sum(x), x), lambda x: [tnp.sum(x)],
                                  lambda x: {"loss": tnp.sum(x)}])
def test_container_outputs_raise_where_only_one_array_is_differentiated(make: Any) -> None:
    x = tp.array([1.0])
    for differentiate in (tp.gradient, tp.pullback, tp.jacobian):
        with pytest.raises(TypeError, match=r"f returned a (tuple|list|dict), .*withgradient"):
            differentiate(lambda: make(x), tp.Params([x]))
    with pytest.raises(TypeError, match="empty tuple"):
        tp.withgradient(lambda: (), tp.Params([x]))
