"""parse_map: the map vocabulary, its canonical spelling, and both faces of a map."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolkit.transforms import TieMap, parse_map

# spec -> (canonical spelling, a source shape it applies to, the expected target shape)
VOCABULARY: list[tuple[Any, str, tuple[int, ...], tuple[int, ...]]] = [
    ("identity", "identity", (3, 2), (3, 2)),
    ("transpose", "transpose", (3, 2), (2, 3)),
    ("transpose", "transpose", (2, 3, 4), (4, 3, 2)),
    ((1, 0, 2), "(1, 0, 2)", (2, 3, 4), (3, 2, 4)),
    ([2, 0, 1], "(2, 0, 1)", (2, 3, 4), (4, 2, 3)),
    (" (1,0) ", "(1, 0)", (3, 2), (2, 3)),
    ("adjoint", "adjoint", (5,), (1, 5)),
    ("adjoint", "adjoint", (3, 2), (2, 3)),
    ("[:3]", "[:3]", (5, 2), (3, 2)),
    ("[ : , 2:5 ]", "[:, 2:5]", (4, 8), (4, 3)),
    ("[1]", "[1]", (4, 3), (3,)),
    ("[-2:]", "[-2:]", (6,), (2,)),
    ("[::2, 0]", "[::2, 0]", (5, 3), (3,)),
    (np.s_[:, 2:5], "[:, 2:5]", (4, 8), (4, 3)),
    (np.s_[1:4:2], "[1:4:2]", (6,), (2,)),
    (slice(None, 3), "[:3]", (5,), (3,)),
    (2, "[2]", (4, 3), (3,)),
    ((slice(None), np.int64(1)), "[:, 1]", (4, 3), (4,)),
]


@pytest.mark.parametrize("spec, spelling, source_shape, target_shape", VOCABULARY)
def test_parse_map_spelling_and_shapes(
    spec: Any, spelling: str, source_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> None:
    m = parse_map(spec)
    assert isinstance(m, TieMap)
    assert str(m) == spelling
    assert parse_map(str(m)) == m and hash(parse_map(str(m))) == hash(m)
    assert eval(repr(m), {"parse_map": parse_map}) == m
    assert m.out_shape(source_shape) == target_shape
    x = np.arange(np.prod(source_shape), dtype=np.float32).reshape(source_shape)
    assert m.apply(x).shape == target_shape
    np.testing.assert_array_equal(m.apply(jnp.asarray(x)), m.apply(x))


def test_adjoint_is_julias_row_of_a_vector_and_transpose_of_a_matrix() -> None:
    adjoint = parse_map("adjoint")
    np.testing.assert_array_equal(adjoint.apply(np.array([1.0, 2.0])), [[1.0, 2.0]])
    np.testing.assert_array_equal(adjoint.apply(np.eye(2, 3)), np.eye(2, 3).T)


class DuckArray:
    """Only the array methods parse_map promises to use, as the toolkit's tape arrays have."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape

    @property
    def T(self) -> DuckArray:
        return DuckArray(self.data.T)

    def transpose(self, axes: tuple[int, ...]) -> DuckArray:
        return DuckArray(self.data.transpose(axes))

    def reshape(self, shape: tuple[int, ...]) -> DuckArray:
        return DuckArray(self.data.reshape(shape))

    def __getitem__(self, index: Any) -> DuckArray:
        return DuckArray(self.data[index])


@pytest.mark.parametrize("spec, source_shape", [(v[0], v[2]) for v in VOCABULARY])
def test_apply_and_inverse_use_only_duck_typed_array_methods(
    spec: Any, source_shape: tuple[int, ...]
) -> None:
    m = parse_map(spec)
    x = np.random.default_rng(0).standard_normal(source_shape)
    y = m.apply(DuckArray(x))
    assert isinstance(y, DuckArray)
    np.testing.assert_array_equal(y.data, m.apply(x))
    if m.invertible:
        back = m.inverse(y, source_shape)
        assert isinstance(back, DuckArray)
        np.testing.assert_array_equal(back.data, x)


@pytest.mark.parametrize("spec, source_shape", [(v[0], v[2]) for v in VOCABULARY])
def test_accumulate_is_the_adjoint_of_apply(spec: Any, source_shape: tuple[int, ...]) -> None:
    m = parse_map(spec)
    rng = np.random.default_rng(1)
    acc = rng.standard_normal(source_shape)
    g = rng.standard_normal(m.out_shape(source_shape))

    @jax.jit  # one compile per case instead of one per eager op
    def both(acc: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        return m.accumulate(acc, g), acc + jax.vjp(m.apply, acc)[1](g)[0]

    accumulated, expected = both(acc, g)
    np.testing.assert_allclose(accumulated, expected)


def test_adjoint_inverse_defaults_to_a_vector_source_for_a_row() -> None:
    adjoint = parse_map("adjoint")
    row = np.array([[1.0, 2.0, 3.0]])
    assert adjoint.inverse(row).shape == (3,)
    assert adjoint.inverse(row, source_shape=(3, 1)).shape == (3, 1)


def test_partial_ties_are_not_invertible() -> None:
    m = parse_map("[:2]")
    assert not m.invertible
    with pytest.raises(ValueError, match=r"partial tie \[:2\] is not invertible"):
        m.inverse(np.zeros(2))
    assert all(parse_map(s).invertible for s in ("identity", "transpose", "adjoint", (1, 0)))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("transposed", "unknown map 'transposed'"),
        ("[]", "cannot read ''"),
        ("[1:2:3:4]", "too many ':'"),
        ("[a:]", "cannot read 'a'"),
        ("[::0]", "step cannot be zero"),
        ("(0, 0)", "not a permutation"),
        ((0, 2), "not a permutation"),
        (np.s_[..., 1], "unsupported index entry Ellipsis"),
        (np.s_[None, :], "unsupported index entry None"),
        (1.5, "unknown map 1.5"),
        (True, "unknown map True"),
        ((), "unknown map ()"),
    ],
)
def test_parse_map_rejects_specs_outside_the_vocabulary(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_map(spec)


@pytest.mark.parametrize(
    "spec, source_shape, message",
    [
        ("transpose", (4,), "use 'adjoint'"),
        ("adjoint", (2, 3, 4), "vector or a matrix"),
        ((1, 0), (2, 3, 4), "needs a source with 2 axes"),
        ("[:6]", (5,), "slice stop 6"),
        ("[-6:]", (5,), "slice start -6"),
        ("[5]", (5,), "index 5"),
        ("[0, 0]", (5,), "2 entries"),
        ("[3:1]", (5,), "selects no elements"),
    ],
)
def test_out_shape_rejects_sources_the_map_cannot_apply_to(
    spec: str, source_shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_map(spec).out_shape(source_shape)
