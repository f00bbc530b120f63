"""detect_ties(params, by="value"): equal, transposed, permuted and sliced copies."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.transforms import Tie, detect_ties, materialize_ties, parse_map

F32 = np.float32


def _normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def _assert_reproduces(params: dict[str, Any], ties: list[Tie]) -> None:
    """Each tie's map gives its target bit for bit, and materialize_ties rebuilds params."""
    zeroed = dict(params)
    for tie in ties:
        source, target = np.asarray(params[tie.source]), np.asarray(params[tie.target])
        np.testing.assert_array_equal(np.asarray(tie.map.apply(source)), target)
        zeroed[tie.target] = np.zeros_like(target)
    rebuilt = materialize_ties(zeroed, ties)
    for name, value in params.items():
        np.testing.assert_array_equal(np.asarray(rebuilt[name]), np.asarray(value), err_msg=name)


W = _normal(0, (6, 4))
CUBE = _normal(1, (2, 3, 4))

# target built from its source -> the map detect_ties must report
CASES: dict[str, tuple[np.ndarray, Any, str]] = {
    "equal_copy": (W, lambda w: w.copy(), "identity"),
    "transpose": (W, lambda w: w.T.copy(), "transpose"),
    "permutation_3d": (CUBE, lambda c: c.transpose(2, 0, 1).copy(), "(2, 0, 1)"),
    "full_reversal_3d": (CUBE, lambda c: c.transpose().copy(), "transpose"),
    "leading_rows": (W, lambda w: w[:3].copy(), "[:3]"),
    "row_block_at_offset": (W, lambda w: w[2:5].copy(), "[2:5]"),
    "column_block": (W, lambda w: w[:, 1:3].copy(), "[:, 1:3]"),
    "one_row": (W, lambda w: w[4].copy(), "[4]"),
    "block_of_last_axis_3d": (CUBE, lambda c: c[:, :, 2:].copy(), "[:, :, 2:4]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_detects_the_copy_and_its_map(case: str) -> None:
    source, build, spelling = CASES[case]
    params = {"a_source": source, "b_target": build(source), "c_other": _normal(9, (5,))}
    ties = detect_ties(params, by="value")
    assert ties == [Tie("a_source", "b_target", spelling)]
    _assert_reproduces(params, ties)


def test_a_slice_listed_before_its_source_still_has_the_larger_leaf_as_source() -> None:
    params = {"head": W[:2].copy(), "table": W}
    assert detect_ties(params, by="value") == [Tie("table", "head", "[:2]")]


def test_constant_leaves_and_unrelated_leaves_are_not_reported() -> None:
    params = {
        "b1": np.zeros(4, F32),
        "b2": np.zeros(4, F32),
        "scale": np.float32(1.0),
        "w": W,
        "v": _normal(2, (6, 4)),
        "w_plus_eps": W + np.float32(1e-6),
    }
    assert detect_ties(params, by="value") == []


def test_dtypes_must_match() -> None:
    assert detect_ties({"w": W, "w64": W.astype(np.float64)}, by="value") == []


def test_an_embedding_model_in_jax_arrays_with_chains_in_flattening_order() -> None:
    embed = jnp.asarray(W)
    params = {
        "embed": embed,
        "unembed": embed.T + 0,  # a new array with the same values
        "unembed_again": jnp.asarray(np.asarray(W).T.copy()),
        "first_rows": embed[:2] + 0,
        "bias": jnp.zeros(6),
    }
    ties = detect_ties(params, by="value")
    # Flattening order sorts dict keys: bias, embed, first_rows, unembed, unembed_again.
    assert ties == [
        Tie("embed", "first_rows", "[:2]"),
        Tie("embed", "unembed", "transpose"),
        Tie("embed", "unembed_again", "transpose"),
    ]
    _assert_reproduces(params, ties)


def test_nan_matches_nan() -> None:
    w = W.copy()
    w[0, 0] = np.nan
    assert detect_ties({"a": w, "b": w.T.copy()}, by="value") == [Tie("a", "b", "transpose")]


def test_identity_stays_the_default_and_ignores_equal_copies() -> None:
    params = {"a": W, "b": W.copy(), "c": W}
    assert detect_ties(params) == detect_ties(params, by="identity") == [Tie("a", "c")]
    assert detect_ties(params, by="value") == [Tie("a", "b"), Tie("a", "c")]


def test_unknown_mode_and_tracers_are_rejected() -> None:
    with pytest.raises(ValueError, match="by='values'; valid: 'identity', 'value'"):
        detect_ties({"a": W}, by="values")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leaf 'w' is a tracer"):
        jax.jit(lambda p: detect_ties(p, by="value") and 0)({"w": jnp.ones(2)})


@st.composite
def _copy_of_part(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    rows, cols = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    kind = draw(st.sampled_from(["transpose", "rows", "columns", "row"]))
    if kind == "transpose":
        spec = "transpose"
    elif kind == "row":
        spec = f"[{draw(st.integers(0, rows - 1))}]"
    else:
        n = rows if kind == "rows" else cols
        start = draw(st.integers(0, n - 1))
        stop = draw(st.integers(start + 1, n))
        if stop - start == n:  # the whole axis would be an equal copy, not a block
            stop -= 1
        spec = f"[{start}:{stop}]" if kind == "rows" else f"[:, {start}:{stop}]"
    seed = draw(st.integers(0, 2**16))
    return _normal(seed, (rows, cols)), spec


@settings(max_examples=60, deadline=None)
@given(_copy_of_part())
def test_any_transpose_or_block_copy_is_found_and_reproduced(case: tuple[np.ndarray, str]) -> None:
    source, spec = case
    target = np.asarray(parse_map(spec).apply(source)).copy()
    params = {"source": source, "target": target}
    ties = detect_ties(params, by="value")
    assert len(ties) == 1 and (ties[0].source, ties[0].target) == ("source", "target")
    _assert_reproduces(params, ties)
