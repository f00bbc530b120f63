"""Tidy tables: curves.csv and results.csv agree with the records and read without our code."""

from __future__ import annotations

import csv
import doctest
import math

import pytest
from tiny_runs import tiny_run

import toolkit.runner.tables as tables
from toolkit.runner.results import TRAINING_KINDS, VERDICT_KINDS
from toolkit.runner.tables import curve_columns, format_value, result_columns, write_tables

SETTINGS = {"train.optimizers[0].learning_rate": 0.01, "hyperparameters.h": 2}


def _read(path):
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _close(text, value):
    return math.isclose(float(text), value, rel_tol=1e-11, abs_tol=1e-300)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    run = tiny_run(0)
    assert write_tables(run, folder, SETTINGS) == ["curves.csv", "results.csv"]
    return run, folder


def test_curves_have_one_row_per_case_optimizer_strategy_step_and_metric(written):
    run, folder = written
    header, rows = _read(folder / "curves.csv")
    assert header == ["run", "config", "case", "strategy", "optimizer", "seed",
                      "set.hyperparameters.h", "set.train.optimizers[0].learning_rate",
                      "step", "metric", "value"]
    expected = {}
    for case_name, case in run.cases.items():
        for opt, per_strategy in case.training.items():
            for strategy, trained in per_strategy.items():
                h = trained.history
                for metric, series in (("loss", h.loss), ("tie_drift", h.drift),
                                       ("distance_to_baseline", h.distance)):
                    for step, value in enumerate(series, 1):
                        expected[case_name, opt, strategy, str(step), metric] = value
    got = {(r["case"], r["optimizer"], r["strategy"], r["step"], r["metric"]): r["value"]
           for r in rows}
    assert len(got) == len(rows) == len(expected) == 6 * 3 * 3  # strategies, steps, metrics
    assert got.keys() == expected.keys()
    assert all(_close(got[k], v) for k, v in expected.items())
    assert {(r["run"], r["config"], r["seed"]) for r in rows} == {("tiny", "tiny.toml", "0")}
    assert {r["set.train.optimizers[0].learning_rate"] for r in rows} == {"0.01"}
    assert {r["set.hyperparameters.h"] for r in rows} == {"2"}


def test_results_hold_every_verdict_error_and_training_number(written):
    run, folder = written
    header, rows = _read(folder / "results.csv")
    assert header == result_columns(SETTINGS)
    assert header[-3:] == ["storage", "metric", "value"]
    got = {(r["case"], r["strategy"], r["optimizer"], r["storage"], r["metric"]): r["value"]
           for r in rows}
    assert len(got) == len(rows)
    case = run.cases["dedup"]
    assert _close(got["dedup", "", "", "", "loss_value"], case.loss_value)
    for strategy, result in case.strategies.items():
        assert _close(got["dedup", strategy, "", "", "loss_value"], result.value)
        for rule, per_storage in result.verdicts.items():
            for storage, verdict in per_storage.items():
                assert got["dedup", strategy, "", storage, f"verdict.{rule}"] == verdict.kind
        for path, error in result.raw_max_abs_error.items():
            assert _close(got["dedup", strategy, "", path, "raw_max_abs_error"], error)
    for opt, per_strategy in case.training.items():
        for strategy, trained in per_strategy.items():
            key = ("dedup", strategy, opt, "")
            assert _close(got[(*key, "final_loss")], trained.final_loss)
            assert _close(got[(*key, "max_tie_drift")], trained.verdict.max_tie_drift)
            assert _close(got[(*key, "max_distance_to_baseline")], trained.verdict.max_distance)
            assert got[(*key, "training_verdict")] == trained.verdict.kind
    kinds = {r["value"] for r in rows if r["metric"].startswith("verdict.")}
    assert kinds <= set(VERDICT_KINDS) and "missing" in kinds
    assert {r["value"] for r in rows if r["metric"] == "training_verdict"} <= set(TRAINING_KINDS)


def test_the_seed_is_a_column_of_its_own_never_a_setting(tmp_path):
    run = tiny_run(1)
    write_tables(run, tmp_path, {"seed": 1, "dtype": "float64"})
    for name in ("curves.csv", "results.csv"):
        header, rows = _read(tmp_path / name)
        assert "set.seed" not in header and "set.dtype" in header
        assert {r["seed"] for r in rows} == {"1"}
    assert curve_columns({})[:6] == ["run", "config", "case", "strategy", "optimizer", "seed"]


def test_writing_again_gives_the_same_bytes_in_a_deterministic_order(written, tmp_path):
    run, folder = written
    write_tables(run, tmp_path, dict(reversed(SETTINGS.items())))
    for name in ("curves.csv", "results.csv"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()
    _, rows = _read(folder / "curves.csv")
    series = [(r["strategy"], r["metric"]) for r in rows]
    assert series == sorted(series, key=series.index)  # each series is one block...
    steps = [int(r["step"]) for r in rows if r["strategy"] == "tied" and r["metric"] == "loss"]
    assert steps == [1, 2, 3]  # ...in step order


def test_floats_are_rounded_so_last_digit_differences_give_the_same_text():
    # Two values the strategies compute for the same loss, differing in the last digit.
    assert format_value(0.8257272354895975) == format_value(0.8257272354895977) == "0.82572723549"
    for value in (1 / 3, 2.0**-60, 123456.789012345678, -7.5e-300, 1e300):
        text = format_value(value)
        assert float(text) == float(f"{value:.12g}")
        assert len(text.replace("-", "").replace(".", "").split("e")[0].lstrip("0")) <= 12
    assert format_value(-0.0) == "0.0" and format_value(float("nan")) == "nan"
    assert format_value(float("-inf")) == "-inf" and format_value(None) == ""
    assert format_value([0.1 + 0.2, "a"]) == '[0.3, "a"]'


def test_tables_read_with_pandas_when_it_is_installed(written):
    pandas = pytest.importorskip("pandas")
    _, folder = written
    curves = pandas.read_csv(folder / "curves.csv")
    assert curves["seed"].unique().tolist() == [0]
    assert curves["value"].dtype.kind == "f"


def test_docstring_examples_run():
    result = doctest.testmod(tables, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
