"""One array in two argument slots: an LSTM-like cell called as ``cell(W, W, x)``.

A cell function takes its input weight and its recurrent weight as two arguments. Weight
sharing between the two (possible when inputs and hidden state have the same width) passes
the same array in both slots. AD systems then disagree on what "the gradient of ``W``" is:

- **storage semantics**: the derivative w.r.t. the memory ``W`` — moving ``W`` moves both
  slots, so the result is the sum of the two slots' parts (what differentiating a parameter
  that a loss reads twice gives in JAX, PyTorch and Zygote);
- **slot semantics**: one derivative per argument slot, each holding the other slot fixed
  (what ``jax.grad(cell, argnums=(0, 1))`` or a per-argument shadow gives).

The cell, for ``t = 1..steps`` (``n`` = inputs = hidden units; gates split in four)::

    gates    = x_t @ w_input + h @ w_recurrent + b          (batch × 4n)
    i, f, o  = sigmoid(gates[:, :n]), sigmoid(gates[:, n:2n]), sigmoid(gates[:, 3n:])
    c        = f * c + i * tanh(gates[:, 2n:3n]);  h = o * tanh(c)
    loss     = mean over t and batch of (h @ readout - y_t)²

Cases:

- ``shared-array``: the loss reads ``cell.W`` once and passes it in both slots. Every
  strategy here differentiates the parameter, so every one follows storage semantics.
- ``slot-aliases``: each slot reads its own identity alias (``slots.input`` and
  ``slots.recurrent``, both the object ``cell.W``), all listed. ``explicit`` gives each alias
  its own leaf, so each slot its own part (slot semantics); ``implicit-identity`` sees one
  object and sums (storage semantics), as do ``explicit-merged``, ``explicit-shared`` and
  ``implicit-storage``.

What a per-slot reference needs, beside ``cases``:

- ``SLOTS``: for each case, the slot names in argument order and the parameter path each
  slot reads (``{"shared-array": {"input": "cell.W", "recurrent": "cell.W"}, ...}``).
- ``slot_loss(np, p, data, slots)``: the loss with ``slots[name]`` passed in slot ``name``
  (every other input read from ``p``). A case's own loss is ``slot_loss`` with each slot
  given ``p[SLOTS[case][name]]``, so perturbing one entry of ``slots`` moves that slot
  alone: the slot's partial. Perturbing the storage (every slot together) gives the total,
  the sum of the partials.

Example:
    >>> import numpy
    >>> from toolkit.experiment import ParamTree
    >>> from toolkit.namespaces import numpy_namespace
    >>> case = cases()[0]
    >>> values, data = case.initial_values(0), case.make_data(0)
    >>> p, ns = ParamTree(values), numpy_namespace()
    >>> w = values["cell.W"]
    >>> bool(case.loss(ns, p, data) == slot_loss(ns, p, data, {"input": w, "recurrent": w}))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy

from toolkit.experiment import Case, Loss, Param, ParamTree, tie

SLOTS: dict[str, dict[str, str]] = {
    "shared-array": {"input": "cell.W", "recurrent": "cell.W"},
    "slot-aliases": {"input": "slots.input", "recurrent": "slots.recurrent"},
}


def cell(np: Any, w_input: Any, w_recurrent: Any, bias: Any, x: Any, h: Any,
         c: Any) -> tuple[Any, Any]:
    """One LSTM step: the new ``(h, c)``; each weight is a separate argument slot."""
    n = h.shape[-1]
    gates = np.matmul(x, w_input) + np.matmul(h, w_recurrent) + bias
    i, f = np.sigmoid(gates[:, :n]), np.sigmoid(gates[:, n:2 * n])
    g, o = np.tanh(gates[:, 2 * n:3 * n]), np.sigmoid(gates[:, 3 * n:])
    c = f * c + i * g
    return o * np.tanh(c), c


def slot_loss(np: Any, p: ParamTree, data: Mapping[str, Any], slots: Mapping[str, Any]) -> Any:
    """The unrolled cell's mean squared error with ``slots["input"]`` and
    ``slots["recurrent"]`` in the cell's two weight slots."""
    x, y = data["x"], data["y"]
    h = c = numpy.zeros((x.shape[1], x.shape[2]), dtype=x.dtype)
    total = 0.0
    for t in range(x.shape[0]):
        h, c = cell(np, slots["input"], slots["recurrent"], p.cell.b, x[t], h, c)
        total = total + np.mean((np.matmul(h, p.readout) - y[t]) ** 2)
    return total / x.shape[0]


def _loss(case: str) -> Loss:
    paths = SLOTS[case]

    def loss(np: Any, p: ParamTree, data: Mapping[str, Any]) -> Any:
        return slot_loss(np, p, data, {name: p[path] for name, path in paths.items()})

    loss.__doc__ = f"The unrolled cell; slot reads: {paths}."
    return loss


def cases(steps: int = 4, hidden: int = 5, batch: int = 6) -> list[Case]:
    """The LSTM-like cell with one weight in both slots, read directly and through aliases.

    Args:
        steps: time steps of the unrolled cell.
        hidden: inputs and hidden units (equal, so one weight fits both slots).
        batch: sequences in the fixed batch.

    Returns:
        ``shared-array`` and ``slot-aliases``.
    """
    for name, value in (("steps", steps), ("hidden", hidden), ("batch", batch)):
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")

    def data(rng: numpy.random.Generator) -> dict[str, numpy.ndarray]:
        return {"x": rng.standard_normal((steps, batch, hidden)),
                "y": rng.standard_normal((steps, batch))}

    base = {
        "cell.W": Param((hidden, 4 * hidden), init="glorot", scale=1.5),
        "cell.b": Param((4 * hidden,), scale=0.1),
        "readout": Param((hidden,), scale=0.5),
    }
    aliases = {"slots.input": tie("cell.W"), "slots.recurrent": tie("cell.W")}
    return [
        Case("shared-array", base, _loss("shared-array"), wrt=tuple(base), data=data,
             description="cell(W, W, x): cell.W read once, passed in both weight slots"),
        Case("slot-aliases", {**base, **aliases}, _loss("slot-aliases"),
             wrt=("cell.W", *aliases, "cell.b", "readout"), data=data,
             description=("cell(slots.input, slots.recurrent, x), both the object cell.W; "
                          "Params lists cell.W and both slots")),
    ]
