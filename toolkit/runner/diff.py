"""What changed between two run folders, or two aggregate folders, as Markdown lines.

Both sides are flattened into :class:`Flat` entries keyed by a path such as
``aliases/explicit/enc.weight/per-storage``: the settings a run used, labels (verdicts, check
outcomes, verdict counts across seeds) and numbers (losses, errors, distances; means and
interval ends across seeds). :func:`compare_runs` lists the settings and labels that differ,
the numbers that differ beyond a tolerance, and what only one side has.

A run folder is read from its ``summary.json`` (the typed records); an aggregate folder from
its ``aggregate.csv`` (:mod:`toolkit.runner.aggregate`).

Example:
    >>> a = Flat(labels={"c/s/x/per-storage": "exact"}, numbers={"c/loss_value": 1.0})
    >>> b = Flat(labels={"c/s/x/per-storage": "missing contribution (via xt)"},
    ...          numbers={"c/loss_value": 1.0 + 1e-12})
    >>> changes(a, b)[0]
    ['- `c/s/x/per-storage`: exact → missing contribution (via xt)']
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.runner.aggregate import AGGREGATE_CSV, STATISTIC_TAIL
from toolkit.runner.results import RunResult
from toolkit.runner.tables import SETTING_PREFIX, read_csv

# Numbers closer than this, relative to the larger, are the same number.
RTOL = 1e-6
# ... and so are numbers closer than this: float noise on a zero (an exact trajectory's
# distance to the baseline is 0 on one machine and 1e-16 on another).
ATOL = 1e-12
SUMMARY = "summary.json"


@dataclass
class Flat:
    """One side of a comparison, flattened.

    Attributes:
        items: the entries (cases, strategies, groups) by key, to list what one side lacks.
        settings: what a run was asked to do (seed, dtype, hyperparameters, tolerances).
        labels: verdicts and check outcomes (runs), verdict frequencies (aggregates).
        numbers: every number, None where there is none.
    """

    items: set[str] = field(default_factory=set)
    settings: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, float | None] = field(default_factory=dict)


def run_flat(run: RunResult) -> Flat:
    """A run's records, flattened (keys ``case/strategy/storage/rule`` and so on)."""
    flat = Flat(settings={"seed": str(run.seed), "dtype": run.dtype, "rtol": repr(run.rtol),
                          "atol": repr(run.atol), "strategies": ", ".join(run.strategies),
                          "hyperparameters": json.dumps(run.hyperparameters, sort_keys=True)})
    for name, case in run.cases.items():
        flat.items.add(name)
        flat.numbers[f"{name}/loss_value"] = case.loss_value
        for strategy, result in case.strategies.items():
            key = f"{name}/{strategy}"
            flat.items.add(key)
            flat.numbers[f"{key}/loss_value"] = result.value
            for rule, per_storage in result.verdicts.items():
                flat.labels.update({f"{key}/{storage}/{rule}": verdict.describe()
                                    for storage, verdict in per_storage.items()})
            if result.semantics:
                flat.labels[f"{key}/semantics"] = result.semantics
            flat.numbers.update({f"{key}/{path}/raw_max_abs_error": error
                                 for path, error in result.raw_max_abs_error.items()})
        for optimizer, per_strategy in case.training.items():
            for strategy, trained in per_strategy.items():
                key = f"{name}/training/{optimizer}/{strategy}"
                flat.items.add(key)
                flat.labels[f"{key}/verdict"] = trained.verdict.kind
                flat.numbers.update({
                    f"{key}/final_loss": trained.final_loss,
                    f"{key}/max_tie_drift": trained.verdict.max_tie_drift,
                    f"{key}/max_distance_to_baseline": trained.verdict.max_distance,
                    **{f"{key}/{m}": v for m, v in trained.metrics.items()}})
                if trained.verdict.diverged_at is not None:
                    flat.labels[f"{key}/diverged_at"] = str(trained.verdict.diverged_at)
    flat.labels.update({f"check {c.name}": "passed" if c.passed else "failed"
                        for c in run.checks})
    return flat


