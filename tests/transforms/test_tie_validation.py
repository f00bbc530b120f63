"""Invalid ties are rejected when the transform is initialised, naming the offending path."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax
import pytest

from toolkit.transforms import Tie, merge_tied_gradients, tied

F32 = np.float32


def _params() -> dict[str, Any]:
    return {
        "enc": {"weight": np.zeros((4, 3), F32), "bias": np.zeros(3, F32)},
        "dec": {"weight": np.zeros((3, 4), F32), "bias": np.zeros(4, F32)},
        "head": np.zeros((2, 3), F32),
        "wide": np.zeros((4, 3), np.float64),
    }


def _init_error(ties: list[Tie], params: Any = None) -> str:
    params = _params() if params is None else params
    with pytest.raises(ValueError) as tied_error:
        tied(optax.adam(0.1), ties).init(params)
    with pytest.raises(ValueError) as merge_error:
        merge_tied_gradients(ties).init(params)
    assert str(tied_error.value) == str(merge_error.value)
    return str(tied_error.value)


def test_unknown_source_path_is_named_with_the_valid_leaves() -> None:
    message = _init_error([Tie("enc.weights", "dec.weight", "transpose")])
    assert "'enc.weights'" in message and "enc.weight" in message


def test_unknown_target_path_is_named() -> None:
    message = _init_error([Tie("enc.weight", "decoder.weight", "transpose")])
    assert "no leaf at path 'decoder.weight'" in message


def test_path_to_a_subtree_is_rejected() -> None:
    message = _init_error([Tie("enc", "dec", "transpose")])
    assert "'enc' is a subtree, not a leaf" in message


def test_shape_mismatch_under_the_map_names_the_target() -> None:
    message = _init_error([Tie("enc.weight", "dec.weight")])
    assert "'dec.weight' has shape (3, 4)" in message and "(4, 3)" in message


def test_dtype_mismatch_names_both_paths() -> None:
    message = _init_error([Tie("enc.weight", "wide")])
    assert "'wide' has dtype float64" in message and "'enc.weight' has float32" in message


def test_target_tied_twice_names_the_target_and_both_sources() -> None:
    message = _init_error(
        [Tie("enc.weight", "dec.weight", "transpose"), Tie("wide", "dec.weight", "transpose")]
    )
    assert "'dec.weight' is tied twice" in message
    assert "'enc.weight'" in message and "'wide'" in message


def test_cycle_of_ties_is_named_leaf_by_leaf() -> None:
    message = _init_error(
        [Tie("enc.weight", "dec.weight", "transpose"), Tie("dec.weight", "enc.weight", "transpose")]
    )
    assert "cycle" in message and "dec.weight" in message and "enc.weight" in message


def test_tie_to_itself_is_a_cycle() -> None:
    message = _init_error([Tie("enc.bias", "enc.bias")])
    assert "cycle: enc.bias <- enc.bias" in message


def test_slice_out_of_range_names_the_source_and_the_axis() -> None:
    message = _init_error([Tie("enc.weight", "head", "[:2, :5]")])
    assert "'enc.weight'" in message and "out of range" in message and "axis 1" in message


def test_index_with_more_entries_than_axes_is_rejected() -> None:
    message = _init_error([Tie("enc.bias", "head", "[0, 1]")])
    assert "'enc.bias'" in message and "2 entries" in message


def test_map_that_cannot_apply_to_the_source_names_the_source() -> None:
    message = _init_error([Tie("enc.bias", "dec.bias", "transpose")])
    assert "'enc.bias'" in message and "use 'adjoint'" in message


def test_ambiguous_dotted_path_asks_for_a_key_path() -> None:
    params = {"a.b": np.zeros(2, F32), "a": {"b": np.zeros(2, F32)}, "c": np.zeros(2, F32)}
    message = _init_error([Tie("a.b", "c")], params)
    assert "'a.b' names more than one leaf" in message


def test_key_path_resolves_where_the_dotted_spelling_is_ambiguous() -> None:
    params = {"a.b": np.zeros(2, F32), "a": {"b": np.ones(2, F32)}, "c": np.ones(2, F32)}
    nested = next(p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0] if len(p) == 2)
    tied(optax.adam(0.1), [Tie(nested, "c")]).init(params)


def test_invalid_map_spelling_is_rejected_when_the_tie_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown map 'transposed'"):
        Tie("enc.weight", "dec.weight", "transposed")


def test_empty_path_is_rejected_when_the_tie_is_declared() -> None:
    with pytest.raises(ValueError, match="tie source ''"):
        Tie("", "dec.weight")


def test_validation_also_runs_when_init_is_traced_under_jit() -> None:
    tx = tied(optax.adam(0.1), [Tie("enc.weight", "dec.weight")])
    with pytest.raises(ValueError, match=r"'dec\.weight' has shape"):
        jax.jit(tx.init)(_params())


# ---- a tie must hold in the params given to init ---------------------------------------------


def _false_tie_error(params: Any, ties: list[Tie]) -> str:
    return _init_error(ties, params)


def test_false_transpose_tie_names_the_equation_and_its_drift() -> None:
    embed = np.arange(6, dtype=F32).reshape(2, 3)
    unembed = embed.T.copy()
    unembed[1, 0] += 0.25
    message = _false_tie_error(
        {"embed": embed, "unembed": unembed}, [Tie("embed", "unembed", "transpose")]
    )
    assert "unembed == embed.T" in message
    assert "max abs difference 0.25" in message and "materialize_ties" in message


@pytest.mark.parametrize(
    ("spec", "equation"),
    [
        ("identity", "t == s"),
        ("[:2]", "t == s[:2]"),
        ((1, 0), "t == s.transpose((1, 0))"),
        ("[1:] then transpose then scale(0.5)", "t == 0.5 * s[1:].T"),
    ],
)
def test_false_tie_equation_for_each_map_kind(spec: Any, equation: str) -> None:
    tie = Tie("s", "t", spec)
    source = np.arange(4, dtype=F32).reshape(2, 2)
    params = {"s": source, "t": tie.map.apply(source) + 1}
    message = _false_tie_error(params, [tie])
    assert f"{equation} (max abs difference 1)" in message


def test_every_false_tie_is_listed_and_a_true_one_is_not() -> None:
    w = np.ones((2, 2), F32)
    params = {"w": w, "a": w.copy(), "b": w * 2, "c": w * 3}
    ties = [Tie("w", "a"), Tie("w", "b"), Tie("w", "c")]
    message = _false_tie_error(params, ties)
    assert "b == w (max abs difference 1)" in message
    assert "c == w (max abs difference 2)" in message and "a == w" not in message


def test_a_nan_copied_from_the_source_holds_and_jax_arrays_are_checked() -> None:
    w = np.array([[np.nan, 1.0]], F32)
    tied(optax.adam(0.1), [Tie("w", "v")]).init({"w": w, "v": w.copy()})
    params = {"w": jax.numpy.asarray(w), "v": jax.numpy.asarray(w) + 1}
    assert "v == w" in _false_tie_error(params, [Tie("w", "v")])


def test_false_tie_is_not_checked_when_init_is_traced() -> None:
    # Abstract values carry no data; shapes and dtypes are still validated (above).
    params = {"w": np.ones(3, F32), "v": np.zeros(3, F32)}
    jax.jit(tied(optax.adam(0.1), [Tie("w", "v")]).init)(params)
    jax.jit(merge_tied_gradients([Tie("w", "v")]).init)(params)
