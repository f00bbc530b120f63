"""Clear errors: stale saved memory, non-scalar outputs, unsupported functions, bad Params."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import toolkit.tape as tp
from toolkit.tape import numpy as tnp


def test_write_between_pullback_and_back_names_the_array() -> None:
    w = tp.array([1.0, 2.0], name="w")
    _, back = tp.pullback(lambda: tnp.sum(w * w), tp.Params([w]))
    w -= 0.1  # an optimizer step
    with pytest.raises(RuntimeError, match=r"array 'w' was modified in place.*multiply"):
        back()


def test_write_through_a_view_bumps_the_base_version() -> None:
    x = tp.array([1.0, 2.0, 3.0], name="x")
    head = x[:2]
    _, back = tp.pullback(lambda: tnp.sum(tnp.square(x)), tp.Params([x]))
    head[...] = 0.0
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.0, 3.0])
    with pytest.raises(RuntimeError, match="array 'x'"):
        back()


def test_write_to_the_base_is_seen_through_a_saved_view() -> None:
    x = tp.array([[1.0, 2.0]], name="x")
    xt = x.T
    xt.name = "xt"
    _, back = tp.pullback(lambda: tnp.sum(xt * xt), tp.Params([xt]))
    x[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="array 'xt'"):
        back()


def test_a_write_nothing_saved_is_harmless() -> None:
    x = tp.array([1.0, 2.0])
    _, back = tp.pullback(lambda: tnp.sum(x + 1.0), tp.Params([x]))
    x += 1.0
    np.testing.assert_array_equal(back()[x], [1.0, 1.0])


def test_fresh_pullback_after_the_update_works() -> None:
    w = tp.array([1.0])
    ps = tp.Params([w])

    def loss() -> tp.Array:
        return tnp.sum(w * w)

    for _ in range(3):
        gs = tp.gradient(loss, ps)
        w -= 0.25 * gs[w]  # in place: ``w`` stays the same object
    np.testing.assert_allclose(w.numpy(), [0.125])


def test_non_scalar_output_needs_a_seed() -> None:
    x = tp.array([1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(2,\), not a scalar.*seed"):
        tp.gradient(lambda: x * x, tp.Params([x]))
    _, back = tp.pullback(lambda: x * x, tp.Params([x]))
    with pytest.raises(ValueError, match="seed has shape"):
        back(np.ones(3))
    np.testing.assert_array_equal(back(np.ones(2))[x], [2.0, 4.0])


def test_unsupported_namespace_function_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"toolkit\.tape\.numpy\.fft is not supported"):
        tnp.fft  # noqa: B018
    assert not hasattr(tnp, "convolve")


def test_numpy_functions_on_tape_arrays_are_refused() -> None:
    x = tp.array([1.0, 2.0])
    with pytest.raises(TypeError, match=r"numpy\.linalg\.norm does not differentiate"):
        np.linalg.norm(x)
    with pytest.raises(TypeError):
        np.exp(x)


def test_converting_to_numpy_inside_the_function_is_refused() -> None:
    x = tp.array([1.0])
    with pytest.raises(TypeError, match="drop its gradient"):
        tp.gradient(lambda: tnp.sum(np.asarray(x)), tp.Params([x]))


def test_in_place_write_inside_the_function_is_refused() -> None:
    x = tp.array([1.0, 2.0])

    def f() -> tp.Array:
        x[0] = 3.0
        return tnp.sum(x)

    with pytest.raises(RuntimeError, match="in-place write"):
        tp.gradient(f, tp.Params([x]))


def test_augmented_assignment_inside_the_function_rebinds() -> None:
    x = tp.array([1.0, 2.0])

    def f() -> tp.Array:
        h = x * 1.0
        h += x
        return tnp.sum(h)

    np.testing.assert_array_equal(tp.gradient(f, tp.Params([x]))[x], [2.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


def test_params_reject_non_arrays_and_integer_arrays() -> None:
    with pytest.raises(TypeError, match=r"got ndarray at position 1"):
        tp.Params([tp.array([1.0]), np.ones(2)])
    with pytest.raises(TypeError, match="float arrays"):
        tp.Params([tp.array([1, 2])])


def test_unknown_alias_policy() -> None:
    x = tp.array([1.0])
    with pytest.raises(ValueError, match=r"'identity', 'storage'.*'shared'"):
        tp.gradient(lambda: tnp.sum(x), tp.Params([x]), alias="shared")


def test_unsupported_dtype() -> None:
    with pytest.raises(TypeError, match="float32 or float64"):
        tp.array([1.0], dtype=np.float16)


def test_storage_policy_warns_once_per_params_about_aliases() -> None:
    x = tp.array([1.0, 2.0], name="x")
    xt = tp.adjoint(x)
    ps = tp.Params([x, xt])
    f = lambda: tnp.sum(x * x)  # noqa: E731
    with pytest.warns(tp.AliasWarning, match="several views of one storage"):
        tp.gradient(f, ps, alias="storage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tp.gradient(f, ps, alias="storage")
        tp.gradient(f, tp.Params([x, xt]))  # identity: each alias is its own leaf


def test_integer_arrays_are_constants() -> None:
    x = tp.array([1.0, 2.0, 3.0])
    idx = tp.array([2, 0])
    counts = tp.array([1, 2, 3])
    gs = tp.gradient(lambda: tnp.sum(x[idx] * 2.0) + tnp.sum(x * counts), tp.Params([x]))
    np.testing.assert_array_equal(gs[x], [3.0, 2.0, 5.0])


def test_constant_output_gives_no_gradient() -> None:
    x = tp.array([1.0])
    gs = tp.gradient(lambda: tnp.sum(np.ones(3)), tp.Params([x]))
    assert gs[x] is None
