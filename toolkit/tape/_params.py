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
from collections.abc import Callable, Iterable, Iterator
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

    def shared_storage(self) -> list[tuple[int, ...]]:
        """Positions of params that share one storage, one tuple per shared storage."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(self._items):
            groups.setdefault(id(storage_of(p)), []).append(i)
        return [tuple(g) for g in groups.values() if len(g) > 1]

    def __repr__(self) -> str:
        return f"Params([{', '.join(describe(p) for p in self._items)}])"


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
            raise KeyError(
                f"{describe(p) if isinstance(p, Array) else repr(p)} is not one of the "
                f"{len(self.params)} params these gradients were taken for"
            ) from None

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
            if other.params is not self.params:
                raise ValueError("arithmetic needs two Grads of the same Params object")
            vals = {k: _apply(op, v, other._values[k]) for k, v in self._values.items()}
            names = {**self.globals, **other.globals}
            glob = {k: _apply(op, self.globals.get(k), other.globals.get(k)) for k in names}
            return Grads(self.params, vals, glob, self.alias)
        if isinstance(other, int | float | np.number):
            return self.map(lambda g: op(g, other))
        return NotImplemented

    def __add__(self, other: Any) -> Grads:
        return self._binary(other, operator.add)

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
