"""Tie declarations, their validation against a pytree, and helpers on tied pytrees."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from toolkit.transforms._maps import TieMap, match_sharding, parse_map

KeyPath = tuple[Any, ...]
#: A function from the pytree to one of its leaves, as in ``eqx.tree_at``: ``lambda m: m.out.w``.
PathFunction = Callable[[Any], Any]
Path = str | KeyPath | PathFunction


@dataclasses.dataclass(frozen=True)
class Tie:
    """Declares that the leaf at ``target`` equals ``map(leaf at source)``.

    Paths are dotted strings (``"dec.weight"``, ``"layers.0.w"``: dict keys, attribute names of
    NamedTuples and registered dataclasses, integer positions in lists and tuples), the same
    keys joined by ``/`` (Haiku's ``"lm/embed/embeddings"`` for ``params["lm/embed"]
    ["embeddings"]``), key paths (tuples of jax path keys as returned by
    ``jax.tree_util.tree_flatten_with_path``, or of plain keys: ``("layers", 0, "w")``), or
    functions from the pytree to the leaf (``lambda m: m.out.weight``, as in
    ``equinox.tree_at``). A ``flax.nnx.Variable`` counts as one leaf, named by its attribute
    path (``"embed.embedding"``; ``"embed.embedding.value"`` is accepted too). Paths are
    resolved against each pytree passed to ``init`` and ``update``. The map is anything
    :func:`parse_map` reads; it is stored parsed.

    Example:
        >>> Tie("embed", "unembed", "transpose")
        Tie(source='embed', target='unembed', map=parse_map('transpose'))
        >>> str(Tie("lm/embed/embeddings", lambda p: p["lm/out"]["w"], "transpose"))
        'lm/embed/embeddings -> <lambda> ... (transpose)'
    """

    source: Path
    target: Path
    map: TieMap = "identity"  # type: ignore[assignment]  # any parse_map spec; stored parsed

    def __post_init__(self) -> None:
        object.__setattr__(self, "map", parse_map(self.map))
        for role in ("source", "target"):
            path = getattr(self, role)
            if not ((isinstance(path, str) and path) or isinstance(path, tuple) or callable(path)):
                raise ValueError(
                    f"tie {role} {path!r} must be a dotted path such as 'dec.weight', a key "
                    "path, or a function from the pytree to the leaf such as "
                    "lambda m: m.dec.weight"
                )

    def __str__(self) -> str:
        return f"{path_str(self.source)} -> {path_str(self.target)} ({self.map})"


def _key_str(key: Any) -> str:
    for attr in ("key", "idx", "name"):  # DictKey / FlattenedIndexKey, SequenceKey, GetAttrKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _function_str(fn: PathFunction) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    # A lambda's name says nothing, so say where it is defined.
    return f"{name} at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"


def path_str(path: Path) -> str:
    """Returns the dotted spelling of a path (key paths are converted, functions named)."""
    if isinstance(path, str):
        return path
    if callable(path):
        return _function_str(path)  # type: ignore[arg-type]
    return ".".join(_key_str(k) for k in path)


def _box_types() -> tuple[type, ...]:
    """Returns the wrapper types that count as one leaf: ``flax.nnx.Variable``, if flax is loaded.

    A Variable is a pytree node around its value, with its metadata (sharding annotations) in
    the node. Treating it as the leaf lets ``init`` hand whole Variables to the inner optimizer,
    which keeps their metadata in its state as it does without ties. Nothing is imported: if
    ``flax.nnx`` was never imported, no Variable can be in the tree.
    """
    variable = getattr(sys.modules.get("flax.nnx"), "Variable", None)
    return (variable,) if isinstance(variable, type) else ()


def _nnx_state_type() -> type | None:
    state = getattr(sys.modules.get("flax.nnx"), "State", None)
    return state if isinstance(state, type) else None


def _flatten(tree: Any) -> tuple[list[tuple[KeyPath, Any]], Any, tuple[type, ...]]:
    boxes = _box_types()
    is_leaf = (lambda x: isinstance(x, boxes)) if boxes else None
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return with_paths, treedef, boxes


def _box_parts(box: Any) -> tuple[list[Any], Any]:
    # One level of flattening: a Variable's only child is its value.
    return jax.tree_util.tree_flatten(box, is_leaf=lambda x: x is not box)


def leaf_values(leaves: Sequence[Any]) -> list[Any]:
    """Returns the leaves with every ``flax.nnx.Variable`` replaced by its value."""
    boxes = _box_types()
    if not boxes:
        return list(leaves)
    return [_box_parts(x)[0][0] if isinstance(x, boxes) else x for x in leaves]


def with_values(values: Sequence[Any], like: Sequence[Any]) -> list[Any]:
    """Returns ``values``, each put back in its ``like`` leaf's Variable where that is one."""
    boxes = _box_types()
    if not boxes:
        return list(values)
    return [
        _box_parts(box)[1].unflatten([value]) if isinstance(box, boxes) else value
        for value, box in zip(values, like, strict=True)
    ]


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
    backwards).
    """

    treedef: Any
    links: tuple[Link, ...]
    targets: frozenset[int]


class _Position:
    """Stands in for leaf ``index`` while a path function walks the tree."""

    def __init__(self, index: int) -> None:
        self.index = index


class LeafIndex(NamedTuple):
    """The spellings of a flattened pytree's leaves (``None`` marks an ambiguous spelling)."""

    by_keys: dict[KeyPath, int]
    by_name: dict[str, int | None]  # dotted paths
    aliases: dict[str, int | None]  # other spellings: ``/``-joined keys, ``.value`` on Variables
    shown: list[str]  # the spelling listed in error messages, one per leaf
    treedef: Any


