"""The strategies every comparison runs: one interface, one registry.

A strategy is a way to differentiate (and train) one experiment case whose parameters may be
aliased. Each implements :class:`Strategy` and is registered in :data:`REGISTRY`. Two engines
provide them:

* the native tape (:mod:`toolkit.runner.implicit`): ``implicit-identity`` (Zygote's implicit
  ``Params`` rules) and ``implicit-storage`` (alias-aware: gradients accumulate per storage);
* JAX (:mod:`toolkit.explicit`): ``explicit`` (each alias its own leaf, a copy),
  ``explicit-merged`` (every alias of a differentiated storage a leaf, gradients merged by
  :func:`toolkit.transforms.merge_tied_gradients`) and ``explicit-shared`` (one leaf per
  storage, aliases computed inside the function). Training adds ``tied``:
  :func:`toolkit.transforms.tied` around the optimizer on the untied tree.

Imports run one way: the backends return the records of :mod:`toolkit.runner.results` and
never import this module; this registry imports a backend when one of its strategies is
first used, so importing it is cheap (no jax).

Example:
    >>> import numpy as np
    >>> from toolkit.experiments.aliasing import cases
    >>> case2 = next(c for c in cases() if c.name == "case2")
    >>> r = compute_gradients("explicit-shared", case2, case2.initial_values(0), {}, ("x",))
    >>> r.value, r.grads["x"]
    (1.0, array([2.]))
    >>> get_strategy("implicit-storage").engine
    'tape'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from toolkit.runner.results import GradientResult, Trainer

if TYPE_CHECKING:
    import optax

    from toolkit.experiment import Case

Engine = Literal["tape", "jax"]


class Strategy(Protocol):
    """What every strategy provides.

    Attributes:
        name: the name configs and the command line use, e.g. ``"explicit-shared"``.
        engine: ``"tape"`` (the native tape) or ``"jax"``.
        shares_objects: an identity tie is its source's very object (so ``Params`` holds it
            once), as on the tape; JAX pytrees give every path a leaf of its own.
        differentiates: it computes gradients; ``False`` for a training-only strategy.
    """

    @property
    def name(self) -> str: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def shares_objects(self) -> bool: ...

    @property
    def differentiates(self) -> bool: ...

    def compute_gradients(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
    ) -> GradientResult:
        """Differentiates ``case``'s loss; see :func:`compute_gradients`."""
        ...

    def make_trainer(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
        optimizer: optax.GradientTransformation,
    ) -> Trainer:
        """Sets up training of ``case``; see :func:`make_trainer`."""
        ...


@dataclass(frozen=True)
class TapeStrategy:
    """A strategy on the native tape, named after its alias policy (``implicit-<policy>``)."""

    name: str
    engine: Engine = "tape"
    shares_objects: bool = True
    differentiates: bool = True

    def compute_gradients(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
    ) -> GradientResult:
        """Gradients through implicit ``Params`` on the tape."""
        from toolkit.runner import implicit

        return implicit.compute_gradients(self.name, case, values, data, wrt)

    def make_trainer(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
        optimizer: optax.GradientTransformation,
    ) -> Trainer:
        """Training through implicit ``Params``, updates written in place."""
        from toolkit.runner import implicit

        return implicit.ImplicitTrainer(self.name, case, values, data, wrt, optimizer)


@dataclass(frozen=True)
class JaxStrategy:
    """A strategy on an explicit JAX params pytree (:mod:`toolkit.explicit`)."""

    name: str
    engine: Engine = "jax"
    shares_objects: bool = False
    differentiates: bool = True

    def compute_gradients(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
    ) -> GradientResult:
        """Jitted ``jax.grad`` on the strategy's pytree layout."""
        if not self.differentiates:
            raise ValueError(
                f"strategy {self.name!r} only trains; gradient strategies: {', '.join(STRATEGIES)}"
            )
        from toolkit import explicit

        return explicit.compute_gradients(self.name, case, values, data, wrt)

    def make_trainer(
        self,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
        optimizer: optax.GradientTransformation,
    ) -> Trainer:
        """One jitted optax step per call on the strategy's pytree."""
        from toolkit import explicit

        return explicit.ExplicitTrainer(self.name, case, values, data, wrt, optimizer)


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        TapeStrategy("implicit-identity"),
        TapeStrategy("implicit-storage"),
        JaxStrategy("explicit"),
        JaxStrategy("explicit-merged"),
        JaxStrategy("explicit-shared"),
        JaxStrategy("tied", differentiates=False),
    )
}
STRATEGIES = tuple(name for name, s in REGISTRY.items() if s.differentiates)
TRAIN_STRATEGIES = tuple(REGISTRY)


def get_strategy(name: str, *, training: bool = False) -> Strategy:
    """The registered strategy called ``name``.

    Args:
        name: a strategy name.
        training: accept training-only strategies (``tied``).

    Raises:
        ValueError: ``name`` is not registered (for this use); the message lists valid names.

    Example:
        >>> get_strategy("tied", training=True).differentiates
        False
    """
    valid = TRAIN_STRATEGIES if training else STRATEGIES
    if name not in valid:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(valid)}")
    return REGISTRY[name]


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
    chosen = get_strategy(strategy)
    _check_wrt(case, wrt)
    return chosen.compute_gradients(case, values, data, wrt)


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
        case: the experiment case.
        values: initial value of each storage, as for :func:`compute_gradients`.
        data: the case's constant inputs.
        wrt: the paths in ``Params``.
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
    chosen = get_strategy(strategy, training=True)
    _check_wrt(case, wrt)
    return chosen.make_trainer(case, values, data, wrt, optimizer)


def _check_wrt(case: Case, wrt: Sequence[str]) -> None:
    for path in wrt:
        if path not in case.params:
            raise ValueError(
                f"case {case.name!r}: wrt path {path!r} is not a parameter; "
                f"valid: {', '.join(case.params)}"
            )
