"""The runner: config → cases → reference → every strategy → verdicts → training → run folder.

Data flows one way. :func:`run_config` computes everything in memory (a :class:`RunOutput`);
:func:`write_run` turns it into a run folder (config copy, ``summary.json``, ``grads.npz``,
``report.md``, plots) staged and renamed whole.

Example:
    >>> from toolkit.runner.config import load_config_text
    >>> cfg = load_config_text('experiment = "toolkit.experiments.aliasing"\\ncases = ["case2"]',
    ...                        name="inline.toml")
    >>> out = run_config(cfg)
    >>> out.summary["cases"]["case2"]["strategies"]["implicit-storage"]["grads"]["x"]
    [2.0]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import user_code
from toolkit.experiment import Case
from toolkit.runner.compare import judge, judge_training, raw_errors
from toolkit.runner.config import Config, experiment_files
from toolkit.runner.interrupt import checkpoint
from toolkit.runner.reference import compute_reference
from toolkit.runner.results import GradientResult
from toolkit.runner.rundir import StagedRun, write_npz
from toolkit.runner.strategies import compute_gradients, get_strategy, make_trainer

# Strategies built to be correct: a reference mismatch here is a bug, so the run fails.
MUST_BE_EXACT = {
    "implicit-storage": "per-storage",
    "explicit-merged": "per-storage",
    "explicit-shared": "per-storage",
}
BASELINE = "explicit-shared"
# A training trajectory is "exact" within this max abs distance of the baseline's.
TRAIN_TOLERANCE = {"float64": 1e-6, "float32": 1e-4}
NOTHING = "nothing"


def jsonable(grad: Any) -> Any:
    """A raw gradient as JSON: nested lists, ``"nothing"`` for None, dicts kept."""
    if grad is None:
        return NOTHING
    if isinstance(grad, Mapping):
        return {k: jsonable(v) for k, v in grad.items()}
    return np.asarray(grad, dtype=np.float64).tolist()


def _matches(actual: Any, expected: Any, rtol: float, atol: float) -> bool:
    if isinstance(expected, str) or expected is None:
        return actual is None
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and set(actual) == set(expected) and all(
            _matches(actual[k], expected[k], rtol, atol) for k in expected
        )
    if actual is None or isinstance(actual, Mapping):
        return False
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    return a.size == e.size and bool(
        np.allclose(a.reshape(-1), e.reshape(-1), rtol=rtol, atol=atol)
    )


@dataclass
class Check:
    """One pass/fail check of a run (recorded expectation or must-be-exact strategy)."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class TrainingHistory:
    """Per-step records of one strategy under one optimizer."""

    loss: list[float] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)
    distance: list[float] = field(default_factory=list)


@dataclass
class RunOutput:
    """Everything a run computed, ready to be written."""

    config: Config
    summary: dict[str, Any]
    arrays: dict[str, np.ndarray]
    histories: dict[str, dict[str, dict[str, TrainingHistory]]]
    checks: list[Check]
    timing: dict[str, float]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)


def _expectation_checks(
    case: Case, strategy: str, result: GradientResult, expect: Mapping[str, Any],
    rtol: float, atol: float,
) -> list[Check]:
    checks = []
    for kind, table in expect.items():
        got = result.grads if kind == "grads" else result.globals
        for key, expected in table.items():
            actual = got.get(key)
            ok = _matches(actual, expected, rtol, atol)
            checks.append(Check(
                f"{case.name}/{strategy}/{kind}/{key}",
                ok,
                f"expected {expected}, got {jsonable(actual)}",
            ))
    return checks


