"""The loss-side path: a loss over the untied params made a loss over the sources only."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from toolkit.transforms._checkpoint import restore_targets
from toolkit.transforms._tie import Tie


def loss_on_sources(
    loss_fn: Callable[..., Any], ties: Sequence[Tie], *, argnum: int = 0
) -> Callable[..., Any]:
    """Returns ``loss_fn`` taking the sources only: each tie target computed from its source.

    :func:`tied` keeps the untied params and changes the optimizer. This keeps the optimizer and
    changes what it sees: the params with ``None`` at every target, as
    :func:`strip_targets` returns them. Inside, each target is written as ``map(source)``
    (chains resolved) before ``loss_fn`` runs, so ``jax.grad`` carries every copy's gradient
    back to its source through the map. The optimizer, any optimizer unchanged, then holds one
    state per real parameter and runs at the cost of the shared model, whose program this is.

    Args:
        loss_fn: the loss; its positional argument ``argnum`` is the untied params.
        ties: the ties between the untied params' leaves (any path spelling :class:`Tie`
            takes).
        argnum: the position of the params among ``loss_fn``'s arguments.

    Returns:
        A function with ``loss_fn``'s signature whose argument ``argnum`` is the sources.
        ``restore_targets(sources, ties)`` gives the untied params back (to evaluate, export or
        checkpoint them).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from toolkit.transforms import Tie, strip_targets
        >>> ties = [Tie("embed", "unembed", "transpose")]
        >>> params = {"embed": jnp.ones((4, 2)), "unembed": jnp.ones((2, 4))}
        >>> loss = lambda p: jnp.sum(p["embed"] @ p["unembed"])
        >>> grads = jax.grad(loss_on_sources(loss, ties))(strip_targets(params, ties))
        >>> grads["unembed"] is None, grads["embed"].tolist()[0]
        (True, [8.0, 8.0])
    """

    @functools.wraps(loss_fn)
    def on_sources(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= argnum:
            raise TypeError(
                f"loss_on_sources: the sources are positional argument {argnum} of "
                f"{getattr(loss_fn, '__qualname__', loss_fn)!r}, but only {len(args)} "
                "positional arguments were given"
            )
        args = (*args[:argnum], restore_targets(args[argnum], ties), *args[argnum + 1 :])
        return loss_fn(*args, **kwargs)

    return on_sources
