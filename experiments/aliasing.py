"""Zygote's aliasing cases: a parameter reachable through several objects, each a named case.

``x = [1.0]`` and ``xt = x'`` (a 1×1 adjoint view of ``x``) for cases 1–6; ``struct`` reads
``x`` through a struct field (an identity tie), ``adjoint`` differentiates ``sum(xt)`` with
``Params([x])`` on 2 random values, and ``tied_dense`` is a
``Dense(5, 2)`` → ``Dense(transpose(W))`` chain with ``Params([W])``. Each case's description is
its Julia expression; the default ``wrt`` is that expression's ``Params`` list.

Example:
    >>> [c.name for c in cases()]
    ['case1', 'case2', 'case3', 'case4', 'case5', 'case6', 'struct', 'adjoint', 'tied_dense']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.experiment import Case, Param, tie


def _rand(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Julia's ``rand``: uniform on [0, 1)."""
    return rng.random(shape)


def _seed_params() -> dict[str, Any]:
    return {"x": Param((1,), values=[1.0]), "xt": tie("x", "adjoint")}


def _xt_times_x(np: Any, p: Any, data: Any) -> Any:
    return np.sum(p.xt * p.x)


def _parent_times_x(np: Any, p: Any, data: Any) -> Any:
    return np.sum(p.xt.parent * p.x)


def _adjoint_inside(np: Any, p: Any, data: Any) -> Any:
    return np.sum(np.reshape(p.x, (1, -1)) * p.x)


def _sum_field(np: Any, p: Any, data: Any) -> Any:
    return np.sum(p.a.x)


def _sum_xt(np: Any, p: Any, data: Any) -> Any:
    return np.sum(p.xt)


def _chain(np: Any, p: Any, data: Any) -> Any:
    hidden = p.enc.weight @ data["x"] + p.enc.bias
    return np.sum(p.dec.weight @ hidden + p.dec.bias)


def _ones(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": np.ones(5)}


def cases() -> list[Case]:
    """The nine aliasing cases, as Zygote's implicit ``Params`` sees them."""
    seed = [
        ("case1", _adjoint_inside, ("x",), "gradient(() -> sum(x' .* x), Params([x]))"),
        ("case2", _xt_times_x, ("x",), "gradient(() -> sum(xt .* x), Params([x]))"),
        ("case3", _xt_times_x, ("x", "xt"), "gradient(() -> sum(xt .* x), Params([x, xt]))"),
        ("case4", _parent_times_x, ("x",), "gradient(() -> sum(xt.parent .* x), Params([x]))"),
        ("case5", _parent_times_x, ("x", "xt"),
         "gradient(() -> sum(xt.parent .* x), Params([x, xt]))"),
        ("case6", _parent_times_x, ("xt",),
         "gradient(() -> sum(xt.parent .* x), Params([xt]))"),
    ]
    out = [Case(name, _seed_params(), loss, wrt, description=desc)
           for name, loss, wrt, desc in seed]
    out.append(Case(
        "struct",
        {"x": Param((2,), init=_rand), "a.x": tie("x")},
        _sum_field,
        ("x",),
        description="x = rand(2); a = A(x); gradient(() -> sum(a.x), Params([x]))",
    ))
    out.append(Case(
        "adjoint",
        {"x": Param((2,), init=_rand), "xt": tie("x", "adjoint")},
        _sum_xt,
        ("x",),
        description="x = rand(2); xt = Adjoint(x); gradient(() -> sum(xt), Params([x]))",
    ))
    out.append(Case(
        "tied_dense",
        {
            "enc.weight": Param((2, 5), init="glorot"),
            "enc.bias": Param((2,), init="zeros"),
            "dec.weight": tie("enc.weight", "transpose"),
            "dec.bias": Param((5,), init="zeros"),
        },
        _chain,
        ("enc.weight",),
        data=_ones,
        description="m1 = Dense(5, 2); m2 = Dense(transpose(m1.weight)); "
                    "gradient(() -> sum(Chain(m1, m2)(ones(5))), Params([m1.weight]))",
    ))
    return out
