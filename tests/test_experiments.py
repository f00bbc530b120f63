"""Experiment declarations: the shipped experiments, ties, and one loss for every engine."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from toolkit.experiments import aliasing, tied_autoencoder

from toolkit.experiment import Case, Param, ParamTree, tie
from toolkit.explicit import Alias, alias_namespace
from toolkit.namespaces import jax_namespace, numpy_namespace
from toolkit.runner.preflight import load_config
from toolkit.runner.strategies import TRAIN_STRATEGIES, compute_gradients, make_trainer

ROOT = Path(__file__).resolve().parents[1]

SEED_WRT = {
    "case1": ("x",), "case2": ("x",), "case3": ("x", "xt"), "case4": ("x",),
    "case5": ("x", "xt"), "case6": ("xt",), "struct": ("x",), "adjoint": ("x",),
    "tied_dense": ("enc.weight",),
}


def test_aliasing_has_the_nine_seed_cases() -> None:
    cases = {c.name: c for c in aliasing.cases()}
    assert {n: c.wrt for n, c in cases.items()} == SEED_WRT
    for name in ("case1", "case2", "case3", "case4", "case5", "case6"):
        case = cases[name]
        assert case.initial_values(123) == {"x": np.array([1.0])}
        assert case.storage_of("xt") == "x" and case.shape_of("xt") == (1, 1)
        assert case.description.startswith("gradient(() -> sum(")
    assert "xt.parent .* x" in cases["case5"].description
    assert "Params([x, xt])" in cases["case5"].description
    assert cases["tied_dense"].shape_of("dec.weight") == (5, 2)
    assert cases["struct"].aliases_of("x") == ["x", "a.x"]


def test_tied_autoencoder_variants_differ_only_in_wrt() -> None:
    both, dedup = tied_autoencoder.cases()
    assert (both.name, dedup.name) == ("aliases", "dedup")
    assert "dec.weight" in both.wrt and "dec.weight" not in dedup.wrt
    assert both.params == dedup.params
    assert both.shape_of("enc.weight") == (2, 5) and both.shape_of("dec.weight") == (5, 2)
    assert both.make_data(3)["x"].shape == (16, 5)
    np.testing.assert_array_equal(both.make_data(3)["x"], dedup.make_data(3)["x"])
    big = tied_autoencoder.cases(n=7, h=3, batch=4)[0]
    assert big.shape_of("dec.weight") == (7, 3) and big.make_data(0)["x"].shape == (4, 7)
    with pytest.raises(ValueError, match="valid: tanh, identity"):
        tied_autoencoder.cases(activation="gelu")


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_tied_autoencoder_loss_matches_hand_written_numpy(activation: str) -> None:
    case = tied_autoencoder.cases(activation=activation)[0]
    v, data = case.initial_values(0), case.make_data(0)
    w, b1, b2, x = v["enc.weight"], v["enc.bias"], v["dec.bias"], data["x"]
    hidden = x @ w.T + b1
    hidden = np.tanh(hidden) if activation == "tanh" else hidden
    expected = np.mean((hidden @ w + b2 - x) ** 2)
    for strategy in ("implicit-identity", "explicit", "explicit-shared"):
        value = compute_gradients(strategy, case, v, data, case.wrt).value
        assert value == pytest.approx(expected, rel=1e-12), strategy


def _shipped_cases() -> list[Case]:
    out = []
    for path in sorted((ROOT / "configs").glob("*.toml")):
        cfg = load_config(path)
        out += [pytest.param(cfg, c, id=f"{path.stem}:{c.name}") for c in cfg.build_cases()]
    return out


@pytest.mark.parametrize(("cfg", "case"), _shipped_cases())
def test_one_loss_gives_one_value_on_every_engine(cfg: object, case: Case) -> None:
    values, data = case.initial_values(cfg.seed), case.make_data(cfg.seed)
    flat = {p: case.map_of(p).apply(values[case.storage_of(p)]) for p in case.params}
    tree = ParamTree(_with_parents(case, flat))
    in_numpy = float(case.loss(alias_namespace(numpy_namespace()), tree, data))
    tape_value = compute_gradients("implicit-storage", case, values, data, case.wrt).value
    assert tape_value == pytest.approx(in_numpy, rel=1e-12)


def _with_parents(case: Case, flat: dict) -> dict:
    out = {}
    for path, value in flat.items():
        source = case.storage_of(path)
        out[path] = value if source == path else Alias(value, lambda s=source: flat[s])
    return out


def test_trainers_start_from_the_same_values() -> None:
    case = tied_autoencoder.cases()[0]
    values, data = case.initial_values(5), case.make_data(5)
    for strategy in TRAIN_STRATEGIES:
        got = make_trainer(strategy, case, values, data, case.wrt, optax.sgd(0.1)).storage_values()
        for source, value in values.items():
            np.testing.assert_array_equal(got[source], value, err_msg=strategy)


def test_alias_acts_as_its_array_and_has_parent() -> None:
    np_ = alias_namespace(jax_namespace())

    def f(x: jax.Array) -> jax.Array:
        xt = Alias(x.reshape(1, -1), parent=lambda: x)
        parts = [
            np_.sum(xt * x), np_.sum(x * xt), np_.sum(xt @ x), np_.sum(-xt + 1.0),
            np_.sum(xt.T), np_.sum(np_.concatenate([xt, xt], axis=0)), xt[0, 1],
            np_.sum(xt.parent ** 2), np_.sum(np.ones(3) * xt), jnp.sum(jnp.asarray(xt)),
        ]
        return sum(parts)

    x = jnp.array([1.0, 2.0, 3.0])
    value, grad = jax.jit(jax.value_and_grad(f))(x)
    # by hand: 14 + 14 + 14 + (-6 + 3) + 6 + 12 + 2 + 14 + 6 + 6
    assert float(value) == pytest.approx(85.0)
    # d/dx: 2x + 2x + 2x - 1 + 1 + 2 + e_1 + 2x + 1 + 1
    np.testing.assert_allclose(grad, 8 * x + 4 + jnp.array([0.0, 1.0, 0.0]))


def test_case_validation_names_the_tie() -> None:
    loss = lambda np, p, d: np.sum(p.w)  # noqa: E731
    with pytest.raises(ValueError, match=r"tie 'v' -> 'u': the source must be a declared param"):
        Case("c", {"w": Param((3,)), "v": tie("u")}, loss, ("w",))
    with pytest.raises(ValueError, match=r"case 'c': tie 'v' = w.T: 'transpose' needs a source"):
        Case("c", {"w": Param((3,)), "v": tie("w", "transpose")}, loss, ("w",))
    with pytest.raises(ValueError, match=r"tie 'v' = w\[:5\]: index \[:5\] is out of range"):
        Case("c", {"w": Param((3,)), "v": tie("w", "[:5]")}, loss, ("w",))
