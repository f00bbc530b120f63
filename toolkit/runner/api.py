"""The runner from Python (a notebook): load a config, override it, run it, get records.

Nothing here writes a run folder. Overrides go through the same parser and preflight as the
command line's ``--set``, so a bad value raises the same :class:`~toolkit.errors.ConfigError`
naming the key.

Example:
    >>> from toolkit.runner import api
    >>> cfg = api.load("tied_autoencoder")                      # a shipped config, or a path
    >>> cfg = api.override(cfg, {"train.steps": 3, "cases": ["aliases"]})
    >>> result = api.run(cfg, strategies=["explicit", "tied"])
    >>> result.cases["aliases"].training["adam(learning_rate=0.01)"]["tied"].verdict.kind
    'exact'
    >>> curves = api.tables(result)["curves"]                   # tidy rows, one per value
    >>> sorted({row["metric"] for row in curves})
    ['distance_to_baseline', 'loss', 'tie_drift']
    >>> runs = api.sweep(cfg, seeds=range(2), strategies=["explicit"])
    >>> sorted(r.seed for r in runs)
    [0, 1]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.runner.config import ConfigFile, parse_config
from toolkit.runner.preflight import Config, preflight
from toolkit.runner.results import RunResult
from toolkit.runner.sweep import Point, plan, point_file, reparse, set_key


def load(config: str | Path) -> ConfigFile:
    """Parses a config file, or a shipped config by name (``"seed"``, ``"tied_autoencoder"``).

    Raises:
        ConfigError: the file is missing or fails parsing; the message names the key.
    """
    path = Path(config)
    if not path.suffix and not path.exists():
        path = Path(str(resources.files("toolkit.configs") / f"{config}.toml"))
    return parse_config(path)


def override(config: ConfigFile, settings: Mapping[str, Any]) -> ConfigFile:
    """``config`` with keys set (``{"seed": 3, "train.optimizers[0].learning_rate": 0.1}``),
    parsed again exactly as a file would be."""
    raw = copy.deepcopy(config.raw)
    for key, value in settings.items():
        set_key(raw, key, value, f"{config.name}: override")
    return reparse(config, raw, settings)


def check(config: ConfigFile) -> Config:
    """The preflight: the experiment imported, names resolved, each loss evaluated once."""
    return preflight(config)


def run(config: ConfigFile, strategies: Sequence[str] | None = None) -> RunResult:
    """Runs ``config`` in this process and returns its records (no folder is written)."""
    from toolkit.runner.run import run_config

    return run_config(check(config), strategies=tuple(strategies) if strategies else None).result


def points(config: ConfigFile, sweep: Mapping[str, Iterable[Any]] | None = None,
           seeds: Iterable[int] | None = None) -> list[Point]:
    """The grid of ``config``'s ``[sweep]`` table, ``sweep`` axes and ``seeds``."""
    sets = [f"{k}={','.join(_toml(v) for v in values)}" for k, values in (sweep or {}).items()]
    seed_text = ",".join(str(s) for s in seeds) if seeds is not None else None
    return plan(config, sets, seed_text)


def sweep(config: ConfigFile, sweep: Mapping[str, Iterable[Any]] | None = None,
          seeds: Iterable[int] | None = None,
          strategies: Sequence[str] | None = None) -> list[RunResult]:
    """Runs every point of the grid in this process; one :class:`RunResult` per point."""
    grid = [point_file(config, p) for p in points(config, sweep, seeds)]
    checked = [check(file) for file in grid]  # every point validated before any runs
    from toolkit.runner.run import run_config

    chosen = tuple(strategies) if strategies else None
    return [run_config(c, strategies=chosen).result for c in checked]


def tables(result: RunResult, settings: Mapping[str, Any] | None = None
           ) -> dict[str, list[dict[str, str]]]:
    """The run's tidy tables as rows (what ``curves.csv`` and ``results.csv`` hold), e.g. for
    ``pandas.DataFrame(tables(result)["curves"])``."""
    from toolkit.runner.tables import curve_rows, result_rows

    return {"curves": curve_rows(result, settings or {}),
            "results": result_rows(result, settings or {})}


def _toml(value: Any) -> str:
    from toolkit.runner.sweep import toml_value

    return toml_value(value)