def _add(table: dict[str, int | None], name: str, index: int) -> None:
    table[name] = None if table.get(name, index) != index else index


def _leaf_index(
    paths: Sequence[KeyPath], treedef: Any, boxed: Sequence[bool] | None = None
) -> LeafIndex:
    by_keys = {tuple(p): i for i, p in enumerate(paths)}
    by_name: dict[str, int | None] = {}
    aliases: dict[str, int | None] = {}
    shown = []
    for i, p in enumerate(paths):
        keys = [_key_str(k) for k in p]
        name = ".".join(keys)
        _add(by_name, name, i)
        slashed = "/".join(keys)
        _add(aliases, slashed, i)
        if boxed is not None and boxed[i]:
            _add(aliases, name + ".value", i)
        # Haiku keys hold "/": there the slashed spelling is the one users know.
        shown.append(slashed if any("/" in k for k in keys) else name)
    for name in by_name:
        aliases.pop(name, None)  # a dotted path always means that leaf
    return LeafIndex(by_keys, by_name, aliases, shown, treedef)


def _known(index: LeafIndex) -> str:
    return ", ".join(index.shown[:12]) + (", ..." if len(index.shown) > 12 else "")


def _find_by_function(fn: PathFunction, tie: Tie, index: LeafIndex) -> int:
    markers = [_Position(i) for i in range(index.treedef.num_leaves)]
    try:
        found = fn(index.treedef.unflatten(markers))
    except Exception as err:
        raise ValueError(
            f"tie {tie}: path function {path_str(fn)} failed on the pytree "
            f"({type(err).__name__}: {err}); it must return one leaf, as in "
            f"lambda m: m.out.weight; leaves are: {_known(index)}"
        ) from None
    if isinstance(found, _Position):
        return found.index
    inside = [
        index.shown[x.index]
        for x in jax.tree_util.tree_leaves(found, is_leaf=lambda x: isinstance(x, _Position))
        if isinstance(x, _Position)
    ]
    if inside:
        raise ValueError(
            f"tie {tie}: path function {path_str(fn)} returns a subtree, not a leaf (its "
            f"leaves are: {', '.join(inside)})"
        )
    raise ValueError(
        f"tie {tie}: path function {path_str(fn)} returns {type(found).__name__}, not a leaf "
        f"of the pytree; leaves are: {_known(index)}"
    )


def _is_function(path: Path) -> bool:
    return callable(path) and not isinstance(path, str | tuple)


def _find(path: Path, tie: Tie, index: LeafIndex) -> int:
    if _is_function(path):
        return _find_by_function(path, tie, index)
    if isinstance(path, tuple) and path in index.by_keys:
        return index.by_keys[path]
    name = path_str(path)
    for table in (index.by_name, index.aliases):
        if name in table:
            found = table[name]
            if found is None:
                raise ValueError(
                    f"tie {tie}: path {name!r} names more than one leaf; pass a jax key path "
                    "instead"
                )
            return found
    if any(n.startswith((name + ".", name + "/")) for n in [*index.by_name, *index.aliases]):
        raise ValueError(f"tie {tie}: path {name!r} is a subtree, not a leaf")
    raise ValueError(f"tie {tie}: no leaf at path {name!r}; leaves are: {_known(index)}")


def _dtype(leaf: Any) -> np.dtype:
    # The leaf's own dtype: jnp.result_type would canonicalise float64 to float32 without x64.
    return np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)


