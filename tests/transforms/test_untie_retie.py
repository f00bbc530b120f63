"""untie / retie: optimizer state carried between tied(inner) and inner on the untied tree.

The schedule test builds its reference by hand: Adam on the shared model (one leaf per real
parameter) for k steps, then two independent copies of the tied weight, each carrying a copy
of its Adam slots, trained by plain Adam on the untied tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, TiedTarget, materialize_ties, retie, tied, untie

TIES = [Tie("w", "wt", "transpose"), Tie("w", "row", "[1]")]
X = np.random.default_rng(0).standard_normal((5, 4))


def shared_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"w": rng.standard_normal((4, 6)) / 2, "b": rng.standard_normal(6) / 2}


def untied_params(shared: dict[str, Any]) -> dict[str, Any]:
    return materialize_ties({**shared, "wt": np.zeros((6, 4)), "row": np.zeros(6)}, TIES)


def untied_loss(p: dict[str, Any]) -> jax.Array:
    hidden = jnp.tanh(X @ p["w"] + p["b"])
    return jnp.mean((jnp.tanh(hidden @ p["wt"]) - 0.5) ** 2) + jnp.mean((p["row"] - 0.3) ** 2)


def shared_loss(p: dict[str, Any]) -> jax.Array:
    return untied_loss({**p, "wt": p["w"].T, "row": p["w"][1]})


def _run(
    tx: optax.GradientTransformation, loss: Callable, params: Any, state: Any, steps: int
) -> tuple[Any, Any]:
    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _tied_after(steps: int, inner: optax.GradientTransformation) -> tuple[Any, Any]:
    tx = tied(inner, TIES)
    params = untied_params(shared_params())
    return _run(tx, untied_loss, params, tx.init(params), steps)


def test_untie_gives_each_target_its_sources_slots_through_the_map() -> None:
    params, state = _tied_after(5, optax.adam(0.05))
    adam = untie(state, params, TIES, optax.adam(0.05))[0]
    tied_adam = state.inner_state[0]
    assert jax.tree.structure(adam) == jax.tree.structure(optax.adam(0.05).init(params)[0])
    assert int(adam.count) == int(tied_adam.count) == 5
    for slot, tied_slot in [(adam.mu, tied_adam.mu), (adam.nu, tied_adam.nu)]:
        np.testing.assert_array_equal(slot["w"], tied_slot["w"])
        np.testing.assert_array_equal(slot["wt"], tied_slot["w"].T)
        np.testing.assert_array_equal(slot["row"], tied_slot["w"][1])
        np.testing.assert_array_equal(slot["b"], tied_slot["b"])


def test_untie_then_retie_returns_the_tied_state() -> None:
    params, state = _tied_after(5, optax.adam(0.05))
    back = retie(untie(state, params, TIES, optax.adam(0.05)), params, TIES, optax.adam(0.05))
    assert jax.tree.structure(back) == jax.tree.structure(state)
    assert isinstance(back.inner_state[0].mu["wt"], TiedTarget)
    for actual, expected in zip(jax.tree.leaves(back), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("k", [0, 4])
def test_untie_at_step_k_equals_the_shared_model_then_two_copies_with_copied_state(k: int) -> None:
    adam = optax.adam(0.05)
    # Reference by hand: the shared model for k steps ...
    shared, shared_state = _run(
        adam, shared_loss, shared_params(), adam.init(shared_params()), steps=k
    )
    moments = shared_state[0]
    copied = moments._replace(
        mu={**moments.mu, "wt": moments.mu["w"].T, "row": moments.mu["w"][1]},
        nu={**moments.nu, "wt": moments.nu["w"].T, "row": moments.nu["w"][1]},
    )
    # ... then two independent copies, each with a copy of the tied weight's slots.
    expected, _ = _run(
        adam, untied_loss, untied_params(shared), (copied, *shared_state[1:]), steps=6
    )

    params, state = _tied_after(k, adam)
    actual, _ = _run(adam, untied_loss, params, untie(state, params, TIES, adam), steps=6)
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-12, err_msg=key)
    # Untied, the copies moved apart.
    assert float(np.max(np.abs(actual["wt"] - actual["w"].T))) > 1e-3


def test_retie_averages_parameter_shaped_slots_over_the_copies_holding_each_element() -> None:
    params = untied_params(shared_params())
    sgd = optax.sgd(0.1, momentum=0.9)
    rng = np.random.default_rng(2)
    traces = {k: rng.standard_normal(np.shape(v)) for k, v in params.items()}
    state = (sgd.init(params)[0]._replace(trace=traces), *sgd.init(params)[1:])

    trace = retie(state, params, TIES, sgd).inner_state[0].trace

    # By hand: row 1 of w is held by all three copies, the other rows by w and wt.
    expected = (traces["w"] + traces["wt"].T) / 2
    expected[1] = (traces["w"][1] + traces["wt"].T[1] + traces["row"]) / 3
    np.testing.assert_allclose(trace["w"], expected, rtol=1e-15)
    np.testing.assert_array_equal(trace["b"], traces["b"])
    assert isinstance(trace["wt"], TiedTarget) and isinstance(trace["row"], TiedTarget)


def test_untie_starts_target_slots_of_another_shape_fresh() -> None:
    # Adafactor factors a matrix's second moment into a row and a column vector: the
    # transposed copy's vectors are not the source's through the map, so they start fresh.
    adafactor = optax.adafactor(0.05, min_dim_size_to_factor=2)
    params, state = _tied_after(3, adafactor)
    factored = untie(state, params, TIES, adafactor)[0]
    fresh = adafactor.init(params)[0]
    np.testing.assert_array_equal(factored.v_row["wt"], fresh.v_row["wt"])
    np.testing.assert_array_equal(factored.v_row["w"], state.inner_state[0].v_row["w"])
    assert float(np.max(np.abs(factored.v_row["w"]))) > 0


def test_retie_rejects_a_state_of_another_optimizer() -> None:
    params = untied_params(shared_params())
    with pytest.raises(ValueError, match="the state does not fit the optimizer"):
        retie(optax.sgd(0.1, momentum=0.9).init(params), params, TIES, optax.adam(0.1))