def _case_gradients(
    config: Config, case: Case, strategies: Sequence[str], progress: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[Check]]:
    dtype = np.dtype(config.dtype)
    wrt = tuple(config.wrt[case.name])
    values = case.initial_values(config.seed, dtype)
    data = case.make_data(config.seed, dtype)
    progress(f"{case.name}: finite-difference reference")
    reference = compute_reference(
        case,
        case.initial_values(config.seed, np.float64),
        case.make_data(config.seed, np.float64),
        directions=config.directions,
        seed=config.seed,
    )
    arrays: dict[str, np.ndarray] = {}
    checks: list[Check] = []
    ref_json = {}
    for source, ref in reference.storages.items():
        arrays[f"{case.name}/reference/{source}/total"] = ref.total
        ref_json[source] = {
            "mode": ref.mode,
            "max_error_estimate": float(np.max(ref.error, initial=0.0)),
            "aliases": case.aliases_of(source),
        }
    rows = {}
    for strategy in strategies:
        checkpoint()
        progress(f"{case.name}: {strategy}")
        result = compute_gradients(strategy, case, values, data, wrt)
        verdicts = judge(
            case, result.grads, wrt, reference, rtol=config.rtol, atol=config.atol,
            same_object=get_strategy(strategy).shares_objects,
        )
        for path, g in result.grads.items():
            if g is not None and not isinstance(g, Mapping):
                arrays[f"{case.name}/{strategy}/grads/{path}"] = np.asarray(g)
        for name, g in result.globals.items():
            if g is not None and not isinstance(g, Mapping):
                arrays[f"{case.name}/{strategy}/globals/{name}"] = np.asarray(g)
        rows[strategy] = {
            "value": float(result.value),
            "grads": {k: jsonable(v) for k, v in result.grads.items()},
            "globals": {k: jsonable(v) for k, v in result.globals.items()},
            "raw_max_abs_error": raw_errors(case, result.grads, reference),
            "verdicts": {
                rule: {v.source: v.verdict.to_json() for v in verdicts if v.rule == rule}
                for rule in ("per-param", "per-storage")
            },
        }
        rule = MUST_BE_EXACT.get(strategy)
        if rule is not None:
            for v in verdicts:
                if v.rule == rule and v.verdict.kind != "no-step":
                    checks.append(Check(
                        f"{case.name}/{strategy}/{v.source}", v.verdict.exact,
                        f"{rule} SGD step: {v.verdict}",
                    ))
        expect = config.expect.get(case.name, {}).get(strategy)
        if expect:
            checks.extend(
                _expectation_checks(case, strategy, result, expect, config.rtol, config.atol)
            )
    summary = {
        "description": case.description,
        "wrt": list(wrt),
        "aliases": {s: case.aliases_of(s) for s in case.sources},
        "loss_value": reference.value,
        "reference": ref_json,
        "strategies": rows,
    }
    return summary, arrays, checks


