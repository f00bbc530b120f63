"""Many run folders (a sweep's points, or its shards) merged into one aggregate folder.

:func:`aggregate` reads each run folder's tidy tables (:mod:`toolkit.runner.tables`) and writes:

- ``curves.csv``, ``results.csv``: every run's rows, one header (the union of the ``set.``
  columns; a run without a setting has it empty).
- ``aggregate.csv``: per group (every column but ``run``, ``seed``, ``metric``, ``value``),
  metric and statistic, one value: columns ``config, case, strategy, optimizer, set.<key>…,
  storage, metric, statistic, value``; statistics ``n``, ``mean``, ``ci_low``, ``ci_high``
  (:data:`~toolkit.runner.stats.NUMERIC_METRICS`) or ``frequency.<kind>``
  (:data:`~toolkit.runner.stats.VERDICT_METRICS`).
- ``aggregate.md``: tables of mean [95 % CI] and verdict counts, and one PNG per (case,
  optimizer, settings) of the mean curves with their bands.

Runs are ordered by their content (settings, seed, config), not by folder name or by the
order given: the same runs give the same bytes however they were split into shards.

Example:
    >>> interval_text(Interval(0.5, 0.25, 0.75, 4)), interval_text(Interval(0.0, 0.0, 0.0, 4))
    ('0.5 [0.25, 0.75]', '0')
    >>> interval_text(Interval(float("inf"), float("nan"), float("nan"), 4))
    'inf (not finite in a seed)'
    >>> counts_text({"exact": 3, "missing": 1}, 4)
    'exact 3/4, missing 1/4'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from toolkit.runner.plots import FLOOR, PNG_METADATA, style
from toolkit.runner.stats import (
    CONFIDENCE,
    NOT_GROUPED,
    RESAMPLES,
    Band,
    Interval,
    Summary,
    summarize,
    summarize_curves,
)
from toolkit.runner.tables import (
    CURVE_TAIL,
    CURVES_FILE,
    ID_COLUMNS,
    RESULT_TAIL,
    RESULTS_FILE,
    SETTING_PREFIX,
    Row,
    format_value,
    read_csv,
    write_csv,
)

AGGREGATE_CSV = "aggregate.csv"
AGGREGATE_MD = "aggregate.md"
STATISTIC_TAIL = ("metric", "statistic", "value")
# The merged tables and the columns after their id and setting columns.
TAILS = {CURVES_FILE: CURVE_TAIL, RESULTS_FILE: RESULT_TAIL}
# Report columns of a training table: metric → heading.
TRAINING_COLUMNS = {"final_loss": "final loss",
                    "validation_loss": "validation loss",
                    "validation_perplexity": "validation perplexity",
                    "max_distance_to_baseline": "distance to baseline",
                    "max_tie_drift": "tie drift", "training_verdict": "training verdict"}
GRADIENT_COLUMNS = {"verdict.per-param": "per-param step",
                    "verdict.per-storage": "per-storage step",
                    "semantics": "slot or storage semantics"}
# Curve panels: metric, title, y scale.
PANELS = (("loss", "loss", "linear"),
          ("tie_drift", "tie drift, max abs (0 drawn at 1e-18)", "log"),
          ("distance_to_baseline", "max abs distance to explicit-shared (0 at 1e-18)", "log"))


def interval_text(ci: Interval) -> str:
    """``mean [low, high]`` at 4 significant digits; the mean alone when the interval is a
    point, and a note when a seed's value is not finite."""
    if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
        return f"{ci.mean:.4g} (not finite in a seed)"
    if ci.low == ci.high == ci.mean:
        return f"{ci.mean:.4g}"
    return f"{ci.mean:.4g} [{ci.low:.4g}, {ci.high:.4g}]"


def counts_text(counts: Mapping[str, int], n: int) -> str:
    """Verdict counts, most frequent first: ``exact 3/4, missing 1/4``."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{kind} {count}/{n}" for kind, count in ranked)


def _settings(row: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((c, v) for c, v in row.items() if c.startswith(SETTING_PREFIX))


def _run_key(results: Sequence[Row], folder: Path) -> tuple:
    """Where a run goes in the merged tables: by settings, seed, run and config."""
    first = results[0] if results else {}
    seed = first.get("seed", "")
    return (_settings(first), int(seed) if seed.lstrip("-").isdigit() else 0, seed,
            first.get("run", ""), first.get("config", ""), folder.name)


def _merge(run_folders: Sequence[Path]) -> tuple[dict[str, list[str]], dict[str, list[Row]]]:
    """Per table, the merged header and every run's rows, runs in content order."""
    runs = []
    for folder in map(Path, run_folders):
        tables = {name: read_csv(folder / name) for name in TAILS}
        runs.append((_run_key(tables[RESULTS_FILE][1], folder), tables))
    runs.sort(key=lambda run: run[0])
    headers, rows = {}, {}
    for name, tail in TAILS.items():
        settings = {c for _, tables in runs for c in tables[name][0]
                    if c.startswith(SETTING_PREFIX)}
        headers[name] = [*ID_COLUMNS, *sorted(settings), *tail]
        # Every row gets every column: a run without a setting has it empty.
        rows[name] = [{c: row.get(c, "") for c in headers[name]}
                      for _, tables in runs for row in tables[name][1]]
    return headers, rows


