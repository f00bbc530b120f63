"""Training plots: loss, tie drift and distance to the ``explicit-shared`` trajectory.

Example:
    >>> import tempfile, pathlib
    >>> from toolkit.runner.run import TrainingHistory
    >>> h = {"c": {"adam": {"explicit": TrainingHistory([1.0, 0.5], [0.0, 0.1], [0.0, 0.1])}}}
    >>> plot_training(h, pathlib.Path(tempfile.mkdtemp()))
    ['training-c-adam.png']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Log axes need positive values; exact zeros (no drift) are drawn at this floor.
FLOOR = 1e-18


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


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
            fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
            panels = (
                ("loss", "loss", "linear"),
                ("drift", "tie drift, max abs (0 drawn at 1e-18)", "log"),
                ("distance", "max abs distance to explicit-shared (0 at 1e-18)", "log"),
            )
            for ax, (attr, title, scale) in zip(axes, panels, strict=True):
                for strategy, hist in per_strategy.items():
                    ys = getattr(hist, attr)
                    if scale == "log":
                        ys = [max(y, FLOOR) for y in ys]
                    ax.plot(range(1, len(ys) + 1), ys, label=strategy, linewidth=1.4)
                ax.set_yscale(scale)
                ax.set_title(title)
                ax.set_xlabel("step")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=8)
            fig.suptitle(f"{case} — {opt}")
            fig.tight_layout()
            name = f"training-{_slug(case)}-{_slug(opt)}.png"
            fig.savefig(folder / name, dpi=90)
            plt.close(fig)
            names.append(name)
    return names
