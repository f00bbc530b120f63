"""Untying and retying during training: optimizer state carried between tied and untied trees.

``untie`` turns the state of ``tied(inner, ties)`` into the state ``inner`` would have on the
untied tree, and ``retie`` merges such a state back. Together they let a run switch between
one optimizer state per tie group and one per copy, e.g. tied for the first two thirds of
training and untied after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toolkit.transforms._leaves import KeyPath, box_types, flatten, leaf_values, with_values
from toolkit.transforms._plan import Link, Plan, resolve
from toolkit.transforms._tie import Tie
from toolkit.transforms._tied import TiedState, tied
from toolkit.transforms._tied_target import TiedTarget


def _slots(state: Any) -> list[tuple[KeyPath, Any]]:
    # A state's slots with paths: TiedTarget nodes and flax.nnx Variables count as one slot.
    boxes = (TiedTarget, *box_types())
    return jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: isinstance(x, boxes))[0]


def _aligned(
    tied_state: Any, untied_state: Any, ties: Sequence[Tie]
) -> list[tuple[KeyPath, Any, Any]]:
    """Pairs the slots of a tied and an untied state of one optimizer, by path."""
    tied_slots, untied_slots = _slots(tied_state), _slots(untied_state)
    tied_paths = [path for path, _ in tied_slots]
    untied_paths = [path for path, _ in untied_slots]
    if tied_paths != untied_paths:
        missing = sorted(
            {jax.tree_util.keystr(p) for p in set(tied_paths) ^ set(untied_paths)}, key=str
        )[:6]
        raise ValueError(
            f"the state does not fit the optimizer on these params with ties "
            f"{', '.join(map(str, ties))}: slots differ at {', '.join(missing)}; pass the "
            "optimizer given to tied() and params of the tree it was trained on"
        )
    return [(path, t, u) for (path, t), (_, u) in zip(tied_slots, untied_slots, strict=True)]


def _target_slots(
    aligned: list[tuple[KeyPath, Any, Any]], plan: Plan, param_paths: list[KeyPath]
) -> list[tuple[KeyPath, Link]]:
    """Where a tied state holds a TiedTarget: each slot's prefix in the state, and its tie."""
    by_target = {link.target_path: link for link in plan.links}
    found = []
    for path, tied_slot, _ in aligned:
        if not isinstance(tied_slot, TiedTarget) or tied_slot.path not in by_target:
            continue
        link = by_target[tied_slot.path]
        suffix = param_paths[link.target]
        if tuple(path[len(path) - len(suffix) :]) == tuple(suffix):
            found.append((tuple(path[: len(path) - len(suffix)]), link))
    return found


def _shaped_like(slot: Any, shape: tuple[int, ...]) -> bool:
    value = leaf_values([slot])[0]
    return hasattr(value, "shape") and tuple(value.shape) == shape


def untie(
    state: TiedState, params: optax.Params, ties: Sequence[Tie], inner: optax.GradientTransformation
) -> optax.OptState:
    """The state ``inner`` would have on the untied tree, from the state of ``tied(inner, ties)``.

    Each target gets its source's slots through the map: a slot shaped like the source (Adam's
    ``mu`` and ``nu``, momentum, schedule-free iterates) becomes ``map(source slot)``, so the
    copies start untied with the state the tie group had. A target's slot of another shape
    (Adafactor's factored moments, L-BFGS's history) starts as ``inner.init`` makes it. Slots
    shared by all params (step counts, hyperparameters) carry over.

    Args:
        state: the state of ``tied(inner, ties)``.
        params: the untied params (each target a leaf), the tree ``tied`` was trained on.
        ties: the ties given to ``tied``.
        inner: the optimizer given to ``tied``; it then continues alone on ``params``.

    Returns:
        A state of ``inner`` for ``params``.

    Raises:
        ValueError: ``state`` does not fit ``inner`` and ``params``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> ties = [Tie("w", "wt", "transpose")]
        >>> params = {"w": jnp.ones((2, 3)), "wt": jnp.ones((3, 2))}
        >>> tx = tied(optax.adam(0.1), ties)
        >>> grads = {"w": jnp.arange(6.0).reshape(2, 3), "wt": jnp.zeros((3, 2))}
        >>> _, state = tx.update(grads, tx.init(params))
        >>> mu = untie(state, params, ties, optax.adam(0.1))[0].mu
        >>> bool((mu["wt"] == mu["w"].T).all()) and float(mu["w"][1, 2])
        0.5
    """
    plan = resolve(ties, params)
    param_paths = [path for path, _ in flatten(params)[0]]
    template = inner.init(params)
    aligned = _aligned(state.inner_state, template, ties)
    slots = {path: tied_slot for path, tied_slot, _ in aligned}
    fresh = {path: untied_slot for path, _, untied_slot in aligned}
    shapes = [np.shape(x) for x in leaf_values(plan.treedef.flatten_up_to(params))]
    for prefix, link in _target_slots(aligned, plan, param_paths):  # roots first
        source = slots.get(prefix + tuple(param_paths[link.source]))
        at = prefix + tuple(param_paths[link.target])
        if source is not None and _shaped_like(source, shapes[link.source]):
            mapped = link.map.apply(leaf_values([source])[0])
            slots[at] = with_values([mapped], [fresh[at]])[0]
        else:
            slots[at] = fresh[at]
    return jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(template, is_leaf=lambda x: isinstance(x, box_types())),
        [slots[path] for path, _, _ in aligned],
    )


