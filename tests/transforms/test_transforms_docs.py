"""The user-facing example in docs/transforms.md runs and keeps its tie."""

from __future__ import annotations

import math
import re
from pathlib import Path

import jax

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
