"""Float64 central differences on a tape array's memory, shared by the tape tests."""

from collections.abc import Callable

import numpy as np

import toolkit.tape as tp


def finite_difference(
    f: Callable[[], tp.Array], owner: tp.Array, h: float = 1e-6
) -> np.ndarray:
    """d f / d (owner's memory) by central differences, writing the memory in place."""
    base = owner.numpy()
    grad = np.zeros_like(base)
    for i in range(base.size):
        for sign in (1, -1):
            bumped = base.copy()
            bumped.flat[i] += sign * h
            owner[...] = bumped
            grad.flat[i] += sign * float(f()) / (2 * h)
    owner[...] = base
    return grad
