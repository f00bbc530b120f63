"""JAX explicit-params backends over the shared experiments.

``explicit``, ``explicit-merged`` and ``explicit-shared`` gradients (jitted ``jax.grad`` on a
params pytree) and their trainers, including ``tied`` (:func:`toolkit.transforms.tied` on the
untied tree). Callers normally go through :mod:`toolkit.runner.strategies`.

Example:
    >>> from toolkit.experiments.aliasing import cases
    >>> case5 = next(c for c in cases() if c.name == "case5")
    >>> r = compute_gradients("explicit", case5, case5.initial_values(0), {}, ("x", "xt"))
    >>> r.grads["x"], r.grads["xt"]
    (array([1.]), array([[1.]]))
"""

from toolkit.explicit._alias import Alias, alias_namespace, unwrap
from toolkit.explicit._layout import Layout, use_dtype
from toolkit.explicit._run import ExplicitTrainer, compute_gradients

__all__ = [
    "Alias",
    "ExplicitTrainer",
    "Layout",
    "alias_namespace",
    "compute_gradients",
    "unwrap",
    "use_dtype",
]