def resolve(ties: Sequence[Tie], tree: Any) -> Plan:
    """Validates ``ties`` against ``tree`` and returns their leaf-level plan.

    Runs on shapes and dtypes only, so it works on tracers inside ``jax.jit``.

    Raises:
        ValueError: naming the path: unknown path, a target tied twice, a cycle, a slice out of
            range, or a shape or dtype mismatch under the map.
    """
    with_paths, treedef, boxes = _flatten(tree)
    paths = [p for p, _ in with_paths]
    # An nnx State of raw arrays (what nnx.Optimizer passes to update) stood for Variables.
    state_type = _nnx_state_type()
    pure_state = state_type is not None and isinstance(tree, state_type)
    boxed = [pure_state or isinstance(leaf, boxes) for _, leaf in with_paths]
    leaves = leaf_values([leaf for _, leaf in with_paths])
    index = _leaf_index(paths, treedef, boxed)

    def spelling(path: Path, found: int) -> str:
        # Errors and tie_drift name a leaf as the tie spells it; a function by the leaf's path.
        return index.shown[found] if _is_function(path) else path_str(path)

    parent: dict[int, tuple[int, Tie]] = {}
    for tie in ties:
        src = _find(tie.source, tie, index)
        tgt = _find(tie.target, tie, index)
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
        if _dtype(source) != _dtype(target):
            raise ValueError(
                f"tie {tie}: target {target_name!r} has dtype {_dtype(target)} but "
                f"source {source_name!r} has {_dtype(source)}"
            )
        links.append(Link(src, tgt, tie.map, target_name))
    links.sort(key=lambda link: depth[link.target])
    return Plan(treedef, tuple(links), frozenset(parent))


def merge_leaves(leaves: Sequence[Any], plan: Plan) -> list[Any]:
    """Sums every tie group's gradients into its root source, in source coordinates."""
    out = list(leaves)
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


def materialize_ties(params: Any, ties: Sequence[Tie]) -> Any:
    """Returns ``params`` with every tie target recomputed from its source.

    Uses only the map's duck-typed ``apply``, so numpy leaves stay numpy.

    Example:
        >>> import numpy as np
        >>> p = materialize_ties({"w": np.ones((2, 3)), "wt": np.zeros((3, 2))},
        ...                      [Tie("w", "wt", "transpose")])
        >>> float(p["wt"].sum())
        6.0
    """
    plan = resolve(ties, params)
    leaves = plan.treedef.flatten_up_to(params)
    values = leaf_values(leaves)
    return plan.treedef.unflatten(with_values(broadcast_leaves(values, plan, values), leaves))


def tie_drift(params: Any, ties: Sequence[Tie]) -> dict[str, jax.Array]:
    """Measures how far each tie has drifted: ``max |target - map(source)|``.

    ``map(source)`` is what :func:`materialize_ties` would write: in a chain ``a -> b -> c``,
    ``c`` is compared with the map applied to ``b`` recomputed from ``a``.

    Returns:
        A dict from each target's dotted path to a scalar (0 for a tie that holds exactly). It
        is a pytree of arrays, so it can be computed inside ``jax.jit``.

    Example:
        >>> import numpy as np
        >>> drift = tie_drift({"w": np.ones(3), "v": np.zeros(3)}, [Tie("w", "v")])
        >>> float(drift["v"])
        1.0
    """
    plan = resolve(ties, params)
    leaves = [jnp.asarray(leaf) for leaf in leaf_values(plan.treedef.flatten_up_to(params))]
    mapped = broadcast_leaves(leaves, plan, leaves)
    return {
        link.target_path: jnp.max(jnp.abs(leaves[link.target] - mapped[link.target]))
        for link in plan.links
    }


def detect_ties(params: Any) -> list[Tie]:
    """Finds identity ties: array leaves that are the same Python object.

    This is how Optimisers.jl finds ties at ``setup``. Object identity only exists on concrete
    arrays, so call it outside ``jax.jit``. Arrays that merely share memory (numpy views) are not
    reported.

    Returns:
        One ``Tie(first_path, later_path)`` per repeated leaf, in flattening order.

    Raises:
        ValueError: ``params`` holds tracers (called inside a transformation).

    Example:
        >>> import numpy as np
        >>> w = np.ones((2, 2))
        >>> detect_ties({"enc": w, "dec": w, "b": np.zeros(2)})
        [Tie(source='dec', target='enc', map=parse_map('identity'))]
    """
    first: dict[int, str] = {}
    ties = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if isinstance(leaf, jax.core.Tracer):
            raise ValueError(
                f"detect_ties: leaf {path_str(path)!r} is a tracer; object identity is lost "
                "inside jax transformations, so call detect_ties on concrete params"
            )
        # Python scalars are excluded: small ints are interned, so identity means nothing there.
        if not isinstance(leaf, np.ndarray | jax.Array):
            continue
        name = path_str(path)
        if id(leaf) in first:
            ties.append(Tie(first[id(leaf)], name))
        else:
            first[id(leaf)] = name
    return ties
