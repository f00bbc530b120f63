"""The tape: arrays, storages, primitives and the backward pass.

An :class:`Array` wraps a NumPy array. Arrays made by :func:`array` own a :class:`Storage`
(their memory, with a version counter); views (``.T``, ``.reshape``, basic slicing and
integer element picks such as ``x[1]``, a 0-d view, :func:`toolkit.tape.adjoint`) share their
base's storage and remember their ``.parent``.

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
from collections.abc import Callable, Container, Iterable
from typing import Any

import numpy as np

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
    """The memory of one owning array: views share it; writes bump ``version``."""

    __slots__ = ("owner", "version")

    def __init__(self, owner: Array) -> None:
        self.owner = owner
        self.version = 0


# A node is the list ``[g, edges, token]``: ``g`` the gradient summed so far in a backward
# pass, ``edges`` ``[(sink, vjp), ...]`` per differentiable input, ``token`` its trace's token.
# A slot (a leaf read, or a route of ``.parent``) is ``[g, array, token]``. Lists, not objects,
# because one is made per recorded op and building a list is several times cheaper. A leaf's
# ``_node`` is set to its slot on first read, so later reads skip the ``leaves`` lookup; the
# token (not the trace) is stored so that a leaf does not keep a finished tape alive.
Node = list
Slot = list
G = 0
"""Index of a node's or slot's gradient."""


class Trace:
    """Everything recorded while one differentiated function runs.

    Attributes:
        tape: the nodes in execution order.
        leaves: ``id(array) -> slot`` per float leaf read.
        saved: ``id(array) -> (storage, version, array, primitive name)`` for every array
            with a storage that a VJP reads (the first op that saved it; writes are refused
            while tracing, so its version cannot change before the function returns).
        policy: ``"identity"`` or ``"storage"``.
        param_ids: ids of the differentiated params (the identity policy routes ``.parent``).
        to_param: ``id(param) -> Slot``: gradients that reached a param through ``.parent``.
        to_wrapper: ``id(wrapper) -> Slot``: structural ``{"parent": g}`` gradients.
        token: marks this trace's nodes and slots (``node[2] is trace.token``).
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
        self.const: Node = [None, (), self.token]
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
            s = self.leaves[id(a)] = [None, a, self.token]
        n = a._node
        if n is None or n[1] is a:
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
        if n is not None and n[2] is self.token and n[1] is not a:
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
        outer = self.outer
        while outer is not None:
            if outer.depends_on_params(a):
                raise NotImplementedError(
                    f"toolkit.tape.gradient (or pullback/jacobian) was called inside a "
                    f"function being differentiated, and the inner function reads "
                    f"{describe(a)}, which depends on the outer function's params: the tape "
                    f"does not differentiate gradients (no higher-order derivatives). Take "
                    f"the inner gradient outside the outer function, write its formula with "
                    f"toolkit.tape.numpy ops, or use jax (toolkit.explicit) for higher order"
                )
            outer = outer.outer

    def is_leaf(self, a: Array) -> bool:
        """Whether ``a`` comes from outside the function (not computed inside this trace)."""
        n = a._node
        return n is None or n[2] is not self.token or n[1] is a

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
            sink = table[key] = [None, owner, self.token]
        node = [None, [(sink, _identity)], self.token]
        self.tape.append(node)
        out._node = node
        return out

    def sink_of(self, out: Array) -> Node:
        """Where the gradient of ``out`` enters: its node, or its slot if ``out`` is a leaf.

        Taken when the function returns: a later trace may read ``out`` as its own leaf.
        """
        n = out._node
        return self.leaf(out) if n is None or n[2] is not self.token else n

    def backward(self, sink: Node | None, seed: Any) -> None:
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
                s[G] = None
        if sink is None or sink is self.const:
            return
        sink[G] = seed
        try:
            for node in reversed(self.tape):
                g = node[0]
                if g is None:
                    continue
                node[0] = None
                for target, vjp in node[1]:
                    # Identity edges (``add``, ``.parent`` routes) pass ``g`` on without a call.
                    gi = g if vjp is _identity else vjp(g)
                    tg = target[0]
                    target[0] = gi if tg is None else tg + gi
        except BaseException:
            # A failed VJP must not leave stale partial sums for the next call of back(). A
            # completed pass needs no clearing: it reset every node that got a gradient.
            for node in self.tape:
                node[0] = None
            raise


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
    _node: Node | None
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
        _write(self, "__setitem__", index, value)

    def __iadd__(self, other: Any) -> Array:
        if _trace is not None:
            # Inside a differentiated function ``h += v`` rebinds ``h`` (as with jax arrays).
            return self + other
        _write(self, "__iadd__", None, other)
        return self

    def __isub__(self, other: Any) -> Array:
        if _trace is not None:
            return self - other
        _write(self, "__isub__", None, other)
        return self

    def __imul__(self, other: Any) -> Array:
        if _trace is not None:
            return self * other
        _write(self, "__imul__", None, other)
        return self

    def __itruediv__(self, other: Any) -> Array:
        if _trace is not None:
            return self / other
        _write(self, "__itruediv__", None, other)
        return self


