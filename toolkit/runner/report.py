"""Markdown report and terminal dumps of a run's records.

The report renders a :class:`~toolkit.runner.results.RunResult` (and the names of the plot
files), which :meth:`~toolkit.runner.results.RunResult.from_json` also reads back from any
run folder's ``summary.json``; the committed reference reports are plain text diffs.

Example:
    >>> dump_grads({"x": [2.0], "xt": "nothing"}, {"x": [1.0]})
    ['x => [2]', 'xt => nothing', ':(x) => [1]']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.runner.results import CaseResult, RunResult, jsonable

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
    name: str, case: CaseResult, *, level: str = "##", dumps: bool = True
) -> list[str]:
    """A case's Markdown: aliases, reference, verdict table, dumps (optional), training."""
    lines = [f"{level} {name}", ""]
    if case.description:
        lines += [f"`{case.description}`", ""]
    lines += [f"Params: `[{', '.join(case.wrt)}]`. Storages and their aliases: "
              + "; ".join(f"`{s}` ← {', '.join(a)}" for s, a in case.aliases.items()), ""]
    lines += ["Reference: " + "; ".join(
        f"`{s}` {r.mode} finite differences (error ≤ {r.max_error_estimate:.1e})"
        for s, r in case.reference.items()
    ), ""]
    rows = [[f"**{strategy}**", *(_verdict_cell(row.verdicts[rule]) for rule in RULE_HELP)]
            for strategy, row in case.strategies.items()]
    lines += ["Effective SGD step on each storage:", ""]
    lines += [*markdown_table(["strategy", *RULE_HELP], rows), ""]
    lines += _slot_table(case)
    if dumps:
        lines += _dump_block(case)
    return lines + _training_tables(case, level + "#")


SEMANTICS_HELP = {
    "slot": "each slot's path gets that slot's own partial (per-slot AD)",
    "storage": "each slot's path gets the total on the array (the slots' partials summed)",
    "either": "the slots' partials equal the total here: the two cannot be told apart",
    "neither": "neither the slot partials nor the total",
}


def _slot_table(case: CaseResult) -> list[str]:
    """Slot versus storage semantics, for a case that passes one array in several slots."""
    if not case.slots:
        return []
    slots = ", ".join(f"`{name}` ← `{path}`" for name, path in case.slots.items())
    rows = [[f"**{s}**", row.semantics or "—", SEMANTICS_HELP.get(row.semantics or "", "")]
            for s, row in case.strategies.items()]
    return [f"Slot versus storage semantics (argument slots: {slots}; references: each slot "
            "moved alone, and the array moved in every slot):", "",
            *markdown_table(["strategy", "semantics", "meaning"], rows), ""]


def _verdict_cell(verdicts: Mapping[str, Any]) -> str:
    off = {s: v.describe() for s, v in verdicts.items() if not v.exact}
    if not off:
        return "exact"
    if len(verdicts) == 1:
        return next(iter(off.values()))
    listed = "<br>".join(f"`{s}`: {text}" for s, text in off.items())
    return f"{listed}<br>others exact"


def _dump_block(case: CaseResult) -> list[str]:
    lines = ["Raw gradients (Zygote-style dump; `# Δ` = max abs difference from the true total "
             "seen through that param's view):", "", "```"]
    for strategy, row in case.strategies.items():
        lines.append(f"{strategy}:")
        grads = {k: jsonable(v) for k, v in row.grads.items()}
        globals_ = {k: jsonable(v) for k, v in row.globals.items()}
        keys = [*grads, *(None for _ in globals_)]
        for line, key in zip(dump_grads(grads, globals_), keys, strict=True):
            err = row.raw_max_abs_error.get(key) if key is not None else None
            lines.append(f"    {line}" + (f"    # Δ {err:.2g}" if err is not None else ""))
    return [*lines, "```", ""]