def _statistic_rows(summaries: Iterable[Summary]) -> list[Row]:
    return [{**s.group, "metric": s.metric, "statistic": name, "value": format_value(value)}
            for s in summaries for name, value in s.statistics().items()]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")


def _point(group: Mapping[str, str]) -> str:
    """A group's settings as text, ``key=value, …`` (empty for a plain run)."""
    return ", ".join(f"{c[len(SETTING_PREFIX):]}={v}" for c, v in _settings(group))


def _figure_name(group: Mapping[str, str]) -> str:
    parts = [Path(group["config"]).stem, group["case"], group["optimizer"], _point(group)]
    return "curves-" + "-".join(_slug(p) for p in parts if p) + ".png"


def _panel(ax: plt.Axes, bands: Sequence[Band], title: str, scale: str) -> None:
    for index, band in enumerate(bands):
        steps = np.asarray(band.steps)
        mean, low, high = (np.asarray(v, dtype=np.float64) for v in (band.mean, band.low,
                                                                       band.high))
        if scale == "log":
            mean, low, high = (np.maximum(v, FLOOR) for v in (mean, low, high))
        line = ax.plot(steps, mean, label=band.group["strategy"],
                       **style(index, len(bands), len(steps)))[0]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_yscale(scale)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _plot(group: Mapping[str, str], per_metric: Mapping[str, Sequence[Band]],
          folder: Path) -> str:
    """One figure of a (config, case, optimizer, settings) group; returns its file name."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, title, scale) in zip(axes, PANELS, strict=True):
        _panel(ax, per_metric.get(metric, ()), title, scale)
    seeds = max((n for bands in per_metric.values() for b in bands for n in b.n), default=0)
    point = _point(group)
    fig.suptitle(f"{group['case']} — {group['optimizer']}" + (f" — {point}" if point else "")
                 + f": mean and {CONFIDENCE:.0%} CI over {seeds} seeds")
    fig.tight_layout()
    name = _figure_name(group)
    fig.savefig(folder / name, dpi=90, metadata=PNG_METADATA)
    plt.close(fig)
    return name


def plot_bands(bands: Sequence[Band], folder: Path) -> dict[tuple[tuple[str, str], ...], str]:
    """One PNG per (config, case, optimizer, settings): the three curves' means and bands.

    Returns:
        The figure's group (its columns but ``strategy``) → file name.
    """
    figures: dict[tuple[tuple[str, str], ...], dict[str, list[Band]]] = {}
    for band in bands:
        key = tuple((c, v) for c, v in band.group.items() if c != "strategy")
        figures.setdefault(key, {}).setdefault(band.metric, []).append(band)
    return {key: _plot(dict(key), per_metric, folder) for key, per_metric in figures.items()}


Section = tuple[tuple[str, str], ...]


def _sections(summaries: Iterable[Summary], columns: Mapping[str, str],
              row_by: Sequence[str]) -> dict[Section, dict[tuple[str, ...], dict[str, Summary]]]:
    """Section (the group but ``row_by`` and storage-free ids) → table row → metric → summary."""
    out: dict[Section, dict[tuple[str, ...], dict[str, Summary]]] = {}
    for s in summaries:
        if s.metric not in columns:
            continue
        section = tuple((c, v) for c, v in s.group.items() if c not in (*row_by, "storage"))
        row = tuple(s.group.get(c, "") for c in row_by)
        out.setdefault(section, {}).setdefault(row, {})[s.metric] = s
    return out


def _cell(summary: Summary | None) -> str:
    if summary is None:
        return ""
    if summary.interval is not None:
        return interval_text(summary.interval)
    return counts_text(summary.counts or {}, summary.n)


def _table(rows: Mapping[tuple[str, ...], Mapping[str, Summary]], keys: Sequence[str],
           columns: Mapping[str, str], order: Mapping[str, int]) -> list[str]:
    # A metric no row has (no validation loss, no slot semantics) gets no column.
    columns = {m: h for m, h in columns.items() if any(m in cells for cells in rows.values())}
    lines = ["| " + " | ".join([*keys, "seeds", *columns.values()]) + " |",
             "|" + "---|" * (len(keys) + 1 + len(columns))]
    for row in sorted(rows, key=lambda r: tuple(order.get(k, len(order)) for k in r)):
        cells = rows[row]
        n = max(s.n for s in cells.values())
        lines.append("| " + " | ".join([*(f"`{k}`" for k in row), str(n),
                                        *(_cell(cells.get(m)) for m in columns)]) + " |")
    return lines


def _title(section: Section) -> str:
    group = dict(section)
    point = _point(group)
    parts = [f"`{group['config']}`", f"case `{group['case']}`", group.get("optimizer", ""),
             point]
    return " · ".join(p for p in parts if p)


def _preamble(results: Sequence[Row]) -> list[str]:
    configs = sorted({r["config"] for r in results})
    seeds = sorted({r["seed"] for r in results}, key=lambda s: (len(s), s))
    runs = {(r["config"], r["seed"], _settings(r)) for r in results}
    lines = [f"# Aggregate of {len(runs)} runs", "",
             f"Configs: {', '.join(f'`{c}`' for c in configs)}. "
             f"Seeds: {', '.join(seeds)} ({len(seeds)}).", ""]
    for column in sorted({c for r in results for c, _ in _settings(r)}):
        values = sorted({r[column] for r in results})
        lines += [f"Setting `{column[len(SETTING_PREFIX):]}`: {', '.join(values)}.", ""]
    lines += [f"A number is the mean across seeds and its {CONFIDENCE:.0%} confidence interval "
              f"(percentile bootstrap of the mean, {RESAMPLES} resamples), shown alone when "
              "every seed gave it; a verdict cell counts the seeds that gave each kind.", ""]
    return lines


def render_markdown(results: Sequence[Row], summaries: Sequence[Summary],
                    figures: Mapping[Section, str]) -> str:
    """``aggregate.md``: per (config, settings, case, optimizer) the training table and its
    figure, then per (config, settings, case) the gradient verdicts' counts."""
    # Strategies and storages in run order, as the run folders' reports list them.
    order = {v: i for i, v in enumerate(dict.fromkeys(
        v for r in results for v in (r["strategy"], r["storage"])))}
    lines = _preamble(results)
    training = _sections(summaries, TRAINING_COLUMNS, ["strategy"])
    if training:
        lines += ["## Training", ""]
    for section in sorted(training):
        lines += [f"### {_title(section)}", ""]
        lines += [*_table(training[section], ["strategy"], TRAINING_COLUMNS, order), ""]
        if section in figures:
            lines += [f"![{_title(section)}]({figures[section]})", ""]
    gradients = _sections(summaries, GRADIENT_COLUMNS, ["strategy", "storage"])
    if gradients:
        lines += ["## Gradient steps: verdict per strategy and storage", ""]
    for section in sorted(gradients):
        lines += [f"### {_title(section)}", ""]
        lines += _table(gradients[section], ["strategy", "storage"], GRADIENT_COLUMNS, order)
        lines += [""]
    return "\n".join(lines)


