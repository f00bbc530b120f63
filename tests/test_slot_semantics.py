"""One array in two argument slots: the per-slot reference and each strategy's semantics."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from toolkit.experiments import slot_reuse

from toolkit.experiment import ParamTree
from toolkit.namespaces import jax_namespace
from toolkit.runner import api
from toolkit.runner.reference import compute_reference, compute_slot_reference


@pytest.fixture(scope="module")
def result():
    return api.run(api.load("slot_reuse"))


@pytest.mark.parametrize("case", slot_reuse.cases())
def test_slot_partials_match_jax_per_argument_and_sum_to_the_storage_total(case) -> None:
    values, data = case.initial_values(0), case.make_data(0)
    slots = slot_reuse.SLOTS[case.name]
    ref = compute_slot_reference(case, values, data, slots, slot_reuse.slot_loss)
    tree = ParamTree({p: values[case.storage_of(p)] for p in case.params})
    ns = jax_namespace()

    def per_slot(w_input, w_recurrent):
        return slot_reuse.slot_loss(ns, tree, data, {"input": w_input, "recurrent": w_recurrent})

    w = values["cell.W"]
    by_jax = jax.grad(per_slot, argnums=(0, 1))(w, w)
    for name, expected in zip(("input", "recurrent"), by_jax, strict=True):
        np.testing.assert_allclose(ref.partials[name], expected, rtol=1e-6, atol=1e-8)
    total = compute_reference(case, values, data).storages["cell.W"].total
    np.testing.assert_allclose(sum(ref.partials.values()).reshape(-1), total, rtol=1e-6,
                               atol=1e-8)
    assert not np.allclose(ref.partials["input"], ref.partials["recurrent"])


def test_only_per_alias_copies_follow_slot_semantics(result) -> None:
    semantics = {name: {s: row.semantics for s, row in case.strategies.items()}
                 for name, case in result.cases.items()}
    # One path for both slots: every strategy can only give the array's total.
    assert set(semantics["shared-array"].values()) == {"storage"}
    # A path per slot: explicit copies give each slot its own part; the rest sum.
    assert semantics["slot-aliases"] == {
        "implicit-identity": "storage", "implicit-storage": "storage", "explicit": "slot",
        "explicit-merged": "storage", "explicit-shared": "storage"}
    assert result.cases["slot-aliases"].slots == {"input": "slots.input",
                                                  "recurrent": "slots.recurrent"}


def test_semantics_reach_the_summary_tables_and_report(result) -> None:
    from toolkit.runner.report import render_report
    from toolkit.runner.results import RunResult

    assert RunResult.from_json(result.to_json()).cases["slot-aliases"].strategies[
        "explicit"].semantics == "slot"
    rows = api.tables(result)["results"]
    assert {r["value"] for r in rows if r["metric"] == "semantics"} == {"slot", "storage"}
    assert "Slot versus storage semantics" in render_report(result)
