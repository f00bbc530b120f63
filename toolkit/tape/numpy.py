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

from typing import Any

import numpy as np

from toolkit.tape import _core
from toolkit.tape._core import (
    REGISTRY,
    Array,
    _identity,
    _new,
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
defvjp(multiply, lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * x)

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
defvjp(matmul, lambda ans, x, y: _matmul_vjp(0, x, y), lambda ans, x, y: _matmul_vjp(1, x, y))


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
defvjp(logsumexp, lambda ans, x, axis=None, keepdims=False:
       lambda g: _unreduce(g, x, axis, keepdims) * np.exp(x - _unreduce(ans, x, axis, keepdims)))


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


def _plain_index(index: Any) -> Any:
    if isinstance(index, Array):
        return index._data
    if isinstance(index, tuple):
        return tuple(p._data if isinstance(p, Array) else p for p in index)
    return index


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
    index = _plain_index(index)
    if _is_basic(index):
        return _getitem_view(x, _element_index(index))
    return _getitem_copy(x, index)


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
    a = _new(buf)
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
    return _new(np.zeros(shape, dtype=dtype))


def ones(shape: Any, dtype: Any = np.float64) -> Array:
    """A constant array of ones.

    Example:
        >>> ones(2).numpy()
        array([1., 1.])
    """
    return _new(np.ones(shape, dtype=dtype))


def zeros_like(a: Any, dtype: Any = None) -> Array:
    """A constant array of zeros shaped like ``a``.

    Example:
        >>> zeros_like(array([1.0])).numpy()
        array([0.])
    """
    return _new(np.zeros(a.shape if isinstance(a, Array) else np.shape(a),
                         dtype=dtype or getattr(a, "dtype", np.float64)))


def ones_like(a: Any, dtype: Any = None) -> Array:
    """A constant array of ones shaped like ``a``.

    Example:
        >>> ones_like(array([1.0])).numpy()
        array([1.])
    """
    return _new(np.ones(a.shape if isinstance(a, Array) else np.shape(a),
                        dtype=dtype or getattr(a, "dtype", np.float64)))


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = np.float64) -> Array:
    """A constant array with ones on diagonal ``k`` (NumPy's signature).

    Example:
        >>> eye(2, k=1).numpy()
        array([[0., 1.],
               [0., 0.]])
    """
    return _new(np.eye(N, M, k=k, dtype=dtype))


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
defvjp(std, lambda ans, x, axis=None, *, ddof=0, keepdims=False:
       lambda g: _unreduce(g / ans, x, axis, keepdims) / (_count(ans, x) - ddof)
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


def _einsum(subscripts: Any, *operands: Any, **kwargs: Any) -> Any:
    if not isinstance(subscripts, str):
        raise TypeError("toolkit.tape.numpy.einsum takes a subscripts string first, as in "
                        "einsum('ij,jk->ik', a, b); the (operand, sublist, ...) form is not "
                        "supported")
    return np.einsum(subscripts, *operands, **kwargs)


einsum = primitive(_einsum, "einsum")
einsum.__doc__ = """NumPy's ``einsum`` with the subscripts string (explicit, implicit or ``...``).

Each operand's gradient is an einsum of the cotangent with the other operands.

Example:
    >>> einsum("ij,j->i", array([[1.0, 2.0]]), np.ones(2)).numpy()
    array([3.])
"""
# The VJPs read every operand (NumPy's einsum takes at most 64).
defvjp_argnum(einsum, lambda i, ans, subscripts, *operands, **kw:
              _einsum_vjp(i - 1, subscripts, operands), saves=tuple(range(1, 65)))


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


def _unsort(x: Any, axis: Any, g: Any) -> Any:
    """Puts each sorted element's cotangent back where that element came from."""
    if axis is None:
        flat = np.empty(x.size, dtype=g.dtype)
        flat[np.argsort(x, axis=None, kind="stable")] = g
        return flat.reshape(x.shape)
    out = np.empty(x.shape, dtype=g.dtype)
    np.put_along_axis(out, np.argsort(x, axis=axis, kind="stable"), g, axis)
    return out


sort = primitive(lambda x, axis=-1: np.sort(x, axis=axis, kind="stable"), "sort")
defvjp(sort, lambda ans, x, axis=-1: lambda g: _unsort(x, axis, g))
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
    name for name, value in globals().items() if not name.startswith("_") and callable(value)
    and name not in {"annotations", "Any", "Array", "REGISTRY", "defvjp", "defvjp_argnum",
                     "nondifferentiable", "primitive", "sum_to"}
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
