"""Experiments declare composite, scaled and chained ties, and every engine runs them.

The case below ties four parameters to one storage ``w``: a slice then a transpose, a chain
through it, a scale, and a transpose chained after the scale. Gradients from the native tape
and from JAX are compared with float64 finite differences (the reference), total and per
alias; trainers with Adam are compared with each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optax
import pytest

from toolkit.experiment import Case, Param, ParamTree, tie
from toolkit.runner.reference import compute_reference, to_storage
from toolkit.runner.strategies import compute_gradients, make_trainer


def _loss(np: Any, p: ParamTree, d: dict[str, Any]) -> Any:
    return (
        np.sum(np.tanh(p.w) * d["a"])
        + np.sum(p.u * p.u * d["b"])  # u = w[:, 1:3].T, (2, 3)
        + np.sum(p.c * p.c * p.c)  # c = u[1], a chain through the composite
        + np.sum(np.tanh(p.s))  # s = 0.5 * w
        + np.sum(p.st @ d["m"])  # st = (0.5 * w).T, a chain through the scale
    )


def _data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "a": rng.standard_normal((3, 4)),
        "b": rng.standard_normal((2, 3)),
        "m": rng.standard_normal((3, 2)),
    }


def make_case(wrt: tuple[str, ...] = ("w",)) -> Case:
    return Case(
        "ties",
        {
            "w": Param((3, 4)),
            "st": tie("s", "transpose"),  # declared before its source: order does not matter
            "u": tie("w", "[:, 1:3] then transpose"),
            "c": tie("u", "[1]"),
            "s": tie("w", "scale(0.5)"),
        },
        _loss,
        wrt=wrt,
        data=_data,
    )


def test_chains_resolve_to_the_root_with_composed_maps() -> None:
    case = make_case()
    assert {p: case.storage_of(p) for p in case.params} == dict.fromkeys(case.params, "w")
    assert str(case.map_of("c")) == "[:, 1:3] then transpose then [1]"
    assert str(case.map_of("st")) == "scale(0.5) then transpose"
    assert case.shape_of("u") == (2, 3) and case.shape_of("c") == (3,)
    assert case.aliases_of("w") == ["w", "st", "u", "c", "s"]


@pytest.fixture(scope="module")
def setup() -> tuple[Case, dict, dict, object]:
    case = make_case()
    values, data = case.initial_values(3), case.make_data(3)
    return case, values, data, compute_reference(case, values, data)


@pytest.mark.parametrize("strategy", ["implicit-storage", "explicit-shared", "explicit-merged"])
def test_storage_totals_match_finite_differences(strategy: str, setup: tuple) -> None:
    case, values, data, ref = setup
    result = compute_gradients(strategy, case, values, data, ("w",))
    np.testing.assert_allclose(
        result.grads["w"].reshape(-1), ref.storages["w"].total, rtol=1e-7, atol=1e-9
    )
    assert result.value == pytest.approx(ref.value, rel=1e-12)


def test_each_alias_gradient_sent_through_the_adjoint_is_its_finite_difference_partial(
    setup: tuple,
) -> None:
    case, values, data, ref = setup
    paths = tuple(case.params)
    result = compute_gradients("explicit", case, values, data, paths)
    for path in paths:
        partial = to_storage(case, path, result.grads[path]).reshape(-1)
        np.testing.assert_allclose(
            partial, ref.storages["w"].partials[path], rtol=1e-7, atol=1e-9, err_msg=path
        )


def test_the_tape_computes_a_scaled_tie_inside_the_loss(setup: tuple) -> None:
    # Views made outside the function (u, c) reach w only under the storage policy; the
    # scaled ties (s, st) are no memory, so the tape computes them from w inside the loss and
    # their part reaches w under either policy.
    case, values, data, ref = setup
    partials = ref.storages["w"].partials
    got = compute_gradients("implicit-identity", case, values, data, ("w",)).grads["w"]
    expected = partials["w"] + partials["s"] + partials["st"]
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-7, atol=1e-9)


def test_a_scaled_tie_cannot_be_a_tape_param(setup: tuple) -> None:
    case, values, data, _ = setup
    with pytest.raises(ValueError, match=r"'s' = 0.5 \* w is no view of memory.*list 'w'"):
        compute_gradients("implicit-storage", case, values, data, ("w", "s"))


def test_trainers_agree_and_keep_the_ties(setup: tuple) -> None:
    case, values, data, _ = setup
    trainers = {
        name: make_trainer(name, case, values, data, ("w",), optax.adam(0.05))
        for name in ("explicit-shared", "tied", "implicit-storage")
    }
    for _ in range(5):
        losses = {name: t.step() for name, t in trainers.items()}
        assert losses["tied"] == pytest.approx(losses["explicit-shared"], rel=1e-9)
        assert losses["implicit-storage"] == pytest.approx(losses["explicit-shared"], rel=1e-9)
    baseline = trainers["explicit-shared"].storage_values()["w"]
    assert not np.allclose(baseline, values["w"])
    for name, trainer in trainers.items():
        np.testing.assert_allclose(trainer.storage_values()["w"], baseline, rtol=1e-9, err_msg=name)
        # A scaled copy gets the scaled update: equal up to how XLA rounds p + 0.5 * u.
        assert trainer.tie_drift() <= 1e-15, name


@pytest.mark.parametrize(
    "params, message",
    [
        ({"a": tie("b"), "b": tie("a")}, r"ties form a cycle: a -> b -> a"),
        ({"w": Param((3,)), "a": tie("b")}, r"tie 'a' -> 'b': the source must be a declared"),
        (
            {"w": Param((3, 4)), "u": tie("w", "transpose"), "v": tie("u", "[:, 5]")},
            r"tie 'v' = w.T\[:, 5\]: index \[:, 5\] is out of range",
        ),
    ],
)
def test_bad_ties_are_refused_where_declared(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Case("c", params, _loss, wrt=())


def test_a_misspelt_map_fails_where_the_tie_is_declared() -> None:
    with pytest.raises(ValueError, match=r"map 'scale\(0\)'.*finite and non-zero"):
        tie("w", "scale(0)")
