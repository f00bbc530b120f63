"""Every strategy on every shipped config, checked against independent computations.

Truths used here: float64 central finite differences in plain NumPy (on a hand-built untied
tree for each copy's partial, on the storage for the total), the other engine, and the
values Zygote prints for the nine aliasing cases of its implicit ``Params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optax
import pytest
from toolkit.experiments import aliasing, tied_autoencoder

from toolkit.experiment import Case, Param, ParamTree, TiedParam, tie
from toolkit.namespaces import numpy_namespace
from toolkit.problem import GradientResult, Problem
from toolkit.runner.compare import judge
from toolkit.runner.preflight import load_config
from toolkit.runner.reference import compute_reference
from toolkit.runner.strategies import (
    REGISTRY,
    STRATEGIES,
    TRAIN_STRATEGIES,
    baseline,
    compute_gradients,
    get_strategy,
    make_trainer,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.toml"))
NP = numpy_namespace()


def _shipped_cases() -> list[Any]:
    out = []
    for path in SHIPPED:
        cfg = load_config(path)
        for case in cfg.build_cases():
            out.append(pytest.param(cfg, case, id=f"{path.stem}:{case.name}"))
    return out


CASES = _shipped_cases()


def _inputs(cfg: Any, case: Case, dtype: str = "float64") -> tuple[dict, dict]:
    return case.initial_values(cfg.seed, dtype), case.make_data(cfg.seed, dtype)


_RESULTS: dict[tuple[str, str, str], GradientResult] = {}


def _result(cfg: Any, case: Case, strategy: str) -> GradientResult:
    """``compute_gradients`` on the config's inputs, once per test session (jit is slow)."""
    key = (str(cfg.path), case.name, strategy)
    if key not in _RESULTS:
        values, data = _inputs(cfg, case)
        _RESULTS[key] = compute_gradients(strategy, case, values, data, case.wrt)
    return _RESULTS[key]


# --- independent truth: NumPy finite differences -------------------------------------------


class _Parented(np.ndarray):
    """A NumPy array with ``.parent``, so losses reading ``xt.parent`` run in NumPy."""

    parent: np.ndarray


def _untied_tree(case: Case, copies: Mapping[str, np.ndarray]) -> ParamTree:
    """Each path its own array; a tie's ``.parent`` is recovered from its own copy."""
    flat: dict[str, Any] = {}
    for path, spec in case.params.items():
        value = np.asarray(copies[path])
        if isinstance(spec, TiedParam):
            m = case.map_of(path)
            wrapped = value.view(_Parented)
            wrapped.parent = (m.inverse(value, case.shape_of(spec.source)) if m.invertible
                              else np.full(case.shape_of(spec.source), np.nan))
            value = wrapped
        flat[path] = value
    return ParamTree(flat)