def _refuse_scalar(a: Array, how: str) -> None:
    """``float(a)``/``a.item()`` inside a trace: refused where it would cut a gradient."""
    if a._data.dtype.kind == "f" and _trace.depends_on_params(a):
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
            # Storage-policy gradients are mapped through byte offsets of a C-ordered owner.
            # ``np.array``, not ``np.ascontiguousarray``: that one makes a 0-d array 1-d.
            a._data = np.array(a._data, order="C")
        st = a._storage = Storage(a)
    return st


def _write(a: Array, op: str, index: Any, value: Any) -> None:
    """An in-place write outside any trace: into the shared memory, bumping its version."""
    if _trace is not None:
        raise RuntimeError(
            f"in-place write to {describe(a)} inside a differentiated function; write the "
            f"function without mutation (e.g. use toolkit.tape.numpy.where or concatenate)"
        )
    st = storage_of(a)
    v = value._data if isinstance(value, Array) else value
    data = a._data
    if op == "__setitem__":
        data[index] = v
    elif op == "__iadd__":
        data += v
    elif op == "__isub__":
        data -= v
    elif op == "__imul__":
        data *= v
    else:
        data /= v
    st.version += 1


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

    __slots__ = ("argnum_maker", "broadcasting", "makers", "name", "saves", "view", "warn_copy")

    def __init__(self, name: str, view: bool, broadcasting: bool, warn_copy: bool) -> None:
        self.name = name
        self.view = view
        self.warn_copy = warn_copy
        self.broadcasting = broadcasting
        self.makers: tuple[VJPMaker | None, ...] = ()
        self.argnum_maker: Callable[..., Callable[[Any], Any]] | None = None
        self.saves: tuple[int, ...] = ()


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
        A function of Arrays, NumPy arrays and numbers that returns an Array.

    Example:
        >>> double = primitive(lambda x: 2 * x, "double")
        >>> defvjp(double, lambda ans, x: lambda g: 2 * g)
        >>> import toolkit.tape as tp
        >>> double(tp.array([1.0])).numpy()
        array([2.])
    """
    spec = _Spec(name or raw.__name__, view, broadcasting, warn_copy)
    REGISTRY[spec.name] = spec

    # Named positional-only parameters rather than ``*args``: no tuple to build per call.
    def prim(x: Any = _NO_ARG, y: Any = _NO_ARG, /, *more: Any, **kwargs: Any) -> Array:
        tr = _trace
        makers = spec.makers
        if tr is None or kwargs or more or view or not makers or x is _NO_ARG:
            args = () if x is _NO_ARG else (x,) if y is _NO_ARG else (x, y, *more)
            return _call(spec, raw, tr, args, kwargs)
        # The hot path (one or two operands, inside a trace), unrolled: it runs once per op.
        token = tr.token
        const = tr.const
        tx = type(x) is Array
        # A list operand (``matmul(x, [1.0, 2.0])``) becomes the array NumPy would make of it,
        # so that VJPs see an array.
        xv = x._data if tx else np.asarray(x) if type(x) is list else x
        if y is _NO_ARG:
            ans = raw(xv)
            edges = ()
            if tx:
                n = x._node
                if n is None or n[2] is not token:
                    n = tr.leaf(x)
                if n is not const:
                    edges = ((n, makers[0](ans, xv)),)
            ty = False
        else:
            edges = []
            ty = type(y) is Array
            yv = y._data if ty else np.asarray(y) if type(y) is list else y
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
                if n is None or n[2] is not token:
                    n = tr.leaf(x)
                if n is not const and makers[0] is not None:
                    vjp = makers[0](ans, xv, yv)
                    edges.append((n, vjp if xs is None else unbroadcast(vjp, xs)))
            if ty and len(makers) > 1:
                n = y._node
                if n is None or n[2] is not token:
                    n = tr.leaf(y)
                if n is not const and makers[1] is not None:
                    vjp = makers[1](ans, xv, yv)
                    edges.append((n, vjp if ys is None else unbroadcast(vjp, ys)))
        out = Array()  # as in ``_new``, inlined
        out._data = ans
        out._storage = out._parent = out.name = None
        if not edges:
            out._node = const
            return out
        out._node = node = [None, edges, token]
        tr.tape.append(node)
        saves = spec.saves
        if saves:
            # The operands are already at hand: no loop over ``args``.
            saved = tr.saved
            if tx and x._storage is not None and 0 in saves and id(x) not in saved:
                saved[id(x)] = (x._storage, x._storage.version, x, spec.name)
            if ty and y._storage is not None and 1 in saves and id(y) not in saved:
                saved[id(y)] = (y._storage, y._storage.version, y, spec.name)
        return out

    prim.__name__ = prim.__qualname__ = spec.name
    # NumPy's own docstring would bring its doctests along; point to it instead.
    prim.__doc__ = f"Differentiable ``{spec.name}``: NumPy's semantics, recorded on the tape."
    prim._spec = spec  # type: ignore[attr-defined]
    return prim


def _call(spec: _Spec, raw: Callable[..., Any], tr: Trace | None, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Array:
    """A primitive call in general: any arity, keywords, views, or outside a trace."""
    if spec.view and tr is None and type(args[0]) is Array:
        # A view made outside a trace must share a storage: make the source's first.
        storage_of(args[0])
    vals = [a._data if type(a) is Array else a for a in args]
    ans = raw(*vals, **kwargs)
    out = _new(ans)
    if spec.view:
        src = args[0]
        if type(src) is Array:
            if np.may_share_memory(ans, vals[0]):
                out._storage = src._storage
                out._parent = src
            elif spec.warn_copy and tr is None and np.size(ans):
                _warn_copy(spec.name, src, ans)
    if tr is None:
        return out
    edges = []
    makers = spec.makers
    for i, a in enumerate(args):
        if type(a) is not Array:
            continue
        n = a._node
        if n is None or n[2] is not tr.token:
            n = tr.leaf(a)
        if n is tr.const:
            continue
        if makers:
            mk = makers[i] if i < len(makers) else None
            if mk is None:
                continue
            vjp = mk(ans, *vals, **kwargs)
        elif spec.argnum_maker is not None:
            vjp = spec.argnum_maker(i, ans, *vals, **kwargs)
        else:
            continue
        if spec.broadcasting and vals[i].shape != np.shape(ans):
            vjp = unbroadcast(vjp, vals[i].shape)
        edges.append((n, vjp))
    if not edges:
        out._node = tr.const
        return out
    out._node = node = [None, edges, tr.token]
    tr.tape.append(node)
    for i in spec.saves:
        if i < len(args):
            a = args[i]
            if type(a) is Array and a._storage is not None and id(a) not in tr.saved:
                tr.saved[id(a)] = (a._storage, a._storage.version, a, spec.name)
    return out


def _warn_copy(name: str, src: Array, ans: Any) -> None:
    """A view-making call made outside a trace had to copy: the result is no alias of ``src``."""
    warnings.warn(
        f"{name} of {describe(src)} to shape {np.shape(ans)} cannot be a view of its memory "
        f"(NumPy had to copy it), so the result owns separate memory: writes to one are not "
        f"seen by the other, and alias='storage' gives it its own gradient. To make the copy "
        f"explicit (and silence this), {name} a copy: toolkit.tape.array(x).{name}(...)",
        AliasWarning, stacklevel=caller_level(),
    )


def defvjp(prim: Callable[..., Any], *makers: VJPMaker | None, saves: tuple[int, ...] | None = None
           ) -> None:
    """Declares ``prim``'s VJP, one maker per positional argument (HIPS autograd style).

    Each maker is ``lambda ans, *args, **kwargs: lambda g: grad_for_that_argument``; ``None``
    marks a non-differentiable argument. ``saves`` lists the arguments whose values the VJPs
    read (default: all), so in-place writes to them are caught before the backward pass.

    Example:
        >>> sq = primitive(lambda x: x * x, "sq")
        >>> defvjp(sq, lambda ans, x: lambda g: 2 * x * g, saves=(0,))
    """
    spec: _Spec = prim._spec  # type: ignore[attr-defined]
    spec.makers = makers
    spec.saves = tuple(range(len(makers))) if saves is None else saves


def defvjp_argnum(prim: Callable[..., Any], maker: Callable[..., Callable[[Any], Any]],
                  saves: tuple[int, ...] = ()) -> None:
    """Declares a VJP for variadic primitives: ``maker(argnum, ans, *args, **kwargs)``.

    Example:
        >>> cat = primitive(lambda *xs: np.concatenate(xs), "cat")
        >>> defvjp_argnum(cat, lambda i, ans, *xs: lambda g: np.split(g, len(xs))[i])
    """
    spec: _Spec = prim._spec  # type: ignore[attr-defined]
    spec.makers = ()
    spec.argnum_maker = maker
    spec.saves = saves


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
