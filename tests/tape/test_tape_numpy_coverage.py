"""How much of HIPS autograd's own NumPy test suite the tape's NumPy namespace covers.

``AUTOGRAD_CASES`` lists every real-valued gradient case of autograd's ``tests/test_numpy.py``
and ``tests/test_systematic.py`` (one entry per test function; the complex-only halves of its
ufunc checks are left out, and ``test_numpy_version`` checks no gradient) with the NumPy
functions, operators and calling forms it exercises. A case is supported when every one of
them is: a name must be a public function of ``toolkit.tape.numpy``, a calling form (a key of
``FORMS``) must run under ``tp.gradient`` and give the gradient that float64 finite
differences give. The unsupported share must stay under 10 %; the test's message lists the
cases that remain.

The functions themselves are checked against ``jax.grad`` and finite differences in
``test_tape_ops.py``; this file measures breadth, not correctness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from tape_fd import finite_difference

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

_STATS = ("max", "all", "any", "mean", "min", "sum", "prod", "var", "std")
_UNARY = ("sin", "abs", "absolute", "arccosh", "arcsinh", "arctanh", "ceil", "cos", "cosh",
          "deg2rad", "degrees", "exp", "exp2", "expm1", "fabs", "floor", "log", "log10",
          "log1p", "log2", "rad2deg", "radians", "sign", "sinh", "sqrt", "square", "tan",
          "tanh", "real", "real_if_close", "imag", "conj", "angle")

# case -> the functions (``toolkit.tape.numpy`` names) and calling forms (``FORMS`` keys) it uses
AUTOGRAD_CASES: dict[str, tuple[str, ...]] = {
    # tests/test_systematic.py
    **{f"systematic:{name}": (name,) for name in _STATS + _UNARY},
    **{f"systematic:{case}": names for case, names in {
        "add": ("add",), "logaddexp": ("logaddexp",), "logaddexp2": ("logaddexp2",),
        "remainder": ("remainder",), "true_divide": ("true_divide",), "mod": ("mod",),
        "true_divide_neg": ("true_divide",), "mod_neg": ("mod",), "op_mul": ("multiply",),
        "op_add": ("add",), "op_sub": ("subtract",), "op_mod": ("mod",),
        "op_mod_neg": ("mod",), "transpose": ("transpose",), "repeat": ("repeat",),
        "diff": ("diff",), "tile": ("tile",), "kron": ("kron",), "inner": ("inner",),
        "dot": ("dot",), "matmul": ("matmul",),
        **{f"tensordot_{i}": ("tensordot",) for i in range(1, 7)},
        "maximum": ("maximum",), "fmax": ("fmax",), "minimum": ("minimum",),
        "fmin": ("fmin",), "sort": ("sort",), "msort": ("msort",),
        "partition": ("partition",), "atleast_1d": ("atleast_1d",),
        "atleast_2d": ("atleast_2d",), "atleast_3d": ("atleast_3d",),
        **{f"einsum_{k}": ("einsum",) for k in (
            "transpose", "matmult", "matmult_broadcast", "covsum", "ellipses",
            "ellipses_tail", "ellipses_center", "three_args")},
        **{f"einsum2_{k}": ("einsum sublists",) for k in (
            "transpose", "matmult", "matmult_broadcast", "covsum", "three_args")},
        "trace": ("trace",), "diag": ("diag",), "diag_flat": ("diag",), "tril": ("tril",),
        "triu": ("tril",), "tril_3d": ("tril",), "triu_3d": ("tril",),
        "swapaxes": ("swapaxes",), "rollaxis": ("rollaxis",), "cross": ("cross",),
        "vsplit_2d": ("vsplit",), "vsplit_3d": ("vsplit",), "hsplit_2d": ("hsplit",),
        "hsplit_3d": ("hsplit",), "dsplit_3d": ("dsplit",), "split_1d": ("split",),
        "split_2d": ("split",), "split_3d": ("split",), "array_split_1d": ("array_split",),
        "array_split_2d": ("array_split",), "array_split_3d": ("array_split",),
        "concatenate_1ist": ("concatenate",), "concatenate_tuple": ("concatenate",),
        "concatenate_2d": ("concatenate",), "concatenate_3d": ("concatenate",),
        "vstack_1d": ("vstack", "stacking an array's rows"), "vstack_2d": ("vstack",),
        "vstack_3d": ("vstack",), "hstack_1d": ("hstack", "stacking an array's rows"),
        "hstack_2d": ("hstack",), "hstack_3d": ("hstack",), "stack_1d": ("stack",),
        "row_stack_1d": ("row_stack", "stacking an array's rows"),
        "row_stack_2d": ("row_stack",), "column_stack_1d": ("column_stack",),
        "column_stack_2d": ("column_stack",), "select": ("select", "greater"),
    }.items()},
    # tests/test_numpy.py
    **{f"numpy:{case}": names for case, names in {
        "dot": ("dot",), "dot_with_floats": ("dot",), "outer": ("outer",),
        "max": ("max",), "max_axis": ("max",), "max_axis_keepdims": ("max",),
        "min": ("min",), "min_axis": ("min",), "min_axis_keepdims": ("min",),
        "sum_1": ("sum",), "sum_2": ("sum",), "sum_3": ("sum",),
        "sum_with_axis_tuple": ("sum",), "flipud": ("flipud",), "fliplr": ("fliplr",),
        "rot90": ("rot90",), "cumsum_axis0": ("cumsum",), "cumsum_axis1": ("cumsum",),
        "cumsum_1d": ("cumsum",), "cumsum_no_axis": ("cumsum",), "non_numpy_sum": ("add",),
        "mean_1": ("mean",), "mean_2": ("mean",), "mean_3": ("mean",),
        "mean_list_of_boxes": ("mean of a list",), "std_list_of_boxes": ("std of a list",),
        "var_list_of_boxes": ("var of a list",),
        **{f"index_{k}": ("getitem",) for k in (
            "ints", "slice", "lists", "mixed", "slice_fanout", "multiple_slices")},
        "vector_slice": ("getitem",), "reshape_method": ("reshape",),
        "reshape_call": ("reshape",), "reshape_method_nolist": ("reshape",),
        "ravel_method": ("ravel",), "ravel_call": ("ravel",), "flatten_method": ("flatten",),
        "simple_append_list": ("append",), "simple_append_arr": ("append",),
        "simple_append_list_2D": ("append",), "simple_concatenate": ("concatenate",),
        "concatenate_axis_0": ("concatenate",), "concatenate_axis_1": ("concatenate",),
        "concatenate_axis_1_unnamed": ("concatenate",), "trace": ("trace",),
        "trace2": ("trace",), "trace_extradims": ("trace",), "diag": ("diag",),
        "transpose": ("transpose",), "roll": ("roll",), "roll_no_axis": ("roll",),
        "triu": ("triu",), "tril": ("tril",), "clip": ("clip",),
        **{f"prod_{i}": ("prod",) for i in range(1, 5)},
        **{k: ("array",) for k in (
            "1d_array", "2d_array", "1d_array_fanout", "2d_array_fanout", "array_from_scalar",
            "array_from_arrays", "array_from_arrays_2")},
        "scalar_array_box_attributes": ("power",), "len": ("len",),
        **{f"r_{k}": ("r_",) for k in (
            "basic", "double", "no_relation", "node_and_const", "mixed", "slicing")},
        "no_relation": (), "c_": ("c_",), "c_mixed": ("c_",), "var_ddof": ("var",),
        "std_ddof": ("std",), "where": ("where", "greater"), "squeeze_func": ("squeeze",),
        "squeeze_method": ("squeeze",),
        **{f"repeat{k}": ("repeat",) for k in (
            "", "_axis1_rep1", "_axis0", "_1d_axis0", "_axis0_rep1")},
        "expand_dims": ("expand_dims",), "tensordot_kwargs_by_position": ("tensordot", "ones"),
        "multi_index": ("getitem", "sum"), "multi_index2": ("getitem", "sum"),
        "index_dot_slices": ("dot", "getitem"),
        "cast_to_int": ("concatenate", "casting with a dtype's constructor"),
        "make_diagonal": ("make_diagonal",), "diagonal": ("diagonal",),
        "nan_to_num": ("nan_to_num", "sin"), "max_equal_values": ("max", "array"),
        "max_equal_values_2d": ("max", "array"), "min_3_way_equality": ("min", "array"),
        "maximum_equal_values": ("maximum",), "maximum_equal_values_2d": ("maximum", "array"),
        "linspace": ("linspace",), "astype": ("astype", "sin"), "gradient": ("gradient",),
    }.items()},
}


def _x() -> tp.Array:
    return tp.array(np.random.default_rng(0).standard_normal(3))


# calling form -> a small program of a param ``x`` in that form (it must run and match FD)
FORMS: dict[str, Callable[[tp.Array], Any]] = {
    "einsum sublists": lambda x: tnp.einsum(x, [0], x, [0], []),
    "mean of a list": lambda x: tnp.mean([x[0], x[1] * 2]),
    "std of a list": lambda x: tnp.std([x[0], x[1] * 2]),
    "var of a list": lambda x: tnp.var([x[0], x[1] * 2]),
    "stacking an array's rows": lambda x: tnp.sum(tnp.vstack(x) * tnp.hstack(x)[:, None]),
    "len": lambda x: x * len(x),
    "casting with a dtype's constructor": lambda x: x[tnp.int64(tnp.abs(x) * 0.0)],
}


def _form_works(form: Callable[[tp.Array], Any]) -> bool:
    x = _x()
    def loss() -> tp.Array:
        return tnp.sum(form(x))
    try:
        g = tp.gradient(loss, tp.Params([x]))[x]
    except (TypeError, ValueError, AttributeError):
        return False
    return g is not None and np.allclose(g, finite_difference(loss, x), atol=1e-6)


def unsupported_cases() -> dict[str, list[str]]:
    """Each autograd case the tape cannot run, with what it lacks."""
    supported = set(tnp.SUPPORTED) | {name for name, form in FORMS.items() if _form_works(form)}
    missing = {case: [n for n in names if n not in supported]
               for case, names in AUTOGRAD_CASES.items()}
    return {case: lacks for case, lacks in missing.items() if lacks}


def test_forms_name_no_function_of_the_namespace() -> None:
    assert not set(FORMS) & set(tnp.SUPPORTED)
    used = {n for names in AUTOGRAD_CASES.values() for n in names}
    assert set(FORMS) <= used


def test_under_a_tenth_of_autograds_numpy_cases_are_unsupported() -> None:
    missing = unsupported_cases()
    share = len(missing) / len(AUTOGRAD_CASES)
    lines = "\n".join(f"  {case}: {', '.join(lacks)}" for case, lacks in sorted(missing.items()))
    assert share < 0.10, (f"{len(missing)} of {len(AUTOGRAD_CASES)} cases ({share:.1%}) "
                          f"unsupported:\n{lines}")
