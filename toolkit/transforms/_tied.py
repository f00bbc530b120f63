"""optax transforms for tied parameters: merge their gradients, and optimise each tie once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import optax

from toolkit.transforms._ties import Plan, Tie, broadcast_leaves, merge_leaves, resolve


def merge_tied_gradients(ties: Sequence[Tie]) -> optax.GradientTransformation:
    """Gives every member of a tie group the group's total gradient.

    With each alias stored as its own leaf (what ``jax.grad`` on an untied pytree returns), a
    tied weight's gradient is split between its copies. This transform sums them in the
    source's coordinates (``g_src + mapᵀ(g_tgt)``, a scatter-add for partial ties) and writes the
    sum back to every member through its map, so plain SGD keeps ties. Stateful optimizers
    chained after it still keep one state per copy; :func:`tied` avoids that.

    Args:
        ties: the ties, validated against the params at ``init`` and the updates at ``update``.

    Returns:
        A stateless ``optax.GradientTransformation``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> tx = optax.chain(merge_tied_gradients([Tie("w", "wt", "transpose")]),
        ...                  optax.sgd(1.0))
        >>> params = {"w": jnp.zeros((2, 3)), "wt": jnp.zeros((3, 2))}
        >>> grads = {"w": jnp.ones((2, 3)), "wt": jnp.ones((3, 2))}
        >>> updates, _ = tx.update(grads, tx.init(params))
        >>> float(updates["w"][0, 0]), float(updates["wt"][0, 0])
        (-2.0, -2.0)
    """
    ties = tuple(ties)

    def init_fn(params: optax.Params) -> optax.EmptyState:
        resolve(ties, params)
        return optax.EmptyState()

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        plan = resolve(ties, updates)
        leaves = plan.treedef.flatten_up_to(updates)
        merged = broadcast_leaves(merge_leaves(leaves, plan), plan, leaves)
        return plan.treedef.unflatten(merged), state

    return optax.GradientTransformation(init_fn, update_fn)


class TiedState(NamedTuple):
    """State of :func:`tied`: the inner state, with tie targets masked out."""

    inner_state: Any


def _mask_targets(leaves: Sequence[Any], plan: Plan) -> Any:
    # optax.MaskedNode is an empty pytree node: inner transforms see no leaf there and keep no
    # state for it, exactly as under optax.masked.
    return plan.treedef.unflatten(
        [optax.MaskedNode() if i in plan.targets else x for i, x in enumerate(leaves)]
    )


def tied(
    inner: optax.GradientTransformation, ties: Sequence[Tie]
) -> optax.GradientTransformationExtraArgs:
    """Optimises tied parameters once per tie group, keeping every tie exact.

    Each step: merge the group's gradients into its source (as :func:`merge_tied_gradients`),
    run ``inner`` on the non-target leaves only, then write each source's update to its targets
    through the map. ``inner`` therefore sees exactly the leaves of the shared (one leaf per
    real parameter) model: one optimizer state per real parameter, global-norm clipping and
    weight decay count each parameter once, and the result equals running ``inner`` on the
    shared model. Since targets receive exactly ``map(update of source)``, a tie that holds at
    ``init`` holds after every step, whatever ``inner`` does. (Applying the updates can still
    leave last-bit differences: XLA on CPU may contract ``p + u`` into a fused multiply-add in
    the loop that updates the source and not in the one that updates a target, e.g. a short
    slice. :func:`materialize_ties` resets targets from sources when that matters.)

    Under explicit sharding a target's update is resharded to the target's own sharding, and
    a target's gradient to its source's before it is added.

    Under ``jax.jit`` the merge, the inner update and the broadcast are one traced function, so
    XLA fuses them into the optimizer's elementwise passes. One exception, on CPU: a transposed
    merge of 1 MiB or more is computed once, in its own loop, rather than re-read transposed by
    every loop that reads the gradient (Adam's two moments); strided reads are slow there.

    Args:
        inner: the optimizer (any ``optax.GradientTransformation``).
        ties: the ties, validated against the params at ``init`` and the updates at ``update``.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose state is a :class:`TiedState`; extra
        arguments are passed on to ``inner``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> w = jnp.arange(6.0).reshape(2, 3)
        >>> params = {"embed": w, "unembed": w.T}
        >>> tx = tied(optax.adam(0.1), [Tie("embed", "unembed", "transpose")])
        >>> state = tx.init(params)
        >>> grads = {"embed": jnp.ones((2, 3)), "unembed": jnp.ones((3, 2))}
        >>> updates, state = tx.update(grads, state, params)
        >>> params = optax.apply_updates(params, updates)
        >>> bool((params["unembed"] == params["embed"].T).all())
        True
    """
    ties = tuple(ties)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: optax.Params) -> TiedState:
        plan = resolve(ties, params)
        return TiedState(inner.init(_mask_targets(plan.treedef.flatten_up_to(params), plan)))

    def update_fn(
        updates: optax.Updates,
        state: TiedState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, TiedState]:
        plan = resolve(ties, updates)
        leaves = plan.treedef.flatten_up_to(updates)
        masked_params = (
            None if params is None else _mask_targets(plan.treedef.flatten_up_to(params), plan)
        )
        inner_updates, inner_state = inner.update(
            _mask_targets(merge_leaves(leaves, plan), plan),
            state.inner_state,
            masked_params,
            **extra_args,
        )
        out = broadcast_leaves(plan.treedef.flatten_up_to(inner_updates), plan, leaves)
        return plan.treedef.unflatten(out), TiedState(inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
