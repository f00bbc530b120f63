"""The tape: arrays, storages, primitives and the backward pass.

An :class:`Array` wraps a NumPy array. Arrays made by :func:`array` own a :class:`Storage`
(their memory, with a version counter); views (``.T``, ``.reshape``, basic slicing and
integer element picks such as ``x[1]``, a 0-d view, :func:`toolkit.tape.adjoint`) share their
base's storage and remember their ``.parent``.

In-place writes never leave a VJP reading overwritten values: memory from outside the
differentiated function is written in place and its version bumped (a backward pass whose
VJPs saved it raises), memory computed inside one is copied first (:func:`_write`).

While a differentiated function runs, a :class:`Trace` is active. Each call of a
:func:`primitive` on arrays appends one node to the trace's tape: the node holds, for
each differentiable input, the input's sink and a VJP closure made by the maker declared with
:func:`defvjp`. Arrays read from outside the function (leaves) get one slot per trace.
The tape is in execution order, so walking it backwards is a topological order: no sort.

Example:
    >>> import toolkit.tape as tp
    >>> x = tp.array([1.0, 2.0], name="x")
    >>> tp.gradient(lambda: tp.numpy.sum(x * x), tp.Params([x]))[x]
    array([2., 4.])
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

VJPMaker = Callable[..., Callable[[Any], Any]]

_trace: Trace | None = None
"""The trace of the function being differentiated, or ``None`` outside ``gradient``."""


class AliasWarning(UserWarning):
    """Aliasing the user may not expect: several views of one memory in ``Params`` under
    ``alias="storage"``, or a view-making call (a ``reshape``) that had to copy."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class Storage:
    """The memory of one owning array: views share it; writes bump ``version``.

    Attributes:
        owner: the array that owns the memory (C-ordered: views map into it by byte offset).
        version: how many in-place writes it has had.
        views: for memory computed inside a differentiated function, the arrays viewing it
            (weakly held), which a write repoints to a fresh copy so that the values VJPs
            saved stay intact; ``None`` for memory from outside (written in place).
    """

    __slots__ = ("owner", "version", "views")

    def __init__(self, owner: Array) -> None:
        self.owner = owner
        self.version = 0
        n = owner._node
        self.views: list[weakref.ref[Array]] | None = (
            [] if type(n) is Node else None)

    def live_views(self) -> list[Array]:
        """The views of this memory still alive (for memory computed inside a trace)."""
        if self.views is None:
            return []
        views = [u for r in self.views if (u := r()) is not None]
        self.views = [weakref.ref(u) for u in views]
        return views


class Node:
    """One recorded op: the gradient ``g`` summed into it so far in a backward pass, its
    ``edges`` ``[(sink, vjp), ...]`` (one per differentiable input) and its trace's ``token``.

    Made once per recorded op, so without an ``__init__`` (see :func:`new_node`): building it
    field by field is about twice as fast as a call to one.
    """

    __slots__ = ("edges", "g", "token")
    edges: Sequence[tuple[Node | Slot, Callable[[Any], Any]]]
    g: Any
    token: object


class Slot:
    """Where the gradient of one leaf read (or of a ``.parent`` route) collects in one trace:
    ``g``, the ``array`` it belongs to, and the trace's ``token``.

    A leaf's ``_node`` is set to its slot on first read, so later reads skip the ``leaves``
    lookup; the token (not the trace) is stored so that a leaf does not keep a finished tape
    alive.
    """

    __slots__ = ("array", "g", "token")

    def __init__(self, array: Array, token: object) -> None:
        self.g = None
        self.array = array
        self.token = token


def new_node(edges: Sequence[tuple[Node | Slot, Callable[[Any], Any]]], token: object) -> Node:
    """A node with no gradient yet (the recording path builds it inline, the same way)."""
    n = Node()
    n.g = None
    n.edges = edges
    n.token = token
    return n


