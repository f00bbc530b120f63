"""detect_ties, materialize_ties and tie_drift."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolkit.transforms import Tie, detect_ties, materialize_ties, parse_map, tie_drift


def test_detect_ties_finds_the_same_array_object_at_several_leaves() -> None:
    w = jnp.ones((3, 2))
    params = {"enc": {"w": w}, "dec": [w, np.zeros(2)], "copy": jnp.ones((3, 2))}
    assert detect_ties(params) == [Tie("dec.0", "enc.w")]


def test_detect_ties_ignores_equal_copies_views_and_python_scalars() -> None:
    w = np.ones((3, 2))
    params = {"a": w, "b": w.copy(), "c": w[:], "n": 1, "m": 1}
    assert detect_ties(params) == []


def test_detect_ties_refuses_tracers() -> None:
    with pytest.raises(ValueError, match="leaf 'w' is a tracer"):
        jax.jit(lambda p: detect_ties(p) and 0)({"w": jnp.ones(2)})


def test_materialize_ties_recomputes_targets_from_sources_and_keeps_numpy() -> None:
    w = np.arange(6.0).reshape(2, 3)
    ties = [Tie("w", "wt", "transpose"), Tie("wt", "row", "[1]")]
    out = materialize_ties({"w": w, "wt": np.zeros((3, 2)), "row": np.zeros(2)}, ties)
    assert isinstance(out["wt"], np.ndarray)
    np.testing.assert_array_equal(out["wt"], w.T)
    np.testing.assert_array_equal(out["row"], w.T[1])
    assert out["w"] is w


def test_tie_drift_is_the_largest_deviation_per_target_and_works_under_jit() -> None:
    w = np.arange(6.0).reshape(2, 3)
    wt = w.T.copy()
    wt[2, 1] += 0.5
    ties = [Tie("w", "wt", "transpose"), Tie("w", "first", parse_map("[0]"))]
    params = {"w": w, "wt": wt, "first": w[0].copy()}
    expected = {"wt": 0.5, "first": 0.0}
    assert {k: float(v) for k, v in tie_drift(params, ties).items()} == expected
    jitted = jax.jit(lambda p: tie_drift(p, ties))(params)
    assert {k: float(v) for k, v in jitted.items()} == expected
