"""Aggregating run folders (order- and shard-independent bytes) and comparing folders."""

from __future__ import annotations

import csv
import doctest
import json
import shutil

import pytest
from tiny_runs import tiny_run, write_folder

import toolkit.runner.aggregate as aggregate_module
import toolkit.runner.diff as diff_module
from toolkit.runner.aggregate import aggregate, find_run_folders
from toolkit.runner.diff import compare_runs
from toolkit.runner.tables import write_csv

SEEDS = (0, 1, 2)
SETTINGS = {"train.optimizers[0].learning_rate": 0.01}


def _read(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # Folder names sort against the seeds: the aggregate must not follow them.
    names = {0: "z-run", 1: "b-run", 2: "m-run"}
    return [write_folder(root / names[seed], tiny_run(seed), SETTINGS) for seed in SEEDS]


@pytest.fixture(scope="module")
def aggregated(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("aggregate")
    assert aggregate(folders, out) == out / "aggregate.md"
    return out


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_same_runs_in_any_order_or_shards_give_identical_bytes(folders, aggregated,
                                                                   tmp_path):
    for index, part in enumerate((folders[:1], folders[1:])):  # two shards' folders
        for folder in part:
            shutil.copytree(folder, tmp_path / f"shard{index}" / f"{folder.name}-copy")
    copies = find_run_folders([tmp_path / "shard1", tmp_path / "shard0"])
    assert len(copies) == 3
    aggregate(copies, tmp_path / "again")
    again, first = _files(tmp_path / "again"), _files(aggregated)
    assert sorted(first) == ["aggregate.csv", "aggregate.md", "curves-tiny-dedup-adam-learning_"
                             "rate=0.01-train.optimizers-0-.learning_rate=0.01.png",
                             "curves.csv", "results.csv"]
    assert again == first


def test_merged_tables_have_every_seed_and_runs_in_seed_order(aggregated):
    curves = _read(aggregated / "curves.csv")
    assert [r["seed"] for r in curves][::len(curves) // 3] == ["0", "1", "2"]
    results = _read(aggregated / "results.csv")
    assert {r["seed"] for r in results} == {"0", "1", "2"}
    assert {r["set.train.optimizers[0].learning_rate"] for r in results} == {"0.01"}


def test_aggregate_csv_holds_n_mean_interval_and_frequencies(aggregated):
    rows = _read(aggregated / "aggregate.csv")
    assert list(rows[0]) == ["config", "case", "strategy", "optimizer",
                             "set.train.optimizers[0].learning_rate", "storage", "metric",
                             "statistic", "value"]
    opt = next(iter(tiny_run(0).cases["dedup"].training))
    got = {(r["strategy"], r["optimizer"], r["storage"], r["metric"], r["statistic"]): r["value"]
           for r in rows}
    losses = [tiny_run(s).cases["dedup"].training[opt]["explicit"].final_loss for s in SEEDS]
    key = ("explicit", opt, "", "final_loss")
    assert got[(*key, "n")] == "3"
    assert float(got[(*key, "mean")]) == pytest.approx(sum(losses) / 3, rel=1e-11)
    assert min(losses) <= float(got[(*key, "ci_low")]) < float(got[(*key, "ci_high")])
    assert got["explicit", opt, "", "training_verdict", "frequency.ties-drift"] == "1.0"
    assert got["explicit", "", "enc.weight", "verdict.per-storage", "frequency.missing"] == "1.0"


def test_aggregate_report_gives_intervals_counts_and_plots(aggregated):
    text = (aggregated / "aggregate.md").read_text()
    assert "# Aggregate of 3 runs" in text and "Seeds: 0, 1, 2 (3)" in text
    assert "| `explicit` | 3 |" in text and "ties-drift 3/3" in text
    assert "| `explicit` | `enc.weight` | 3 | missing 3/3 | missing 3/3 |" in text
    for line in text.splitlines():
        if line.startswith("!["):
            assert (aggregated / line.split("](")[1].rstrip(")")).is_file()


def test_aggregate_refuses_a_run_given_twice_and_a_folder_without_tables(folders, tmp_path):
    with pytest.raises(ValueError, match="appears twice"):
        aggregate([folders[0], folders[0]], tmp_path / "twice")
    with pytest.raises(ValueError, match=str(tmp_path / "empty")):
        aggregate([folders[0], tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ValueError, match="no run folders"):
        aggregate([], tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'}: no run folder in it"):
        find_run_folders([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no such folder"):
        find_run_folders([tmp_path / "missing"])


def _edited_copy(folder, destination, edit):
    shutil.copytree(folder, destination)
    summary = json.loads((destination / "summary.json").read_text())
    edit(summary)
    (destination / "summary.json").write_text(json.dumps(summary))
    return destination


def test_compare_detects_an_injected_verdict_change(folders, tmp_path):
    def fix_explicit(summary):
        row = summary["cases"]["dedup"]["strategies"]["explicit"]["verdicts"]["per-storage"]
        row["enc.weight"] = {"kind": "exact", "via": [], "text": "exact"}

    changed = _edited_copy(folders[0], tmp_path / "changed", fix_explicit)
    lines = compare_runs(folders[0], changed)
    assert "- `dedup/explicit/enc.weight/per-storage`: missing contribution (via dec.weight)"\
           " → exact" in lines
    assert "## Verdicts" in lines and not any("Numbers" in line for line in lines)


def test_compare_reports_numbers_beyond_the_tolerance_only(folders, tmp_path):
    def nudge(factor):
        def edit(summary):
            row = summary["cases"]["dedup"]["training"]
            opt = next(iter(row))
            row[opt]["explicit"]["final_loss"] *= factor
        return edit

    small = compare_runs(folders[0], _edited_copy(folders[0], tmp_path / "a", nudge(1 + 1e-9)))
    assert any("no differences" in line for line in small)
    large = compare_runs(folders[0], _edited_copy(folders[0], tmp_path / "b", nudge(1.001)))
    assert any("/explicit/final_loss`:" in line and "+0.001 relative" in line for line in large)


def test_compare_lists_what_one_side_lacks_and_changed_settings(folders, tmp_path):
    def drop(summary):
        del summary["cases"]["dedup"]["strategies"]["explicit-merged"]

    lines = compare_runs(folders[0], _edited_copy(folders[0], tmp_path / "fewer", drop))
    assert "- `dedup/explicit-merged`: only in A" in lines
    assert not any("explicit-merged/" in line for line in lines)  # its entries not repeated
    assert "- `seed`: 0 → 1" in compare_runs(folders[0], folders[1])


def test_compare_of_aggregates_reports_verdict_frequencies_and_intervals(folders, aggregated,
                                                                        tmp_path):
    assert any("no differences" in line for line in compare_runs(aggregated, aggregated))
    edited = tmp_path / "edited"
    shutil.copytree(folders[2], edited)
    with (edited / "results.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    (target,) = [r for r in rows if (r["strategy"], r["storage"], r["metric"]) == (
        "explicit", "enc.weight", "verdict.per-storage")]
    target["value"] = "exact"
    write_csv(edited / "results.csv", header, rows)
    aggregate([*folders[:2], edited], tmp_path / "b")
    lines = compare_runs(aggregated, tmp_path / "b")
    assert any("/explicit/" in line and "/enc.weight/verdict.per-storage`: missing 100 % → "
               "missing 66.7 %, exact 33.3 %" in line for line in lines), lines
    aggregate(folders[:2], tmp_path / "two")
    fewer = compare_runs(aggregated, tmp_path / "two")
    assert "- `seeds per group`: 3 → 2" in fewer
    assert any("final_loss mean`:" in line for line in fewer)


def test_compare_refuses_folders_of_neither_or_mixed_kinds(folders, aggregated, tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: neither a run folder"):
        compare_runs(tmp_path, folders[0])
    with pytest.raises(ValueError, match="cannot compare a run folder"):
        compare_runs(folders[0], aggregated)


@pytest.mark.parametrize("module", [aggregate_module, diff_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
