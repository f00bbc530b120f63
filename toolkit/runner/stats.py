"""Statistics across seeds: bootstrap confidence intervals and verdict frequencies.

A sweep runs the same config under several seeds. Its tidy rows (:mod:`toolkit.runner.tables`)
are grouped by every column except ``run``, ``seed``, ``step`` and ``value``; per group
:func:`summarize` gives the number of seeds, the mean and a bootstrap confidence interval of a
numeric metric, or how often each verdict kind came out. :func:`summarize_curves` does the same
per training step, for plots with confidence bands.

The interval is scipy's percentile bootstrap of the mean with a fixed generator seed, so the
same rows give the same numbers. Percentile rather than BCa: BCa's acceleration is undefined
when every resample is equal and erratic with a handful of seeds, the usual sweep. A single
value, or values that are all equal, have nothing to resample: the interval is the value.

Example:
    >>> bootstrap_ci([2.0, 2.0, 2.0])
    Interval(mean=2.0, low=2.0, high=2.0, n=3)
    >>> ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    >>> ci.low < ci.mean == 2.5 < ci.high, ci.n
    (True, 4)
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.stats import bootstrap

NUMERIC_METRICS = ("final_loss", "max_distance_to_baseline", "max_tie_drift", "validation_loss",
                   "validation_perplexity")
VERDICT_METRICS = ("verdict.per-param", "verdict.per-storage", "training_verdict", "semantics")
# Columns that vary within a group: statistics run over them.
NOT_GROUPED = ("run", "seed", "step", "metric", "value")
CONFIDENCE = 0.95
RESAMPLES = 9999
# scipy 1.15 renamed the generator argument; the older name still works there.
_RNG = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
# At most this many resampled values in memory at once.
_BATCH_VALUES = 2**22


class Interval(NamedTuple):
    """A mean and its confidence interval over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int


