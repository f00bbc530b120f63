"""The strategies every comparison runs: one registry entry holds a strategy's whole behaviour.

A strategy is a way to differentiate (and train) a :class:`~toolkit.problem.Problem` whose
parameters may be aliased. Each :class:`Strategy` entry says which engine runs it and how:

* the native tape (:mod:`toolkit.runner.implicit`), with an alias ``policy``:
  ``implicit-identity`` (Zygote's implicit ``Params`` rules) and ``implicit-storage``
  (alias-aware: gradients accumulate per storage);
* JAX (:mod:`toolkit.explicit`), with a pytree ``layout`` and an optimizer ``wrap``:
  ``explicit`` (each alias its own leaf, a copy), ``explicit-merged`` (every alias of a
  differentiated storage a leaf, gradients merged by
  :func:`toolkit.transforms.merge_tied_gradients`), ``explicit-shared`` (one leaf per storage,
  aliases computed inside the function) and the training-only ``tied``
  (:func:`toolkit.transforms.tied` around the optimizer on the untied tree).

The entry also holds what the runner does with the strategy's results: ``must_be_exact``
names the rule under which a reference mismatch is a bug (the run fails), and ``baseline``
marks the trajectory every training run is compared with. Adding a strategy is adding an
entry. Importing this module is cheap (no jax): an engine is imported when first used.

Example:
    >>> from toolkit.experiments.aliasing import cases
    >>> case2 = next(c for c in cases() if c.name == "case2")
    >>> r = compute_gradients("explicit-shared", case2, case2.initial_values(0), {}, ("x",))
    >>> r.value, r.grads["x"]
    (1.0, array([2.]))
    >>> get_strategy("implicit-storage").engine, baseline().name
    ('tape', 'explicit-shared')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from toolkit.problem import GradientResult, Problem, Trainer

if TYPE_CHECKING:
    import optax

    from toolkit.experiment import Case

Engine = Literal["tape", "jax"]
# How a JAX strategy lays parameters out: every path a leaf ("copies"), every alias of a
# differentiated storage a leaf ("merged"), or one leaf per storage ("shared").
LayoutKind = Literal["copies", "merged", "shared"]
# How training wraps the optimizer: as given, after merging tied gradients, or in `tied`.
Wrap = Literal["plain", "merge", "tied"]


@dataclass(frozen=True)
class Strategy:
    """One registered strategy: its engine, how the engine runs it, and how results are read.

    Attributes:
        name: the name configs and the command line use, e.g. ``"explicit-shared"``.
        engine: ``"tape"`` (the native tape) or ``"jax"``.
        summary: one line saying what the strategy does with aliases.
        policy: the tape's alias policy (``"identity"`` or ``"storage"``); tape only.
        layout: the JAX pytree layout; JAX only.
        wrap: how training wraps the optimizer; JAX only.
        differentiates: it computes gradients; ``False`` for a training-only strategy.
        must_be_exact: the effective-step rule (``"per-storage"``) under which this
            strategy must match the reference, or ``None`` when a mismatch is a finding.
        baseline: the trajectory every other training run is compared with.
    """

    name: str
    engine: Engine
    summary: str
    policy: str | None = None
    layout: LayoutKind | None = None
    wrap: Wrap = "plain"
    differentiates: bool = True
    must_be_exact: str | None = None
    baseline: bool = False

    @property
    def shares_objects(self) -> bool:
        """An identity tie is its source's very object (``Params`` holds it once), as on the
        tape; JAX pytrees give every path a leaf of its own."""
        return self.engine == "tape"

    def compute_gradients(self, problem: Problem) -> GradientResult:
        """Differentiates the problem's loss; see :func:`compute_gradients`."""
        if not self.differentiates:
            raise ValueError(f"strategy {self.name!r} only trains; gradient strategies: "
                             f"{', '.join(STRATEGIES)}")
        if self.engine == "tape":
            from toolkit.runner import implicit

            return implicit.compute_gradients(self.name, problem, policy=self.policy)
        from toolkit import explicit

        return explicit.compute_gradients(self.name, problem, layout=self.layout)

    def make_trainer(self, problem: Problem, optimizer: optax.GradientTransformation) -> Trainer:
        """Sets up training of the problem; see :func:`make_trainer`."""
        if self.engine == "tape":
            from toolkit.runner import implicit

            return implicit.ImplicitTrainer(self.name, problem, optimizer, policy=self.policy)
        from toolkit import explicit

        return explicit.ExplicitTrainer(self.name, problem, optimizer, layout=self.layout,
                                        wrap=self.wrap)


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("implicit-identity", "tape", "Zygote's implicit Params rules, reproduced",
                 policy="identity"),
        Strategy("implicit-storage", "tape", "every view accumulates into its storage",
                 policy="storage", must_be_exact="per-storage"),
        Strategy("explicit", "jax", "each alias its own leaf (a copy), its own gradient",
                 layout="copies"),
        Strategy("explicit-merged", "jax", "each alias a leaf, tied gradients merged",
                 layout="merged", wrap="merge", must_be_exact="per-storage"),
        Strategy("explicit-shared", "jax", "one leaf per storage, aliases computed inside",
                 layout="shared", must_be_exact="per-storage", baseline=True),
        Strategy("tied", "jax", "training only: the tie transform around the optimizer",
                 layout="merged", wrap="tied", differentiates=False),
    )
}
STRATEGIES = tuple(name for name, s in REGISTRY.items() if s.differentiates)
TRAIN_STRATEGIES = tuple(REGISTRY)


def baseline() -> Strategy:
    """The strategy whose training trajectory the others are compared with."""
    (entry,) = (s for s in REGISTRY.values() if s.baseline)
    return entry


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
        A :class:`~toolkit.problem.GradientResult` with one gradient per ``wrt`` path.

    Example:
        >>> from toolkit.experiments.aliasing import cases
        >>> case3 = next(c for c in cases() if c.name == "case3")
        >>> r = compute_gradients("implicit-identity", case3, case3.initial_values(0), {},
        ...                       ("x", "xt"))
        >>> r.grads["x"], r.grads["xt"]
        (array([1.]), array([[1.]]))
    """
    chosen = get_strategy(strategy)
    return chosen.compute_gradients(Problem(case, values, data, tuple(wrt)))


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
    return chosen.make_trainer(Problem(case, values, data, tuple(wrt)), optimizer)
