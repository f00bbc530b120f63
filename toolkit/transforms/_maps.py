"""Tie maps: how a tied target is computed from its source (``target == map(source)``).

One language for experiments (:func:`toolkit.experiment.tie`) and the transforms
(:class:`toolkit.transforms.Tie`). Every map is linear, with its adjoint: identity, transpose
and axes permutations, slices and indices (partial ties), a scale (``target == 0.5 *
source``), and compositions of these (``"[:, :3] then transpose"``).

A map has two faces. :meth:`TieMap.apply` and :meth:`TieMap.inverse` use only duck-typed array
methods and operators (``x.T``, ``x.transpose(axes)``, ``x.reshape(shape)``, ``x[index]``,
``x * c``) so the same object builds tied parameters on numpy arrays, jax arrays and the
toolkit's tape arrays. :meth:`TieMap.adjoint` sends a target-shaped gradient to the source's
coordinates (numpy or jax arrays), and :meth:`TieMap.accumulate` adds it into a source-shaped
accumulator (a scatter-add for partial ties), as the gradient merge needs.

Parsing and applying maps needs only numpy, so jax is imported where the jax face is used:
the finite-difference reference reads tie maps without loading jax.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

Shape = tuple[int, ...]
IndexEntry = int | slice

_NAMED_SPELLINGS = "'identity', 'transpose', 'adjoint'"
_VALID_SPECS = (
    f"{_NAMED_SPELLINGS}, an axes permutation such as (1, 0, 2), an index expression such "
    "as '[:3]', '[:, 2:5]', '[1]' or np.s_[:, 2:5], a scale such as 'scale(0.5)', or maps "
    "joined by 'then' such as '[:, :3] then transpose'"
)


class TieMap:
    """Base class of the maps returned by :func:`parse_map`.

    Maps compare and hash by their canonical spelling, ``str(map)``, which
    :func:`parse_map` reads back.
    """

    #: Whether :meth:`inverse` recovers the source from a target.
    invertible: bool = True
    #: Whether the target is the source itself (``"identity"``).
    is_identity: bool = False
    #: Whether the target is a view of the source's memory: its elements, rearranged or a
    #: part of them, unscaled. A scale is not a view.
    is_view: bool = True

    def apply(self, x: Any) -> Any:
        """Returns ``map(x)``: the target computed from source ``x``."""
        raise NotImplementedError

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        """Returns the target shape for ``source_shape``.

        Raises:
            ValueError: the map cannot apply to a source of this shape.
        """
        raise NotImplementedError

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        """Returns the source whose image is ``y``.

        Args:
            y: a target-shaped array.
            source_shape: only consulted by ``adjoint``, where a ``(1, n)`` row may come from an
                ``(n,)`` vector (the default reading) or from an ``(n, 1)`` matrix.

        Raises:
            ValueError: the map is not invertible (a partial tie).
        """
        raise NotImplementedError

    def adjoint(self, g: Any, source_shape: Sequence[int]) -> Any:
        """Returns ``mapᵀ(g)``: a target-shaped gradient ``g`` in the source's coordinates.

        The adjoint satisfies ``<map(x), g> == <x, mapᵀ(g)>`` for every source ``x``: it is
        the chain rule through the tie. A rearrangement's adjoint is its inverse; a partial
        tie's puts ``g`` in its place among zeros; a scale multiplies by the same factor.

        Args:
            g: a target-shaped numpy or jax array.
            source_shape: the source's shape.

        Example:
            >>> import numpy as np
            >>> parse_map("[1:3]").adjoint(np.array([5.0, 6.0]), (4,))
            array([0., 5., 6., 0.])
        """
        return self.inverse(g, source_shape)

    def accumulate(self, acc: Any, g: Any) -> Any:
        """Returns ``acc + mapᵀ(g)``: a target gradient ``g`` added in source coordinates."""
        return acc + match_sharding(self.adjoint(g, acc.shape), acc)

    def then(self, other: Any) -> TieMap:
        """Returns the map that applies this one, then ``other`` (any :func:`parse_map` spec).

        Example:
            >>> str(parse_map("[:, :3]").then("transpose"))
            '[:, :3] then transpose'
        """
        return _compose((self, parse_map(other)))

    def describe(self, source: str) -> str:
        """Returns the target as an expression of ``source``, for messages.

        Example:
            >>> parse_map("[:, :3] then transpose then scale(0.5)").describe("embed")
            '0.5 * embed[:, :3].T'
        """
        raise NotImplementedError

    def transposes(self, source_shape: Sequence[int]) -> bool:
        """Whether the map reorders a source of this shape in memory (a real transpose).

        A transpose that only moves axes of length 1 is a reshape; identity and index maps
        never transpose.
        """
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TieMap) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"parse_map({str(self)!r})"


class _Identity(TieMap):
    is_identity = True

    def apply(self, x: Any) -> Any:
        return x

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        return tuple(source_shape)

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        return y

    def describe(self, source: str) -> str:
        return source

    def __str__(self) -> str:
        return "identity"


class _Transpose(TieMap):
    """numpy's ``x.T``: all axes reversed."""

    def apply(self, x: Any) -> Any:
        return x.T

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        if len(source_shape) < 2:
            raise ValueError(
                f"'transpose' needs a source with at least 2 axes, got shape "
                f"{tuple(source_shape)}; use 'adjoint' to turn a vector into a 1×n row"
            )
        return tuple(reversed(source_shape))

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        return y.T

    def transposes(self, source_shape: Sequence[int]) -> bool:
        return _moves(source_shape, tuple(reversed(range(len(source_shape)))))

    def describe(self, source: str) -> str:
        return f"{_operand(source)}.T"

    def __str__(self) -> str:
        return "transpose"


