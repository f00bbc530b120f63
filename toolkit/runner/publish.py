"""The committed reference results: every shipped config, run and indexed in ``results/``.

``aliasgrad publish`` runs every ``configs/*.toml`` and writes ``results/reference/<config>/``
(the run folder: report, summary, gradients, plots) and ``results/README.md`` (per config and
case, the verdict table of every strategy and the training verdicts, with the plots). Each
config's folder is staged whole and swapped in only after the new one is complete.

Regenerating with no code change rewrites the same bytes: the committed files hold no
timings (no ``timing.json``, no timing section in the reports; ``aliasgrad publish`` prints
the times on stderr instead), the gradient archives have fixed entry times and the plots no
version metadata. Only a changed number changes a file.

Example:
    $ aliasgrad publish            # regenerates results/README.md and results/reference/
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from toolkit.runner.config import ConfigFile
from toolkit.runner.report import RULE_HELP, case_section, markdown_table
from toolkit.runner.results import RunResult, Verdict
from toolkit.runner.run import TRAIN_TOLERANCE, RunOutput
from toolkit.runner.rundir import write_run
from toolkit.runner.strategies import baseline
from toolkit.runner.sweep import Point, run_sweep

REFERENCE_DIR = "reference"
# (folder name under reference/, run records, plot file names) for one config.
Entry = tuple[str, RunResult, Sequence[str]]
# (folder name under reference/, title, number of points) for one sweep config.
SweepEntry = tuple[str, str, int]


# Table-cell names of the verdict kinds that name aliases.
SHORT_KINDS = {"missing": "missing", "double-counted": "double"}


def short_verdict(verdict: Verdict) -> str:
    """A table-cell form of a verdict: ``exact``, ``missing (via …)``, ``double (via …)``,
    ``—`` for no step; more than two aliases are counted rather than listed.

    Example:
        >>> short_verdict(Verdict("double-counted", via=("s.0.W", "s.1.W", "s.2.W")))
        'double (via s.0.W, … 3 aliases)'
    """
    kind, via = verdict.kind, list(verdict.via)
    if kind == "no-step":
        return "—"
    if kind not in SHORT_KINDS:
        return verdict.describe()
    names = ", ".join(via) if len(via) <= 2 else f"{via[0]}, … {len(via)} aliases"
    return f"{SHORT_KINDS[kind]} (via {names})"


def _cell(verdicts: Mapping[str, Mapping[str, Verdict]]) -> str:
    parts = []
    for rule in RULE_HELP:
        off = sorted({short_verdict(v) for v in verdicts[rule].values()
                      if v.kind not in ("exact", "no-step")})
        parts.append("; ".join(off) if off else "exact")
    return " / ".join(parts)


def key_table(runs: Sequence[RunResult], strategies: Sequence[str]) -> list[str]:
    """One row per config case; a cell shows the non-exact per-storage verdicts of a strategy
    under both rules (``per-param / per-storage``)."""
    rows = []
    for run in runs:
        for name, case in run.cases.items():
            cells = [f"{Path(run.config).stem} / {name}"]
            for strategy in strategies:
                row = case.strategies.get(strategy)
                cells.append("" if row is None else _cell(row.verdicts))
            rows.append(cells)
    return markdown_table(["config / case", *strategies], rows)


def training_table(runs: Sequence[RunResult]) -> list[str]:
    """One row per (config case, optimizer); cells are the training verdicts."""
    strategies: dict[str, None] = {}
    rows = []
    for run in runs:
        for name, case in run.cases.items():
            for opt, table in case.training.items():
                strategies.update(dict.fromkeys(table))
                rows.append((f"{Path(run.config).stem} / {name} / {opt}", table))
    if not rows:
        return []
    header = ["config / case / optimizer", *strategies]
    cells = [[label, *(table[s].verdict.describe() if s in table else "" for s in strategies)]
             for label, table in rows]
    return markdown_table(header, cells)


def render_index(entries: Sequence[Entry], sweeps: Sequence[SweepEntry] = ()) -> str:
    """``results/README.md``: key tables, every config's verdicts and plots, the sweeps.

    Args:
        entries: (folder name under ``reference/``, run records, plot file names) per config.
        sweeps: (folder name under ``reference/``, title, points) per sweep config.
    """
    runs = [r for _, r, _ in entries]
    strategies = list(dict.fromkeys(k for r in runs for k in r.strategies))
    lines = [
        "# Reference results",
        "",
        "Every shipped config, run by `aliasgrad publish` (regenerates this file and "
        "`reference/`). Gradient cells give the effective SGD step on each storage against "
        "float64 finite differences, as `per-param / per-storage`:",
        "",
        *[f"- **{rule}**: {text}" for rule, text in RULE_HELP.items()],
        "",
        "## Gradients: which strategies are exact",
        "",
        *key_table(runs, strategies),
        "",
        "## Training: what Adam and friends do to ties",
        "",
        f"`exact`: within {TRAIN_TOLERANCE['float64']:g} (float64) or "
        f"{TRAIN_TOLERANCE['float32']:g} (float32) of the `{baseline().name}` trajectory at "
        "every step.",
        "",
        *training_table(runs),
        "",
    ]
    for folder, run, plots in entries:
        lines += [f"## {run.title}", "",
                  f"Config `{run.config}` — full report with raw gradient dumps: "
                  f"[`{REFERENCE_DIR}/{folder}/report.md`]({REFERENCE_DIR}/{folder}/report.md).",
                  ""]
        for name, case in run.cases.items():
            lines += case_section(name, case, level="###", dumps=False)
        lines += [f"![{p}]({REFERENCE_DIR}/{folder}/{p})" for p in plots] + [""]
    if sweeps:
        lines += ["## Sweeps over seeds and settings", ""]
        lines += [f"- **{title}** ({points} runs): [`{REFERENCE_DIR}/{folder}/aggregate.md`]"
                  f"({REFERENCE_DIR}/{folder}/aggregate.md)" for folder, title, points in sweeps]
        lines += [""]
    return "\n".join(lines)


def _swap_in(fresh: Path, base: Path, name: str) -> Path:
    """Puts ``fresh`` at ``base/name``, replacing the old folder only once the new one is
    complete."""
    target = base / name
    old = base / f".old-{name}"
    shutil.rmtree(old, ignore_errors=True)  # left by a publish that was killed mid-swap
    if target.exists():
        os.rename(target, old)
    os.rename(fresh, target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(base / ".staging", ignore_errors=True)
    return target


def publish_run(output: RunOutput, root: Path) -> tuple[str, list[str]]:
    """Writes ``output`` to ``root/reference/<config stem>``. Returns the folder name and its
    plot files."""
    base = root / REFERENCE_DIR
    name = Path(output.config.name).stem
    target = _swap_in(write_run(output, base / ".staging", timing=False), base, name)
    return name, sorted(p.name for p in target.glob("*.png"))


def publish_sweep(
    file: ConfigFile, points: Sequence[Point], root: Path, *, workers: int = 1,
    say: Callable[[str], None] = lambda m: None,
) -> tuple[SweepEntry, bool]:
    """Runs a sweep config into ``root/reference/<config stem>`` (point runs, tidy tables,
    aggregate report); returns its index entry and whether every point passed its checks.

    The points keep their records, reports and plots; their curves are in the sweep's
    ``curves.csv`` and their gradient arrays are left out (re-run a point's ``config.toml``
    to get them)."""
    base = root / REFERENCE_DIR
    name = Path(file.name).stem
    fresh, results = run_sweep(file, points, base / ".staging", workers=workers, say=say,
                               timing=False)
    for run in (fresh / "runs").iterdir():
        # Committed results stay small: the sweep's curves.csv holds every point's curves,
        # and each point's gradient arrays come back by running its config.toml.
        for bulky in ("curves.csv", "grads.npz"):
            (run / bulky).unlink()
    _swap_in(fresh, base, name)
    title = file.title or file.experiment
    return (name, title, len(points)), all(r["ok"] for r in results)


def write_index(root: Path, entries: Sequence[Entry], sweeps: Sequence[SweepEntry] = ()) -> Path:
    """Writes ``root/README.md`` atomically (temporary file, then rename)."""
    path = root / "README.md"
    tmp = root / ".README.md.tmp"
    tmp.write_text(render_index(entries, sweeps))
    os.replace(tmp, path)
    return path
