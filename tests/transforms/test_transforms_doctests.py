"""The docstring examples of toolkit.transforms run as written."""

from __future__ import annotations

import doctest
from types import ModuleType

import jax
import pytest

import toolkit.transforms
from toolkit.transforms import (
    _checkpoint,
    _detect,
    _leaves,
    _loss_side,
    _maps,
    _materialize,
    _merge,
    _paths,
    _plan,
    _tie,
    _tied,
    _tied_target,
    _untie,
)

MODULES = [
    toolkit.transforms,
    _maps,
    _leaves,
    _paths,
    _tie,
    _plan,
    _merge,
    _materialize,
    _tied,
    _tied_target,
    _untie,
    _detect,
    _checkpoint,
    _loss_side,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    # Examples are written for a default (float32) session; conftest turns on x64.
    with jax.enable_x64(False):
        result = doctest.testmod(module, extraglobs=vars(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
