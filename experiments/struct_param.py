"""Parameters held inside user structures and lists, read through the container.

Models are trees: a layer struct holds its weight in a field, a model holds its layers (or
raw weight arrays) in a list. Implicit-params AD must notice, when the loss reads a value out
of a container, that the value is a parameter. Zygote does this for struct fields (its
``getfield`` adjoint calls ``accum_param``) but not for array elements: a param read as
``ws[1]`` out of a ``Vector`` gets ``nothing`` (``getindex`` on an array does not call
``accum_param``), and a param seen through a lazy wrapper such as ``Adjoint(x)`` gets
``nothing`` too (the ``adjoint`` case of the aliasing experiment).

Cases:

- ``struct-field``: ``a = A(x)``; the loss reads ``a.x`` (the same object as ``x``) and ``x``
  itself. The aliasing experiment's ``struct`` case: Zygote is right.
- ``struct-field-adjoint``: the struct holds ``Adjoint(x)``, a lazy wrapper made outside the
  loss. ``implicit-identity`` misses the wrapper's part (Zygote prints ``nothing`` for ``x``).
- ``list-of-params``: ``ws = [w0, w1]`` holds the param objects; the loss reads ``ws[0]`` and
  ``ws[1]`` only. Zygote itself returns ``nothing`` here (no ``accum_param`` in ``getindex``);
  this toolkit's identity policy follows its rule 1 (params matched by object identity), so
  it credits the objects. The report shows which.
- ``list-of-views``: the list's entries are row views of one stacked buffer made outside the
  loss (``eachrow``/``view`` in Julia); only the buffer is listed. Every row's part is lost
  by ``implicit-identity`` — the array-held-param failure in the form the identity policy has.

``explicit`` differentiates only the listed leaves: anything read through a container
alias is a different leaf, so its part is missing unless the alias is listed too.
``implicit-storage``, ``explicit-merged`` and ``explicit-shared`` are exact throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, ParamTree, tie


def loss_struct(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Reads the param through the struct field ``a.x`` and directly as ``x``."""
    return np.sum(np.tanh(p.a.x * data["c"])) + 0.5 * np.sum(p.x * p.x)


def loss_struct_adjoint(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Reads the param through the struct's lazy ``Adjoint`` (a 1×n row) and directly."""
    return np.sum(np.tanh(p.a.xt @ data["m"])) + 0.5 * np.sum(p.x * p.x)


def loss_list(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Reads two params only as elements of the list ``ws``."""
    return np.sum(np.tanh(p.ws[0] * data["c"])) + np.sum(p.ws[1] * p.ws[1] * data["d"])


def loss_rows(np: Any, p: ParamTree, data: dict[str, Any]) -> Any:
    """Reads a stacked buffer only through its pre-made row views ``rows[0]``, ``rows[1]``."""
    return np.sum(np.tanh(p.rows[0] * data["c"])) + np.sum(p.rows[1] * p.rows[1] * data["d"])


def cases(n: int = 3) -> list[Case]:
    """Struct-field, struct-held wrapper, list-of-params and list-of-views cases.

    Args:
        n: length of each parameter vector.

    Returns:
        ``struct-field``, ``struct-field-adjoint``, ``list-of-params`` and ``list-of-views``.
    """

    def data(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "c": rng.standard_normal(n),
            "d": rng.standard_normal(n),
            "m": rng.standard_normal((n, 2)),
        }

    x = Param((n,), init="uniform")
    return [
        Case(
            "struct-field",
            {"x": x, "a.x": tie("x")},
            loss_struct,
            wrt=("x",),
            data=data,
            description="a = A(x); loss reads a.x and x; Params([x])",
        ),
        Case(
            "struct-field-adjoint",
            {"x": x, "a.xt": tie("x", "adjoint")},
            loss_struct_adjoint,
            wrt=("x",),
            data=data,
            description=(
                "a = A(x'), x' = Adjoint(x) made outside; loss reads a.xt and x; Params([x])"
            ),
        ),
        Case(
            "list-of-params",
            {"w0": x, "w1": Param((n,), init="uniform"), "ws.0": tie("w0"), "ws.1": tie("w1")},
            loss_list,
            wrt=("w0", "w1"),
            data=data,
            description="ws = [w0, w1]; loss reads ws[0], ws[1] only; Params([w0, w1])",
        ),
        Case(
            "list-of-views",
            {
                "stack": Param((2, n), init="uniform"),
                "rows.0": tie("stack", "[0]"),
                "rows.1": tie("stack", "[1]"),
            },
            loss_rows,
            wrt=("stack",),
            data=data,
            description="rows = eachrow(stack) made outside; loss reads rows[0], rows[1]; "
            "Params([stack])",
        ),
    ]
