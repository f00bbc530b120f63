"""Array namespaces an experiment's loss is written against.

A loss is written once, ``loss(np, p, data)``, and run with ``np`` bound to
:mod:`toolkit.tape.numpy`, to :func:`jax_namespace` or to :func:`numpy_namespace` (the
finite-difference reference). NumPy and ``jax.numpy`` lack the few neural-network functions
the tape namespace has (``sigmoid``, ``relu``, ``logsumexp``, ``softmax``, ``log_softmax``);
these namespaces add them with the tape's signatures so a loss sees the same names everywhere.

Example:
    >>> ns = numpy_namespace()
    >>> float(ns.sum(ns.softmax(ns.array([1.0, 2.0]))))
    1.0
"""

from __future__ import annotations

import types
from typing import Any


class ArrayNamespace(types.SimpleNamespace):
    """A module's functions plus the neural-network extras; unknown names fall back to it."""

    def __init__(self, module: Any, **extras: Any) -> None:
        super().__init__(**extras)
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __repr__(self) -> str:
        return f"ArrayNamespace({self._module.__name__})"


def _extras(xp: Any) -> dict[str, Any]:
    def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        m = xp.max(x, axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0.0)
        out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else xp.squeeze(out, axis=axis)

    def log_softmax(x: Any, axis: int = -1) -> Any:
        return x - logsumexp(x, axis=axis, keepdims=True)

    def softmax(x: Any, axis: int = -1) -> Any:
        return xp.exp(log_softmax(x, axis=axis))

    def sigmoid(x: Any) -> Any:
        return 0.5 * (xp.tanh(0.5 * x) + 1.0)

    def relu(x: Any) -> Any:
        return xp.maximum(x, 0)

    return {
        "logsumexp": logsumexp,
        "log_softmax": log_softmax,
        "softmax": softmax,
        "sigmoid": sigmoid,
        "relu": relu,
    }


def numpy_namespace() -> ArrayNamespace:
    """NumPy with the extras: the namespace of the finite-difference reference."""
    import numpy

    return ArrayNamespace(numpy, **_extras(numpy))


def jax_namespace() -> ArrayNamespace:
    """``jax.numpy`` with the extras (``jax.nn``'s numerically careful versions)."""
    import jax
    import jax.numpy as jnp

    return ArrayNamespace(
        jnp,
        logsumexp=jax.nn.logsumexp,
        log_softmax=jax.nn.log_softmax,
        softmax=jax.nn.softmax,
        sigmoid=jax.nn.sigmoid,
        relu=jax.nn.relu,
    )
