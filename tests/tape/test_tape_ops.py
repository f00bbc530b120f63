"""The wider NumPy surface of ``toolkit.tape.numpy`` against finite differences and ``jax.grad``.

Each case is ``fn(ns, *args)`` written once for both namespaces (``toolkit.tape.numpy`` and
``jax.numpy`` plus the same names). The checked loss is ``sum(fn(...) * r)`` with a random
``r``, so every output element gets its own weight. Every case is checked three ways:

* the tape's gradient against float64 central finite differences;
* the tape's value and gradient against jitted ``jax.grad`` of the same program;
* with each input a view made outside the function (a transpose of a matrix param, a reversed
  vector param) under ``alias="storage"``, the params' gradients against ``jax.grad`` of the
  program composed with that view, taken w.r.t. the base.

Inputs are random normals mapped into each function's domain, so sorts, maxima and clips meet
no ties and the piecewise functions (``floor``, ``%``) are differentiated between their jumps.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tape_fd import finite_difference

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

# jax.numpy lacks two of NumPy's names: ``row_stack`` (NumPy's alias of ``vstack``) and
# ``real_if_close`` (the identity on real input).
JNS = types.SimpleNamespace(**{name: getattr(jnp, name) for name in dir(jnp)
                               if not name.startswith("_")},
                            row_stack=jnp.vstack, real_if_close=lambda x: x)

Fn = Callable[..., Any]

DOMAINS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "real": lambda v: v,
    "positive": lambda v: np.abs(v) + 0.5,
    "nonzero": lambda v: np.sign(v) * (np.abs(v) + 0.5),
    "unit": lambda v: 0.8 * np.tanh(v),  # inside (-1, 1): arcsin, arccos, arctanh
    "above_one": lambda v: np.abs(v) + 1.2,  # arccosh
}


def _values(shapes: Sequence[tuple[int, ...]], domain: str | tuple[str, ...],
            seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    domains = (domain,) * len(shapes) if isinstance(domain, str) else domain
    return [DOMAINS[d](rng.standard_normal(s)) for s, d in zip(shapes, domains, strict=True)]


def _view_of(base: Any) -> Any:
    """The view each input is made as in the storage check (same rule for tape and jax)."""
    if base.ndim >= 2:
        return base.T
    return base[::-1] if base.ndim == 1 else base


def _check(fn: Fn, values: Sequence[np.ndarray], fd: bool = True) -> None:
    """Tape gradients of ``sum(fn(*args) * r)``: FD, jax.grad, and through outside views."""
    args = [tp.array(v) for v in values]
    out_shape = fn(tnp, *args).shape
    r = np.random.default_rng(100).standard_normal(out_shape)

    def tape_loss() -> tp.Array:
        return tnp.sum(fn(tnp, *args) * r)

    value, gs = tp.withgradient(tape_loss, tp.Params(args))

    # Bases whose views equal the inputs: the storage policy must see through those views.
    bases = [tp.array(np.array(_view_of(v), order="C")) for v in values]
    views = [_view_of(b) for b in bases]
    storage_gs = tp.gradient(lambda: tnp.sum(fn(tnp, *views) * r), tp.Params(bases),
                             alias="storage")

    argnums = tuple(range(len(values)))

    def jax_loss(*a: Any) -> Any:
        return jnp.sum(fn(JNS, *a) * r)

    @jax.jit
    def jax_programs(vals: Any, base_vals: Any) -> Any:
        # One compiled program per case, both gradients in it: one compile instead of two.
        direct = jax.value_and_grad(jax_loss, argnums=argnums)(*vals)
        through = jax.grad(lambda *b: jax_loss(*[_view_of(x) for x in b]),
                           argnums=argnums)(*base_vals)
        return direct, through

    (jax_value, jax_grads), jax_base_grads = jax_programs(
        list(values), [b.numpy() for b in bases])
    np.testing.assert_allclose(value, jax_value, rtol=1e-10, atol=1e-12)
    for a, jg in zip(args, jax_grads, strict=True):
        assert gs[a] is not None and gs[a].shape == a.shape and gs[a].dtype == np.float64
        np.testing.assert_allclose(gs[a], jg, rtol=1e-9, atol=1e-12)
        if fd:
            np.testing.assert_allclose(gs[a], finite_difference(tape_loss, a),
                                       rtol=1e-5, atol=1e-7)
    for b, jg in zip(bases, jax_base_grads, strict=True):
        assert storage_gs[b] is not None
        np.testing.assert_allclose(storage_gs[b], jg, rtol=1e-9, atol=1e-12)


M = (3, 4)
M2 = ((3, 4), (4,))
BROADCAST = ((2, 1, 3), (4, 1))
C = np.random.default_rng(7).standard_normal((3, 4))

# op name -> variants ``(fn, shapes, domain)``; op names are ``toolkit.tape.numpy`` names.
CASES: dict[str, list[tuple[Fn, Sequence[tuple[int, ...]], Any]]] = {
    # elementwise
    **{name: [(lambda ns, x, name=name: getattr(ns, name)(x), [M], domain)]
       for name, domain in [
           ("log1p", "positive"), ("expm1", "real"), ("log2", "positive"),
           ("log10", "positive"), ("tan", "unit"), ("sinh", "real"), ("cosh", "real"),
           ("arcsin", "unit"), ("arccos", "unit"), ("arctan", "real"), ("arcsinh", "real"),
           ("arccosh", "above_one"), ("arctanh", "unit"), ("reciprocal", "nonzero"),
           ("floor", "real"), ("ceil", "real"), ("trunc", "real"), ("rint", "real"),
           ("round", "real")]},
    "mod": [
        (lambda ns, x, y: ns.mod(x, y), M2, ("real", "nonzero")),
        (lambda ns, x, y: ns.remainder(x, y), BROADCAST, ("real", "nonzero")),
        (lambda ns, x, y: x % y, [(), M], ("real", "nonzero")),
        (lambda ns, x: x % 0.7 + 2.5 % x, [M], "nonzero"),
    ],
    "fmod": [(lambda ns, x, y: ns.fmod(x, y), M2, ("real", "nonzero"))],
    "logaddexp": [(lambda ns, x, y: ns.logaddexp(x, y), M2, "real"),
                  (lambda ns, x, y: ns.logaddexp(x, y), BROADCAST, "real")],
    "arctan2": [(lambda ns, y, x: ns.arctan2(y, x), M2, "nonzero"),
                (lambda ns, y, x: ns.arctan2(y, x), BROADCAST, "nonzero")],
    "hypot": [(lambda ns, x, y: ns.hypot(x, y), M2, "nonzero")],
    "clip": [
        (lambda ns, x: ns.clip(x, -0.5, 0.5), [M], "real"),
        (lambda ns, x: ns.clip(x, None, 0.3), [M], "real"),
        (lambda ns, x: ns.clip(x, -0.2, None), [M], "real"),
        (lambda ns, x, lo, hi: ns.clip(x, lo, hi - 3.0), [M, (4,), (3, 1)], "real"),
        (lambda ns, x, lo: ns.clip(x, lo), [M, (4,)], "real"),
    ],
    # reductions and scans
    "prod": [(lambda ns, x, axis=axis, keepdims=keepdims:
              ns.prod(x, axis=axis, keepdims=keepdims), [(2, 3, 4)], "nonzero")
             for axis, keepdims in [(None, False), (0, True), (-1, False), ((0, 2), True)]],
    "var": [(lambda ns, x, axis=axis, ddof=ddof, keepdims=keepdims:
             ns.var(x, axis=axis, ddof=ddof, keepdims=keepdims), [(2, 3, 4)], "real")
            for axis, ddof, keepdims in [(None, 0, False), (0, 1, False), (-1, 0, True),
                                         ((0, 2), 1, True)]],
    "std": [(lambda ns, x, axis=axis, ddof=ddof, keepdims=keepdims:
             ns.std(x, axis=axis, ddof=ddof, keepdims=keepdims), [(2, 3, 4)], "real")
            for axis, ddof, keepdims in [(None, 0, False), (1, 1, False), (-1, 0, True),
                                         ((0, 2), 0, False)]],
    "cumsum": [(lambda ns, x, axis=axis: ns.cumsum(x, axis=axis), [(2, 3, 4)], "real")
               for axis in (None, 0, -1)],
    # linear algebra
    "einsum": [
        (lambda ns, x, y: ns.einsum("ij,jk->ik", x, y), [(3, 4), (4, 5)], "real"),
        (lambda ns, x, y: ns.einsum("ij,ij->i", x, y), [M, M], "real"),
        (lambda ns, x: ns.einsum("ii->i", x), [(4, 4)], "real"),
        (lambda ns, x: ns.einsum("ii", x), [(4, 4)], "real"),
        (lambda ns, x: ns.einsum("ij->", x), [M], "real"),
        (lambda ns, x, y: ns.einsum("i,j->ij", x, y), [(3,), (4,)], "real"),
        (lambda ns, x, y: ns.einsum("ij,k->ij", x, y), [M, (5,)], "real"),
        (lambda ns, x, y: ns.einsum("bij,jk", x, y), [(2, 3, 4), (4, 5)], "real"),
        (lambda ns, x, y: ns.einsum("...ij,...jk->...ik", x, y), [(2, 3, 4), (2, 4, 5)],
         "real"),
        (lambda ns, x, y: ns.einsum("...j,j->...", x, y), [(2, 3, 4), (4,)], "real"),
        (lambda ns, x, y, z: ns.einsum("ij,jk,kl->il", x, y, z), [(2, 3), (3, 4), (4, 2)],
         "real"),
        (lambda ns, x: ns.einsum("iij->ij", x), [(3, 3, 2)], "real"),
        (lambda ns, x: ns.einsum("ij,jk->ik", C, x), [(4, 2)], "real"),
        # size-1 dimensions broadcast, in the ellipsis and in a named label
        (lambda ns, x, y: ns.einsum("...i,...i->...", x, y), [(2, 3), (1, 3)], "real"),
        (lambda ns, x, y: ns.einsum("ij,ij->j", x, y), [(2, 3), (1, 3)], "real"),
    ],
    "tensordot": [
        (lambda ns, x, y: ns.tensordot(x, y), [(2, 3, 4), (3, 4, 5)], "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=1), [(2, 3), (3, 4)], "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=0), [(2,), (3,)], "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=([1, 0], [0, 1])), [(3, 4, 5), (4, 3, 2)],
         "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=([2, 0], [1, 2])), [(3, 4, 5), (2, 5, 3)],
         "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=([-1], [0])), [(2, 3), (3, 4)], "real"),
        (lambda ns, x, y: ns.tensordot(x, y, axes=(1, 0)), [(2, 3), (3, 4)], "real"),
    ],
    "outer": [(lambda ns, x, y: ns.outer(x, y), [(3,), (4,)], "real"),
              (lambda ns, x, y: ns.outer(x, y), [(2, 3), (4,)], "real")],
    "inner": [(lambda ns, x, y: ns.inner(x, y), shapes, "real")
              for shapes in [[(4,), (4,)], [(2, 4), (3, 4)], [(), (3,)]]],
    "dot": [(lambda ns, x, y: ns.dot(x, y), shapes, "real")
            for shapes in [[(2, 3, 4), (4,)], [(2, 3, 4), (5, 4, 2)], [(3, 4), (2, 4, 5)]]],
    "trace": [
        (lambda ns, x: ns.trace(x), [(4, 4)], "real"),
        (lambda ns, x: ns.trace(x, 1), [(3, 5)], "real"),
        (lambda ns, x: ns.trace(x, offset=-1), [(3, 5)], "real"),
        (lambda ns, x: ns.trace(x, axis1=0, axis2=2), [(3, 2, 4)], "real"),
        (lambda ns, x: ns.trace(x, 1, -1, -3), [(3, 2, 4)], "real"),
    ],
    "diagonal": [
        (lambda ns, x: ns.diagonal(x), [(4, 4)], "real"),
        (lambda ns, x: ns.diagonal(x, 1), [(3, 5)], "real"),
        (lambda ns, x: ns.diagonal(x, -2, 2, 0), [(4, 2, 3)], "real"),
    ],
    "diag": [(lambda ns, x, k=k: ns.diag(x, k), [shape], "real")
             for shape in [(4,), (3, 4)] for k in (0, 1, -2)],
    "triu": [(lambda ns, x, k=k: ns.triu(x, k), [shape], "real")
             for shape in [(4, 5), (2, 3, 4)] for k in (0, 1, -1)],
    "tril": [(lambda ns, x, k=k: ns.tril(x, k), [shape], "real")
             for shape in [(4, 5), (2, 3, 4)] for k in (0, 2, -1)],
    "eye": [(lambda ns, x: x * ns.eye(3, 4) + x * ns.eye(3, 4, k=1)
             + ns.zeros((3, 4)) * x + ns.ones(4) * x, [M], "real")],
    # shapes
    "repeat": [
        (lambda ns, x: ns.repeat(x, 2), [M], "real"),
        (lambda ns, x: ns.repeat(x, np.array([1, 0, 3]), axis=0), [M], "real"),
        (lambda ns, x: ns.repeat(x, 3, axis=-1), [M], "real"),
        (lambda ns, x: ns.repeat(x, 3), [()], "real"),
    ],
    "tile": [(lambda ns, x, reps=reps: ns.tile(x, reps), [shape], "real")
             for shape, reps in [((3,), 2), (M, (2, 1, 3)), (M, (2,)), ((2, 3, 2), (2, 1)),
                                 ((), (2, 2))]],
    "split": [
        (lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                       enumerate(ns.split(x, 2, axis=1))]), [M], "real"),
        (lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                       enumerate(ns.split(x, [1, 3, 3]))]), [(4, 5)], "real"),
        (lambda ns, x: ns.stack([p.sum() for p in ns.split(x, 3, axis=-1)]), [(2, 6)], "real"),
    ],
    "array_split": [(lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                                   enumerate(ns.array_split(x, 3))]),
                     [(5, 2)], "real")],
    "vstack": [(lambda ns, x, y: ns.vstack([x, y, C[:1, :3], x]), [(3,), (2, 3)], "real")],
    "hstack": [(lambda ns, x, y: ns.hstack([x, y, x]), [(3,), (2,)], "real"),
               (lambda ns, x, y: ns.hstack([x, C[:, :1], y]), [(3, 2), (3, 4)], "real"),
               (lambda ns, x, y: ns.hstack([x, y]), [(), (3,)], "real")],
    "roll": [
        (lambda ns, x: ns.roll(x, 1), [M], "real"),
        (lambda ns, x: ns.roll(x, -2, axis=1), [M], "real"),
        (lambda ns, x: ns.roll(x, (1, 2), axis=(0, 1)), [M], "real"),
    ],
    "flip": [(lambda ns, x, axis=axis: ns.flip(x, axis), [(2, 3, 4)], "real")
             for axis in (None, 0, -1, (0, 2))],
    "moveaxis": [
        (lambda ns, x: ns.moveaxis(x, 0, -1), [(2, 3, 4)], "real"),
        (lambda ns, x: ns.moveaxis(x, [0, 1], [2, 0]), [(2, 3, 4)], "real"),
    ],
    "pad": [
        (lambda ns, x: ns.pad(x, ((1, 2), (0, 3))), [M], "real"),
        (lambda ns, x: ns.pad(x, 1, constant_values=2.0) * ns.pad(x, 1), [M], "real"),
        (lambda ns, x: ns.pad(x, (2, 1), mode="edge"), [M], "real"),
        (lambda ns, x: ns.pad(x, ((3, 1), (2, 2)), mode="reflect"), [M], "real"),
        (lambda ns, x: ns.pad(x, ((3, 1), (2, 5)), mode="symmetric"), [M], "real"),
        (lambda ns, x: ns.pad(x, ((4, 1), (2, 6)), mode="wrap"), [M], "real"),
    ],
    "ravel": [(lambda ns, x: ns.ravel(x), [M], "real"),
              (lambda ns, x: ns.ravel(x.T), [M], "real")],
    "flatten": [(lambda ns, x: x.flatten(), [M], "real")],
    "sort": [(lambda ns, x, axis=axis: ns.sort(x, axis=axis), [M], "real")
             for axis in (-1, 0, None)],
    # the rest of NumPy's array functions
    **{name: [(lambda ns, x, name=name: getattr(ns, name)(x), [M], domain)]
       for name, domain in [
           ("exp2", "real"), ("fabs", "nonzero"), ("degrees", "real"), ("rad2deg", "real"),
           ("radians", "real"), ("deg2rad", "real"), ("real", "real"), ("conj", "real"),
           ("conjugate", "real"), ("real_if_close", "real"), ("imag", "real"),
           ("angle", "nonzero"), ("nan_to_num", "real"), ("flipud", "real"),
           ("fliplr", "real"), ("atleast_1d", "real"), ("atleast_2d", "real"),
           ("atleast_3d", "real")]},
    **{name: [(lambda ns, x, y, name=name: getattr(ns, name)(x, y), shapes, "real")
              for shapes in (M2, BROADCAST)] for name in ("logaddexp2", "fmax", "fmin")},
    "atleast_nd": [(lambda ns, x, f=f: getattr(ns, f)(x), [shape], "real")
                   for f in ("atleast_1d", "atleast_2d", "atleast_3d")
                   for shape in [(), (3,), (2, 3, 4)]]
                  + [(lambda ns, x, y: ns.concatenate([a.ravel() for a in ns.atleast_3d(x, y)]),
                      [(), (2, 3)], "real")],
    "cross": [
        (lambda ns, x, y: ns.cross(x, y), [(4, 3), (4, 3)], "real"),
        (lambda ns, x, y: ns.cross(x, y), [(2, 1, 3), (4, 3)], "real"),
        (lambda ns, x, y: ns.cross(x, y, axisa=0, axisb=1, axisc=0), [(3, 4), (4, 3)], "real"),
        (lambda ns, x, y: ns.cross(x, y, axis=0), [(3, 4), (3, 4)], "real"),
        (lambda ns, x, y: ns.cross(x, y, axisc=0), [(4, 2), (4, 3)], "real"),
    ],
    "kron": [(lambda ns, x, y: ns.kron(x, y), shapes, "real")
             for shapes in [[(2, 3), (4, 5)], [(3,), (2, 2)], [(2, 2), (3,)], [(), (3,)]]],
    # Only the k-th element's place is fixed: the sides are sorted before the comparison with
    # JAX, which orders them differently.
    "partition": [(lambda ns, x, k=k, axis=axis: (lambda p: ns.concatenate(
        [ns.sort(p[..., :k]), p[..., k:k + 1], ns.sort(p[..., k + 1:])], axis=-1))(
        ns.partition(x, k, axis=axis) if axis == -1 else ns.partition(x.T, k, axis=0).T),
        [shape], "real")
        for k, shape, axis in [(0, (7,), -1), (3, (7,), -1), (6, (3, 7), -1), (2, (5, 3), 0)]],
    "diff": [
        (lambda ns, x: ns.diff(x), [(6,)], "real"),
        (lambda ns, x: ns.diff(x, n=2, axis=0), [(5, 4)], "real"),
        (lambda ns, x: ns.diff(x, 3), [(2, 6)], "real"),
        (lambda ns, x: ns.diff(x, prepend=0.5, append=C[:, :1]), [M], "real"),
        (lambda ns, x, y: ns.diff(x, axis=0, prepend=y), [M, (2, 4)], "real"),
    ],
    "gradient": [
        (lambda ns, x: ns.gradient(x), [(6,)], "real"),
        (lambda ns, x: ns.stack(ns.gradient(x)), [(4, 5)], "real"),
        (lambda ns, x: ns.stack(ns.gradient(x, 0.5, axis=(0, -1))), [(3, 2, 4)], "real"),
        (lambda ns, x: ns.gradient(x, np.array([0.0, 0.5, 1.7, 2.0, 3.5]), axis=1), [(3, 5)],
         "real"),
        (lambda ns, x: ns.stack(ns.gradient(x, 2.0, np.array([0.0, 1.0, 3.0]))), [(2, 3)],
         "real"),
    ],
    "linspace": [
        (lambda ns, x, y: ns.linspace(x, y, 5), [(), ()], "real"),
        (lambda ns, x, y: ns.linspace(x, y, 1), [(), ()], "real"),
        (lambda ns, x, y: ns.linspace(x, y, 4, endpoint=False), [(), ()], "real"),
        (lambda ns, x, y: ns.linspace(x, y, 3, axis=1), [(2,), (2,)], "real"),
        (lambda ns, x: ns.linspace(x, 2.5, 4) + ns.linspace(-1.0, x, 4), [()], "real"),
    ],
    "rollaxis": [(lambda ns, x, axis=axis, start=start: ns.rollaxis(x, axis, start),
                  [(2, 3, 4)], "real")
                 for axis, start in [(0, 0), (0, 3), (2, 0), (1, 3), (-1, 1), (2, -2)]],
    "rot90": [(lambda ns, x, k=k, axes=axes: ns.rot90(x, k, axes), [(2, 3, 4)], "real")
              for k, axes in [(1, (0, 1)), (2, (1, 2)), (3, (2, 0)), (-1, (0, 2)), (0, (0, 1))]],
    "hsplit": [(lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                              enumerate(ns.hsplit(x, [1, 3]))], axis=1), [M],
                "real"),
               (lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                              enumerate(ns.hsplit(x, 3))]), [(6,)], "real")],
    "vsplit": [(lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                              enumerate(ns.vsplit(x, 2))]), [(4, 3)], "real")],
    "dsplit": [(lambda ns, x: ns.concatenate([p * (i + 1.0) for i, p in
                                              enumerate(ns.dsplit(x, [1, 2]))], axis=2),
                [(2, 3, 4)], "real")],
    "column_stack": [(lambda ns, x, y: ns.column_stack([x, y, C[:, :1]]), [(3,), (3, 2)],
                      "real")],
    "row_stack": [(lambda ns, x, y: ns.row_stack([x, y]), [(3,), (2, 3)], "real")],
    "append": [
        (lambda ns, x, y: ns.append(x, y), [M, (5,)], "real"),
        (lambda ns, x, y: ns.append(x, y, axis=0), [M, (2, 4)], "real"),
        (lambda ns, x: ns.append(C[0], x), [()], "real"),
    ],
    "select": [
        (lambda ns, x, y: ns.select([C > 0.5, C < -0.5], [x, y * 2.0], default=0.3), [M, M],
         "real"),
        (lambda ns, x, y: ns.select([C > 0, C > -1], [x, x * x], default=y), [M, (4,)],
         "real"),
    ],
    "r_": [
        (lambda ns, x: ns.r_[x, C[0], 1:4, 2.5], [(4,)], "real"),
        (lambda ns, x, y: ns.r_[x, y, x], [(3, 2), (2, 2)], "real"),
        (lambda ns, x, y: ns.r_["0,2", x, y], [(3,), (3,)], "real"),
        (lambda ns, x, y: ns.r_["-1,2,0", x, y], [(3,), (3,)], "real"),
    ],
    "c_": [(lambda ns, x: ns.c_[x, C[:, :2], x], [(3, 2)], "real"),
           (lambda ns, x, y: ns.c_[x, y], [(3,), (3,)], "real")],
    "einsum sublists": [
        (lambda ns, x, y: ns.einsum(x, [0, 1], y, [1, 2], [0, 2]), [(2, 3), (3, 4)], "real"),
        (lambda ns, x: ns.einsum(x, [0, 1], [1, 0]), [M], "real"),
        (lambda ns, x, y: ns.einsum(x, [0, 1], y, [1, 2]), [(2, 3), (3, 4)], "real"),
        (lambda ns, x, y: ns.einsum(x, [..., 0, 1], y, [..., 1, 2], [..., 0, 2]),
         [(2, 2, 3), (3, 4)], "real"),
        (lambda ns, x, y, z: ns.einsum(x, [0, 1, 2], y, [3, 1, 0], z, [3, 3, 0], [3, 2, 0]),
         [(3, 4, 4), (4, 4, 3), (4, 4, 3)], "real"),
    ],
    "Array methods": [
        (lambda ns, x: x.ravel() + x.flatten() + x.T.ravel(), [M], "real"),
        (lambda ns, x: x.squeeze() + x.squeeze(1), [(3, 1, 4)], "real"),
        (lambda ns, x: x.prod(axis=0) + x.cumsum(0)[-1] + x.clip(-0.3, 0.3).sum(axis=0), [M],
         "nonzero"),
        (lambda ns, x: x.var(ddof=1) + x.std(axis=0) + x.var(axis=0, keepdims=True), [M],
         "real"),
        (lambda ns, x, y: x.repeat(2, axis=0).sum(0) + x.dot(y).sum() + x.trace()
         + x.diagonal() + x.swapaxes(0, 1).sum(1), [(4, 4), (4, 2)], "real"),
    ],
}

PARAMS = [pytest.param(name, i, id=f"{name}-{i}") for name, variants in CASES.items()
          for i in range(len(variants))]


# Raveling a transpose made outside the function copies and warns; the warning has its own tests.
@pytest.mark.filterwarnings("ignore:ravel of an unnamed array:toolkit.tape.AliasWarning")
# NumPy 2 deprecates 2-vectors in cross; both engines still compute them.
@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
@pytest.mark.parametrize(("name", "variant"), PARAMS)
def test_op(name: str, variant: int) -> None:
    fn, shapes, domain = CASES[name][variant]
    _check(fn, _values(shapes, domain))


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_prod_through_zeros_matches_jax(axis: Any) -> None:
    # One zero in a row (its gradient is the others' product), two zeros (all zero), none.
    values = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.5, -2.0, 3.0]])
    _check(lambda ns, x: ns.prod(x, axis=axis), [values])


def test_float32_gradients_stay_float32() -> None:
    x = tp.array(np.linspace(-1.0, 1.0, 6).reshape(2, 3), dtype=np.float32)
    gs = tp.gradient(lambda: tnp.sum(tnp.pad(x, 1, mode="reflect")) + tnp.sum(tnp.sort(x) * x)
                     + tnp.einsum("ij,ij->", x, x) + tnp.prod(x) + tnp.sum(tnp.tile(x, 2)),
                     tp.Params([x]))
    assert gs[x].dtype == np.float32


def test_views_share_memory_where_numpy_makes_views() -> None:
    x = tp.array(np.arange(12.0).reshape(3, 4))
    views = [tnp.flip(x, 0), tnp.moveaxis(x, 0, 1), tnp.diagonal(x), tnp.diag(x, 1),
             tnp.ravel(x), x.ravel()]
    assert all(v.base is x for v in views)
    x[...] = -x.numpy()
    np.testing.assert_array_equal(views[0].numpy(), -np.flip(np.arange(12.0).reshape(3, 4), 0))
    # Copies own their memory: a transposed view cannot be raveled in place.
    with pytest.warns(tp.AliasWarning, match="ravel"):
        raveled = tnp.ravel(x.T)
    copies = [raveled, x.flatten(), tnp.roll(x, 1), tnp.pad(x, 1), tnp.tile(x, 2)]
    assert all(c.base is c for c in copies)


def test_constant_constructors_carry_no_gradient() -> None:
    x = tp.array([1.0, 2.0])
    gs = tp.gradient(lambda: tnp.sum(tnp.eye(2) + tnp.zeros(2) + tnp.ones((2, 2))),
                     tp.Params([x]))
    assert gs[x] is None


def test_bad_arguments_name_what_is_valid() -> None:
    x = tp.array(np.ones((2, 4)))
    with pytest.raises(ValueError, match="pad supports mode in constant, edge, reflect"):
        tnp.pad(x, 1, mode="mean")
    with pytest.raises(ValueError, match="equal division"):
        tnp.split(x, 3, axis=1)
    with pytest.raises(ValueError, match=r"einsum sublist holds integers in \[0, 52\)"):
        tnp.einsum(x, [0, -1])
    with pytest.raises(ValueError, match="diff takes an order n >= 0"):
        tnp.diff(x, -1)
    with pytest.raises(ValueError, match="edge_order must be 1 or 2"):
        tnp.gradient(x, edge_order=3)
    with pytest.raises(ValueError, match="at least 3 samples along axis 0"):
        tnp.gradient(x, edge_order=2)
    with pytest.raises(ValueError, match=r"coordinates for axis 1 must have shape \(4,\)"):
        tnp.gradient(x, np.arange(3.0), axis=1)
    with pytest.raises(TypeError, match="one spacing per axis"):
        tnp.gradient(x, 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="one choice per condition"):
        tnp.select([x > 0], [x, x])
    with pytest.raises(TypeError, match="condition 0 must be a boolean array"):
        tnp.select([x], [x])
    with pytest.raises(ValueError, match="vsplit splits axis 0, so it needs an array of 2"):
        tnp.vsplit(x[0], 2)
    with pytest.raises(ValueError, match="two different axes"):
        tnp.rot90(x, axes=(1, -1))
    with pytest.raises(ValueError, match="directive is 'axis"):
        tnp.r_["r", x]
    with pytest.raises(ValueError, match="linspace takes num >= 0"):
        tnp.linspace(0.0, x, -1)


DOC = Path(__file__).resolve().parents[2] / "docs" / "tape.md"


def _listed(label: str) -> set[str]:
    """The names in docs/tape.md's "Supported functions" bullet starting with ``label``."""
    section = DOC.read_text().split("### Supported functions", 1)[1].split("\n#", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"- {label}:"))
    return set(re.findall(r"`([A-Za-z_0-9]+)`", line))


