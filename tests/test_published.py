"""The committed reference results agree with a fresh run, and the index renders them."""

import json
from pathlib import Path

import numpy as np

from toolkit.runner.preflight import load_config
from toolkit.runner.publish import key_table, render_index, short_verdict
from toolkit.runner.results import CaseResult, RunResult, StrategyResult, Verdict
from toolkit.runner.run import run_config

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "reference" / "seed" / "summary.json"


def rounded(obj):
    """Floats to 9 significant digits: a fresh run on another BLAS may differ in the last ulp."""
    if isinstance(obj, float):
        return float(np.format_float_positional(obj, precision=9, unique=False, fractional=False))
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v) for v in obj]
    return obj


def gradient_view(summary):
    """What the seed config's table shows: per case and strategy, raw gradients, globals,
    verdicts."""
    return {
        name: {
            s: {k: row[k] for k in ("grads", "globals", "verdicts")}
            for s, row in case["strategies"].items()
        }
        for name, case in summary["cases"].items()
    }


def test_committed_seed_table_matches_a_fresh_run():
    committed = json.loads(COMMITTED.read_text())
    fresh = run_config(load_config(ROOT / "configs" / "seed.toml")).summary
    assert rounded(gradient_view(fresh)) == rounded(gradient_view(committed))
    assert committed["ok"] and fresh["ok"]


def test_index_lists_every_committed_config():
    import tomllib

    index = (ROOT / "results" / "README.md").read_text()
    for config in sorted((ROOT / "configs").glob("*.toml")):
        folder = ROOT / "results" / "reference" / config.stem
        if "sweep" in tomllib.loads(config.read_text()):  # a sweep: its aggregate report
            assert f"reference/{config.stem}/aggregate.md" in index, config.name
            assert (folder / "aggregate.csv").is_file() and list(folder.glob("runs/*/summary.json"))
        else:
            assert f"reference/{config.stem}/report.md" in index, config.name
            assert (folder / "summary.json").is_file()


def test_key_table_marks_only_non_exact_cells():
    row = StrategyResult(1.0, {}, {}, {}, {
        "per-param": {"w": Verdict("exact")},
        "per-storage": {"w": Verdict("missing", via=("wt",))},
    })
    case = CaseResult("", ("w",), {"w": ("w", "wt")}, 1.0, {}, {"a": row})
    run = RunResult("X", "configs/x.toml", "e", {}, "float64", 0, 1e-6, 1e-9, ("a",),
                    {"c": case}, ())
    (_, _, line) = key_table([run], ["a"])
    assert line == "| x / c | exact / missing (via wt) |"
    assert "exact" in render_index([("x", run, [])])
    assert short_verdict(Verdict("no-step")) == "—"
    three = Verdict("double-counted", via=("a", "b", "c"))
    assert short_verdict(three) == "double (via a, … 3 aliases)"


SMALL = ('title = "small"\nexperiment = "tied_autoencoder"\n'
         'strategies = ["implicit-identity", "explicit-shared"]\n'
         '[train]\nsteps = 5\nstrategies = ["explicit", "tied"]\n'
         'optimizers = [{ name = "adam", learning_rate = 0.01 }]\n')


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publishing_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    from toolkit.runner.preflight import load_config_text
    from toolkit.runner.publish import publish_run, write_index

    roots = []
    for i in range(2):
        root = tmp_path / f"pub{i}"
        output = run_config(load_config_text(SMALL, name="configs/small.toml"))
        entry = publish_run(output, root)
        write_index(root, [(entry[0], output.result, entry[1])])
        roots.append(root)
    first, second = (tree(r) for r in roots)
    assert {"README.md", "reference/small/grads.npz", "reference/small/report.md"} <= set(first)
    assert not [name for name in first if "timing" in name]
    assert "Timing" not in first["reference/small/report.md"].decode()
    assert first == second


def test_publish_command_twice_gives_the_same_tree(tmp_path, monkeypatch):
    # The command end to end on the two quickest shipped configs, plots and index included.
    from toolkit.cli import main

    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("seed.toml", "struct_param.toml"):
        (configs / name).write_bytes((ROOT / "configs" / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        assert main(["publish", "--out", str(root), "--quiet"]) == 0
    first = tree(roots[0])
    assert {"README.md", "reference/seed/summary.json", "reference/struct_param/report.md"} <= set(
        first
    )
    assert first == tree(roots[1])
