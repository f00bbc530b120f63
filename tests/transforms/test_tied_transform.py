"""tied() and merge_tied_gradients(): training a tied model on its untied pytree.

The reference for every check is the shared model: one leaf per real parameter, with the tied
copies computed inside the loss, so ``jax.grad`` returns the correct total gradient. The tests
use float32 explicitly (the suite's conftest turns on x64).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, _merge, materialize_ties, merge_tied_gradients, tie_drift, tied

F32 = np.float32


def _normal(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    # numpy, not jax.random: every eager jax op compiles, and these tests make many arrays.
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(F32)


VOCAB, DIM = 12, 6
EMBED_TIE = [Tie("embed", "unembed", "transpose")]


def _shared_params() -> dict[str, np.ndarray]:
    return {
        "embed": _normal(0, (VOCAB, DIM)),
        "proj": _normal(1, (DIM, DIM), 1 / 3),
        "bias": _normal(2, (VOCAB,), 1 / 10),
    }


def _untied(shared: dict[str, np.ndarray], ties: list[Tie] = EMBED_TIE) -> dict[str, Any]:
    placeholder = {**shared, "unembed": np.zeros((DIM, VOCAB), F32)}
    return materialize_ties(placeholder, ties)


TOKENS = jnp.array([0, 3, 5, 7, 11, 2, 3], dtype=jnp.int32)
LABELS = jnp.array([1, 4, 5, 0, 9, 2, 8], dtype=jnp.int32)


def _lm_loss(embed: jax.Array, unembed: jax.Array, proj: jax.Array, bias: jax.Array) -> jax.Array:
    hidden = jnp.tanh(embed[TOKENS] @ proj)
    # Multiply-and-sum rather than a matmul: XLA picks a different summation order for a dot
    # whose operand is a transpose, and Adafactor amplifies that last-bit difference in the
    # loss gradient beyond the 1e-6 tolerance. This keeps both models' gradients bit-identical.
    logits = jnp.sum(hidden[:, :, None] * unembed[None], axis=1) + bias
    return optax.softmax_cross_entropy_with_integer_labels(logits, LABELS).mean()


def shared_loss(params: dict[str, jax.Array]) -> jax.Array:
    return _lm_loss(params["embed"], params["embed"].T, params["proj"], params["bias"])


def untied_loss(params: dict[str, jax.Array]) -> jax.Array:
    return _lm_loss(params["embed"], params["unembed"], params["proj"], params["bias"])


def _train(
    tx: optax.GradientTransformation,
    loss: Callable[[Any], jax.Array],
    params: Any,
    steps: int,
    ties: list[Tie] | None = None,
) -> tuple[Any, np.ndarray]:
    """Runs ``steps`` jitted steps; returns the params and each step's largest tie drift."""

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        drift = tie_drift(params, ties) if ties else {}
        return params, state, jnp.max(jnp.array([0.0, *drift.values()]))

    state = jax.jit(tx.init)(params)
    drifts = []
    for _ in range(steps):
        params, state, drift = step(params, state)
        drifts.append(drift)
    return params, np.asarray(drifts)


def assert_close(actual: Any, expected: Any, rel: float = 1e-6) -> None:
    """Each leaf within ``rel`` of the expected leaf's largest magnitude."""
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype
        scale = float(np.max(np.abs(e)))
        np.testing.assert_allclose(a, e, rtol=0, atol=rel * scale)


INNER_OPTIMIZERS = {
    "adam": lambda: optax.adam(0.05),
    "adamw": lambda: optax.adamw(0.05, weight_decay=0.1),
    "sgd_momentum": lambda: optax.sgd(0.1, momentum=0.9),
    "clip_then_adam": lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05)),
    "lion": lambda: optax.lion(0.005, weight_decay=0.1),
    # Factoring on from 4 rows so the 12 x 6 embedding takes the factored path.
    "adafactor": lambda: optax.adafactor(0.05, min_dim_size_to_factor=4),
}