def _training_tables(case: CaseResult, level: str) -> list[str]:
    lines: list[str] = []
    for opt, table in case.training.items():
        lines += [f"{level} Training with {opt}", ""]
        extra = list(dict.fromkeys(m for r in table.values() for m in r.metrics))
        rows = [
            [f"**{s}**", f"{r.final_loss:.6g}",
             *(f"{r.metrics[m]:.6g}" if m in r.metrics else "—" for m in extra),
             f"{r.verdict.max_tie_drift:.3g}", f"{r.verdict.max_distance:.3g}",
             r.verdict.describe()]
            for s, r in table.items()
        ]
        header = ["strategy", "final loss", *(m.replace("_", " ") for m in extra),
                  "max tie drift", "max distance to explicit-shared", "verdict"]
        lines += [*markdown_table(header, rows), ""]
    return lines


def findings(run: RunResult) -> list[str]:
    """One line per strategy that is not exact somewhere: under which effective-step rule, in
    which cases, and in training under which optimizers. These are findings about the
    strategies, not failures of the run (those are the checks).

    Example:
        >>> from toolkit.runner.results import CaseResult, RunResult, StrategyResult, Verdict
        >>> row = StrategyResult(1.0, {}, {}, {}, {"per-param": {"x": Verdict("exact")},
        ...                      "per-storage": {"x": Verdict("missing", via=("xt",))}})
        >>> case = CaseResult("", ("x",), {"x": ("x", "xt")}, 1.0, {}, {"explicit": row})
        >>> findings(RunResult("t", "c.toml", "e", {}, "float64", 0, 0, 0, ("explicit",),
        ...                    {"case2": case}, ()))
        ['explicit: per-storage step not exact in 1/1 cases (case2)']
    """
    wrong: dict[str, dict[str, list[str]]] = {}
    drift: dict[str, list[str]] = {}
    for name, case in run.cases.items():
        for strategy, row in case.strategies.items():
            for rule, per in row.verdicts.items():
                if any(not v.exact and v.kind != "no-step" for v in per.values()):
                    wrong.setdefault(strategy, {}).setdefault(rule, []).append(name)
        for opt, table in case.training.items():
            for strategy, result in table.items():
                if result.verdict.kind != "exact":
                    drift.setdefault(strategy, []).append(f"{name}/{opt}: {result.verdict.kind}")
    lines = [f"{s}: " + "; ".join(f"{rule} step not exact in {len(c)}/{len(run.cases)} cases "
                                  f"({_listed(c)})" for rule, c in rules.items())
             for s, rules in wrong.items()]
    lines += [f"{s}: training not exact ({_listed(c)})" for s, c in drift.items()]
    return lines


def _listed(items: Sequence[str], most: int = 3) -> str:
    more = f", … {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def render_report(
    run: RunResult, plots: Sequence[str] = (), timing: Mapping[str, float] | None = None
) -> str:
    """The run's Markdown report.

    Args:
        run: the run's records.
        plots: file names of the run's PNG plots (linked from the report).
        timing: optional wall times, shown at the end.
    """
    lines = [f"# {run.title}", ""]
    lines += [
        f"Config `{run.config}`, experiment `{run.experiment}`, "
        f"dtype {run.dtype}, seed {run.seed}, rtol {run.rtol:g}, atol {run.atol:g}.",
        "",
        "Verdict columns: the effective SGD step each storage receives from the strategy's "
        "gradients, against the finite-difference truth.",
        "",
    ]
    lines += [f"- **{rule}**: {text}" for rule, text in RULE_HELP.items()] + [""]
    failed = [c for c in run.checks if not c.passed]
    lines += [f"Checks: {len(run.checks) - len(failed)}/{len(run.checks)} passed."]
    lines += [f"- FAILED `{c.name}`: {c.detail}" for c in failed]
    lines += [""]
    for name, case in run.cases.items():
        lines += case_section(name, case)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if timing:
        lines += ["## Timing", ""] + [f"- {k}: {v:.2f} s" for k, v in timing.items()] + [""]
    return "\n".join(lines)
