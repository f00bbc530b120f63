"""aliasgrad: compare automatic-differentiation strategies on aliased and tied parameters.

Subpackages:
    toolkit.tape: native numpy reverse-mode engine with implicit ``Params``.
    toolkit.explicit: JAX explicit-params backends over the same experiments.
    toolkit.transforms: optax transforms that merge tied-weight gradients.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy so that `import toolkit` stays cheap (the config loader pulls in optax and jax).
    if name == "load_config":
        from toolkit.runner.preflight import load_config

        return load_config
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
