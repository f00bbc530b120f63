"""Effective SGD steps and their verdicts, on hand-derived gradients of the aliasing cases."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from toolkit.experiment import Case, Param, tie
from toolkit.runner.compare import classify, effective_steps, judge, judge_training
from toolkit.runner.reference import compute_reference


def seed_case(wrt, loss=lambda np, p, d: np.sum(p.xt * p.x)) -> Case:
    return Case("c", {"x": Param((1,), values=[1.0]), "xt": tie("x", "adjoint")}, loss, wrt=wrt)


EXACT = ("exact", ())


def named(verdict):
    """A verdict's kind and the aliases it names."""
    return verdict.kind, verdict.via


def verdicts(case, grads):
    ref = compute_reference(case, case.initial_values(0), {})
    return {
        (v.rule, v.source): named(v.verdict)
        for v in judge(case, grads, case.wrt, ref, rtol=1e-6, atol=1e-9)
    }


def test_identity_partials_with_one_alias_miss_the_other():
    # Zygote's case 2: x gets only its own partial.
    v = verdicts(seed_case(("x",)), {"x": np.array([1.0])})
    assert v[("per-param", "x")] == ("missing", ("xt",))


def test_identity_partials_with_every_alias_are_exact_per_param_only():
    # Zygote's case 3: partials [1] and [[1]] sum to the true step through views.
    v = verdicts(seed_case(("x", "xt")), {"x": np.array([1.0]), "xt": np.array([[1.0]])})
    assert v[("per-param", "x")] == EXACT
    assert v[("per-storage", "x")] == ("missing", ("xt",))


def test_storage_totals_double_count_when_applied_per_param():
    v = verdicts(seed_case(("x", "xt")), {"x": np.array([2.0]), "xt": np.array([[2.0]])})
    assert v[("per-storage", "x")] == EXACT
    assert v[("per-param", "x")] == ("double-counted", ("xt",))


def test_structural_gradient_updates_the_parent():
    # Zygote's case 6: xt => (parent = [1],) moves x by 1 while the truth is 2.
    case = seed_case(("xt",), loss=lambda np, p, d: np.sum(p.xt.parent * p.x))
    steps = effective_steps(case, {"xt": {"parent": np.array([1.0])}}, case.wrt, "per-param")
    np.testing.assert_array_equal(steps["x"], [1.0])
    assert verdicts(case, {"xt": {"parent": np.array([1.0])}})[("per-param", "x")] == (
        ("missing", ("x",))
    )


def test_nothing_gives_zero_step_and_unlisted_storage_no_step():
    case = seed_case(("x",))
    assert verdicts(case, {"x": None})[("per-param", "x")] == ("missing", ("x", "xt"))
    no_step = classify(None, np.ones(1), {}, listed=[], rtol=0, atol=0)
    assert named(no_step) == ("no-step", ()) and no_step.error is None


def test_unexplained_error_is_reported_as_wrong():
    out = classify(
        np.array([5.0]), np.array([2.0]), {"x": np.array([1.0])}, listed=["x"], rtol=1e-6, atol=1e-9
    )
    assert named(out) == ("wrong", ()) and out.error == pytest.approx(3.0)
    assert str(out) == "wrong (max abs error 3)"


def slice_case(wrt) -> Case:
    # b is the first two entries of v; loss = sum(v**2)/2 + 3 * sum(b).
    return Case(
        "prefix",
        {"v": Param((4,), values=[1.0, 2.0, 3.0, 4.0]), "b": tie("v", "[:2]")},
        lambda np, p, d: 0.5 * np.sum(p.v * p.v) + 3.0 * np.sum(p.b),
        wrt=wrt,
    )


def test_storage_totals_on_a_slice_double_count_only_the_slice():
    case = slice_case(("v", "b"))
    truth = np.array([4.0, 5.0, 3.0, 4.0])  # v + 3 on the prefix, by hand
    grads = {"v": truth, "b": truth[:2]}
    v = verdicts(case, grads)
    assert v[("per-storage", "v")] == EXACT
    assert v[("per-param", "v")] == ("double-counted", ("b",))


def test_slice_partials_through_views_are_exact_per_param():
    case = slice_case(("v", "b"))
    v = verdicts(case, {"v": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([3.0, 3.0])})
    assert v[("per-param", "v")] == EXACT
    assert v[("per-storage", "v")] == ("missing", ("b",))


