"""Weighted merges: Tie(..., weight=, source_weight=) against gradients summed by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, materialize_ties, merge_tied_gradients, tie_drift, tied

RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 4))
G_W, G_WT, G_ROW, G_HEAD = (
    RNG.standard_normal((3, 4)),
    RNG.standard_normal((4, 3)),
    RNG.standard_normal(4),
    RNG.standard_normal(2),
)


def test_sgd_step_moves_the_source_by_the_weighted_sum_of_the_copies_gradients() -> None:
    ties = [Tie("w", "wt", "transpose", weight=0.25, source_weight=0.5), Tie("w", "row", "[1]")]
    params = materialize_ties({"w": W, "wt": np.zeros((4, 3)), "row": np.zeros(4)}, ties)
    grads = {"w": G_W, "wt": G_WT, "row": G_ROW}
    tx = tied(optax.sgd(1.0), ties)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)

    expected = -(0.5 * G_W + 0.25 * G_WT.T)
    expected[1] -= G_ROW  # the row's tie keeps weight 1
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-12)
    assert {k: float(v) for k, v in tie_drift(updates, ties).items()} == {"wt": 0, "row": 0}


def test_chain_weights_each_copys_own_gradient_once() -> None:
    # a -> b (transpose) -> c ([:2]): c's gradient is not weighted again by b's weight.
    ties = [Tie("a", "b", "transpose", weight=3.0), Tie("b", "c", "[:2]", weight=0.5)]
    g_c = RNG.standard_normal((2, 3))
    grads = {"a": G_W, "b": G_WT, "c": g_c}
    merged, _ = merge_tied_gradients(ties).update(grads, optax.EmptyState())

    g_b = 3.0 * G_WT
    g_b[:2] += 0.5 * g_c
    expected_a = G_W + g_b.T
    np.testing.assert_allclose(merged["a"], expected_a, rtol=1e-12)
    np.testing.assert_allclose(merged["b"], expected_a.T, rtol=1e-12)
    np.testing.assert_allclose(merged["c"], expected_a.T[:2], rtol=1e-12)


def test_weighted_tied_adam_equals_adam_on_the_shared_model_with_a_rescaled_copy() -> None:
    # Weighting the output copy's gradient by w is what the shared model computes when that
    # copy's contribution to the loss is rescaled in the backward pass only.
    x = RNG.standard_normal((5, 3))
    weight = 0.3

    def untied_loss(p: dict) -> jax.Array:
        return jnp.sum(jnp.tanh(x @ p["w"]) @ p["wt"]) ** 2 / 50

    def scaled(v: jax.Array) -> jax.Array:
        # Value v, gradient weight * (gradient of v).
        return weight * v + jax.lax.stop_gradient((1 - weight) * v)

    def shared_loss(p: dict) -> jax.Array:
        return untied_loss({"w": p["w"], "wt": scaled(p["w"]).T})

    ties = [Tie("w", "wt", "transpose", weight=weight)]

    def train(tx: optax.GradientTransformation, loss: object, params: dict) -> dict:
        state = tx.init(params)
        step = jax.jit(
            lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
                *tx.update(jax.grad(loss)(p), s, p)
            )
        )
        for _ in range(20):
            params, state = step(params, state)
        return params

    expected = train(optax.adam(0.05), shared_loss, {"w": W})
    actual = train(tied(optax.adam(0.05), ties), untied_loss, {"w": W, "wt": W.T.copy()})
    np.testing.assert_allclose(actual["w"], expected["w"], rtol=0, atol=1e-10)
    # Exact in the updates; applying them may round the two copies' sums differently (XLA
    # contracts p + u into a fused multiply-add in one loop and not the other).
    np.testing.assert_allclose(actual["wt"], actual["w"].T, rtol=1e-15)


@pytest.mark.parametrize(
    ("ties", "message"),
    [
        (
            [Tie("a", "b", "transpose"), Tie("b", "c", "[:2]", source_weight=0.5)],
            "source 'b' is the target of tie a -> b",
        ),
        (
            [Tie("a", "b", "transpose", source_weight=0.5), Tie("a", "d", source_weight=2.0)],
            "give source 'a' different source weights",
        ),
    ],
)
def test_conflicting_or_misplaced_source_weights_name_the_ties(
    ties: list[Tie], message: str
) -> None:
    params = {"a": W, "b": W.T.copy(), "c": W.T[:2].copy(), "d": W.copy()}
    with pytest.raises(ValueError, match=message):
        tied(optax.sgd(1.0), ties).init(params)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5", True])
def test_a_weight_must_be_a_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match=r"tie w -> wt: weight .* must be a finite number"):
        Tie("w", "wt", "transpose", weight=bad)  # type: ignore[arg-type]


def test_weights_show_in_repr_and_str_only_where_they_change_the_merge() -> None:
    assert repr(Tie("w", "wt")) == "Tie(source='w', target='wt', map=parse_map('identity'))"
    weighted = Tie("w", "wt", "transpose", weight=0.5)
    assert repr(weighted).endswith("weight=0.5)")
    assert str(weighted) == "w -> wt (transpose; gradient 1 * w + 0.5 * wt)"
