"""The finite-difference reference against hand-derived gradients."""

import numpy as np
import pytest

from toolkit.experiment import Case, Param, tie
from toolkit.runner.reference import compute_reference, to_storage


def seed_case2() -> Case:
    return Case(
        "case2",
        {"x": Param((1,), values=[1.0]), "xt": tie("x", "adjoint")},
        lambda np, p, d: np.sum(p.xt * p.x),
        wrt=("x",),
    )


def tied_dense(n: int = 5, h: int = 2) -> Case:
    def loss(np, p, d):
        hidden = p.enc.weight @ d["x"] + p.enc.bias
        return np.sum(np.tanh(p.dec.weight @ hidden))

    return Case(
        "tied_dense",
        {
            "enc.weight": Param((h, n)),
            "enc.bias": Param((h,)),
            "dec.weight": tie("enc.weight", "transpose"),
        },
        loss,
        wrt=("enc.weight",),
        data=lambda rng: {"x": rng.standard_normal(n)},
    )


def tied_dense_grads(W, b, x):
    """Hand-derived partials of sum(tanh(W2 (W1 x + b))) with W1 = W, W2 = W.T."""
    hidden = W @ x + b
    out = W.T @ hidden
    g_out = 1 - np.tanh(out) ** 2
    g_w2 = np.outer(g_out, hidden)
    g_hidden = W @ g_out
    g_w1 = np.outer(g_hidden, x)
    return g_w1, g_w2, g_hidden


def test_seed_case2_total_and_partials():
    ref = compute_reference(seed_case2(), {"x": np.array([1.0])}, {})
    r = ref.storages["x"]
    np.testing.assert_allclose(r.total, [2.0], atol=1e-9)
    np.testing.assert_allclose(r.partials["x"], [1.0], atol=1e-9)
    np.testing.assert_allclose(r.partials["xt"], [1.0], atol=1e-9)
    assert ref.value == pytest.approx(1.0)


def test_tied_dense_matches_hand_derivation():
    case = tied_dense()
    values = case.initial_values(3)
    data = case.make_data(3)
    ref = compute_reference(case, values, data)
    g_w1, g_w2, g_b = tied_dense_grads(values["enc.weight"], values["enc.bias"], data["x"])
    r = ref.storages["enc.weight"]
    np.testing.assert_allclose(r.total, (g_w1 + g_w2.T).ravel(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(r.partials["enc.weight"], g_w1.ravel(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(r.partials["dec.weight"], g_w2.T.ravel(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ref.storages["enc.bias"].total, g_b, rtol=1e-8, atol=1e-10)
    assert np.max(r.error) < 1e-8


def test_directional_mode_projects_the_true_gradient():
    case = tied_dense(n=6, h=4)
    values = case.initial_values(1)
    data = case.make_data(1)
    ref = compute_reference(case, values, data, directions=5, full_limit=10)
    r = ref.storages["enc.weight"]
    assert r.mode == "directional(5)" and r.directions.shape == (5, 24)
    g_w1, g_w2, _ = tied_dense_grads(values["enc.weight"], values["enc.bias"], data["x"])
    np.testing.assert_allclose(
        r.total, r.directions @ (g_w1 + g_w2.T).ravel(), rtol=1e-7, atol=1e-10
    )
    np.testing.assert_allclose(r.project(g_w1), r.partials["enc.weight"], rtol=1e-7, atol=1e-10)


def test_to_storage_scatter_adds_through_maps():
    case = Case(
        "maps",
        {
            "m": Param((2, 3)),
            "t": tie("m", "transpose"),
            "blk": tie("m", "[:, 1:3]"),
            "v": Param((4,)),
            "row": tie("v", "adjoint"),
        },
        lambda np, p, d: 0.0,
        wrt=(),
    )
    g = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(to_storage(case, "t", g), g.T)
    blk = to_storage(case, "blk", np.ones((2, 2)))
    np.testing.assert_array_equal(blk, [[0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(to_storage(case, "row", np.array([[1.0, 2, 3, 4]])), [1, 2, 3, 4])
