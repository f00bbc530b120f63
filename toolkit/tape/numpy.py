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

from toolkit.tape._core import (
    REGISTRY,
    Array,
    _identity,
    _new,
    array,
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


power = primitive(np.power, "power", broadcasting=True)
defvjp(power, lambda ans, x, y: lambda g: g * y * np.power(x, y - 1),
       lambda ans, x, y: lambda g: g * _log_or_zero(x) * ans)

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
    """NumPy's ``dot`` for scalars, vectors and matrices (``matmul`` for 1-d/2-d operands).

    Raises:
        ValueError: an operand has more than 2 dimensions (use ``matmul`` or ``sum``).

    Example:
        >>> float(dot(array([1.0, 2.0]), array([3.0, 4.0])))
        11.0
    """
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise ValueError("toolkit.tape.numpy.dot supports up to 2-d operands; use matmul")
    return matmul(a, b)


# --- reductions -------------------------------------------------------------------------------

def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # np.add.reduce skips np.sum's Python wrapper (most of its cost on small arrays); integer
    # and bool sums keep np.sum's promotion.
    if x.dtype.kind == "f":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


sum = primitive(_sum, "sum")
defvjp(sum, lambda ans, x, axis=None, keepdims=False, **kw:
       lambda g: _unreduce(g, x, axis, keepdims), saves=())

def _mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    total = _sum(x, axis=axis, keepdims=keepdims)
    # An empty input keeps np.mean's answer (nan, with its warning).
    return total / (x.size // np.size(total)) if x.size else np.mean(x, axis=axis)


mean = primitive(_mean, "mean")
defvjp(mean, lambda ans, x, axis=None, keepdims=False, **kw:
       lambda g: _unreduce(g, x, axis, keepdims) * (np.size(ans) / (x.size or 1)), saves=())


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

reshape = primitive(np.reshape, "reshape", view=True)
defvjp(reshape, lambda ans, x, *a, **kw: lambda g: np.reshape(g, x.shape), saves=())

transpose = primitive(np.transpose, "transpose", view=True)
defvjp(transpose, lambda ans, x, axes=None:
       lambda g: np.transpose(g, None if axes is None else np.argsort([a % x.ndim for a in axes])),
       saves=())

swapaxes = primitive(np.swapaxes, "swapaxes", view=True)
defvjp(swapaxes, lambda ans, x, a, b: lambda g: np.swapaxes(g, a, b), saves=())

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
# The cotangent is rounded to the result's dtype first, as JAX does for a float32 cast.
defvjp(astype, lambda ans, x, dtype: lambda g: np.asarray(g).astype(ans.dtype).astype(x.dtype),
       saves=())

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
    return _concatenate(axis, *arrays)


_stack = primitive(lambda axis, *xs: np.stack(xs, axis=axis), "stack")
defvjp_argnum(_stack, lambda i, ans, axis, *xs: lambda g: np.take(g, i - 1, axis=axis))


def stack(arrays: Any, axis: int = 0) -> Array:
    """Joins arrays along a new axis.

    Example:
        >>> stack([array([1.0]), np.zeros(1)]).shape
        (2, 1)
    """
    return _stack(axis, *arrays)


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


def getitem(x: Any, index: Any) -> Array:
    """``x[index]``: basic indexing is a view; integer-array or mask indexing copies.

    Example:
        >>> getitem(array([1.0, 2.0, 3.0]), [0, 0]).numpy()
        array([1., 1.])
    """
    index = _plain_index(index)
    return (_getitem_view if _is_basic(index) else _getitem_copy)(x, index)


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


def asarray(data: Any, dtype: Any = None) -> Array:
    """``data`` as an Array: an Array passes through (cast differentiably), anything else is copied.

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
