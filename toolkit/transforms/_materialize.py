"""Helpers on tied params: write every target from its source, measure how far ties drifted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from toolkit.transforms._leaves import leaf_values, with_values
from toolkit.transforms._merge import broadcast_leaves
from toolkit.transforms._plan import resolve
from toolkit.transforms._tie import Tie


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