@pytest.mark.parametrize("name", list(INNER_OPTIMIZERS))
def test_tied_matches_inner_on_shared_model_and_ties_never_drift(name: str) -> None:
    make = INNER_OPTIMIZERS[name]
    expected, _ = _train(make(), shared_loss, _shared_params(), steps=100)
    actual, drifts = _train(
        tied(make(), EMBED_TIE), untied_loss, _untied(_shared_params()), 100, EMBED_TIE
    )
    assert drifts.shape == (100,) and drifts.max() == 0.0
    assert_close({k: actual[k] for k in expected}, expected)
    # It trained: the comparison is not between two copies of the initial params.
    assert float(np.max(np.abs(expected["embed"] - _shared_params()["embed"]))) > 0.1


# Adafactor is left out: the fenced merge can differ from jax.grad's sum by an ulp or two
# (it no longer fuses, so XLA cannot contract it into a multiply-add), and Adafactor amplifies
# that beyond 1e-6 over 100 steps, as the comment in _lm_loss describes.
@pytest.mark.parametrize("name", [n for n in INNER_OPTIMIZERS if n != "adafactor"])
def test_fenced_transpose_merge_matches_shared_model(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 12 x 6 embedding is below the size at which the merge is fenced; force the fence.
    monkeypatch.setattr(_merge, "FENCE_MIN_BYTES", 0)
    make = INNER_OPTIMIZERS[name]
    expected, _ = _train(make(), shared_loss, _shared_params(), steps=100)
    actual, drifts = _train(
        tied(make(), EMBED_TIE), untied_loss, _untied(_shared_params()), 100, EMBED_TIE
    )
    assert drifts.shape == (100,) and drifts.max() == 0.0
    assert_close({k: actual[k] for k in expected}, expected)


@pytest.mark.parametrize(
    ("map_", "fenced"), [("transpose", True), ("(1, 0)", True), ("identity", False)]
)
def test_large_transposed_merge_is_fenced_on_cpu(map_: str, fenced: bool) -> None:
    # Structure, not speed: a transposed merge at least FENCE_MIN_BYTES large is computed
    # inside a conditional, which XLA cannot fuse into the optimizer's loops.
    rows = _merge.FENCE_MIN_BYTES // (4 * 64)
    tie = Tie("w", "wt", map_)
    w = jnp.zeros((rows, 64), jnp.float32)
    params = {"w": w, "wt": tie.map.apply(w)}
    tx = tied(optax.adam(0.1), [tie])
    hlo = jax.jit(tx.update).lower(params, tx.init(params), params).as_text()
    assert ("stablehlo.case" in hlo) == fenced
    small = {"w": w[:8], "wt": tie.map.apply(w[:8])}
    assert "stablehlo.case" not in jax.jit(tx.update).lower(small, tx.init(small), small).as_text()


def test_merge_tied_gradients_keeps_a_transpose_tie_under_adam_and_plain_adam_breaks_it() -> None:
    params = _untied(_shared_params())
    merged_tx = optax.chain(merge_tied_gradients(EMBED_TIE), optax.adam(0.05))
    _, merged_drift = _train(merged_tx, untied_loss, params, 100, EMBED_TIE)
    _, unmerged_drift = _train(optax.adam(0.05), untied_loss, params, 100, EMBED_TIE)
    assert merged_drift.max() <= 1e-6
    # The failure the merge prevents: each copy follows its own gradient and Adam state.
    assert unmerged_drift[-1] > 0.1


def test_merge_tied_gradients_sums_copies_and_writes_the_sum_back_through_the_map() -> None:
    grads = {"w": np.ones((2, 3), F32), "wt": np.arange(6, dtype=F32).reshape(3, 2)}
    tx = merge_tied_gradients([Tie("w", "wt", "transpose")])
    params = {"w": np.zeros((2, 3), F32), "wt": np.zeros((3, 2), F32)}
    merged, _ = jax.jit(tx.update)(grads, tx.init(params))
    np.testing.assert_array_equal(merged["w"], 1 + np.arange(6).reshape(3, 2).T)
    np.testing.assert_array_equal(merged["wt"], merged["w"].T)


def _num_elements(tree: Any) -> int:
    return sum(np.size(x) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", ["adam", "adafactor", "clip_then_adam"])
def test_tied_state_has_as_many_elements_as_inner_on_shared_model(name: str) -> None:
    make = INNER_OPTIMIZERS[name]
    tied_state = tied(make(), EMBED_TIE).init(_untied(_shared_params()))
    # Targets are removed, so not even Adafactor's 1-element per-leaf dummies are kept.
    shared_elements = _num_elements(make().init(_shared_params()))
    assert _num_elements(tied_state) == shared_elements
    assert _num_elements(tied_state) < _num_elements(make().init(_untied(_shared_params())))


def test_tied_inside_chain_equals_the_chained_optimizer_on_shared_model() -> None:
    expected, _ = _train(optax.adam(0.05), shared_loss, _shared_params(), steps=20)
    tx = optax.chain(tied(optax.scale_by_adam(), EMBED_TIE), optax.scale(-0.05))
    actual, _ = _train(tx, untied_loss, _untied(_shared_params()), steps=20)
    assert_close({k: actual[k] for k in expected}, expected)


def test_tied_with_inject_hyperparams_inner_and_changed_learning_rate() -> None:
    def run(params: Any, loss: Any, tx: Any, hyperparams: Callable[[Any], dict]) -> Any:
        @jax.jit
        def step_fn(params: Any, state: Any) -> tuple[Any, Any]:
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        state = jax.jit(tx.init)(params)
        for step in range(20):
            params, state = step_fn(params, state)
            if step == 9:  # how users change an injected hyperparameter mid-run
                hyperparams(state)["learning_rate"] = jnp.asarray(0.01, F32)
        return params

    adam = optax.inject_hyperparams(optax.adam)
    expected = run(_shared_params(), shared_loss, adam(learning_rate=0.05), lambda s: s.hyperparams)
    actual = run(
        _untied(_shared_params()),
        untied_loss,
        tied(adam(learning_rate=0.05), EMBED_TIE),
        lambda s: s.inner_state.hyperparams,
    )
    assert_close({k: actual[k] for k in expected}, expected)


def test_inject_hyperparams_around_a_tied_factory() -> None:
    factory = optax.inject_hyperparams(
        lambda learning_rate: tied(optax.adam(learning_rate), EMBED_TIE)
    )
    actual, _ = _train(factory(learning_rate=0.05), untied_loss, _untied(_shared_params()), 20)
    expected, _ = _train(optax.adam(0.05), shared_loss, _shared_params(), steps=20)
    assert_close({k: actual[k] for k in expected}, expected)


@pytest.mark.parametrize("placement", ["multisteps_outside", "multisteps_inside"])
def test_tied_with_multisteps_gradient_accumulation(placement: str) -> None:
    expected, _ = _train(optax.MultiSteps(optax.adam(0.05), 3), shared_loss, _shared_params(), 30)
    if placement == "multisteps_outside":
        tx = optax.MultiSteps(tied(optax.adam(0.05), EMBED_TIE), 3)
    else:
        tx = tied(optax.MultiSteps(optax.adam(0.05), 3).gradient_transformation(), EMBED_TIE)
    actual, drifts = _train(tx, untied_loss, _untied(_shared_params()), 30, EMBED_TIE)
    assert drifts.max() == 0.0
    assert_close({k: actual[k] for k in expected}, expected)


# ---- every map kind, partial ties and chains: a generic quadratic-plus-sine model ----------


def _map_case_loss(weights: dict[str, jax.Array]) -> Callable[[dict[str, jax.Array]], jax.Array]:
    def loss(params: dict[str, jax.Array]) -> jax.Array:
        return sum(
            jnp.sum(weights[k] * jnp.sin(params[k]) + 0.5 * params[k] ** 2) for k in sorted(params)
        )

    return loss


MAP_CASES = {
    "identity": ((4, 3), "identity"),
    "transpose": ((4, 3), "transpose"),
    "permutation": ((2, 3, 4), (2, 0, 1)),
    "adjoint_vector": ((5,), "adjoint"),
    "adjoint_matrix": ((4, 3), "adjoint"),
    "leading_rows": ((6, 3), "[:3]"),
    "column_block": ((4, 8), "[:, 2:5]"),
    "one_row": ((4, 3), "[1]"),
    "strided_np_s": ((8, 2), np.s_[1::3]),
    "slice_object": ((6,), slice(2, None)),
}


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_tied_matches_shared_model_for_every_map_kind(case: str) -> None:
    shape, spec = MAP_CASES[case]
    tie = Tie("src", "tgt", spec)
    src = _normal(3, shape)
    target_shape = tie.map.out_shape(shape)
    weights = {
        "src": _normal(4, shape),
        "tgt": _normal(5, target_shape),
    }
    untied_loss_fn = _map_case_loss(weights)

    def shared_loss_fn(params: dict[str, jax.Array]) -> jax.Array:
        return untied_loss_fn({"src": params["src"], "tgt": tie.map.apply(params["src"])})

    expected, _ = _train(optax.adam(0.05), shared_loss_fn, {"src": src}, steps=15)
    untied = materialize_ties({"src": src, "tgt": np.zeros(target_shape, F32)}, [tie])
    tx = tied(optax.adam(0.05), [tie])
    actual, drifts = _train(tx, untied_loss_fn, untied, 15, [tie])
    assert_close(actual["src"], expected["src"])

    # The target's update is exactly the map of the source's update ...
    updates = jax.jit(lambda p: tx.update(jax.grad(untied_loss_fn)(p), tx.init(p), p)[0])(actual)
    np.testing.assert_array_equal(updates["tgt"], tie.map.apply(updates["src"]))
    # ... and params keep the tie up to XLA:CPU contracting ``p + u`` into an FMA in one fused
    # loop and not in another (a slice's short loop is not vectorised): a last-bit effect of
    # the caller's apply_updates, zero on an FMA-less ISA (--xla_cpu_max_isa=SSE4_2).
    assert drifts.max() <= 4 * np.finfo(np.float32).eps * float(np.max(np.abs(actual["src"])))


def test_chained_ties_fold_into_the_root_source() -> None:
    # w -> wt (transpose) -> head (first two rows of wt): head is part of w's transpose.
    ties = [Tie("wt", "head", "[:2]"), Tie("w", "wt", "transpose")]
    w = _normal(6, (3, 5))
    weights = {
        "w": _normal(7, (3, 5)),
        "wt": _normal(8, (5, 3)),
        "head": _normal(9, (2, 3)),
    }
    untied_loss_fn = _map_case_loss(weights)

    def shared_loss_fn(params: dict[str, jax.Array]) -> jax.Array:
        wt = params["w"].T
        return untied_loss_fn({"w": params["w"], "wt": wt, "head": wt[:2]})

    expected, _ = _train(optax.adam(0.05), shared_loss_fn, {"w": w}, steps=15)
    placeholder = {"w": w, "wt": np.zeros((5, 3), F32), "head": np.zeros((2, 3), F32)}
    untied = materialize_ties(placeholder, ties)
    actual, drifts = _train(tied(optax.adam(0.05), ties), untied_loss_fn, untied, 15, ties)
    assert drifts.max() <= 4 * np.finfo(np.float32).eps * float(np.max(np.abs(actual["w"])))
    assert_close(actual["w"], expected["w"])


# ---- pytree kinds and path spellings ---------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Dense:
    weight: jax.Array
    bias: jax.Array


class AutoEncoder(NamedTuple):
    encoder: Dense
    decoder: Dense


def _autoencoder_loss(model: AutoEncoder, x: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ model.encoder.weight + model.encoder.bias)
    return jnp.mean((h @ model.decoder.weight + model.decoder.bias - x) ** 2)


def _autoencoder() -> AutoEncoder:
    w = _normal(10, (5, 3))
    return AutoEncoder(Dense(w, np.zeros(3, F32)), Dense(w.T, _normal(11, (5,), 1 / 10)))


def _ae_key_path(field: str) -> tuple[Any, ...]:
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(_autoencoder())[0]]
    return next(p for p in paths if jax.tree_util.keystr(p) == field)


@pytest.mark.parametrize(
    "source, target",
    [
        ("encoder.weight", "decoder.weight"),
        (_ae_key_path(".encoder.weight"), _ae_key_path(".decoder.weight")),
    ],
    ids=["dotted_path", "jax_key_path"],
)
def test_tied_on_namedtuple_of_registered_dataclasses(source: Any, target: Any) -> None:
    x = _normal(12, (8, 5))
    ties = [Tie(source, target, "transpose")]
    model = _autoencoder()

    def shared_loss_fn(p: dict[str, jax.Array]) -> jax.Array:
        tied_model = model._replace(
            encoder=Dense(p["w"], p["b_enc"]), decoder=Dense(p["w"].T, p["b_dec"])
        )
        return _autoencoder_loss(tied_model, x)

    shared = {"w": model.encoder.weight, "b_enc": model.encoder.bias, "b_dec": model.decoder.bias}
    expected, _ = _train(optax.adam(0.05), shared_loss_fn, shared, steps=20)
    actual, drifts = _train(
        tied(optax.adam(0.05), ties), lambda m: _autoencoder_loss(m, x), model, 20, ties
    )
    assert isinstance(actual, AutoEncoder) and isinstance(actual.decoder, Dense)
    assert drifts.max() == 0.0
    assert_close(actual.encoder.weight, expected["w"])
    assert_close(actual.decoder.bias, expected["b_dec"])


def test_tied_on_list_of_layers_with_integer_path_parts() -> None:
    w = _normal(13, (4, 4))
    params = [{"w": w}, {"w": w.copy()}, {"w": np.eye(4, dtype=F32)}]
    ties = [Tie("0.w", "1.w")]

    def untied_loss_fn(p: list[dict[str, jax.Array]]) -> jax.Array:
        x = np.ones((2, 4), F32)
        for layer in p:
            x = jnp.tanh(x @ layer["w"])
        return jnp.sum(x**2)

    expected, _ = _train(
        optax.adam(0.05),
        lambda p: untied_loss_fn([p[0], p[0], p[1]]),
        [{"w": w}, {"w": params[2]["w"]}],
        steps=20,
    )
    actual, _ = _train(tied(optax.adam(0.05), ties), untied_loss_fn, params, steps=20)
    assert isinstance(actual, list)
    assert_close([actual[0], actual[2]], expected)
    np.testing.assert_array_equal(actual[0]["w"], actual[1]["w"])


def test_tied_update_without_params_for_optimizers_that_do_not_need_them() -> None:
    params = _untied(_shared_params())
    tx = tied(optax.sgd(0.1), EMBED_TIE)

    @jax.jit
    def updates_without_params(params: Any) -> Any:
        return tx.update(jax.grad(untied_loss)(params), tx.init(params))[0]

    updates = updates_without_params(params)
    np.testing.assert_array_equal(updates["unembed"], updates["embed"].T)


def test_merge_tied_gradients_scatter_adds_a_partial_tie_and_slices_the_sum_back() -> None:
    grads = {"table": np.ones(4, F32), "head": np.full(2, 10.0, F32)}
    tx = merge_tied_gradients([Tie("table", "head", "[:2]")])
    params = {"table": np.zeros(4, F32), "head": np.zeros(2, F32)}
    merged, _ = jax.jit(tx.update)(grads, tx.init(params))
    np.testing.assert_array_equal(merged["table"], [11.0, 11.0, 1.0, 1.0])
    np.testing.assert_array_equal(merged["head"], [11.0, 11.0])
