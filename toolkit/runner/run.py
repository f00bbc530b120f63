"""The runner: config → cases → reference → every strategy → verdicts → training → run folder.

Data flows one way. :func:`run_config` computes everything in memory as typed records (a
:class:`RunOutput` around a :class:`~toolkit.runner.results.RunResult`);
:func:`toolkit.runner.rundir.write_run` turns it into a run folder.

Example:
    >>> from toolkit.runner.preflight import load_config_text
    >>> cfg = load_config_text('experiment = "aliasing"\\ncases = ["case2"]', name="inline.toml")
    >>> out = run_config(cfg)
    >>> out.result.cases["case2"].strategies["implicit-storage"].grads["x"]
    array([2.])
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.errors import ConfigError, user_code
from toolkit.experiment import Case
from toolkit.problem import GradientResult, Problem
from toolkit.runner.compare import judge, judge_training, raw_errors, slot_semantics
from toolkit.runner.interrupt import checkpoint
from toolkit.runner.preflight import Config, experiment_files
from toolkit.runner.progress import Reporter, as_reporter
from toolkit.runner.reference import (
    Reference,
    SlotReference,
    compute_reference,
    compute_slot_reference,
)
from toolkit.runner.results import (
    RULES,
    CaseResult,
    Check,
    ReferenceInfo,
    RunResult,
    StrategyResult,
    TrainingHistory,
    TrainingResult,
    jsonable,
)
from toolkit.runner.strategies import TRAIN_STRATEGIES, baseline, get_strategy

# A training trajectory is "exact" within this max abs distance of the baseline's.
TRAIN_TOLERANCE = {"float64": 1e-6, "float32": 1e-4}



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


@dataclass(frozen=True)
class RunOutput:
    """Everything a run computed, ready to be written: the records and the wall times.

    Attributes:
        config: the config that ran.
        result: the typed records.
        timing: wall seconds per phase (kept out of the records, which depend on the config
            alone).
    """

    config: Config
    result: RunResult
    timing: dict[str, float]

    @property
    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` content."""
        return self.result.to_json()

    @property
    def checks(self) -> tuple[Check, ...]:
        """The run's checks."""
        return self.result.checks

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return self.result.ok

    @property
    def histories(self) -> dict[str, dict[str, dict[str, TrainingHistory]]]:
        """case → optimizer → strategy → per-step curves."""
        return {name: {opt: {s: t.history for s, t in per.items()}
                       for opt, per in case.training.items()}
                for name, case in self.result.cases.items() if case.training}

    def arrays(self) -> dict[str, np.ndarray]:
        """``grads.npz``'s entries: each reference total and every array gradient, in shape."""
        out: dict[str, np.ndarray] = {}
        for name, case in self.result.cases.items():
            for source, ref in case.reference.items():
                if ref.total is not None:
                    out[f"{name}/reference/{source}/total"] = ref.total
            for strategy, row in case.strategies.items():
                for kind, grads in (("grads", row.grads), ("globals", row.globals)):
                    for path, g in grads.items():
                        if g is not None and not isinstance(g, Mapping):
                            out[f"{name}/{strategy}/{kind}/{path}"] = np.asarray(g)
        return out


def _expectation_checks(
    case: Case, strategy: str, result: GradientResult, expect: Mapping[str, Any],
    rtol: float, atol: float,
) -> list[Check]:
    checks = []
    for kind, table in expect.items():
        got = result.grads if kind == "grads" else result.globals
        for key, expected in table.items():
            actual = got.get(key)
            checks.append(Check(f"{case.name}/{strategy}/{kind}/{key}",
                                _matches(actual, expected, rtol, atol),
                                f"expected {expected}, got {jsonable(actual)}"))
    return checks


