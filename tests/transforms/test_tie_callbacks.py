"""Callbacks of the inner optimizer behave inside tied() as they do on the shared model.

Mask and label functions, a line search's value function and schedule-free evaluation params:
each case trains ``tied(inner)`` on the untied tree and ``inner`` on the shared model (one leaf
per real parameter, the copy computed inside the loss) and compares the two. The models are a
flax/haiku-style nested dict of modules; float32 unless noted (conftest turns on x64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import (
    Tie,
    TiedTarget,
    materialize_ties,
    tie_drift,
    tied,
    tied_eval_params,
)
from toolkit.transforms._paths import path_str

VOCAB, DIM = 10, 4
TIES = [Tie("embed.embedding", "head.kernel", "transpose")]
TOKENS = np.array([0, 3, 5, 7, 9, 2, 3])
LABELS = np.array([1, 4, 5, 0, 9, 2, 8])


def _normal(seed: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) / 2).astype(dtype)


def shared_params(dtype: Any = np.float32) -> dict[str, dict[str, np.ndarray]]:
    return {
        "embed": {"embedding": _normal(0, (VOCAB, DIM), dtype)},
        "proj": {"kernel": _normal(1, (DIM, DIM), dtype), "bias": _normal(2, (DIM,), dtype)},
        "head": {"bias": _normal(3, (VOCAB,), dtype)},
    }


def untied_params(dtype: Any = np.float32) -> dict[str, dict[str, np.ndarray]]:
    shared = shared_params(dtype)
    placeholder = {**shared, "head": {**shared["head"], "kernel": np.zeros((DIM, VOCAB), dtype)}}
    return materialize_ties(placeholder, TIES)


def _loss(embedding: Any, proj: dict[str, Any], head_kernel: Any, head_bias: Any) -> jax.Array:
    hidden = jnp.tanh(embedding[TOKENS] @ proj["kernel"] + proj["bias"])
    # Multiply-and-sum rather than a matmul with a transposed operand, so that both models'
    # logits are computed in the same order.
    logits = jnp.sum(hidden[:, :, None] * head_kernel[None], axis=1) + head_bias
    return optax.softmax_cross_entropy_with_integer_labels(logits, LABELS).mean()


def shared_loss(p: dict[str, Any]) -> jax.Array:
    embedding = p["embed"]["embedding"]
    return _loss(embedding, p["proj"], embedding.T, p["head"]["bias"])


def untied_loss(p: dict[str, Any]) -> jax.Array:
    return _loss(p["embed"]["embedding"], p["proj"], p["head"]["kernel"], p["head"]["bias"])


def _train(tx: optax.GradientTransformation, loss: Callable, params: Any, steps: int) -> Any:
    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _assert_matches_shared(actual: Any, expected: Any, rel: float = 1e-6) -> None:
    assert float(tie_drift(actual, TIES)["head.kernel"]) == 0.0
    for module, leaves in expected.items():
        for name, e in leaves.items():
            a = actual[module][name]
            np.testing.assert_allclose(
                a, e, rtol=0, atol=rel * float(np.max(np.abs(e))), err_msg=f"{module}.{name}"
            )
    # It trained: the embedding moved well away from its initial value.
    start = shared_params(expected["embed"]["embedding"].dtype)["embed"]["embedding"]
    assert float(np.max(np.abs(expected["embed"]["embedding"] - start))) > 0.05


def _is_target(x: Any) -> bool:
    return isinstance(x, TiedTarget)


def _flax_path_mask(params: Any) -> Any:
    """Weight decay on kernels and embeddings only, by path and rank, as flax users write it."""
    traverse_util = pytest.importorskip("flax.traverse_util")
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict(
        {path: path[-1] != "bias" and value.ndim == 2 for path, value in flat.items()}
    )


def _haiku_mask(params: Any) -> Any:
    """The same mask over haiku's module -> name -> array maps."""
    data_structures = pytest.importorskip("haiku.data_structures")
    return data_structures.map(
        lambda module_name, name, value: name != "bias" and value.ndim == 2, params
    )


def _ndim_mask(params: Any) -> Any:
    """Weight decay on matrices only: the mask reads each leaf."""
    return jax.tree.map(lambda x: x.ndim > 1, params)