def _shared_copies(case: Case, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {p: np.array(case.map_of(p).apply(values[case.storage_of(p)])) for p in case.params}


FULL = 16  # larger buffers get random directional checks (keeps the suite fast)
DIRECTIONS = 4


def _central(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def _assert_fd(f: Any, x: np.ndarray, g: np.ndarray, h: float = 1e-6) -> None:
    """``g`` is d f / d x, where ``f()`` reads the buffer ``x`` (perturbed in place)."""
    g = np.asarray(g, dtype=np.float64)
    if x.size <= FULL:
        _close(g, _central(f, x, h), rtol=1e-6, atol=1e-7)
        return
    rng = np.random.default_rng(0)
    start = x.copy()
    for _ in range(DIRECTIONS):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        x[...] = start + h * v
        up = f()
        x[...] = start - h * v
        down = f()
        x[...] = start
        _close(np.vdot(g, v), (up - down) / (2 * h), rtol=1e-6, atol=1e-7)


def assert_partial(case: Case, values: Mapping, data: Mapping, path: str, g: Any) -> None:
    """``g`` is d loss / d (the copy at ``path``), every other copy held fixed."""
    copies = _shared_copies(case, values)
    _assert_fd(lambda: float(case.loss(NP, _untied_tree(case, copies), data)), copies[path], g)


def assert_total(case: Case, values: Mapping, data: Mapping, path: str, g: Any) -> None:
    """``g`` is d loss / d (the storage ``path`` sees), seen through ``path``'s map."""
    storage = case.storage_of(path)
    buffers = {s: np.array(v, dtype=np.float64) for s, v in values.items()}

    def loss() -> float:
        return float(case.loss(NP, _untied_tree(case, _shared_copies(case, buffers)), data))

    m = case.map_of(path)
    if m.invertible:
        _assert_fd(loss, buffers[storage], m.inverse(np.asarray(g), case.shape_of(storage)))
    else:  # a partial tie: compare the slice of the full storage gradient
        _close(g, m.apply(_central(loss, buffers[storage])), rtol=1e-6, atol=1e-7)


def _close(actual: Any, expected: Any, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize(("cfg", "case"), CASES)
def test_explicit_shared_equals_implicit_storage(cfg: Any, case: Case) -> None:
    shared = _result(cfg, case, "explicit-shared")
    storage = _result(cfg, case, "implicit-storage")
    assert list(shared.grads) == list(case.wrt) == list(storage.grads)
    assert shared.value == pytest.approx(storage.value, rel=1e-12)
    for path in case.wrt:
        _close(shared.grads[path], storage.grads[path], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cfg", "case"), CASES)
def test_explicit_shared_and_merged_equal_storage_finite_differences(cfg: Any, case: Case) -> None:
    values, data = _inputs(cfg, case)
    shared = _result(cfg, case, "explicit-shared")
    merged = _result(cfg, case, "explicit-merged")
    # one finite-difference check per storage, through its widest listed alias
    checked: dict[str, str] = {}
    for path in sorted(case.wrt, key=lambda p: -int(np.prod(case.shape_of(p)))):
        checked.setdefault(case.storage_of(path), path)
    for path in checked.values():
        assert_total(case, values, data, path, shared.grads[path])
    for path in case.wrt:
        _close(merged.grads[path], shared.grads[path], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cfg", "case"), CASES)
def test_explicit_equals_each_copys_partial(cfg: Any, case: Case) -> None:
    values, data = _inputs(cfg, case)
    result = _result(cfg, case, "explicit")
    for path in case.wrt:
        assert_partial(case, values, data, path, result.grads[path])


@pytest.mark.parametrize(("cfg", "case"), CASES)
def test_recorded_expectations_hold(cfg: Any, case: Case) -> None:
    for strategy, expected in cfg.expect.get(case.name, {}).items():
        result = _result(cfg, case, strategy)
        _assert_matches(result.grads, expected.get("grads", {}))
        if "globals" in expected:
            assert set(result.globals) == set(expected["globals"]), result.globals
            _assert_matches(result.globals, expected["globals"])


def _assert_matches(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    for key, want in expected.items():
        got = actual[key]
        if want is None or got is None:
            assert got is None and want is None, (key, got, want)
        elif isinstance(want, dict):
            assert isinstance(got, dict) and set(got) == set(want), (key, got)
            _close(got["parent"], want["parent"], rtol=1e-12, atol=0)
        else:
            _close(np.reshape(got, np.shape(want)), want, rtol=1e-12, atol=0)


# Zygote's printed gradients (= implicit-identity), its globals, and the storage column: the
# one copy of the table is the seed config's [expect] section.
SEED_EXPECT = load_config(ROOT / "configs" / "seed.toml").expect
SEED_CASES = ["case1", "case2", "case3", "case4", "case5", "case6", "struct", "adjoint"]


def test_seed_config_records_both_columns_for_every_case() -> None:
    for name in SEED_CASES:
        assert {"implicit-identity", "implicit-storage"} <= set(SEED_EXPECT[name]), name
        assert SEED_EXPECT[name]["implicit-identity"]["grads"], name


@pytest.mark.parametrize("name", SEED_CASES)
def test_seed_table(name: str) -> None:
    case = next(c for c in aliasing.cases() if c.name == name)
    zygote, storage = SEED_EXPECT[name]["implicit-identity"], SEED_EXPECT[name]["implicit-storage"]
    values = case.initial_values(0)
    identity = compute_gradients("implicit-identity", case, values, {}, case.wrt)
    _assert_matches(identity.grads, zygote["grads"])
    if "globals" in zygote:
        assert set(identity.globals) == set(zygote["globals"])
        _assert_matches(identity.globals, zygote["globals"])
    result = compute_gradients("implicit-storage", case, values, {}, case.wrt)
    _assert_matches(result.grads, storage["grads"])


def test_tied_dense_identity_misses_the_decoders_part() -> None:
    case = next(c for c in aliasing.cases() if c.name == "tied_dense")
    values, data = case.initial_values(0), case.make_data(0)
    identity = compute_gradients("implicit-identity", case, values, data, case.wrt)
    shared = compute_gradients("explicit-shared", case, values, data, case.wrt)
    assert_partial(case, values, data, "enc.weight", identity.grads["enc.weight"])
    assert_total(case, values, data, "enc.weight", shared.grads["enc.weight"])
    assert not np.allclose(identity.grads["enc.weight"], shared.grads["enc.weight"])


def test_result_shape_and_float32() -> None:
    case = tied_autoencoder.cases()[0]
    values, data = case.initial_values(0, np.float32), case.make_data(0, np.float32)
    for strategy in STRATEGIES:
        result = compute_gradients(strategy, case, values, data, case.wrt)
        assert isinstance(result, GradientResult) and result.strategy == strategy
        assert isinstance(result.value, float)
        assert list(result.grads) == list(case.wrt)
        for path, g in result.grads.items():
            assert g.dtype == np.float32 and g.shape == case.shape_of(path), (strategy, path)
        assert (result.globals == {}) == strategy.startswith("explicit")


def _slice_case() -> Case:
    return Case(
        "slice",
        {"w": Param((4,), values=[1.0, 2.0, 3.0, 4.0]), "head": tie("w", "[:2]")},
        lambda np, p, d: np.sum(p.head.parent * p.w),
        ("w", "head"),
    )


def test_explicit_parent_of_a_partial_tie_is_a_clear_error() -> None:
    case = _slice_case()
    with pytest.raises(ValueError, match=r"head\.parent: .*partial tie"):
        compute_gradients("explicit", case, case.initial_values(0), {}, case.wrt)
    shared = compute_gradients("explicit-shared", case, case.initial_values(0), {}, case.wrt)
    _close(shared.grads["w"], 2 * np.arange(1.0, 5.0), rtol=1e-12, atol=0)
    _close(shared.grads["head"], [2.0, 4.0], rtol=1e-12, atol=0)


def test_unknown_strategy_and_path() -> None:
    case = aliasing.cases()[0]
    with pytest.raises(ValueError, match="unknown strategy 'jax'; valid: implicit-identity"):
        compute_gradients("jax", case, case.initial_values(0), {}, ("x",))
    with pytest.raises(ValueError, match="wrt path 'y' is not a parameter; valid: x, xt"):
        compute_gradients("explicit", case, case.initial_values(0), {}, ("y",))
    with pytest.raises(ValueError, match="unknown strategy 'tied'"):
        compute_gradients("tied", case, case.initial_values(0), {}, ("x",))
    with pytest.raises(ValueError, match="'tied' only trains"):
        get_strategy("tied", training=True).compute_gradients(
            Problem(case, case.initial_values(0), {}, ("x",))
        )


def test_registry_entries_behave_as_their_fields_declare() -> None:
    # Each entry's fields are its behaviour: the engine shows in the tape's global entries,
    # the must-be-exact rule holds against the finite-difference reference, and the one
    # baseline is the strategy every training run is measured against.
    case3 = next(c for c in aliasing.cases() if c.name == "case3")
    problem = Problem.from_case(case3, seed=0)
    reference = compute_reference(case3, problem.values, problem.data)
    for name in STRATEGIES:
        entry = REGISTRY[name]
        result = entry.compute_gradients(problem)
        assert bool(result.globals) == (entry.engine == "tape"), name
        verdicts = judge(case3, result.grads, problem.wrt, reference, rtol=1e-6, atol=1e-9,
                         same_object=entry.shares_objects)
        if entry.must_be_exact:
            assert all(v.verdict.exact for v in verdicts if v.rule == entry.must_be_exact), name
    # implicit-identity is not exact per storage here: it is a finding, not a must.
    assert REGISTRY["implicit-identity"].must_be_exact is None
    assert [s.name for s in REGISTRY.values() if s.baseline] == [baseline().name]
    assert not REGISTRY["tied"].differentiates and REGISTRY["tied"].wrap == "tied"


# --- training: what each optimizer does to the tied autoencoder's tie ----------------------

STEPS = 40


def _train(strategy: str, case: Case, optimizer: Any) -> tuple[list[float], dict, float]:
    values, data = case.initial_values(0), case.make_data(0)
    trainer = make_trainer(strategy, case, values, data, case.wrt, optimizer)
    assert trainer.strategy == strategy
    drift = 0.0
    losses = []
    for _ in range(STEPS):
        losses.append(trainer.step())
        drift = max(drift, trainer.tie_drift())
    return losses, trainer.storage_values(), drift


def _gap(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


_SHARED_RUNS: dict[tuple[str, str], tuple[list[float], dict, float]] = {}


@pytest.fixture(scope="module")
def autoencoder() -> dict[str, Case]:
    return {c.name: c for c in tied_autoencoder.cases(activation="tanh")}


@pytest.mark.parametrize(
    ("case_name", "optimizer", "strategy", "exact"),
    [
        ("aliases", "sgd", "implicit-identity", True),
        ("aliases", "adam", "implicit-identity", False),
        ("aliases", "sgd", "implicit-storage", True),
        ("aliases", "adam", "implicit-storage", True),
        ("aliases", "adam", "explicit", False),
        ("aliases", "adam", "explicit-merged", True),
        ("aliases", "adam", "tied", True),
        ("dedup", "sgd", "implicit-identity", False),
        ("dedup", "adam", "implicit-storage", True),
    ],
)
def test_training_trajectories_against_explicit_shared(
    autoencoder: dict[str, Case], case_name: str, optimizer: str, strategy: str, exact: bool
) -> None:
    case = autoencoder[case_name]
    opt = optax.adam(0.05) if optimizer == "adam" else optax.sgd(0.2)
    key = (case_name, optimizer)
    if key not in _SHARED_RUNS:
        _SHARED_RUNS[key] = _train("explicit-shared", case, opt)
    ref_losses, ref_values, ref_drift = _SHARED_RUNS[key]
    losses, values, drift = _train(strategy, case, opt)
    assert ref_drift == 0.0
    assert ref_losses[-1] < ref_losses[0]
    gap = _gap(values, ref_values)
    if exact:
        assert gap < 1e-9, gap
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-9)
    else:
        assert gap > 1e-3, gap
    if strategy in ("explicit-merged", "tied") or strategy.startswith("implicit"):
        assert drift < 1e-12
    if strategy == "explicit":
        assert drift > 1e-3  # Adam normalises the two copies' gradients separately


def test_every_train_strategy_trains_the_dedup_case(autoencoder: dict[str, Case]) -> None:
    for case in [autoencoder["dedup"]]:
        values, data = case.initial_values(1), case.make_data(1)
        for strategy in TRAIN_STRATEGIES:
            trainer = make_trainer(strategy, case, values, data, case.wrt, optax.sgd(0.1))
            first, second = trainer.step(), trainer.step()
            assert second < first, (case.name, strategy)
            assert set(trainer.storage_values()) == set(case.sources)
