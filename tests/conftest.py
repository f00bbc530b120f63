"""Shared test setup: float64 JAX for numerical comparisons."""

import jax

jax.config.update("jax_enable_x64", True)
