"""Implicit parameters (``Params``) and the gradients keyed by them (``Grads``), as in Zygote.

Both are keyed by object identity: two views of one memory are two params, and a param's
gradient is looked up by the very object that was listed.

Example:
    >>> import toolkit.tape as tp
    >>> x = tp.array([1.0]); xt = tp.adjoint(x)
    >>> ps = tp.Params([x, xt, x])
    >>> len(ps), xt in ps
    (2, True)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from toolkit.tape._core import AliasWarning, Array, describe, storage_of

__all__ = ["AliasWarning", "Grads", "Params"]


class Params:
    """An ordered set of arrays, by identity (Zygote's ``Params``).

    Adding an array that is already in is a no-op. Only float arrays can be params.

    Args:
        params: the arrays to differentiate.

    Raises:
        TypeError: an element is not a float ``toolkit.tape.Array``.

    Example:
        >>> import toolkit.tape as tp
        >>> w = tp.array([[1.0, 2.0]])
        >>> Params([w, w.T]).shared_storage()
        [(0, 1)]
    """

    def __init__(self, params: Iterable[Array] = ()) -> None:
        self._items: list[Array] = []
        self._ids: dict[int, int] = {}
        self._warned = False
        for p in params:
            self.add(p)

    def add(self, p: Array) -> None:
        """Appends ``p`` unless it is already in (Zygote's ``push!``)."""
        if not isinstance(p, Array):
            raise TypeError(
                f"Params holds toolkit.tape arrays; got {type(p).__name__} at position "
                f"{len(self._items)} (wrap values with toolkit.tape.array)"
            )
        if p.dtype.kind != "f":
            raise TypeError(f"Params holds float arrays; {describe(p)} has dtype {p.dtype}")
        if id(p) not in self._ids:
            self._ids[id(p)] = len(self._items)
            self._items.append(p)

    def __contains__(self, p: object) -> bool:
        return id(p) in self._ids

    def __iter__(self) -> Iterator[Array]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Array:
        return self._items[i]

    def index(self, p: Array) -> int:
        """The position of ``p`` (by identity)."""
        try:
            return self._ids[id(p)]
        except KeyError:
            raise KeyError(f"{describe(p)} is not in these Params") from None

    def __eq__(self, other: object) -> bool:
        """Zygote's ``==``: the same arrays (by identity) in the same order."""
        if not isinstance(other, Params):
            return NotImplemented
        return len(self) == len(other) and all(
            a is b for a, b in zip(self._items, other._items, strict=True))

    __hash__ = None  # a mutable set, as Zygote's

    def issetequal(self, other: Iterable[Array]) -> bool:
        """The same arrays (by identity) in any order (Zygote's ``issetequal``).

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0]), tp.array([1.0])
            >>> Params([x, y]).issetequal([y, x]), Params([x, y]) == Params([y, x])
            (True, False)
        """
        other = _as_params(other)
        return len(self) == len(other) and all(id(p) in other._ids for p in self._items)

    def copy(self) -> Params:
        """A new Params of the same arrays (the arrays are not copied)."""
        return Params(self._items)

    def update(self, *others: Iterable[Array]) -> None:
        """Adds the arrays of ``others`` that are not in yet, in order (Zygote's ``union!``).

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0]), tp.array([2.0])
            >>> ps = Params([x]); ps.update([y, x]); len(ps)
            2
        """
        for other in others:
            for p in other:
                self.add(p)

    def union(self, *others: Iterable[Array]) -> Params:
        """A new Params: these arrays, then those of ``others`` not in yet (``ps | other``).

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0]), tp.array([2.0])
            >>> len(Params([x]).union([y, x])), (Params([x, y]) & Params([y]))[0] is y
            (2, True)
        """
        out = self.copy()
        out.update(*others)
        return out

    def intersection(self, *others: Iterable[Array]) -> Params:
        """A new Params of the arrays also in every one of ``others``, in this order (``&``)."""
        sets = [_as_params(o) for o in others]
        return Params(p for p in self._items if all(id(p) in o._ids for o in sets))

    def __or__(self, other: Iterable[Array]) -> Params:
        return self.union(other)

    def __and__(self, other: Iterable[Array]) -> Params:
        return self.intersection(other)

    def remove(self, p: Array) -> None:
        """Removes ``p`` (Zygote's ``delete!``).

        Raises:
            KeyError: ``p`` is not in these Params.

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0]), tp.array([2.0])
            >>> ps = Params([x, y]); ps.remove(x); ps.index(y)
            0
        """
        del self._items[self.index(p)]
        self._ids = {id(q): i for i, q in enumerate(self._items)}

    def discard(self, p: Array) -> None:
        """Removes ``p`` if it is in (no error otherwise)."""
        if p in self:
            self.remove(p)

    def flatten(self) -> np.ndarray:
        """The params' current values in one new vector, in order (Zygote's ``copy!(v, ps)``).

        Two views of one memory each contribute their elements.

        Example:
            >>> import toolkit.tape as tp
            >>> Params([tp.array([1.0, 2.0]), tp.array([[3.0]])]).flatten()
            array([1., 2., 3.])
        """
        return _concat([p.numpy() for p in self._items])

    def assign(self, v: Any) -> None:
        """Writes vector ``v`` into the params in place, each its slice (``copy!(ps, v)``).

        Raises:
            ValueError: ``v`` is not a vector of the params' total size.

        Example:
            >>> import toolkit.tape as tp
            >>> x, w = tp.array([1.0, 2.0]), tp.array([[3.0]])
            >>> Params([x, w]).assign([5.0, 6.0, 7.0]); x.numpy(), w.numpy()
            (array([5., 6.]), array([[7.]]))
        """
        for p, part in zip(self._items, _split(v, [p.shape for p in self._items], "Params"),
                           strict=True):
            p[...] = part

    def shared_storage(self) -> list[tuple[int, ...]]:
        """Positions of params that share one storage, one tuple per shared storage."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(self._items):
            groups.setdefault(id(storage_of(p)), []).append(i)
        return [tuple(g) for g in groups.values() if len(g) > 1]

    def __repr__(self) -> str:
        return f"Params([{', '.join(describe(p) for p in self._items)}])"


def _as_params(items: Iterable[Array]) -> Params:
    return items if isinstance(items, Params) else Params(items)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """``parts`` raveled into one new vector (float64 when there are none)."""
    return np.concatenate([np.ravel(a) for a in parts]) if parts else np.zeros(0)


def _split(v: Any, shapes: list[tuple[int, ...]], what: str) -> list[np.ndarray]:
    """Vector ``v`` cut into consecutive pieces of ``shapes``."""
    v = np.asarray(v)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if v.ndim != 1 or v.size != sum(sizes):
        raise ValueError(f"{what} hold {sum(sizes)} numbers in all (shapes "
                         f"{shapes}); got an array of shape {v.shape}, expected a vector of "
                         f"that length")
    bounds = np.cumsum([0, *sizes])
    return [v[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes, strict=True)]


Grad = np.ndarray | dict[str, Any] | None


def _apply(op: Callable[[Any, Any], Any], a: Grad, b: Grad) -> Grad:
    """``op`` on two gradients; ``None`` is a zero, structural dicts combine per key."""
    if a is None and b is None:
        return None
    if isinstance(a, dict) or isinstance(b, dict):
        a = a or {}
        b = b or {}
        return {k: _apply(op, a.get(k), b.get(k)) for k in {**a, **b}}
    if a is None:
        return op(np.zeros_like(b), b)
    if b is None:
        return op(a, np.zeros_like(a))
    return op(a, b)


def _map(f: Callable[[np.ndarray], Any], g: Grad) -> Grad:
    if g is None:
        return None
    if isinstance(g, dict):
        return {k: _map(f, v) for k, v in g.items()}
    return f(g)


class Grads:
    """Gradients keyed by param identity: ``gs[p]``, ``p in gs``, ``gs.items()``.

    A value is a NumPy array shaped like its param, ``None`` for a param that got no
    gradient (Zygote's ``nothing``), or a structural ``{"parent": array}`` under the identity
    policy's rule 3.

    Attributes:
        params: the :class:`Params` these gradients are for.
        globals: ``name -> gradient`` for every named leaf the function read.
        alias: the policy that produced them (``"identity"`` or ``"storage"``).
        shared_storage: tuples of params that share one storage (under ``"storage"`` each
            holds the total gradient of that storage: apply one per storage).

    Example:
        >>> import toolkit.tape as tp
        >>> x = tp.array([1.0, 2.0])
        >>> gs = tp.gradient(lambda: tp.numpy.sum(x * x), tp.Params([x]))
        >>> (gs + gs)[x]
        array([4., 8.])
    """

    def __init__(self, params: Params, values: dict[int, Grad],
                 globals: dict[str, Grad] | None = None, alias: str = "identity") -> None:
        self.params = params
        self._values = values
        self.globals = dict(globals or {})
        self.alias = alias

    @property
    def shared_storage(self) -> list[tuple[Array, ...]]:
        """Groups of params that share one storage, in ``Params`` order."""
        return [tuple(self.params[i] for i in g) for g in self.params.shared_storage()]

    def __getitem__(self, p: Array) -> Grad:
        try:
            return self._values[id(p)]
        except KeyError:
            raise KeyError(self._unknown(p)) from None

    def _unknown(self, p: object) -> str:
        return (f"{describe(p) if isinstance(p, Array) else repr(p)} is not one of the "
                f"{len(self.params)} params these gradients were taken for")

    def __setitem__(self, p: Array, g: Any) -> None:
        """Sets ``p``'s gradient: ``None``, a structural dict, or an array of ``p``'s shape.

        Raises:
            KeyError: ``p`` is not one of these gradients' params.
            ValueError: the array's shape is not ``p``'s.
        """
        if id(p) not in self._values:
            raise KeyError(self._unknown(p))
        if g is not None and not isinstance(g, dict):
            g = np.array(g, dtype=p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"a gradient for {describe(p)} must have its shape {p.shape}; "
                                 f"got {g.shape}")
        self._values[id(p)] = g

    def update(self, *others: Grads) -> None:
        """Takes the params and gradients of ``others``, later ones winning (Zygote's ``merge!``).

        ``self.params`` becomes a new :class:`Params` (the union); the one passed to
        ``gradient`` is left as it was.

        Raises:
            ValueError: an other's gradients were taken under another alias policy.

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0]), tp.array([2.0])
            >>> gs = tp.gradient(lambda: tp.numpy.sum(x * y), [x])
            >>> gs.update(tp.gradient(lambda: tp.numpy.sum(y * y), [y])); gs[x], gs[y]
            (array([2.]), array([4.]))
        """
        for other in others:
            if other.alias != self.alias:
                raise ValueError(f"cannot merge gradients taken under alias={other.alias!r} "
                                 f"into ones taken under alias={self.alias!r}")
            self.params = self.params.union(other.params)
            self._values.update(other._values)
            self.globals.update(other.globals)

    def __or__(self, other: Grads) -> Grads:
        """A new Grads: these, updated with ``other`` (Zygote's ``merge``)."""
        if not isinstance(other, Grads):
            return NotImplemented
        out = Grads(self.params, dict(self._values), self.globals, self.alias)
        out.update(other)
        return out

    def flatten(self) -> np.ndarray:
        """The gradients in one new vector, in param order, ``None`` as zeros
        (Zygote's ``copy!(v, gs)``).

        Raises:
            TypeError: a gradient is structural (``{"parent": ...}``): it has no place in a
                vector shaped like the params.

        Example:
            >>> import toolkit.tape as tp
            >>> x, y = tp.array([1.0, 2.0]), tp.array([3.0])
            >>> tp.gradient(lambda: tp.numpy.sum(x * x), tp.Params([x, y])).flatten()
            array([2., 4., 0.])
        """
        parts = []
        for p, g in self.items():
            if isinstance(g, dict):
                raise TypeError(f"the gradient of {describe(p)} is structural ({_short(g)}); "
                                f"only arrays flatten into a vector")
            parts.append(np.zeros(p.shape, dtype=p.dtype) if g is None else g)
        return _concat(parts)

    def assign(self, v: Any) -> None:
        """Sets every gradient from vector ``v``, each its slice in param order
        (Zygote's ``copy!(gs, v)``).

        Raises:
            ValueError: ``v`` is not a vector of the params' total size.

        Example:
            >>> import toolkit.tape as tp
            >>> x = tp.array([1.0, 2.0])
            >>> gs = tp.gradient(lambda: tp.numpy.sum(x), [x]); gs.assign([0.5, 0.0]); gs[x]
            array([0.5, 0. ])
        """
        pieces = _split(v, [p.shape for p in self.params], "the params")
        for p, part in zip(self.params, pieces, strict=True):
            self[p] = part

    def get(self, p: Array, default: Any = None) -> Grad:
        """``gs[p]`` if ``p`` is a param, else ``default``."""
        return self._values.get(id(p), default)

    def __contains__(self, p: object) -> bool:
        return id(p) in self._values

    def __iter__(self) -> Iterator[Array]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def keys(self) -> list[Array]:
        """The params, in order."""
        return list(self.params)

    def values(self) -> list[Grad]:
        """The gradients, in param order."""
        return [self._values[id(p)] for p in self.params]

    def items(self) -> list[tuple[Array, Grad]]:
        """``(param, gradient)`` pairs, in param order."""
        return [(p, self._values[id(p)]) for p in self.params]

    def map(self, f: Callable[[np.ndarray], Any]) -> Grads:
        """A new Grads with ``f`` applied to every array (``None`` stays ``None``).

        Example:
            >>> import toolkit.tape as tp
            >>> x = tp.array([3.0])
            >>> tp.gradient(lambda: tp.numpy.sum(x), tp.Params([x])).map(lambda g: 2 * g)[x]
            array([2.])
        """
        return Grads(self.params, {k: _map(f, v) for k, v in self._values.items()},
                     {k: _map(f, v) for k, v in self.globals.items()}, self.alias)

    def copy(self) -> Grads:
        """A deep copy (arrays copied)."""
        return self.map(np.copy)

    def _binary(self, other: Any, op: Callable[[Any, Any], Any]) -> Grads:
        if isinstance(other, Grads):
            if other.params is not self.params and not self.params.issetequal(other.params):
                raise ValueError(
                    f"arithmetic needs two Grads over the same params (the same arrays, in any "
                    f"order); got {self.params} and {other.params}")
            vals = {k: _apply(op, v, other._values[k]) for k, v in self._values.items()}
            names = {**self.globals, **other.globals}
            glob = {k: _apply(op, self.globals.get(k), other.globals.get(k)) for k in names}
            return Grads(self.params, vals, glob, self.alias)
        if isinstance(other, int | float | np.number):
            return self.map(lambda g: op(g, other))
        return NotImplemented

    def __add__(self, other: Any) -> Grads:
        if isinstance(other, Mapping):
            return self._add_named(other)
        return self._binary(other, operator.add)

    def __radd__(self, other: Any) -> Grads:
        return self + other

    def _add_named(self, named: Mapping[str, Any]) -> Grads:
        """``gs + {"w": g}``: ``g`` added to the gradient of the param named ``"w"``.

        Zygote adds an ``IdDict`` keyed by the params themselves; tape arrays compare
        elementwise (as NumPy's), so they cannot be dict keys and the dict names them instead.
        """
        out = self.copy()
        for name, g in named.items():
            matches = [p for p in self.params if p.name == name]
            if len(matches) != 1:
                names = [p.name for p in self.params if p.name]
                raise KeyError(f"{name!r} must name exactly one param; {len(matches)} do "
                               f"(named params: {names})")
            p = matches[0]
            if isinstance(out[p], dict):
                raise TypeError(f"the gradient of {describe(p)} is structural "
                                f"({_short(out[p])}); add to its entries instead")
            base = np.zeros(p.shape, dtype=p.dtype) if out[p] is None else out[p]
            out[p] = base + np.asarray(g, dtype=p.dtype)
        return out

    def __sub__(self, other: Any) -> Grads:
        return self._binary(other, operator.sub)

    def __mul__(self, other: Any) -> Grads:
        return self._binary(other, operator.mul)

    def __rmul__(self, other: Any) -> Grads:
        return self._binary(other, operator.mul)

    def __truediv__(self, other: Any) -> Grads:
        return self._binary(other, operator.truediv)

    def __neg__(self) -> Grads:
        return self.map(operator.neg)

    def __repr__(self) -> str:
        rows = [f"{describe(p)}: {_short(g)}" for p, g in self.items()]
        rows += [f"global {k}: {_short(g)}" for k, g in self.globals.items()]
        return f"Grads({self.alias}; " + "; ".join(rows) + ")"


def _short(g: Grad) -> str:
    if g is None:
        return "None"
    if isinstance(g, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in g.items()) + "}"
    return np.array2string(g, separator=", ", threshold=8)