def _reference(config: Config, case: Case, report: Reporter) -> Reference:
    bars: list[Any] = []  # the bar starts once the reference knows how much work there is

    def tick(done: int, total: int) -> None:
        if not bars:
            bars.append(report.task(f"{case.name}: finite differences", total))
        bars[0](done)

    return compute_reference(
        case, case.initial_values(config.seed, np.float64),
        case.make_data(config.seed, np.float64), directions=config.directions,
        full_limit=config.full_limit, seed=config.seed, tick=tick,
    )


def _reference_infos(case: Case, reference: Reference) -> dict[str, ReferenceInfo]:
    return {
        source: ReferenceInfo(
            ref.mode, float(np.max(ref.error, initial=0.0)), tuple(case.aliases_of(source)),
            ref.total.reshape(ref.shape) if ref.directions is None else ref.total,
        )
        for source, ref in reference.storages.items()
    }


def _slot_reference(config: Config, case: Case) -> SlotReference | None:
    """The per-slot reference, for a case of an experiment that declares argument slots
    (``SLOTS``: case → slot → path, and ``slot_loss``)."""
    module = config.experiment.module
    slots = getattr(module, "SLOTS", {}).get(case.name)
    if not slots:
        return None
    return compute_slot_reference(case, case.initial_values(config.seed, np.float64),
                                  case.make_data(config.seed, np.float64), slots,
                                  module.slot_loss)


def _strategy_result(
    config: Config, problem: Problem, strategy: str, reference: Reference,
    slots: SlotReference | None,
) -> tuple[StrategyResult, list[Check]]:
    entry = get_strategy(strategy)
    case = problem.case
    result = entry.compute_gradients(problem)
    verdicts = judge(case, result.grads, problem.wrt, reference, rtol=config.rtol,
                     atol=config.atol, same_object=entry.shares_objects)
    by_rule = {rule: {v.source: v.verdict for v in verdicts if v.rule == rule} for rule in RULES}
    checks = [
        Check(f"{case.name}/{strategy}/{source}", verdict.exact,
              f"{entry.must_be_exact} SGD step: {verdict}")
        for source, verdict in by_rule.get(entry.must_be_exact or "", {}).items()
        if verdict.kind != "no-step"
    ]
    expect = config.expect.get(case.name, {}).get(strategy)
    if expect:
        checks += _expectation_checks(case, strategy, result, expect, config.rtol, config.atol)
    semantics = None if slots is None else slot_semantics(
        case, result.grads, slots, reference, rtol=config.rtol, atol=config.atol)
    row = StrategyResult(float(result.value), result.grads, result.globals,
                         raw_errors(case, result.grads, reference), by_rule, semantics)
    return row, checks


def _case_gradients(
    config: Config, case: Case, strategies: Sequence[str], report: Reporter
) -> tuple[CaseResult, list[Check]]:
    problem = Problem.from_case(case, config.seed, np.dtype(config.dtype), config.wrt[case.name])
    report.say(f"{case.name}: finite-difference reference, then {len(strategies)} strategies")
    reference = _reference(config, case, report)
    slots = _slot_reference(config, case)
    rows: dict[str, StrategyResult] = {}
    checks: list[Check] = []
    for strategy in strategies:
        checkpoint()
        rows[strategy], found = _strategy_result(config, problem, strategy, reference, slots)
        checks += found
    result = CaseResult(
        case.description, problem.wrt, {s: tuple(case.aliases_of(s)) for s in case.sources},
        reference.value, _reference_infos(case, reference), rows,
        slots=dict(slots.slots) if slots else {},
    )
    return result, checks


def _finite(loss: float, values: Mapping[str, Any]) -> bool:
    return bool(np.isfinite(loss)) and all(
        bool(np.all(np.isfinite(np.asarray(v)))) for v in values.values()
    )


def _distance(mine: Mapping[str, Any], base: Mapping[str, np.ndarray]) -> float:
    return max(
        (float(np.max(np.abs(np.asarray(mine[k], np.float64) - base[k]), initial=0.0))
         for k in base),
        default=0.0,
    )


