"""Sweeps from the command line: grids, seeds, worker processes, shards and aggregation."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.runner.config import parse_config, parse_config_text
from toolkit.runner.sweep import plan, point_file, toml_text

ROOT = Path(__file__).resolve().parent.parent
AUTOENCODER = ROOT / "configs" / "tied_autoencoder.toml"
# A few steps of two strategies keep each point to seconds.
QUICK = ["--set", "train.steps=4", "--strategies", "explicit,explicit-shared,tied"]


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def column(path: Path, name: str) -> set[str]:
    with path.open(newline="") as f:
        return {row[name] for row in csv.DictReader(f)}


def test_point_configs_are_the_file_with_the_overrides_applied() -> None:
    file = parse_config(AUTOENCODER)
    grid = plan(file, ["train.optimizers[1].learning_rate=0.05,0.2", "dtype=float32"], "3:5")
    assert len(grid) == 4 and [p.seed for p in grid] == [3, 4, 3, 4]
    point = point_file(file, grid[1])
    written = tomllib.loads(point.text)
    assert written["seed"] == point.seed == 4 and point.dtype == "float32"
    assert written["train"]["optimizers"][1] == {"name": "sgd", "learning_rate": 0.05}
    assert tomllib.loads(toml_text(file.raw)) == file.raw


def test_sweep_table_and_shards_partition_the_grid() -> None:
    file = parse_config_text('experiment = "aliasing"\n[sweep]\nseed = [0, 1, 2]\n'
                             'tolerances.rtol = [1e-6, 1e-7]\n', name="s.toml")
    full = [p.name for p in plan(file)]
    assert len(full) == 6
    parts = [[p.name for p in plan(file, shard=(i, 3))] for i in (1, 2, 3)]
    assert sorted(name for part in parts for name in part) == sorted(full)
    assert all(len(p) == 2 for p in parts)


@pytest.mark.parametrize(("args", "fragments"), [
    (["--set", "train.steps=zero"], ["train.steps", "expected an integer", "zero"]),
    (["--set", "train.stepz=3"], ["train.stepz", "unknown key"]),
    (["--set", "hyperparameters.width=3"], ["hyperparameters.width", "valid: n, h"]),
    (["--seeds", "4:2"], ["--seeds", "START:STOP"]),
    (["--seeds", "0:2", "--shard", "3/2"], ["--shard", "1 <= i <= n"]),
])
def test_bad_overrides_exit_2_naming_the_key_and_write_nothing(tmp_path, capsys, args,
                                                               fragments) -> None:
    out = tmp_path / "out"
    assert main(["run", str(AUTOENCODER), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert all(f in err for f in fragments), err
    assert not out.exists() or not visible(out)


def test_seed_sweep_writes_points_tidy_tables_and_an_aggregate(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["run", str(AUTOENCODER), "--seeds", "0:2", "--out", str(out), "--quiet",
                 *QUICK])
    assert code == 0, capsys.readouterr().err
    (sweep,) = visible(out)
    assert sorted(p.name for p in (sweep / "runs").iterdir()) == [
        "tied_autoencoder-seed0", "tied_autoencoder-seed1"]
    assert column(sweep / "curves.csv", "seed") == {"0", "1"}
    for run in (sweep / "runs").iterdir():
        summary = json.loads((run / "summary.json").read_text())
        assert tomllib.loads((run / "config.toml").read_text())["seed"] == summary["seed"]
        assert set(summary["cases"]["aliases"]["training"]["adam(learning_rate=0.01)"]) == {
            "explicit", "explicit-shared", "tied"}
    report = (sweep / "aggregate.md").read_text()
    assert "95% confidence interval" in report and "| `tied` | 2 |" in report
    assert capsys.readouterr().out.strip().endswith(str(sweep / "aggregate.md"))


@pytest.mark.slow
def test_parallel_sweep_equals_its_shards_aggregated(tmp_path, capsys) -> None:
    whole, parts, merged = tmp_path / "whole", tmp_path / "parts", tmp_path / "merged"
    args = [str(AUTOENCODER), "--seeds", "0:4", "--quiet", *QUICK]
    assert main(["run", *args, "-j", "2", "--out", str(whole)]) == 0
    for shard in ("1/2", "2/2"):
        assert main(["run", *args, "--shard", shard, "--out", str(parts)]) == 0
    assert main(["aggregate", *map(str, visible(parts)), "--out", str(merged)]) == 0
    (sweep,), (aggregate,) = visible(whole), visible(merged)
    assert column(sweep / "curves.csv", "seed") == {"0", "1", "2", "3"}
    for name in ("aggregate.csv", "aggregate.md", "curves.csv", "results.csv"):
        assert (sweep / name).read_bytes() == (aggregate / name).read_bytes(), name
