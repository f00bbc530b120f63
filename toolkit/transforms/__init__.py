"""optax transforms for tied parameters.

A tied parameter is stored once but read through several leaves of a params pytree (an
embedding reused, transposed, as the output projection). ``jax.grad`` on such an untied pytree
splits the gradient between the copies, and stateful optimizers then break the tie. This
package merges the gradients and optimises each real parameter once:

    >>> import jax.numpy as jnp, optax
    >>> from toolkit.transforms import Tie, tied
    >>> tx = tied(optax.adamw(1e-3), [Tie("embed", "unembed", "transpose")])

It depends only on jax, numpy and optax.
"""

from toolkit.transforms._maps import TieMap, parse_map
from toolkit.transforms._tied import TiedState, merge_tied_gradients, tied
from toolkit.transforms._ties import Tie, detect_ties, materialize_ties, tie_drift

__all__ = [
    "Tie",
    "TieMap",
    "TiedState",
    "detect_ties",
    "materialize_ties",
    "merge_tied_gradients",
    "parse_map",
    "tie_drift",
    "tied",
]