def retie(
    state: optax.OptState,
    params: optax.Params,
    ties: Sequence[Tie],
    inner: optax.GradientTransformation,
) -> TiedState:
    """Merges a state of ``inner`` on the untied tree into the state of ``tied(inner, ties)``.

    The rule, per kind of slot:

    * a slot shaped like its parameter (first and second moments, momentum, iterates): the
      tie group's slot is the elementwise mean of its copies' slots, each read in the
      source's coordinates (``mapᵀ``); where a partial tie covers only part of the source,
      the mean is over the copies that hold that element. The mean keeps a state whose
      copies agree unchanged, so ``retie(untie(s)) == s``.
    * a slot of another shape (factored moments, histories): the source's own slot.
    * slots shared by all params (step counts, hyperparameters): as they are.

    Args:
        state: a state of ``inner`` for the untied ``params``.
        params: the untied params to continue from; every tie must hold (write the targets
            with :func:`materialize_ties`, after averaging the copies if both should count).
        ties: the ties to train with from now on.
        inner: the optimizer whose state ``state`` is.

    Returns:
        A :class:`TiedState` for ``tied(inner, ties)``.

    Raises:
        ValueError: a tie does not hold in ``params``, or ``state`` does not fit ``inner``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> ties = [Tie("w", "wt", "transpose")]
        >>> params = {"w": jnp.ones((2, 3)), "wt": jnp.ones((3, 2))}
        >>> state = optax.sgd(0.1, momentum=0.9).init(params)
        >>> state = (state[0]._replace(trace={"w": jnp.ones((2, 3)), "wt": jnp.zeros((3, 2))}),
        ...          *state[1:])
        >>> retie(state, params, ties, optax.sgd(0.1, momentum=0.9)).inner_state[0].trace["w"]
        Array([[0.5, 0.5, 0.5],
               [0.5, 0.5, 0.5]], dtype=float32)
    """
    plan = resolve(ties, params)
    param_paths = [path for path, _ in flatten(params)[0]]
    template = tied(inner, ties).init(params).inner_state
    aligned = _aligned(template, state, ties)
    slots = {path: untied_slot for path, _, untied_slot in aligned}
    shapes = [np.shape(x) for x in leaf_values(plan.treedef.flatten_up_to(params))]
    prefixes = dict.fromkeys(prefix for prefix, _ in _target_slots(aligned, plan, param_paths))
    for prefix in prefixes:
        at = [prefix + tuple(path) for path in param_paths]
        sums: dict[int, Any] = {}
        counts: dict[int, Any] = {}
        for i, path in enumerate(at):
            if path in slots and _shaped_like(slots[path], shapes[i]):
                value = leaf_values([slots[path]])[0]
                sums[i], counts[i] = value, jnp.ones(shapes[i], jnp.int32)
        for link in reversed(plan.links):  # deepest targets first, as the gradient merge
            if link.source in sums and link.target in sums:
                sums[link.source] = link.map.accumulate(sums[link.source], sums[link.target])
                counts[link.source] = link.map.accumulate(counts[link.source], counts[link.target])
        roots = {link.source for link in plan.links} - plan.targets
        for root in roots & set(sums):
            mean = (sums[root] / counts[root]).astype(sums[root].dtype)
            slots[at[root]] = with_values([mean], [slots[at[root]]])[0]
    leaves = [
        tied_slot if isinstance(tied_slot, TiedTarget) else slots[path]
        for path, tied_slot, _ in aligned
    ]
    structure = jax.tree_util.tree_structure(
        template, is_leaf=lambda x: isinstance(x, (TiedTarget, *box_types()))
    )
    return TiedState(jax.tree_util.tree_unflatten(structure, leaves))
