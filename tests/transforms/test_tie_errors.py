"""Errors that say what to change: the leaves nearest a wrong path, a fix that runs as written."""

from __future__ import annotations

import re
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, materialize_ties, tie_drift, tied


def _layers(n: int) -> dict[str, Any]:
    # 3 + 5 n leaves; the ones nearest "layers.7.attn.wq" come late in alphabetical order.
    block = {"attn": {"wq": 0, "wk": 0, "wv": 0}, "mlp": {"w_in": 0, "w_out": 0}}
    leaf = np.ones(2, np.float32)
    layers = [{k: dict.fromkeys(v, leaf) for k, v in block.items()} for _ in range(n)]
    return {"a_bias": leaf, "b_scale": leaf, "embed": leaf, "layers": layers}


def _listed(message: str) -> list[str]:
    listed = message.split("nearest first: ", 1)[1]
    return re.sub(r" \(the nearest .*\)$", "", listed).split(", ")


def test_a_wrong_path_lists_the_nearest_leaves_first() -> None:
    params = _layers(10)
    with pytest.raises(ValueError) as error:
        tied(optax.adam(0.1), [Tie("embed", "layers.7.atn.wq")]).init(params)
    message = str(error.value)
    assert "no leaf at path 'layers.7.atn.wq'" in message
    listed = _listed(message)
    assert listed[0] == "layers.7.attn.wq"
    assert len(listed) == 12 and message.endswith("(the nearest 12 of 53)")
    # The first leaves in tree order are far from the wrong path and are not listed.
    assert "a_bias" not in listed and "b_scale" not in listed


def test_a_short_tree_lists_every_leaf_nearest_first() -> None:
    params = {"embed": np.ones(2), "unembed": np.ones(2), "bias": np.ones(2)}
    with pytest.raises(ValueError) as error:
        tied(optax.adam(0.1), [Tie("embed", "unembd")]).init(params)
    assert _listed(str(error.value)) == ["unembed", "embed", "bias"]


def test_nnx_false_tie_error_shows_a_fix_that_works_on_the_module() -> None:
    nnx = pytest.importorskip("flax.nnx")

    class LM(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.embed = nnx.Embed(8, 4, rngs=rngs)
            self.out = nnx.Linear(4, 8, use_bias=False, rngs=rngs)  # not yet tied

    ties = [Tie("embed.embedding", "out.kernel", "transpose")]
    model = LM(nnx.Rngs(0))
    with pytest.raises(ValueError) as error:
        nnx.Optimizer(model, tied(optax.adam(0.1), ties), wrt=nnx.Param)
    message = str(error.value)
    assert "out.kernel == embed.embedding.T" in message
    fix = re.search(r"with (nnx\.update\(model, .*\)\)), which", message)
    assert fix is not None, message
    # The fix runs as the message spells it.
    namespace = {"nnx": nnx, "model": model, "ties": ties, "materialize_ties": materialize_ties}
    exec(fix.group(1), namespace)
    np.testing.assert_array_equal(model.out.kernel[...], jnp.asarray(model.embed.embedding[...]).T)
    assert float(tie_drift(nnx.state(model, nnx.Param), ties)["out.kernel"]) == 0.0
    nnx.Optimizer(model, tied(optax.adam(0.1), ties), wrt=nnx.Param)  # now accepted


def test_plain_params_keep_the_functional_fix() -> None:
    params = {"w": np.ones((2, 3), np.float32), "wt": np.zeros((3, 2), np.float32)}
    with pytest.raises(ValueError, match=r"build them with materialize_ties\(params, ties\)"):
        tied(optax.adam(0.1), [Tie("w", "wt", "transpose")]).init(params)
