"""tied(inner) equals inner on the shared model for every optimizer factory of optax.

The factories are discovered, not listed: every public function of ``optax`` and
``optax.contrib`` that returns a ``GradientTransformation`` when called with arguments built
from its signature (a table of values by parameter name). Each runs a few jitted steps on an
untied tree with a transpose tie and a slice tie, and on the shared model (one leaf per real
parameter, the copies computed inside the loss), with every extra argument an optimizer may
read (``value``, ``grad``, ``value_fn``, ``obj_fn``). The updates must keep every tie exactly,
and the params must match the shared model's.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, materialize_ties, tie_drift, tied

TIES = [Tie("w", "wt", "transpose"), Tie("w", "row", "[1]")]
X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
STEPS = 3


def shared_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "w": (rng.standard_normal((4, 6)) / 2).astype(np.float32),
        "b": (rng.standard_normal(6) / 2).astype(np.float32),
        "v": (rng.standard_normal(6) / 2).astype(np.float32),
    }


def untied_params() -> dict[str, np.ndarray]:
    placeholder = {**shared_params(), "wt": np.zeros((6, 4), np.float32), "row": np.zeros(6)}
    placeholder["row"] = placeholder["row"].astype(np.float32)
    return materialize_ties(placeholder, TIES)


def untied_loss(p: dict[str, Any], x: Any = X) -> jax.Array:
    hidden = jnp.tanh(x @ p["w"] + p["b"])
    out = jnp.tanh(hidden @ p["wt"])
    return jnp.mean((out - 0.5) ** 2) + jnp.mean((p["row"] * p["v"] - 0.3) ** 2)


def shared_loss(p: dict[str, Any], x: Any = X) -> jax.Array:
    return untied_loss({**p, "wt": p["w"].T, "row": p["w"][1]}, x)


def _by_ndim(p: Any) -> Any:
    return jax.tree.map(lambda x: x.ndim == 2, p)


def _labels(p: Any) -> Any:
    return jax.tree.map(lambda x: "matrix" if x.ndim == 2 else "vector", p)


# Values for required parameters, by name: what a user would pass.
ARGUMENTS: dict[str, Callable[[], Any]] = {
    "learning_rate": lambda: 0.05,
    "step_size": lambda: -0.05,
    "inner": lambda: optax.adam(0.05),
    "tx": lambda: optax.adam(0.05),
    "optimizer": lambda: optax.adam(0.05),
    "base_optimizer": lambda: optax.adam(0.05),
    "fast_optimizer": lambda: optax.adam(0.05),
    "adv_optimizer": lambda: optax.sgd(0.05),
    "transforms": lambda: {"matrix": optax.adam(0.05), "vector": optax.sgd(0.05)},
    "param_labels": lambda: _labels,
    "mask": lambda: _by_ndim,
    "freeze_mask": lambda: _by_ndim,
    "should_transform_fn": lambda: lambda step: step % 2 == 0,
    "step_size_fn": lambda: lambda count: -0.05 / (1 + count),
    "f": lambda: lambda g, p: jax.tree.map(lambda x: -0.05 * x, g),
    "measure": lambda: lambda g: jax.tree.map(jnp.abs, g),
    "measure_name": lambda: "abs",
    "max_consecutive_errors": lambda: 3,
    "max_backtracking_steps": lambda: 10,
    "max_linesearch_steps": lambda: 10,
    "sync_period": lambda: 2,
    "slow_step_size": lambda: 0.5,
    "clipping": lambda: 0.1,
    "eta": lambda: 0.01,
    "gamma": lambda: 0.55,
    "max_delta": lambda: 0.01,
    "threshold": lambda: 1.0,
    "max_norm": lambda: 0.5,
    "decay": lambda: 0.9,
    "l2_norm_clip": lambda: CLIP,
    "noise_multiplier": lambda: 0.0,
    "seed": lambda: 0,
}
# Variadic combinators get one optimizer (named_chain: one named one).
VARIADIC: dict[str, Callable[[], tuple[Any, ...]]] = {
    "chain": lambda: (optax.adam(0.05),),
    "named_chain": lambda: (("adam", optax.adam(0.05)),),
}

# Differentially private aggregation clips each example's gradient (by its global norm, which
# must count a tied weight once) and sums them: it reads per-example gradients.
PER_EXAMPLE = {"optax.contrib.differentially_private_aggregate", "optax.contrib.dpsgd"}
CLIP = 0.05  # below every example's gradient norm here, so clipping acts

# Documented refusal (docs/transforms.md): lookahead's params are LookaheadParams(fast, slow),
# not the model's tree; tied goes inside it, on the fast params. Mapped to the state type that
# names the optimizer in tied's message, and the fix the message gives.
REFUSED = {
    "optax.lookahead": ("LookaheadState", r"optax.lookahead\(tied\(fast_optimizer, ties\)"),
}


def _arguments(fn: Callable[..., Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Arguments for ``fn`` built from its signature, or None if a required one is unknown."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    args: tuple[Any, ...] = ()
    kwargs = {}
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            if fn.__name__ not in VARIADIC:
                return None
            args = VARIADIC[fn.__name__]()
        elif parameter.kind is parameter.VAR_KEYWORD or parameter.default is not parameter.empty:
            continue
        elif parameter.name in ARGUMENTS:
            kwargs[parameter.name] = ARGUMENTS[parameter.name]()
        else:
            return None
    return args, kwargs


def _returns_transformation(fn: Callable[..., Any]) -> bool:
    try:
        annotation = inspect.signature(fn).return_annotation
    except (TypeError, ValueError):
        return False
    return isinstance(annotation, type) and issubclass(annotation, optax.GradientTransformation)


def discover() -> Iterator[tuple[str, Callable[[], optax.GradientTransformation]]]:
    """Every public function of optax and optax.contrib that builds a GradientTransformation.

    Annotated factories must be buildable from :data:`ARGUMENTS`; unannotated functions count
    when calling them with such arguments returns a transformation.
    """
    seen = set()
    for module in (optax, optax.contrib):
        for name in sorted(dir(module)):
            fn = getattr(module, name)
            if name.startswith("_") or inspect.isclass(fn) or not callable(fn) or fn in seen:
                continue
            seen.add(fn)
            qualified = f"{module.__name__}.{name}"
            arguments = _arguments(fn)
            if arguments is None:
                assert not _returns_transformation(fn), f"no arguments known for {qualified}"
                continue
            args, kwargs = arguments
            if not _returns_transformation(fn):
                try:
                    built = fn(*args, **kwargs)
                except Exception:  # not a factory: it needs other arguments
                    continue
                if not isinstance(built, optax.GradientTransformation):
                    continue
            yield qualified, lambda fn=fn, args=args, kwargs=kwargs: fn(*args, **kwargs)


FACTORIES = dict(discover())


EXTRA_ARGS = ("value", "grad", "value_fn", "obj_fn")


def _accepted(tx: optax.GradientTransformation) -> set[str]:
    """The extra arguments ``tx.update`` takes: all of them, unless it has no ``**kwargs``."""
    parameters = inspect.signature(tx.update).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return set(EXTRA_ARGS)
    return set(EXTRA_ARGS) & set(parameters)  # plain transforms take none, SAM's none


def _train(
    tx: optax.GradientTransformation,
    loss: Callable[[Any], jax.Array],
    params: Any,
    extra_names: set[str],
) -> tuple[Any, list[Any]]:
    def value_fn(params: Any, **unused: Any) -> jax.Array:
        # Line searches pass the extra arguments they do not read on to value_fn.
        return loss(params)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any, Any]:
        value, grad = jax.value_and_grad(loss)(params)
        extra_args = {"value": value, "grad": grad, "value_fn": value_fn, "obj_fn": loss}
        extra_args = {k: v for k, v in extra_args.items() if k in extra_names}
        updates, state = tx.update(grad, state, params, **extra_args)
        return optax.apply_updates(params, updates), state, updates

    state = tx.init(params)
    all_updates = []
    for _ in range(STEPS):
        params, state, updates = step(params, state)
        all_updates.append(updates)
    return params, all_updates


# A few cheap factories stand for the sweep in the default run; the whole sweep is slow
# (two compilations per factory).
QUICK = {"optax.adam", "optax.contrib.muon", "optax.sm3", "optax.multi_transform"}


def _cases() -> list[Any]:
    cases = []
    for name in FACTORIES:
        if name in REFUSED or name in PER_EXAMPLE:
            continue
        marks = () if name in QUICK else (pytest.mark.slow,)
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


def test_discovery_finds_the_factories_the_sweep_needs() -> None:
    # Guards the discovery itself: annotated, unannotated, variadic and wrapper factories.
    for name in [
        "optax.adam",
        "optax.contrib.muon",
        "optax.contrib.sophia",
        "optax.contrib.hutchinson_estimator_diag_hessian",
        "optax.contrib.dog",
        "optax.chain",
        "optax.multi_transform",
        "optax.sm3",
        "optax.lbfgs",
    ]:
        assert name in FACTORIES, name
    assert set(REFUSED) | PER_EXAMPLE <= set(FACTORIES)
    assert len(FACTORIES) > 110


@pytest.mark.parametrize("name", _cases())
def test_tied_matches_the_shared_model(name: str) -> None:
    make = FACTORIES[name]
    # tied passes on what it is given: each run gets the extra arguments inner takes.
    extra_names = _accepted(make())
    with jax.enable_x64(False):
        try:
            expected, _ = _train(make(), shared_loss, shared_params(), extra_names)
        except Exception as err:
            # Without ties it fails too (scale_by_muon's defaults need a tree of matrices):
            # tied must fail the same way, not hide it.
            with pytest.raises(type(err)):
                _train(tied(make(), TIES), untied_loss, untied_params(), extra_names)
            return
        actual, all_updates = _train(tied(make(), TIES), untied_loss, untied_params(), extra_names)
    for updates in all_updates:
        assert {k: float(v) for k, v in tie_drift(updates, TIES).items()} == {"wt": 0, "row": 0}
    assert {k: float(v) for k, v in tie_drift(actual, TIES).items()} == {"wt": 0, "row": 0}
    for key, value in expected.items():
        scale = max(float(np.max(np.abs(value))), 1.0)
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-5 * scale, err_msg=key)


def _refusal_message(name: str) -> str:
    """What tied says when ``name`` runs inside it with the params the optimizer needs."""
    params = untied_params()
    tx = tied(FACTORIES[name](), TIES)
    state = tx.init(params)
    grads = jax.grad(untied_loss)(params)
    with pytest.raises(ValueError) as refusal:
        tx.update(grads, state, optax.LookaheadParams(fast=params, slow=params))
    return str(refusal.value)


@pytest.mark.parametrize("name", sorted(PER_EXAMPLE))
def test_per_example_gradients_merge_each_example_before_clipping(name: str) -> None:
    def train(tx: optax.GradientTransformation, loss: Callable, params: Any) -> Any:
        @jax.jit
        def step(params: Any, state: Any) -> tuple[Any, Any, Any]:
            per_example = jax.vmap(lambda x: jax.grad(loss)(params, x[None]))(X)
            updates, state = tx.update(per_example, state, params)
            return optax.apply_updates(params, updates), state, per_example

        state = tx.init(params)
        for _ in range(STEPS):
            params, state, per_example = step(params, state)
        return params, per_example

    with jax.enable_x64(False):
        expected, per_example = train(FACTORIES[name](), shared_loss, shared_params())
        actual, _ = train(tied(FACTORIES[name](), TIES), untied_loss, untied_params())
    norms = jnp.sqrt(sum(jnp.sum(g**2, axis=(1, *range(2, g.ndim))) for g in per_example.values()))
    assert float(jnp.min(norms)) > CLIP  # every example is clipped
    assert {k: float(v) for k, v in tie_drift(actual, TIES).items()} == {"wt": 0, "row": 0}
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_name_the_ties_the_optimizer_and_the_fix(name: str) -> None:
    optimizer, fix = REFUSED[name]
    message = _refusal_message(name)
    assert "w -> wt (transpose), w -> row ([1])" in message
    assert f"the optimizer with state {optimizer}" in message
    assert re.search(fix, message)


def test_lookahead_around_tied_matches_lookahead_on_the_shared_model() -> None:
    # The composition the lookahead refusal names: tied inside, on the fast params.
    def train(fast: optax.GradientTransformation, loss: Callable, params: Any) -> Any:
        tx = optax.lookahead(fast, sync_period=2, slow_step_size=0.5)
        params = optax.LookaheadParams(fast=params, slow=params)
        state = tx.init(params)

        @jax.jit
        def step(params: Any, state: Any) -> tuple[Any, Any]:
            updates, state = tx.update(jax.grad(loss)(params.fast), state, params)
            return optax.apply_updates(params, updates), state

        for _ in range(5):
            params, state = step(params, state)
        return params

    with jax.enable_x64(False):
        expected = train(optax.adam(0.05), shared_loss, shared_params())
        actual = train(tied(optax.adam(0.05), TIES), untied_loss, untied_params())
    for part in ("fast", "slow"):
        tree = getattr(actual, part)
        assert {k: float(v) for k, v in tie_drift(tree, TIES).items()} == {"wt": 0, "row": 0}
        for key, value in getattr(expected, part).items():
            np.testing.assert_allclose(tree[key], value, rtol=0, atol=1e-5, err_msg=key)
