"""``gradient``, ``withgradient``, ``pullback`` and ``jacobian`` over implicit ``Params``.

The function takes no arguments: it closes over its params (Zygote's implicit mode). After the
backward pass every leaf the function read holds its gradient; the alias policy decides what
each param reports:

* ``"identity"`` (Zygote): each param gets what reached that very object. A view made outside
  the function is its own leaf; ``.parent`` read inside routes as Zygote's rule 3.
* ``"storage"``: every leaf's gradient is added into its storage's total, and each param
  reports that total seen through its own view.

Example:
    >>> import toolkit.tape as tp
    >>> x = tp.array([1.0], name="x"); xt = tp.adjoint(x); xt.name = "xt"
    >>> f = lambda: tp.numpy.sum(xt * x)
    >>> tp.gradient(f, tp.Params([x]))[x], tp.gradient(f, tp.Params([x]), alias="storage")[x]
    (array([1.]), array([2.]))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from toolkit.tape import _core
from toolkit.tape._core import (
    AliasWarning,
    Array,
    Trace,
    caller_level,
    describe,
    refuse_outer_dependence,
    region,
    set_trace,
    storage_of,
)
from toolkit.tape._params import Grad, Grads, Params

ALIAS_POLICIES = ("identity", "storage")


def _check(params: Params | Iterable[Array], alias: str) -> Params:
    if alias not in ALIAS_POLICIES:
        raise ValueError(f"alias must be one of {', '.join(map(repr, ALIAS_POLICIES))}; "
                         f"got {alias!r}")
    ps = params if isinstance(params, Params) else Params(params)
    if alias == "storage" and not ps._warned:
        groups = ps.shared_storage()
        if groups:
            ps._warned = True
            names = "; ".join(", ".join(describe(ps[i]) for i in g) for g in groups)
            warnings.warn(
                f"Params holds several views of one storage ({names}); under "
                f"alias='storage' each reports that storage's total gradient, so an optimizer "
                f"must apply one of them per storage (Grads.shared_storage lists them)",
                AliasWarning, stacklevel=caller_level(),
            )
    return ps


class _Result:
    """Turns one backward pass's slots into ``Grads`` under a policy (fresh arrays, no aliasing)."""

    def __init__(self, tr: Trace, params: Params) -> None:
        self.tr = tr
        self.params = params
        self.handed: set[int] = set()

    def own(self, g: Any, dtype: np.dtype) -> np.ndarray | None:
        """``g`` as a fresh array of ``dtype`` that no other entry shares."""
        if g is None:
            return None
        if (type(g) is np.ndarray and g.dtype == dtype and g.base is None
                and id(g) not in self.handed):
            self.handed.add(id(g))
            return g
        return np.array(g, dtype=dtype)

    def identity(self) -> Grads:
        tr = self.tr
        values: dict[int, Grad] = {}
        for p in self.params:
            s = tr.leaves.get(id(p))
            g = s.g if s else None
            extra = tr.to_param.get(id(p)) if tr.to_param else None
            values[id(p)] = self._with_structure(p, g if extra is None else _add(g, extra.g))
        glob: dict[str, Grad] = {}
        wrappers: dict[int, Array] = {}
        if tr.to_wrapper:  # most functions read no ``.parent``: skip building the comprehension
            wrappers = {k: s.array for k, s in tr.to_wrapper.items() if s.g is not None}
        for s in tr.leaves.values():
            g, a = s.g, s.array
            if a.name and (g is not None or id(a) in wrappers):
                glob[a.name] = self._with_structure(a, g)
        for a in wrappers.values():
            if a.name and a.name not in glob:
                glob[a.name] = self._with_structure(a, None)
        return Grads(self.params, values, glob, "identity")

    def _with_structure(self, a: Array, g: Any) -> Grad:
        direct = self.own(g, a._data.dtype)
        s = self.tr.to_wrapper.get(id(a)) if self.tr.to_wrapper else None
        if s is None or s.g is None:
            return direct
        structural: dict[str, Any] = {"parent": self.own(s.g, a._parent.dtype)}
        if direct is not None:
            # Zygote would fail to add an array to a named tuple; both parts are kept.
            structural["self"] = direct
        return structural

    def storage(self) -> Grads:
        totals: dict[int, np.ndarray] = {}
        read: list[Array] = []
        for s in self.tr.leaves.values():
            g, a = s.g, s.array
            read.append(a)
            if g is None:
                continue
            st = storage_of(a)
            total = totals.get(id(st))
            if total is None:
                total = totals[id(st)] = np.zeros(st.owner.shape, dtype=st.owner.dtype)
            region(total, st.owner._data, a._data)[...] += g

        def seen(a: Array) -> np.ndarray | None:
            st = storage_of(a)
            total = totals.get(id(st))
            return None if total is None else np.array(region(total, st.owner._data, a._data))

        values: dict[int, Grad] = {id(p): seen(p) for p in self.params}
        glob = {a.name: seen(a) for a in read if a.name}
        return Grads(self.params, values, {k: v for k, v in glob.items() if v is not None},
                     "storage")


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else a + b


