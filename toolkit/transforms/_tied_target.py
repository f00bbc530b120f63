"""The node that stands for a tie target in the trees the inner optimizer of ``tied`` sees."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


class TiedTarget:
    """A tie target removed from the params: an empty pytree node that keeps its description.

    :func:`~toolkit.transforms.tied` hands its inner optimizer the params' own tree with each
    tie target replaced by a ``TiedTarget``. Being a pytree node without children, like
    ``None`` or ``optax.MaskedNode``, it is skipped by ``jax.tree.map`` and by every optax
    transform, so the inner optimizer keeps no state for it and never computes on it (Muon's
    fan-in scaling, SM3's max-reductions and Sophia's Hessian estimate see the sources only).
    Callbacks that read leaf metadata (mask and label functions that test ``x.ndim``, flax's
    ``traverse_util.flatten_dict``, haiku's ``data_structures.map``) still find the target's
    ``shape``, ``ndim``, ``size`` and ``dtype`` there.

    Two nodes are the same structure when they describe the same target (path and shape):
    params and their gradients match even where their dtypes differ (mixed precision).

    Example:
        >>> import jax, numpy as np
        >>> tree = {"w": np.ones((2, 3)), "wt": TiedTarget("wt", (3, 2), np.float32)}
        >>> jax.tree.map(lambda x: x * 2, tree)["wt"]
        TiedTarget('wt', shape=(3, 2), dtype=float32)
        >>> jax.tree.map(lambda x: x.ndim, tree, is_leaf=lambda x: isinstance(x, TiedTarget))
        {'w': 2, 'wt': 2}
    """

    __slots__ = ("dtype", "path", "shape")

    def __init__(self, path: str, shape: Sequence[int], dtype: Any) -> None:
        self.path = path
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        """The target's number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The target's number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TiedTarget) and self.path == other.path and self.shape == other.shape
        )

    def __hash__(self) -> int:
        return hash((self.path, self.shape))

    def __repr__(self) -> str:
        return f"TiedTarget({self.path!r}, shape={self.shape}, dtype={self.dtype})"


# The node is its own auxiliary data: unflattening returns it unchanged.
jax.tree_util.register_pytree_node(TiedTarget, lambda node: ((), node), lambda node, _: node)


def is_tied_target(x: Any) -> bool:
    """Whether ``x`` is a :class:`TiedTarget` (the ``is_leaf`` that makes it visible)."""
    return isinstance(x, TiedTarget)
