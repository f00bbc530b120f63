"""A run's curves and results as tidy CSV tables, readable without this package.

Two tables, one value per row, written by :func:`write_tables`:

- ``curves.csv``: the per-step training curves. Columns :data:`ID_COLUMNS`, one ``set.<key>``
  column per overridden setting (sorted), then ``step`` (from 1), ``metric`` (``loss``,
  ``tie_drift``, ``distance_to_baseline``) and ``value``.
- ``results.csv``: per-storage verdicts and per-run numbers. The same id and setting columns,
  then ``storage``, ``metric`` and ``value`` (see :func:`result_rows` for the metrics).

Both read with ``pandas.read_csv`` or :class:`csv.DictReader`. Floats are rounded to 12
significant digits (:func:`~toolkit.runner.results.rounded`), so that the last-digit
differences of another machine's floating point leave the files' bytes unchanged. The seed
has its own column; a sweep's other overridden keys (``settings``) are the ``set.``
columns, so grouping by every column but ``run``, ``seed``, ``step`` and ``value`` gives
the groups statistics run across seeds.

Example:
    >>> format_value(0.1 + 0.2), format_value(-0.0), format_value(None), format_value(True)
    ('0.3', '0.0', '', 'true')
    >>> ",".join(curve_columns({"train.steps": 5}))
    'run,config,case,strategy,optimizer,seed,set.train.steps,step,metric,value'
"""

from __future__ import annotations

import csv
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.runner.results import RunResult, rounded

ID_COLUMNS = ("run", "config", "case", "strategy", "optimizer", "seed")
SETTING_PREFIX = "set."
CURVE_TAIL = ("step", "metric", "value")
RESULT_TAIL = ("storage", "metric", "value")
CURVES_FILE = "curves.csv"
RESULTS_FILE = "results.csv"
# Curve metric → the TrainingHistory attribute it is read from.
CURVE_METRICS = {"loss": "loss", "tie_drift": "drift", "distance_to_baseline": "distance"}

Row = dict[str, str]


