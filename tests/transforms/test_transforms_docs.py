"""The user-facing example in docs/transforms.md runs and keeps its tie."""

from __future__ import annotations

import math
import re
from pathlib import Path

import jax
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "transforms.md"


def test_docs_example_trains_a_tied_embedding_with_tied_adamw() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, f"no python example in {DOC}"
    namespace: dict = {}
    # The doc is written for a default (float32) session; conftest turns on x64 for the suite.
    with jax.enable_x64(False):
        exec(compile(blocks[0], str(DOC), "exec"), namespace)
        params, ties = namespace["params"], namespace["ties"]
        assert params["embed"].dtype == "float32"
        assert float(namespace["tie_drift"](params, ties)["unembed"]) == 0.0
        # It learned: well below the loss of a uniform guess over the vocabulary.
        assert float(namespace["loss"]) < 0.5 * math.log(namespace["vocab"])


LIBRARY_SECTION = "### In Flax NNX, Flax linen, Equinox and Haiku training loops"
# The section's examples, in order, and the module each one needs.
LIBRARY_EXAMPLES = [
    ("nnx", "flax.nnx"),
    ("linen", "flax.linen"),
    ("equinox", "equinox"),
    ("haiku", "haiku"),
]


LOSS_SIDE_SECTION = "### The loss-side path: `loss_on_sources`"
SECTIONS = {"tied": LIBRARY_SECTION, "loss-side": LOSS_SIDE_SECTION}


def _library_examples(heading: str = LIBRARY_SECTION) -> list[str]:
    text = DOC.read_text()
    assert heading in text, f"no section {heading!r} in {DOC}"
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("heading", SECTIONS.values(), ids=SECTIONS.keys())
def test_docs_has_one_example_per_library(heading: str) -> None:
    assert len(_library_examples(heading)) == len(LIBRARY_EXAMPLES)


@pytest.mark.parametrize("heading", SECTIONS.values(), ids=SECTIONS.keys())
@pytest.mark.parametrize(
    ("position", "module"),
    [(i, module) for i, (_, module) in enumerate(LIBRARY_EXAMPLES)],
    ids=[name for name, _ in LIBRARY_EXAMPLES],
)
def test_docs_library_example_trains_and_keeps_the_tie(
    position: int, module: str, heading: str
) -> None:
    pytest.importorskip(module)
    source = _library_examples(heading)[position]
    assert f"import {module.split('.')[0]}" in source or f"from {module.split('.')[0]}" in source
    namespace: dict = {}
    with jax.enable_x64(False):
        exec(compile(source, f"{DOC} ({module} example)", "exec"), namespace)
    drift, losses = namespace["drift"], namespace["losses"]
    assert len(losses) == 100
    assert drift and all(float(value) == 0.0 for value in drift.values()), drift
    # It learned: the loss fell by more than a tenth from the first step's (about log(vocab)).
    assert losses[-1] < 0.9 * losses[0], (losses[0], losses[-1])
