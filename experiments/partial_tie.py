"""Parameters tied to a slice of another: a prefix of a bias vector, a block of columns.

A partial tie shares only part of a buffer: a narrow layer whose bias is the first ``k``
entries of a wider layer's bias (``tie("wide.bias", "[:k]")``), or a side branch whose weight is
a block of columns of the main weight (``tie("enc.weight", "[:, 2:5]")``). They arise when a
model reuses part of a table (shared prefixes of embeddings, low-rank heads sliced from a
bigger projection) and in Julia/PyTorch code that writes ``@view W[:, 2:5]``.

The true gradient of the shared buffer is the wide read's gradient plus the slice's gradient
**scattered back into the slice's positions**: entries outside the slice get one
contribution, entries inside get two, and with overlapping slices (``overlapping-slices``)
the overlap gets three.

What each strategy does:

- ``implicit-identity``: the slice is a view created outside the loss, an independent leaf. With
  every alias listed, in-place SGD writes each partial through its view and the step is
  exact; with the source only listed the slice's part is missing.
- ``explicit``: the slice is a separate copy with its own gradient; nothing scatters it back,
  so the copies drift under any optimizer that is not applied through the views.
- ``explicit-merged``: the tie transform scatter-adds the slice's gradient into the source.
- ``implicit-storage`` / ``explicit-shared``: one buffer, exact by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, ParamTree, tie


def _mse(np: Any, pred: Any, target: Any) -> Any:
    """Mean squared error."""
    return np.mean((pred - target) ** 2)


def loss_bias_prefix(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Two heads; the narrow head's bias is a view of the first k entries of the wide bias."""
    x = data["x"]
    wide = np.tanh(x @ p.wide.weight + p.wide.bias)
    narrow = np.tanh(x @ p.narrow.weight + p.narrow.bias)
    return _mse(np, wide @ p.wide.readout + narrow @ p.narrow.readout, data["y"])


def loss_block(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Main branch reads the whole matrix; a side branch reads a block of its columns."""
    main = np.tanh(data["x"] @ p.enc.weight)
    side = np.tanh(data["z"] @ p.side.weight)
    return _mse(np, main @ p.enc.readout + side @ p.side.readout, data["y"])


def loss_overlap(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """The whole vector and two overlapping slices of it, each with its own weighting."""
    return (
        np.sum(np.tanh(p.v * data["a"]))
        + np.sum(p.left * p.left * data["b"])
        + np.sum(np.exp(0.5 * p.right) * data["c"])
    )


def cases(
    n: int = 8,
    k: int = 3,
    inputs: int = 4,
    batch: int = 16,
    block_start: int = 2,
    block_stop: int = 5,
) -> list[Case]:
    """Prefix-of-bias, column-block and overlapping-slice ties.

    Args:
        n: width of the wide layer (length of the shared bias, columns of ``enc.weight``).
        k: the narrow layer's width: its bias is ``wide.bias[:k]``.
        inputs: input features.
        batch: rows in the fixed batch.
        block_start: first column of the block that ``side.weight`` views.
        block_stop: one past the block's last column.

    Returns:
        ``bias-prefix``, ``bias-prefix-source-only``, ``block``, ``block-source-only`` and
        ``overlapping-slices``.
    """
    if not 0 < k <= n:
        raise ValueError(f"k={k} must be in 1..n={n}")
    if not 0 <= block_start < block_stop <= n:
        raise ValueError(f"block [{block_start}:{block_stop}] must lie within the {n} columns")
    width = block_stop - block_start
    block = f"[:, {block_start}:{block_stop}]"

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "x": rng.standard_normal((batch, inputs)),
            "z": rng.standard_normal((batch, inputs)),
            "y": rng.standard_normal(batch),
            "a": rng.standard_normal(n),
            "b": rng.standard_normal(n // 2 + 1),
            "c": rng.standard_normal(n - (n // 2 - 1)),
        }

    bias_params = {
        "wide.weight": Param((inputs, n), init="glorot"),
        "wide.bias": Param((n,), scale=0.5),
        "wide.readout": Param((n,), scale=0.5),
        "narrow.weight": Param((inputs, k), init="glorot"),
        "narrow.bias": tie("wide.bias", f"[:{k}]"),
        "narrow.readout": Param((k,), scale=0.5),
    }
    block_params = {
        "enc.weight": Param((inputs, n), init="glorot"),
        "enc.readout": Param((n,), scale=0.5),
        "side.weight": tie("enc.weight", block),
        "side.readout": Param((width,), scale=0.5),
    }
    lo, hi = n // 2 + 1, n // 2 - 1
    overlap_params = {
        "v": Param((n,), scale=0.5),
        "left": tie("v", f"[:{lo}]"),
        "right": tie("v", f"[{hi}:]"),
    }
    bias_others = ("wide.weight", "wide.readout", "narrow.weight", "narrow.readout")
    return [
        Case(
            "bias-prefix",
            bias_params,
            loss_bias_prefix,
            wrt=("wide.bias", "narrow.bias", *bias_others),
            data=data,
            description=f"narrow.bias = wide.bias[:{k}] (a view); Params lists both",
        ),
        Case(
            "bias-prefix-source-only",
            bias_params,
            loss_bias_prefix,
            wrt=("wide.bias", *bias_others),
            data=data,
            description=f"narrow.bias = wide.bias[:{k}]; Params lists wide.bias only",
        ),
        Case(
            "block",
            block_params,
            loss_block,
            wrt=("enc.weight", "side.weight", "enc.readout", "side.readout"),
            data=data,
            description=f"side.weight = enc.weight{block} (a view); Params lists both",
        ),
        Case(
            "block-source-only",
            block_params,
            loss_block,
            wrt=("enc.weight", "enc.readout", "side.readout"),
            data=data,
            description=f"side.weight = enc.weight{block}; Params lists enc.weight only",
        ),
        Case(
            "overlapping-slices",
            overlap_params,
            loss_overlap,
            wrt=("v", "left", "right"),
            data=data,
            description=(
                f"left = v[:{lo}], right = v[{hi}:] overlap in v[{hi}:{lo}]; the loss reads "
                "v, left and right; Params lists all three"
            ),
        ),
    ]
