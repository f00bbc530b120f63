"""Tiny real runs for the tables, statistics and aggregate tests, each computed once.

The tied autoencoder's ``dedup`` case, 3 Adam steps: a few seconds per seed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from toolkit.runner.preflight import load_config_text
from toolkit.runner.results import RunResult
from toolkit.runner.run import run_config
from toolkit.runner.tables import write_tables

CONFIG = """experiment = "tied_autoencoder"
cases = ["dedup"]
seed = {seed}
[train]
steps = 3
optimizers = [{{ name = "adam", learning_rate = {learning_rate} }}]
"""


@functools.cache
def tiny_run(seed: int = 0, learning_rate: float = 0.01) -> RunResult:
    """The records of one tiny run."""
    text = CONFIG.format(seed=seed, learning_rate=learning_rate)
    return run_config(load_config_text(text, name="tiny.toml")).result


def write_folder(folder: Path, run: RunResult, settings: dict | None = None) -> Path:
    """A minimal run folder: ``summary.json`` and the tidy tables."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(run.to_json(), indent=2))
    write_tables(run, folder, settings or {})
    return folder
