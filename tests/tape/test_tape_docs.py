"""The examples in the tape's docstrings and in docs/tape.md run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import warnings
from pathlib import Path

import pytest

import toolkit.tape as tp

MODULES = ["toolkit.tape", "toolkit.tape._core", "toolkit.tape._gradient",
           "toolkit.tape._params", "toolkit.tape.numpy"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "tape.md"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tp.AliasWarning)
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_docs_example() -> None:
    result = doctest.testfile(str(DOC), module_relative=False)
    assert result.failed == 0 and result.attempted > 0
