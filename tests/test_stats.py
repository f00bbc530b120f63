"""Statistics across seeds, checked against independent computations."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest
from tiny_runs import tiny_run

import toolkit.runner.stats as stats
from toolkit.runner.stats import (
    Interval,
    bootstrap_ci,
    bootstrap_columns,
    summarize,
    summarize_curves,
)
from toolkit.runner.tables import result_rows


def test_bootstrap_ci_matches_an_independent_percentile_bootstrap():
    x = np.random.default_rng(42).normal(3.0, 2.0, size=12)
    # The percentile bootstrap of the mean, written out with NumPy and another generator.
    idx = np.random.default_rng(7).integers(0, x.size, size=(40000, x.size))
    low, high = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
    ci = bootstrap_ci(x)
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert ci.n == 12 and ci.mean == pytest.approx(x.mean(), rel=1e-15)
    # Monte Carlo error of either end is about 0.03 standard errors at 9999 resamples.
    assert abs(ci.low - low) < 0.15 * se and abs(ci.high - high) < 0.15 * se


def test_bootstrap_ci_of_a_large_sample_is_the_normal_theory_interval():
    x = np.random.default_rng(0).exponential(1.0, size=400)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(x.size)
    ci = bootstrap_ci(x)
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)


def test_a_higher_confidence_gives_a_wider_interval():
    x = np.random.default_rng(1).normal(size=20)
    narrow, wide = bootstrap_ci(x, confidence=0.5), bootstrap_ci(x, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_one_value_equal_values_or_huge_ones_give_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_ci([0.25]) == Interval(0.25, 0.25, 0.25, 1)
        assert bootstrap_ci([0.1] * 5) == Interval(0.1, 0.1, 0.1, 5)
        mixed = bootstrap_columns([[1.0, 0.0, math.inf], [2.0, 0.0, 1.0]])
        huge = bootstrap_ci([1e300, 3e300, 2e300])  # a diverging run, not yet infinite
    assert mixed[0].low < mixed[0].high and mixed[1] == Interval(0.0, 0.0, 0.0, 2)
    assert math.isnan(mixed[2].low) and math.isnan(mixed[2].high)  # a diverged seed
    assert huge.n == 3 and huge.low <= huge.high
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])


def test_the_bootstrap_is_deterministic_for_a_seed():
    x = [0.3, 0.9, 0.4, 1.7, 0.2]
    assert bootstrap_ci(x) == bootstrap_ci(list(x))
    assert bootstrap_ci(x, seed=1) != bootstrap_ci(x)


def _row(seed, value, metric="final_loss", run="r", strategy="explicit", lr="0.01"):
    return {"run": run, "config": "c.toml", "case": "dedup", "strategy": strategy,
            "optimizer": "adam", "seed": str(seed), "set.lr": lr, "storage": "",
            "metric": metric, "value": value}


def test_summarize_groups_by_everything_but_run_and_seed():
    rows = [_row(0, "1.0", run="point-0"), _row(1, "2.0", run="point-1"), _row(2, "4.5"),
            _row(0, "10.0", lr="0.1"),
            *(_row(s, k, "training_verdict") for s, k in enumerate(["exact", "exact",
                                                                    "ties-drift", "exact"]))]
    by_key = {(s.group["set.lr"], s.metric): s for s in summarize(rows)}
    assert set(by_key) == {("0.01", "final_loss"), ("0.1", "final_loss"),
                           ("0.01", "training_verdict")}
    loss = by_key["0.01", "final_loss"]
    assert loss.group == {"config": "c.toml", "case": "dedup", "strategy": "explicit",
                          "optimizer": "adam", "set.lr": "0.01", "storage": ""}
    assert loss.n == 3 and loss.interval.mean == 2.5
    assert 1.0 <= loss.interval.low < 2.5 < loss.interval.high <= 4.5
    assert by_key["0.1", "final_loss"].interval == Interval(10.0, 10.0, 10.0, 1)
    verdict = by_key["0.01", "training_verdict"]
    assert verdict.counts == {"exact": 3, "ties-drift": 1} and verdict.interval is None
    assert verdict.statistics() == {"n": 4, "frequency.exact": 0.75,
                                    "frequency.ties-drift": 0.25}
    assert set(loss.statistics()) == {"n", "mean", "ci_low", "ci_high"}


def test_summarize_ignores_other_metrics_and_reads_empty_values_as_nan():
    rows = [_row(0, "", "final_loss"), _row(1, "1.0", "final_loss"), _row(0, "3", "other")]
    (only,) = summarize(rows)
    assert only.metric == "final_loss" and math.isnan(only.interval.mean)


def test_summarize_refuses_a_seed_given_twice_in_a_group():
    with pytest.raises(ValueError, match=r"seed 0 appears twice .*case=dedup"):
        summarize([_row(0, "1.0"), _row(0, "1.0", run="again")])


def test_summaries_of_real_runs_agree_with_the_records():
    runs = [tiny_run(seed) for seed in (0, 1, 2)]
    rows = [row for run in runs for row in result_rows(run, {})]
    opt = next(iter(runs[0].cases["dedup"].training))
    found = {(s.group["strategy"], s.group["optimizer"], s.group["storage"], s.metric): s
             for s in summarize(rows)}
    losses = [run.cases["dedup"].training[opt]["explicit"].final_loss for run in runs]
    loss = found["explicit", opt, "", "final_loss"]
    assert loss.n == 3 and loss.interval.mean == pytest.approx(np.mean(losses), rel=1e-11)
    assert min(losses) <= loss.interval.low < loss.interval.high <= max(losses)
    assert found["explicit", opt, "", "training_verdict"].counts == {"ties-drift": 3}
    assert found["explicit", "", "enc.weight", "verdict.per-storage"].counts == {"missing": 3}
    drift = found["tied", opt, "", "max_tie_drift"].interval
    assert drift == Interval(0.0, 0.0, 0.0, 3)


def test_curve_bands_count_the_seeds_that_reached_each_step():
    rows = [{"run": "r", "case": "c", "strategy": "s", "seed": str(seed), "step": str(step),
             "metric": "loss", "value": str(value)}
            for seed, values in enumerate([[4.0, 3.0, 2.0], [2.0, 1.0], [3.0, 2.0, 1.0]])
            for step, value in enumerate(values, 1)]
    (band,) = summarize_curves(rows)
    assert band.group == {"case": "c", "strategy": "s"} and band.metric == "loss"
    assert band.steps == (1, 2, 3) and band.n == (3, 3, 2)
    assert band.mean == (3.0, 2.0, 1.5)
    assert all(lo <= m <= hi for lo, m, hi in zip(band.low, band.mean, band.high, strict=True))
    assert band.low[0] < band.high[0]


def test_docstring_examples_run():
    result = doctest.testmod(stats, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
