"""Jitted gradients and training steps for the JAX strategies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toolkit.experiment import Case
from toolkit.explicit._layout import Layout
from toolkit.runner.results import GradientResult
from toolkit.transforms import merge_tied_gradients, tie_drift, tied


def _device_data(data: Mapping[str, Any]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in data.items()}


def compute_gradients(
    strategy: str,
    case: Case,
    values: Mapping[str, np.ndarray],
    data: Mapping[str, Any],
    wrt: Sequence[str],
) -> GradientResult:
    """Gradients of ``case``'s loss for ``explicit``, ``explicit-merged`` or ``explicit-shared``.

    See :func:`toolkit.runner.strategies.compute_gradients` (the registry dispatching here).
    """
    layout = Layout.build(strategy, case, values, wrt)
    ties = layout.ties
    merge = merge_tied_gradients(ties) if ties else None

    @jax.jit
    def value_and_grad(diff: Any, const: Any, data: Any) -> Any:
        value, grads = jax.value_and_grad(layout.loss)(diff, const, data)
        if merge is not None:
            grads, _ = merge.update(grads, merge.init(diff), diff)
        return value, grads

    diff, const = layout.split()
    value, grads = value_and_grad(diff, const, _device_data(data))
    return GradientResult(strategy, float(value), layout.report(grads, wrt), {})


class ExplicitTrainer:
    """Trains a case with a JAX strategy: one jitted optax step per :meth:`step`.

    ``explicit`` updates the ``wrt`` copies independently; ``explicit-merged`` chains
    :func:`~toolkit.transforms.merge_tied_gradients` before the optimizer; ``tied`` wraps it
    in :func:`~toolkit.transforms.tied`; ``explicit-shared`` updates one leaf per storage.

    Example:
        >>> import optax
        >>> from toolkit.experiments.tied_autoencoder import cases
        >>> case = cases()[0]
        >>> t = ExplicitTrainer("explicit", case, case.initial_values(0), case.make_data(0),
        ...                     case.wrt, optax.adam(0.1))
        >>> _ = [t.step() for _ in range(5)]
        >>> t.tie_drift() > 0  # Adam's per-copy normalisation breaks the tie
        True
    """

    def __init__(
        self,
        strategy: str,
        case: Case,
        values: Mapping[str, np.ndarray],
        data: Mapping[str, Any],
        wrt: Sequence[str],
        optimizer: optax.GradientTransformation,
    ) -> None:
        self.strategy = strategy
        layout_strategy = "explicit-merged" if strategy == "tied" else strategy
        self.layout = Layout.build(layout_strategy, case, values, wrt)
        ties = self.layout.ties
        if strategy == "tied":
            tx = tied(optimizer, ties)
        elif strategy == "explicit-merged" and ties:
            tx = optax.chain(merge_tied_gradients(ties), optimizer)
        else:
            tx = optimizer
        self._diff, self._const = self.layout.split()
        self._data = _device_data(data)
        self._state = tx.init(self._diff)
        layout = self.layout

        @jax.jit
        def step(diff: Any, state: Any, const: Any, data: Any) -> Any:
            value, grads = jax.value_and_grad(layout.loss)(diff, const, data)
            updates, state = tx.update(grads, state, diff)
            return value, optax.apply_updates(diff, updates), state

        self._step = step
        all_ties = self.layout.all_ties()
        self._drift = jax.jit(lambda leaves: tie_drift(leaves, all_ties)) if all_ties else None

    def step(self) -> float:
        """Returns the loss at the current parameters, then applies one update."""
        value, self._diff, self._state = self._step(
            self._diff, self._state, self._const, self._data
        )
        return float(value)

    def _leaves(self) -> dict[str, Any]:
        return {**self._const, **self._diff}

    def storage_values(self) -> dict[str, np.ndarray]:
        """The current value of each source leaf."""
        leaves = self._leaves()
        return {s: np.asarray(leaves[s]) for s in self.layout.case.sources}

    def tie_drift(self) -> float:
        """Max abs deviation between tied copies and ``map(source)``; 0.0 when shared."""
        if self._drift is None:
            return 0.0
        return max(float(d) for d in self._drift(self._leaves()).values())
