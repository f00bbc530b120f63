"""One array in two argument slots: which strategies follow slot and which storage semantics.

The truth is computed here with float64 central differences of ``slot_loss`` in NumPy: moving
one slot's array alone gives that slot's partial, moving the storage (both slots) the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from toolkit.experiments import slot_reuse

from toolkit.experiment import Case, ParamTree
from toolkit.namespaces import numpy_namespace
from toolkit.runner.strategies import compute_gradients

NP = numpy_namespace()
CASES = {c.name: c for c in slot_reuse.cases()}


def _slopes(case: Case, values: Mapping[str, np.ndarray], data: Mapping[str, Any],
            moved: tuple[str, ...]) -> np.ndarray:
    """d loss / d W with ``W + t e_k`` in the ``moved`` slots only, for every element k."""
    w = values["cell.W"]
    p = ParamTree({**values, **{a: w for a in case.aliases_of("cell.W")}})
    h = 1e-4

    def f(e: np.ndarray) -> float:
        slots = {name: w + e if name in moved else w for name in slot_reuse.SLOTS[case.name]}
        return float(slot_reuse.slot_loss(NP, p, data, slots))

    out = np.zeros(w.size)
    for k in range(w.size):
        e = np.zeros(w.size)
        e[k] = h
        e = e.reshape(w.shape)
        out[k] = (8 * (f(e) - f(-e)) - (f(2 * e) - f(-2 * e))) / (12 * h)
    return out.reshape(w.shape)


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    case = CASES["slot-aliases"]
    values, data = case.initial_values(0), case.make_data(0)
    return {slot: _slopes(case, values, data, (slot,)) for slot in ("input", "recurrent")} | {
        "storage": _slopes(case, values, data, ("input", "recurrent"))}


def test_slot_partials_differ_and_sum_to_the_storage_total(truth):
    np.testing.assert_allclose(truth["input"] + truth["recurrent"], truth["storage"],
                               rtol=1e-7, atol=1e-10)
    assert np.abs(truth["input"] - truth["recurrent"]).max() > 1e-2


@pytest.mark.parametrize("strategy", ["explicit", "explicit-merged", "explicit-shared",
                                      "implicit-identity", "implicit-storage"])
def test_reading_the_array_once_gives_every_strategy_storage_semantics(truth, strategy):
    case = CASES["shared-array"]
    result = compute_gradients(strategy, case, case.initial_values(0), case.make_data(0),
                               case.wrt)
    np.testing.assert_allclose(result.grads["cell.W"], truth["storage"], rtol=1e-6,
                               atol=1e-9)


def test_per_slot_aliases_give_explicit_slot_semantics_and_the_others_storage(truth):
    case = CASES["slot-aliases"]
    values, data = case.initial_values(0), case.make_data(0)
    explicit = compute_gradients("explicit", case, values, data, case.wrt)
    np.testing.assert_allclose(explicit.grads["slots.input"], truth["input"], rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(explicit.grads["slots.recurrent"], truth["recurrent"],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(explicit.grads["cell.W"], 0.0)  # the loss never reads it
    for strategy in ("explicit-merged", "explicit-shared", "implicit-identity",
                     "implicit-storage"):
        result = compute_gradients(strategy, case, values, data, case.wrt)
        for path in ("cell.W", "slots.input", "slots.recurrent"):
            np.testing.assert_allclose(result.grads[path], truth["storage"], rtol=1e-6,
                                       atol=1e-9, err_msg=f"{strategy}: {path}")
