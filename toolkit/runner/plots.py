"""Training plots: loss, tie drift and distance to the ``explicit-shared`` trajectory.

Several strategies often follow the same trajectory exactly (every correct one matches the
baseline). So that no line hides another, each strategy has its own dash pattern and marker,
lines are drawn widest first, markers of different strategies fall on different steps, and a
line that coincides with an earlier one says so in the legend (``tied (overlaps
explicit-shared)``).

Example:
    >>> import tempfile, pathlib
    >>> from toolkit.runner.results import TrainingHistory
    >>> h = {"c": {"adam": {"explicit": TrainingHistory([1.0, 0.5], [0.0, 0.1], [0.0, 0.1])}}}
    >>> plot_training(h, pathlib.Path(tempfile.mkdtemp()))
    ['training-c-adam.png']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# Log axes need positive values; exact zeros (no drift) are drawn at this floor.
FLOOR = 1e-18
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*")
# Two series overlap on screen when they differ by less than this fraction of the panel's
# y-range (linear axes) or of a decade (log axes).
OVERLAP = 1e-3
# Metadata kept out of the PNGs so that re-running gives the same bytes.
PNG_METADATA = {"Software": None}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def style(index: int, count: int, length: int) -> dict[str, Any]:
    """Line properties of the ``index``-th of ``count`` strategies over ``length`` steps.

    Example:
        >>> s0, s1 = style(0, 2, 100), style(1, 2, 100)
        >>> (s0["linestyle"], s0["marker"], s0["markevery"]), (s1["linestyle"], s1["marker"])
        (('-', 'o', (0, 10)), ('--', 's'))
    """
    every = max(1, length // 10)
    return {
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
        "marker": MARKERS[index % len(MARKERS)],
        # Staggered so that markers of identical lines fall on different steps.
        "markevery": ((index * every) // max(count, 1) % every, every),
        "markersize": 5,
        "markerfacecolor": "none",
        # Widest first, so a line drawn on top of an identical one leaves it visible.
        "linewidth": 1.0 + 2.0 * (count - 1 - index) / max(count - 1, 1),
        "zorder": 2 + index,
    }


def overlaps(series: Mapping[str, Sequence[float]], log: bool) -> dict[str, str]:
    """Strategy → the earlier strategy whose series it coincides with on screen.

    Example:
        >>> overlaps({"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1.0, 3.0]}, log=False)
        {'b': 'a'}
    """
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    if log:
        arrays = {k: np.log10(np.maximum(v, FLOOR)) for k, v in arrays.items()}
    finite = [v[np.isfinite(v)] for v in arrays.values() if v.size]
    values = np.concatenate(finite) if finite else np.zeros(1)
    span = 1.0 if log else max(float(np.ptp(values)) if values.size else 0.0, 1e-300)
    out: dict[str, str] = {}
    names = list(arrays)
    for i, name in enumerate(names):
        for earlier in names[:i]:
            a, b = arrays[name], arrays[earlier]
            if a.shape != b.shape:
                continue
            with np.errstate(invalid="ignore"):  # inf - inf: a diverged run overlaps nothing
                close = bool(np.all(np.abs(a - b) <= OVERLAP * span))
            if close:
                out[name] = out.get(earlier, earlier)
                break
    return out


def training_figure(case: str, opt: str, per_strategy: Mapping[str, Any]) -> Figure:
    """The three-panel figure of one (case, optimizer): loss, tie drift, distance.

    Args:
        case, opt: for the title.
        per_strategy: strategy → history with ``loss``, ``drift``, ``distance`` lists.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("loss", "loss", "linear"),
        ("drift", "tie drift, max abs (0 drawn at 1e-18)", "log"),
        ("distance", "max abs distance to explicit-shared (0 at 1e-18)", "log"),
    )
    count = len(per_strategy)
    for ax, (attr, title, scale) in zip(axes, panels, strict=True):
        series = {s: list(getattr(h, attr)) for s, h in per_strategy.items()}
        if scale == "log":
            series = {s: [max(y, FLOOR) for y in ys] for s, ys in series.items()}
        same = overlaps(series, log=scale == "log")
        for index, (strategy, ys) in enumerate(series.items()):
            label = strategy + (f" (overlaps {same[strategy]})" if strategy in same else "")
            ax.plot(range(1, len(ys) + 1), ys, label=label, **style(index, count, len(ys)))
        ax.set_yscale(scale)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{case} — {opt}")
    fig.tight_layout()
    return fig


def plot_training(
    histories: Mapping[str, Mapping[str, Mapping[str, Any]]], folder: Path
) -> list[str]:
    """One PNG per (case, optimizer) with three panels; returns the file names.

    Args:
        histories: case → optimizer label → strategy → history with ``loss``, ``drift``,
            ``distance`` lists.
        folder: where the PNGs are written.
    """
    names = []
    for case, per_opt in histories.items():
        for opt, per_strategy in per_opt.items():
            fig = training_figure(case, opt, per_strategy)
            name = f"training-{_slug(case)}-{_slug(opt)}.png"
            fig.savefig(folder / name, dpi=90, metadata=PNG_METADATA)
            plt.close(fig)
            names.append(name)
    return names
