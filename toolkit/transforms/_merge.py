"""The gradient merge and the update broadcast over a resolved tie plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from toolkit.transforms._maps import TieMap, match_sharding
from toolkit.transforms._plan import Plan


def merge_leaves(leaves: Sequence[Any], plan: Plan) -> list[Any]:
    """Sums every tie group's gradients into its root source, in source coordinates.

    Example:
        >>> import numpy as np
        >>> from toolkit.transforms import Tie
        >>> from toolkit.transforms._plan import resolve
        >>> grads = {"a": np.ones((2, 3)), "b": np.full((3, 2), 2.0)}
        >>> plan = resolve([Tie("a", "b", "transpose")], grads)
        >>> merge_leaves(plan.treedef.flatten_up_to(grads), plan)[0].tolist()
        [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
    """
    out = list(leaves)
    for i, weight in plan.weights:  # each copy's own gradient, weighted once
        out[i] = out[i] * weight
    for link in reversed(plan.links):  # deepest targets first, so chains fold into their root
        acc, g = out[link.source], out[link.target]
        if _fence_applies(acc, link.map):
            out[link.source] = _materialized(link.map.accumulate, acc, g)
        else:
            out[link.source] = link.map.accumulate(acc, g)
    return out


#: Merged transposed gradients at least this large are computed by their own loop (see
#: :func:`_materialized`). Smaller ones stay in cache, where a strided read costs little and the
#: conditional would cost more than it saves.
FENCE_MIN_BYTES = 1 << 20


def _fence_applies(acc: Any, map_: TieMap) -> bool:
    # Only real transposes of large jax arrays that are not explicitly sharded (a fence needs a
    # replicated predicate, and explicit sharding says where every value lives).
    if not isinstance(acc, jax.Array) or acc.size == 0 or not map_.transposes(acc.shape):
        return False
    if acc.size * acc.dtype.itemsize < FENCE_MIN_BYTES:
        return False
    spec = getattr(jax.typeof(acc).sharding, "spec", ())
    return all(entry is None for entry in spec)


def _materialized(fn: Any, *args: Any) -> Any:
    """Returns ``fn(*args)``, computed by XLA:CPU as its own loop writing its own buffer.

    XLA fuses a transposed read into every elementwise consumer: the merged gradient of a
    transpose tie would be recomputed, with a strided read of the target's gradient, in each
    loop that reads it (Adam has two, one per moment), and strided reads are several times
    slower than contiguous ones on CPU. ``lax.optimization_barrier`` does not stop that (XLA
    removes barriers before fusion), but fusion never crosses a conditional: both branches
    are ``fn``, so the predicate (read from the data, so it cannot be folded) never matters.
    Other backends get ``fn(*args)`` unchanged: their transposes are tiled, and a conditional
    can cost a host round trip there.

    The sum is the same single addition, but it no longer fuses with the loops that produce
    the gradients, where XLA may contract it into a fused multiply-add: elements can differ by
    an ulp or two from the unfenced program (or from ``jax.grad`` of the shared model).
    """

    def fenced(*operands: Any) -> Any:
        first = operands[0]
        probe = first[(0,) * first.ndim]
        return jax.lax.cond(probe == probe, fn, fn, *operands)

    return jax.lax.platform_dependent(*args, cpu=fenced, default=fn)


def broadcast_leaves(leaves: Sequence[Any], plan: Plan, like: Sequence[Any]) -> list[Any]:
    """Writes every target as ``map(source)``, roots first, sharded like ``like``'s target."""
    out = list(leaves)
    for link in plan.links:
        out[link.target] = match_sharding(link.map.apply(out[link.source]), like[link.target])
    return out
