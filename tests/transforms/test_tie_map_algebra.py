"""Every tie map is linear with an adjoint: random compositions checked against their math.

Maps are drawn as random chains of parts (identity, transpose, permutations, adjoint, slices
and indices, scales), spelled as text and parsed, on random source shapes. Each is checked
against facts that do not use the map's own adjoint: the inner-product identity
``<A x, y> == <x, Aᵀ y>`` with ``A x`` from :meth:`apply`, the gradient jax computes through
:meth:`apply`, and numpy evaluating :meth:`describe`'s expression.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import toolkit.tape as tp
from toolkit.transforms import parse_map

Shape = tuple[int, ...]


@st.composite
def index_part(draw: st.DrawFn, shape: Shape) -> str:
    entries = []
    for n in shape[: draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()) and len(entries) < len(shape) - 1:
            entries.append(str(draw(st.integers(-n, n - 1))))
            continue
        start = draw(st.integers(0, n - 1))
        stop = draw(st.integers(start + 1, n))
        step = draw(st.sampled_from(["", ":2"]))
        entries.append(f"{start}:{stop}{step}")
    return "[" + ", ".join(entries) + "]"


@st.composite
def part(draw: st.DrawFn, shape: Shape) -> str:
    choices = ["identity", "scale", "index"]
    if len(shape) >= 2:
        choices += ["transpose", "permutation"]
    if len(shape) <= 2:
        choices.append("adjoint")
    kind = draw(st.sampled_from(choices))
    if kind == "scale":
        return f"scale({draw(st.sampled_from([0.5, -2.0, 3.0, 0.25]))})"
    if kind == "index":
        return draw(index_part(shape))
    if kind == "permutation":
        return str(tuple(draw(st.permutations(range(len(shape))))))
    return kind


@st.composite
def map_and_shape(draw: st.DrawFn) -> tuple[str, Shape]:
    source = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    shape, parts = source, []
    for _ in range(draw(st.integers(1, 3))):
        spec = draw(part(shape))
        parts.append(spec)
        shape = parse_map(spec).out_shape(shape)
    return " then ".join(parts), source


def _adjoint_by_jax(spec: str, source: Shape, y: np.ndarray) -> np.ndarray:
    return np.asarray(jax.vjp(parse_map(spec).apply, jnp.zeros(source))[1](jnp.asarray(y))[0])


@settings(max_examples=150, deadline=None)
@given(map_and_shape(), st.integers(0, 2**31 - 1))
def test_adjoint_satisfies_the_inner_product_identity(case: tuple[str, Shape], seed: int) -> None:
    spec, source = case
    m = parse_map(spec)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(source)
    y = rng.standard_normal(m.out_shape(source))
    ax = m.apply(x)
    assert ax.shape == m.out_shape(source)
    aty = m.adjoint(y, source)
    assert aty.shape == source
    assert np.vdot(ax, y) == pytest.approx(np.vdot(x, aty), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.asarray(m.adjoint(jnp.asarray(y), source)), aty, rtol=1e-6)
    assert parse_map(str(m)) == m


@settings(max_examples=60, deadline=None)
@given(map_and_shape(), st.integers(0, 2**31 - 1))
def test_maps_agree_across_numpy_jax_and_the_tape(case: tuple[str, Shape], seed: int) -> None:
    spec, source = case
    m = parse_map(spec)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(source)
    y = rng.standard_normal(m.out_shape(source))
    expected = np.asarray(m.apply(x))
    np.testing.assert_allclose(np.asarray(m.apply(jnp.asarray(x))), expected, rtol=1e-6)
    np.testing.assert_array_equal(m.apply(tp.array(x)).numpy(), expected)
    # describe() is an expression numpy evaluates to the same target.
    described = eval(
        m.describe("x"), {"x": x, "adjoint": lambda v: v.reshape(1, -1) if v.ndim == 1 else v.T}
    )
    np.testing.assert_allclose(described, expected)
    # jax's own transpose of apply: the adjoint, and accumulate adds it.
    acc = rng.standard_normal(source)
    np.testing.assert_allclose(
        np.asarray(m.accumulate(jnp.asarray(acc), jnp.asarray(y))),
        acc + _adjoint_by_jax(spec, source, y),
        rtol=1e-5,
        atol=1e-6,
    )
    if m.invertible:
        np.testing.assert_allclose(m.inverse(m.apply(x), source), x, rtol=1e-12)


def test_composition_reads_left_to_right_and_simplifies() -> None:
    m = parse_map("[:, 1:3] then transpose then scale(0.5)")
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(m.apply(x), 0.5 * x[:, 1:3].T)
    assert m.out_shape((3, 4)) == (2, 3) and not m.invertible and not m.is_view
    assert parse_map(["[:, 1:3]", "transpose", "scale(0.5)"]) == m
    assert parse_map("[:, 1:3]").then("transpose").then(parse_map("scale(0.5)")) == m
    assert parse_map("identity then transpose then identity") == parse_map("transpose")
    assert parse_map("identity then identity").is_identity
    assert parse_map("transpose then scale(2)").invertible
    assert parse_map("transpose then [0]").is_view


@pytest.mark.parametrize(
    "spec, message",
    [
        ("scale(0)", "finite and non-zero"),
        ("scale(nan)", "finite and non-zero"),
        ("scale(half)", "could not convert"),
        ("transpose then", "has an empty part"),
        ("transpose then transposed", "unknown map 'transposed'"),
    ],
)
def test_bad_scales_and_compositions_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_map(spec)


def test_a_composition_checks_every_step_of_the_shape() -> None:
    with pytest.raises(ValueError, match=r"index \[5\] is out of range .* shape \(4, 3\)"):
        parse_map("transpose then [5]").out_shape((3, 4))
