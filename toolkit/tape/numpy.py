"""A NumPy-like namespace of differentiable primitives, each VJP declared beside it.

Functions take :class:`~toolkit.tape.Array` arguments mixed with NumPy arrays and Python
numbers (constants) and return Arrays. Signatures follow NumPy/``jax.numpy`` (``axis=``,
``keepdims=``) so a loss written once runs on both. Broadcasting works everywhere; every
gradient is summed back to its input's shape (by the tape, for every primitive declared with
``broadcasting=True``). Names NumPy has but this engine does not differentiate raise
``TypeError`` naming them.

Example:
    >>> import toolkit.tape as tp
    >>> from toolkit.tape import numpy as tnp
    >>> w = tp.array([[1.0, 2.0]])
    >>> tp.gradient(lambda: tnp.sum(tnp.tanh(w @ np.ones(2))), tp.Params([w]))[w].shape
    (1, 2)
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.array_utils import normalize_axis_index as _axis_index

from toolkit.tape import _core
from toolkit.tape._core import (
    REGISTRY,
    Array,
    _identity,
    defvjp,
    defvjp_argnum,
    nondifferentiable,
    primitive,
    sum_to,
)

float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
newaxis = None
pi = np.pi
e = np.e
inf = np.inf
nan = np.nan


def _unreduce(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Spreads a reduction's gradient back over the reduced axes of ``x`` (a fresh array)."""
    if axis is not None and not keepdims:
        axes = {a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))}
        g = np.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    # A contiguous copy, not a stride-0 broadcast view: BLAS-backed VJPs downstream need it.
    out = np.empty(x.shape, dtype=g.dtype)
    out[...] = g
    return out


# --- elementwise arithmetic -------------------------------------------------------------------

add = primitive(np.add, "add", broadcasting=True)
defvjp(add, lambda ans, x, y: _identity, lambda ans, x, y: _identity, saves=())

subtract = primitive(np.subtract, "subtract", broadcasting=True)
defvjp(subtract, lambda ans, x, y: _identity, lambda ans, x, y: np.negative, saves=())

multiply = primitive(np.multiply, "multiply", broadcasting=True)
defvjp(multiply, lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * x,
       saves=((1,), (0,)))

divide = primitive(np.divide, "divide", broadcasting=True)
defvjp(divide, lambda ans, x, y: lambda g: g / y,
       lambda ans, x, y: lambda g: -g * ans / y, saves=(1,))
true_divide = divide

negative = primitive(np.negative, "negative")
defvjp(negative, lambda ans, x: lambda g: -g, saves=())


def _log_or_zero(x: Any) -> Any:
    # d(x**y)/dy = log(x) x**y; at x == 0 JAX (and the limit) gives 0, not nan.
    return np.log(np.where(x == 0, 1, x))


def _power_base_vjp(ans: Any, x: Any, y: Any) -> Any:
    # x ** 0 is 1 everywhere, so its derivative is 0, also at x == 0 where y * x ** (y - 1)
    # would be 0 * inf (PyTorch and JAX give 0 too).
    if isinstance(y, int | float) or np.ndim(y) == 0:
        if y == 0:
            return np.zeros_like
        return lambda g: g * y * np.power(x, y - 1)
    nonzero = y != 0
    return lambda g: g * np.where(nonzero, y * np.power(x, np.where(nonzero, y - 1, 0)), 0)


power = primitive(np.power, "power", broadcasting=True)
defvjp(power, _power_base_vjp, lambda ans, x, y: lambda g: g * _log_or_zero(x) * ans)

square = primitive(np.square, "square")
defvjp(square, lambda ans, x: lambda g: 2 * x * g)

sqrt = primitive(np.sqrt, "sqrt")
defvjp(sqrt, lambda ans, x: lambda g: g * 0.5 / ans, saves=())

abs = primitive(np.abs, "abs")
defvjp(abs, lambda ans, x: lambda g: g * np.sign(x))
absolute = abs

exp = primitive(np.exp, "exp")
defvjp(exp, lambda ans, x: lambda g: g * ans, saves=())

log = primitive(np.log, "log")
defvjp(log, lambda ans, x: lambda g: g / x)

sin = primitive(np.sin, "sin")
defvjp(sin, lambda ans, x: lambda g: g * np.cos(x))

cos = primitive(np.cos, "cos")
defvjp(cos, lambda ans, x: lambda g: -g * np.sin(x))

tanh = primitive(np.tanh, "tanh")
# ``g - g * ans * ans``: array-array ufuncs are faster than ``1 - ...`` on small arrays.
defvjp(tanh, lambda ans, x: lambda g: g - g * ans * ans, saves=())


def _sigmoid(x: Any) -> Any:
    # exp(-log(1 + exp(-x))) never overflows, unlike 1 / (1 + exp(-x)) for very negative x.
    return np.exp(-np.logaddexp(0, -x))


sigmoid = primitive(_sigmoid, "sigmoid")
defvjp(sigmoid, lambda ans, x: lambda g: g * (ans - ans * ans), saves=())

relu = primitive(lambda x: np.maximum(x, 0), "relu")
defvjp(relu, lambda ans, x: lambda g: g * (ans > 0), saves=())


def _balanced(win: Any, tie: Any) -> Any:
    # JAX's rule for max/min: the winner takes g, a tie splits it in halves.
    return win + 0.5 * tie


maximum = primitive(np.maximum, "maximum", broadcasting=True)
defvjp(maximum, lambda ans, x, y: lambda g: g * _balanced(x > y, x == y),
       lambda ans, x, y: lambda g: g * _balanced(y > x, x == y))

minimum = primitive(np.minimum, "minimum", broadcasting=True)
defvjp(minimum, lambda ans, x, y: lambda g: g * _balanced(x < y, x == y),
       lambda ans, x, y: lambda g: g * _balanced(y < x, x == y))

where = primitive(np.where, "where", broadcasting=True)
defvjp(where, None,
       lambda ans, c, x, y: lambda g: np.where(c, g, 0),
       lambda ans, c, x, y: lambda g: np.where(c, 0, g), saves=(0,))

# --- linear algebra ---------------------------------------------------------------------------


def _matmul_vjp(argnum: int, x: Any, y: Any) -> Any:
    # Vectors are promoted to matrices (as matmul does), the gradient computed batched, then
    # reshaped back; a stride-0 seed is copied so BLAS handles the products.
    xm = x[None, :] if x.ndim == 1 else x
    ym = y[:, None] if y.ndim == 1 else y

    def vjp(g: Any) -> Any:
        g = np.asarray(g)
        if 0 in g.strides:
            g = g.copy()
        if y.ndim == 1:
            g = np.expand_dims(g, -1)
        if x.ndim == 1:
            g = np.expand_dims(g, -2)
        if argnum == 0:
            gx = sum_to(g @ np.swapaxes(ym, -1, -2), xm.shape)
            return gx if x.ndim > 1 else gx.reshape(x.shape)
        gy = sum_to(np.swapaxes(xm, -1, -2) @ g, ym.shape)
        return gy if y.ndim > 1 else gy.reshape(y.shape)

    return vjp


matmul = primitive(np.matmul, "matmul")
defvjp(matmul, lambda ans, x, y: _matmul_vjp(0, x, y), lambda ans, x, y: _matmul_vjp(1, x, y),
       saves=((1,), (0,)))


def _ndim(a: Any) -> int:
    return a.ndim if isinstance(a, Array) else np.ndim(a)


def dot(a: Any, b: Any) -> Array:
    """NumPy's ``dot``: ``matmul`` for 1-d/2-d operands, a product for a scalar, and for n-d
    operands a sum over the last axis of ``a`` and the second-to-last of ``b``.

    Example:
        >>> float(dot(array([1.0, 2.0]), array([3.0, 4.0])))
        11.0
    """
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    if _ndim(a) > 2 or _ndim(b) > 2:
        return tensordot(a, b, axes=([-1], [-1 if _ndim(b) == 1 else -2]))
    return matmul(a, b)


# --- reductions -------------------------------------------------------------------------------

def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # np.add.reduce skips np.sum's Python wrapper (most of its cost on small arrays); integer
    # and bool sums keep np.sum's promotion.
    if x.dtype.kind == "f":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


_sum_prim = primitive(_sum, "sum")
defvjp(_sum_prim, lambda ans, x, axis=None, keepdims=False, **kw:
       lambda g: _unreduce(g, x, axis, keepdims), saves=())


def _operand(a: Any) -> Any:
    """A reduction's argument as an array: a list of Arrays is stacked (differentiably)."""
    if isinstance(a, list | tuple):
        return _traced_array(a)
    return a if type(a) is Array else np.asarray(a)


def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Array:
    """NumPy's ``sum``; ``a`` may be an Array, a list of Arrays (stacked first) or a number.

    Example:
        >>> float(sum([array(1.0), array([2.0])[0]]))
        3.0
    """
    if type(a) is not Array:
        a = _operand(a)
    if axis is None and not keepdims:
        return _sum_prim(a)  # no keywords: the primitive's fast path
    return _sum_prim(a, axis=axis, keepdims=keepdims)