class Trace:
    """Everything recorded while one differentiated function runs.

    Attributes:
        tape: the nodes in execution order.
        leaves: ``id(array) -> slot`` per float leaf read.
        saved: ``id(array) -> (storage, version, array, primitive name)`` for every array
            with a storage that a VJP reads (the first op that saved it). Arrays from outside
            the function all get one when read; memory computed inside needs none (a write
            copies it first).
        policy: ``"identity"`` or ``"storage"``.
        param_ids: ids of the differentiated params (the identity policy routes ``.parent``).
        to_param: ``id(param) -> Slot``: gradients that reached a param through ``.parent``.
        to_wrapper: ``id(wrapper) -> Slot``: structural ``{"parent": g}`` gradients.
        token: marks this trace's nodes and slots (``node.token is trace.token``).
        const: the node of every array computed only from constants (never a sink).
        outer: the trace that was active when this one started (a ``gradient`` called inside
            a differentiated function), else ``None``.
        params: the differentiated params (for the checks of values that depend on them).
    """

    __slots__ = (
        "_param_storages", "const", "leaves", "outer", "param_ids", "params", "policy",
        "saved", "tape", "to_param", "to_wrapper", "token",
    )

    def __init__(self, policy: str, param_ids: Container[int], params: Iterable[Array] = (),
                 outer: Trace | None = None) -> None:
        self.tape: list[Node] = []
        self.leaves: dict[int, Slot] = {}
        self.saved: dict[int, tuple[Storage, int, Array, str]] = {}
        self.policy = policy
        self.param_ids = param_ids
        self.to_param: dict[int, Slot] = {}
        self.to_wrapper: dict[int, Slot] = {}
        self.token = object()
        self.const: Node = new_node((), self.token)
        self.params = params
        self.outer = outer
        self._param_storages: set[int] | None = None

    def leaf(self, a: Array) -> Slot:
        """The sink of leaf ``a``, made on its first read (``const`` for non-float constants)."""
        if a._data.dtype.kind != "f":
            return self.const
        s = self.leaves.get(id(a))
        if s is None:
            if self.outer is not None:
                self._refuse_outer_variable(a)
            if a._storage is None:
                # VJPs may save it: a storage's version lets a later write to it be caught.
                storage_of(a)
            s = self.leaves[id(a)] = Slot(a, self.token)
        n = a._node
        if type(n) is not Node:
            # Cached on the array for the next reads. Not over another trace's node: that
            # trace (say, one whose function calls this gradient) still needs it.
            a._node = s
        return s

    def depends_on_params(self, a: Array) -> bool:
        """Whether ``a``'s value varies with this trace's params.

        True for an array computed inside the function from them, a param, or an array that
        shares a param's memory (a view of it, or the memory a view param sees).
        """
        n = a._node
        if type(n) is Node and n.token is self.token:
            return n is not self.const
        if id(a) in self.param_ids:
            return True
        if a._storage is None:
            return False
        if self._param_storages is None:
            self._param_storages = {id(storage_of(p)) for p in self.params}
        return id(a._storage) in self._param_storages

    def _refuse_outer_variable(self, a: Array) -> None:
        """Refuses a nested ``gradient`` whose function reads a variable of an enclosing one.

        Its result would be a constant to the enclosing trace (the tape records VJPs as NumPy
        code, not as ops), so the enclosing gradient would silently miss the second-order part.
        """
        refuse_outer_dependence(self.outer, a, f"the inner function reads {describe(a)}")

    def is_leaf(self, a: Array) -> bool:
        """Whether ``a`` comes from outside the function (not computed inside this trace)."""
        n = a._node
        return type(n) is not Node or n.token is not self.token

    def parent_of(self, wrapper: Array, parent: Array) -> Array:
        """Zygote's rule 3: ``wrapper.parent`` read inside the function.

        The gradient of the returned array goes to ``parent`` if it is a param, otherwise to
        ``wrapper`` as a structural gradient ``{"parent": g}``.
        """
        out = _new(parent._data)
        out._storage = parent._storage
        out._parent = parent._parent
        if parent._data.dtype.kind != "f":
            out._node = self.const
            return out
        # The slot keeps the routed-to array alive, so its id is not reused during the trace.
        if id(parent) in self.param_ids:
            table, key, owner = self.to_param, id(parent), parent
        else:
            table, key, owner = self.to_wrapper, id(wrapper), wrapper
        sink = table.get(key)
        if sink is None:
            sink = table[key] = Slot(owner, self.token)
        node = new_node([(sink, _identity)], self.token)
        self.tape.append(node)
        out._node = node
        return out

    def sink_of(self, out: Array) -> Node | Slot:
        """Where the gradient of ``out`` enters: its node, or its slot if ``out`` is a leaf.

        Taken when the function returns: a later trace may read ``out`` as its own leaf.
        """
        n = out._node
        return self.leaf(out) if n is None or n.token is not self.token else n

    def backward(self, sink: Node | Slot | None, seed: Any) -> None:
        """Runs the tape backwards from ``sink`` seeded with ``seed``; leaf slots get the result.

        ``sink=None`` (a constant output) only clears the previous call's results.
        """
        for storage, version, a, prim in self.saved.values():
            if storage.version != version:
                raise RuntimeError(
                    f"{describe(a)} was modified in place (version {version} -> "
                    f"{storage.version}) after `{prim}` saved it for the backward pass; "
                    f"call pullback again after the update"
                )
        for table in (self.leaves, self.to_param, self.to_wrapper):
            for s in table.values():
                s.g = None
        if sink is None or sink is self.const:
            return
        sink.g = seed
        try:
            for node in reversed(self.tape):
                g = node.g
                if g is None:
                    continue
                node.g = None
                for target, vjp in node.edges:
                    # Identity edges (``add``, ``.parent`` routes) pass ``g`` on without a call.
                    gi = g if vjp is _identity else vjp(g)
                    tg = target.g
                    target.g = gi if tg is None else tg + gi
        except BaseException:
            # A failed VJP must not leave stale partial sums for the next call of back(). A
            # completed pass needs no clearing: it reset every node that got a gradient.
            for node in self.tape:
                node.g = None
            raise


