"""The runner end to end: the aliasing cases' table and the tied-autoencoder training."""

from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.runner.preflight import load_config
from toolkit.runner.run import run_config

ROOT = Path(__file__).resolve().parent.parent


def test_seed_run_passes_every_recorded_zygote_value():
    out = run_config(load_config(ROOT / "configs" / "seed.toml"))
    names = {c.name for c in out.checks}
    # Every aliasing case has its Zygote column recorded and checked.
    for case in ("case1", "case2", "case3", "case4", "case5", "case6", "struct", "adjoint"):
        assert any(n.startswith(f"{case}/implicit-identity/") for n in names), case
    assert out.ok, [c for c in out.checks if not c.passed]
    case6 = out.summary["cases"]["case6"]["strategies"]["implicit-identity"]
    assert case6["grads"]["xt"] == {"parent": [1.0]}
    assert case6["verdicts"]["per-param"]["x"] == {
        "kind": "missing", "via": ["x"], "text": "missing contribution (via x)"
    }


@pytest.mark.slow
def test_tied_autoencoder_training_comparison():
    out = run_config(load_config(ROOT / "configs" / "tied_autoencoder.toml"))
    both = out.summary["cases"]["aliases"]
    adam = both["training"]["adam(learning_rate=0.01)"]
    sgd = both["training"]["sgd(learning_rate=0.1)"]
    assert sgd["implicit-identity"]["verdict"]["kind"] == "exact"
    assert adam["implicit-identity"]["verdict"]["kind"] == "wrong-trajectory"
    assert adam["implicit-storage"]["verdict"]["kind"] == "exact"
    assert adam["explicit"]["verdict"]["kind"] == "ties-drift"
    for strategy in ("explicit-merged", "tied", "implicit-storage"):
        assert adam[strategy]["verdict"]["kind"] == "exact"
        assert adam[strategy]["max_distance_to_shared"] <= 1e-6
    dedup = out.summary["cases"]["dedup"]["strategies"]["implicit-identity"]["verdicts"]
    assert dedup["per-param"]["enc.weight"]["kind"] == "missing"
    assert dedup["per-param"]["enc.weight"]["via"] == ["dec.weight"]


def test_list_names_configs_experiments_and_strategies(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("seed.toml", "aliasing", "explicit-shared", "tied"):
        assert word in out
