"""Markdown report and terminal dumps of a run's ``summary.json``.

The report reads only the summary (and the names of the plot files), so ``aliasgrad show``
can re-render any run folder, and the committed reference reports are plain text diffs.
Verdicts are read by field: a storage verdict is ``{"kind", "via", "text"}``
(:meth:`toolkit.runner.results.Verdict.to_json`), a training verdict ``{"kind", "text"}``.

Example:
    >>> dump_grads({"x": [2.0], "xt": "nothing"}, {"x": [1.0]})
    ['x => [2]', 'xt => nothing', ':(x) => [1]']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RULE_HELP = {
    "per-param": "SGD on every listed param, views writing through (implicit `update!`)",
    "per-storage": "SGD once per storage, with its first listed alias's gradient",
}


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items())
        return f"({inner},)"
    return _fmt_list(value)


def _fmt_list(value: Any) -> str:
    if isinstance(value, list):
        if len(value) > 8 and not isinstance(value[0], list):
            head = ", ".join(_fmt_list(v) for v in value[:4])
            return f"[{head}, … ({len(value)} values)]"
        if value and isinstance(value[0], list) and sum(len(v) for v in value) > 8:
            return f"[{len(value)}×{len(value[0])} array]"
        return "[" + ", ".join(_fmt_list(v) for v in value) + "]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def dump_grads(grads: Mapping[str, Any], globals_: Mapping[str, Any]) -> list[str]:
    """Lines like Zygote's ``IdDict`` dump: params first, then ``:(name)`` global entries."""
    lines = [f"{k} => {_fmt(v)}" for k, v in grads.items()]
    lines += [f":({k}) => {_fmt(v)}" for k, v in globals_.items()]
    return lines


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def case_section(
    name: str, case: Mapping[str, Any], *, level: str = "##", dumps: bool = True
) -> list[str]:
    """A case's Markdown: aliases, reference, verdict table, dumps (optional), training."""
    lines = [f"{level} {name}", ""]
    if case.get("description"):
        lines += [f"`{case['description']}`", ""]
    lines += [f"Params: `[{', '.join(case['wrt'])}]`. Storages and their aliases: "
              + "; ".join(f"`{s}` ← {', '.join(a)}" for s, a in case["aliases"].items()), ""]
    ref = case["reference"]
    lines += ["Reference: " + "; ".join(
        f"`{s}` {r['mode']} finite differences (error ≤ {r['max_error_estimate']:.1e})"
        for s, r in ref.items()
    ), ""]
    rows = []
    for strategy, row in case["strategies"].items():
        cells = [f"**{strategy}**"]
        for rule in RULE_HELP:
            verdicts = row["verdicts"][rule]
            off = {s: v["text"] for s, v in verdicts.items() if v["kind"] != "exact"}
            if not off:
                cells.append("exact")
            elif len(verdicts) == 1:
                cells.append(next(iter(off.values())))
            else:
                listed = "<br>".join(f"`{s}`: {text}" for s, text in off.items())
                cells.append(f"{listed}<br>others exact")
        rows.append(cells)
    lines += ["Effective SGD step on each storage:", ""]
    lines += [*markdown_table(["strategy", *RULE_HELP], rows), ""]
    if dumps:
        lines += _dump_block(case)
    return lines + _training_tables(case, level + "#")


def _dump_block(case: Mapping[str, Any]) -> list[str]:
    lines = ["Raw gradients (Zygote-style dump; `# Δ` = max abs difference from the true total "
             "seen through that param's view):", "", "```"]
    for strategy, row in case["strategies"].items():
        errors = row.get("raw_max_abs_error", {})
        lines.append(f"{strategy}:")
        keys = [*row["grads"], *(None for _ in row["globals"])]
        for line, key in zip(dump_grads(row["grads"], row["globals"]), keys, strict=True):
            err = errors.get(key) if key is not None else None
            lines.append(f"    {line}" + (f"    # Δ {err:.2g}" if err is not None else ""))
    return [*lines, "```", ""]


def _training_tables(case: Mapping[str, Any], level: str) -> list[str]:
    lines: list[str] = []
    training = case.get("training")
    if training:
        for opt, table in training.items():
            lines += [f"{level} Training with {opt}", ""]
            rows = [
                [f"**{s}**", f"{r['final_loss']:.6g}", f"{r['max_tie_drift']:.3g}",
                 f"{r['max_distance_to_shared']:.3g}", r["verdict"]["text"]]
                for s, r in table.items()
            ]
            header = ["strategy", "final loss", "max tie drift",
                      "max distance to explicit-shared", "verdict"]
            lines += [*markdown_table(header, rows), ""]
    return lines


def render_report(
    summary: Mapping[str, Any], plots: Sequence[str] = (), timing: Mapping[str, float] | None = None
) -> str:
    """The run's Markdown report.

    Args:
        summary: the run's ``summary.json`` content.
        plots: file names of the run's PNG plots (linked from the report).
        timing: optional wall times, shown at the end.
    """
    lines = [f"# {summary['title']}", ""]
    lines += [
        f"Config `{summary['config']}`, experiment `{summary['experiment']}`, "
        f"dtype {summary['dtype']}, seed {summary['seed']}, "
        f"rtol {summary['tolerances']['rtol']:g}, atol {summary['tolerances']['atol']:g}.",
        "",
        "Verdict columns: the effective SGD step each storage receives from the strategy's "
        "gradients, against the finite-difference truth.",
        "",
    ]
    lines += [f"- **{rule}**: {text}" for rule, text in RULE_HELP.items()] + [""]
    checks = summary.get("checks", [])
    failed = [c for c in checks if not c["passed"]]
    lines += [f"Checks: {len(checks) - len(failed)}/{len(checks)} passed."]
    lines += [f"- FAILED `{c['name']}`: {c['detail']}" for c in failed]
    lines += [""]
    for name, case in summary["cases"].items():
        lines += case_section(name, case)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if timing:
        lines += ["## Timing", ""] + [f"- {k}: {v:.2f} s" for k, v in timing.items()] + [""]
    return "\n".join(lines)
