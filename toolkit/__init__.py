"""aliasgrad: compare automatic-differentiation strategies on aliased and tied parameters.

Subpackages:
    toolkit.tape: native numpy reverse-mode engine with implicit ``Params``.
    toolkit.explicit: JAX explicit-params backends over the same experiments.
    toolkit.transforms: optax transforms that merge tied-weight gradients.
"""

__version__ = "0.1.0"