def test_docs_list_every_supported_function() -> None:
    differentiable, constant = _listed("differentiable"), _listed("constants")
    dtypes = {name for name in tnp.SUPPORTED if isinstance(getattr(tnp, name), type)}
    specs = {name: getattr(tnp, name)._spec for name in tnp.SUPPORTED
             if hasattr(getattr(tnp, name), "_spec")}
    with_vjp = {name for name, s in specs.items() if s.makers or s.argnum_maker}
    expected = "\n".join(
        f"- {label}: " + ", ".join(f"`{n}`" for n in sorted(names)) for label, names in
        [("differentiable", set(tnp.SUPPORTED) - dtypes - constant), ("constants", constant)])
    assert differentiable | constant | _listed("dtypes") == set(tnp.SUPPORTED), expected
    assert with_vjp <= differentiable and not constant & with_vjp, expected
    assert set(specs) - with_vjp <= constant and _listed("dtypes") == dtypes, expected


def _linear_map_gradient(linear: Fn, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The gradient of ``sum(linear(x) * r)`` for a linear NumPy function: its transpose on r."""
    basis = np.eye(x.size).reshape(x.size, *x.shape)
    return np.array([np.sum(linear(e) * r) for e in basis]).reshape(x.shape)


@pytest.mark.parametrize(("spacing", "edge_order"), [
    ((), 2), ((0.3,), 2), ((np.array([0.0, 0.4, 1.5, 1.7, 3.0]),), 1),
    ((np.array([0.0, 0.4, 1.5, 1.7, 3.0]),), 2), ((np.array([1, 2, 3, 4, 5]),), 2)])
def test_gradient_matches_numpy_where_jax_has_no_equivalent(spacing: tuple[Any, ...],
                                                            edge_order: int) -> None:
    # JAX's gradient has no edge_order; NumPy's own function is the reference, and since it is
    # linear in f its gradient is its transpose, applied to the seed.
    values = np.random.default_rng(3).standard_normal((5, 3))
    r = np.random.default_rng(4).standard_normal((5, 3))
    x = tp.array(values)

    def loss() -> tp.Array:
        return tnp.sum(tnp.gradient(x, *spacing, axis=0, edge_order=edge_order) * r)

    np.testing.assert_allclose(
        tnp.gradient(x, *spacing, axis=0, edge_order=edge_order).numpy(),
        np.gradient(values, *spacing, axis=0, edge_order=edge_order), rtol=1e-12)
    g = tp.gradient(loss, tp.Params([x]))[x]
    expected = _linear_map_gradient(
        lambda v: np.gradient(v, *spacing, axis=0, edge_order=edge_order), values, r)
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, finite_difference(loss, x), rtol=1e-5, atol=1e-7)


def test_new_functions_match_numpys_values_exactly() -> None:
    v = np.random.default_rng(5).standard_normal((3, 7))
    x = tp.array(v)
    np.testing.assert_array_equal(tnp.partition(x, [1, 4]).numpy(), np.partition(v, [1, 4]))
    np.testing.assert_array_equal(tnp.partition(x, 3, axis=None).numpy(),
                                  np.partition(v, 3, axis=None))
    np.testing.assert_array_equal(tnp.partition(x, 1, axis=0).numpy(), np.partition(v, 1, 0))
    for args in [(0.3, 2.9, 7), (0.3, 2.9, 7, False), (-1.0, 1.0, 1), (2.0, 2.0, 4)]:
        np.testing.assert_array_equal(tnp.linspace(*args).numpy(), np.linspace(*args))
    y, step = tnp.linspace(tp.array([0.0, 1.0]), 3.0, 4, retstep=True, axis=-1)
    ny, nstep = np.linspace(np.array([0.0, 1.0]), 3.0, 4, retstep=True, axis=-1)
    np.testing.assert_array_equal(y.numpy(), ny)
    np.testing.assert_array_equal(step.numpy(), nstep)
    np.testing.assert_array_equal(tnp.linspace(0.0, 5.0, 4, dtype=np.int64).numpy(),
                                  np.linspace(0.0, 5.0, 4, dtype=np.int64))
    np.testing.assert_array_equal(tnp.diff(x, 2, prepend=1.0).numpy(),
                                  np.diff(v, 2, prepend=1.0))
    np.testing.assert_array_equal(tnp.diff(tp.array([True, False, False])).numpy(),
                                  np.diff([True, False, False]))
    np.testing.assert_array_equal(tnp.kron(x, v[:2, :2]).numpy(), np.kron(v, v[:2, :2]))
    np.testing.assert_array_equal(tnp.r_["0,2,0", x[0], 1:3].numpy(),
                                  np.r_["0,2,0", v[0], 1:3])
    np.testing.assert_array_equal(tnp.append([[1.0, 2.0]], [[3.0, 4.0]], axis=0).numpy(),
                                  np.append([[1.0, 2.0]], [[3.0, 4.0]], axis=0))
    assert [a.shape for a in tnp.atleast_2d(1.0, x[0], x)] == [(1, 1), (1, 7), (3, 7)]


def test_nan_to_num_passes_the_gradient_of_finite_elements_only() -> None:
    values = np.array([1.5, np.nan, np.inf, -np.inf, -0.5])
    _check(lambda ns, x: ns.nan_to_num(x, nan=2.0, posinf=7.0), [values], fd=False)


def test_fmax_and_fmin_route_the_gradient_past_nans() -> None:
    x = tp.array([1.0, np.nan, 3.0, np.nan])
    y = tp.array([2.0, 5.0, np.nan, np.nan])
    for f, expected_x in [(tnp.fmax, [0.0, 0.0, 1.0, 1.0]), (tnp.fmin, [1.0, 0.0, 1.0, 1.0])]:
        gs = tp.gradient(lambda f=f: tnp.sum(f(x, y)), tp.Params([x, y]))
        np.testing.assert_array_equal(gs[x], expected_x)
        np.testing.assert_array_equal(gs[y], 1.0 - np.array(expected_x))


def test_new_shape_functions_are_views_where_numpy_makes_views() -> None:
    x = tp.array(np.arange(24.0).reshape(2, 3, 4))
    views = [tnp.rollaxis(x, 2), tnp.atleast_3d(x[0, 0]), tnp.flipud(x), tnp.fliplr(x),
             tnp.rot90(x), tnp.rot90(x, 3, (1, 2)), tnp.real(x), *tnp.dsplit(x, 2),
             *tnp.hsplit(x, [1])]
    assert all(v.base is x for v in views)
    copies = [tnp.conj(x), tnp.real_if_close(x), tnp.kron(x, np.ones(2)), tnp.append(x, 1.0),
              tnp.partition(x, 1)]
    assert all(c.base is not x for c in copies)


def test_lists_and_numbers_join_as_constants_or_stacked_arrays() -> None:
    x = tp.array([1.0, -2.0])

    def loss() -> tp.Array:
        # [0.5, x1, x0, x1] · [2, x0, x1, 1] + sum(kron([1, 3], x0)) = 1 + 2 x0 x1 + x1 + 4 x0
        return (tnp.sum(tnp.append([0.5, x[1]], x) * tnp.r_[2.0, x, 1.0])
                + tnp.sum(tnp.kron([1.0, 3.0], x[0])))

    value, gs = tp.withgradient(loss, tp.Params([x]))
    assert float(value) == 1.0 - 4.0 - 2.0 + 4.0
    np.testing.assert_array_equal(gs[x], [2 * -2.0 + 4.0, 2 * 1.0 + 1.0])


def test_cross_vjp_reads_only_the_other_operand() -> None:
    a = tp.array([1.0, 2.0, 3.0])
    b = np.array([0.5, -1.0, 2.0])
    _, back = tp.pullback(lambda: tnp.sum(tnp.cross(a, b)), tp.Params([a]))
    a[...] = 0.0  # a's own values are not read: the gradient b × 1 stands
    np.testing.assert_array_equal(back()[a], np.cross(b, np.ones(3)))
    c = tp.array(b)
    _, back = tp.pullback(lambda: tnp.sum(tnp.cross(a, c)), tp.Params([a]))
    c[...] = 0.0
    with pytest.raises(RuntimeError, match="after `cross` saved it"):
        back()