def _mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    total = _sum(x, axis=axis, keepdims=keepdims)
    # An empty input keeps np.mean's answer (nan, with its warning).
    return total / (x.size // np.size(total)) if x.size else np.mean(x, axis=axis)


_mean_prim = primitive(_mean, "mean")
defvjp(_mean_prim, lambda ans, x, axis=None, keepdims=False, **kw:
       lambda g: _unreduce(g, x, axis, keepdims) * (np.size(ans) / (x.size or 1)), saves=())


def mean(a: Any, axis: Any = None, keepdims: bool = False) -> Array:
    """NumPy's ``mean``; ``a`` may be an Array, a list of Arrays (stacked first) or a number.

    Example:
        >>> float(mean([array(1.0), array(3.0)]))
        2.0
    """
    if type(a) is not Array:
        a = _operand(a)
    if axis is None and not keepdims:
        return _mean_prim(a)
    return _mean_prim(a, axis=axis, keepdims=keepdims)


def _chooser_vjp(ans: Any, x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    # Ties share the gradient equally, as JAX's max/min do.
    def vjp(g: Any) -> Any:
        hit = x == _unreduce(ans, x, axis, keepdims)
        share = hit / np.sum(hit, axis=axis, keepdims=True)
        return share * _unreduce(g, x, axis, keepdims)

    return vjp


max = primitive(np.max, "max")
defvjp(max, _chooser_vjp)
amax = max

min = primitive(np.min, "min")
defvjp(min, _chooser_vjp)
amin = min


def _logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


logsumexp = primitive(_logsumexp, "logsumexp")


def _logsumexp_vjp(ans: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # The softmax is taken now, so the VJP reads neither x nor the result.
    p = np.exp(x - _unreduce(ans, x, axis, keepdims))
    return lambda g: _unreduce(g, p, axis, keepdims) * p


defvjp(logsumexp, _logsumexp_vjp, saves=())


def _softmax(x: Any, axis: Any = -1) -> Any:
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / np.sum(z, axis=axis, keepdims=True)


softmax = primitive(_softmax, "softmax")
defvjp(softmax, lambda ans, x, axis=-1:
       lambda g: ans * (g - np.sum(g * ans, axis=axis, keepdims=True)), saves=())


def _log_softmax(x: Any, axis: Any = -1) -> Any:
    return x - _logsumexp(x, axis=axis, keepdims=True)


log_softmax = primitive(_log_softmax, "log_softmax")
defvjp(log_softmax, lambda ans, x, axis=-1:
       lambda g: g - np.exp(ans) * np.sum(g, axis=axis, keepdims=True), saves=())

# --- shape: views share their input's storage -------------------------------------------------

# A view where the memory layout allows, else a copy (made outside a function, it warns).
reshape = primitive(np.reshape, "reshape", view=True, warn_copy=True)
defvjp(reshape, lambda ans, x, *a, **kw: lambda g: np.reshape(g, x.shape), saves=())

transpose = primitive(np.transpose, "transpose", view=True)
defvjp(transpose, lambda ans, x, axes=None:
       lambda g: np.transpose(g, None if axes is None else np.argsort([a % x.ndim for a in axes])),
       saves=())

swapaxes = primitive(np.swapaxes, "swapaxes", view=True)
# NumPy's parameter names, so that ``swapaxes(x, axis1=0, axis2=1)`` works too.
defvjp(swapaxes, lambda ans, x, axis1, axis2: lambda g: np.swapaxes(g, axis1, axis2), saves=())

expand_dims = primitive(np.expand_dims, "expand_dims", view=True)
defvjp(expand_dims, lambda ans, x, axis: lambda g: np.reshape(g, x.shape), saves=())

squeeze = primitive(np.squeeze, "squeeze", view=True)
defvjp(squeeze, lambda ans, x, axis=None: lambda g: np.reshape(g, x.shape), saves=())


def _adjoint(x: Any) -> Any:
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x.T
    raise ValueError(f"adjoint takes a vector or a matrix; got shape {x.shape}")


adjoint = primitive(_adjoint, "adjoint", view=True)
adjoint.__doc__ = """Julia's ``x'``: a vector becomes a 1×n row, a matrix its transpose (a view).

Example:
    >>> adjoint(array([1.0, 2.0])).shape
    (1, 2)
"""
defvjp(adjoint, lambda ans, x: lambda g: np.reshape(g, x.shape) if x.ndim == 1 else g.T,
       saves=())

astype = primitive(lambda x, dtype: np.asarray(x).astype(dtype), "astype")


def _astype_vjp(ans: Any, x: Any, dtype: Any) -> Any:
    if ans.dtype.kind != "f":
        # A cast to integers or bools is piecewise constant: its derivative is 0 (as in JAX),
        # not the cotangent rounded to an integer.
        return lambda g: np.zeros(np.shape(x), dtype=x.dtype)
    # The cotangent is rounded to the result's dtype first, as JAX does for a float32 cast.
    return lambda g: np.asarray(g).astype(ans.dtype).astype(x.dtype)


defvjp(astype, _astype_vjp, saves=())

# Broadcasting copies: a stride-0 view as a leaf would alias its own elements.
broadcast_to = primitive(lambda x, shape: np.array(np.broadcast_to(x, shape)), "broadcast_to")
defvjp(broadcast_to, lambda ans, x, shape: lambda g: sum_to(g, x.shape), saves=())


def _concat_vjp(i: int, ans: Any, axis: int, *xs: Any) -> Any:
    ax = axis % ans.ndim
    start = int(np.sum([x.shape[ax] for x in xs[:i]], dtype=np.int64))
    index = (slice(None),) * ax + (slice(start, start + xs[i].shape[ax]),)
    return lambda g: g[index]


_concatenate = primitive(lambda axis, *xs: np.concatenate(xs, axis=axis), "concatenate")
defvjp_argnum(_concatenate, lambda i, ans, axis, *xs: _concat_vjp(i - 1, ans, axis, *xs))


def concatenate(arrays: Any, axis: int = 0) -> Array:
    """Joins arrays along an existing axis.

    Example:
        >>> concatenate([array([1.0]), np.zeros(2)]).shape
        (3,)
    """
    return _concatenate(axis, *(a if isinstance(a, Array) else np.asarray(a) for a in arrays))


_stack = primitive(lambda axis, *xs: np.stack(xs, axis=axis), "stack")
defvjp_argnum(_stack, lambda i, ans, axis, *xs: lambda g: np.take(g, i - 1, axis=axis))


def stack(arrays: Any, axis: int = 0) -> Array:
    """Joins arrays along a new axis.

    Example:
        >>> stack([array([1.0]), np.zeros(1)]).shape
        (2, 1)
    """
    return _stack(axis, *(a if isinstance(a, Array) else np.asarray(a) for a in arrays))


def _scatter_add(x: Any, index: Any, g: Any) -> Any:
    # np.add.at accumulates repeated indices, which ``z[index] += g`` would drop.
    z = np.zeros(x.shape, dtype=np.result_type(x, g))
    np.add.at(z, index, g)
    return z


def _take_index(x: Any, indices: Any, axis: Any) -> Any:
    if axis is None:
        return np.unravel_index(np.asarray(indices) % x.size, x.shape)
    return (slice(None),) * (axis % x.ndim) + (np.asarray(indices),)


take = primitive(np.take, "take")
defvjp(take, lambda ans, x, indices, axis=None, **kw:
       lambda g: _scatter_add(x, _take_index(x, indices, axis), g), saves=(1,))


def _scatter(x: Any, index: Any, g: Any) -> Any:
    # Basic indexing never repeats an element, so a plain assignment is enough.
    z = np.zeros(x.shape, dtype=np.result_type(x, g))
    z[index] = g
    return z


_getitem_view = primitive(lambda x, index: x[index], "getitem", view=True)
defvjp(_getitem_view, lambda ans, x, index: lambda g: _scatter(x, index, g), saves=())

_getitem_copy = primitive(lambda x, index: x[index], "getitem_gather")
defvjp(_getitem_copy, lambda ans, x, index: lambda g: _scatter_add(x, index, g), saves=())


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None or p is Ellipsis or isinstance(p, slice | int | np.integer) for p in parts
    )


def _own_index(index: Any) -> Any:
    """An advanced index with its arrays and lists copied: the VJP reads them later."""
    if type(index) is tuple:
        return tuple(np.array(p) if isinstance(p, np.ndarray | list) else p for p in index)
    return np.array(index) if isinstance(index, np.ndarray | list) else index


def _element_index(index: Any) -> Any:
    """``index`` with an ``...`` appended if it picks one element by integers alone.

    NumPy returns a copied scalar for ``x[1]`` of a vector but a 0-d view for ``x[1, ...]``:
    the view keeps the element an alias of ``x``'s memory, as PyTorch's ``x[1]`` is.
    """
    if isinstance(index, int | np.integer):
        return (index, Ellipsis)
    if type(index) is tuple and all(isinstance(p, int | np.integer) for p in index):
        return (*index, Ellipsis)
    return index


def getitem(x: Any, index: Any) -> Array:
    """``x[index]``: basic indexing (``x[1]`` too, as a 0-d view) is a view; integer-array or
    mask indexing copies.

    Example:
        >>> getitem(array([1.0, 2.0, 3.0]), [0, 0]).numpy()
        array([1., 1.])
        >>> x = array([1.0, 2.0]); getitem(x, 1).base is x
        True
    """
    index = _core.plain_index(index)
    if _is_basic(index):
        return _getitem_view(x, _element_index(index))
    return _getitem_copy(x, _own_index(index))


# --- constants --------------------------------------------------------------------------------

greater = nondifferentiable(np.greater, "greater")
greater_equal = nondifferentiable(np.greater_equal, "greater_equal")
less = nondifferentiable(np.less, "less")
less_equal = nondifferentiable(np.less_equal, "less_equal")
equal = nondifferentiable(np.equal, "equal")
not_equal = nondifferentiable(np.not_equal, "not_equal")
sign = nondifferentiable(np.sign, "sign")
argmax = nondifferentiable(np.argmax, "argmax")
argmin = nondifferentiable(np.argmin, "argmin")
isfinite = nondifferentiable(np.isfinite, "isfinite")


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def array(data: Any, *, name: str | None = None, dtype: Any = None) -> Array:
    """Makes an array that owns a copy of ``data``.

    Args:
        data: an Array, a NumPy array, a nested list or a number.
        name: optional name; the differentiated function's reads of this leaf (and of views
            of it named likewise) are reported in ``Grads.globals[name]``.
        dtype: float32 or float64 (differentiable), or an integer/bool dtype (a constant).
            Default: NumPy's inference (Python floats give float64).

    Returns:
        A new owning Array (``a.base is a``). Inside a differentiated function, ``data`` that
        is or holds Arrays (``array(x)``, ``array([a, b])``) gives a copy computed by an op
        (``stack`` for a list), so the gradient flows back to them.

    Raises:
        TypeError: the dtype is neither float32/float64 nor integer/bool.

    Example:
        >>> array([1.0, 2.0], name="x").shape
        (2,)
    """
    if _core._trace is not None and _holds_array(data):
        # Inside a differentiated function the copy is an op, so the gradient flows through.
        out = _traced_array(data, dtype)
        out.name = name
        return out
    src = data._data if isinstance(data, Array) else data
    buf = np.array(src, dtype=dtype, order="C", copy=True)
    if (buf.dtype.kind == "f" and buf.dtype not in _FLOATS) or buf.dtype.kind not in "fiub":
        raise TypeError(
            f"toolkit.tape arrays are float32 or float64 (or integer/bool constants); "
            f"got dtype {buf.dtype}"
        )
    a = _core.constant(buf)
    a._storage = _core.Storage(a)
    a.name = name
    return a


def _holds_array(data: Any) -> bool:
    """Whether ``data`` is an Array or a (nested) list or tuple holding one."""
    if type(data) is Array:
        return True
    return isinstance(data, list | tuple) and any(_holds_array(d) for d in data)


def _traced_array(data: Any, dtype: Any = None) -> Array:
    """``array(data)`` of Arrays as ops: a copy (``astype``) of an Array, ``stack`` of a list.

    Elements that are not Arrays (numbers, NumPy arrays) enter as constants.
    """
    if type(data) is Array:
        return astype(data, data.dtype if dtype is None else dtype)
    parts = [_traced_array(d) if isinstance(d, Array | list | tuple) else np.asarray(d)
             for d in data]
    out = _stack(0, *parts)
    return out if dtype is None or out.dtype == np.dtype(dtype) else astype(out, dtype)


def asarray(data: Any, dtype: Any = None) -> Array:
    """``data`` as an Array: an Array passes through (cast differentiably), anything else is
    copied; inside a differentiated function a list holding Arrays is stacked (differentiably).

    Example:
        >>> asarray([1.0]).shape
        (1,)
    """
    if isinstance(data, Array):
        return data if dtype is None or np.dtype(dtype) == data.dtype else astype(data, dtype)
    return array(data, dtype=dtype)


def zeros(shape: Any, dtype: Any = np.float64) -> Array:
    """A constant array of zeros.

    Example:
        >>> zeros(2).numpy()
        array([0., 0.])
    """
    return _core.constant(np.zeros(shape, dtype=dtype))


def ones(shape: Any, dtype: Any = np.float64) -> Array:
    """A constant array of ones.

    Example:
        >>> ones(2).numpy()
        array([1., 1.])
    """
    return _core.constant(np.ones(shape, dtype=dtype))


def zeros_like(a: Any, dtype: Any = None) -> Array:
    """A constant array of zeros shaped like ``a``.

    Example:
        >>> zeros_like(array([1.0])).numpy()
        array([0.])
    """
    return _core.constant(np.zeros(a.shape if isinstance(a, Array) else np.shape(a),
                         dtype=dtype or getattr(a, "dtype", np.float64)))


def ones_like(a: Any, dtype: Any = None) -> Array:
    """A constant array of ones shaped like ``a``.

    Example:
        >>> ones_like(array([1.0])).numpy()
        array([1.])
    """
    return _core.constant(np.ones(a.shape if isinstance(a, Array) else np.shape(a),
                        dtype=dtype or getattr(a, "dtype", np.float64)))


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = np.float64) -> Array:
    """A constant array with ones on diagonal ``k`` (NumPy's signature).

    Example:
        >>> eye(2, k=1).numpy()
        array([[0., 1.],
               [0., 0.]])
    """
    return _core.constant(np.eye(N, M, k=k, dtype=dtype))


# --- more elementwise functions ---------------------------------------------------------------

log1p = primitive(np.log1p, "log1p")
defvjp(log1p, lambda ans, x: lambda g: g / (1 + x))

expm1 = primitive(np.expm1, "expm1")
defvjp(expm1, lambda ans, x: lambda g: g * (ans + 1), saves=())

log2 = primitive(np.log2, "log2")
defvjp(log2, lambda ans, x: lambda g: g / (x * np.log(2)))

log10 = primitive(np.log10, "log10")
defvjp(log10, lambda ans, x: lambda g: g / (x * np.log(10)))

tan = primitive(np.tan, "tan")
defvjp(tan, lambda ans, x: lambda g: g * (1 + ans * ans), saves=())

sinh = primitive(np.sinh, "sinh")
defvjp(sinh, lambda ans, x: lambda g: g * np.cosh(x))

cosh = primitive(np.cosh, "cosh")
defvjp(cosh, lambda ans, x: lambda g: g * np.sinh(x))

arcsin = primitive(np.arcsin, "arcsin")
defvjp(arcsin, lambda ans, x: lambda g: g / np.sqrt(1 - x * x))
asin = arcsin

arccos = primitive(np.arccos, "arccos")
defvjp(arccos, lambda ans, x: lambda g: -g / np.sqrt(1 - x * x))
acos = arccos

arctan = primitive(np.arctan, "arctan")
defvjp(arctan, lambda ans, x: lambda g: g / (1 + x * x))
atan = arctan

arcsinh = primitive(np.arcsinh, "arcsinh")
defvjp(arcsinh, lambda ans, x: lambda g: g / np.sqrt(x * x + 1))
asinh = arcsinh

arccosh = primitive(np.arccosh, "arccosh")
defvjp(arccosh, lambda ans, x: lambda g: g / np.sqrt(x * x - 1))
acosh = arccosh

arctanh = primitive(np.arctanh, "arctanh")
defvjp(arctanh, lambda ans, x: lambda g: g / (1 - x * x))
atanh = arctanh

reciprocal = primitive(np.reciprocal, "reciprocal")
defvjp(reciprocal, lambda ans, x: lambda g: -g * ans * ans, saves=())


def _zero_vjp(ans: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    # Piecewise-constant functions: a zero gradient (as JAX gives), not a missing one.
    return np.zeros_like


floor = primitive(np.floor, "floor")
defvjp(floor, _zero_vjp, saves=())

ceil = primitive(np.ceil, "ceil")
defvjp(ceil, _zero_vjp, saves=())

trunc = primitive(np.trunc, "trunc")
defvjp(trunc, _zero_vjp, saves=())

rint = primitive(np.rint, "rint")
defvjp(rint, _zero_vjp, saves=())

round = primitive(np.round, "round")
defvjp(round, _zero_vjp, saves=())
around = round

# x mod y = x - y * floor(x / y): slope 1 in x, -floor(x / y) in y (between the jumps).
mod = primitive(np.mod, "mod", broadcasting=True)
defvjp(mod, lambda ans, x, y: _identity, lambda ans, x, y: lambda g: -g * np.floor(x / y))
remainder = mod

# fmod(x, y) = x - y * trunc(x / y): the C remainder, with the sign of x.
fmod = primitive(np.fmod, "fmod", broadcasting=True)
defvjp(fmod, lambda ans, x, y: _identity, lambda ans, x, y: lambda g: -g * np.trunc(x / y))

logaddexp = primitive(np.logaddexp, "logaddexp", broadcasting=True)
defvjp(logaddexp, lambda ans, x, y: lambda g: g * np.exp(x - ans),
       lambda ans, x, y: lambda g: g * np.exp(y - ans))

arctan2 = primitive(np.arctan2, "arctan2", broadcasting=True)
defvjp(arctan2, lambda ans, y, x: lambda g: g * x / (x * x + y * y),
       lambda ans, y, x: lambda g: -g * y / (x * x + y * y))
atan2 = arctan2

hypot = primitive(np.hypot, "hypot", broadcasting=True)
defvjp(hypot, lambda ans, x, y: lambda g: g * x / ans, lambda ans, x, y: lambda g: g * y / ans)


def _clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    if a_min is None and a_max is None:
        return np.array(x)
    return np.clip(x, a_min, a_max)


def _clip_vjp(argnum: int) -> Any:
    # clip is minimum(maximum(x, a_min), a_max), so ties split the gradient as maximum and
    # minimum do (and as JAX's clip does); a missing bound never binds.
    def maker(ans: Any, x: Any, a_min: Any = None, a_max: Any = None) -> Any:
        lo = -np.inf if a_min is None else a_min
        hi = np.inf if a_max is None else a_max

        def vjp(g: Any) -> Any:
            low = np.maximum(x, lo)
            if argnum == 2:
                return g * _balanced(hi < low, low == hi)
            below_hi = _balanced(low < hi, low == hi)
            if argnum == 0:
                return g * below_hi * _balanced(x > lo, x == lo)
            return g * below_hi * _balanced(lo > x, x == lo)

        return vjp

    return maker


clip = primitive(_clip, "clip", broadcasting=True)
defvjp(clip, _clip_vjp(0), _clip_vjp(1), _clip_vjp(2))
# --- more reductions and scans ----------------------------------------------------------------


def _reduced_axes(x: Any, axis: Any) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    return tuple(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


def _product_of_others(x: Any, axis: Any) -> Any:
    """Each element's product of the other elements it is reduced with (exact at zeros)."""
    axes = _reduced_axes(x, axis)
    kept = [a for a in range(x.ndim) if a not in axes]
    order = kept + list(axes)
    moved = np.transpose(x, order)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if n == 0:
        return np.zeros_like(x)
    flat = moved.reshape((*moved.shape[:len(kept)], n))
    # Exclusive products from the left and from the right: no division, so a zero is fine.
    one = np.ones((*flat.shape[:-1], 1), dtype=flat.dtype)
    left = np.cumprod(np.concatenate([one, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([one, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.transpose((left * right).reshape(moved.shape), np.argsort(order))


prod = primitive(lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
                 "prod")
defvjp(prod, lambda ans, x, axis=None, keepdims=False:
       lambda g: _unreduce(g, x, axis, keepdims) * _product_of_others(x, axis))


def _count(ans: Any, x: Any) -> int:
    """How many elements of ``x`` each element of a reduction's result summarises."""
    return x.size // (np.size(ans) or 1)


var = primitive(lambda x, axis=None, *, ddof=0, keepdims=False:
                np.var(x, axis=axis, ddof=ddof, keepdims=keepdims), "var")
defvjp(var, lambda ans, x, axis=None, *, ddof=0, keepdims=False:
       lambda g: _unreduce(g, x, axis, keepdims) * (2 / (_count(ans, x) - ddof))
       * (x - np.mean(x, axis=axis, keepdims=True)))

std = primitive(lambda x, axis=None, *, ddof=0, keepdims=False:
                np.std(x, axis=axis, ddof=ddof, keepdims=keepdims), "std")
# At zero spread every x - mean is 0: the gradient is 0 there (as PyTorch's), not 0 / 0.
defvjp(std, lambda ans, x, axis=None, *, ddof=0, keepdims=False:
       lambda g: _unreduce(g / np.where(ans == 0, np.inf, ans), x, axis, keepdims)
       / (_count(ans, x) - ddof)
       * (x - np.mean(x, axis=axis, keepdims=True)))

cumsum = primitive(lambda x, axis=None: np.cumsum(x, axis=axis), "cumsum")
# Each input element feeds every later output: a reversed cumulative sum (flattened for None).
defvjp(cumsum, lambda ans, x, axis=None:
       lambda g: np.flip(np.cumsum(np.flip(g, axis), axis), axis).reshape(x.shape), saves=())
# --- more linear algebra ----------------------------------------------------------------------

_LABELS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_terms(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """An einsum's input and output labels, ``...`` spelled out in letters it does not use."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, out = spec.partition("->")
    terms = inputs.split(",")
    spare = [c for c in _LABELS if c not in spec]
    widths = [len(s) - (len(t) - 3) if "..." in t else 0 for t, s in zip(terms, shapes,
                                                                        strict=True)]
    ellipsis = "".join(spare[:int(np.max(widths, initial=0))])
    # Ellipsis dimensions broadcast from the right, as in NumPy.
    terms = [t.replace("...", ellipsis[len(ellipsis) - w:]) for t, w in zip(terms, widths,
                                                                           strict=True)]
    if arrow:
        return terms, out.replace("...", ellipsis)
    # Implicit output: the labels used once, sorted, after the ellipsis dimensions.
    joined = "".join(terms)
    return terms, ellipsis + "".join(
        sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ellipsis))


def _einsum_vjp(i: int, subscripts: str, operands: tuple[Any, ...]) -> Any:
    """The VJP for operand ``i``: an einsum of the cotangent with the other operands."""

    def vjp(g: Any) -> Any:
        terms, out = _einsum_terms(subscripts, [np.shape(o) for o in operands])
        target = terms[i]
        others = [o for k, o in enumerate(operands) if k != i]
        other_terms = [t for k, t in enumerate(terms) if k != i]
        sizes: dict[str, int] = {}
        for t, o in zip(terms, operands, strict=True):
            for c, n in zip(t, np.shape(o), strict=True):
                # A size-1 dimension broadcasts against the label's size elsewhere.
                sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
        labels = "".join(dict.fromkeys(target))
        reached = set(out).union(*other_terms)
        kept = "".join(c for c in labels if c in reached)
        grad = np.einsum(",".join([out, *other_terms]) + "->" + kept, g, *others,
                         optimize=len(others) > 1)
        full_shape = tuple(sizes[c] for c in labels)
        if grad.shape != full_shape:
            # A label summed in this operand alone, or of size 1 in the others: the gradient
            # is constant along it.
            grad = np.array(np.broadcast_to(
                grad.reshape([grad.shape[kept.index(c)] if c in kept else 1 for c in labels]),
                full_shape))
        if labels == target:
            return sum_to(grad, np.shape(operands[i]))
        # A repeated label (``"ii->i"``) reads a diagonal: the gradient goes onto it.
        full = np.zeros(np.shape(operands[i]), dtype=grad.dtype)
        index = np.indices(grad.shape, sparse=True)
        full[tuple(index[labels.index(c)] for c in target)] = grad
        return full

    return vjp


_einsum = primitive(np.einsum, "einsum")
# The VJPs read every operand (NumPy's einsum takes at most 64).
defvjp_argnum(_einsum, lambda i, ans, subscripts, *operands, **kw:
              _einsum_vjp(i - 1, subscripts, operands), saves=tuple(range(1, 65)))


def _sublist_labels(sublist: Any) -> str:
    """An einsum sublist (``[0, 1]``, ``[..., 0]``) in letters (``"ab"``, ``"...a"``)."""
    letters = []
    for k in sublist:
        if k is Ellipsis:
            letters.append("...")
        elif isinstance(k, int | np.integer) and 0 <= k < len(_LABELS):
            letters.append(_LABELS[k])
        else:
            raise ValueError(f"an einsum sublist holds integers in [0, {len(_LABELS)}) and "
                             f"Ellipsis; got {sublist!r}")
    return "".join(letters)


def einsum(*operands: Any, **kwargs: Any) -> Array:
    """NumPy's ``einsum``: a subscripts string (explicit, implicit or with ``...``) followed by
    the operands, or the sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])``.

    Each operand's gradient is an einsum of the cotangent with the other operands.

    Example:
        >>> einsum("ij,j->i", array([[1.0, 2.0]]), np.ones(2)).numpy()
        array([3.])
        >>> einsum(array([[1.0, 2.0]]), [0, 1], np.ones(2), [1], [0]).numpy()
        array([3.])
    """
    if operands and not isinstance(operands[0], str):
        # (operand, sublist) pairs, then an optional output sublist: spelled as subscripts.
        pairs = operands[:len(operands) - len(operands) % 2]
        inputs = ",".join(_sublist_labels(s) for s in pairs[1::2])
        output = "->" + _sublist_labels(operands[-1]) if len(operands) % 2 else ""
        operands = (inputs + output, *pairs[0::2])
    return _einsum(*operands, **kwargs)


def _tensordot_axes(a: Any, b: Any, axes: Any) -> tuple[list[int], list[int]]:
    """``tensordot``'s ``axes`` as two lists of non-negative axes of ``a`` and ``b``."""
    if isinstance(axes, int | np.integer):
        return list(range(a.ndim - axes, a.ndim)), list(range(axes))
    axes_a, axes_b = ([ax] if isinstance(ax, int | np.integer) else list(ax) for ax in axes)
    return [ax % a.ndim for ax in axes_a], [ax % b.ndim for ax in axes_b]


def _tensordot_vjp(argnum: int, a: Any, b: Any, axes: Any) -> Any:
    # The cotangent contracted with the other operand over its free axes; the contracted axes
    # come out in that operand's axis order, so they are permuted back to the pairing.
    a, b = np.asarray(a), np.asarray(b)
    axes_a, axes_b = _tensordot_axes(a, b, axes)
    free_a = [k for k in range(a.ndim) if k not in axes_a]
    free_b = [k for k in range(b.ndim) if k not in axes_b]
    if argnum == 0:
        order = free_a + [axes_a[axes_b.index(k)] for k in sorted(axes_b)]
        return lambda g: np.transpose(
            np.tensordot(g, b, axes=(list(range(len(free_a), g.ndim)), free_b)),
            np.argsort(order))
    order = [axes_b[axes_a.index(k)] for k in sorted(axes_a)] + free_b
    return lambda g: np.transpose(np.tensordot(a, g, axes=(free_a, list(range(len(free_a))))),
                                  np.argsort(order))


tensordot = primitive(np.tensordot, "tensordot")
defvjp(tensordot, lambda ans, a, b, axes=2: _tensordot_vjp(0, a, b, axes),
       lambda ans, a, b, axes=2: _tensordot_vjp(1, a, b, axes))

outer = primitive(np.outer, "outer")
defvjp(outer, lambda ans, a, b: lambda g: (g @ np.ravel(b)).reshape(np.shape(a)),
       lambda ans, a, b: lambda g: (np.ravel(a) @ g).reshape(np.shape(b)))


def inner(a: Any, b: Any) -> Array:
    """NumPy's ``inner``: a sum over the last axes of both (a product for a scalar).

    Example:
        >>> float(inner(array([1.0, 2.0]), array([3.0, 4.0])))
        11.0
    """
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def _undiagonal(x: Any, offset: int, axis1: int, axis2: int, g: Any) -> Any:
    """Zeros shaped like ``x`` with ``g`` on the diagonal that ``np.diagonal`` reads."""
    full = np.zeros(np.shape(x), dtype=np.result_type(x, g))
    moved = np.moveaxis(full, (axis1, axis2), (-2, -1))  # a writable view of ``full``
    steps = np.arange(np.diagonal(moved, offset, -2, -1).shape[-1])
    rows, cols = (steps, steps + offset) if offset >= 0 else (steps - offset, steps)
    moved[..., rows, cols] = g
    return full


diagonal = primitive(np.diagonal, "diagonal", view=True)
defvjp(diagonal, lambda ans, x, offset=0, axis1=0, axis2=1:
       lambda g: _undiagonal(x, offset, axis1, axis2, g), saves=())

trace = primitive(np.trace, "trace")
defvjp(trace, lambda ans, x, offset=0, axis1=0, axis2=1, **kw:
       lambda g: _undiagonal(x, offset, axis1, axis2, np.expand_dims(g, -1)), saves=())

# A matrix's diagonal is a view; a vector's diagonal matrix is a copy.
diag = primitive(np.diag, "diag", view=True)
defvjp(diag, lambda ans, x, k=0:
       lambda g: np.diagonal(g, k) if x.ndim == 1 else _undiagonal(x, k, 0, 1, g), saves=())

triu = primitive(np.triu, "triu")
defvjp(triu, lambda ans, x, k=0: lambda g: np.triu(g, k), saves=())

tril = primitive(np.tril, "tril")
defvjp(tril, lambda ans, x, k=0: lambda g: np.tril(g, k), saves=())
# --- more shape functions: flip, moveaxis and ravel are views where NumPy makes them ----------

flip = primitive(np.flip, "flip", view=True)
defvjp(flip, lambda ans, x, axis=None: lambda g: np.flip(g, axis), saves=())

moveaxis = primitive(np.moveaxis, "moveaxis", view=True)
defvjp(moveaxis, lambda ans, x, source, destination:
       lambda g: np.moveaxis(g, destination, source), saves=())

# Like reshape: a view of contiguous memory, else a copy with its own memory (made outside a
# function, such a copy warns).
ravel = primitive(np.ravel, "ravel", view=True, warn_copy=True)
defvjp(ravel, lambda ans, x, *a, **kw: lambda g: np.reshape(g, x.shape), saves=())

flatten = primitive(lambda x: np.array(x).reshape(-1), "flatten")
defvjp(flatten, lambda ans, x: lambda g: np.reshape(g, np.shape(x)), saves=())

roll = primitive(np.roll, "roll")
defvjp(roll, lambda ans, x, shift, axis=None: lambda g: np.roll(g, np.negative(shift), axis),
       saves=())


def _unrepeat(x: Any, repeats: Any, axis: Any, g: Any) -> Any:
    """Adds the cotangent of each copy made by ``np.repeat(x, repeats, axis)`` to its source."""
    if axis is None:
        source = np.repeat(np.arange(x.size), repeats)
        summed = np.bincount(source, weights=g, minlength=x.size)
        return summed.astype(g.dtype, copy=False).reshape(x.shape)
    index = (slice(None),) * (axis % x.ndim) + (np.repeat(np.arange(x.shape[axis]), repeats),)
    return _scatter_add(x, index, g)


repeat = primitive(np.repeat, "repeat")
defvjp(repeat, lambda ans, x, repeats, axis=None: lambda g: _unrepeat(x, repeats, axis, g),
       saves=())


def _untile(x: Any, reps: Any, g: Any) -> Any:
    """Sums ``g`` (``np.tile(x, reps)``'s cotangent) over the copies of ``x``."""
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    ndim = len(reps) if len(reps) > x.ndim else x.ndim
    shape = (1,) * (ndim - x.ndim) + x.shape
    reps = (1,) * (ndim - len(reps)) + reps
    # Axis k of the result is (copy, element) pairs: split them and sum over the copies.
    pairs = g.reshape([n for pair in zip(reps, shape, strict=True) for n in pair])
    return np.add.reduce(pairs, axis=tuple(range(0, 2 * ndim, 2))).reshape(x.shape)


tile = primitive(np.tile, "tile")
defvjp(tile, lambda ans, x, reps: lambda g: _untile(x, reps, g), saves=())

_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pad(x: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    if mode not in _PAD_MODES:
        raise ValueError(f"toolkit.tape.numpy.pad supports mode in {', '.join(_PAD_MODES)}; "
                         f"got {mode!r}")
    return np.pad(x, pad_width, mode=mode, **kwargs)


def _unpad(x: Any, pad_width: Any, mode: str, kwargs: dict[str, Any], g: Any) -> Any:
    """Adds each padded element's cotangent to the input element it copies."""
    # Padding the flat indices of x the same way names, per result element, its source
    # element (-1 for a constant).
    kwargs = {k: v for k, v in kwargs.items() if k != "constant_values"}
    if mode == "constant":
        kwargs["constant_values"] = -1
    source = np.pad(np.arange(x.size).reshape(x.shape), pad_width, mode=mode, **kwargs)
    copied = source >= 0
    summed = np.bincount(source[copied], weights=g[copied], minlength=x.size)
    return summed.astype(g.dtype, copy=False).reshape(x.shape)


pad = primitive(_pad, "pad")
pad.__doc__ = """NumPy's ``pad`` for modes constant (with ``constant_values``), edge, reflect,
symmetric and wrap; the gradient of every copy adds up in the element it copies.

Example:
    >>> pad(array([1.0, 2.0]), 1, mode="edge").numpy()
    array([1., 1., 2., 2.])
"""
defvjp(pad, lambda ans, x, pad_width, mode="constant", **kw:
       lambda g: _unpad(x, pad_width, mode, kw, g), saves=())


def _unsort_vjp(x: Any, axis: Any) -> Any:
    """Puts each sorted element's cotangent back where that element came from (the order is
    taken now, so the VJP does not read ``x``)."""
    order, shape = np.argsort(x, axis=axis, kind="stable"), np.shape(x)

    def vjp(g: Any) -> Any:
        if axis is None:
            flat = np.empty(order.size, dtype=g.dtype)
            flat[order] = g
            return flat.reshape(shape)
        out = np.empty(shape, dtype=g.dtype)
        np.put_along_axis(out, order, g, axis)
        return out

    return vjp


sort = primitive(lambda x, axis=-1: np.sort(x, axis=axis, kind="stable"), "sort")
defvjp(sort, lambda ans, x, axis=-1: _unsort_vjp(x, axis), saves=())
argsort = nondifferentiable(np.argsort, "argsort")


def _pieces(split_indices: Any, ary: Any, indices_or_sections: Any, axis: int) -> list[Array]:
    # NumPy splits an index range: its checks and its rules for sections and indices, without
    # touching the data; each piece is then a basic slice (a view).
    ax = axis % _ndim(ary)
    bounds = split_indices(np.arange(ary.shape[ax]), indices_or_sections)
    pieces, start = [], 0
    for b in bounds:
        pieces.append(getitem(ary, (slice(None),) * ax + (slice(start, start + b.size),)))
        start += b.size
    return pieces


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Array]:
    """NumPy's ``split``: views of equal sections, or cut at the given indices.

    Raises:
        ValueError: ``indices_or_sections`` is a number that does not divide the axis.

    Example:
        >>> [p.shape for p in split(array([1.0, 2.0, 3.0]), [1])]
        [(1,), (2,)]
    """
    return _pieces(np.split, ary, indices_or_sections, axis)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Array]:
    """NumPy's ``array_split``: like ``split``, but sections need not divide the axis.

    Example:
        >>> [p.shape for p in array_split(array([1.0, 2.0, 3.0]), 2)]
        [(2,), (1,)]
    """
    return _pieces(np.array_split, ary, indices_or_sections, axis)


def vstack(tup: Any) -> Array:
    """Stacks arrays row-wise: vectors become rows, then they are joined on axis 0.

    Example:
        >>> vstack([array([1.0, 2.0]), np.zeros((2, 2))]).shape
        (3, 2)
    """
    return concatenate([a if _ndim(a) >= 2 else reshape(a, (1, -1)) for a in tup], axis=0)


def hstack(tup: Any) -> Array:
    """Stacks arrays column-wise: vectors are joined end to end, matrices on axis 1.

    Example:
        >>> hstack([array([1.0]), np.zeros(2)]).shape
        (3,)
    """
    arrays = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in tup]
    return concatenate(arrays, axis=0 if _ndim(arrays[0]) == 1 else 1)


# --- the rest of NumPy's array functions: elementwise, shape, stacking, ranges, index tricks ---

exp2 = primitive(np.exp2, "exp2")
defvjp(exp2, lambda ans, x: lambda g: g * ans * np.log(2), saves=())

fabs = primitive(np.fabs, "fabs")
defvjp(fabs, lambda ans, x: lambda g: g * np.sign(x))

degrees = primitive(np.degrees, "degrees")
defvjp(degrees, lambda ans, x: lambda g: g * (180 / np.pi), saves=())
rad2deg = degrees

radians = primitive(np.radians, "radians")
defvjp(radians, lambda ans, x: lambda g: g * (np.pi / 180), saves=())
deg2rad = radians

# Tape arrays are real, so these are NumPy's functions on real input: ``real`` is a view (as in
# NumPy), ``conj`` and ``real_if_close`` copy, ``imag`` (0) and ``angle`` (0 or pi) are flat.
real = primitive(lambda x: np.real(x)[...], "real", view=True)
defvjp(real, lambda ans, x: _identity, saves=())

conj = primitive(np.conj, "conj")
defvjp(conj, lambda ans, x: _identity, saves=())
conjugate = conj

real_if_close = primitive(lambda x, tol=100: np.array(np.real_if_close(x, tol)), "real_if_close")
defvjp(real_if_close, lambda ans, x, tol=100: _identity, saves=())

imag = primitive(lambda x: np.array(np.imag(x)), "imag")
defvjp(imag, _zero_vjp, saves=())

angle = primitive(np.angle, "angle")
defvjp(angle, _zero_vjp, saves=())

# log2(2**x + 2**y): each input's share is 2 ** (input - result).
logaddexp2 = primitive(np.logaddexp2, "logaddexp2", broadcasting=True)
defvjp(logaddexp2, lambda ans, x, y: lambda g: g * np.exp2(x - ans),
       lambda ans, x, y: lambda g: g * np.exp2(y - ans))

# maximum/minimum that skip NaNs: a NaN operand loses, ties split as in maximum and minimum.
fmax = primitive(np.fmax, "fmax", broadcasting=True)
defvjp(fmax, lambda ans, x, y: lambda g: g * _balanced((x > y) | np.isnan(y), x == y),
       lambda ans, x, y: lambda g: g * _balanced((y > x) | np.isnan(x) & ~np.isnan(y), x == y))

fmin = primitive(np.fmin, "fmin", broadcasting=True)
defvjp(fmin, lambda ans, x, y: lambda g: g * _balanced((x < y) | np.isnan(y), x == y),
       lambda ans, x, y: lambda g: g * _balanced((y < x) | np.isnan(x) & ~np.isnan(y), x == y))

# NaN and ±inf are replaced by constants: only finite elements pass a gradient. No ``copy=``:
# NumPy's ``copy=False`` writes the input in place.
nan_to_num = primitive(lambda x, *, nan=0.0, posinf=None, neginf=None:
                       np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf), "nan_to_num")
defvjp(nan_to_num, lambda ans, x, **kw: lambda g: g * np.isfinite(x))


def _cross_vjp(argnum: int, a: Any, b: Any, axisa: int, axisb: int, axisc: int,
               axis: int | None) -> Any:
    # <g, a × b> = <a, b × g> = <b, g × a>, in 3-vectors (a 2-vector has a zero z); the result
    # is cut back to the operand's length and summed over the axes broadcasting added. Each
    # operand's VJP reads the other operand's values and its own shape only.
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    planar = a.shape[-1] == 2 and b.shape[-1] == 2

    def vec3(v: Any) -> Any:
        return v if v.shape[-1] == 3 else np.concatenate([v, np.zeros_like(v[..., :1])], -1)

    def vjp(g: Any) -> Any:
        if planar:  # the result was the z-component alone
            g3 = np.stack([np.zeros_like(g), np.zeros_like(g), g], -1)
        else:
            g3 = np.moveaxis(g, axisc, -1)
        own = a if argnum == 0 else b
        full = np.cross(vec3(b), g3) if argnum == 0 else np.cross(g3, vec3(a))
        return np.moveaxis(sum_to(full[..., :own.shape[-1]], own.shape), -1,
                           axisa if argnum == 0 else axisb)

    return vjp


cross = primitive(np.cross, "cross")
defvjp(cross, lambda ans, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None:
       _cross_vjp(0, a, b, axisa, axisb, axisc, axis),
       lambda ans, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None:
       _cross_vjp(1, a, b, axisa, axisb, axisc, axis), saves=((1,), (0,)))


def _partition(x: Any, kth: Any, axis: Any = -1) -> Any:
    # Gathered by np.argpartition's order, so that the VJP routes each element back by the
    # same indices (the values are np.partition's).
    flat = x.reshape(-1) if axis is None else x
    ax = -1 if axis is None else axis
    return np.take_along_axis(flat, np.argpartition(flat, kth, axis=ax), ax)


def _unpartition(x: Any, kth: Any, axis: Any, g: Any) -> Any:
    flat = x.reshape(-1) if axis is None else x
    ax = -1 if axis is None else axis
    out = np.empty(flat.shape, dtype=g.dtype)
    np.put_along_axis(out, np.argpartition(flat, kth, axis=ax), g, ax)
    return out.reshape(x.shape)


partition = primitive(_partition, "partition")
defvjp(partition, lambda ans, x, kth, axis=-1: lambda g: _unpartition(x, kth, axis, g))


def _shape(a: Any) -> tuple[int, ...]:
    return a.shape if isinstance(a, Array) else np.shape(a)


def kron(a: Any, b: Any) -> Array:
    """NumPy's ``kron``: every element of ``a`` times all of ``b``, in blocks.

    One broadcast product of ``a`` and ``b`` with interleaved unit axes, reshaped into blocks,
    so the gradient is that of a product.

    Example:
        >>> kron(array([1.0, 2.0]), np.array([1.0, 10.0])).numpy()
        array([ 1., 10.,  2., 20.])
    """
    a, b = _operand(a), _operand(b)
    nd = builtins.max(_ndim(a), _ndim(b))
    sa = (1,) * (nd - _ndim(a)) + _shape(a)
    sb = (1,) * (nd - _ndim(b)) + _shape(b)
    product = (reshape(a, [n for s in sa for n in (s, 1)])
               * reshape(b, [n for s in sb for n in (1, s)]))
    return reshape(product, tuple(m * n for m, n in zip(sa, sb, strict=True)))


def rollaxis(a: Any, axis: int, start: int = 0) -> Array:
    """NumPy's ``rollaxis``: axis ``axis`` moved to stand before ``start`` (a view).

    Example:
        >>> rollaxis(array(np.ones((2, 3, 4))), 2).shape
        (4, 2, 3)
    """
    n = _ndim(a)
    axis = _axis_index(axis, n)
    if not -n <= start <= n:
        raise ValueError(f"rollaxis: start={start} must be in [-{n}, {n}] for an array of "
                         f"{n} dimensions")
    start = start + n if start < 0 else start
    return moveaxis(a, axis, start - 1 if axis < start else start)


def _at_least(shapes: Callable[[tuple[int, ...]], tuple[int, ...]], arys: tuple[Any, ...]
              ) -> Any:
    out = []
    for a in arys:
        a = asarray(a)
        target = shapes(a.shape)
        out.append(a if target == a.shape else reshape(a, target))
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys: Any) -> Any:
    """NumPy's ``atleast_1d``: a 0-d array as shape ``(1,)`` (a view); one array per argument.

    Example:
        >>> atleast_1d(array(2.0)).shape
        (1,)
    """
    return _at_least(lambda s: s or (1,), arys)


def atleast_2d(*arys: Any) -> Any:
    """NumPy's ``atleast_2d``: a vector becomes a ``(1, n)`` row, a scalar ``(1, 1)`` (views).

    Example:
        >>> atleast_2d(array([1.0, 2.0])).shape
        (1, 2)
    """
    return _at_least(lambda s: (1,) * (2 - len(s)) + s if len(s) < 2 else s, arys)


def atleast_3d(*arys: Any) -> Any:
    """NumPy's ``atleast_3d``: ``(n,)`` becomes ``(1, n, 1)``, ``(m, n)`` ``(m, n, 1)`` (views).

    Example:
        >>> atleast_3d(array([1.0, 2.0])).shape
        (1, 2, 1)
    """
    return _at_least(lambda s: {0: (1, 1, 1), 1: (1, *s, 1), 2: (*s, 1)}.get(len(s), s), arys)


def flipud(m: Any) -> Array:
    """Reverses axis 0 (a view).

    Example:
        >>> flipud(array([1.0, 2.0])).numpy()
        array([2., 1.])
    """
    if _ndim(m) < 1:
        raise ValueError("flipud reverses axis 0, so it needs an array of 1 or more dimensions")
    return flip(m, 0)


def fliplr(m: Any) -> Array:
    """Reverses axis 1 (a view).

    Example:
        >>> fliplr(array([[1.0, 2.0]])).numpy()
        array([[2., 1.]])
    """
    if _ndim(m) < 2:
        raise ValueError("fliplr reverses axis 1, so it needs an array of 2 or more dimensions")
    return flip(m, 1)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Array:
    """Rotates by 90° ``k`` times in the plane of ``axes`` (a flip and a transpose: a view).

    Example:
        >>> rot90(array([[1.0, 2.0], [3.0, 4.0]])).numpy()
        array([[2., 4.],
               [1., 3.]])
    """
    n = _ndim(m)
    if len(axes) != 2:
        raise ValueError(f"rot90 takes two axes (the plane to rotate in); got {axes!r}")
    first, second = (_axis_index(ax, n) for ax in axes)
    if first == second:
        raise ValueError(f"rot90 needs two different axes; got {axes!r}")
    k %= 4
    if k == 0:
        return getitem(m, ...)
    if k == 2:
        return flip(flip(m, first), second)
    order = list(range(n))
    order[first], order[second] = second, first
    return transpose(flip(m, second), order) if k == 1 else flip(transpose(m, order), second)


def _split_along(name: str, axis: int, min_ndim: int, ary: Any, indices_or_sections: Any
                 ) -> list[Array]:
    if _ndim(ary) < min_ndim:
        raise ValueError(f"{name} splits axis {axis}, so it needs an array of {min_ndim} or "
                         f"more dimensions; got {_ndim(ary)}")
    return split(ary, indices_or_sections, axis=axis)


def hsplit(ary: Any, indices_or_sections: Any) -> list[Array]:
    """``split`` along axis 1 (axis 0 of a vector): views.

    Example:
        >>> [p.shape for p in hsplit(array(np.ones((2, 4))), 2)]
        [(2, 2), (2, 2)]
    """
    return _split_along("hsplit", 1 if _ndim(ary) > 1 else 0, 1, ary, indices_or_sections)


def vsplit(ary: Any, indices_or_sections: Any) -> list[Array]:
    """``split`` along axis 0 of an array of 2 or more dimensions: views.

    Example:
        >>> [p.shape for p in vsplit(array(np.ones((4, 2))), [1])]
        [(1, 2), (3, 2)]
    """
    return _split_along("vsplit", 0, 2, ary, indices_or_sections)


def dsplit(ary: Any, indices_or_sections: Any) -> list[Array]:
    """``split`` along axis 2 of an array of 3 or more dimensions: views.

    Example:
        >>> [p.shape for p in dsplit(array(np.ones((1, 1, 4))), 2)]
        [(1, 1, 2), (1, 1, 2)]
    """
    return _split_along("dsplit", 2, 3, ary, indices_or_sections)


def column_stack(tup: Any) -> Array:
    """Joins arrays as columns: vectors (and scalars) become columns, matrices join on axis 1.

    Example:
        >>> column_stack([array([1.0, 2.0]), np.zeros((2, 2))]).shape
        (2, 3)
    """
    columns = [_operand(a) for a in tup]
    return concatenate([reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in columns], axis=1)


row_stack = vstack


def append(arr: Any, values: Any, axis: int | None = None) -> Array:
    """NumPy's ``append``: ``values`` joined after ``arr`` on ``axis`` (both flattened for None).

    Example:
        >>> append(array([1.0, 2.0]), 3.0).numpy()
        array([1., 2., 3.])
    """
    arr, values = _operand(arr), _operand(values)
    if axis is None:
        # Copies (not reshape): the result copies anyway, and a view's reshape would warn.
        arr, values = (flatten(a) if isinstance(a, Array) else np.ravel(a) for a in (arr, values))
        axis = 0
    return concatenate([arr, values], axis=axis)


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Array:
    """NumPy's ``diff``: the ``n``-th forward difference along ``axis`` (``None``: no edge added).

    Each difference subtracts two overlapping views, so the gradient is exact.

    Raises:
        ValueError: a negative ``n``, or a 0-d ``a``.

    Example:
        >>> diff(array([1.0, 4.0, 9.0]), prepend=0.0).numpy()
        array([1., 3., 5.])
    """
    if n < 0:
        raise ValueError(f"diff takes an order n >= 0; got {n}")
    if n == 0:
        return a
    a = _operand(a)
    if _ndim(a) == 0:
        raise ValueError("diff differences along an axis, so it needs an array of 1 or more "
                         "dimensions")
    axis = _axis_index(axis, _ndim(a))
    edge_shape = tuple(1 if k == axis else s for k, s in enumerate(_shape(a)))

    def edge(e: Any) -> Any:
        e = _operand(e)
        return e if _ndim(e) else broadcast_to(e, edge_shape)

    if prepend is not None or append is not None:
        a = concatenate([*([edge(prepend)] if prepend is not None else []), a,
                         *([edge(append)] if append is not None else [])], axis=axis)
    head = (slice(None),) * axis
    step = not_equal if a.dtype == np.bool_ else subtract
    for _ in range(n):
        a = step(getitem(a, (*head, slice(1, None))), getitem(a, (*head, slice(None, -1))))
    return a


def _gradient_along(f: Any, axis: int, spacing: Any, edge_order: int) -> Array:
    """``np.gradient`` along one axis, written with views of ``f`` (NumPy's stencils)."""
    n = _shape(f)[axis]
    if n < edge_order + 1:
        raise ValueError(f"gradient with edge_order={edge_order} needs at least "
                         f"{edge_order + 1} samples along axis {axis}; got {n}")
    if np.ndim(spacing) == 0:
        dx: Any = float(spacing)
    else:
        coords = np.asarray(spacing)
        coords = coords.astype(np.float64) if coords.dtype.kind in "iub" else coords
        if coords.shape != (n,):
            raise ValueError(f"gradient's coordinates for axis {axis} must have shape ({n},) "
                             f"(one per sample); got {coords.shape}")
        dx = np.diff(coords)
        dx = dx[0] if np.all(dx == dx[0]) else dx  # evenly spaced: NumPy's uniform stencil
    head = (slice(None),) * axis
    tail = (1,) * (_ndim(f) - axis - 1)

    def at(start: int | None, stop: int | None) -> Array:
        return getitem(f, (*head, slice(start, stop)))

    def along(c: Any) -> Any:
        return np.reshape(c, np.shape(c) + tail)

    if np.ndim(dx) == 0:
        interior = (at(2, None) - at(None, -2)) / (2.0 * dx)
        if edge_order == 1:
            first = (at(1, 2) - at(0, 1)) / dx
            last = (at(-1, None) - at(-2, -1)) / dx
        else:
            first = -1.5 / dx * at(0, 1) + 2.0 / dx * at(1, 2) - 0.5 / dx * at(2, 3)
            last = 0.5 / dx * at(-3, -2) - 2.0 / dx * at(-2, -1) + 1.5 / dx * at(-1, None)
        return concatenate([first, interior, last], axis=axis)
    d1, d2 = dx[:-1], dx[1:]
    interior = (along(-d2 / (d1 * (d1 + d2))) * at(None, -2)
                + along((d2 - d1) / (d1 * d2)) * at(1, -1)
                + along(d1 / (d2 * (d1 + d2))) * at(2, None))
    if edge_order == 1:
        first = (at(1, 2) - at(0, 1)) / dx[0]
        last = (at(-1, None) - at(-2, -1)) / dx[-1]
    else:
        d1, d2 = dx[0], dx[1]
        first = (-(2.0 * d1 + d2) / (d1 * (d1 + d2)) * at(0, 1)
                 + (d1 + d2) / (d1 * d2) * at(1, 2) - d1 / (d2 * (d1 + d2)) * at(2, 3))
        d1, d2 = dx[-2], dx[-1]
        last = (d2 / (d1 * (d1 + d2)) * at(-3, -2) - (d2 + d1) / (d1 * d2) * at(-2, -1)
                + (2.0 * d2 + d1) / (d2 * (d1 + d2)) * at(-1, None))
    return concatenate([first, interior, last], axis=axis)


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """NumPy's ``gradient``: central differences inside, one-sided at the edges.

    ``varargs`` are the spacings (constants): none (1), one scalar for every axis, or one per
    axis, each a scalar or the samples' coordinates. The stencils are sums of views of ``f``
    with constant weights, so the result is differentiable in ``f``.

    Returns:
        One array for one axis, else a tuple of one array per axis (as NumPy).

    Raises:
        ValueError: ``edge_order`` is not 1 or 2, an axis is too short for it, or coordinates
            do not match the axis.
        TypeError: the number of spacings matches neither 1 nor the number of axes.

    Example:
        >>> gradient(array([1.0, 4.0, 9.0, 16.0])).numpy()
        array([3., 4., 6., 7.])
    """
    f = _operand(f)
    n = _ndim(f)
    if axis is None:
        axes = tuple(range(n))
    else:
        axes = tuple(_axis_index(ax, n)
                     for ax in (axis if isinstance(axis, tuple | list) else (axis,)))
    if edge_order not in (1, 2):
        raise ValueError(f"gradient's edge_order must be 1 or 2; got {edge_order}")
    if not varargs:
        spacings: tuple[Any, ...] = (1.0,) * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacings = varargs * len(axes)
    elif len(varargs) == len(axes):
        spacings = varargs
    else:
        raise TypeError(f"gradient takes no spacing, one scalar, or one spacing per axis "
                        f"({len(axes)}); got {len(varargs)}")
    out = tuple(_gradient_along(f, ax, h, edge_order) for ax, h in zip(axes, spacings,
                                                                         strict=True))
    return out[0] if len(out) == 1 else out


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    """NumPy's ``linspace``, differentiable in ``start`` and ``stop`` (numbers or arrays).

    ``start + arange(num) * (stop - start) / div`` as NumPy computes it, with the last sample
    ``stop`` itself when ``endpoint``.

    Raises:
        ValueError: a negative ``num``.

    Example:
        >>> linspace(array(0.0), array(1.0), 3).numpy()
        array([0. , 0.5, 1. ])
    """
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"linspace takes num >= 0 samples; got {num}")
    div = num - 1 if endpoint else num
    kind = np.result_type(*(a.dtype if isinstance(a, Array) else a for a in (start, stop)),
                          float(num))
    delta = subtract(stop, start)
    steps = np.arange(num, dtype=kind).reshape((-1,) + (1,) * delta.ndim)
    step: Any = delta / div if div > 0 else np.nan
    y = (steps * step if div > 0 else steps * delta) + start
    if endpoint and num > 1:
        last = reshape(broadcast_to(stop, y.shape[1:]), (1, *y.shape[1:]))
        y = concatenate([getitem(y, slice(None, -1)), last])
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None:
        y = astype(floor(y) if np.dtype(dtype).kind in "iu" else y, dtype)
    return (y, step) if retstep else y


def select(condlist: Any, choicelist: Any, default: Any = 0) -> Array:
    """NumPy's ``select``: per element, the choice of the first true condition, else ``default``.

    A chain of ``where`` from the last condition to the first: differentiable in the choices
    and the default.

    Raises:
        ValueError: the two lists differ in length, or are empty.
        TypeError: a condition is not boolean.

    Example:
        >>> x = array([-1.0, 2.0])
        >>> select([x < 0, x > 1], [-x, 10 * x], default=0.0).numpy()
        array([ 1., 20.])
    """
    if len(condlist) != len(choicelist):
        raise ValueError(f"select takes one choice per condition; got {len(condlist)} "
                         f"conditions and {len(choicelist)} choices")
    if not condlist:
        raise ValueError("select needs at least one condition")
    for i, cond in enumerate(condlist):
        kind = cond.dtype if isinstance(cond, Array) else np.asarray(cond).dtype
        if kind != np.bool_:
            raise TypeError(f"select's condition {i} must be a boolean array; got dtype {kind}")
    result = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist), strict=True):
        result = where(cond, choice, result)
    return result


