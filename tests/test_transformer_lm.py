"""The transformer LM experiment: its gradients, its causal mask, its data and its hooks.

The gradient truth here is computed in this file: float64 fourth-order central differences of
the loss evaluated with NumPy, along random directions of each storage (the total derivative)
and of each alias's own copy (the partial through that alias alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np
import pytest
from toolkit.experiments import transformer_lm as lm

from toolkit.experiment import Case, ParamTree
from toolkit.namespaces import numpy_namespace
from toolkit.runner.strategies import compute_gradients

TINY = {"vocab_size": 40, "dim": 8, "heads": 2, "layers": 2, "mlp": 12, "context": 5,
        "batch": 3, "valid_windows": 2}
DIRECTIONS = 3
RTOL, ATOL = 1e-6, 1e-9
NP = numpy_namespace()


@cache
def _cases() -> dict[str, Case]:
    return {c.name: c for c in lm.cases(**TINY)}


def _tree(values: Mapping[str, np.ndarray], head: np.ndarray | None = None) -> ParamTree:
    """Every path of a tied case: ``head.weight`` is ``Eᵀ`` unless a copy is given."""
    flat = dict(values)
    if "head.weight" not in flat:
        flat["head.weight"] = values["embed.weight"].T if head is None else head
    return ParamTree(flat)


def _slope(f: Callable[[float], float], scale: float) -> float:
    """d/dt f(t) at 0 by fourth-order central differences."""
    h = 1e-4 * max(1.0, scale)
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def _directions(shape: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(DIRECTIONS)]


def _check(grad: np.ndarray, slope: Callable[[np.ndarray], float], shape: tuple[int, ...],
           seed: int, what: str) -> None:
    for u in _directions(shape, seed):
        np.testing.assert_allclose(np.sum(np.asarray(grad) * u), slope(u), rtol=RTOL,
                                   atol=ATOL, err_msg=what)


@pytest.fixture(scope="module")
def tied() -> tuple[Case, dict[str, np.ndarray], dict[str, Any]]:
    case = _cases()["tied-all-aliases"]
    return case, case.initial_values(0), case.make_data(0)


def _total(case: Case, values: dict[str, np.ndarray], data: dict[str, Any],
           source: str) -> Callable[[np.ndarray], float]:
    x = values[source]

    def slope(u: np.ndarray) -> float:
        return _slope(lambda t: float(lm.loss(NP, _tree({**values, source: x + t * u}), data)),
                      float(np.max(np.abs(x))))

    return slope


def _partial(values: dict[str, np.ndarray], data: dict[str, Any],
             alias: str) -> Callable[[np.ndarray], float]:
    """The derivative when only ``alias``'s own copy moves (``embed.weight`` or the head)."""
    embed, head = values["embed.weight"], values["embed.weight"].T.copy()

    def slope(u: np.ndarray) -> float:
        def f(t: float) -> float:
            if alias == "head.weight":
                return float(lm.loss(NP, _tree(values, head + t * u), data))
            return float(lm.loss(NP, _tree({**values, alias: embed + t * u}, head), data))

        return _slope(f, float(np.max(np.abs(embed))))

    return slope