@dataclass(frozen=True)
class _Hooks:
    """An experiment's optional training hooks: a batch per step, a validation loss."""

    train_batch: Callable[[Mapping[str, Any], int], Mapping[str, Any]] | None = None
    validation_loss: Callable[..., Any] | None = None

    @classmethod
    def of(cls, config: Config) -> _Hooks:
        module = config.experiment.module
        return cls(getattr(module, "train_batch", None), getattr(module, "validation_loss", None))

    def batch(self, data: Mapping[str, Any], step: int) -> Mapping[str, Any] | None:
        """Step ``step``'s data (None: the problem's data throughout)."""
        return None if self.train_batch is None else self.train_batch(data, step)

    def metrics(self, trainer: Any, data: Mapping[str, Any]) -> dict[str, float]:
        """The validation loss (nats per token) and perplexity at the trainer's parameters."""
        if self.validation_loss is None:
            return {}
        loss = trainer.evaluate(self.validation_loss, data)
        return {"validation_loss": loss, "validation_perplexity": float(np.exp(loss))}


def _train_steps(
    trainers: Mapping[str, Any], steps: int, base: str, tick: Callable[[int], None],
    batch: Callable[[int], Mapping[str, Any] | None],
) -> tuple[dict[str, TrainingHistory], dict[str, int]]:
    """Steps every trainer in lockstep on the same batches; returns the histories and where
    each diverged. A diverged trainer stops there, the others go on; if the baseline
    diverges, no distance can be measured any more, so every trainer stops."""
    hist = {s: TrainingHistory() for s in trainers}
    diverged: dict[str, int] = {}  # strategy -> first step (1-based) that is not finite
    for step in range(steps):
        data = batch(step)
        active = {s: t for s, t in trainers.items() if s not in diverged}
        for s, trainer in active.items():
            checkpoint()  # per trainer: a first step compiles, which can take seconds
            hist[s].loss.append(float(trainer.step(data)))
        base_values = trainers[base].storage_values()
        for s, trainer in active.items():
            mine = trainer.storage_values()
            if not _finite(hist[s].loss[-1], mine):
                diverged[s] = step + 1
            hist[s].drift.append(float(trainer.tie_drift()))
            hist[s].distance.append(_distance(mine, base_values))
        tick(step + 1)
        if base in diverged:
            break
    return hist, diverged


def _train_optimizer(
    config: Config, problem: Problem, strategies: Sequence[str], opt: Any, report: Reporter
) -> tuple[dict[str, TrainingResult], list[Check]]:
    steps, case = config.train.steps, problem.case
    report.say(f"{case.name}: training {len(strategies)} strategies with {opt.label}, "
               f"{steps} steps")
    trainers = {}
    for s in strategies:
        checkpoint()
        trainers[s] = get_strategy(s, training=True).make_trainer(problem, opt.build())
    tick = report.task(f"{case.name}: {opt.label}", steps)
    hooks = _Hooks.of(config)
    hist, diverged = _train_steps(trainers, steps, strategies[0], tick,
                                  lambda step: hooks.batch(problem.data, step))
    tol = TRAIN_TOLERANCE[config.dtype]
    rows = {
        s: TrainingResult(h, judge_training(max(h.drift, default=0.0),
                                            max(h.distance, default=0.0), tol,
                                            diverged_at=diverged.get(s)),
                          {} if s in diverged else hooks.metrics(trainers[s], problem.data))
        for s, h in hist.items()
    }
    checks = [
        Check(f"{case.name}/training/{opt.label}/{s}", False,
              f"{config.name}: case {case.name!r}, strategy {s!r}, optimizer {opt.label}: "
              f"loss or parameters not finite at step {step} of {steps} (loss "
              f"{hist[s].loss[-1]:.6g}); lower the learning rate")
        for s, step in diverged.items()
    ]
    return rows, checks


