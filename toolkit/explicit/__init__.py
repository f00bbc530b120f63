"""JAX explicit-params backends over the shared experiments.

Gradients (jitted ``jax.grad`` on a params pytree) and trainers for each pytree layout:
``copies`` (every path a leaf), ``merged`` (every alias of a differentiated storage a leaf,
tied gradients merged) and ``shared`` (one leaf per storage). Training wraps the optimizer as
given, after :func:`toolkit.transforms.merge_tied_gradients`, or in
:func:`toolkit.transforms.tied`. Callers normally go through the registry of
:mod:`toolkit.runner.strategies`, whose entries name the layout and the wrap.

Example:
    >>> from toolkit.experiments.aliasing import cases
    >>> from toolkit.problem import Problem
    >>> case5 = next(c for c in cases() if c.name == "case5")
    >>> r = compute_gradients("explicit", Problem(case5, case5.initial_values(0), {}, ("x", "xt")),
    ...                       layout="copies")
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