class _IndexConcatenator:
    """NumPy's ``r_`` and ``c_``: ``r_[a, b, 1:4]`` joins arrays, numbers and ranges.

    Each item becomes an array of at least ``ndmin`` dimensions (a slice becomes NumPy's
    range) and the items are joined along ``axis``, differentiably. A leading string
    ``"axis,ndmin,trans1d"`` overrides the defaults, as in NumPy; the matrix directives
    ``"r"`` and ``"c"`` are not supported.

    Example:
        >>> r_[array([1.0]), 2.0, 0:2].numpy()
        array([1., 2., 0., 1.])
        >>> c_[array([1.0, 2.0]), np.zeros(2)].shape
        (2, 2)
    """

    def __init__(self, axis: int, ndmin: int, trans1d: int) -> None:
        self.axis, self.ndmin, self.trans1d = axis, ndmin, trans1d

    def __getitem__(self, key: Any) -> Array:
        items = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        if items and isinstance(items[0], str):
            try:
                values = [int(v) for v in items[0].split(",")]
            except ValueError:
                values = []
            if not 1 <= len(values) <= 3:
                raise ValueError(f"an r_/c_ directive is 'axis[,ndmin[,trans1d]]' in integers; "
                                 f"got {items[0]!r} (matrix directives are not supported)")
            axis, ndmin, trans1d = (*values, *(axis, ndmin, trans1d)[len(values):])
            items = items[1:]
        return concatenate([self._part(item, ndmin, trans1d) for item in items], axis=axis)

    @staticmethod
    def _part(item: Any, ndmin: int, trans1d: int) -> Any:
        a = np.r_[item] if isinstance(item, slice) else _operand(item)
        missing = ndmin - _ndim(a)
        if missing <= 0:
            return a
        a = reshape(a, (1,) * missing + _shape(a))
        if trans1d == -1:
            return a
        # NumPy's rule: the item's own axes move to start at ``trans1d``.
        start = trans1d + missing + 1 if trans1d < 0 else trans1d
        axes = list(range(ndmin))
        return transpose(a, axes[:start] + axes[missing:] + axes[start:missing])