@pytest.mark.parametrize("strategy", ["explicit-shared", "explicit-merged", "implicit-storage"])
def test_storage_strategies_give_the_total_gradient_on_every_storage(tied, strategy):
    case, values, data = tied
    result = compute_gradients(strategy, case, values, data, case.wrt)
    assert result.value == pytest.approx(float(lm.loss(NP, _tree(values), data)), rel=1e-12)
    for i, source in enumerate(case.sources):
        _check(result.grads[source], _total(case, values, data, source), values[source].shape,
               i, f"{strategy}: {source}")
    # The tied head reports the same total, seen through the transpose.
    np.testing.assert_allclose(result.grads["head.weight"], result.grads["embed.weight"].T,
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("strategy", ["explicit", "implicit-identity"])
def test_per_alias_strategies_give_each_alias_its_own_partial(tied, strategy):
    case, values, data = tied
    result = compute_gradients(strategy, case, values, data, case.wrt)
    embed_shape = values["embed.weight"].shape
    _check(result.grads["embed.weight"], _partial(values, data, "embed.weight"), embed_shape,
           10, f"{strategy}: embed.weight (the lookup's part)")
    _check(result.grads["head.weight"], _partial(values, data, "head.weight"),
           embed_shape[::-1], 11, f"{strategy}: head.weight (the output projection's part)")
    # Neither part alone is the total: the output projection's part is not small.
    total = _total(case, values, data, "embed.weight")
    u = _directions(embed_shape, 12)[0]
    assert abs(np.sum(result.grads["embed.weight"] * u) - total(u)) > 1e-3 * abs(total(u))


def test_a_deduplicating_collector_loses_the_output_projections_part():
    case = _cases()["tied-source-only"]
    values, data = case.initial_values(1), case.make_data(1)
    identity = compute_gradients("implicit-identity", case, values, data, case.wrt)
    storage = compute_gradients("implicit-storage", case, values, data, case.wrt)
    shape = values["embed.weight"].shape
    _check(identity.grads["embed.weight"], _partial(values, data, "embed.weight"), shape, 20,
           "implicit-identity, source only: the lookup's part alone")
    _check(storage.grads["embed.weight"], _total(case, values, data, "embed.weight"), shape, 21,
           "implicit-storage, source only: the total")


def test_untied_model_gradients_match_finite_differences():
    case = _cases()["untied"]
    values, data = case.initial_values(2), case.make_data(2)
    # The same start as the tied model: the head's values are drawn after every shared one's.
    assert case.sources[:-1] == _cases()["tied-all-aliases"].sources
    np.testing.assert_array_equal(values["embed.weight"],
                                  _cases()["tied-all-aliases"].initial_values(2)["embed.weight"])
    result = compute_gradients("explicit-shared", case, values, data, case.wrt)
    for i, source in enumerate(case.sources):
        x = values[source]

        def slope(u: np.ndarray, source: str = source, x: np.ndarray = x) -> float:
            return _slope(lambda t: float(lm.loss(NP, ParamTree({**values, source: x + t * u}),
                                                  data)), float(np.max(np.abs(x))))

        _check(result.grads[source], slope, x.shape, 30 + i, f"untied: {source}")


@pytest.mark.parametrize("namespace", ["numpy", "jax"])
def test_causal_mask_keeps_later_tokens_out_of_earlier_logits(tied, namespace):
    from toolkit.namespaces import jax_namespace

    ns = NP if namespace == "numpy" else jax_namespace()
    _, values, data = tied
    p = _tree(values)
    inputs = np.array(data["tokens"][:, :-1])
    before = np.asarray(lm.logits(ns, p, inputs))
    for k in range(inputs.shape[1]):
        changed = inputs.copy()
        changed[:, k] = (changed[:, k] + 1) % TINY["vocab_size"]
        after = np.asarray(lm.logits(ns, p, changed))
        np.testing.assert_allclose(after[:, :k], before[:, :k], rtol=1e-5, atol=1e-6)
        assert np.all(np.abs(after[:, k:] - before[:, k:]).max(axis=-1) > 1e-6), k


def test_validation_loss_is_the_mean_log_probability_of_each_next_token(tied):
    _, values, data = tied
    # A head of its own, so reading the target's logit from anything but the head shows.
    head = np.random.default_rng(5).standard_normal(values["embed.weight"].T.shape)
    p, windows = _tree(values, head), data["valid"]
    z = lm.logits(NP, p, windows[:, :-1])
    log_probs = z - np.log(np.sum(np.exp(z - z.max(-1, keepdims=True)), -1,
                                  keepdims=True)) - z.max(-1, keepdims=True)
    picked = np.take_along_axis(log_probs, windows[:, 1:, None], axis=-1)
    assert float(lm.validation_loss(NP, p, data)) == pytest.approx(-picked.mean(), rel=1e-12)


def test_data_file_is_a_real_text_with_its_source_and_licence():
    path = lm.DATA_DIR / lm.TEXT
    assert 300_000 <= path.stat().st_size <= 1_500_000
    text = path.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    joined = " ".join(header)
    assert "King James Version" in joined and "bible-kjv-text" in joined
    assert "Licence: public domain" in joined
    assert text.splitlines()[len(header) + 1] == (
        "In the beginning God created the heaven and the earth.")
    assert "bible-kjv-text" in lm.__doc__ and "public domain" in lm.__doc__


def test_vocabulary_split_and_parameter_count():
    corpus = lm.load_corpus(lm.TEXT, 2048, 0.1)
    assert len(corpus.vocab) == 2048 and corpus.vocab[:2] == (lm.UNK, lm.EOS)
    assert 0.08 < len(corpus.valid) / (len(corpus.train) + len(corpus.valid)) < 0.12
    # The validation split is the text's end: its last verse is Deuteronomy's last.
    last = lm.tokenize(lm.read_verses()[-1])
    index = {t: i for i, t in enumerate(corpus.vocab)}
    assert corpus.valid[-len(last):].tolist() == [index.get(t, 0) for t in last]
    assert np.mean(corpus.train == 0) < 0.05  # <unk> is rare with this vocabulary
    (_, case, _) = lm.cases()
    sizes = {s: int(np.prod(case.params[s].shape)) for s in case.sources}
    assert sizes["embed.weight"] > 0.6 * sum(sizes.values())
    with pytest.raises(ValueError, match="vocab_size"):
        lm.load_corpus(lm.TEXT, 10**6, 0.1)


def test_batches_are_deterministic_from_the_seed_and_new_at_each_step():
    case = _cases()["untied"]
    a, b, other = case.make_data(3), case.make_data(3), case.make_data(4)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert not np.array_equal(a["tokens"], other["tokens"])
    np.testing.assert_array_equal(a["valid"], other["valid"])
    steps = [lm.train_batch(a, s)["tokens"] for s in range(3)]
    np.testing.assert_array_equal(steps[0], a["tokens"])
    assert not np.array_equal(steps[1], steps[2])
    np.testing.assert_array_equal(lm.train_batch(b, 2)["tokens"], steps[2])
    stream = lm.load_corpus(lm.TEXT, TINY["vocab_size"], 0.1).train
    for window in steps[2]:
        start = int(np.flatnonzero(
            np.all(np.lib.stride_tricks.sliding_window_view(stream, len(window)) == window,
                   axis=1))[0])
        np.testing.assert_array_equal(stream[start:start + len(window)], window)
