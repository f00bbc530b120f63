"""Finding ties in a params pytree: by object identity, or by value on concrete arrays."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Literal

import jax
import numpy as np

from toolkit.transforms._paths import path_str
from toolkit.transforms._tie import Tie

#: Permutations are tried for leaves with at most this many axes (4! = 24 candidates).
MAX_PERMUTED_AXES = 4


def detect_ties(params: Any, by: Literal["identity", "value"] = "identity") -> list[Tie]:
    """Finds ties in ``params``: leaves that are the same array, or equal to part of another.

    ``by="identity"`` (the default) reports array leaves that are the same Python object, as
    Optimisers.jl does at ``setup``; arrays that merely share memory or are equal are not
    reported.

    ``by="value"`` compares contents, for params whose copies were built by copying (a
    checkpoint, ``w.T.copy()``, a framework that materialises its tied weights). A leaf is
    reported as the target of an earlier leaf (in flattening order) that it equals, or equals
    transposed (2-D, or any axes permutation up to :data:`MAX_PERMUTED_AXES` axes); otherwise
    as the target of a larger leaf of which it is a contiguous block along one axis
    (``[2:5]``, ``[:, 4:8]``) or one index of the first axis (``[3]``). Each tie's map
    reproduces its target exactly (bit for bit; NaNs match NaNs). Leaves whose elements are all
    equal (zero-initialised biases, scalars) are skipped: they would match every leaf of their
    shape. Equal values are evidence, not proof, of a tie: review what it returns.

    Cost of ``by="value"``: every leaf is copied to host memory; each pair of leaves is
    compared only if shapes and dtypes allow a match, and each comparison reads the two leaves
    once (a block search reads the source once per candidate offset whose first slab matches).

    Args:
        params: a pytree of concrete arrays (numpy or jax); call it outside ``jax.jit``.
        by: ``"identity"`` or ``"value"``.

    Returns:
        The ties, ordered by their target's position in flattening order; ``materialize_ties``
        with them reproduces ``params``.

    Raises:
        ValueError: ``by`` is not one of the two, or ``params`` holds tracers.

    Example:
        >>> import numpy as np
        >>> w = np.arange(6.0).reshape(2, 3)
        >>> for tie in detect_ties({"a": w, "b": w.T.copy(), "c": w[:, 1:].copy()}, by="value"):
        ...     print(tie)
        a -> b (transpose)
        a -> c ([:, 1:3])
    """
    if by == "identity":
        return _by_identity(params)
    if by != "value":
        raise ValueError(f"detect_ties: by={by!r}; valid: 'identity', 'value'")
    names, arrays = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if isinstance(leaf, jax.core.Tracer):
            raise ValueError(
                f"detect_ties: leaf {path_str(path)!r} is a tracer; call detect_ties on "
                "concrete params, outside jax transformations"
            )
        names.append(path_str(path))
        arrays.append(np.asarray(leaf) if isinstance(leaf, np.ndarray | jax.Array) else None)
    candidates = [
        i for i, a in enumerate(arrays) if a is not None and a.size > 1 and not _constant(a)
    ]

    source_of: dict[int, tuple[int, Any]] = {}
    # Same size: the earlier leaf is the source.
    for j_pos, j in enumerate(candidates):
        for i in candidates[:j_pos]:
            if i in source_of:
                continue
            found = _same_size_map(arrays[i], arrays[j])
            if found is not None:
                source_of[j] = (i, found)
                break
    # Strictly smaller: a block of a larger leaf that is not itself a copy.
    roots = [i for i in candidates if i not in source_of]
    for j in roots:
        for i in roots:
            if arrays[i].size <= arrays[j].size or arrays[i].dtype != arrays[j].dtype:
                continue
            found = _block_map(arrays[i], arrays[j])
            if found is not None:
                source_of[j] = (i, found)
                break
    return [Tie(names[i], names[j], spec) for j, (i, spec) in sorted(source_of.items())]


def _constant(a: np.ndarray) -> bool:
    flat = a.reshape(-1)
    return bool(_equal(flat, np.broadcast_to(flat[:1], flat.shape)))


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    inexact = np.issubdtype(a.dtype, np.inexact)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=inexact))


def _same_size_map(source: np.ndarray, target: np.ndarray) -> Any:
    if source.dtype != target.dtype or source.size != target.size:
        return None
    if _equal(source, target):
        return "identity"
    ndim = source.ndim
    if ndim < 2 or ndim > MAX_PERMUTED_AXES or target.ndim != ndim:
        return None
    reversed_axes = tuple(range(ndim - 1, -1, -1))
    for axes in itertools.permutations(range(ndim)):
        if axes == tuple(range(ndim)):
            continue
        if tuple(source.shape[a] for a in axes) != target.shape:
            continue
        if _equal(source.transpose(axes), target):
            return "transpose" if axes == reversed_axes else axes
    return None


def _block_map(source: np.ndarray, target: np.ndarray) -> str | None:
    # One index of the first axis: target == source[i].
    if target.shape == source.shape[1:]:
        for i in _matching_offsets(source, target[None], axis=0):
            return f"[{i}]"
    if target.ndim != source.ndim:
        return None
    for axis in range(source.ndim):
        others_match = all(
            target.shape[k] == source.shape[k] for k in range(source.ndim) if k != axis
        )
        if not others_match or target.shape[axis] >= source.shape[axis]:
            continue
        for start in _matching_offsets(source, target, axis):
            stop = start + target.shape[axis]
            block = f"{start or ''}:{stop}"  # a prefix spelled [:n]
            return "[" + ", ".join([":"] * axis + [block]) + "]"
    return None


def _matching_offsets(source: np.ndarray, target: np.ndarray, axis: int) -> Iterator[int]:
    """Offsets ``o`` along ``axis`` where ``source[o : o + len]`` equals ``target``."""
    length = target.shape[axis]
    src = np.moveaxis(source, axis, 0)
    tgt = np.moveaxis(target, axis, 0)
    inexact = np.issubdtype(source.dtype, np.inexact)
    first = tgt[0]
    for offset in range(src.shape[0] - length + 1):
        if not np.array_equal(src[offset], first, equal_nan=inexact):
            continue
        if np.array_equal(src[offset : offset + length], tgt, equal_nan=inexact):
            yield offset


def _by_identity(params: Any) -> list[Tie]:
    """Array leaves that are the same Python object (small interned scalars excluded)."""
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