def format_value(value: Any) -> str:
    """One CSV cell: floats rounded to 12 significant digits, shortest form.

    None is an empty cell (pandas reads NaN), booleans are ``true``/``false`` as in TOML,
    and lists or tables are JSON.

    Example:
        >>> format_value(1 / 3), format_value(2.0**-60), format_value(7), format_value("adam")
        ('0.333333333333', '8.67361737988e-19', '7', 'adam')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return repr(number)
        return repr(rounded(number))
    if isinstance(value, str):
        return value
    return json.dumps(rounded(value), sort_keys=True)


def setting_columns(settings: Mapping[str, Any]) -> list[str]:
    """The ``set.<key>`` columns of ``settings``, sorted (a ``seed`` key has its own column).

    Example:
        >>> setting_columns({"seed": 3, "dtype": "float32", "hyperparameters.h": 4})
        ['set.dtype', 'set.hyperparameters.h']
    """
    return [SETTING_PREFIX + key for key in sorted(settings) if key != "seed"]


def curve_columns(settings: Mapping[str, Any]) -> list[str]:
    """The header of ``curves.csv`` for a run with these settings."""
    return [*ID_COLUMNS, *setting_columns(settings), *CURVE_TAIL]


def result_columns(settings: Mapping[str, Any]) -> list[str]:
    """The header of ``results.csv`` for a run with these settings."""
    return [*ID_COLUMNS, *setting_columns(settings), *RESULT_TAIL]


def _ids(run: RunResult, settings: Mapping[str, Any], case: str, strategy: str,
         optimizer: str) -> Row:
    row = {"run": Path(run.config).stem, "config": run.config, "case": case,
           "strategy": strategy, "optimizer": optimizer, "seed": str(run.seed)}
    row.update({SETTING_PREFIX + k: format_value(settings[k])
                for k in sorted(settings) if k != "seed"})
    return row


def curve_rows(run: RunResult, settings: Mapping[str, Any]) -> list[Row]:
    """``curves.csv``'s rows: case, optimizer, strategy, metric, then step, in run order.

    Example:
        >>> from toolkit.runner.results import (CaseResult, RunResult, TrainingHistory,
        ...                                     TrainingResult, TrainingVerdict)
        >>> trained = TrainingResult(TrainingHistory([1.0, 0.5], [0.0, 0.0], [0.0, 0.0]),
        ...                          TrainingVerdict("exact", 0.0, 0.0))
        >>> case = CaseResult("c", (), {}, 1.0, {}, {}, {"adam": {"explicit": trained}})
        >>> run = RunResult("t", "t.toml", "e", {}, "float64", 0, 0, 0, (), {"c": case}, ())
        >>> [(r["step"], r["metric"], r["value"]) for r in curve_rows(run, {})][:3]
        [('1', 'loss', '1.0'), ('2', 'loss', '0.5'), ('1', 'tie_drift', '0.0')]
    """
    rows = []
    for case_name, case in run.cases.items():
        for optimizer, per_strategy in case.training.items():
            for strategy, trained in per_strategy.items():
                ids = _ids(run, settings, case_name, strategy, optimizer)
                for metric, attr in CURVE_METRICS.items():
                    rows += [{**ids, "step": str(step), "metric": metric,
                              "value": format_value(value)}
                             for step, value in enumerate(getattr(trained.history, attr), 1)]
    return rows


def _gradient_rows(run: RunResult, settings: Mapping[str, Any], case_name: str) -> list[Row]:
    case = run.cases[case_name]
    rows = [{**_ids(run, settings, case_name, "", ""), "storage": "", "metric": "loss_value",
             "value": format_value(case.loss_value)}]
    for strategy, result in case.strategies.items():
        ids = _ids(run, settings, case_name, strategy, "")
        rows.append({**ids, "storage": "", "metric": "loss_value",
                     "value": format_value(result.value)})
        for rule, per_storage in result.verdicts.items():
            rows += [{**ids, "storage": storage, "metric": f"verdict.{rule}",
                      "value": verdict.kind} for storage, verdict in per_storage.items()]
        rows += [{**ids, "storage": path, "metric": "raw_max_abs_error",
                  "value": format_value(error)}
                 for path, error in result.raw_max_abs_error.items()]
        if result.semantics:
            rows.append({**ids, "storage": "", "metric": "semantics", "value": result.semantics})
    return rows


def _training_rows(run: RunResult, settings: Mapping[str, Any], case_name: str) -> list[Row]:
    rows = []
    for optimizer, per_strategy in run.cases[case_name].training.items():
        for strategy, trained in per_strategy.items():
            ids = {**_ids(run, settings, case_name, strategy, optimizer), "storage": ""}
            verdict = trained.verdict
            values: dict[str, Any] = {
                "final_loss": trained.final_loss, "max_tie_drift": verdict.max_tie_drift,
                "max_distance_to_baseline": verdict.max_distance,
                "training_verdict": verdict.kind,
            }
            if verdict.diverged_at is not None:
                values["diverged_at"] = verdict.diverged_at
            values.update(trained.metrics)
            rows += [{**ids, "metric": m, "value": format_value(v)} for m, v in values.items()]
    return rows


def result_rows(run: RunResult, settings: Mapping[str, Any]) -> list[Row]:
    """``results.csv``'s rows, per case in run order: gradients, then training.

    Metrics (``storage`` and ``optimizer`` are empty where they do not apply):

    - ``loss_value``: the loss a strategy computed; with an empty ``strategy``, the case's
      float64 loss at the initial values.
    - ``verdict.per-param``, ``verdict.per-storage``: per storage, the verdict's kind.
    - ``raw_max_abs_error``: per path (in the ``storage`` column), the gradient's max abs
      error against the truth; empty where it cannot be measured.
    - per optimizer and strategy: ``final_loss``, ``max_tie_drift``,
      ``max_distance_to_baseline``, ``training_verdict`` (kind), the experiment's
      ``validation_loss`` and ``validation_perplexity`` when it has them and, for a diverged
      run, ``diverged_at`` (step);
    - per strategy, where one array fills several argument slots: ``semantics`` (``slot``,
      ``storage``, ``either``, ``neither``).

    Example:
        >>> from toolkit.runner.results import (CaseResult, RunResult, TrainingHistory,
        ...                                     TrainingResult, TrainingVerdict)
        >>> trained = TrainingResult(TrainingHistory([1.0, 0.5], [0.0, 0.0], [0.0, 0.0]),
        ...                          TrainingVerdict("exact", 0.0, 0.0))
        >>> case = CaseResult("c", (), {}, 1.0, {}, {}, {"adam": {"explicit": trained}})
        >>> run = RunResult("t", "t.toml", "e", {}, "float64", 0, 0, 0, (), {"c": case}, ())
        >>> [(r["metric"], r["value"]) for r in result_rows(run, {})][:3]
        [('loss_value', '1.0'), ('final_loss', '0.5'), ('max_tie_drift', '0.0')]
    """
    rows = []
    for case_name in run.cases:
        rows += _gradient_rows(run, settings, case_name)
        rows += _training_rows(run, settings, case_name)
    return rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    """Writes ``rows`` under ``columns`` with ``\\n`` line ends (missing cells are empty).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "t.csv"
        >>> write_csv(p, ["a", "b"], [{"a": "1"}])
        >>> p.read_text()
        'a,b\\n1,\\n'
    """
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="",
                                lineterminator="\n", extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    """A table's header and rows, as written by :func:`write_csv`.

    Raises:
        ValueError: the file does not exist or has no header.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such table; a run folder written before the tidy "
                         "tables lacks it (run its config again)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty table, expected a header line")
        return list(reader.fieldnames), rows


def write_tables(run: RunResult, folder: Path, settings: Mapping[str, Any]) -> list[str]:
    """Writes ``curves.csv`` and ``results.csv`` for ``run`` into ``folder``.

    Args:
        run: the run's records.
        folder: an existing folder (a run folder being staged).
        settings: the config keys a sweep overrode for this run (``{}`` for a plain run),
            e.g. ``{"train.optimizers[0].learning_rate": 0.01}``; written as ``set.<key>``
            columns. A ``seed`` key is left out: the seed has its own column.

    Returns:
        The file names written.

    Example:
        >>> import tempfile
        >>> from toolkit.runner.results import (CaseResult, RunResult, TrainingHistory,
        ...                                     TrainingResult, TrainingVerdict)
        >>> trained = TrainingResult(TrainingHistory([1.0, 0.5], [0.0, 0.0], [0.0, 0.0]),
        ...                          TrainingVerdict("exact", 0.0, 0.0))
        >>> case = CaseResult("c", (), {}, 1.0, {}, {}, {"adam": {"explicit": trained}})
        >>> run = RunResult("t", "t.toml", "e", {}, "float64", 0, 0, 0, (), {"c": case}, ())
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_tables(run, folder, {"train.steps": 1})
        ['curves.csv', 'results.csv']
        >>> (folder / "curves.csv").read_text().splitlines()[1]
        't,t.toml,c,explicit,adam,0,1,1,loss,1.0'
    """
    folder = Path(folder)
    write_csv(folder / CURVES_FILE, curve_columns(settings), curve_rows(run, settings))
    write_csv(folder / RESULTS_FILE, result_columns(settings), result_rows(run, settings))
    return [CURVES_FILE, RESULTS_FILE]