def _train_case(
    config: Config, case: Case, allowed: frozenset[str], report: Reporter
) -> tuple[dict[str, dict[str, TrainingResult]], list[Check]]:
    assert config.train is not None
    problem = Problem.from_case(case, config.seed, np.dtype(config.dtype), config.wrt[case.name])
    wanted = [s for s in config.train.strategies_for(case.name) if s in allowed]
    strategies = list(dict.fromkeys([baseline().name, *wanted]))
    training: dict[str, dict[str, TrainingResult]] = {}
    checks: list[Check] = []
    for opt in config.train.optimizers:
        training[opt.label], found = _train_optimizer(config, problem, strategies, opt, report)
        checks += found
    return training, checks


def _run_case(
    config: Config, case: Case, chosen: _Chosen, report: Reporter, timing: dict[str, float],
    files: Sequence[str],
) -> tuple[CaseResult, list[Check]]:
    where = f"{config.name}: experiment {config.experiment.name!r}: case {case.name!r}"
    t = time.perf_counter()
    # The strategies call the experiment's loss: an error raised in its code is the user's.
    with user_code(f"{where}: gradients", files, require_frame=True):
        result, checks = _case_gradients(config, case, chosen.gradients, report)
    timing[f"{case.name}/gradients"] = time.perf_counter() - t
    if config.train is not None and case.name in config.train.cases:
        t = time.perf_counter()
        with user_code(f"{where}: training", files, require_frame=True):
            training, train_checks = _train_case(config, case, chosen.training, report)
        result = dataclasses.replace(result, training=training)
        checks += train_checks
        timing[f"{case.name}/training"] = time.perf_counter() - t
    return result, checks


@dataclass(frozen=True)
class _Chosen:
    """The strategies a run computes gradients with, and those it may train."""

    gradients: tuple[str, ...]
    training: frozenset[str]

    @classmethod
    def of(cls, config: Config, strategies: Sequence[str] | None) -> _Chosen:
        """The config's strategies, or those given instead (``--strategies``).

        Raises:
            ConfigError: the strategies given compute no gradient and train nothing here.
        """
        if not strategies:
            return cls(config.strategies, frozenset(TRAIN_STRATEGIES))
        chosen = cls(tuple(s for s in strategies
                           if get_strategy(s, training=True).differentiates),
                     frozenset(strategies))
        trains = config.train is not None and any(
            s in chosen.training for c in config.train.cases
            for s in config.train.strategies_for(c))
        if not chosen.gradients and not trains:
            raise ConfigError(f"{config.name}: --strategies {','.join(strategies)}: nothing to "
                              "run (no gradient strategy, and none the config trains)")
        return chosen


def run_config(
    config: Config,
    *,
    strategies: Sequence[str] | None = None,
    progress: Reporter | Callable[[str], None] | None = None,
) -> RunOutput:
    """Runs every case of ``config`` with every strategy, the reference, and training.

    Args:
        config: a loaded config.
        strategies: restricts the run to these strategies (``--strategies``): gradients for
            those that differentiate, training for those the config trains (the baseline
            always trains, as every trajectory is measured against it).
        progress: a :class:`~toolkit.runner.progress.Reporter`, or a function called with
            a line per phase; ``None`` reports nothing.

    Returns:
        A :class:`RunOutput`; its records are deterministic for a given config (timings are
        kept apart in ``timing``).
    """
    report = as_reporter(progress)
    chosen = _Chosen.of(config, strategies)
    t0 = time.perf_counter()
    cases: dict[str, CaseResult] = {}
    checks: list[Check] = []
    timing: dict[str, float] = {}
    files = experiment_files(config)
    for case in config.build_cases():
        checkpoint()
        cases[case.name], found = _run_case(config, case, chosen, report, timing, files)
        checks += found
    timing["total"] = time.perf_counter() - t0
    result = RunResult(
        config.title, config.name, config.experiment.name, dict(config.hyperparameters),
        config.dtype, config.seed, config.rtol, config.atol, chosen.gradients, cases,
        tuple(checks),
    )
    return RunOutput(config, result, timing)
