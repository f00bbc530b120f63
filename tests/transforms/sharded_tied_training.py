"""Sharded tied training equals unsharded; run by test_tie_sharding.py on 8 fake CPU devices.

The embedding is sharded on its vocab axis; its transposed copy, the output projection, is
sharded on either of its axes. tied(adam) must give the unsharded (replicated) result, keep the
tie, and keep the single Adam state sharded like the embedding. ``python
sharded_tied_training.py explicit`` runs it with explicit sharding (``AxisType.Explicit``),
where a transposed gradient must be resharded before it is added; the default is auto. A
second argument ``fence`` fences every transposed merge, as large ones are on CPU.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from toolkit.transforms import Tie, _merge, tie_drift, tied

VOCAB, DIM = 64, 16
TIES = [Tie("embed", "unembed", "transpose")]
rng = np.random.default_rng(0)
TOKENS = rng.integers(0, VOCAB, 24)
LABELS = rng.integers(0, VOCAB, 24)


def loss(params: dict[str, jax.Array]) -> jax.Array:
    # out_sharding=P() replicates the results, which explicit-sharding mode asks to be told.
    rows = params["embed"].at[TOKENS].get(out_sharding=P())
    hidden = jnp.tanh(rows @ params["proj"])
    logits = jnp.matmul(hidden, params["unembed"], out_sharding=P())
    return optax.softmax_cross_entropy_with_integer_labels(logits, LABELS).mean()


def train(params: dict[str, Any], steps: int = 10) -> tuple[dict[str, jax.Array], Any, float]:
    tx = tied(optax.adam(0.05), TIES)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        return params, state, tie_drift(params, TIES)["unembed"]

    state = jax.jit(tx.init)(params)
    drift = 0.0
    for _ in range(steps):
        params, state, step_drift = step(params, state)
        drift = max(drift, float(step_drift))
    return params, state, drift


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    mode = sys.argv[1] if len(sys.argv) > 1 else "auto"
    axis_type = {"auto": AxisType.Auto, "explicit": AxisType.Explicit}[mode]
    if sys.argv[2:] == ["fence"]:
        _merge.FENCE_MIN_BYTES = 0
    mesh = jax.make_mesh((8,), ("model",), axis_types=(axis_type,))
    embed = rng.standard_normal((VOCAB, DIM)).astype(np.float32)
    params = {
        "embed": embed,
        "unembed": embed.T.copy(),
        "proj": (rng.standard_normal((DIM, DIM)) / 4).astype(np.float32),
    }
    with jax.set_mesh(mesh):  # the reference: every array replicated, nothing sharded
        expected, _, _ = train(jax.device_put(params, NamedSharding(mesh, P())))

    by_vocab = NamedSharding(mesh, P("model", None))
    for unembed_spec in (P(None, "model"), P("model", None)):
        sharded = {
            "embed": jax.device_put(params["embed"], by_vocab),
            "unembed": jax.device_put(params["unembed"], NamedSharding(mesh, unembed_spec)),
            "proj": jax.device_put(params["proj"], NamedSharding(mesh, P())),
        }
        with jax.set_mesh(mesh):
            actual, state, drift = train(sharded)
        # The updates are exactly tied; params may differ in the last bit where XLA:CPU
        # contracts ``p + u`` into an FMA in one fused loop and not in the other (the two
        # layouts fuse differently). Zero with --xla_cpu_max_isa=SSE4_2.
        assert drift <= 4 * np.finfo(np.float32).eps * float(np.max(np.abs(expected["embed"])))
        for name in expected:
            scale = float(np.max(np.abs(expected[name])))
            np.testing.assert_allclose(
                actual[name], expected[name], rtol=0, atol=1e-5 * scale, err_msg=name
            )
        mu = state.inner_state[0].mu
        assert jax.tree.leaves(mu["unembed"]) == []  # no state for the tied copy
        assert not mu["embed"].sharding.is_fully_replicated, mu["embed"].sharding
        assert not actual["embed"].sharding.is_fully_replicated, actual["embed"].sharding
        print(f"{mode} unembed {unembed_spec}: ok, drift {drift:.1e}")


if __name__ == "__main__":
    main()
