"""The records the runner's modules hand each other: gradients, trainers and verdicts.

This module imports nothing from the rest of the runner or from the backends, so every other
module can depend on it: the backends (:mod:`toolkit.runner.implicit`,
:mod:`toolkit.explicit`) return :class:`GradientResult` and implement :class:`Trainer`; the
registry (:mod:`toolkit.runner.strategies`) dispatches to the backends; the comparison
(:mod:`toolkit.runner.compare`) produces :class:`Verdict` and :class:`TrainingVerdict`
records, which the run stores in ``summary.json`` with :meth:`Verdict.to_json` and the
reports read back by field.

Example:
    >>> v = Verdict("missing", via=("xt",), error=1.0)
    >>> str(v)
    'missing contribution (via xt)'
    >>> v.to_json()
    {'kind': 'missing', 'via': ['xt'], 'text': 'missing contribution (via xt)'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import numpy as np

Gradient = np.ndarray | None | dict[str, np.ndarray]

VerdictKind = Literal["exact", "missing", "double-counted", "wrong", "no-step"]
VERDICT_KINDS: tuple[str, ...] = get_args(VerdictKind)
TrainingKind = Literal["exact", "ties-drift", "wrong-trajectory", "diverged"]
TRAINING_KINDS: tuple[str, ...] = get_args(TrainingKind)


@dataclass
class GradientResult:
    """What one strategy returns for one case.

    Attributes:
        strategy: the strategy's name.
        value: the loss value.
        grads: one entry per ``wrt`` path, in ``Params`` order: an array, ``None`` (no
            gradient, Zygote's ``nothing``) or a structural gradient ``{"parent": g}``.
        globals: the tape's global entries (leaf name → gradient); ``{}`` for JAX strategies.
    """

    strategy: str
    value: float
    grads: dict[str, Gradient]
    globals: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    """A model being trained by one strategy from the case's initial values."""

    strategy: str

    def step(self) -> float:
        """Returns the loss at the current parameters, then applies one optimizer update."""
        ...

    def storage_values(self) -> dict[str, np.ndarray]:
        """The current value of each source storage (for untied copies: the source leaf)."""
        ...

    def tie_drift(self) -> float:
        """Max abs deviation between tied copies and ``map(source)``; 0.0 for shared memory."""
        ...


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
            return f"wrong (max abs error {self.error:.3g})"
        if self.kind == "no-step":
            return "no step (not in Params)"
        return "exact"

    def __str__(self) -> str:
        return self.describe()

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` form: ``{"kind": …, "via": [alias, …], "text": …}``."""
        return {"kind": self.kind, "via": list(self.via), "text": self.describe()}


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
