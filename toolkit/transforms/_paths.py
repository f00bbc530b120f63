"""Parameter paths: how a tie names a leaf, and finding that leaf in a flattened pytree."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax

from toolkit.transforms._leaves import KeyPath

if TYPE_CHECKING:
    from toolkit.transforms._tie import Tie

#: A function from the pytree to one of its leaves, as in ``eqx.tree_at``: ``lambda m: m.out.w``.
PathFunction = Callable[[Any], Any]
Path = str | KeyPath | PathFunction


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
    """Returns the dotted spelling of a path (key paths are converted, functions named).

    Example:
        >>> path_str(("layers", 0, "w"))
        'layers.0.w'
    """
    if isinstance(path, str):
        return path
    if callable(path):
        return _function_str(path)  # type: ignore[arg-type]
    return ".".join(_key_str(k) for k in path)


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


def leaf_index(
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


#: How many leaves an error message lists.
LISTED_LEAVES = 12


def _known(index: LeafIndex, near: str | None = None) -> str:
    """The leaves' spellings for an error message: those nearest ``near`` first, if given.

    Example:
        >>> index = leaf_index([(k,) for k in ("bias", "embed", "unembed")], None)
        >>> _known(index), _known(index, near="unembd")
        ('bias, embed, unembed', 'unembed, embed, bias')
    """
    names = index.shown
    if near is not None:
        # Closest first by difflib's similarity ratio; equally close leaves keep tree order.
        names = sorted(names, key=lambda n: -difflib.SequenceMatcher(None, near, n).ratio())
    listed = ", ".join(names[:LISTED_LEAVES])
    if len(names) <= LISTED_LEAVES:
        return listed
    order = "nearest" if near is not None else "first"
    return f"{listed} (the {order} {LISTED_LEAVES} of {len(names)})"


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


def is_function(path: Path) -> bool:
    return callable(path) and not isinstance(path, str | tuple)


def find(path: Path, tie: Tie, index: LeafIndex) -> int:
    if is_function(path):
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
    raise ValueError(
        f"tie {tie}: no leaf at path {name!r}; leaves, nearest first: "
        f"{_known(index, near=name)}"
    )
