"""The typed records of a run, from one strategy's verdict to the whole run, and their JSON.

A run is a :class:`RunResult`: per case a :class:`CaseResult` holding the reference's
summary (:class:`ReferenceInfo`), one :class:`StrategyResult` per gradient strategy (raw
gradients and :class:`Verdict` per rule and storage) and, when the config trains, one
:class:`TrainingResult` per optimizer and strategy (its per-step :class:`TrainingHistory` and
:class:`TrainingVerdict`); plus the :class:`Check` list that decides the exit code. Each
record has one ``to_json`` (the ``summary.json`` form, schema :data:`SCHEMA_VERSION`) and a
``from_json`` that reads it back, so reports, published results, aggregates and comparisons
render from records rather than string-keyed dicts. This module imports nothing from the rest
of the runner: everything downstream may depend on it.

Example:
    >>> v = Verdict("missing", via=("xt",), error=1.0)
    >>> str(v)
    'missing contribution (via xt)'
    >>> v.to_json()
    {'kind': 'missing', 'via': ['xt'], 'text': 'missing contribution (via xt)'}
    >>> Verdict.from_json(v.to_json()).describe() == v.describe()
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from toolkit.problem import NOTHING, Gradient

# Version 2: a schema number; a diverged training row names its step (diverged_at); training
# rows carry an experiment's validation metrics; cases with slots name them, and each
# strategy's slot or storage semantics.
SCHEMA_VERSION = 2
RULES = ("per-param", "per-storage")
# Metrics an experiment can add to a training row (its validation_loss hook).
TRAINING_METRICS = ("validation_loss", "validation_perplexity")

VerdictKind = Literal["exact", "missing", "double-counted", "wrong", "no-step"]
VERDICT_KINDS: tuple[str, ...] = get_args(VerdictKind)
TrainingKind = Literal["exact", "ties-drift", "wrong-trajectory", "diverged"]
TRAINING_KINDS: tuple[str, ...] = get_args(TrainingKind)


# Significant digits kept in summary.json, the tidy tables and published archives: runs on
# two machines differ in the last bits of their floating point, and only there.
DIGITS = 12


def rounded(value: Any) -> Any:
    """Floats (alone, in JSON-like data or in float arrays) to :data:`DIGITS` significant
    digits; ``-0.0`` becomes ``0.0``.

    Example:
        >>> rounded({"a": [0.1 + 0.2, 2, -0.0]}), rounded(np.array([1 / 3]))[0] == 0.333333333333
        ({'a': [0.3, 2, 0.0]}, np.True_)
    """
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") + 0.0 if np.isfinite(value) else value
    if isinstance(value, Mapping):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        flat = [rounded(x) for x in value.reshape(-1).tolist()]
        return np.asarray(flat, dtype=value.dtype).reshape(value.shape)
    return value


# Larger gradients are kept in grads.npz only; summary.json names their shape.
JSON_LIMIT = 4096


def jsonable(grad: Any) -> Any:
    """A raw gradient as JSON: nested lists, ``"nothing"`` for None, dicts kept; an array of
    more than :data:`JSON_LIMIT` elements is the text ``"array of shape (…) in grads.npz"``.

    Example:
        >>> jsonable({"parent": np.ones(2)}), jsonable(None), jsonable(np.zeros((100, 50)))
        ({'parent': [1.0, 1.0]}, 'nothing', 'array of shape (100, 50) in grads.npz')
    """
    if grad is None:
        return NOTHING
    if isinstance(grad, str):  # read back from a summary: already the text
        return grad
    if isinstance(grad, Mapping):
        return {k: jsonable(v) for k, v in grad.items()}
    array = np.asarray(grad, dtype=np.float64)
    if array.size > JSON_LIMIT:
        return f"array of shape {array.shape} in grads.npz"
    return array.tolist()


def from_jsonable(value: Any) -> Gradient | str:
    """The inverse of :func:`jsonable`: arrays, None, dicts of arrays; a large array's text
    stays text (the array itself is in the run folder's ``grads.npz``)."""
    if isinstance(value, str):
        return None if value == NOTHING else value
    if isinstance(value, Mapping):
        return {k: from_jsonable(v) for k, v in value.items()}
    return np.asarray(value, dtype=np.float64)


@dataclass(frozen=True)
class Verdict:
    """What the effective SGD step on one storage is, relative to the true gradient.

    Attributes:
        kind: ``exact``; ``missing`` (the partials through ``via`` are absent); ``double-counted``
            (the contributions through ``via`` are applied once more); ``wrong`` (no such
            explanation); ``no-step`` (no listed param sees the storage).
        via: the aliases a ``missing`` or ``double-counted`` verdict names; empty otherwise.
        error: the step's max abs error against the truth, in the reference's layout;
            ``None`` for ``no-step``.

    Example:
        >>> Verdict("double-counted", via=("xt",), error=2.0).describe()
        'double-counted (via xt)'
        >>> Verdict("wrong", error=3.0).describe(), Verdict("no-step").describe()
        ('wrong (max abs error 3)', 'no step (not in Params)')
    """

    kind: VerdictKind
    via: tuple[str, ...] = ()
    error: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in VERDICT_KINDS:
            raise ValueError(
                f"unknown verdict kind {self.kind!r}; valid: {', '.join(VERDICT_KINDS)}"
            )
        object.__setattr__(self, "via", tuple(self.via))
        names_aliases = self.kind in ("missing", "double-counted")
        if names_aliases != bool(self.via):
            raise ValueError(
                f"verdict {self.kind!r}: 'via' must "
                + ("name at least one alias" if names_aliases else "be empty")
                + f", got {self.via}"
            )

    @property
    def exact(self) -> bool:
        """True for an exact step."""
        return self.kind == "exact"

    def describe(self) -> str:
        """The verdict as report text, e.g. ``missing contribution (via xt)``."""
        names = ", ".join(self.via)
        if self.kind == "missing":
            return f"missing contribution (via {names})"
        if self.kind == "double-counted":
            return f"double-counted (via {names})"
        if self.kind == "wrong":
            return "wrong" if self.error is None else f"wrong (max abs error {self.error:.3g})"
        if self.kind == "no-step":
            return "no step (not in Params)"
        return "exact"

    def __str__(self) -> str:
        return self.describe()

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` form: ``{"kind", "via": [alias, …], "text"}`` (the error, a
        machine-dependent last-digits number, is left out)."""
        return {"kind": self.kind, "via": list(self.via), "text": self.describe()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Reads :meth:`to_json`'s form back (without the error)."""
        return cls(data["kind"], tuple(data["via"]))


@dataclass(frozen=True)
class TrainingVerdict:
    """How one strategy's training trajectory compares with the ``explicit-shared`` one.

    Attributes:
        kind: ``exact`` (within tolerance of the baseline at every step, ties held);
            ``ties-drift`` (tied copies moved apart); ``wrong-trajectory`` (ties held, but the
            parameters left the baseline's trajectory); ``diverged`` (the loss or the
            parameters stopped being finite).
        max_tie_drift: the largest tie drift over the run.
        max_distance: the largest max abs distance to the baseline's storages over the run.
        diverged_at: the first step (from 1) that was not finite, for ``diverged``.

    Example:
        >>> str(TrainingVerdict("ties-drift", max_tie_drift=1.42, max_distance=1.5))
        'ties drift (max 1.42)'
    """

    kind: TrainingKind
    max_tie_drift: float
    max_distance: float
    diverged_at: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRAINING_KINDS:
            raise ValueError(
                f"unknown training verdict kind {self.kind!r}; valid: {', '.join(TRAINING_KINDS)}"
            )
        if (self.kind == "diverged") != (self.diverged_at is not None):
            raise ValueError("a 'diverged' training verdict, and only it, names its step")

    def describe(self) -> str:
        """The verdict as report text."""
        if self.kind == "ties-drift":
            return f"ties drift (max {self.max_tie_drift:.3g})"
        if self.kind == "wrong-trajectory":
            return f"wrong trajectory (max distance {self.max_distance:.3g})"
        if self.kind == "diverged":
            return f"diverged (not finite at step {self.diverged_at})"
        return "exact"

    def __str__(self) -> str:
        return self.describe()

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` form: ``{"kind": …, "text": …}``."""
        return {"kind": self.kind, "text": self.describe()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, max_tie_drift: float, max_distance: float,
                  diverged_at: int | None = None) -> TrainingVerdict:
        """Reads :meth:`to_json`'s form back (the other fields are stored beside it)."""
        return cls(data["kind"], max_tie_drift, max_distance, diverged_at)


@dataclass(frozen=True)
class Check:
    """One pass/fail check of a run: an expectation that must hold.

    Attributes:
        name: ``case/strategy/...``, e.g. ``case2/implicit-identity/grads/x``.
        passed: whether it held.
        detail: what was expected and what came out.
    """

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        """Reads :meth:`to_json`'s form back."""
        return cls(data["name"], bool(data["passed"]), data["detail"])


@dataclass
class TrainingHistory:
    """Per-step curves of one strategy under one optimizer (step ``i`` is index ``i - 1``)."""

    loss: list[float] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)
    distance: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingResult:
    """One strategy trained with one optimizer: its curves, its verdict, and the experiment's
    own metrics at the end of training (``validation_loss``, ``validation_perplexity``)."""

    history: TrainingHistory
    verdict: TrainingVerdict
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        """The loss at the last step taken."""
        return self.history.loss[-1] if self.history.loss else None

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` row (the curves go to the tidy tables)."""
        row = {"final_loss": self.final_loss, "max_tie_drift": self.verdict.max_tie_drift,
               "max_distance_to_shared": self.verdict.max_distance,
               "verdict": self.verdict.to_json()}
        if self.verdict.diverged_at is not None:
            row["diverged_at"] = self.verdict.diverged_at
        return {**row, **self.metrics}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingResult:
        """Reads a row back; the history holds only the final loss."""
        loss = [] if data["final_loss"] is None else [data["final_loss"]]
        verdict = TrainingVerdict.from_json(
            data["verdict"], max_tie_drift=data["max_tie_drift"],
            max_distance=data["max_distance_to_shared"], diverged_at=data.get("diverged_at"))
        return cls(TrainingHistory(loss), verdict,
                   {k: float(v) for k, v in data.items() if k in TRAINING_METRICS})


@dataclass(frozen=True)
class ReferenceInfo:
    """How one storage's finite-difference reference was taken.

    Attributes:
        mode: ``"full"`` or ``"directional(K)"``.
        max_error_estimate: the largest Richardson error estimate.
        aliases: every path that sees the storage.
        total: the reference total (storage-shaped when full, projections when directional).
    """

    mode: str
    max_error_estimate: float
    aliases: tuple[str, ...]
    total: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (the total goes to ``grads.npz``)."""
        return {"mode": self.mode, "max_error_estimate": self.max_error_estimate,
                "aliases": list(self.aliases)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceInfo:
        """Reads :meth:`to_json`'s form back."""
        return cls(data["mode"], float(data["max_error_estimate"]), tuple(data["aliases"]))


@dataclass(frozen=True)
class StrategyResult:
    """One gradient strategy on one case: raw gradients and a verdict per rule and storage.

    Attributes:
        value: the loss value the strategy computed.
        grads: per ``wrt`` path: array, None or ``{"parent": array}`` (read back from a
            summary, an array over :data:`JSON_LIMIT` elements is its text; the array is in
            the run folder's ``grads.npz``).
        globals: the tape's global entries; empty for JAX strategies.
        raw_max_abs_error: per path, max abs error against the truth seen through its view
            (None where it cannot be measured).
        verdicts: rule → storage → :class:`Verdict`.
        semantics: where one array fills several argument slots, whether the gradients
            follow ``slot`` or ``storage`` semantics (``either``, ``neither``); else None.
    """

    value: float
    grads: dict[str, Gradient]
    globals: dict[str, Gradient]
    raw_max_abs_error: dict[str, float | None]
    verdicts: dict[str, dict[str, Verdict]]
    semantics: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "value": self.value,
            "grads": {k: jsonable(v) for k, v in self.grads.items()},
            "globals": {k: jsonable(v) for k, v in self.globals.items()},
            "raw_max_abs_error": dict(self.raw_max_abs_error),
            "verdicts": {rule: {s: v.to_json() for s, v in per.items()}
                         for rule, per in self.verdicts.items()},
            **({"semantics": self.semantics} if self.semantics else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StrategyResult:
        """Reads :meth:`to_json`'s form back."""
        return cls(
            float(data["value"]),
            {k: from_jsonable(v) for k, v in data["grads"].items()},
            {k: from_jsonable(v) for k, v in data["globals"].items()},
            dict(data["raw_max_abs_error"]),
            {rule: {s: Verdict.from_json(v) for s, v in per.items()}
             for rule, per in data["verdicts"].items()},
            data.get("semantics"),
        )


@dataclass(frozen=True)
class CaseResult:
    """Everything a run computed for one case.

    Attributes:
        description: the case's one-line description.
        wrt: the paths in ``Params``.
        aliases: storage → every path that sees it.
        loss_value: the float64 loss at the initial values.
        reference: storage → :class:`ReferenceInfo`.
        strategies: strategy → :class:`StrategyResult`.
        training: optimizer label → strategy → :class:`TrainingResult` (empty: not trained).
        slots: where the case passes one array in several argument slots, slot name → the
            path it reads (empty otherwise).
    """

    description: str
    wrt: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    loss_value: float
    reference: dict[str, ReferenceInfo]
    strategies: dict[str, StrategyResult]
    training: dict[str, dict[str, TrainingResult]] = field(default_factory=dict)
    slots: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "description": self.description,
            "wrt": list(self.wrt),
            "aliases": {s: list(a) for s, a in self.aliases.items()},
            "loss_value": self.loss_value,
            "reference": {s: r.to_json() for s, r in self.reference.items()},
            "strategies": {s: r.to_json() for s, r in self.strategies.items()},
        }
        if self.training:
            out["training"] = {opt: {s: t.to_json() for s, t in per.items()}
                               for opt, per in self.training.items()}
        if self.slots:
            out["slots"] = dict(self.slots)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        """Reads :meth:`to_json`'s form back."""
        return cls(
            data["description"], tuple(data["wrt"]),
            {s: tuple(a) for s, a in data["aliases"].items()}, float(data["loss_value"]),
            {s: ReferenceInfo.from_json(r) for s, r in data["reference"].items()},
            {s: StrategyResult.from_json(r) for s, r in data["strategies"].items()},
            {opt: {s: TrainingResult.from_json(t) for s, t in per.items()}
             for opt, per in data.get("training", {}).items()},
            dict(data.get("slots", {})),
        )


@dataclass(frozen=True)
class RunResult:
    """One config run: what it was, every case's results and the checks.

    Attributes:
        title, config, experiment: from the config (``config`` is the name runs are keyed by).
        hyperparameters, dtype, seed, rtol, atol: the settings the run used.
        strategies: the gradient strategies run.
        cases: case name → :class:`CaseResult`.
        checks: the expectations that must hold; a failed one fails the run.
    """

    title: str
    config: str
    experiment: str
    hyperparameters: dict[str, Any]
    dtype: str
    seed: int
    rtol: float
    atol: float
    strategies: tuple[str, ...]
    cases: dict[str, CaseResult]
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` content."""
        return {
            "schema": SCHEMA_VERSION,
            "title": self.title,
            "config": self.config,
            "experiment": self.experiment,
            "hyperparameters": _plain(self.hyperparameters),
            "dtype": self.dtype,
            "seed": self.seed,
            "tolerances": {"rtol": self.rtol, "atol": self.atol},
            "strategies": list(self.strategies),
            "cases": {name: c.to_json() for name, c in self.cases.items()},
            "checks": [c.to_json() for c in self.checks],
            "ok": self.ok,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        """Reads ``summary.json`` back.

        Raises:
            ValueError: the summary has another schema version.
        """
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"summary schema {data.get('schema')!r}; this version reads "
                             f"schema {SCHEMA_VERSION} (re-run the config to upgrade)")
        return cls(
            data["title"], data["config"], data["experiment"], dict(data["hyperparameters"]),
            data["dtype"], int(data["seed"]), float(data["tolerances"]["rtol"]),
            float(data["tolerances"]["atol"]), tuple(data["strategies"]),
            {name: CaseResult.from_json(c) for name, c in data["cases"].items()},
            tuple(Check.from_json(c) for c in data["checks"]),
        )


def _plain(value: Any) -> Any:
    """Tuples as lists, so a summary equals its JSON round trip."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
