"""strip_targets / restore_targets: a tied weight is stored once and rebuilt exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolkit.transforms import Tie, materialize_ties, restore_targets, strip_targets

F32 = np.float32
TIES = [Tie("embed", "unembed", "transpose"), Tie("unembed", "head_rows", "[:2]")]


def _params() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    placeholder = {
        "embed": rng.standard_normal((5, 3)).astype(F32),
        "unembed": np.zeros((3, 5), F32),
        "head_rows": np.zeros((2, 5), F32),
        "layers": [{"w": rng.standard_normal((3, 3)).astype(F32)}],
    }
    return materialize_ties(placeholder, TIES)


def _assert_same(actual: Any, expected: Any) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert np.asarray(a).dtype == np.asarray(e).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_strip_replaces_targets_by_none_and_keeps_everything_else() -> None:
    params = _params()
    stripped = strip_targets(params, TIES)
    assert stripped["unembed"] is None and stripped["head_rows"] is None
    assert (
        stripped["embed"] is params["embed"]
        and stripped["layers"][0]["w"] is params["layers"][0]["w"]
    )
    assert len(jax.tree.leaves(stripped)) == 2


def test_round_trip_rebuilds_chained_targets_bit_for_bit_numpy_and_jax() -> None:
    params = _params()
    restored = restore_targets(strip_targets(params, TIES), TIES)
    _assert_same(restored, params)
    assert isinstance(restored["unembed"], np.ndarray)
    on_device = jax.tree.map(jnp.asarray, params)
    _assert_same(restore_targets(strip_targets(on_device, TIES), TIES), on_device)


def _save_npz(tree: Any, path: Path) -> None:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    np.savez(path, **{jax.tree_util.keystr(p): np.asarray(x) for p, x in flat})


def _load_npz(path: Path, template: Any) -> Any:
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    with np.load(path) as stored:
        assert sorted(stored.files) == sorted(jax.tree_util.keystr(p) for p, _ in paths)
        return treedef.unflatten([stored[jax.tree_util.keystr(p)] for p, _ in paths])


def test_npz_checkpoint_stores_the_tied_weight_once(tmp_path: Path) -> None:
    params = _params()
    stripped = strip_targets(params, TIES)
    _save_npz(stripped, tmp_path / "ckpt.npz")
    with np.load(tmp_path / "ckpt.npz") as stored:
        assert sorted(stored.files) == ["['embed']", "['layers'][0]['w']"]
    # The loader's template is any params of the same structure, stripped the same way.
    template = strip_targets(jax.tree.map(np.zeros_like, params), TIES)
    _assert_same(restore_targets(_load_npz(tmp_path / "ckpt.npz", template), TIES), params)


def test_orbax_checkpoint_round_trip(tmp_path: Path) -> None:
    ocp = pytest.importorskip("orbax.checkpoint")
    params = jax.tree.map(jnp.asarray, _params())
    stripped = strip_targets(params, TIES)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", stripped)
        checkpointer.wait_until_finished()
        loaded = checkpointer.restore(tmp_path / "ckpt", stripped)
    _assert_same(restore_targets(loaded, TIES), params)


def test_missing_source_and_unknown_path_are_named() -> None:
    stripped = strip_targets(_params(), TIES)
    with pytest.raises(ValueError, match="source 'embed' is None"):
        restore_targets({**stripped, "embed": None}, TIES)
    with pytest.raises(ValueError, match="no leaf at path 'unembedding'"):
        restore_targets(stripped, [Tie("embed", "unembedding", "transpose")])
