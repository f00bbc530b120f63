"""A recurrent weight shared across the time steps of an unrolled recurrence.

An RNN applies one transition matrix ``W`` at every step. Frameworks that unroll the loop into
a static graph, and hand-written code that keeps a per-step handle on the weight, end up with
one alias per step: ``steps.0.W``, ``steps.1.W``, … all seeing ``cell.W``'s memory. Back-
propagation through time needs the **sum** over steps of each step's part; any strategy that
keeps per-step parts apart, or drops the steps it was not told about, trains a different
model.

    h_0 = tanh(x_0 @ U + b)
    h_t = tanh(h_{t-1} @ W_t + x_t @ U + b)     t = 1..steps, W_t the step's handle on W
    loss = mean over t and batch of (h_t @ r - y_t)²

Cases, from clearest to most hidden:

- ``loop-reuse`` (control): the loss reads ``cell.W`` at every step; one path, every strategy
  agrees.
- ``step-aliases``: each step reads its own identity alias ``steps.t.W`` (the same object as
  ``cell.W``), all listed. ``implicit-identity`` matches by object, so it is exact;
  ``explicit`` gives one copy per step, each holding only its step's part (the total is
  their sum, which per-leaf Adam never forms); ``explicit-merged`` sums them.
- ``step-aliases-source-only``: the same with only ``cell.W`` listed. ``implicit-identity`` is
  still exact (same object); ``explicit`` differentiates a leaf the loss never reads and
  reports zero for it: every step's part is missing.
- ``step-views-source-only``: each step reads a view ``cell.W[:, :]`` made before the loss
  runs (``@views`` in Julia, ``W[:]`` in PyTorch), only ``cell.W`` listed. Views are
  independent leaves under the identity policy: ``implicit-identity`` loses every step's part,
  which is what silently freezes the recurrent weight of an implicit-params RNN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Loss, Param, ParamTree, tie


def _unroll(np: Any, p: ParamTree, data: dict[str, Any], weights: list[Any]) -> Any:
    """Runs the recurrence with ``weights[t - 1]`` as step t's transition; mean loss."""
    x, y = data["x"], data["y"]
    h = np.tanh(x[0] @ p.cell.U + p.cell.b)
    total = np.mean((h @ p.readout - y[0]) ** 2)
    for t, w in enumerate(weights, start=1):
        h = np.tanh(h @ w + x[t] @ p.cell.U + p.cell.b)
        total = total + np.mean((h @ p.readout - y[t]) ** 2)
    return total / (len(weights) + 1)


def _per_step(steps: int) -> Loss:
    """The loss where step t reads its own handle ``steps.t.W``."""

    def loss(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
        return _unroll(np, p, data, [p.steps[t].W for t in range(steps)])

    loss.__doc__ = "Unrolled recurrence: step t reads its own handle ``steps.t.W``."
    return loss


def _reuse(steps: int) -> Loss:
    """The loss where every step reads ``cell.W`` itself."""

    def loss(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
        return _unroll(np, p, data, [p.cell.W] * steps)

    loss.__doc__ = "Unrolled recurrence: every step reads ``cell.W`` itself."
    return loss


def cases(steps: int = 5, inputs: int = 3, hidden: int = 6, batch: int = 8) -> list[Case]:
    """The unrolled recurrence with a shared transition weight, four ways.

    Args:
        steps: recurrent transitions (the sequence has ``steps + 1`` inputs).
        inputs: input features per step.
        hidden: hidden-state size (``cell.W`` is hidden × hidden).
        batch: sequences in the fixed batch.

    Returns:
        ``loop-reuse``, ``step-aliases``, ``step-aliases-source-only`` and
        ``step-views-source-only``.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "x": rng.standard_normal((steps + 1, batch, inputs)),
            "y": rng.standard_normal((steps + 1, batch)),
        }

    base = {
        "cell.W": Param((hidden, hidden), init="glorot", scale=1.2),
        "cell.U": Param((inputs, hidden), init="glorot"),
        "cell.b": Param((hidden,), scale=0.1),
        "readout": Param((hidden,), scale=0.5),
    }
    aliases = {f"steps.{t}.W": tie("cell.W") for t in range(steps)}
    views = {f"steps.{t}.W": tie("cell.W", "[:, :]") for t in range(steps)}
    others = ("cell.U", "cell.b", "readout")
    return [
        Case(
            "loop-reuse",
            base,
            _reuse(steps),
            wrt=("cell.W", *others),
            data=data,
            description=f"{steps} steps all read cell.W: one path, no alias (control)",
        ),
        Case(
            "step-aliases",
            {**base, **aliases},
            _per_step(steps),
            wrt=("cell.W", *aliases, *others),
            data=data,
            description=(
                f"step t reads steps.t.W, the same object as cell.W ({steps} aliases); "
                "Params lists cell.W and every alias"
            ),
        ),
        Case(
            "step-aliases-source-only",
            {**base, **aliases},
            _per_step(steps),
            wrt=("cell.W", *others),
            data=data,
            description="step t reads steps.t.W (same object as cell.W); Params lists cell.W only",
        ),
        Case(
            "step-views-source-only",
            {**base, **views},
            _per_step(steps),
            wrt=("cell.W", *others),
            data=data,
            description=(
                "step t reads steps.t.W = view(cell.W, :, :) made outside the loss; "
                "Params lists cell.W only"
            ),
        ),
    ]
