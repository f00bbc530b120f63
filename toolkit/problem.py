"""What every engine is handed and what it hands back: a problem, its gradients, a trainer.

A :class:`Problem` is one experiment case made concrete: the initial value of each storage in
the run's dtype, the case's constant data, and the paths to differentiate (the implicit
``Params``). The engines (:mod:`toolkit.runner.implicit` on the native tape,
:mod:`toolkit.explicit` on JAX) take a problem and return a :class:`GradientResult` or a
:class:`Trainer`. This module imports nothing from the engines or the runner, so every one of
them can depend on it and imports run one way.

Example:
    >>> from toolkit.experiments.aliasing import cases
    >>> case3 = next(c for c in cases() if c.name == "case3")
    >>> problem = Problem.from_case(case3, seed=0)
    >>> problem.wrt, problem.values["x"], problem.dtype
    (('x', 'xt'), array([1.]), dtype('float64'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from toolkit.experiment import Case

Gradient = np.ndarray | None | dict[str, np.ndarray]
# How configs and summaries write a param that received no gradient (Zygote's `nothing`).
NOTHING = "nothing"


@dataclass(frozen=True)
class Problem:
    """One case with concrete values: what a strategy differentiates or trains.

    Attributes:
        case: the experiment case.
        values: initial value of each storage (``case.sources``), in the run's dtype.
        data: the case's constant inputs (``case.make_data``).
        wrt: the paths to differentiate, in ``Params`` order.
    """

    case: Case
    values: Mapping[str, np.ndarray]
    data: Mapping[str, Any]
    wrt: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "wrt", tuple(self.wrt))
        for path in self.wrt:
            if path not in self.case.params:
                raise ValueError(
                    f"case {self.case.name!r}: wrt path {path!r} is not a parameter; "
                    f"valid: {', '.join(self.case.params)}"
                )

    @classmethod
    def from_case(
        cls, case: Case, seed: int, dtype: Any = np.float64, wrt: Sequence[str] | None = None
    ) -> Problem:
        """The case's initial values and data for ``seed`` in ``dtype``; ``wrt`` defaults to
        the case's own."""
        return cls(case, case.initial_values(seed, dtype), case.make_data(seed, dtype),
                   tuple(case.wrt if wrt is None else wrt))

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the storages' values."""
        return np.result_type(*(np.asarray(v) for v in self.values.values()))


@dataclass
class GradientResult:
    """What one strategy returns for one problem.

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
    """A model being trained by one strategy from the problem's initial values."""

    strategy: str

    def step(self, data: Mapping[str, Any] | None = None) -> float:
        """Returns the loss at the current parameters, then applies one optimizer update;
        ``data`` replaces the problem's data from this step on (a new training batch)."""
        ...

    def evaluate(self, metric: Any, data: Mapping[str, Any]) -> float:
        """``metric(np, params, data)`` at the current parameters (e.g. a validation loss)."""
        ...

    def storage_values(self) -> dict[str, np.ndarray]:
        """The current value of each source storage (for untied copies: the source leaf)."""
        ...

    def tie_drift(self) -> float:
        """Max abs deviation between tied copies and ``map(source)``; 0.0 for shared memory."""
        ...