r_ = _IndexConcatenator(0, 1, -1)
c_ = _IndexConcatenator(-1, 2, 0)


# --- Array's operators and methods are the primitives above -----------------------------------


def _swap(prim: Any) -> Any:
    def reflected(self: Array, other: Any) -> Array:
        return prim(other, self)

    reflected.__name__ = f"__r{prim.__name__}__"
    return reflected


def _method(prim: Any) -> Any:
    def method(self: Array, axis: Any = None, keepdims: bool = False) -> Array:
        return prim(self, axis=axis, keepdims=keepdims)

    method.__name__ = prim.__name__
    method.__doc__ = f"``toolkit.tape.numpy.{prim.__name__}(self, axis, keepdims)``."
    return method


def _bound(func: Any) -> Any:
    def method(self: Array, *args: Any, **kwargs: Any) -> Array:
        return func(self, *args, **kwargs)

    method.__name__ = func.__name__
    method.__doc__ = f"``toolkit.tape.numpy.{func.__name__}(self, ...)``."
    return method


def _reshape_method(self: Array, *shape: Any) -> Array:
    """A view with a new shape (``a.reshape(2, 3)`` or ``a.reshape((2, 3))``)."""
    return reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose_method(self: Array, *axes: Any) -> Array:
    """A view with permuted axes (reversed when none are given)."""
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], tuple | list)):
        axes = axes[0]
    return transpose(self, tuple(axes) if axes else None)