def pullback(f: Callable[[], Any], params: Params | Iterable[Array], *,
             alias: str = "identity") -> tuple[Any, Callable[..., Grads]]:
    """Runs ``f()`` once, recording it; returns its value and ``back(seed)``.

    Args:
        f: a function of no arguments (it closes over its params).
        params: the arrays to differentiate (a :class:`Params` or an iterable of arrays).
        alias: ``"identity"`` (Zygote's rules) or ``"storage"`` (per-memory totals).

    Returns:
        ``(value, back)``: ``value`` is ``f()`` as NumPy (a NumPy scalar for 0-d results);
        ``back(seed=None)`` returns :class:`Grads` and may be called any number of times.
        ``seed`` is required when ``f`` returns a non-scalar.

    Raises:
        ValueError: unknown ``alias``; ``back()`` without seed for a non-scalar output, or a
            seed of the wrong shape.
        TypeError: ``params`` holds something that is not a float array; ``f`` returned a
            tuple, list or dict (one output array is recorded: see :func:`withgradient` for
            auxiliary outputs).
        RuntimeError: (from ``back``) memory a recorded op saved was written in place.
        NotImplementedError: called inside a function being differentiated, ``f`` reads a
            value that depends on the outer function's params (no higher-order derivatives).

    Example:
        >>> import toolkit.tape as tp
        >>> x = tp.array([1.0, 2.0])
        >>> y, back = pullback(lambda: x * x, tp.Params([x]))
        >>> back(np.ones(2))[x]
        array([2., 4.])
    """
    ps = _check(params, alias)
    tr = Trace(alias, ps._ids, ps, _core._trace)
    prev = set_trace(tr)
    try:
        out = f()
    finally:
        set_trace(prev)
    if isinstance(out, tuple | list | dict):
        raise TypeError(
            f"f returned a {type(out).__name__}, but the tape differentiates one output "
            f"array; return the array alone, or, for a loss with auxiliary outputs, return "
            f"(loss, aux...) to withgradient, which differentiates the first element and "
            f"returns the rest (Zygote's convention)")
    value = _value(out)
    differentiable = isinstance(out, Array) and out.dtype.kind == "f"
    sink = tr.sink_of(out) if differentiable else None

    def back(seed: Any = None) -> Grads:
        result = _Result(tr, ps)
        tr.backward(sink, _seed(out, seed) if differentiable else None)
        return result.identity() if alias == "identity" else result.storage()

    return value, back


def _value(out: Any) -> Any:
    """An output as NumPy: an Array's values copied, anything else as it is."""
    return out._data.copy() if isinstance(out, Array) else out


def _seed(out: Array, seed: Any) -> np.ndarray:
    # Inside an enclosing differentiated function, a seed computed from its params would
    # enter this backward pass as a constant: the second-order part would be lost silently.
    if isinstance(seed, Array):
        refuse_outer_dependence(_core._trace, seed,
                                f"the seed given to back() is {describe(seed)}")
    if seed is None:
        if out.ndim != 0:
            raise ValueError(
                f"f returned an array of shape {out.shape}, not a scalar; pass an explicit "
                f"seed of that shape to back(seed), or use jacobian"
            )
        return np.array(1, dtype=out._data.dtype)  # np.ones's Python wrapper costs more
    s = np.array(seed._data if isinstance(seed, Array) else seed, dtype=out.dtype)
    if s.shape != out.shape:
        raise ValueError(f"seed has shape {s.shape}; f's output has shape {out.shape}")
    return s