def refuse_outer_dependence(tr: Trace | None, a: Any, what: str) -> None:
    """Raises if ``a`` depends on the params of ``tr`` or of a trace enclosing it.

    A value computed inside a nested ``gradient`` (``pullback``, ``jacobian``) is a constant to
    the enclosing traces (the tape records VJPs as NumPy code, not as ops), so an enclosing
    gradient would silently miss the second-order part.
    """
    if type(a) is not Array:
        return
    while tr is not None:
        if tr.depends_on_params(a):
            raise NotImplementedError(
                f"toolkit.tape.gradient (or pullback/jacobian) was called inside a function "
                f"being differentiated, and {what}, which depends on the outer function's "
                f"params: the tape does not differentiate gradients (no higher-order "
                f"derivatives). Take the inner gradient outside the outer function, write its "
                f"formula with toolkit.tape.numpy ops, or use jax (toolkit.explicit) for "
                f"higher order"
            )
        tr = tr.outer


def _identity(g: Any) -> Any:
    return g


def describe(a: Array) -> str:
    """How error messages name an array: its name, else its base's name, else its shape."""
    if a.name:
        return f"array {a.name!r}"
    base = a._storage.owner if a._storage is not None else None
    if base is not None and base.name:
        return f"a view of array {base.name!r}"
    return f"an unnamed array of shape {a.shape}"


def _new(data: Any) -> Array:
    """A bare array around ``data`` (the hot path: no checks, no copy)."""
    # ``Array()`` (it has no ``__init__``) allocates faster than ``object.__new__(Array)``.
    a = Array()
    a._data = data
    a._node = None
    a._storage = None
    a._parent = None
    a.name = None
    return a


def constant(data: Any) -> Array:
    """A new array around ``data`` that no gradient reaches (``zeros``, ``ones``, ...).

    Made inside a differentiated function, it counts as computed there, so it may be written
    in place (``z = zeros(3); z[0] = x[1]``) like any other intermediate.
    """
    a = _new(data)
    if _trace is not None:
        a._node = _trace.const
    return a


class Array:
    """An n-d array of the tape: float32/float64 (differentiable) or integer/bool (constant).

    Make one with :func:`array`. Operators, ``.T``, ``.reshape``, ``.transpose``, indexing and
    the reductions are the primitives of :mod:`toolkit.tape.numpy`, bound there next to them.

    Attributes:
        name: optional; a named leaf read by a differentiated function gets a
            ``Grads.globals[name]`` entry (Zygote's ``GlobalRef`` keys).
    """

    __slots__ = ("__weakref__", "_data", "_node", "_parent", "_storage", "name")
    # NumPy must defer to our reflected operators (``ndarray * Array`` -> ``Array.__rmul__``).
    __array_ufunc__ = None

    _data: Any
    _node: Node | Slot | None
    _parent: Array | None
    _storage: Storage | None
    name: str | None

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The array's dtype."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._data.size

    @property
    def parent(self) -> Array | None:
        """The array this view was made from (``None`` for an owner).

        Inside a function differentiated with ``alias="identity"``, reading ``.parent`` of an
        array made outside it follows Zygote: the gradient goes to the parent if the parent is
        a param, otherwise to this wrapper as ``{"parent": g}``. The array returned there
        shares the parent's memory but is not the same object.
        """
        p = self._parent
        tr = _trace
        if p is None or tr is None or tr.policy != "identity":
            return p
        return tr.parent_of(self, p) if tr.is_leaf(self) else p

    @property
    def base(self) -> Array:
        """The array that owns this array's memory (itself for an owner)."""
        st = self._storage
        return self if st is None else st.owner

    def numpy(self) -> np.ndarray:
        """A copy of the current values as a NumPy array."""
        return np.array(self._data)

    def item(self) -> Any:
        """The value of a one-element array as a Python scalar.

        Raises:
            TypeError: inside a differentiated function, for a value that depends on its
                params (the Python number would silently drop the gradient).
        """
        if _trace is not None:
            _refuse_scalar(self, "item()")
        return self._data.item()

    def __float__(self) -> float:
        if _trace is not None:
            _refuse_scalar(self, "float()")
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if _trace is not None:
            raise TypeError(
                "converting an Array to a NumPy array inside a differentiated function would "
                "drop its gradient; use toolkit.tape.numpy functions (or .numpy() for a constant)"
            )
        return np.array(self._data, dtype=dtype)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(
            f"{func.__module__}.{func.__name__} does not differentiate toolkit.tape arrays; use "
            f"toolkit.tape.numpy.{func.__name__} if it exists (unsupported functions raise "
            f"TypeError there too)"
        )

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"Array({np.array2string(np.asarray(self._data), separator=', ')}{name})"

    def __setitem__(self, index: Any, value: Any) -> None:
        _write(self, "set", index, value)

    def __iadd__(self, other: Any) -> Array:
        _write(self, "add", ..., other)
        return self

    def __isub__(self, other: Any) -> Array:
        _write(self, "subtract", ..., other)
        return self

    def __imul__(self, other: Any) -> Array:
        _write(self, "multiply", ..., other)
        return self

    def __itruediv__(self, other: Any) -> Array:
        _write(self, "divide", ..., other)
        return self