def find_run_folders(paths: Iterable[Path]) -> list[Path]:
    """The run folders (with a ``summary.json``) among ``paths`` and inside them, at any
    depth, sorted; hidden folders (a run still being written) are skipped.

    Raises:
        ValueError: a path does not exist or holds no run folder.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("b/run-2", "a/run-1", ".tmp-1/run-3"):
        ...     (root / name).mkdir(parents=True)
        ...     _ = (root / name / "summary.json").write_text("{}")
        >>> [str(p.relative_to(root)) for p in find_run_folders([root])]
        ['a/run-1', 'b/run-2']
    """
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise ValueError(f"{path}: no such folder")
        mine = {s.parent for s in path.rglob("summary.json")
                if not any(part.startswith(".") for part in s.relative_to(path).parts)}
        if not mine:
            raise ValueError(f"{path}: no run folder in it (a run folder has a summary.json)")
        found |= mine
    return sorted(found)


def aggregate(run_folders: Sequence[Path], out: Path) -> Path:
    """Merges run folders' tables into ``out`` with statistics across seeds.

    Args:
        run_folders: run folders holding ``curves.csv`` and ``results.csv``, in any order.
        out: the aggregate folder (created; files of the same names are replaced).

    Returns:
        The path of ``out/aggregate.md``.

    Raises:
        ValueError: no folders, a folder without the tables, or a run given twice.

    Example:
        >>> import tempfile
        >>> from toolkit.runner.tables import write_csv
        >>> folders = [Path(tempfile.mkdtemp()) for _ in range(2)]
        >>> for seed, folder in enumerate(folders):
        ...     write_csv(folder / "curves.csv", ["seed", "metric", "value"], [])
        ...     write_csv(folder / "results.csv", [*ID_COLUMNS, *RESULT_TAIL], [dict(
        ...         run="r", config="r.toml", case="c", strategy="s", optimizer="adam",
        ...         seed=str(seed), storage="", metric="final_loss", value=str(seed + 1.0))])
        >>> out = aggregate(folders, Path(tempfile.mkdtemp()))
        >>> (out.parent / "aggregate.csv").read_text().splitlines()[2]
        'r.toml,c,s,adam,,final_loss,mean,1.5'
    """
    if not run_folders:
        raise ValueError("aggregate: no run folders given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    headers, rows = _merge(run_folders)
    for name, header in headers.items():
        write_csv(out / name, header, rows[name])
    results = rows[RESULTS_FILE]
    summaries = summarize(results)
    group = [c for c in headers[RESULTS_FILE] if c not in NOT_GROUPED]
    write_csv(out / AGGREGATE_CSV, [*group, *STATISTIC_TAIL], _statistic_rows(summaries))
    figures = plot_bands(summarize_curves(rows[CURVES_FILE]), out)
    (out / AGGREGATE_MD).write_text(render_markdown(results, summaries, figures) + "\n")
    return out / AGGREGATE_MD