class _Permute(TieMap):
    def __init__(self, axes: Sequence[int]) -> None:
        self.axes = tuple(int(a) for a in axes)
        if sorted(self.axes) != list(range(len(self.axes))):
            raise ValueError(f"axes {self.axes} are not a permutation of 0..{len(self.axes) - 1}")
        # argsort of the permutation: the axes order that undoes it.
        self.inverse_axes = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))

    def apply(self, x: Any) -> Any:
        return x.transpose(self.axes)

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        if len(source_shape) != len(self.axes):
            raise ValueError(
                f"axes permutation {self} needs a source with {len(self.axes)} axes, got shape "
                f"{tuple(source_shape)}"
            )
        return tuple(source_shape[a] for a in self.axes)

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        return y.transpose(self.inverse_axes)

    def transposes(self, source_shape: Sequence[int]) -> bool:
        return len(source_shape) == len(self.axes) and _moves(source_shape, self.axes)

    def describe(self, source: str) -> str:
        return f"{_operand(source)}.transpose({self})"

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.axes)) + ("," if len(self.axes) == 1 else "") + ")"


class _Adjoint(TieMap):
    """Julia's ``x'`` for real arrays: a vector becomes a ``1×n`` row, a matrix is transposed.

    No complex conjugation is applied.
    """

    def apply(self, x: Any) -> Any:
        if len(x.shape) == 1:
            return x.reshape((1, x.shape[0]))
        return x.T

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        if len(source_shape) == 1:
            return (1, source_shape[0])
        if len(source_shape) == 2:
            return (source_shape[1], source_shape[0])
        raise ValueError(
            f"'adjoint' needs a vector or a matrix source, got shape {tuple(source_shape)}"
        )

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        from_vector = y.shape[0] == 1 if source_shape is None else len(source_shape) == 1
        if from_vector:
            return y.reshape((y.shape[1],))
        return y.T

    def transposes(self, source_shape: Sequence[int]) -> bool:
        return len(source_shape) == 2 and _moves(source_shape, (1, 0))

    def describe(self, source: str) -> str:
        return f"adjoint({source})"

    def __str__(self) -> str:
        return "adjoint"


