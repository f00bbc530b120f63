"""Jitted gradients and training steps for the JAX strategies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toolkit.explicit._layout import NAMESPACE, Layout
from toolkit.problem import GradientResult, Problem
from toolkit.transforms import merge_tied_gradients, tie_drift, tied


def _device_data(data: Mapping[str, Any]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in data.items()}


def compute_gradients(strategy: str, problem: Problem, *, layout: str) -> GradientResult:
    """Gradients of the problem's loss on the pytree ``layout`` (``copies``, ``merged`` or
    ``shared``); tied gradients are merged under ``merged``.

    See :func:`toolkit.runner.strategies.compute_gradients` (the registry dispatching here).
    """
    wrt = problem.wrt
    layout = Layout.build(layout, problem.case, problem.values, wrt)
    ties = layout.ties
    merge = merge_tied_gradients(ties) if ties else None

    @jax.jit
    def value_and_grad(diff: Any, const: Any, data: Any) -> Any:
        value, grads = jax.value_and_grad(layout.loss)(diff, const, data)
        if merge is not None:
            grads, _ = merge.update(grads, merge.init(diff), diff)
        return value, grads

    diff, const = layout.split()
    value, grads = value_and_grad(diff, const, _device_data(problem.data))
    return GradientResult(strategy, float(value), layout.report(grads, wrt), {})


def _wrapped(
    optimizer: optax.GradientTransformation, wrap: str, ties: list[Any]
) -> optax.GradientTransformation:
    if wrap == "tied":
        return tied(optimizer, ties)
    if wrap == "merge" and ties:
        return optax.chain(merge_tied_gradients(ties), optimizer)
    if wrap not in ("plain", "merge"):
        raise ValueError(f"unknown optimizer wrap {wrap!r}; valid: plain, merge, tied")
    return optimizer


class ExplicitTrainer:
    """Trains a problem on a JAX pytree layout: one jitted optax step per :meth:`step`.

    ``wrap`` says what the optimizer sees: ``plain`` (the layout's leaves as they are: under
    ``copies`` the ``wrt`` copies update independently), ``merge``
    (:func:`~toolkit.transforms.merge_tied_gradients` chained before it) or ``tied`` (wrapped in
    :func:`~toolkit.transforms.tied`).

    Example:
        >>> import optax
        >>> from toolkit.experiments.tied_autoencoder import cases
        >>> problem = Problem.from_case(cases()[0], seed=0)
        >>> t = ExplicitTrainer("explicit", problem, optax.adam(0.1), layout="copies")
        >>> _ = [t.step() for _ in range(5)]
        >>> t.tie_drift() > 0  # Adam's per-copy normalisation breaks the tie
        True
    """

    def __init__(
        self,
        strategy: str,
        problem: Problem,
        optimizer: optax.GradientTransformation,
        *,
        layout: str,
        wrap: str = "plain",
    ) -> None:
        self.strategy = strategy
        self.layout = Layout.build(layout, problem.case, problem.values, problem.wrt)
        self._diff, self._const = self.layout.split()
        self._data = _device_data(problem.data)
        tx = _wrapped(optimizer, wrap, self.layout.ties)
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

    def step(self, data: Mapping[str, Any] | None = None) -> float:
        """Returns the loss at the current parameters (on ``data``, when given, from now on),
        then applies one update."""
        if data is not None:
            self._data = _device_data(data)
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

    def evaluate(self, metric: Any, data: Mapping[str, Any]) -> float:
        """``metric(np, params, data)`` at the current leaves (each tied copy as held)."""
        layout = self.layout
        value = jax.jit(lambda leaves, d: metric(NAMESPACE, layout.tree(leaves), d))(
            self._leaves(), _device_data(data))
        return float(value)