@pytest.mark.parametrize(
    "mask", [_flax_path_mask, _haiku_mask, _ndim_mask], ids=["flax_path", "haiku_map", "ndim"]
)
def test_adamw_mask_callable_sees_every_leaf_and_matches_shared_model(mask: Callable) -> None:
    seen_leaves = []

    def recording_mask(params: Any) -> Any:
        with_paths = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_target)[0]
        seen_leaves.append(tuple((path, x.shape, _is_target(x)) for path, x in with_paths))
        return mask(params)

    make = lambda m: optax.adamw(0.05, weight_decay=0.5, mask=m)  # noqa: E731
    expected, _ = _train(make(mask), shared_loss, shared_params(), steps=40)
    actual, _ = _train(tied(make(recording_mask), TIES), untied_loss, untied_params(), steps=40)
    _assert_matches_shared(actual, expected)
    # Called at init and when update is traced, each time with every leaf of the untied tree,
    # the target as a TiedTarget of the target's shape.
    untied = jax.tree_util.tree_flatten_with_path(untied_params())[0]
    expected_leaves = tuple((path, x.shape, path_str(path) == "head.kernel") for path, x in untied)
    assert seen_leaves and set(seen_leaves) == {expected_leaves}


def test_adamw_mask_decays_only_what_it_selects() -> None:
    # Guards the comparison above: with weight decay on biases too, the result differs.
    decay_all, _ = _train(optax.adamw(0.05, weight_decay=0.5), shared_loss, shared_params(), 40)
    masked, _ = _train(
        optax.adamw(0.05, weight_decay=0.5, mask=_ndim_mask), shared_loss, shared_params(), 40
    )
    assert float(np.max(np.abs(decay_all["proj"]["bias"] - masked["proj"]["bias"]))) > 1e-3


def test_multi_transform_label_function_matches_shared_model() -> None:
    def labels(params: Any) -> Any:
        return {
            module: {name: "sgd" if value.ndim == 1 else "adam" for name, value in leaves.items()}
            for module, leaves in params.items()
        }

    def make() -> optax.GradientTransformation:
        return optax.multi_transform({"adam": optax.adam(0.05), "sgd": optax.sgd(0.1)}, labels)

    expected, _ = _train(make(), shared_loss, shared_params(), steps=40)
    actual, state = _train(tied(make(), TIES), untied_loss, untied_params(), steps=40)
    _assert_matches_shared(actual, expected)
    adam_mu = state.inner_state.inner_states["adam"].inner_state[0].mu
    assert isinstance(adam_mu["head"]["kernel"], TiedTarget)  # no state for the tied copy
    assert jax.tree.leaves(adam_mu["head"]["kernel"]) == []


def _muon_momentum(state: Any) -> Any:
    is_muon = lambda x: isinstance(x, optax.contrib.MuonState)  # noqa: E731
    return next(x for x in jax.tree.leaves(state, is_leaf=is_muon) if is_muon(x)).mu


def test_muon_for_matrices_and_adam_for_the_rest_keep_one_state_per_tied_matrix() -> None:
    # Routing by rank, as Muon users do: the tied embedding and its transposed head are one
    # matrix, so Muon orthogonalises one momentum for both (a zero-size copy once broke its
    # fan-in/fan-out scaling).
    def labels(params: Any) -> Any:
        return jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adam", params)

    def make() -> optax.GradientTransformation:
        return optax.multi_transform(
            {"muon": optax.contrib.muon(0.02), "adam": optax.adam(0.02)}, labels
        )

    expected, expected_state = _train(make(), shared_loss, shared_params(), steps=20)
    actual, state = _train(tied(make(), TIES), untied_loss, untied_params(), steps=20)
    _assert_matches_shared(actual, expected, rel=1e-5)
    muon_mu = _muon_momentum(state.inner_state.inner_states["muon"])
    expected_mu = _muon_momentum(expected_state.inner_states["muon"])
    assert isinstance(muon_mu["head"]["kernel"], TiedTarget)
    np.testing.assert_allclose(
        muon_mu["embed"]["embedding"], expected_mu["embed"]["embedding"], rtol=1e-5, atol=1e-7
    )


def test_tree_map_params_maps_the_sources_slots_and_leaves_targets_alone() -> None:
    params = untied_params()
    tx = tied(optax.adam(0.05), TIES)
    _, state = _train(tx, untied_loss, params, steps=3)
    doubled = optax.tree_map_params(tx, lambda v: 2 * v, state)
    mu, doubled_mu = state.inner_state[0].mu, doubled.inner_state[0].mu
    np.testing.assert_array_equal(doubled_mu["embed"]["embedding"], 2 * mu["embed"]["embedding"])
    assert doubled_mu["head"]["kernel"] is mu["head"]["kernel"]
    assert int(doubled.inner_state[0].count) == 3  # not a params-shaped slot


