"""Run folders that appear whole or not at all.

A run is written into a hidden staging folder next to its final place and renamed in one
``os.rename`` when complete, so an interrupted run never leaves a half-written run folder
and never touches earlier runs. A staging folder left behind by a killed process
(SIGKILL cannot be caught) is hidden (``.tmp-…``), ignored by listings, and removed by the
next run once its process is gone.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> run = StagedRun(root, "demo")
    >>> with run as tmp:
    ...     _ = (tmp / "summary.json").write_text("{}")
    >>> run.final.name.startswith("demo-"), (run.final / "summary.json").exists()
    (True, True)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.runner.plots import plot_training
from toolkit.runner.report import render_report
from toolkit.runner.results import rounded
from toolkit.runner.run import RunOutput

STAGING_PREFIX = ".tmp-"
# zip entries carry a modification time; a fixed one makes the same arrays the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed entry times: equal arrays give equal bytes.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.npz"
        >>> write_npz(p, {"x": np.arange(3.0)})
        >>> np.load(p)["x"].tolist()
        [0.0, 1.0, 2.0]
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(root: Path) -> list[Path]:
    """Removes staging folders whose writing process no longer exists; returns them."""
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not (entry.is_dir() and entry.name.startswith(STAGING_PREFIX)):
            continue
        try:
            pid = int(entry.name[len(STAGING_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _final_path(root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{name}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{name}-{stamp}-{n}"
    return candidate


class StagedRun:
    """Context manager: an empty staging folder, renamed to ``root/name-<time>`` on success.

    On any exception, KeyboardInterrupt included, the staging folder is removed and the
    exception propagates; an existing folder is never overwritten (a clash takes the next
    free suffix).

    Attributes:
        path: the staging folder to write into (valid inside the ``with`` block).
        final: the run folder, set once the block has exited cleanly.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self.path = self.root / f"{STAGING_PREFIX}{os.getpid()}-{name}-{time.monotonic_ns()}"
        self.final: Path | None = None

    def __enter__(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(self.root)
        self.path.mkdir()
        return self.path

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        final = _final_path(self.root, self.name)
        os.rename(self.path, final)
        self.final = final


def _write_files(
    output: RunOutput, folder: Path, settings: Mapping[str, Any], timing: bool
) -> None:
    from toolkit.runner.tables import write_tables

    (folder / "config.toml").write_text(output.config.text)
    (folder / "summary.json").write_text(json.dumps(rounded(output.summary), indent=2))
    if timing:
        (folder / "timing.json").write_text(json.dumps(output.timing, indent=2, sort_keys=True))
    arrays = output.arrays()
    write_npz(folder / "grads.npz", arrays if timing else {k: rounded(v)
                                                          for k, v in arrays.items()})
    write_tables(output.result, folder, settings)
    plots = plot_training(output.histories, folder) if output.histories else []
    (folder / "report.md").write_text(
        render_report(output.result, plots, output.timing if timing else None)
    )


def write_run(
    output: RunOutput, root: Path, *, timing: bool = True, settings: Mapping[str, Any] | None = None
) -> Path:
    """Writes ``output`` as a new run folder under ``root``; returns its path.

    The folder is staged and renamed whole (:class:`StagedRun`). Every file but
    ``timing.json`` (and the report's timing section) is a function of the config alone,
    byte for byte: ``config.toml``, ``summary.json``, ``grads.npz`` (arrays in their shapes),
    the tidy tables ``curves.csv`` and ``results.csv``, ``report.md`` and the plots.

    Args:
        output: what :func:`toolkit.runner.run.run_config` computed.
        root: the results folder.
        timing: write ``timing.json`` and the report's timing section (the committed
            reference results leave them out, and round the arrays too, so that regenerating
            them on any machine changes nothing).
        settings: the swept keys and values, a column each in the tidy tables.
    """
    run = StagedRun(Path(root), Path(output.config.name).stem)
    with run as tmp:
        _write_files(output, tmp, settings or {}, timing)
    assert run.final is not None
    return run.final


def write_point(
    output: RunOutput, folder: Path, settings: Mapping[str, Any], *, timing: bool = True
) -> None:
    """Writes one sweep point's run folder at ``folder``, inside a sweep folder that is itself
    staged (so no point folder is ever seen half-written)."""
    folder.mkdir(parents=True)
    _write_files(output, folder, settings, timing)