def withgradient(f: Callable[[], Any], params: Params | Iterable[Array], *,
                 alias: str = "identity") -> tuple[Any, Grads]:
    """``f()``'s value and its gradient w.r.t. ``params`` (``f`` must return a scalar).

    As in Zygote, ``f`` may return a tuple ``(loss, aux...)``: the gradient is that of the
    first element, and the value is the whole tuple (its arrays as NumPy), so auxiliary
    outputs come back without a second call.

    Raises:
        ValueError: the (first) output is not a scalar.
        TypeError: ``f`` returned an empty tuple, a list or a dict.

    Example:
        >>> import toolkit.tape as tp
        >>> x = tp.array([3.0])
        >>> v, gs = withgradient(lambda: tp.numpy.sum(x * x), tp.Params([x]))
        >>> float(v), gs[x]
        (9.0, array([6.]))
        >>> (loss, aux), gs = withgradient(lambda: (tp.numpy.sum(x * x), x + 1), [x])
        >>> float(loss), aux, gs[x]
        (9.0, array([4.]), array([6.]))
    """
    outputs: list[tuple[Any, ...]] = []

    def first() -> Any:
        out = f()
        if not isinstance(out, tuple):
            return out
        if not out:
            raise TypeError("f returned an empty tuple; withgradient differentiates the first "
                            "element of (loss, aux...)")
        outputs.append(out)
        return out[0]

    value, back = pullback(first, params, alias=alias)
    if outputs:
        whole = outputs[0]
        # A namedtuple keeps its type (Zygote differentiates a NamedTuple's first field too).
        parts = [_value(o) for o in whole]
        value = type(whole)(*parts) if hasattr(whole, "_fields") else tuple(parts)
    return value, back()


def gradient(f: Callable[[], Any], params: Params | Iterable[Array], *,
             alias: str = "identity") -> Grads:
    """The gradient of scalar ``f()`` w.r.t. ``params`` (Zygote's ``gradient(f, ps)``).

    Args:
        f: a function of no arguments returning a scalar.
        params: the arrays to differentiate.
        alias: ``"identity"`` or ``"storage"`` (see the module docstring).

    Returns:
        :class:`Grads`; an unused param's entry is ``None``.

    Raises:
        TypeError: ``f`` returned a tuple (or list or dict): use :func:`withgradient` for a
            loss with auxiliary outputs.
        ValueError: the output is not a scalar.

    Example:
        >>> import toolkit.tape as tp
        >>> x = tp.array([1.0]); xt = tp.adjoint(x)
        >>> gs = gradient(lambda: tp.numpy.sum(xt * x), tp.Params([x, xt]), alias="storage")
        >>> gs[x], gs[xt]
        (array([2.]), array([[2.]]))
    """
    return pullback(f, params, alias=alias)[1]()


def jacobian(f: Callable[[], Any], params: Params | Iterable[Array], *,
             alias: str = "identity") -> Grads:
    """The Jacobian of ``f()`` w.r.t. each param, shaped ``out.shape + param.shape``.

    One backward pass per output element (the tape is recorded once). A param ``f`` does not
    use gets zeros, as in Zygote.

    Example:
        >>> import toolkit.tape as tp
        >>> x = tp.array([1.0, 2.0])
        >>> jacobian(lambda: x * x, tp.Params([x]))[x]
        array([[2., 0.],
               [0., 4.]])
    """
    return withjacobian(f, params, alias=alias)[1]


def withjacobian(f: Callable[[], Any], params: Params | Iterable[Array], *,
                 alias: str = "identity") -> tuple[Any, Grads]:
    """``f()``'s value and its :func:`jacobian` (Zygote's ``withjacobian``).

    Example:
        >>> import toolkit.tape as tp
        >>> x, unused = tp.array([1.0, 2.0]), tp.array([5.0])
        >>> value, jac = withjacobian(lambda: 3 * x, tp.Params([x, unused]))
        >>> value, jac[unused]
        (array([3., 6.]), array([[0.],
               [0.]]))
    """
    value, back = pullback(f, params, alias=alias)
    shape = np.shape(value)
    dtype = value.dtype if isinstance(value, np.ndarray | np.generic) else np.float64
    rows = []
    for k in range(int(np.prod(shape))):
        seed = np.zeros(shape, dtype=dtype)
        seed.flat[k] = 1
        rows.append(back(seed))
    first = rows[0] if rows else back(np.zeros(shape, dtype=dtype))
    values = {id(p): _stack([r[p] for r in rows], shape, p) for p in first.params}
    glob = {k: _stack([r.globals.get(k) for r in rows], shape) for k in first.globals}
    return value, Grads(first.params, values, glob, alias)


def _stack(gs: list[Grad], shape: tuple[int, ...], param: Array | None = None) -> Grad:
    """Stacks per-output-element gradients into ``shape + grad shape`` (``None`` as zeros).

    With no gradient at all, a param gets zeros shaped ``shape + param.shape``; a global
    entry (no param) stays ``None``.
    """
    present = [g for g in gs if g is not None]
    if not present:
        return None if param is None else np.zeros(shape + param.shape, dtype=param.dtype)
    if isinstance(present[0], dict):
        keys = present[0].keys()
        return {k: _stack([g.get(k) if g else None for g in gs], shape) for k in keys}
    zero = np.zeros_like(present[0])
    return np.stack([zero if g is None else g for g in gs]).reshape(shape + zero.shape)
