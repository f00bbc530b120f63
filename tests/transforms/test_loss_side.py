"""The loss-side path in Flax NNX, Flax linen, Equinox and Haiku training loops.

Each test trains the untied language model of ``test_tie_libraries`` three ways for 100 AdamW
steps: plain ``adamw`` on the sources only with :func:`loss_on_sources`, ``tied(adamw)`` on the
untied params, and ``adamw`` on the library's own shared model. The three trajectories agree
(loss every step, weights at the end), and the loss-side optimizer keeps exactly the shared
model's state.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_tie_libraries import (
    NNX_TIES,
    STEPS,
    _assert_same_training,
    _batch,
    _cross_entropy,
    _eqx_models,
    _eqx_train,
    _haiku_net,
    _haiku_train,
    _linen_model,
    _linen_train,
    _nnx_functional_train,
    _nnx_models,
    _state_size,
    adamw,
    float32_session,  # noqa: F401 - the autouse fixture, in force here too
)

from toolkit.transforms import (
    Tie,
    loss_on_sources,
    materialize_ties,
    restore_targets,
    strip_targets,
    tie_drift,
    tied,
)


def _train_on_sources(
    loss_fn: Any, sources: Any, ties: list[Tie]
) -> tuple[list[Any], Any, Any]:
    """Plain adamw on the sources, the loss computing each target inside."""
    optimizer = adamw()
    opt_state = optimizer.init(sources)
    loss_on = loss_on_sources(loss_fn, ties)
    tokens, labels = _batch()

    @jax.jit
    def step(sources: Any, opt_state: Any) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_on)(sources, tokens, labels)
        updates, opt_state = optimizer.update(grads, opt_state, sources)
        return optax.apply_updates(sources, updates), opt_state, loss

    losses = []
    for _ in range(STEPS):
        sources, opt_state, loss = step(sources, opt_state)
        losses.append(loss)
    return losses, sources, opt_state


def test_nnx_loss_side_trains_like_tied_and_embed_attend() -> None:
    from flax import nnx

    shared, untied = _nnx_models()
    graphdef, params = nnx.split(untied, nnx.Param)
    sources = strip_targets(params, NNX_TIES)
    assert sources["out"]["kernel"] is None

    def loss_fn(params: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(nnx.merge(graphdef, params)(tokens), labels)

    side_losses, sources, side_state = _train_on_sources(loss_fn, sources, NNX_TIES)
    shared_losses, shared_params = _nnx_functional_train(shared, adamw())
    tied_losses, tied_params = _nnx_functional_train(_nnx_models()[1], tied(adamw(), NNX_TIES))

    for other_losses, other in ((shared_losses, shared_params), (tied_losses, tied_params)):
        _assert_same_training(
            side_losses,
            other_losses,
            {
                "embed": (sources["embed"]["embedding"][...], other["embed"]["embedding"][...]),
                "hidden": (sources["hidden"]["kernel"][...], other["hidden"]["kernel"][...]),
            },
        )
    restored = restore_targets(sources, NNX_TIES)
    np.testing.assert_array_equal(restored["out"]["kernel"], sources["embed"]["embedding"][...].T)
    shared_state = adamw().init(nnx.split(shared, nnx.Param)[1])
    assert _state_size(side_state) == _state_size(shared_state)


def test_linen_loss_side_trains_like_tied_and_embed_attend() -> None:
    shared_model, untied_model = _linen_model(attend=True), _linen_model(attend=False)
    tokens, _ = _batch()
    ties = [Tie("embed.embedding", "out.kernel", "transpose")]
    params = materialize_ties(untied_model.init(jax.random.key(0), tokens)["params"], ties)
    shared_params = {k: v for k, v in params.items() if k != "out"}  # the same initial values

    def loss_fn(params: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(untied_model.apply({"params": params}, tokens), labels)

    side_losses, sources, _ = _train_on_sources(loss_fn, strip_targets(params, ties), ties)
    shared_losses, shared_params = _linen_train(shared_model, shared_params, adamw())
    tied_losses, tied_params = _linen_train(untied_model, params, tied(adamw(), ties))

    for other_losses, other in ((shared_losses, shared_params), (tied_losses, tied_params)):
        _assert_same_training(
            side_losses,
            other_losses,
            {
                "embed": (sources["embed"]["embedding"], other["embed"]["embedding"]),
                "hidden": (sources["hidden"]["kernel"], other["hidden"]["kernel"]),
            },
        )


def test_equinox_loss_side_trains_like_tied_and_eqx_shared() -> None:
    import equinox as eqx

    shared_model, untied_model = _eqx_models()
    ties = [Tie(lambda m: m.embed.weight, lambda m: m.out.weight)]
    sources = strip_targets(untied_model, ties)
    assert sources.out.weight is None

    def loss_fn(model: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(model(tokens), labels)

    side_losses, sources, _ = _train_on_sources(loss_fn, sources, ties)
    shared_losses, shared_model = _eqx_train(shared_model, adamw())
    tied_losses, tied_model = _eqx_train(untied_model, tied(adamw(), ties))

    shared_embed, _ = shared_model.shared()
    for other_losses, embed, hidden in (
        (shared_losses, shared_embed.weight, shared_model.hidden.weight),
        (tied_losses, tied_model.embed.weight, tied_model.hidden.weight),
    ):
        _assert_same_training(
            side_losses,
            other_losses,
            {"embed": (sources.embed.weight, embed), "hidden": (sources.hidden.weight, hidden)},
        )
    assert isinstance(restore_targets(sources, ties), eqx.Module)


def test_haiku_loss_side_trains_like_tied_and_reused_embeddings() -> None:
    shared_net, untied_net = _haiku_net(True), _haiku_net(False)
    tokens, _ = _batch()
    ties = [Tie("lm/embed/embeddings", "lm/out/w", "transpose")]
    params = materialize_ties(untied_net.init(jax.random.key(0), tokens), ties)
    shared_params = {k: v for k, v in params.items() if k != "lm/out"}

    def loss_fn(params: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(untied_net.apply(params, tokens), labels)

    side_losses, sources, _ = _train_on_sources(loss_fn, strip_targets(params, ties), ties)
    shared_losses, shared_params = _haiku_train(shared_net, shared_params, adamw())
    tied_losses, tied_params = _haiku_train(untied_net, params, tied(adamw(), ties))

    for other_losses, other in ((shared_losses, shared_params), (tied_losses, tied_params)):
        _assert_same_training(
            side_losses,
            other_losses,
            {
                "embed": (sources["lm/embed"]["embeddings"], other["lm/embed"]["embeddings"]),
                "hidden": (sources["lm/hidden"]["w"], other["lm/hidden"]["w"]),
            },
        )


def test_loss_side_gradient_is_the_merged_gradient_of_every_map() -> None:
    # Against the merge computed by hand from the untied gradient: g_w + mapᵀ(g_copy), for a
    # composite map, a scale and a chain through them.
    ties = [
        Tie("w", "u", "[:, 1:3] then transpose"),
        Tie("u", "c", "[1]"),
        Tie("w", "s", "scale(-0.5)"),
    ]
    w = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4)), jnp.float32)
    params = {"w": w, "u": w[:, 1:3].T, "c": w[:, 1:3].T[1], "s": -0.5 * w}

    def loss(p: Any) -> jax.Array:
        return jnp.sum(jnp.sin(p["w"])) + jnp.sum(p["u"] ** 2) + jnp.sum(p["c"] ** 3) + jnp.sum(
            jnp.exp(p["s"])
        )

    g = jax.grad(loss)(params)
    g_u = g["u"].at[1].add(g["c"])
    expected = g["w"] + jnp.zeros_like(w).at[:, 1:3].add(g_u.T) - 0.5 * g["s"]
    got = jax.jit(jax.grad(loss_on_sources(loss, ties)))(strip_targets(params, ties))
    assert got["u"] is None and got["c"] is None and got["s"] is None
    np.testing.assert_allclose(got["w"], expected, rtol=1e-6)
    assert float(tie_drift(restore_targets(strip_targets(params, ties), ties), ties)["c"]) == 0.0


def test_loss_side_names_a_missing_argument_and_a_stripped_source() -> None:
    ties = [Tie("w", "v")]
    with pytest.raises(TypeError, match=r"positional argument 1 of .*only 1"):
        loss_on_sources(lambda x, p: p, ties, argnum=1)(1)
    with pytest.raises(ValueError, match=r"source 'w' is None in the stripped params"):
        loss_on_sources(lambda p: p, ties)({"w": None, "v": np.ones(2)})


@pytest.mark.parametrize("map_", ["identity", "transpose"])
def test_loss_side_step_compiles_to_the_shared_models_program(map_: str) -> None:
    # The cost claim, checked where it is decided: XLA gets the same instructions.
    tie = Tie("embed", "unembed", map_)
    w = jnp.ones((64, 8), jnp.float32)
    tokens = jnp.arange(9) % 64

    def untied_loss(params: Any) -> jax.Array:
        hidden = jnp.tanh(params["embed"][tokens[:-1]])
        unembed = params["unembed"] if map_ == "transpose" else params["unembed"].T
        return _cross_entropy(hidden @ unembed, tokens[1:])

    def shared_loss(params: Any) -> jax.Array:
        return untied_loss({**params, "unembed": tie.map.apply(params["embed"])})

    def program(loss_fn: Any, params: Any) -> list[str]:
        optimizer = optax.adam(1e-3)

        def step(params: Any, state: Any) -> tuple[Any, Any]:
            updates, state = optimizer.update(jax.grad(loss_fn)(params), state, params)
            return optax.apply_updates(params, updates), state

        text = jax.jit(step).lower(params, optimizer.init(params)).compile().as_text()
        lines = [re.sub(r", metadata=\{[^}]*\}", "", line) for line in text.splitlines()]
        return [line for line in lines if " = " in line and not re.match(r"\s*\d+ ", line)]

    sources = strip_targets({"embed": w, "unembed": tie.map.apply(w)}, [tie])
    loss_side = program(loss_on_sources(untied_loss, [tie]), sources)
    assert len(loss_side) > 20
    assert loss_side == program(shared_loss, {"embed": w})
