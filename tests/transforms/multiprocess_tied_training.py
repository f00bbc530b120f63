"""tied(adamw) on a vocab-sharded embedding, run by test_tie_multiprocess.py.

``python multiprocess_tied_training.py single OUT`` trains on one CPU device, unsharded.
``python multiprocess_tied_training.py PROCESS_ID OUT PORT`` is one of two processes joined by
``jax.distributed`` on localhost, each with the fake CPU devices its ``XLA_FLAGS`` gives; the
mesh spans every device of both processes. Each writes the trained params (gathered to every
process) and the largest tie drift seen to ``OUT`` as ``.npz``.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import numpy as np

VOCAB, DIM, STEPS = 64, 8, 10


def _initial_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    embed = rng.standard_normal((VOCAB, DIM)).astype(np.float32)
    return {
        "embed": embed,
        "unembed": embed.T.copy(),
        "proj": (rng.standard_normal((DIM, DIM)) / 3).astype(np.float32),
    }


def _train(params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    import jax.numpy as jnp
    import optax

    from toolkit.transforms import Tie, tie_drift, tied

    ties = [Tie("embed", "unembed", "transpose")]
    rng = np.random.default_rng(1)
    tokens, labels = rng.integers(0, VOCAB, 32), rng.integers(0, VOCAB, 32)

    def loss(p: dict[str, jax.Array]) -> jax.Array:
        hidden = jnp.tanh(p["embed"][tokens] @ p["proj"])
        logits = hidden @ p["unembed"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    tx = tied(optax.adamw(0.05, weight_decay=0.1), ties)

    @jax.jit
    def step(p: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        updates, state = tx.update(jax.grad(loss)(p), state, p)
        p = optax.apply_updates(p, updates)
        return p, state, tie_drift(p, ties)["unembed"]

    state = tx.init(params)  # eager: checks, across processes, that the tie holds
    drift = 0.0
    for _ in range(STEPS):
        params, state, step_drift = step(params, state)
        drift = max(drift, float(step_drift))
    mu = state.inner_state[0].mu
    assert jax.tree.leaves(mu["unembed"]) == [], "one Adam state per real parameter"
    if jax.process_count() > 1:
        assert not mu["embed"].sharding.is_fully_replicated, "the state is sharded like embed"
    return params, drift


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    initial = _initial_params()
    if mode == "single":
        assert jax.process_count() == 1
        params, drift = _train(initial)
        np.savez(out, drift=drift, **{k: np.asarray(v) for k, v in params.items()})
        return

    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.distributed.initialize(
        coordinator_address=f"localhost:{sys.argv[3]}", num_processes=2, process_id=int(mode)
    )
    assert jax.process_count() == 2 and jax.device_count() == 2 * jax.local_device_count()
    # Auto sharding: XLA inserts the collectives, as for code written without shardings.
    mesh = jax.make_mesh((jax.device_count(),), ("model",), axis_types=(AxisType.Auto,))
    specs = {"embed": P("model", None), "unembed": P(None, "model"), "proj": P()}
    params = {
        name: jax.make_array_from_callback(
            value.shape, NamedSharding(mesh, specs[name]), lambda index, v=value: v[index]
        )
        for name, value in initial.items()
    }
    assert not params["embed"].is_fully_addressable  # the embedding spans both processes
    params, drift = _train(params)
    assert not params["embed"].sharding.is_fully_replicated
    gathered = multihost_utils.process_allgather(params, tiled=True)
    np.savez(out, drift=drift, **{k: np.asarray(v) for k, v in gathered.items()})
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
