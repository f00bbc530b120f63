"""optax transforms for tied parameters: merge their gradients, and optimise each tie once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toolkit.transforms._leaves import flatten, leaf_values, nnx_state_type, with_values
from toolkit.transforms._merge import broadcast_leaves, merge_leaves
from toolkit.transforms._paths import path_str
from toolkit.transforms._plan import Link, Plan, leaf_dtype, resolve
from toolkit.transforms._tie import Tie
from toolkit.transforms._tied_target import TiedTarget


def merge_tied_gradients(ties: Sequence[Tie]) -> optax.GradientTransformation:
    """Gives every member of a tie group the group's total gradient.

    With each alias stored as its own leaf (what ``jax.grad`` on an untied pytree returns), a
    tied weight's gradient is split between its copies. This transform sums them in the
    source's coordinates (``g_src + mapᵀ(g_tgt)``, a scatter-add for partial ties) and writes the
    sum back to every member through its map, so plain SGD keeps ties. Stateful optimizers
    chained after it still keep one state per copy; :func:`tied` avoids that.

    Args:
        ties: the ties, validated against the params at ``init`` (which must hold them exactly,
            see :func:`tied`) and the updates at ``update``.

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
        check_ties_hold(params, resolve(ties, params))
        return optax.EmptyState()

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        plan = resolve(ties, updates)
        leaves = plan.treedef.flatten_up_to(updates)
        values = leaf_values(leaves)  # flax.nnx Variables hold their gradient as their value
        merged = broadcast_leaves(merge_leaves(values, plan), plan, values)
        return plan.treedef.unflatten(with_values(merged, leaves)), state

    return optax.GradientTransformation(init_fn, update_fn)


def _equation(link: Link, source: str) -> str:
    return f"{link.target_path} == {link.map.describe(source)}"


def _max_abs_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    both_nan = np.isnan(actual) & np.isnan(expected)  # a NaN copied from the source holds
    return float(np.max(np.where(both_nan, 0.0, np.abs(actual - expected)), initial=0.0))


def check_ties_hold(params: Any, plan: Plan) -> None:
    """Raises if a tie is false on concrete ``params``: ``target != map(source)`` anywhere.

    Exact equality: tied copies are materialised copies, so any difference means the params
    were not built from their ties. Skipped when ``params`` are abstract (inside ``jax.jit``).
    Arrays spread over several processes are compared by a jitted reduction.

    Raises:
        ValueError: naming each false tie as an equation and its largest difference.
    """
    if not plan.links:
        return
    names = [path_str(path) for path, _ in flatten(params)[0]]
    leaves = leaf_values(plan.treedef.flatten_up_to(params))
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        return
    local = all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves)
    if local:
        drifts = [
            _max_abs_difference(
                np.asarray(leaves[link.target]), link.map.apply(np.asarray(leaves[link.source]))
            )
            for link in plan.links
        ]
    else:

        @jax.jit
        def global_drifts(leaves: list[Any]) -> list[jax.Array]:
            drifts = []
            for link in plan.links:
                actual, expected = leaves[link.target], link.map.apply(leaves[link.source])
                both_nan = jnp.isnan(actual) & jnp.isnan(expected)
                diff = jnp.where(both_nan, 0, jnp.abs(actual - expected))
                drifts.append(jnp.max(diff, initial=0))
            return drifts

        drifts = [float(d) for d in global_drifts(leaves)]
    false = [
        f"{_equation(link, names[link.source])} (max abs difference {drift:.6g})"
        for link, drift in zip(plan.links, drifts, strict=True)
        if drift != 0.0
    ]
    if false:
        state_type = nnx_state_type()
        if state_type is not None and isinstance(params, state_type):
            # nnx.Optimizer hands init the module's state; the fix must reach the module.
            fix = (
                "write them into the module with nnx.update(model, "
                "materialize_ties(nnx.state(model, nnx.Param), ties)), which writes every "
                "target from its source"
            )
        else:
            fix = (
                "build them with materialize_ties(params, ties), which writes every target "
                "from its source"
            )
        raise ValueError(
            f"tie{'s' if len(false) > 1 else ''} not holding in the params given to init: "
            + "; ".join(false)
            + f". Tied copies must be exact; {fix}"
        )