class _Index(TieMap):
    """A partial tie ``target == source[index]``; the merge scatter-adds into the source."""

    invertible = False

    def __init__(self, index: tuple[IndexEntry, ...]) -> None:
        self.index = tuple(_check_entry(e) for e in index)
        if not self.index:
            raise ValueError("an index expression needs at least one entry, e.g. '[:3]'")

    def _key(self) -> Any:
        # A one-entry tuple is passed bare: array types with a simpler __getitem__ (the tape's)
        # need not unpack tuples for the common 1-axis case.
        return self.index[0] if len(self.index) == 1 else self.index

    def apply(self, x: Any) -> Any:
        return x[self._key()]

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        shape = tuple(source_shape)
        if len(self.index) > len(shape):
            raise ValueError(
                f"index {self} has {len(self.index)} entries but the source has shape {shape}"
            )
        out: list[int] = []
        for axis, (entry, n) in enumerate(zip(self.index, shape, strict=False)):
            if isinstance(entry, int):
                if not -n <= entry < n:
                    raise ValueError(
                        f"index {self} is out of range for source shape {shape}: axis {axis} "
                        f"has {n} entries, index {entry}"
                    )
                continue
            # numpy clamps out-of-range slice bounds silently; a tie that silently covers less
            # than it says is a bug, so bounds must lie within the axis.
            for name, bound in (("start", entry.start), ("stop", entry.stop)):
                if bound is not None and not -n <= bound <= n:
                    raise ValueError(
                        f"index {self} is out of range for source shape {shape}: axis {axis} "
                        f"has {n} entries, slice {name} {bound}"
                    )
            length = len(range(*entry.indices(n)))
            if length == 0:
                raise ValueError(
                    f"index {self} selects no elements of axis {axis} in source shape {shape}"
                )
            out.append(length)
        return (*out, *shape[len(self.index) :])

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        raise ValueError(f"partial tie {self} is not invertible: the target is part of the source")

    def adjoint(self, g: Any, source_shape: Sequence[int]) -> Any:
        if _is_jax(g):
            import jax.numpy as jnp

            return jnp.zeros(tuple(source_shape), g.dtype).at[self._key()].set(g)
        g = np.asarray(g)
        out = np.zeros(tuple(source_shape), g.dtype)
        out[self._key()] = g  # integers and slices pick each source element at most once
        return out

    def accumulate(self, acc: Any, g: Any) -> Any:
        import jax.numpy as jnp

        return jnp.asarray(acc).at[self._key()].add(g)

    def describe(self, source: str) -> str:
        return f"{_operand(source)}{self}"

    def __str__(self) -> str:
        return "[" + ", ".join(_entry_str(e) for e in self.index) + "]"


class _Scale(TieMap):
    """``target == factor * source``: a linear tie that is not a view of memory."""

    is_view = False

    def __init__(self, factor: float) -> None:
        factor = float(factor)
        if not np.isfinite(factor) or factor == 0.0:
            raise ValueError(
                f"scale factor {factor} must be finite and non-zero: a tie to zeros carries no "
                "gradient back"
            )
        self.factor = factor

    def apply(self, x: Any) -> Any:
        return x * self.factor

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        return tuple(source_shape)

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        return y / self.factor

    def adjoint(self, g: Any, source_shape: Sequence[int]) -> Any:
        return g * self.factor

    def describe(self, source: str) -> str:
        return f"{self.factor!r} * {source}"

    def __str__(self) -> str:
        return f"scale({self.factor!r})"


