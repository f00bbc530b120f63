"""Storing tied params once: drop tie targets before a checkpoint, rebuild them after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from toolkit.transforms._leaves import box_types
from toolkit.transforms._paths import find, leaf_index, path_str
from toolkit.transforms._plan import resolve
from toolkit.transforms._tie import Tie


def strip_targets(params: Any, ties: Sequence[Tie]) -> Any:
    """Returns ``params`` with every tie target replaced by ``None``.

    ``None`` is an empty pytree node, so the result holds each tied weight once and any
    pytree checkpointer (orbax, or a flat ``.npz`` of ``jax.tree_util.tree_flatten_with_path``)
    saves it as it is. :func:`restore_targets` rebuilds the targets.

    Args:
        params: the untied params; the ties are validated against them.
        ties: the ties.

    Returns:
        The same pytree structure with ``None`` at each target.

    Example:
        >>> import numpy as np
        >>> ties = [Tie("w", "wt", "transpose")]
        >>> strip_targets({"w": np.ones((2, 3)), "wt": np.ones((3, 2))}, ties)["wt"] is None
        True
    """
    plan = resolve(ties, params)
    leaves = plan.treedef.flatten_up_to(params)
    return plan.treedef.unflatten([None if i in plan.targets else x for i, x in enumerate(leaves)])


def restore_targets(stripped: Any, ties: Sequence[Tie]) -> Any:
    """Rebuilds the params that :func:`strip_targets` stripped: each target as ``map(source)``.

    The targets are computed from their sources (roots first, so chains resolve), exactly as
    :func:`materialize_ties` writes them; numpy leaves stay numpy.

    Args:
        stripped: params with ``None`` (or any value, which is overwritten) at each target.
        ties: the ties given to :func:`strip_targets`.

    Returns:
        The full params; the ties are validated against them.

    Raises:
        ValueError: a tie's path names no leaf, or a source is missing (``None`` and not
            itself a tie target).

    Example:
        >>> import numpy as np
        >>> ties = [Tie("w", "wt", "transpose")]
        >>> restore_targets({"w": np.arange(6.0).reshape(2, 3), "wt": None}, ties)["wt"].shape
        (3, 2)
    """
    boxes = box_types()
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(
        stripped, is_leaf=lambda x: x is None or (bool(boxes) and isinstance(x, boxes))
    )
    paths = [p for p, _ in with_paths]
    values = [v for _, v in with_paths]
    index = leaf_index(paths, treedef)
    pending = [(find(t.source, t, index), find(t.target, t, index), t) for t in ties]
    targets = {target for _, target, _ in pending}
    for source, _, tie in pending:
        if values[source] is None and source not in targets:
            raise ValueError(
                f"tie {tie}: source {path_str(paths[source])!r} is None in the stripped params; "
                "only tie targets are stripped"
            )
    written: set[int] = set()
    while pending:
        ready = [(s, t, tie) for s, t, tie in pending if s not in targets or s in written]
        if not ready:
            names = ", ".join(path_str(paths[t]) for _, t, _ in pending)
            raise ValueError(f"ties form a cycle through {names}; every tie group needs a root")
        for source, target, tie in ready:
            values[target] = tie.map.apply(values[source])
            written.add(target)
        pending = [p for p in pending if p not in ready]
    restored = treedef.unflatten(values)
    resolve(ties, restored)  # shapes, dtypes and cycles, with the usual errors
    return restored
