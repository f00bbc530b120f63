"""Tied parameters inside a JAX loss: arrays that also have ``.parent``.

The aliasing cases read ``xt.parent`` (the array a lazy wrapper wraps). JAX arrays have no such
attribute, and jax 0.10 no longer converts objects through ``__jax_array__`` when tracing, so a
tied parameter is handed to the loss as an :class:`Alias`: it forwards arithmetic, indexing
and attributes (``.T``, ``.shape``, ``.reshape``) to its value, and the loss's namespace
(:func:`alias_namespace`) unwraps it in every function call. Code calling ``jax.numpy``
directly can convert one with ``jnp.asarray(alias)``.

Example:
    >>> import jax.numpy as jnp
    >>> from toolkit.namespaces import jax_namespace
    >>> np_ = alias_namespace(jax_namespace())
    >>> x = jnp.array([1.0, 2.0])
    >>> xt = Alias(x.reshape(1, 2), parent=lambda: x)
    >>> float(np_.sum(xt * x)), xt.parent.shape, xt.T.shape
    (5.0, (2,), (2, 1))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def unwrap(value: Any) -> Any:
    """Replaces :class:`Alias` objects (also inside a list or tuple) by their values."""
    if isinstance(value, Alias):
        return value.value
    if isinstance(value, list | tuple):
        return type(value)(unwrap(v) for v in value)
    return value


class Alias:
    """A tied parameter's array plus ``.parent``.

    Args:
        value: the array the loss sees (the alias's own copy, or ``map(source)``).
        parent: returns what ``.parent`` gives (the source, or ``map⁻¹(copy)``); called on
            access so a non-invertible map fails only when a loss reads ``.parent``.
    """

    # numpy must defer to our reflected operators instead of converting us to an array.
    __array_ufunc__ = None

    def __init__(self, value: Any, parent: Callable[[], Any]) -> None:
        self.value = value
        self._parent = parent

    @property
    def parent(self) -> Any:
        """The wrapped array (Julia's ``xt.parent``)."""
        return self._parent()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.value, name)

    def __jax_array__(self) -> Any:
        # jnp.asarray(alias) still honours this in jax 0.10; implicit conversion does not.
        return self.value

    def __getitem__(self, index: Any) -> Any:
        return self.value[index]

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"Alias({self.value!r})"


def _forward(name: str) -> Callable[..., Any]:
    def method(self: Alias, *args: Any) -> Any:
        return getattr(self.value, name)(*unwrap(args))

    method.__name__ = name
    return method


for _name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
):
    setattr(Alias, f"__{_name}__", _forward(f"__{_name}__"))
    setattr(Alias, f"__r{_name}__", _forward(f"__r{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne", "neg", "pos", "abs"):
    setattr(Alias, f"__{_name}__", _forward(f"__{_name}__"))
Alias.__hash__ = None  # type: ignore[assignment]


class _AliasNamespace:
    def __init__(self, namespace: Any) -> None:
        self._namespace = namespace
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name in self._wrapped:
            return self._wrapped[name]
        attr = getattr(self._namespace, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})

        self._wrapped[name] = call
        return call

    def __repr__(self) -> str:
        return f"alias_namespace({self._namespace!r})"


def alias_namespace(namespace: Any) -> Any:
    """``namespace`` with every function unwrapping :class:`Alias` arguments."""
    return _AliasNamespace(namespace)