def _frequencies_text(frequencies: Mapping[str, float]) -> str:
    ranked = sorted(frequencies.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{kind} {100 * f:.3g} %" for kind, f in ranked)


def aggregate_flat(rows: list[dict[str, str]]) -> Flat:
    """An ``aggregate.csv``'s rows, flattened: per group and metric, the verdict frequencies
    (as percentages, so that 2/2 and 4/4 are the same), the mean and interval ends; the
    seed counts are one setting.

    Example:
        >>> row = {"case": "c", "metric": "training_verdict", "statistic": "frequency.exact"}
        >>> aggregate_flat([{**row, "value": "0.75"}]).labels
        {'c/training_verdict': 'exact 75 %'}
    """
    flat = Flat()
    frequencies: dict[str, dict[str, float]] = {}
    seeds: set[int] = set()
    for row in rows:
        parts = [f"{c[len(SETTING_PREFIX):]}={v}" if c.startswith(SETTING_PREFIX) else v
                 for c, v in row.items() if c not in STATISTIC_TAIL and v]
        group = "/".join(parts)
        key, statistic = f"{group}/{row['metric']}", row["statistic"]
        flat.items.add(group)
        if statistic == "n":
            seeds.add(int(row["value"]))
        elif statistic.startswith("frequency."):
            kind = statistic.removeprefix("frequency.")
            frequencies.setdefault(key, {})[kind] = float(row["value"])
        else:
            flat.numbers[f"{key} {statistic}"] = float(row["value"]) if row["value"] else None
    flat.labels = {key: _frequencies_text(f) for key, f in frequencies.items()}
    flat.settings["seeds per group"] = ", ".join(str(n) for n in sorted(seeds))
    return flat


def _differs(a: float | None, b: float | None, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a != b
    return abs(a - b) > max(atol, rtol * max(abs(a), abs(b)))


def _number_text(a: float | None, b: float | None) -> str:
    text = f"{'—' if a is None else f'{a:.6g}'} → {'—' if b is None else f'{b:.6g}'}"
    if a and b is not None and math.isfinite(a) and math.isfinite(b):
        text += f" ({(b - a) / abs(a):+.3g} relative)"
    return text


def _only(a: Flat, b: Flat) -> list[str]:
    """Entries one side lacks: items, then labels and numbers not under such an item."""
    lines, gone = [], []
    for key in sorted(a.items ^ b.items):
        if not any(key.startswith(g + "/") for g in gone):
            lines.append(f"- `{key}`: only in {'A' if key in a.items else 'B'}")
            gone.append(key)
    keys = (set(a.labels) ^ set(b.labels)) | (set(a.numbers) ^ set(b.numbers))
    for key in sorted(keys):
        if not any(key.startswith(g + "/") or key.startswith(g + " ") for g in gone):
            side = "A" if key in a.labels or key in a.numbers else "B"
            lines.append(f"- `{key}`: only in {side}")
    return lines


def changes(a: Flat, b: Flat, rtol: float = RTOL, atol: float = ATOL) -> list[list[str]]:
    """Lines per kind of change: labels, settings, numbers, one side only.

    Example:
        >>> changes(Flat(numbers={"x": 1.0}), Flat(numbers={"x": 2.0}))[2]
        ['- `x`: 1 → 2 (+1 relative)']
    """
    def differing(x: Mapping[str, str], y: Mapping[str, str]) -> list[str]:
        return [f"- `{k}`: {x[k]} → {y[k]}" for k in sorted(set(x) & set(y)) if x[k] != y[k]]

    numbers = [f"- `{k}`: {_number_text(a.numbers[k], b.numbers[k])}"
               for k in sorted(set(a.numbers) & set(b.numbers))
               if _differs(a.numbers[k], b.numbers[k], rtol, atol)]
    return [differing(a.labels, b.labels), differing(a.settings, b.settings), numbers,
            _only(a, b)]


def _load(folder: Path) -> tuple[str, Flat]:
    """The folder's kind (``run`` or ``aggregate``) and its flattened content."""
    folder = Path(folder)
    if (folder / SUMMARY).is_file():
        try:
            data = json.loads((folder / SUMMARY).read_text())
            return "run", run_flat(RunResult.from_json(data))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{folder / SUMMARY}: not a readable run summary: {error}") from None
    if (folder / AGGREGATE_CSV).is_file():
        return "aggregate", aggregate_flat(read_csv(folder / AGGREGATE_CSV)[1])
    raise ValueError(f"{folder}: neither a run folder (it has no {SUMMARY}) nor an aggregate "
                     f"folder (it has no {AGGREGATE_CSV})")


def compare_runs(a: Path, b: Path, *, rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """What changed from ``a`` to ``b``, two run folders or two aggregate folders.

    Args:
        a, b: the folders (``a`` is "before").
        rtol, atol: numbers closer than ``max(atol, rtol * max(|x|, |y|))`` are unchanged.

    Returns:
        Markdown lines: a heading, then sections for changed verdicts, settings and numbers
        and for entries only one side has; or a line saying there are no differences.

    Raises:
        ValueError: a folder is neither kind (naming it), or the two are of different kinds.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> compare_runs(folder, folder)
        Traceback (most recent call last):
        ...
        ValueError: /...: neither a run folder (it has no summary.json) nor an aggregate ...
    """
    kind_a, flat_a = _load(a)
    kind_b, flat_b = _load(b)
    if kind_a != kind_b:
        raise ValueError(f"cannot compare a {kind_a} folder ({a}) with a {kind_b} folder ({b})")
    found = changes(flat_a, flat_b, rtol, atol)
    titles = ["Verdicts" if kind_a == "run" else "Verdict frequencies across seeds", "Settings",
              f"Numbers (beyond relative tolerance {rtol:g}, absolute {atol:g})",
              "Only in one side"]
    lines = [f"# Changes from A (`{a}`) to B (`{b}`)", ""]
    for title, section in zip(titles, found, strict=True):
        if section:
            lines += [f"## {title}", "", *section, ""]
    if not any(found):
        lines.append(f"no differences ({kind_a} folders; numbers within relative tolerance "
                     f"{rtol:g}, absolute {atol:g})")
    return lines