def _lbfgs_run(loss: Callable, params: Any, tx: optax.GradientTransformation, steps: int) -> Any:
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        value, grad = value_and_grad(params, state=state)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(params, updates), state, value

    state = jax.jit(tx.init)(params)  # eager init would compile each small op
    values = []
    for _ in range(steps):
        params, state, value = step(params, state)
        values.append(float(value))
    return params, np.array(values)


LINE_SEARCHES = {
    "backtracking": lambda: optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=15, store_grad=True
    ),
    # optax.lbfgs's default.
    "zoom": lambda: optax.scale_by_zoom_linesearch(max_linesearch_steps=15),
}


# 20-50 s each on the shared 2-core machine, most of it compiling the line search.
@pytest.mark.slow
@pytest.mark.parametrize("line_search", ["backtracking", "zoom"])
def test_lbfgs_line_search_value_fn_and_value_and_grad_from_state_match_shared_model(
    line_search: str,
) -> None:
    def make() -> optax.GradientTransformation:
        return optax.lbfgs(linesearch=LINE_SEARCHES[line_search]())

    # float64: the line search branches on comparisons of losses, which float32 round-off
    # between the two models could flip.
    expected, expected_values = _lbfgs_run(shared_loss, shared_params(np.float64), make(), steps=10)
    seen = []

    def recording_loss(params: Any) -> jax.Array:
        seen.append(jax.tree.map(jnp.shape, params))
        return untied_loss(params)

    actual, actual_values = _lbfgs_run(
        recording_loss, untied_params(np.float64), tied(make(), TIES), steps=10
    )
    _assert_matches_shared(actual, expected, rel=1e-9)
    np.testing.assert_allclose(actual_values, expected_values, rtol=1e-12)
    assert expected_values[-1] < 0.5 * expected_values[0]  # it optimised
    # The line search called the loss with full params (the target's real shape).
    full_shapes = jax.tree.map(np.shape, untied_params())
    assert seen and all(s == full_shapes for s in seen)


def test_schedule_free_adamw_params_and_eval_params_match_shared_model() -> None:
    def make() -> optax.GradientTransformation:
        return optax.contrib.schedule_free_adamw(0.05, warmup_steps=5, weight_decay=0.1)

    expected, expected_state = _train(make(), shared_loss, shared_params(), steps=40)
    actual, state = _train(tied(make(), TIES), untied_loss, untied_params(), steps=40)
    _assert_matches_shared(actual, expected)
    expected_eval = optax.contrib.schedule_free_eval_params(expected_state, expected)
    actual_eval = tied_eval_params(state, actual, TIES)
    _assert_matches_shared(actual_eval, expected_eval)
    # Evaluation params are not the training params: the comparison is not a copy of the above.
    assert float(np.max(np.abs(expected_eval["proj"]["kernel"] - expected["proj"]["kernel"]))) > 0


@pytest.mark.parametrize("wrapper", ["masked", "multi_transform"])
def test_tied_inside_masked_or_multi_transform_takes_a_full_grad_extra_argument(
    wrapper: str,
) -> None:
    # Both wrappers pass extra arguments on unmasked: the full-tree grad reaches tied, which
    # passes on what it cannot translate (adam ignores it).
    def is_matrix(params: Any) -> Any:
        return jax.tree.map(lambda x: x.ndim == 2, params)

    def make(inner: optax.GradientTransformation) -> optax.GradientTransformation:
        if wrapper == "masked":
            return optax.chain(
                optax.masked(inner, is_matrix),
                optax.masked(optax.sgd(0.1), lambda p: jax.tree.map(lambda m: not m, is_matrix(p))),
            )
        labels = lambda p: jax.tree.map(lambda m: "adam" if m else "sgd", is_matrix(p))  # noqa: E731
        return optax.multi_transform({"adam": inner, "sgd": optax.sgd(0.1)}, labels)

    def train(tx: optax.GradientTransformation, loss: Callable, params: Any) -> Any:
        @jax.jit
        def step(params: Any, state: Any) -> tuple[Any, Any]:
            grad = jax.grad(loss)(params)
            updates, state = tx.update(grad, state, params, grad=grad)
            return optax.apply_updates(params, updates), state

        state = tx.init(params)
        for _ in range(20):
            params, state = step(params, state)
        return params

    expected = train(make(optax.adam(0.05)), shared_loss, shared_params())
    actual = train(make(tied(optax.adam(0.05), TIES)), untied_loss, untied_params())
    _assert_matches_shared(actual, expected)