def _progress_bar(label: str, total: int) -> Callable[[int], None]:
    """A one-line progress bar on stderr; silent when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return lambda done: None
    start = time.perf_counter()

    def update(done: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / max(time.perf_counter() - start, 1e-9)
        sys.stderr.write(
            f"\r{label:<40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{rate:6.1f} steps/s"
        )
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return update


def _finite(loss: float, values: Mapping[str, Any]) -> bool:
    return bool(np.isfinite(loss)) and all(
        bool(np.all(np.isfinite(np.asarray(v)))) for v in values.values()
    )


def _train_case(
    config: Config, case: Case, say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, dict[str, TrainingHistory]], list[Check]]:
    train = config.train
    assert train is not None
    dtype = np.dtype(config.dtype)
    wrt = tuple(config.wrt[case.name])
    values = case.initial_values(config.seed, dtype)
    data = case.make_data(config.seed, dtype)
    strategies = list(dict.fromkeys([BASELINE, *train.strategies]))
    tol = TRAIN_TOLERANCE[config.dtype]
    summary: dict[str, Any] = {}
    histories: dict[str, dict[str, TrainingHistory]] = {}
    checks: list[Check] = []
    for opt in train.optimizers:
        say(f"{case.name}: training {len(strategies)} strategies with {opt.label}, "
            f"{train.steps} steps")
        trainers = {}
        for s in strategies:
            checkpoint()
            trainers[s] = make_trainer(s, case, values, data, wrt, opt.build())
        hist = {s: TrainingHistory() for s in strategies}
        bar = _progress_bar(f"train {case.name} {opt.label}", train.steps)
        # strategy -> first step (1-based) whose loss or parameters are not finite
        diverged: dict[str, int] = {}
        for step in range(train.steps):
            for s, trainer in trainers.items():
                # per trainer: a first step compiles, which can take seconds
                checkpoint()
                hist[s].loss.append(float(trainer.step()))
            base = trainers[BASELINE].storage_values()
            for s, trainer in trainers.items():
                mine = trainer.storage_values()
                if not _finite(hist[s].loss[-1], mine):
                    diverged[s] = step + 1
                hist[s].drift.append(float(trainer.tie_drift()))
                hist[s].distance.append(max(
                    (float(np.max(np.abs(np.asarray(mine[k], np.float64) - base[k]), initial=0.0))
                     for k in base),
                    default=0.0,
                ))
            bar(step + 1)
            if diverged:
                # Later steps of a non-finite trajectory say nothing; stop this optimizer here.
                break
        rows = {}
        for s in strategies:
            h = hist[s]
            verdict = judge_training(
                max(h.drift, default=0.0), max(h.distance, default=0.0), tol,
                diverged_at=diverged.get(s),
            )
            rows[s] = {
                "final_loss": h.loss[-1] if h.loss else None,
                "max_tie_drift": verdict.max_tie_drift,
                "max_distance_to_shared": verdict.max_distance,
                "verdict": verdict.to_json(),
            }
        for s, step in diverged.items():
            checks.append(Check(
                f"{case.name}/training/{opt.label}/{s}", False,
                f"{config.name}: case {case.name!r}, strategy {s!r}, optimizer {opt.label}: "
                f"loss or parameters not finite at step {step} of {train.steps} (loss "
                f"{hist[s].loss[-1]:.6g}); lower the learning rate",
            ))
        summary[opt.label] = rows
        histories[opt.label] = hist
    return summary, histories, checks


def run_config(
    config: Config,
    *,
    strategies: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunOutput:
    """Runs every case of ``config`` with every strategy, the reference, and training.

    Args:
        config: a loaded config.
        strategies: overrides ``config.strategies`` (``--strategies``).
        progress: called with short status lines (the CLI prints them to stderr).

    Returns:
        A :class:`RunOutput`; ``summary`` is deterministic for a given config (timings are
        kept apart in ``timing``).
    """
    say = progress or (lambda msg: None)
    chosen = tuple(strategies or config.strategies)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {
        "title": config.title,
        "config": config.name,
        "experiment": config.experiment.name,
        "hyperparameters": dict(config.hyperparameters),
        "dtype": config.dtype,
        "seed": config.seed,
        "tolerances": {"rtol": config.rtol, "atol": config.atol},
        "strategies": list(chosen),
        "cases": {},
    }
    arrays: dict[str, np.ndarray] = {}
    checks: list[Check] = []
    histories: dict[str, dict[str, dict[str, TrainingHistory]]] = {}
    timing: dict[str, float] = {}
    files = experiment_files(config)
    for case in config.build_cases():
        checkpoint()
        where = f"{config.name}: experiment {config.experiment.name!r}: case {case.name!r}"
        t = time.perf_counter()
        # The strategies call the experiment's loss: an error raised in its code is the user's.
        with user_code(f"{where}: gradients", files, require_frame=True):
            case_summary, case_arrays, case_checks = _case_gradients(config, case, chosen, say)
        timing[f"{case.name}/gradients"] = time.perf_counter() - t
        if config.train is not None and case.name in config.train.cases:
            t = time.perf_counter()
            with user_code(f"{where}: training", files, require_frame=True):
                case_summary["training"], histories[case.name], train_checks = _train_case(
                    config, case, say
                )
            case_checks = case_checks + train_checks
            timing[f"{case.name}/training"] = time.perf_counter() - t
        summary["cases"][case.name] = case_summary
        arrays.update(case_arrays)
        checks.extend(case_checks)
    summary["checks"] = [c.to_json() for c in checks]
    summary["ok"] = all(c.passed for c in checks)
    timing["total"] = time.perf_counter() - t0
    return RunOutput(config, summary, arrays, histories, checks, timing)


def write_run(output: RunOutput, root: Path, *, timing: bool = True) -> Path:
    """Writes ``output`` as a new run folder under ``root``; returns its path.

    The folder is staged and renamed whole (:class:`toolkit.runner.rundir.StagedRun`). Every
    file but ``timing.json`` (and the report's timing section) is a function of the config
    alone, byte for byte.

    Args:
        output: what :func:`run_config` computed.
        root: the results folder.
        timing: write ``timing.json`` and the report's timing section (the committed
            reference results leave them out so that regenerating them changes nothing).
    """
    from toolkit.runner.plots import plot_training
    from toolkit.runner.report import render_report

    config = output.config
    run = StagedRun(Path(root), Path(config.name).stem)
    with run as tmp:
        (tmp / "config.toml").write_text(config.text)
        (tmp / "summary.json").write_text(json.dumps(output.summary, indent=2))
        if timing:
            (tmp / "timing.json").write_text(json.dumps(output.timing, indent=2, sort_keys=True))
        write_npz(tmp / "grads.npz", output.arrays)
        plots = plot_training(output.histories, tmp) if output.histories else []
        (tmp / "report.md").write_text(
            render_report(output.summary, plots, output.timing if timing else None)
        )
    assert run.final is not None
    return run.final

