"""Ties resolved against one pytree: leaf positions, validated shapes and dtypes, chain order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from toolkit.transforms._leaves import flatten, leaf_values, nnx_state_type
from toolkit.transforms._maps import TieMap
from toolkit.transforms._paths import Path, find, is_function, leaf_index, path_str
from toolkit.transforms._tie import Tie


def leaf_dtype(leaf: Any) -> np.dtype:
    """Returns the dtype of an array or Python scalar leaf."""
    # The leaf's own dtype: jnp.result_type would canonicalise float64 to float32 without x64.
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)


class Link(NamedTuple):
    """One validated tie, as leaf positions in the flattened pytree."""

    source: int
    target: int
    map: TieMap
    target_path: str


class Plan(NamedTuple):
    """Ties resolved against one pytree structure.

    ``links`` is ordered so that a leaf's own source is written before the leaf is read as a
    source (chains such as ``a -> b -> c`` resolve in one forward pass; the merge walks it
    backwards). ``weights`` holds, for each leaf whose own gradient is weighted in the merge
    (a :class:`Tie`'s ``weight`` or ``source_weight`` other than 1), its leaf position and
    weight.
    """

    treedef: Any
    links: tuple[Link, ...]
    targets: frozenset[int]
    weights: tuple[tuple[int, float], ...] = ()


def resolve(ties: Sequence[Tie], tree: Any) -> Plan:
    """Validates ``ties`` against ``tree`` and returns their leaf-level plan.

    Runs on shapes and dtypes only, so it works on tracers inside ``jax.jit``.

    Example:
        >>> import numpy as np
        >>> params = {"w": np.ones((2, 3)), "wt": np.ones((3, 2))}
        >>> plan = resolve([Tie("w", "wt", "transpose")], params)
        >>> plan.links[0].source, plan.links[0].target, sorted(plan.targets)
        (0, 1, [1])

    Raises:
        ValueError: naming the path: unknown path, a target tied twice, a cycle, a slice out of
            range, or a shape or dtype mismatch under the map.
    """
    with_paths, treedef, boxes = flatten(tree)
    paths = [p for p, _ in with_paths]
    # An nnx State of raw arrays (what nnx.Optimizer passes to update) stood for Variables.
    state_type = nnx_state_type()
    pure_state = state_type is not None and isinstance(tree, state_type)
    boxed = [pure_state or isinstance(leaf, boxes) for _, leaf in with_paths]
    leaves = leaf_values([leaf for _, leaf in with_paths])
    index = leaf_index(paths, treedef, boxed)

    def spelling(path: Path, found: int) -> str:
        # Errors and tie_drift name a leaf as the tie spells it; a function by the leaf's path.
        return index.shown[found] if is_function(path) else path_str(path)

    parent: dict[int, tuple[int, Tie]] = {}
    for tie in ties:
        src = find(tie.source, tie, index)
        tgt = find(tie.target, tie, index)
        if tgt in parent:
            other_src, other = parent[tgt]
            raise ValueError(
                f"target {spelling(tie.target, tgt)!r} is tied twice (from "
                f"{spelling(other.source, other_src)!r} and {spelling(tie.source, src)!r}); a "
                "tied parameter has exactly one source"
            )
        parent[tgt] = (src, tie)

    depth: dict[int, int] = {}  # distance from the tie group's root (a leaf that is no target)
    for tgt in parent:
        chain = [tgt]
        node = parent[tgt][0]
        while node in parent and node not in depth:
            if node in chain:
                cycle = [*chain[chain.index(node) :], node]
                names = " <- ".join(index.shown[i] for i in cycle)
                raise ValueError(f"ties form a cycle: {names}; every tie group needs a root")
            chain.append(node)
            node = parent[node][0]
        base = depth.get(node, 0)
        for offset, n in enumerate(reversed(chain)):
            depth[n] = base + offset + 1

    links = []
    for tgt, (src, tie) in parent.items():
        source, target = leaves[src], leaves[tgt]
        source_name, target_name = spelling(tie.source, src), spelling(tie.target, tgt)
        try:
            expected = tie.map.out_shape(np.shape(source))
        except ValueError as err:
            raise ValueError(f"tie {tie}: source {source_name!r}: {err}") from None
        if tuple(np.shape(target)) != expected:
            raise ValueError(
                f"tie {tie}: target {target_name!r} has shape {np.shape(target)} but "
                f"{tie.map} of source shape {np.shape(source)} has shape {expected}"
            )
        if leaf_dtype(source) != leaf_dtype(target):
            raise ValueError(
                f"tie {tie}: target {target_name!r} has dtype {leaf_dtype(target)} but "
                f"source {source_name!r} has {leaf_dtype(source)}"
            )
        links.append(Link(src, tgt, tie.map, target_name))
    links.sort(key=lambda link: depth[link.target])
    weights = _merge_weights(parent, spelling)
    return Plan(treedef, tuple(links), frozenset(parent), tuple(sorted(weights.items())))


def _merge_weights(
    parent: dict[int, tuple[int, Tie]], spelling: Callable[[Path, int], str]
) -> dict[int, float]:
    """Each weighted leaf's weight: a target's from its tie, a root's from its ties' sources."""
    weights = {tgt: tie.weight for tgt, (_, tie) in parent.items() if tie.weight != 1.0}
    root_weight: dict[int, tuple[float, Tie]] = {}
    for src, tie in parent.values():
        if tie.source_weight == 1.0:
            continue
        if src in parent:
            raise ValueError(
                f"tie {tie}: source_weight weights a tie group's root, but source "
                f"{spelling(tie.source, src)!r} is the target of tie {parent[src][1]}; give "
                "that tie weight= instead"
            )
        if src in root_weight and root_weight[src][0] != tie.source_weight:
            raise ValueError(
                f"ties {root_weight[src][1]} and {tie} give source "
                f"{spelling(tie.source, src)!r} different source weights; a copy's gradient "
                "has one weight"
            )
        root_weight[src] = (tie.source_weight, tie)
        weights[src] = tie.source_weight
    return weights
