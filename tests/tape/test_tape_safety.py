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


def test_augmented_assignment_inside_the_function_writes_in_place() -> None:
    x = tp.array([1.0, 2.0])

    def f() -> tp.Array:
        h = x * 1.0
        head = h[:1]
        h += x  # in place, as in NumPy: ``head`` sees it
        return tnp.sum(h) + tnp.sum(head)

    value, gs = tp.withgradient(f, tp.Params([x]))
    assert float(value) == 8.0  # NumPy: h = [2, 4], head = [2]
    np.testing.assert_array_equal(gs[x], [4.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


def test_write_through_a_view_of_an_intermediate_follows_numpy() -> None:
    x = tp.array([1.0, 2.0, 3.0, 4.0])

    def f() -> tp.Array:
        y = x * 2
        v = y[0:2]
        v *= 3
        return tnp.sum(y)

    value, gs = tp.withgradient(f, tp.Params([x]))
    assert float(value) == 32.0  # NumPy: y = [6, 12, 6, 8]
    np.testing.assert_array_equal(gs[x], [6.0, 6.0, 2.0, 2.0])


def test_building_an_array_by_assignment_inside_the_function() -> None:
    x = tp.array([1.0, 2.0, 3.0])

    def f() -> tp.Array:
        z = tnp.zeros(3)
        z[np.array([2, 0])] = x[:2] * 2  # z = [4, 0, 2]
        z[z > 3] += x[2]  # z = [7, 0, 2]
        return tnp.sum(z * z)

    value, gs = tp.withgradient(f, tp.Params([x]))
    assert float(value) == 53.0
    # d/dx0: 2 * z2 * 2 = 8; d/dx1: 2 * z0 * 2 = 28; d/dx2: 2 * z0 = 14.
    np.testing.assert_array_equal(gs[x], [8.0, 28.0, 14.0])


def test_a_repeated_index_write_inside_the_function_raises() -> None:
    x = tp.array([1.0, 2.0])

    def f() -> tp.Array:
        z = tnp.zeros(2)
        z[[0, 0]] = x
        return tnp.sum(z)

    with pytest.raises(ValueError, match="sets an element twice"):
        tp.gradient(f, tp.Params([x]))


def test_writes_to_arrays_from_outside_the_function_are_refused_there() -> None:
    x = tp.array([1.0, 2.0], name="x")
    head = x[:1]

    def add_in_place() -> tp.Array:
        x_view = x[1:]
        x_view += 1.0
        return tnp.sum(x)

    for f in (add_in_place, lambda: head.__setitem__(0, 3.0)):
        with pytest.raises(RuntimeError, match=r"array 'x'.*comes from outside the function"):
            tp.gradient(f, tp.Params([x]))
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


def test_write_to_an_array_an_op_made_outside_is_caught() -> None:
    w = tp.array([1.0, 2.0]) * 1.0  # no storage of its own until read by a trace
    _, back = tp.pullback(lambda: tnp.sum(w * w), tp.Params([w]))
    w -= 0.1
    with pytest.raises(RuntimeError, match=r"modified in place.*multiply"):
        back()


def test_einsum_identity_is_a_view_and_writes_through_its_base_are_caught() -> None:
    a = tp.array([1.0, 2.0], name="a")
    e = tnp.einsum("i->i", a)  # NumPy returns a view of a's memory
    assert e.base is a
    _, back = tp.pullback(lambda: tnp.sum(e * e), tp.Params([e]))
    a[0] = 10.0
    np.testing.assert_array_equal(e.numpy(), [10.0, 2.0])
    with pytest.raises(RuntimeError, match="modified in place"):
        back()


def test_index_arrays_and_numpy_operands_written_after_the_forward_pass() -> None:
    x = tp.array([1.0, 2.0, 3.0])
    idx = tp.array([0, 2])
    c = np.array([1.0, 10.0, 100.0])
    _, back = tp.pullback(lambda: tnp.sum(x[idx] ** 2) + tnp.sum(x * c), tp.Params([x]))
    idx[0] = 1
    c[:] = 0.0
    # The gradient at the forward pass's values: 2 x on the picked elements, plus c.
    np.testing.assert_array_equal(back()[x], [3.0, 10.0, 106.0])


def test_a_kept_intermediate_written_before_back_leaves_the_gradient_exact() -> None:
    x = tp.array([0.5, -1.0])
    kept: list[tp.Array] = []

    def f() -> tp.Array:
        h = tnp.tanh(x)  # tanh's VJP reads h
        kept.append(h)
        return tnp.sum(h * h)

    _, back = tp.pullback(f, tp.Params([x]))
    kept[0][...] = 5.0  # copied on write: the recorded h is intact
    t = np.tanh([0.5, -1.0])
    np.testing.assert_allclose(back()[x], 2 * t * (1 - t * t))
    np.testing.assert_array_equal(kept[0].numpy(), [5.0, 5.0])


_V = np.array([0.3, -1.2, 2.0])


@pytest.mark.parametrize(("loss", "expected"), [
    (lambda w: tnp.sum(w * 2.0), [2.0, 2.0, 2.0]),
    # Sorted: _V[1], _V[0], _V[2], weighted 1, 2, 3.
    (lambda w: tnp.sum(tnp.sort(w) * np.array([1.0, 2.0, 3.0])), [2.0, 1.0, 3.0]),
    (lambda w: tnp.logsumexp(w), np.exp(_V) / np.exp(_V).sum()),
], ids=["multiply-by-a-constant", "sort", "logsumexp"])
def test_writes_that_no_vjp_reads_leave_the_gradient_exact(loss: object, expected: object
                                                            ) -> None:
    w = tp.array(_V)
    _, back = tp.pullback(lambda: loss(w), tp.Params([w]))  # type: ignore[operator]
    w -= 5.0  # the VJPs kept what they need (a constant, an order, a softmax), not w
    np.testing.assert_allclose(back()[w], expected)


def test_std_at_zero_spread_has_a_zero_gradient() -> None:
    c = tp.array([2.0, 2.0, 2.0])
    np.testing.assert_array_equal(tp.gradient(lambda: tnp.std(c), tp.Params([c]))[c], 0.0)


def test_a_nested_seed_that_depends_on_the_outer_params_raises() -> None:
    x = tp.array([1.0, -2.0])
    _, back = tp.pullback(lambda: x * x * x / 3, tp.Params([x]))
    with pytest.raises(NotImplementedError, match="seed given to back"):
        tp.gradient(lambda: tnp.sum(tnp.array(back(x * x)[x])), tp.Params([x]))


def test_float_of_an_outer_dependent_value_in_a_nested_function_raises() -> None:
    x, y = tp.array([1.0, -2.0]), tp.array(1.5)

    def outer() -> tp.Array:
        s = y * 1.5
        inner = tp.gradient(lambda: tnp.sum(x) * float(s), tp.Params([x]))[x]
        return s * inner[0]

    with pytest.raises(TypeError, match=r"float\(\) of .* would drop its gradient"):
        tp.gradient(outer, tp.Params([y]))


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
