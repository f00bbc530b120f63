"""One layer applied twice: ``Chain(m, m)``, where the same object appears in two slots.

Flux's ``Chain(m, m)`` and PyTorch's ``nn.Sequential(m, m)`` hold the same layer object twice.
Walking the model's structure finds the weight at ``layers.0.weight`` and again at
``layers.1.weight``: one buffer, two paths. Here the second slot is an identity tie
(``tie("layers.0.weight")``): the very same object, not a copy and not a view.

    h = tanh(x @ V)                    input projection
    h = tanh(h @ W + b)                layers.0
    h = tanh(h @ W + b)                layers.1: the same W and b
    loss = mean((h @ r - y)²)

The true gradient of ``W`` is the sum of both applications' parts.

What each strategy does:

- ``implicit-identity`` matches params by object identity, so both slots are one entry holding
  the total: exact whether one slot or both are listed (Zygote gets ``Chain(m, m)`` right
  for the same reason).
- ``explicit`` treats each slot as its own leaf holding a copy: each gets only its own
  application's part. Summed by SGD into the shared memory the step is right, but any
  per-leaf optimizer state (Adam) and any update of the copies separately breaks the tie;
  with only ``layers.0`` differentiated (``chain-m-m-source-only``) the second application's
  part is missing.
- ``explicit-merged`` sums the slots' gradients; ``implicit-storage`` and ``explicit-shared``
  see one buffer: exact.
- ``apply-twice-in-loss`` is the control: the loss reads ``layers.0`` twice and there is no
  second path, so every strategy agrees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, ParamTree, tie


def _dense(np: Any, layer: ParamTree, h: Any) -> Any:
    """One application of a ``tanh`` dense layer read through ``layer``'s path."""
    return np.tanh(h @ layer.weight + layer.bias)


def loss_chain(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """``Chain(m, m)``: each slot read through its own path."""
    h = np.tanh(data["x"] @ p.proj.weight)
    h = _dense(np, p.layers[1], _dense(np, p.layers[0], h))
    return np.mean((h @ p.readout - data["y"]) ** 2)


def loss_apply_twice(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """``m(m(h))``: the loss applies ``layers.0`` twice; no second path exists."""
    h = np.tanh(data["x"] @ p.proj.weight)
    h = _dense(np, p.layers[0], _dense(np, p.layers[0], h))
    return np.mean((h @ p.readout - data["y"]) ** 2)


def cases(inputs: int = 4, width: int = 6, batch: int = 16) -> list[Case]:
    """``Chain(m, m)`` with both slots listed, with the first slot only, and the control.

    Args:
        inputs: input features.
        width: the shared layer's size (square: it maps ``width`` to ``width``).
        batch: rows in the fixed batch.

    Returns:
        ``chain-m-m``, ``chain-m-m-source-only`` and ``apply-twice-in-loss``.
    """

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"x": rng.standard_normal((batch, inputs)), "y": rng.standard_normal(batch)}

    params = {
        "proj.weight": Param((inputs, width), init="glorot"),
        "layers.0.weight": Param((width, width), init="glorot", scale=1.5),
        "layers.0.bias": Param((width,), scale=0.3),
        "layers.1.weight": tie("layers.0.weight"),
        "layers.1.bias": tie("layers.0.bias"),
        "readout": Param((width,), scale=0.5),
    }
    control = {k: v for k, v in params.items() if not k.startswith("layers.1.")}
    return [
        Case(
            "chain-m-m",
            params,
            loss_chain,
            wrt=(
                "proj.weight", "layers.0.weight", "layers.0.bias",
                "layers.1.weight", "layers.1.bias", "readout",
            ),
            data=data,
            description="Chain(m, m): layers.1 is the same object as layers.0; Params lists both",
        ),
        Case(
            "chain-m-m-source-only",
            params,
            loss_chain,
            wrt=("proj.weight", "layers.0.weight", "layers.0.bias", "readout"),
            data=data,
            description="Chain(m, m); Params lists layers.0 only",
        ),
        Case(
            "apply-twice-in-loss",
            control,
            loss_apply_twice,
            wrt=("proj.weight", "layers.0.weight", "layers.0.bias", "readout"),
            data=data,
            description="m(m(x)) written in the loss: one path, no alias (control)",
        ),
    ]