def _refuse_scalar(a: Array, how: str) -> None:
    """``float(a)``/``a.item()`` inside a trace: refused where it would cut a gradient (of this
    trace, or of one enclosing it)."""
    if a._data.dtype.kind != "f":
        return
    tr = _trace
    while tr is not None and not tr.depends_on_params(a):
        tr = tr.outer
    if tr is not None:
        raise TypeError(
            f"{how} of {describe(a)} inside a differentiated function would drop its "
            f"gradient (a Python number is a constant to the tape); keep it an array "
            f"(0-d arrays broadcast like numbers), or use .numpy() for a deliberate constant"
        )


def storage_of(a: Array) -> Storage:
    """``a``'s storage, made on demand for arrays computed by primitives (they own fresh memory)."""
    st = a._storage
    if st is None:
        if not (isinstance(a._data, np.ndarray) and a._data.flags.c_contiguous):
            # Views and gradients are mapped through byte offsets of a C-ordered owner.
            # ``np.array``, not ``np.ascontiguousarray``: that one makes a 0-d array 1-d.
            a._data = np.array(a._data, order="C")
        st = a._storage = Storage(a)
    return st


def region(buf: np.ndarray, owner: np.ndarray, view: np.ndarray) -> np.ndarray:
    """The part of ``buf`` (shaped like the C-ordered ``owner``) at the elements that ``view``,
    a view of ``owner``'s memory, covers: a view of ``buf``."""
    if view is owner:
        return buf
    offset = (view.__array_interface__["data"][0]
              - owner.__array_interface__["data"][0]) // owner.itemsize
    strides = tuple(s // owner.itemsize * buf.itemsize for s in view.strides)
    return as_strided(buf.reshape(-1)[offset:], shape=view.shape, strides=strides)


def plain_index(index: Any) -> Any:
    """``index`` with its Arrays (integer or boolean index arrays) as their NumPy values."""
    if type(index) is Array:
        return index._data
    if type(index) is tuple:
        return tuple(p._data if type(p) is Array else p for p in index)
    return index


def _apply(op: str, data: np.ndarray, index: Any, v: Any) -> None:
    if op == "set":
        data[index] = v
    elif op == "add":
        data[index] += v
    elif op == "subtract":
        data[index] -= v
    elif op == "multiply":
        data[index] *= v
    else:
        data[index] /= v


def _write(a: Array, op: str, index: Any, value: Any) -> None:
    """``a[index] = value`` (``op`` "set"), or ``+= -= *= /=`` it (``index`` ``...``).

    Memory from outside any differentiated function is written in place, and its version is
    bumped: a backward pass whose VJPs saved it raises. Memory computed inside one (which its
    VJPs may have saved) is copied first, every array viewing it repointed to the copy, so the
    saved values stay intact; inside that function the write is recorded as an op.
    """
    index = plain_index(index)
    tr = _trace
    if tr is not None:
        _record_write(tr, a, op, index, value)
        return
    v = value._data if type(value) is Array else value
    st = storage_of(a)
    if st.views is not None:
        _copy_on_write(st)
        st.views = None  # now memory of the outside: later writes go in place
    else:
        st.version += 1
    _apply(op, a._data, index, v)


def _copy_on_write(st: Storage) -> tuple[np.ndarray, np.ndarray]:
    """Moves the owner and every view of ``st`` to a copy of the memory; returns old and new."""
    owner = st.owner
    old = owner._data
    new = old.copy()
    for u in st.live_views():
        u._data = region(new, old, u._data)
    owner._data = new
    return old, new


def _record_write(tr: Trace, a: Array, op: str, index: Any, value: Any) -> None:
    """An in-place write inside a differentiated function, with NumPy's semantics (every array
    sharing the memory sees it) and PyTorch's gradients: the owner of the memory gets a node
    taking the gradient to its old values and to ``value``, and each view of it a node reading
    its part of the owner."""
    st = a._storage
    owner = a if st is None else st.owner
    on = owner._node
    if type(on) is not Node or on.token is not tr.token:
        raise RuntimeError(
            f"in-place write to {describe(a)} inside a differentiated function, but its memory "
            f"comes from outside the function (a param, a constant or a view of one): the "
            f"write would change it for later calls, and the gradient w.r.t. it is undefined. "
            f"Write to a copy made inside the function (toolkit.tape.numpy.array(x) or "
            f"x * 1.0), or use toolkit.tape.numpy.where or concatenate"
        )
    vn = None
    if type(value) is Array:
        v = value._data
        n = value._node
        vn = tr.leaf(value) if n is None or n.token is not tr.token else n
        if op in ("multiply", "divide"):
            _save(tr, value, "an in-place write")
    else:
        v = value
    if op in ("multiply", "divide"):
        v = np.array(v)  # read again by the backward pass: a later write must not reach it
    if st is None:
        old = np.asarray(a._data)
        a._data = new = np.array(old)
    else:
        old, new = _copy_on_write(st)
    target = a._data
    if op == "set":
        pos = np.arange(target.size).reshape(target.shape)[index]
        if np.unique(pos).size != np.size(pos):
            raise ValueError(
                f"the write to {describe(a)} sets an element twice (a repeated index): which "
                f"value NumPy keeps, and so which one gets the gradient, is unspecified; write "
                f"each element once"
            )
    before = region(old, new, target)[index] if op in ("multiply", "divide") else None
    _apply(op, target, index, v)
    edges: list[tuple[Node | Slot, Callable[[Any], Any]]] = []
    if new.dtype.kind == "f":
        if on is not tr.const:
            edges.append((on, _kept_vjp(op, new, target, index, v)))
        if vn is not None and vn is not tr.const:
            edges.append((vn, _written_vjp(op, new, target, index, v, before, np.shape(v))))
    node = tr.const
    if edges:
        node = new_node(edges, tr.token)
        tr.tape.append(node)
    owner._node = node
    for u in st.live_views() if st is not None else ():
        if node is tr.const:
            u._node = node
        else:
            u._node = new_node([(node, _view_vjp(new, u._data))], tr.token)
            tr.tape.append(u._node)


def _kept_vjp(op: str, owner: np.ndarray, target: np.ndarray, index: Any, v: Any
              ) -> Callable[[Any], Any]:
    """The VJP of a written owner w.r.t. its values before the write."""
    if op in ("add", "subtract"):
        return _identity

    def vjp(g: Any) -> Any:
        g = np.array(g)
        part = region(g, owner, target)
        if op == "set":
            part[index] = 0
        elif op == "multiply":
            part[index] *= v
        else:
            part[index] /= v
        return g

    return vjp


def _written_vjp(op: str, owner: np.ndarray, target: np.ndarray, index: Any, v: Any,
                 before: Any, shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """The VJP of a written owner w.r.t. the value written (``before``: the old values)."""

    def vjp(g: Any) -> Any:
        part = np.array(region(np.asarray(g), owner, target)[index])
        if op == "subtract":
            part = -part
        elif op == "multiply":
            part = part * before
        elif op == "divide":
            part = -part * before / (v * v)
        # NumPy broadcasts the value to the written part, dropping its leading 1-sized axes.
        lead = len(shape) - part.ndim
        return sum_to(part.reshape((1,) * lead + part.shape) if lead > 0 else part, shape)

    return vjp


def _view_vjp(owner: np.ndarray, view: np.ndarray) -> Callable[[Any], Any]:
    """The VJP of a view of a written owner: its gradient placed on its part of the owner."""

    def vjp(g: Any) -> Any:
        out = np.zeros(owner.shape, dtype=np.result_type(g, owner))
        region(out, owner, view)[...] = g
        return out

    return vjp


def _save(tr: Trace, a: Array, prim: str) -> None:
    """Records the version of ``a``'s memory, which a VJP of ``prim`` reads, so that a write
    to it before the backward pass raises there. Memory computed inside this trace needs none:
    a write to it copies it first."""
    st = a._storage
    if st is None:
        n = a._node
        if n is not None and n.token is tr.token:
            return
        st = storage_of(a)
    if id(a) not in tr.saved:
        tr.saved[id(a)] = (st, st.version, a, prim)


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sums ``g`` over the axes that broadcasting added to ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    return g.sum(axis=axes).reshape(shape)


def unbroadcast(vjp: Callable[[Any], Any], shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """``vjp`` with its result summed back to an input's ``shape`` (every broadcasting op)."""
    return lambda g: sum_to(vjp(g), shape)


class _Spec:
    """A primitive's registry entry: its VJP makers and which arguments the VJPs read."""

    __slots__ = ("argnum_maker", "broadcasting", "makers", "name", "reads", "reads_rest",
                 "reads_xy", "view", "warn_copy")

    def __init__(self, name: str, view: bool, broadcasting: bool, warn_copy: bool) -> None:
        self.name = name
        self.view = view
        self.warn_copy = warn_copy
        self.broadcasting = broadcasting
        self.makers: tuple[VJPMaker | None, ...] = ()
        self.argnum_maker: Callable[..., Callable[[Any], Any]] | None = None
        self.reads: tuple[tuple[int, ...], ...] = ()
        """Per maker, the arguments its VJP reads."""
        self.reads_rest: tuple[int, ...] = ()
        """What the VJPs of the arguments past ``reads`` (an ``argnum`` maker's) read."""
        self.reads_xy: tuple[tuple[bool, bool], ...] = ()
        """Per maker, whether its VJP reads the first and the second argument (the
        recording path's two operands)."""


_NO_ARG = object()
"""The default of a primitive's first two parameters: the argument was not passed."""

REGISTRY: dict[str, _Spec] = {}
"""Every primitive by name, with its VJP makers: the one VJP registry."""


def primitive(raw: Callable[..., Any], name: str | None = None, *, view: bool = False,
              broadcasting: bool = False, warn_copy: bool = False) -> Callable[..., Any]:
    """Wraps a NumPy function into a recording primitive (declare its VJP with :func:`defvjp`).

    Args:
        raw: computes the result from NumPy values.
        name: registry name (default ``raw.__name__``).
        view: the result may share the first argument's memory (``transpose``, basic
            indexing); it then shares its storage and records it as ``.parent``.
        broadcasting: the arguments broadcast against each other (elementwise ops); the
            tape sums each VJP's result back to its input's shape, checked once per call
            when recorded so that same-shape calls pay nothing in the backward pass.
        warn_copy: with ``view``, the result is a view only where the memory layout allows
            (``reshape``): a call made outside a differentiated function that had to copy
            warns (``AliasWarning``), since the result is then no alias of its input.

    Returns:
        A function of Arrays, NumPy arrays and numbers that returns an Array. A result that
        NumPy made a view of an argument (``einsum("i->i", x)``) is a view of it here too.

    Example:
        >>> import toolkit.tape as tp
        >>> double = primitive(lambda x: 2 * x, "double")
        >>> defvjp(double, lambda ans, x: lambda g: 2 * g)
        >>> double(tp.array([1.0])).numpy()
        array([2.])
    """
    spec = _Spec(name or raw.__name__, view, broadcasting, warn_copy)
    REGISTRY[spec.name] = spec

    # Named positional-only parameters rather than ``*args``: no tuple to build per call.
    # A ufunc's result is fresh memory: no check whether it views an operand.
    fresh = isinstance(raw, np.ufunc)

    # Named positional-only parameters rather than ``*args``: no tuple to build per call.
    def prim(x: Any = _NO_ARG, y: Any = _NO_ARG, /, *more: Any, **kwargs: Any) -> Array:
        tr = _trace
        makers = spec.makers
        if tr is None or kwargs or more or view or not makers or x is _NO_ARG:
            args = () if x is _NO_ARG else (x,) if y is _NO_ARG else (x, y, *more)
            return _call(spec, raw, args, kwargs)
        # The common case (one or two operands, inside a trace), unrolled as ``_call`` would
        # run it: it runs once per op, and ``_call``'s loop over the operands (with its list
        # of values and starred calls) costs about a third more per op. A NumPy operand is
        # copied, as there.
        token = tr.token
        const = tr.const
        reads = spec.reads_xy
        tx = type(x) is Array
        xv = (x._data if tx else np.asarray(x) if type(x) is list
              else x.copy() if type(x) is np.ndarray else x)
        save_x = save_y = False  # whether a VJP made reads x, y
        if y is _NO_ARG:
            ans = raw(xv)
            edges = ()
            if tx:
                n = x._node
                if n is None or n.token is not token:
                    n = tr.leaf(x)
                if n is not const:
                    edges = ((n, makers[0](ans, xv)),)
                    save_x = reads[0][0]
            ty = False
        else:
            ex = ey = None
            ty = type(y) is Array
            yv = (y._data if ty else np.asarray(y) if type(y) is list
                  else y.copy() if type(y) is np.ndarray else y)
            ans = raw(xv, yv)
            # ``xs``/``ys``: an operand's shape where broadcasting changed it (its VJP's result
            # is summed back to it). Each ``.shape`` builds a tuple, so two same-shape arrays
            # (the common case) are settled by one comparison.
            xs = ys = None
            if broadcasting and not (tx and ty and xv.shape == yv.shape):
                shape = ans.shape
                if tx and xv.shape != shape:
                    xs = xv.shape
                if ty and yv.shape != shape:
                    ys = yv.shape
            if tx:
                n = x._node
                if n is None or n.token is not token:
                    n = tr.leaf(x)
                if n is not const and makers[0] is not None:
                    vjp = makers[0](ans, xv, yv)
                    ex = (n, vjp if xs is None else unbroadcast(vjp, xs))
                    save_x, save_y = reads[0]
            if ty and len(makers) > 1:
                n = y._node
                if n is None or n.token is not token:
                    n = tr.leaf(y)
                if n is not const and makers[1] is not None:
                    vjp = makers[1](ans, xv, yv)
                    ey = (n, vjp if ys is None else unbroadcast(vjp, ys))
                    rx, ry = reads[1]
                    save_x, save_y = save_x or rx, save_y or ry
            # A tuple display, not a list grown by appends: cheaper, and edges never change.
            edges = ((ex, ey) if ey is not None else (ex,)) if ex is not None else (
                (ey,) if ey is not None else ())
        out = Array()  # as in ``_new``, inlined
        out._data = ans
        out._storage = out._parent = out.name = None
        if not edges:
            out._node = const
        else:
            # As ``new_node``, inlined.
            out._node = node = Node()
            node.g = None
            node.edges = edges
            node.token = token
            tr.tape.append(node)
        if not fresh and type(ans) is np.ndarray and (ans.base is not None or ans is xv):
            one = y is _NO_ARG
            _share_memory(spec, out, (x,) if one else (x, y), [xv] if one else [xv, yv], tr)
        # As ``_save``, inlined for the operands a VJP made reads: memory computed in this
        # trace needs no version (a write to it copies it first).
        if save_x and tx:
            st = x._storage
            if st is None:
                n = x._node
                if n is None or n.token is not token:
                    _save(tr, x, spec.name)
            elif id(x) not in tr.saved:
                tr.saved[id(x)] = (st, st.version, x, spec.name)
        if save_y and ty:
            st = y._storage
            if st is None:
                n = y._node
                if n is None or n.token is not token:
                    _save(tr, y, spec.name)
            elif id(y) not in tr.saved:
                tr.saved[id(y)] = (st, st.version, y, spec.name)
        return out

    prim.__name__ = prim.__qualname__ = spec.name
    # NumPy's own docstring would bring its doctests along; point to it instead.
    prim.__doc__ = f"Differentiable ``{spec.name}``: NumPy's semantics, recorded on the tape."
    prim._spec = spec  # type: ignore[attr-defined]
    return prim


def _call(spec: _Spec, raw: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Array:
    """A primitive call in general: any arity, keywords, views, or outside a trace."""
    tr = _trace
    view = spec.view
    broadcasting = spec.broadcasting
    if view and type(args[0]) is Array:
        # Before the view is taken: making the storage may move the source to a C-ordered
        # copy, which the view must see.
        storage_of(args[0])
    # A list operand (``matmul(x, [1.0, 2.0])``) becomes the array NumPy would make of it,
    # so that VJPs see an array; a NumPy operand is copied inside a trace, since VJPs may
    # read it after the caller has changed it.
    vals = [a._data if type(a) is Array else np.asarray(a) if type(a) is list
            else a.copy() if type(a) is np.ndarray and tr is not None else a for a in args]
    ans = raw(*vals, **kwargs)
    out = Array()  # as in ``_new``, inlined
    out._data = ans
    out._node = out._storage = out._parent = out.name = None
    if type(ans) is np.ndarray and (view or ans.base is not None or ans is vals[0]):
        _share_memory(spec, out, args, vals, tr)
    if tr is None:
        return out
    token = tr.token
    const = tr.const
    makers = spec.makers
    reads = spec.reads
    edges = []
    read: tuple[int, ...] = ()
    for i, a in enumerate(args):
        if type(a) is not Array:
            continue
        n = a._node
        if n is None or n.token is not token:
            n = tr.leaf(a)
        if n is const:
            continue
        if i < len(makers):
            mk = makers[i]
            if mk is None:
                continue
            vjp = mk(ans, *vals, **kwargs)
            read += reads[i]
        elif spec.argnum_maker is not None:
            vjp = spec.argnum_maker(i, ans, *vals, **kwargs)
            read += spec.reads_rest
        else:
            continue
        # A broadcast operand's VJP result is summed back to its shape. Decided here, once
        # per call, so that same-shape calls pay nothing in the backward pass.
        if broadcasting and vals[i].shape != ans.shape:
            vjp = unbroadcast(vjp, vals[i].shape)
        edges.append((n, vjp))
    if not edges:
        out._node = const
        return out
    out._node = node = new_node(edges, token)
    tr.tape.append(node)
    for i in read:
        a = args[i] if i < len(args) else None
        if type(a) is Array:
            st = a._storage
            if st is None:
                _save(tr, a, spec.name)
            elif id(a) not in tr.saved:
                tr.saved[id(a)] = (st, st.version, a, spec.name)
    return out


def _share_memory(spec: _Spec, out: Array, args: tuple[Any, ...], vals: list[Any],
                  tr: Trace | None) -> None:
    """Makes ``out`` a view of the argument whose memory NumPy's result shares, if any.

    A view shares its source's storage and records it as ``.parent``; one of memory computed
    inside a trace is registered there, so that a write repoints it with the rest.
    """
    ans = out._data
    for i, a in enumerate(args):
        if type(a) is not Array or not np.may_share_memory(ans, vals[i]):
            continue
        st = storage_of(a)
        if not np.may_share_memory(ans, a._data):
            return  # making the storage moved ``a`` to a C-ordered copy: ``ans`` owns the rest
        out._storage = st
        out._parent = a
        if st.views is not None:
            st.views.append(weakref.ref(out))
        if tr is not None and not spec.view:
            # VJPs may read the result, which is the argument's memory.
            _save(tr, out, spec.name)
        return
    src = args[0]
    if spec.view and spec.warn_copy and tr is None and type(src) is Array and np.size(ans):
        _warn_copy(spec.name, src, ans)


def _warn_copy(name: str, src: Array, ans: Any) -> None:
    """A view-making call made outside a trace had to copy: the result is no alias of ``src``."""
    warnings.warn(
        f"{name} of {describe(src)} to shape {np.shape(ans)} cannot be a view of its memory "
        f"(NumPy had to copy it), so the result owns separate memory: writes to one are not "
        f"seen by the other, and alias='storage' gives it its own gradient. To make the copy "
        f"explicit (and silence this), {name} a copy: toolkit.tape.array(x).{name}(...)",
        AliasWarning, stacklevel=caller_level(),
    )


def defvjp(prim: Callable[..., Any], *makers: VJPMaker | None,
           saves: tuple[int, ...] | tuple[tuple[int, ...], ...] | None = None) -> None:
    """Declares ``prim``'s VJP, one maker per positional argument (HIPS autograd style).

    Each maker is ``lambda ans, *args, **kwargs: lambda g: grad_for_that_argument``; ``None``
    marks a non-differentiable argument. ``saves`` lists the arguments whose values the VJPs
    read (default: all), or, one tuple per maker, what that maker's VJP reads: an argument is
    recorded only when a VJP that reads it is made, and an in-place write to a recorded one
    before the backward pass makes it raise. (The result itself needs no entry: it is memory
    computed inside the trace, which a write copies first.)

    Example:
        >>> sq = primitive(lambda x: x * x, "sq")
        >>> defvjp(sq, lambda ans, x: lambda g: 2 * x * g, saves=(0,))
        >>> mul = primitive(lambda x, y: x * y, "mul")
        >>> defvjp(mul, lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * x,
        ...        saves=((1,), (0,)))
    """
    spec: _Spec = prim._spec  # type: ignore[attr-defined]
    spec.makers = makers
    if saves is None:
        saves = tuple(range(len(makers)))
    if saves and not isinstance(saves[0], int):
        spec.reads = tuple(saves)  # type: ignore[arg-type]
    else:
        spec.reads = (tuple(saves),) * len(makers)  # type: ignore[arg-type]
    spec.reads_xy = tuple((0 in r, 1 in r) for r in spec.reads)


def defvjp_argnum(prim: Callable[..., Any], maker: Callable[..., Callable[[Any], Any]],
                  saves: tuple[int, ...] = ()) -> None:
    """Declares a VJP for variadic primitives: ``maker(argnum, ans, *args, **kwargs)``.

    ``saves`` lists the arguments the VJPs read.

    Example:
        >>> cat = primitive(lambda *xs: np.concatenate(xs), "cat")
        >>> defvjp_argnum(cat, lambda i, ans, *xs: lambda g: np.split(g, len(xs))[i])
    """
    spec: _Spec = prim._spec  # type: ignore[attr-defined]
    spec.makers = ()
    spec.argnum_maker = maker
    spec.reads_rest = saves


def nondifferentiable(raw: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """A primitive whose result is a constant (comparisons, ``sign``, ``argmax``).

    Example:
        >>> import toolkit.tape as tp
        >>> nondifferentiable(np.greater)(tp.array([1.0]), 0.0).numpy()
        array([ True])
    """
    prim = primitive(raw, name)
    defvjp(prim, saves=())
    return prim


def set_trace(tr: Trace | None) -> Trace | None:
    """Activates ``tr`` (``None``: no trace) and returns the previously active trace."""
    global _trace
    prev, _trace = _trace, tr
    return prev