class TiedState(NamedTuple):
    """State of :func:`tied`: the inner optimizer's state on the params without their targets.

    The inner optimizer sees the params' own tree structure with each tie target replaced by a
    :class:`TiedTarget` node (see :func:`tied`), so its state holds nothing for targets: where
    plain ``inner`` would keep a target's slot, this state holds the target's ``TiedTarget``.
    The one exception is a line search's stored gradient (a ``grad`` field, what
    ``optax.value_and_grad_from_state`` reads): it is kept in the params' full shape, with
    zero at the targets, so that it can be passed back to ``update`` like ``jax.grad``'s.
    """

    inner_state: Any


def without_targets(
    leaves: Sequence[Any], plan: Plan, like: Sequence[Any] | None = None
) -> list[Any]:
    """Returns ``leaves`` with every tie target replaced by its :class:`TiedTarget` node.

    The node describes the target as it is in ``like`` (the params), else in ``leaves``.
    """
    out = list(leaves)
    for link in plan.links:
        value = leaf_values([(leaves if like is None else like)[link.target]])[0]
        out[link.target] = TiedTarget(link.target_path, np.shape(value), leaf_dtype(value))
    return out


def _fits(tree: Any, plan: Plan) -> bool:
    # Whether tree has the params' structure (a TiedTarget counts as the leaf it stands for).
    try:
        plan.treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        return False
    return True


def with_targets(tree: Any, plan: Plan, like: Sequence[Any]) -> Any:
    """Returns the inner optimizer's ``tree`` with every target written as ``map(source)``."""
    return plan.treedef.unflatten(broadcast_leaves(plan.treedef.flatten_up_to(tree), plan, like))


def _has_grad_field(node: Any) -> bool:
    # The field optax.value_and_grad_from_state reads (via optax.tree.get) from line searches.
    return isinstance(node, tuple) and "grad" in getattr(node, "_fields", ())


def _map_stored_grads(state: Any, plan: Plan, fn: Callable[[list[Any]], list[Any]]) -> Any:
    def visit(node: Any) -> Any:
        if not _has_grad_field(node) or node.grad is None or not _fits(node.grad, plan):
            return node
        leaves = plan.treedef.flatten_up_to(node.grad)
        return node._replace(grad=plan.treedef.unflatten(fn(leaves)))

    return jax.tree.map(visit, state, is_leaf=_has_grad_field)


def _zero_targets(leaves: Sequence[Any], plan: Plan) -> list[Any]:
    # A gradient with the whole total at the root source and zero at the targets: update
    # merges it to the same total, as it does jax.grad's split gradient.
    out = list(leaves)
    for link in plan.links:
        node = out[link.target]
        out[link.target] = jnp.zeros(node.shape, node.dtype)
    return out


def _inner_extra_args(extra_args: dict[str, Any], plan: Plan, like: Sequence[Any]) -> dict:
    """The extra arguments of ``update`` in the inner optimizer's coordinates.

    A callable (``value_fn``, Sophia's ``obj_fn``) is a function of params: the inner
    optimizer calls it on its tree, and the user's function gets full params, each target
    written from its source, so its gradient is the merged one. A pytree with the params'
    structure loses its targets; ``grad`` is a gradient, so it is merged first. Anything else
    (values, keys, pytrees of another structure) passes unchanged.
    """
    out = {}
    for name, arg in extra_args.items():
        if callable(arg):
            out[name] = _on_full_params(arg, plan, like)
        elif arg is not None and _fits(arg, plan):
            leaves = plan.treedef.flatten_up_to(arg)
            if name == "grad":
                leaves = merge_leaves(leaves, plan)
            out[name] = plan.treedef.unflatten(without_targets(leaves, plan))
        else:
            out[name] = arg
    return out