def bootstrap_columns(
    samples: np.ndarray | Sequence[Sequence[float]], confidence: float = CONFIDENCE,
    seed: int = 0, n_resamples: int = RESAMPLES,
) -> list[Interval]:
    """One :class:`Interval` per column of an ``(n, m)`` array (rows are seeds).

    Columns resample the same rows, in one vectorized bootstrap. A column with a non-finite
    value has a NaN interval; a single row, or a column of equal values, has the value.

    Example:
        >>> [ci.low == ci.high for ci in bootstrap_columns([[1.0, 5.0], [2.0, 5.0]])]
        [False, True]
    """
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"expected a non-empty (seeds, columns) array, got shape {data.shape}")
    n = data.shape[0]
    # A diverging run's values: inf - inf is NaN, and squares of 1e200 (scipy's standard
    # error, unused by the percentile interval) overflow.
    with np.errstate(invalid="ignore", over="ignore"):
        means = data.mean(axis=0)
        finite = np.isfinite(data).all(axis=0)
        spread = finite & (data.max(axis=0) > data.min(axis=0))
        low, high = np.where(finite, means, np.nan), np.where(finite, means, np.nan)
        if n > 1 and spread.any():
            batch = max(1, _BATCH_VALUES // data.size)
            result = bootstrap((data[:, spread],), np.mean, n_resamples=n_resamples,
                               batch=batch, confidence_level=confidence, method="percentile",
                               axis=0, vectorized=True, **{_RNG: np.random.default_rng(seed)})
            low[spread] = result.confidence_interval.low
            high[spread] = result.confidence_interval.high
    return [Interval(float(m), float(lo), float(hi), n)
            for m, lo, hi in zip(means, low, high, strict=True)]


def bootstrap_ci(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0,
                 n_resamples: int = RESAMPLES) -> Interval:
    """The mean of ``values`` and its percentile-bootstrap confidence interval.

    Args:
        values: one value per seed.
        confidence: the interval's coverage.
        seed: the bootstrap's generator seed (fixed: the same values give the same interval).
        n_resamples: bootstrap resamples.

    Example:
        >>> bootstrap_ci([0.5])
        Interval(mean=0.5, low=0.5, high=0.5, n=1)
    """
    return bootstrap_columns(np.asarray(values, dtype=np.float64).reshape(-1, 1), confidence,
                             seed, n_resamples)[0]


@dataclass(frozen=True)
class Summary:
    """One group's statistic: a numeric metric's interval or a verdict metric's counts.

    Attributes:
        group: the grouping columns and their values, in table order.
        metric: the metric summarized.
        n: the number of seeds.
        interval: mean and confidence interval (numeric metrics), else None.
        counts: verdict kind → seeds that gave it, sorted by kind (verdict metrics).
    """

    group: Mapping[str, str]
    metric: str
    n: int
    interval: Interval | None = None
    counts: Mapping[str, int] | None = None

    def statistics(self) -> dict[str, float]:
        """Statistic name → value: ``n``, then ``mean``, ``ci_low``, ``ci_high`` or
        ``frequency.<kind>`` (the fraction of seeds).

        Example:
            >>> Summary({}, "training_verdict", 4, counts={"exact": 3, "diverged": 1}).statistics()
            {'n': 4, 'frequency.exact': 0.75, 'frequency.diverged': 0.25}
        """
        out: dict[str, float] = {"n": self.n}
        if self.interval is not None:
            out.update(mean=self.interval.mean, ci_low=self.interval.low,
                       ci_high=self.interval.high)
        for kind, count in (self.counts or {}).items():
            out[f"frequency.{kind}"] = count / self.n
        return out


def _number(text: str) -> float:
    return float(text) if text else float("nan")


Key = tuple[tuple[tuple[str, str], ...], str, str]


def _grouped(rows: Iterable[Mapping[str, str]], metrics: Collection[str],
             by: Sequence[str]) -> dict[Key, dict[str, str]]:
    """(group, metric, step or "") → seed → value; a seed repeated in a group is an error."""
    groups: dict[Key, dict[str, str]] = {}
    for row in rows:
        if row["metric"] not in metrics:
            continue
        key = (tuple((c, row.get(c, "")) for c in by), row["metric"], row.get("step", ""))
        per_seed = groups.setdefault(key, {})
        if row["seed"] in per_seed:
            where = ", ".join(f"{c}={v}" for c, v in key[0])
            raise ValueError(f"seed {row['seed']} appears twice in the group {where} "
                             f"(metric {key[1]}{', step ' if key[2] else ''}{key[2]}): "
                             "aggregate each run once")
        per_seed[row["seed"]] = row["value"]
    return groups


def group_columns(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The columns groups are formed by: every column but :data:`NOT_GROUPED`, in order.

    Example:
        >>> group_columns([{"run": "r", "case": "c", "seed": "0", "metric": "m", "value": "1"}])
        ['case']
    """
    columns = dict.fromkeys(c for row in rows for c in row)
    return [c for c in columns if c not in NOT_GROUPED]


def summarize(
    rows: Iterable[Mapping[str, str]], numeric: Collection[str] = NUMERIC_METRICS,
    verdicts: Collection[str] = VERDICT_METRICS, *, confidence: float = CONFIDENCE,
    seed: int = 0,
) -> list[Summary]:
    """Per group of ``results.csv`` rows: seeds, mean and interval, or verdict counts.

    Args:
        rows: tidy rows (every value a string, as :class:`csv.DictReader` reads them).
        numeric: metrics summarized by mean and bootstrap interval (an empty value is NaN).
        verdicts: metrics summarized by the count of each kind.
        confidence, seed: the bootstrap's coverage and generator seed.

    Returns:
        One :class:`Summary` per group and metric, sorted by group values then metric.

    Raises:
        ValueError: a seed appears twice in a group (the same run aggregated twice).

    Example:
        >>> rows = [{"case": "c", "seed": s, "metric": "final_loss", "value": v}
        ...         for s, v in (("0", "1.0"), ("1", "3.0"))]
        >>> s = summarize(rows)[0]
        >>> s.group, s.metric, s.n, s.interval.mean
        ({'case': 'c'}, 'final_loss', 2, 2.0)
    """
    rows = list(rows)
    by = group_columns(rows)
    out = []
    groups = _grouped(rows, {*numeric, *verdicts}, by)
    for key in sorted(groups):
        group, metric, values = dict(key[0]), key[1], list(groups[key].values())
        if metric in numeric:
            interval = bootstrap_ci([_number(v) for v in values], confidence, seed)
            out.append(Summary(group, metric, len(values), interval=interval))
        else:
            counts = {kind: values.count(kind) for kind in sorted(set(values))}
            out.append(Summary(group, metric, len(values), counts=counts))
    return out


@dataclass(frozen=True)
class Band:
    """A curve's mean and confidence band per step, across seeds.

    Attributes:
        group: the grouping columns and their values, in table order.
        metric: the curve (``loss``, ``tie_drift``, ``distance_to_baseline``).
        steps: the steps, increasing.
        mean, low, high: per step.
        n: per step, the seeds that reached it (a diverged run stops early).
    """

    group: Mapping[str, str]
    metric: str
    steps: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n: tuple[int, ...]


def _band(group: Mapping[str, str], metric: str, per_step: Mapping[int, Mapping[str, str]],
          confidence: float, seed: int, n_resamples: int) -> Band:
    """Steps with the same seeds share one vectorized bootstrap."""
    steps = sorted(per_step)
    intervals: dict[int, Interval] = {}
    by_seeds: dict[tuple[str, ...], list[int]] = {}
    for step in steps:
        by_seeds.setdefault(tuple(sorted(per_step[step])), []).append(step)
    for seeds, same in by_seeds.items():
        data = [[_number(per_step[step][s]) for step in same] for s in seeds]
        intervals.update(zip(same, bootstrap_columns(data, confidence, seed, n_resamples),
                             strict=True))
    cis = [intervals[step] for step in steps]
    return Band(group, metric, tuple(steps), tuple(c.mean for c in cis),
                tuple(c.low for c in cis), tuple(c.high for c in cis), tuple(c.n for c in cis))


def summarize_curves(rows: Iterable[Mapping[str, str]], *, confidence: float = CONFIDENCE,
                     seed: int = 0, n_resamples: int = 1999) -> list[Band]:
    """Per group of ``curves.csv`` rows and metric: the mean curve and its band.

    Example:
        >>> rows = [{"case": "c", "seed": s, "step": t, "metric": "loss", "value": v}
        ...         for s, t, v in (("0", "1", "1.0"), ("1", "1", "3.0"), ("0", "2", "0.5"))]
        >>> b = summarize_curves(rows)[0]
        >>> b.steps, b.mean, b.n
        ((1, 2), (2.0, 0.5), (2, 1))
    """
    rows = list(rows)
    by = group_columns(rows)
    curves: dict[tuple[tuple[tuple[str, str], ...], str], dict[int, dict[str, str]]] = {}
    for (group, metric, step), per_seed in _grouped(rows, {r["metric"] for r in rows},
                                                    by).items():
        curves.setdefault((group, metric), {})[int(step)] = per_seed
    return [_band(dict(group), metric, curves[group, metric], confidence, seed, n_resamples)
            for group, metric in sorted(curves)]
