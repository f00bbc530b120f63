"""Zygote's aliasing cases: every row under both alias policies.

``identity`` must print what Zygote printed; ``storage`` must equal the storage column, which
is checked again against float64 central finite differences on the shared memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tape_fd import finite_difference

import toolkit.tape as tp
from toolkit.tape import numpy as tnp


@pytest.fixture
def seed_arrays() -> tuple[tp.Array, tp.Array]:
    """``x = [1.0]`` and ``xt = x'`` made outside the function, named as the Julia globals."""
    x = tp.array([1.0], name="x")
    xt = tp.adjoint(x)
    xt.name = "xt"
    return x, xt


def _as_plain(g: object) -> object:
    if isinstance(g, dict):
        return {k: _as_plain(v) for k, v in g.items()}
    return None if g is None else np.asarray(g).tolist()


def _dump(gs: tp.Grads) -> tuple[dict[str, object], dict[str, object]]:
    """``(param name -> value, global name -> value)`` with lists for easy comparison."""
    return ({p.name: _as_plain(g) for p, g in gs.items()},
            {k: _as_plain(v) for k, v in gs.globals.items()})


def test_case1_adjoint_taken_inside_reaches_x(seed_arrays):
    x, _ = seed_arrays
    f = lambda: tnp.sum(tp.adjoint(x) * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([x]))) == ({"x": [2.0]}, {"x": [2.0]})
    assert _dump(tp.gradient(f, tp.Params([x]), alias="storage"))[0] == {"x": [2.0]}
    np.testing.assert_allclose(finite_difference(f, x), [2.0])


def test_case2_outer_view_is_an_independent_leaf(seed_arrays):
    x, xt = seed_arrays
    f = lambda: tnp.sum(xt * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([x]))) == (
        {"x": [1.0]}, {"x": [1.0], "xt": [[1.0]]})
    assert _dump(tp.gradient(f, tp.Params([x]), alias="storage"))[0] == {"x": [2.0]}
    np.testing.assert_allclose(finite_difference(f, x), [2.0])


def test_case3_both_aliases_listed(seed_arrays):
    x, xt = seed_arrays
    f = lambda: tnp.sum(xt * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([x, xt]))) == (
        {"x": [1.0], "xt": [[1.0]]}, {"x": [1.0], "xt": [[1.0]]})
    with pytest.warns(tp.AliasWarning):
        storage = tp.gradient(f, tp.Params([x, xt]), alias="storage")
    assert _dump(storage)[0] == {"x": [2.0], "xt": [[2.0]]}
    assert storage.shared_storage == [(x, xt)]


def test_case4_parent_read_inside_goes_to_the_param(seed_arrays):
    x, xt = seed_arrays
    f = lambda: tnp.sum(xt.parent * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([x]))) == ({"x": [2.0]}, {"x": [1.0]})
    assert _dump(tp.gradient(f, tp.Params([x]), alias="storage"))[0] == {"x": [2.0]}
    np.testing.assert_allclose(finite_difference(f, x), [2.0])


def test_case5_wrapper_listed_too_gets_nothing(seed_arrays):
    x, xt = seed_arrays
    f = lambda: tnp.sum(xt.parent * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([x, xt]))) == (
        {"x": [2.0], "xt": None}, {"x": [1.0]})
    with pytest.warns(tp.AliasWarning):
        storage = tp.gradient(f, tp.Params([x, xt]), alias="storage")
    assert _dump(storage)[0] == {"x": [2.0], "xt": [[2.0]]}


def test_case6_parent_of_a_non_param_is_a_structural_gradient(seed_arrays):
    x, xt = seed_arrays
    f = lambda: tnp.sum(xt.parent * x)  # noqa: E731
    assert _dump(tp.gradient(f, tp.Params([xt]))) == (
        {"xt": {"parent": [1.0]}}, {"x": [1.0], "xt": {"parent": [1.0]}})
    assert _dump(tp.gradient(f, tp.Params([xt]), alias="storage"))[0] == {"xt": [[2.0]]}
    np.testing.assert_allclose(finite_difference(f, x).reshape(1, 1), [[2.0]])


class _A:
    """Julia's ``struct A; x; end``."""

    def __init__(self, x: tp.Array) -> None:
        self.x = x


def test_struct_field_read_reaches_x():
    x = tp.array(np.random.default_rng(0).random(2))
    a = _A(x)
    f = lambda: tnp.sum(a.x)  # noqa: E731
    for alias in tp.ALIAS_POLICIES:
        gs = tp.gradient(f, tp.Params([x]), alias=alias)
        np.testing.assert_array_equal(gs[x], [1.0, 1.0])
        assert gs.globals == {}
    np.testing.assert_allclose(finite_difference(f, x), [1.0, 1.0])


def test_adjoint_made_outside_gives_x_nothing_under_identity():
    x = tp.array(np.random.default_rng(1).random(2), name="x")
    xt = tp.adjoint(x)
    xt.name = "xt"
    f = lambda: tnp.sum(xt)  # noqa: E731
    identity = tp.gradient(f, tp.Params([x]))
    assert identity[x] is None
    assert _dump(identity)[1] == {"xt": [[1.0, 1.0]]}
    storage = tp.gradient(f, tp.Params([x]), alias="storage")
    np.testing.assert_array_equal(storage[x], [1.0, 1.0])
    np.testing.assert_allclose(finite_difference(f, x), [1.0, 1.0])


def test_tied_dense_identity_misses_the_decoder_storage_adds_it():
    rng = np.random.default_rng(2)
    w = tp.array(rng.standard_normal((2, 5)), name="m1.weight")  # Dense(5, 2)
    b1 = tp.array(rng.standard_normal(2))
    w2 = w.T  # Dense(transpose(m1.weight)): a lazy view of the same memory
    b2 = tp.array(rng.standard_normal(5))
    x = np.ones(5)
    f = lambda: tnp.sum(w2 @ (w @ x + b1) + b2)  # noqa: E731

    def loss(w_enc: jax.Array, w_dec: jax.Array) -> jax.Array:
        return jnp.sum(w_dec @ (w_enc @ x + b1.numpy()) + b2.numpy())

    d_enc, d_dec = jax.grad(loss, argnums=(0, 1))(w.numpy(), w.numpy().T)
    identity = tp.gradient(f, tp.Params([w]))
    np.testing.assert_allclose(identity[w], d_enc, rtol=1e-12)
    storage = tp.gradient(f, tp.Params([w]), alias="storage")
    np.testing.assert_allclose(storage[w], d_enc + d_dec.T, rtol=1e-12)
    np.testing.assert_allclose(storage[w], finite_difference(f, w), rtol=1e-6, atol=1e-8)
    assert not np.allclose(identity[w], storage[w])