class _Compose(TieMap):
    """Maps applied in turn, the first to the source: ``"[:, :3] then transpose"``."""

    def __init__(self, parts: tuple[TieMap, ...]) -> None:
        self.parts = parts
        self.invertible = all(p.invertible for p in parts)
        self.is_view = all(p.is_view for p in parts)

    def apply(self, x: Any) -> Any:
        for part in self.parts:
            x = part.apply(x)
        return x

    def _shapes(self, source_shape: Sequence[int]) -> list[Shape]:
        """The shape each part receives, then the target's."""
        shapes = [tuple(source_shape)]
        for part in self.parts:
            shapes.append(part.out_shape(shapes[-1]))
        return shapes

    def out_shape(self, source_shape: Sequence[int]) -> Shape:
        return self._shapes(source_shape)[-1]

    def inverse(self, y: Any, source_shape: Sequence[int] | None = None) -> Any:
        if not self.invertible:
            raise ValueError(f"map {self} is not invertible: it contains a partial tie")
        shapes: list[Any] = (
            [None] * len(self.parts) if source_shape is None else self._shapes(source_shape)[:-1]
        )
        for part, shape in zip(reversed(self.parts), reversed(shapes), strict=True):
            y = part.inverse(y, shape)
        return y

    def adjoint(self, g: Any, source_shape: Sequence[int]) -> Any:
        shapes = self._shapes(source_shape)
        for part, shape in zip(reversed(self.parts), reversed(shapes[:-1]), strict=True):
            g = part.adjoint(g, shape)
        return g

    def accumulate(self, acc: Any, g: Any) -> Any:
        # The first part accumulates, so a partial tie first in line stays a scatter-add.
        first, rest = self.parts[0], _compose(self.parts[1:])
        return first.accumulate(acc, rest.adjoint(g, first.out_shape(acc.shape)))

    def transposes(self, source_shape: Sequence[int]) -> bool:
        shapes = self._shapes(source_shape)
        return any(p.transposes(s) for p, s in zip(self.parts, shapes, strict=False))

    def describe(self, source: str) -> str:
        for part in self.parts:
            source = part.describe(source)
        return source

    def __str__(self) -> str:
        return " then ".join(str(p) for p in self.parts)


def _compose(parts: Sequence[TieMap]) -> TieMap:
    """The composition of ``parts`` (nested compositions flattened, identities dropped)."""
    flat: list[TieMap] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, _Compose) else (part,))
    flat = [p for p in flat if not p.is_identity]
    if not flat:
        return _NAMED["identity"]
    return flat[0] if len(flat) == 1 else _Compose(tuple(flat))


def _operand(expression: str) -> str:
    """``expression`` as the operand of a postfix (``.T``, ``[...]``): a product parenthesised."""
    return f"({expression})" if " * " in expression else expression


def _is_jax(x: Any) -> bool:
    # jax is only imported where it is already loaded: numpy callers never load it.
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array)


def _moves(shape: Sequence[int], axes: Sequence[int]) -> bool:
    # Axes of length 1 can go anywhere without moving data; the rest must keep their order.
    kept = [a for a in axes if shape[a] != 1]
    return kept != sorted(kept)


def match_sharding(x: Any, like: Any) -> Any:
    """Returns ``x`` resharded to ``like``'s explicit sharding, where they differ.

    A transpose carries its operand's sharding to the other axis; under explicit sharding
    (``jax.sharding.AxisType.Explicit``) adding it to an array sharded the original way is an
    error rather than an implicit all-to-all. Elsewhere (numpy, unsharded or auto-sharded
    arrays) both specs are unconstrained and ``x`` is returned as is.
    """
    import jax

    if not isinstance(x, jax.Array) or not isinstance(like, jax.Array):
        return x
    spec = jax.typeof(like).sharding.spec
    if jax.typeof(x).sharding.spec == spec:
        return x
    return jax.sharding.reshard(x, spec)


def _check_entry(entry: Any) -> IndexEntry:
    if isinstance(entry, slice):
        parts = (entry.start, entry.stop, entry.step)
        if not all(p is None or _is_int(p) for p in parts):
            raise ValueError(f"slice {entry} must have integer or empty bounds")
        if entry.step is not None and int(entry.step) == 0:
            raise ValueError("slice step cannot be zero")
        return slice(*(None if p is None else int(p) for p in parts))
    if _is_int(entry):
        return int(entry)
    raise ValueError(
        f"unsupported index entry {entry!r}: use integers and slices (no Ellipsis, None, "
        "arrays or booleans)"
    )


def _entry_str(entry: IndexEntry) -> str:
    if isinstance(entry, int):
        return str(entry)
    text = ("" if entry.start is None else str(entry.start)) + ":"
    text += "" if entry.stop is None else str(entry.stop)
    return text if entry.step is None else f"{text}:{entry.step}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


_INT = re.compile(r"^[+-]?\d+$")
_SCALE = re.compile(r"^scale\((.*)\)$")


def _parse_int(text: str, spec: str) -> int:
    text = text.strip()
    if not _INT.match(text):
        raise ValueError(f"cannot read {text!r} in map {spec!r} as an integer")
    return int(text)


