"""tied() inside the canonical training loops of Flax NNX, Flax linen, Equinox and Haiku.

Each test trains a small language model whose output layer is its own leaf, tied to the
embedding with :func:`tied`, and compares it with the same model written with the library's
own weight sharing (``nnx.Embed.attend``, ``linen.Embed.attend``, ``eqx.nn.Shared``, Haiku's
``embed.embeddings`` reused): 100 AdamW steps, float32. The tie itself must hold exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, materialize_ties, tie_drift, tied

VOCAB, DIM, SEQ, BATCH, STEPS = 32, 16, 16, 4, 100
LEARNING_RATE, WEIGHT_DECAY = 1e-2, 1e-2
# The two programs compute the logits through different ops (a transposed kernel against
# attend's ``embedding.T``), which a backend may sum in a different order: float32 round-off is
# allowed. On XLA:CPU they agree bit for bit; plain AdamW on the untied tree is 0.2 off in loss.
RTOL, ATOL = 2e-5, 2e-5


def adamw() -> optax.GradientTransformation:
    return optax.adamw(LEARNING_RATE, weight_decay=WEIGHT_DECAY)


@pytest.fixture(autouse=True)
def float32_session() -> Iterator[None]:
    # The libraries' defaults are float32; the suite's conftest turns on x64.
    with jax.enable_x64(False):
        yield


def _batch() -> tuple[np.ndarray, np.ndarray]:
    tokens = np.random.default_rng(0).integers(0, VOCAB, (BATCH, SEQ + 1)).astype(np.int32)
    return tokens[:, :-1], tokens[:, 1:]


def _cross_entropy(logits: jax.Array, labels: Any) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _assert_same_training(
    tied_losses: list[Any], shared_losses: list[Any], pairs: dict[str, tuple[Any, Any]]
) -> None:
    tied_losses, shared_losses = np.asarray(tied_losses), np.asarray(shared_losses)
    # It learned: the comparison is not between two models that stand still.
    assert tied_losses[-1] < 0.5 * tied_losses[0]
    np.testing.assert_allclose(tied_losses, shared_losses, rtol=RTOL, atol=ATOL)
    for name, (tied_value, shared_value) in pairs.items():
        np.testing.assert_allclose(
            np.asarray(tied_value), np.asarray(shared_value), rtol=RTOL, atol=ATOL, err_msg=name
        )


def _state_size(tree: Any) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


# --- Flax NNX ------------------------------------------------------------------------------

NNX_TIES = [Tie("embed.embedding", "out.kernel", "transpose")]


def _nnx_models() -> tuple[Any, Any]:
    nnx = pytest.importorskip("flax.nnx")

    class SharedLM(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.embed = nnx.Embed(VOCAB, DIM, rngs=rngs)
            self.hidden = nnx.Linear(DIM, DIM, rngs=rngs)

        def __call__(self, tokens: jax.Array) -> jax.Array:
            return self.embed.attend(jnp.tanh(self.hidden(self.embed(tokens))))

    class UntiedLM(SharedLM):
        def __init__(self, rngs: Any) -> None:
            super().__init__(rngs)
            self.out = nnx.Linear(DIM, VOCAB, use_bias=False, rngs=rngs)
            self.out.kernel[...] = self.embed.embedding[...].T

        def __call__(self, tokens: jax.Array) -> jax.Array:
            return self.out(jnp.tanh(self.hidden(self.embed(tokens))))

    return SharedLM(nnx.Rngs(0)), UntiedLM(nnx.Rngs(0))


def _nnx_train(model: Any, tx: optax.GradientTransformation) -> tuple[list[Any], Any]:
    from flax import nnx

    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model: Any, optimizer: Any, tokens: Any, labels: Any) -> jax.Array:
        def loss_fn(model: Any) -> jax.Array:
            return _cross_entropy(model(tokens), labels)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    tokens, labels = _batch()
    losses = [train_step(model, optimizer, tokens, labels) for _ in range(STEPS)]
    return losses, optimizer


def test_nnx_optimizer_with_tied_trains_like_embed_attend() -> None:
    from flax import nnx

    shared, untied = _nnx_models()
    assert tie_drift(nnx.state(untied, nnx.Param), NNX_TIES)["out.kernel"] == 0
    shared_losses, shared_optimizer = _nnx_train(shared, adamw())
    tied_losses, tied_optimizer = _nnx_train(untied, tied(adamw(), NNX_TIES))

    assert float(tie_drift(nnx.state(untied, nnx.Param), NNX_TIES)["out.kernel"]) == 0.0
    _assert_same_training(
        tied_losses,
        shared_losses,
        {
            "embed": (untied.embed.embedding[...], shared.embed.embedding[...]),
            "hidden": (untied.hidden.kernel[...], shared.hidden.kernel[...]),
        },
    )
    # One Adam state per real parameter: the same as on the shared model.
    assert _state_size(nnx.as_pure(tied_optimizer.opt_state)) == _state_size(
        nnx.as_pure(shared_optimizer.opt_state)
    )


def _nnx_spellings() -> list[Any]:
    keys = jax.tree_util
    return [
        "embed.embedding",
        "embed.embedding.value",
        ("embed", "embedding"),
        # A key path from flattening an nnx.State, which descends into the Variable.
        (keys.DictKey("embed"), keys.DictKey("embedding"), keys.GetAttrKey("value")),
        lambda state: state["embed"]["embedding"],
        lambda state: state.embed.embedding,
    ]


@pytest.mark.parametrize("source", _nnx_spellings(), ids=lambda s: str(s)[:24])
def test_nnx_source_spellings_resolve_at_init_and_update(source: Any) -> None:
    # init sees an nnx.State of Variables, update one of raw arrays: both must resolve.
    from flax import nnx

    _, untied = _nnx_models()
    ties = [Tie(source, "out.kernel", "transpose")]
    optimizer = nnx.Optimizer(untied, tied(optax.adam(0.1), ties), wrt=nnx.Param)
    # Any gradient of the params' structure will do (the params themselves): this checks that
    # the paths resolve on both trees, and saves compiling an eager backward pass.
    optimizer.update(untied, nnx.state(untied, nnx.Param))
    assert float(tie_drift(nnx.state(untied, nnx.Param), NNX_TIES)["out.kernel"]) == 0.0
    # Not frozen: the tied pair moved.
    assert not np.allclose(untied.out.kernel[...], _nnx_models()[1].out.kernel[...])


def _nnx_functional_train(model: Any, tx: optax.GradientTransformation) -> tuple[list, Any]:
    from flax import nnx

    graphdef, params = nnx.split(model, nnx.Param)
    opt_state = tx.init(params)
    tokens, labels = _batch()

    @jax.jit
    def step(params: Any, opt_state: Any) -> tuple[Any, Any, jax.Array]:
        def loss_fn(params: Any) -> jax.Array:
            return _cross_entropy(nnx.merge(graphdef, params)(tokens), labels)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(params, opt_state)
        losses.append(loss)
    return losses, params


def test_nnx_functional_loop_with_variables_in_update_trains_like_embed_attend() -> None:
    # nnx.split + jax.grad: update gets an nnx.State of Variables, not of raw arrays.
    from flax import nnx

    shared, untied = _nnx_models()
    shared_losses, shared_params = _nnx_functional_train(shared, adamw())
    tied_losses, tied_params = _nnx_functional_train(untied, tied(adamw(), NNX_TIES))

    assert isinstance(tied_params["out"]["kernel"], nnx.Variable)
    assert float(tie_drift(tied_params, NNX_TIES)["out.kernel"]) == 0.0
    _assert_same_training(
        tied_losses,
        shared_losses,
        {
            "embed": (
                tied_params["embed"]["embedding"][...],
                shared_params["embed"]["embedding"][...],
            ),
            "hidden": (
                tied_params["hidden"]["kernel"][...],
                shared_params["hidden"]["kernel"][...],
            ),
        },
    )


def test_nnx_variable_metadata_is_kept_in_the_optimizer_state() -> None:
    nnx = pytest.importorskip("flax.nnx")
    mesh = jax.make_mesh((1, 1), ("vocab", "model"))

    class LM(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            init = nnx.initializers.normal(1.0)
            self.embed = nnx.Embed(
                VOCAB,
                DIM,
                embedding_init=nnx.with_partitioning(init, ("vocab", "model")),
                rngs=rngs,
            )
            self.out = nnx.Linear(
                DIM,
                VOCAB,
                use_bias=False,
                kernel_init=nnx.with_partitioning(init, ("model", "vocab")),
                rngs=rngs,
            )
            self.out.kernel[...] = self.embed.embedding[...].T

    with jax.set_mesh(mesh):
        model = LM(nnx.Rngs(0))
        plain = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)
        tied_optimizer = nnx.Optimizer(model, tied(optax.adam(0.1), NNX_TIES), wrt=nnx.Param)
    plain_mu = plain.opt_state[0].mu
    tied_mu = tied_optimizer.opt_state.inner_state[0].mu
    embedding = tied_mu["embed"]["embedding"]
    assert isinstance(embedding, nnx.Variable)
    assert embedding.get_metadata() == plain_mu["embed"]["embedding"].get_metadata()
    assert embedding.get_metadata()["out_sharding"] == ("vocab", "model")
    assert _state_size(nnx.as_pure(tied_mu["out"])) == 0  # no state for the tied copy


def test_nnx_unknown_path_lists_the_variable_paths() -> None:
    from flax import nnx

    _, untied = _nnx_models()
    with pytest.raises(ValueError, match=r"no leaf at path 'embed\.weight'.*embed\.embedding"):
        nnx.Optimizer(untied, tied(adamw(), [Tie("embed.weight", "out.kernel")]), wrt=nnx.Param)


# --- Flax linen ----------------------------------------------------------------------------


def _linen_model(attend: bool) -> Any:
    nn = pytest.importorskip("flax.linen")

    class LM(nn.Module):
        @nn.compact
        def __call__(self, tokens: jax.Array) -> jax.Array:
            embed = nn.Embed(VOCAB, DIM, name="embed")
            hidden = jnp.tanh(nn.Dense(DIM, name="hidden")(embed(tokens)))
            if attend:
                return embed.attend(hidden)
            return nn.Dense(VOCAB, use_bias=False, name="out")(hidden)

    return LM()


def _linen_train(model: Any, params: Any, tx: optax.GradientTransformation) -> tuple[list, Any]:
    from flax.training import train_state

    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @jax.jit
    def train_step(state: Any, tokens: Any, labels: Any) -> tuple[Any, jax.Array]:
        def loss_fn(params: Any) -> jax.Array:
            return _cross_entropy(state.apply_fn({"params": params}, tokens), labels)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    tokens, labels = _batch()
    losses = []
    for _ in range(STEPS):
        state, loss = train_step(state, tokens, labels)
        losses.append(loss)
    return losses, state.params


def test_linen_train_state_with_tied_trains_like_embed_attend() -> None:
    shared_model, untied_model = _linen_model(attend=True), _linen_model(attend=False)
    tokens, _ = _batch()
    shared_params = shared_model.init(jax.random.key(0), tokens)["params"]
    ties = [Tie("embed.embedding", "out.kernel", "transpose")]
    placeholder = {**shared_params, "out": {"kernel": jnp.zeros((DIM, VOCAB), jnp.float32)}}
    untied_params = materialize_ties(placeholder, ties)
    # The untied model really has its own output kernel.
    assert jax.tree.structure(untied_model.init(jax.random.key(0), tokens)["params"]) == (
        jax.tree.structure(untied_params)
    )

    shared_losses, shared_params = _linen_train(shared_model, shared_params, adamw())
    tied_losses, untied_params = _linen_train(untied_model, untied_params, tied(adamw(), ties))

    assert float(tie_drift(untied_params, ties)["out.kernel"]) == 0.0
    _assert_same_training(
        tied_losses,
        shared_losses,
        {
            "embed": (untied_params["embed"]["embedding"], shared_params["embed"]["embedding"]),
            "hidden": (untied_params["hidden"]["kernel"], shared_params["hidden"]["kernel"]),
        },
    )


# --- Equinox -------------------------------------------------------------------------------


def _eqx_models() -> tuple[Any, Any]:
    eqx = pytest.importorskip("equinox")
    k_embed, k_hidden, k_out = jax.random.split(jax.random.key(0), 3)
    embed = eqx.nn.Embedding(VOCAB, DIM, key=k_embed)
    hidden = eqx.nn.Linear(DIM, DIM, key=k_hidden)
    out = eqx.nn.Linear(DIM, VOCAB, use_bias=False, key=k_out)
    out = eqx.tree_at(lambda linear: linear.weight, out, embed.weight)

    def forward(embed: Any, hidden: Any, out: Any, tokens: jax.Array) -> jax.Array:
        def one(token: jax.Array) -> jax.Array:
            return out(jnp.tanh(hidden(embed(token))))

        return jax.vmap(jax.vmap(one))(tokens)

    class UntiedLM(eqx.Module):
        embed: Any
        hidden: Any
        out: Any

        def __call__(self, tokens: jax.Array) -> jax.Array:
            return forward(self.embed, self.hidden, self.out, tokens)

    class SharedLM(eqx.Module):
        shared: Any
        hidden: Any

        def __call__(self, tokens: jax.Array) -> jax.Array:
            embed, out = self.shared()
            return forward(embed, self.hidden, out, tokens)

    shared = eqx.nn.Shared((embed, out), lambda pair: pair[1].weight, lambda pair: pair[0].weight)
    return SharedLM(shared, hidden), UntiedLM(embed, hidden, out)


def _eqx_train(model: Any, optim: optax.GradientTransformation) -> tuple[list, Any]:
    import equinox as eqx

    opt_state = optim.init(eqx.filter(model, eqx.is_array))

    def loss_fn(model: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(model(tokens), labels)

    @eqx.filter_jit
    def make_step(model: Any, opt_state: Any, tokens: Any, labels: Any) -> tuple[Any, Any, Any]:
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, tokens, labels)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    tokens, labels = _batch()
    losses = []
    for _ in range(STEPS):
        model, opt_state, loss = make_step(model, opt_state, tokens, labels)
        losses.append(loss)
    return losses, model


def test_equinox_function_paths_train_like_eqx_shared() -> None:
    shared_model, untied_model = _eqx_models()
    ties = [Tie(lambda m: m.embed.weight, lambda m: m.out.weight)]
    shared_losses, shared_model = _eqx_train(shared_model, adamw())
    tied_losses, untied_model = _eqx_train(untied_model, tied(adamw(), ties))

    # tie_drift names the target by the leaf the function found.
    assert {k: float(v) for k, v in tie_drift(untied_model, ties).items()} == {"out.weight": 0.0}
    shared_embed, _ = shared_model.shared()
    _assert_same_training(
        tied_losses,
        shared_losses,
        {
            "embed": (untied_model.embed.weight, shared_embed.weight),
            "hidden": (untied_model.hidden.weight, shared_model.hidden.weight),
        },
    )


def test_path_function_must_return_a_leaf() -> None:
    _, untied_model = _eqx_models()
    with pytest.raises(ValueError, match=r"returns a subtree.*out\.weight"):
        tied(adamw(), [Tie(lambda m: m.embed.weight, lambda m: m.out)]).init(untied_model)
    with pytest.raises(ValueError, match=r"failed on the pytree \(AttributeError.*embed\.weight"):
        tied(adamw(), [Tie(lambda m: m.embedding, "out.weight")]).init(untied_model)


# --- Haiku ---------------------------------------------------------------------------------


def _haiku_net(shared_embedding: bool) -> Any:
    hk = pytest.importorskip("haiku")

    class LM(hk.Module):
        def __call__(self, tokens: jax.Array) -> jax.Array:
            embed = hk.Embed(VOCAB, DIM, name="embed")
            hidden = jnp.tanh(hk.Linear(DIM, name="hidden")(embed(tokens)))
            if shared_embedding:
                return hidden @ embed.embeddings.T
            return hk.Linear(VOCAB, with_bias=False, name="out")(hidden)

    return hk.without_apply_rng(hk.transform(lambda tokens: LM(name="lm")(tokens)))


def _haiku_train(net: Any, params: Any, optimizer: optax.GradientTransformation) -> tuple:
    opt_state = optimizer.init(params)

    def loss_fn(params: Any, tokens: Any, labels: Any) -> jax.Array:
        return _cross_entropy(net.apply(params, tokens), labels)

    @jax.jit
    def update(params: Any, opt_state: Any, tokens: Any, labels: Any) -> tuple[Any, Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    tokens, labels = _batch()
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = update(params, opt_state, tokens, labels)
        losses.append(loss)
    return losses, params


def test_haiku_slash_paths_train_like_reused_embeddings() -> None:
    shared_net, untied_net = _haiku_net(True), _haiku_net(False)
    tokens, _ = _batch()
    shared_params = shared_net.init(jax.random.key(0), tokens)
    assert set(shared_params) == {"lm/embed", "lm/hidden"}
    ties = [Tie("lm/embed/embeddings", "lm/out/w", "transpose")]
    placeholder = {**shared_params, "lm/out": {"w": jnp.zeros((DIM, VOCAB), jnp.float32)}}
    untied_params = materialize_ties(placeholder, ties)
    assert jax.tree.structure(untied_net.init(jax.random.key(0), tokens)) == (
        jax.tree.structure(untied_params)
    )

    shared_losses, shared_params = _haiku_train(shared_net, shared_params, adamw())
    tied_losses, untied_params = _haiku_train(untied_net, untied_params, tied(adamw(), ties))

    assert float(tie_drift(untied_params, ties)["lm/out/w"]) == 0.0
    _assert_same_training(
        tied_losses,
        shared_losses,
        {
            "embed": (
                untied_params["lm/embed"]["embeddings"],
                shared_params["lm/embed"]["embeddings"],
            ),
            "hidden": (untied_params["lm/hidden"]["w"], shared_params["lm/hidden"]["w"]),
        },
    )


def test_haiku_unknown_path_lists_haiku_spellings() -> None:
    tokens, _ = _batch()
    params = _haiku_net(False).init(jax.random.key(0), tokens)
    with pytest.raises(ValueError, match=r"no leaf at path 'lm/embed/embedding'.*lm/embed/embed"):
        tied(adamw(), [Tie("lm/embed/embedding", "lm/out/w", "transpose")]).init(params)


# --- The same spellings on plain pytrees (no library needed) --------------------------------


def test_function_paths_find_positions_even_where_one_array_fills_two() -> None:
    # Both leaves are the same object, so identity alone could not tell them apart; the
    # function is applied to the tree's structure and names a position.
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    params = {"embed": weight, "unembed": weight, "bias": np.zeros(3, np.float32)}
    grads = {
        "embed": np.ones((2, 3), np.float32),
        "unembed": np.full((2, 3), 2, np.float32),
        "bias": np.ones(3, np.float32),
    }
    function_ties = [Tie(lambda p: p["embed"], lambda p: p["unembed"])]
    by_function = tied(optax.adam(0.1), function_ties)
    by_name = tied(optax.adam(0.1), [Tie("embed", "unembed")])
    expected, _ = by_name.update(grads, by_name.init(params), params)
    actual, _ = by_function.update(grads, by_function.init(params), params)
    for name in params:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    drift = tie_drift(params, function_ties)
    assert list(drift) == ["unembed"] and float(drift["unembed"]) == 0.0


def test_slash_joined_keys_name_nested_leaves() -> None:
    params = {
        "enc/layer": {"w": np.ones((2, 3), np.float32)},
        "dec": {"w": np.zeros((3, 2), np.float32)},
    }
    ties = [Tie("enc/layer/w", "dec/w", "transpose")]
    np.testing.assert_array_equal(materialize_ties(params, ties)["dec"]["w"], np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"'enc/layer' is a subtree, not a leaf"):
        tie_drift(params, [Tie("enc/layer", "dec/w")])