def test_identity_tie_is_one_params_entry_for_a_shared_object_engine():
    # Chain(m, m): the tape holds one object, so Params([w, w]) updates it once.
    case = Case(
        "mm",
        {"w": Param((1,), values=[0.5]), "w2": tie("w")},
        lambda np, p, d: np.sum(p.w2 * p.w * 3.0),
        wrt=("w", "w2"),
    )
    total = np.array([3.0])  # d/dw 3 w^2 = 6 w = 3
    shared = verdicts_with(case, {"w": total, "w2": total}, same_object=True)
    copies = verdicts_with(case, {"w": total, "w2": total}, same_object=False)
    assert shared[("per-param", "w")] == EXACT
    assert copies[("per-param", "w")] == ("double-counted", ("w2",))


def verdicts_with(case, grads, *, same_object):
    ref = compute_reference(case, case.initial_values(0), {})
    out = judge(case, grads, case.wrt, ref, rtol=1e-6, atol=1e-9, same_object=same_object)
    return {(v.rule, v.source): named(v.verdict) for v in out}


def test_raw_errors_measure_against_the_total_seen_through_each_view():
    from toolkit.runner.compare import raw_errors

    case = seed_case(("x", "xt"))
    ref = compute_reference(case, case.initial_values(0), {})
    errs = raw_errors(case, {"x": np.array([1.0]), "xt": np.array([[2.0]])}, ref)
    assert errs["x"] == pytest.approx(1.0, abs=1e-8)  # a partial: one of the two
    assert errs["xt"] == pytest.approx(0.0, abs=1e-8)  # the total, seen through the view
    assert raw_errors(case, {"x": None, "xt": {"parent": np.ones(1)}}, ref) == {
        "x": None,
        "xt": None,
    }


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    missing=st.sets(st.integers(0, 4), min_size=1),
)
def test_classify_names_exactly_the_aliases_whose_partials_are_missing(n, seed, missing):
    rng = np.random.default_rng(seed)
    names = [f"a{i}" for i in range(n)]
    partials = {a: rng.standard_normal(6) for a in names}
    truth = sum(partials.values())
    gone = [names[i] for i in sorted(missing) if i < n]
    assume(gone)
    step = truth - sum(partials[a] for a in gone)
    verdict = classify(step, truth, partials, listed=names, rtol=1e-9, atol=1e-12)
    assert named(verdict) == ("missing", tuple(gone))
    assert str(verdict) == f"missing contribution (via {', '.join(gone)})"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 2**16), extra=st.integers(1, 4))
def test_classify_counts_totals_applied_through_extra_aliases(n, seed, extra):
    rng = np.random.default_rng(seed)
    names = [f"a{i}" for i in range(n)]
    partials = {a: rng.standard_normal(6) for a in names}
    truth = sum(partials.values())
    again = names[1 : 1 + min(extra, n - 1)]
    step = truth * (1 + len(again))
    verdict = classify(step, truth, partials, listed=names, rtol=1e-9, atol=1e-12)
    assert named(verdict) == ("double-counted", tuple(again))
    assert str(verdict) == f"double-counted (via {', '.join(again)})"


def test_verdict_json_has_kind_via_and_text():
    case = seed_case(("x",))
    ref = compute_reference(case, case.initial_values(0), {})
    (first, *_) = judge(case, {"x": np.array([1.0])}, case.wrt, ref, rtol=1e-6, atol=1e-9)
    assert first.rule == "per-param"
    assert first.verdict.to_json() == {
        "kind": "missing", "via": ["xt"], "text": "missing contribution (via xt)"
    }
    # the step is 1 and the truth 2 (d/dx x^2 at 1): the error is their gap
    assert first.verdict.error == pytest.approx(1.0, abs=1e-8)


def test_verdict_rejects_aliases_where_its_kind_names_none():
    from toolkit.runner.results import Verdict

    with pytest.raises(ValueError, match="'via' must be empty"):
        Verdict("exact", via=("x",))
    with pytest.raises(ValueError, match="'via' must name at least one alias"):
        Verdict("missing")
    with pytest.raises(ValueError, match="unknown verdict kind 'lost'; valid: exact"):
        Verdict("lost")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("drift", "distance", "kind", "text"),
    [
        (0.0, 1e-9, "exact", "exact"),
        (0.0, 2e-3, "wrong-trajectory", "wrong trajectory (max distance 0.002)"),
        (1.4, 1.5, "ties-drift", "ties drift (max 1.4)"),
        (float("nan"), 0.0, "diverged", "diverged (not finite at step 3)"),
    ],
)
def test_training_verdicts(drift, distance, kind, text):
    v = judge_training(drift, distance, 1e-6, diverged_at=3 if kind == "diverged" else None)
    assert v.kind == kind and str(v) == text
    assert v.to_json() == {"kind": kind, "text": text}
