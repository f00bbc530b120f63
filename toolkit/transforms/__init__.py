"""optax transforms for tied parameters.

A tied parameter is stored once but read through several leaves of a params pytree (an
embedding reused, transposed, as the output projection). ``jax.grad`` on such an untied pytree
splits the gradient between the copies, and stateful optimizers then break the tie. This
package merges the gradients and optimises each real parameter once:

    >>> import jax.numpy as jnp, optax
    >>> from toolkit.transforms import Tie, tied
    >>> tx = tied(optax.adamw(1e-3), [Tie("embed", "unembed", "transpose")])

Or, on the loss side, any optimizer is given the sources only and the loss computes each
target from its source (:func:`loss_on_sources`, with :func:`strip_targets`):

    >>> from toolkit.transforms import loss_on_sources
    >>> loss = loss_on_sources(lambda p: jnp.sum(p["embed"] @ p["unembed"]),
    ...                        [Tie("embed", "unembed", "transpose")])
    >>> float(loss({"embed": jnp.ones((3, 2)), "unembed": None}))
    18.0

It depends only on jax, numpy and optax. The tie maps (:func:`parse_map`) need only numpy,
so importing them does not load jax; the transforms and tie helpers are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from toolkit.transforms._maps import TieMap, parse_map

if TYPE_CHECKING:
    from toolkit.transforms._checkpoint import restore_targets, strip_targets
    from toolkit.transforms._detect import detect_ties
    from toolkit.transforms._loss_side import loss_on_sources
    from toolkit.transforms._materialize import materialize_ties, tie_drift
    from toolkit.transforms._tie import Tie
    from toolkit.transforms._tied import TiedState, merge_tied_gradients, tied, tied_eval_params
    from toolkit.transforms._tied_target import TiedTarget
    from toolkit.transforms._untie import retie, untie

# Public name → the submodule defining it; these need jax, so they load on first access.
_JAX_EXPORTS = {
    "TiedState": "_tied",
    "TiedTarget": "_tied_target",
    "merge_tied_gradients": "_tied",
    "tied": "_tied",
    "tied_eval_params": "_tied",
    "Tie": "_tie",
    "detect_ties": "_detect",
    "loss_on_sources": "_loss_side",
    "restore_targets": "_checkpoint",
    "strip_targets": "_checkpoint",
    "materialize_ties": "_materialize",
    "tie_drift": "_materialize",
    "untie": "_untie",
    "retie": "_untie",
}

__all__ = [
    "Tie",
    "TieMap",
    "TiedState",
    "TiedTarget",
    "detect_ties",
    "loss_on_sources",
    "materialize_ties",
    "merge_tied_gradients",
    "parse_map",
    "restore_targets",
    "retie",
    "strip_targets",
    "tie_drift",
    "tied",
    "tied_eval_params",
    "untie",
]


def __getattr__(name: str) -> object:
    submodule = _JAX_EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module 'toolkit.transforms' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"toolkit.transforms.{submodule}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
