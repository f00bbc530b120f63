"""Flattening params pytrees with each ``flax.nnx.Variable`` as one leaf, and reading its value."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax

KeyPath = tuple[Any, ...]


def box_types() -> tuple[type, ...]:
    """Returns the wrapper types that count as one leaf: ``flax.nnx.Variable``, if flax is loaded.

    A Variable is a pytree node around its value, with its metadata (sharding annotations) in
    the node. Treating it as the leaf lets ``init`` hand whole Variables to the inner optimizer,
    which keeps their metadata in its state as it does without ties. Nothing is imported: if
    ``flax.nnx`` was never imported, no Variable can be in the tree.
    """
    variable = getattr(sys.modules.get("flax.nnx"), "Variable", None)
    return (variable,) if isinstance(variable, type) else ()


def nnx_state_type() -> type | None:
    """Returns ``flax.nnx.State`` if flax.nnx is loaded, else ``None``."""
    state = getattr(sys.modules.get("flax.nnx"), "State", None)
    return state if isinstance(state, type) else None


def flatten(tree: Any) -> tuple[list[tuple[KeyPath, Any]], Any, tuple[type, ...]]:
    """Flattens ``tree`` with paths, each ``flax.nnx.Variable`` one leaf, and the box types.

    Example:
        >>> import numpy as np
        >>> with_paths, treedef, _ = flatten({"w": np.ones(2), "b": [np.zeros(1)]})
        >>> [len(path) for path, _ in with_paths], treedef.num_leaves
        ([2, 1], 2)
    """
    boxes = box_types()
    is_leaf = (lambda x: isinstance(x, boxes)) if boxes else None
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return with_paths, treedef, boxes


def _box_parts(box: Any) -> tuple[list[Any], Any]:
    # One level of flattening: a Variable's only child is its value.
    return jax.tree_util.tree_flatten(box, is_leaf=lambda x: x is not box)


def leaf_values(leaves: Sequence[Any]) -> list[Any]:
    """Returns the leaves with every ``flax.nnx.Variable`` replaced by its value."""
    boxes = box_types()
    if not boxes:
        return list(leaves)
    return [_box_parts(x)[0][0] if isinstance(x, boxes) else x for x in leaves]


def with_values(values: Sequence[Any], like: Sequence[Any]) -> list[Any]:
    """Returns ``values``, each put back in its ``like`` leaf's Variable where that is one."""
    boxes = box_types()
    if not boxes:
        return list(values)
    return [
        _box_parts(box)[1].unflatten([value]) if isinstance(box, boxes) else value
        for value, box in zip(values, like, strict=True)
    ]