def _on_full_params(fn: Callable[..., Any], plan: Plan, like: Sequence[Any]) -> Callable:
    def on_inner_tree(params: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(with_targets(params, plan, like), *args, **kwargs)

    return on_inner_tree


def _optimizer_name(state: TiedState) -> str:
    """Names the inner optimizer by its state's types: optax transformations carry no name."""
    states = jax.tree.leaves(
        state.inner_state, is_leaf=lambda x: isinstance(x, tuple) and hasattr(x, "_fields")
    )
    names = [type(x).__name__ for x in states if hasattr(x, "_fields")]
    names = [name for name in dict.fromkeys(names) if name != "EmptyState"]
    return f"the optimizer with state {', '.join(names)}" if names else "a stateless optimizer"


def _is_per_example(ties: Sequence[Tie], updates: Any, params: Any, state: TiedState) -> bool:
    """Whether ``updates`` are per-example gradients of ``params`` (DP-SGD's).

    Every leaf then has one leading axis more than its parameter.

    Raises:
        ValueError: naming the ties and the optimizer, for params of another structure than
            the updates (such as ``optax.lookahead``'s).
    """
    with_paths, treedef, _ = flatten(updates)
    spelled = ", ".join(str(tie) for tie in ties)
    try:
        param_leaves = treedef.flatten_up_to(params)
    except (ValueError, TypeError):
        raise ValueError(
            f"tied (ties {spelled}) around {_optimizer_name(state)}: the params passed to "
            "update are not a pytree of the updates' structure, so the ties cannot apply to "
            "both; for an optimizer whose params wrap the model's (optax.lookahead's "
            "LookaheadParams), put tied inside it: optax.lookahead(tied(fast_optimizer, ties), "
            "...)"
        ) from None
    shapes = [np.shape(x) for x in leaf_values([leaf for _, leaf in with_paths])]
    param_shapes = [np.shape(x) for x in leaf_values(param_leaves)]
    pairs = zip(shapes, param_shapes, strict=True)
    return shapes != param_shapes and all(len(s) == len(p) + 1 and s[1:] == p for s, p in pairs)


def tied(
    inner: optax.GradientTransformation, ties: Sequence[Tie]
) -> optax.GradientTransformationExtraArgs:
    """Optimises tied parameters once per tie group, keeping every tie exact.

    Each step: merge the group's gradients into its source (as :func:`merge_tied_gradients`),
    run ``inner`` on the params' tree with every target removed (replaced by a
    :class:`TiedTarget`, an empty pytree node like ``None``), then write each source's update
    to its targets through the map. ``inner`` therefore holds exactly the arrays of the shared
    (one leaf per real parameter) model: one optimizer state per real parameter, global-norm
    clipping and weight decay count each parameter once, and the result equals running
    ``inner`` on the shared model. Since targets receive exactly ``map(update of source)``, a
    tie that holds at ``init`` holds after every step, whatever ``inner`` does. (Applying the
    updates can still leave last-bit differences: XLA on CPU may contract ``p + u`` into a
    fused multiply-add in the loop that updates the source and not in the one that updates a
    target, e.g. a short slice. :func:`materialize_ties` resets targets from sources when that
    matters.)

    Callbacks of ``inner`` see the params' own tree structure: mask and label functions
    (``optax.adamw(mask=...)``, ``optax.masked``, ``optax.multi_transform``) get every leaf,
    a target as its ``TiedTarget``, which has the target's ``shape``, ``ndim``, ``size`` and
    ``dtype`` (what they decide for it does not matter: its update is its source's). Extra
    arguments of ``update`` are translated: a callable (a line search's ``value_fn``,
    Sophia's ``obj_fn``) is called with full params, each target written from its source; a
    ``grad`` is merged like the updates; any other pytree shaped like the params loses its
    targets. The gradient a line search stores keeps the full shape (zero at the targets), so
    ``optax.value_and_grad_from_state`` works on the tied state, and ``optax.tree_map_params``
    maps the state's slots of the sources. Per-example gradients (every leaf with one leading
    axis more than its parameter, as ``optax.contrib.dpsgd`` reads them) merge example by
    example. For schedule-free optimizers,
    :func:`tied_eval_params` gives the evaluation params; :func:`untie` and :func:`retie`
    convert the state to and from the state of ``inner`` on the untied tree.

    ``init`` checks, on concrete params, that every tie holds exactly (``target ==
    map(source)``) and raises ``ValueError`` naming a false one and its largest difference;
    under ``jax.jit`` it cannot look at values and checks shapes and dtypes only. ``update``
    refuses params that are not a pytree of the updates' structure (``optax.lookahead``'s
    ``LookaheadParams``; put ``tied`` inside it instead) with a ``ValueError`` naming the ties
    and the optimizer.

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
        >>> state.inner_state[0].mu["unembed"]
        TiedTarget('unembed', shape=(3, 2), dtype=float32)
        >>> grads = {"embed": jnp.ones((2, 3)), "unembed": jnp.ones((3, 2))}
        >>> updates, state = tx.update(grads, state, params)
        >>> params = optax.apply_updates(params, updates)
        >>> bool((params["unembed"] == params["embed"].T).all())
        True
    """
    ties = tuple(ties)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: optax.Params) -> TiedState:
        if not jax.tree.leaves(params):
            # A tree without leaves holds no ties: optax.tree_map_params calls init with one
            # placeholder object to find which parts of the state are shaped like the params.
            return TiedState(inner.init(params))
        plan = resolve(ties, params)
        check_ties_hold(params, plan)
        leaves = plan.treedef.flatten_up_to(params)
        inner_state = inner.init(plan.treedef.unflatten(without_targets(leaves, plan)))
        return TiedState(_map_stored_grads(inner_state, plan, lambda g: _zero_targets(g, plan)))

    def update_fn(
        updates: optax.Updates,
        state: TiedState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, TiedState]:
        per_example = params is not None and _is_per_example(ties, updates, params, state)
        plan = resolve(ties, params if per_example else updates)
        leaves = plan.treedef.flatten_up_to(updates)
        values = leaf_values(leaves)  # flax.nnx Variables hold their gradient as their value
        param_leaves = None if params is None else plan.treedef.flatten_up_to(params)
        inner_params = (
            None if params is None else plan.treedef.unflatten(without_targets(param_leaves, plan))
        )
        if per_example:
            # Each example's gradients merge on their own; the inner optimizer aggregates.
            like = leaf_values(param_leaves)
            merged = with_values(jax.vmap(lambda v: merge_leaves(v, plan))(values), leaves)
            out_leaves = param_leaves
        else:
            like = values
            merged = with_values(merge_leaves(values, plan), leaves)
            out_leaves = leaves
        inner_state = _map_stored_grads(state.inner_state, plan, lambda g: without_targets(g, plan))
        inner_updates, inner_state = inner.update(
            plan.treedef.unflatten(without_targets(merged, plan, like)),
            inner_state,
            inner_params,
            **_inner_extra_args(extra_args, plan, like),
        )
        inner_values = leaf_values(plan.treedef.flatten_up_to(inner_updates))
        out = with_values(broadcast_leaves(inner_values, plan, like), out_leaves)
        inner_state = _map_stored_grads(inner_state, plan, lambda g: _zero_targets(g, plan))
        return plan.treedef.unflatten(out), TiedState(inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def tied_eval_params(state: TiedState, params: optax.Params, ties: Sequence[Tie]) -> Any:
    """Evaluation params of a schedule-free optimizer run inside :func:`tied`.

    ``optax.contrib.schedule_free_eval_params(state, params)`` reads the schedule-free state,
    which ``tied`` wraps; this applies it to the inner state and the params without their
    targets, and writes each target from its source's evaluation params.

    Args:
        state: the state of ``tied(optax.contrib.schedule_free_*(...), ties)``.
        params: the params being trained (the untied tree).
        ties: the ties given to :func:`tied`.

    Returns:
        The evaluation params, with every tie holding.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> ties = [Tie("w", "wt", "transpose")]
        >>> tx = tied(optax.contrib.schedule_free_sgd(0.1), ties)
        >>> params = {"w": jnp.ones((2, 3)), "wt": jnp.ones((3, 2))}
        >>> state = tx.init(params)
        >>> grads = {"w": jnp.ones((2, 3)), "wt": jnp.zeros((3, 2))}
        >>> updates, state = tx.update(grads, state, params)
        >>> params = optax.apply_updates(params, updates)
        >>> ev = tied_eval_params(state, params, ties)
        >>> bool((ev["wt"] == ev["w"].T).all())
        True
    """
    plan = resolve(ties, params)
    leaves = plan.treedef.flatten_up_to(params)
    inner_params = plan.treedef.unflatten(without_targets(leaves, plan))
    eval_params = optax.contrib.schedule_free_eval_params(state.inner_state, inner_params)
    return with_targets(eval_params, plan, leaves)
