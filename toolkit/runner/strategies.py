"""The strategies every comparison runs, behind one interface.

A strategy is a way to differentiate (and train) one experiment case whose parameters may be
aliased. Two engines implement them:

* the native tape (:mod:`toolkit.runner.implicit`): ``implicit-identity`` (Zygote's implicit
  ``Params`` rules) and ``implicit-storage`` (alias-aware: gradients accumulate per storage);
* JAX (:mod:`toolkit.explicit`): ``explicit`` (each alias its own leaf, a copy),
  ``explicit-merged`` (every alias of a differentiated storage a leaf, gradients merged by
  :func:`toolkit.transforms.merge_tied_gradients`) and ``explicit-shared`` (one leaf per
  storage, aliases computed inside the function). Training adds ``tied``:
  :func:`toolkit.transforms.tied` around the optimizer on the untied tree.

Importing this module is cheap (no jax); each engine is imported when first used.

Example:
    >>> import numpy as np
    >>> from toolkit.experiments.aliasing import cases
    >>> case2 = next(c for c in cases() if c.name == "case2")
    >>> r = compute_gradients("explicit-shared", case2, case2.initial_values(0), {}, ("x",))
    >>> r.value, r.grads["x"]
    (1.0, array([2.]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import optax

    from toolkit.experiment import Case

STRATEGIES = (
    "implicit-identity",
    "implicit-storage",
    "explicit",
    "explicit-merged",
    "explicit-shared",
)
TRAIN_STRATEGIES = (*STRATEGIES, "tied")

Gradient = np.ndarray | None | dict[str, np.ndarray]


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


def _check(strategy: str, valid: Sequence[str]) -> None:
    if strategy not in valid:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(valid)}")


def compute_gradients(
    strategy: str,
    case: Case,
    values: Mapping[str, np.ndarray],
    data: Mapping[str, Any],
    wrt: Sequence[str],
) -> GradientResult:
    """Differentiates ``case``'s loss with one strategy.

    Args:
        strategy: one of :data:`STRATEGIES`.
        case: the experiment case.
        values: initial value of each storage (``case.sources``), already in the run's dtype;
            float64 values switch JAX to 64-bit mode.
        data: the case's constant inputs (``case.make_data``).
        wrt: the paths to differentiate (the implicit ``Params``), e.g. ``case.wrt``.

    Returns:
        A :class:`GradientResult` with one gradient per ``wrt`` path.

    Example:
        >>> from toolkit.experiments.aliasing import cases
        >>> case3 = next(c for c in cases() if c.name == "case3")
        >>> r = compute_gradients("implicit-identity", case3, case3.initial_values(0), {},
        ...                       ("x", "xt"))
        >>> r.grads["x"], r.grads["xt"]
        (array([1.]), array([[1.]]))
    """
    _check(strategy, STRATEGIES)
    _check_wrt(case, wrt)
    if strategy.startswith("implicit"):
        from toolkit.runner import implicit

        return implicit.compute_gradients(strategy, case, values, data, wrt)
    from toolkit import explicit

    return explicit.compute_gradients(strategy, case, values, data, wrt)


def make_trainer(
    strategy: str,
    case: Case,
    values: Mapping[str, np.ndarray],
    data: Mapping[str, Any],
    wrt: Sequence[str],
    optimizer: optax.GradientTransformation,
) -> Trainer:
    """Sets up training of ``case`` with one strategy and an optax optimizer.

    Implicit strategies apply ``optimizer`` through their ``Params``: ``implicit-identity``
    once per param (writing through views, as Flux's implicit ``update!``),
    ``implicit-storage`` once per storage. JAX strategies run one jitted step on their tree;
    ``explicit-merged`` chains :func:`~toolkit.transforms.merge_tied_gradients` before the
    optimizer and ``tied`` wraps it in :func:`~toolkit.transforms.tied`.

    Args:
        strategy: one of :data:`TRAIN_STRATEGIES`.
        case, values, data, wrt: as for :func:`compute_gradients`.
        optimizer: e.g. ``optax.adam(1e-2)``.

    Example:
        >>> import optax
        >>> from toolkit.experiments.tied_autoencoder import cases
        >>> case = cases()[0]
        >>> t = make_trainer("tied", case, case.initial_values(0), case.make_data(0),
        ...                  case.wrt, optax.adam(1e-2))
        >>> losses = [t.step() for _ in range(3)]
        >>> t.tie_drift()
        0.0
    """
    _check(strategy, TRAIN_STRATEGIES)
    _check_wrt(case, wrt)
    if strategy.startswith("implicit"):
        from toolkit.runner import implicit

        return implicit.ImplicitTrainer(strategy, case, values, data, wrt, optimizer)
    from toolkit import explicit

    return explicit.ExplicitTrainer(strategy, case, values, data, wrt, optimizer)


def _check_wrt(case: Case, wrt: Sequence[str]) -> None:
    for path in wrt:
        if path not in case.params:
            raise ValueError(
                f"case {case.name!r}: wrt path {path!r} is not a parameter; "
                f"valid: {', '.join(case.params)}"
            )