def _parse_index(spec: str) -> _Index:
    entries: list[IndexEntry] = []
    for part in spec.strip()[1:-1].split(","):
        if ":" not in part:
            entries.append(_parse_int(part, spec))
            continue
        bounds = part.split(":")
        if len(bounds) > 3:
            raise ValueError(f"slice {part.strip()!r} in map {spec!r} has too many ':'")
        values = [None if not b.strip() else _parse_int(b, spec) for b in bounds]
        entries.append(slice(*values))
    return _Index(tuple(entries))


_NAMED: dict[str, TieMap] = {
    "identity": _Identity(),
    "transpose": _Transpose(),
    "adjoint": _Adjoint(),
}


def parse_map(spec: Any) -> TieMap:
    """Reads a tie map from its spelling.

    Vocabulary:
        * ``"identity"``: the target is the source.
        * ``"transpose"``: ``x.T`` (all axes reversed; at least 2 axes).
        * ``"adjoint"``: Julia's ``x'``; an ``(n,)`` vector becomes a ``(1, n)`` row, a matrix is
          transposed.
        * an axes permutation: a tuple or list of ints such as ``(1, 0, 2)``, or that text.
        * an index expression for a partial tie: text such as ``"[:3]"``, ``"[:, 2:5]"``,
          ``"[1]"``, or index objects (a ``slice``, an ``int``, a tuple of slices and ints,
          ``np.s_[:, 2:5]``). A tuple of ints alone is read as a permutation; to select one
          element write the text ``"[1, 0]"``.
        * ``"scale(0.5)"``: ``0.5 * x`` (a finite, non-zero factor).
        * a composition, applied left to right: text joining maps with ``then``
          (``"[:, :3] then transpose"``), or a list of specs (``["[:, :3]", "transpose"]``).

    Args:
        spec: one of the spellings above, or a map returned by this function.

    Returns:
        A :class:`TieMap`; ``str()`` of it is the canonical spelling, which this function reads
        back to an equal map.

    Raises:
        ValueError: ``spec`` is not in the vocabulary.

    Example:
        >>> import numpy as np
        >>> m = parse_map(np.s_[:, 2:5])
        >>> str(m), m.out_shape((4, 8)), m.apply(np.zeros((4, 8))).shape
        ('[:, 2:5]', (4, 3), (4, 3))
        >>> str(parse_map("transpose")), parse_map("transpose").invertible
        ('transpose', True)
        >>> m = parse_map("[:, :3] then transpose then scale(0.5)")
        >>> m.out_shape((4, 8)), m.describe("w"), m.is_view
        ((3, 4), '0.5 * w[:, :3].T', False)
    """
    if isinstance(spec, TieMap):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text in _NAMED:
            return _NAMED[text]
        if " then " in f" {text} ":
            parts = [p.strip() for p in f" {text} ".split(" then ")]
            if any(not p for p in parts):
                raise ValueError(f"map {spec!r} has an empty part; valid: {_VALID_SPECS}")
            return _compose([parse_map(p) for p in parts])
        scale = _SCALE.match(text)
        if scale:
            try:
                return _Scale(float(scale.group(1)))
            except ValueError as err:
                raise ValueError(f"map {spec!r}: {err}") from None
        if text.startswith("[") and text.endswith("]"):
            return _parse_index(text)
        if text.startswith("(") and text.endswith(")"):
            parts = [p for p in text[1:-1].split(",") if p.strip()]
            return _Permute([_parse_int(p, spec) for p in parts])
        raise ValueError(f"unknown map {spec!r}; valid: {_VALID_SPECS}")
    if isinstance(spec, tuple | list) and spec and all(_is_int(a) for a in spec):
        return _Permute(spec)
    if isinstance(spec, list) and spec and all(isinstance(p, str | TieMap) for p in spec):
        return _compose([parse_map(p) for p in spec])
    if isinstance(spec, tuple) and spec:
        return _Index(spec)
    if isinstance(spec, slice) or _is_int(spec):
        return _Index((spec,))
    raise ValueError(f"unknown map {spec!r}; valid: {_VALID_SPECS}")
