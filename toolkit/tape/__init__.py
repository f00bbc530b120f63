"""The native tape: a NumPy reverse-mode engine with Zygote-style implicit ``Params``.

It differentiates functions of no arguments that close over their params, under one of two
alias policies: ``"identity"`` reproduces Zygote's implicit-``Params`` rules (a view made
outside the function is an independent leaf), ``"storage"`` gives every param the total
derivative w.r.t. the memory it sees. See ``docs/tape.md``.

Example:
    >>> import toolkit.tape as tp
    >>> from toolkit.tape import numpy as tnp
    >>> x = tp.array([1.0], name="x")
    >>> xt = tp.adjoint(x)  # a 1×1 view of x, made outside the function
    >>> xt.name = "xt"
    >>> f = lambda: tnp.sum(xt * x)
    >>> tp.gradient(f, tp.Params([x]))[x]  # Zygote: xt is a separate leaf
    array([1.])
    >>> tp.gradient(f, tp.Params([x]), alias="storage")[x]
    array([2.])
"""

from toolkit.tape import numpy
from toolkit.tape._core import REGISTRY, Array, defvjp, defvjp_argnum, primitive
from toolkit.tape._gradient import (
    ALIAS_POLICIES,
    gradient,
    jacobian,
    pullback,
    withgradient,
    withjacobian,
)
from toolkit.tape._params import AliasWarning, Grads, Params
from toolkit.tape.numpy import UnsupportedFunctionError, adjoint, array

__all__ = [
    "ALIAS_POLICIES",
    "REGISTRY",
    "AliasWarning",
    "Array",
    "Grads",
    "Params",
    "UnsupportedFunctionError",
    "adjoint",
    "array",
    "defvjp",
    "defvjp_argnum",
    "gradient",
    "jacobian",
    "numpy",
    "primitive",
    "pullback",
    "withgradient",
    "withjacobian",
]