Array.__add__ = add
Array.__radd__ = _swap(add)
Array.__sub__ = subtract
Array.__rsub__ = _swap(subtract)
Array.__mul__ = multiply
Array.__rmul__ = _swap(multiply)
Array.__truediv__ = divide
Array.__rtruediv__ = _swap(divide)
Array.__pow__ = power
Array.__rpow__ = _swap(power)
Array.__matmul__ = matmul
Array.__rmatmul__ = _swap(matmul)
Array.__neg__ = negative
Array.__abs__ = abs
Array.__pos__ = lambda self: self
Array.__gt__ = greater
Array.__ge__ = greater_equal
Array.__lt__ = less
Array.__le__ = less_equal
Array.__eq__ = equal
Array.__ne__ = not_equal
Array.__hash__ = None  # arrays compare elementwise, like NumPy's: group them by id()
Array.__getitem__ = getitem
Array.T = property(lambda self: transpose(self), doc="The transpose (a view).")
Array.transpose = _transpose_method
Array.reshape = _reshape_method
Array.astype = astype
Array.sum = _method(sum)
Array.mean = _method(mean)
Array.max = _method(max)
Array.min = _method(min)
Array.__mod__ = mod
Array.__rmod__ = _swap(mod)
Array.prod = _method(prod)
for _prim in (var, std, cumsum, clip, ravel, flatten, squeeze, repeat, diagonal, trace, dot,
              swapaxes, argmax, argmin, argsort):
    setattr(Array, _prim.__name__, _bound(_prim))
del _prim

SUPPORTED = tuple(sorted(
    name for name, value in globals().items() if not name.startswith("_")
    and (callable(value) or isinstance(value, _IndexConcatenator))
    and name not in {"annotations", "Any", "Array", "Callable", "REGISTRY", "defvjp",
                     "defvjp_argnum", "nondifferentiable", "primitive", "sum_to"}
))


class UnsupportedFunctionError(TypeError, AttributeError):
    """A NumPy name the tape does not differentiate (a ``TypeError``; ``hasattr`` is False)."""


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedFunctionError(
        f"toolkit.tape.numpy.{name} is not supported (NumPy's {name} has no VJP here); "
        f"supported: {', '.join(SUPPORTED)}"
    )


__all__ = [*SUPPORTED, "REGISTRY", "e", "inf", "nan", "newaxis", "pi"]
