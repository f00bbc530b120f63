"""The experiment catalogue: every shipped experiment against its own finite differences.

The truth here is computed in this file, independently of the runner's reference: plain
float64 central differences of the loss evaluated with NumPy, on each storage (the total
derivative) and on each alias's own copy (the partial through that alias alone). Then:

* ``explicit-shared`` and ``implicit-storage`` agree to 1e-10 and both equal the truth;
* ``explicit`` returns each copy's partial;
* ``implicit-identity``'s SGD step on each storage — every distinct ``Params`` object's
  gradient mapped back to its storage and summed — is the truth when every alias the loss
  reads is listed (or is the listed object itself), and misses exactly the unlisted views'
  partials otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolkit.experiment import Case, ParamTree, TiedParam
from toolkit.namespaces import numpy_namespace
from toolkit.transforms import parse_map

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("tied_embedding_lm", "partial_tie", "shared_layer", "recurrent", "struct_param")
SEED = 0
H = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-8

HAS_EXPLICIT = importlib.util.find_spec("toolkit.explicit") is not None
HAS_IMPLICIT = importlib.util.find_spec("toolkit.runner.implicit") is not None
needs_explicit = pytest.mark.skipif(not HAS_EXPLICIT, reason="JAX engine not present")
needs_implicit = pytest.mark.skipif(not HAS_IMPLICIT, reason="tape engine not present")


class _Tied(np.ndarray):
    """A NumPy tied value that knows its ``.parent``, like the engines' wrappers."""

    parent: np.ndarray


@cache
def _built(experiment: str) -> dict[str, Case]:
    """The cases built from the shipped config's hyperparameters."""
    from toolkit.runner.preflight import load_config

    cfg = load_config(ROOT / "configs" / f"{experiment}.toml")
    return {c.name: c for c in cfg.build_cases()}


def _all_cases() -> list[tuple[str, str]]:
    out = []
    for name in EXPERIMENTS:
        module = importlib.import_module(f"toolkit.experiments.{name}")
        out += [(name, c.name) for c in module.cases()]
    return out


CASES = _all_cases()
# Listing several views of one storage is what these cases are about; the tape's warning
# about it is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::toolkit.tape._params.AliasWarning")
CASE_IDS = [f"{e}:{c}" for e, c in CASES]


def _case(experiment: str, name: str) -> Case:
    return _built(experiment)[name]


def _is_same_object(case: Case, path: str) -> bool:
    """Whether ``path`` is its storage's object itself (the source or an identity tie)."""
    spec = case.params[path]
    return not isinstance(spec, TiedParam) or str(parse_map(spec.map)) == "identity"


def _view(case: Case, path: str, source_value: np.ndarray) -> np.ndarray:
    spec = case.params[path]
    if not isinstance(spec, TiedParam):
        return source_value
    return parse_map(spec.map).apply(source_value)


def _to_storage(case: Case, path: str, grad: np.ndarray) -> np.ndarray:
    """Adjoint of the tie map: a view-shaped gradient added into a zero storage buffer."""
    out = np.zeros(case.params[case.storage_of(path)].shape)
    view = _view(case, path, out)
    assert np.shares_memory(view, out), f"{path}: map did not give a NumPy view"
    view += np.asarray(grad, dtype=np.float64).reshape(view.shape)
    return out


def _loss(case: Case, storages: Mapping[str, np.ndarray], data: Mapping[str, Any],
          copies: Mapping[str, np.ndarray] | None = None, copy_parents: bool = True) -> float:
    """The loss in NumPy; ``copies`` replaces chosen aliases' values by independent arrays.

    With ``copy_parents`` a copy's ``.parent`` is its own inverse image (a copy is a whole
    wrapper, as Zygote's explicit mode sees it; a slice has no inverse and keeps the source);
    without it ``.parent`` stays the storage (a view made outside the loss still wraps the
    param, as the identity policy sees it).
    """
    flat: dict[str, Any] = {}
    for path, spec in case.params.items():
        if not isinstance(spec, TiedParam):
            flat[path] = storages[path]
            continue
        parent = storages[spec.source]
        value = _view(case, path, parent)
        if copies and path in copies:
            value, tie_map = copies[path], parse_map(spec.map)
            if copy_parents and tie_map.invertible:
                parent = tie_map.inverse(value, parent.shape)
        tied = np.array(value, dtype=np.float64).view(_Tied)
        tied.parent = parent
        flat[path] = tied
    return float(case.loss(numpy_namespace(), ParamTree(flat), data))


def _central(f: Any, x: np.ndarray) -> np.ndarray:
    """Central differences of ``f()`` over every entry of ``x``, perturbed in place."""
    grad = np.zeros(x.size)
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "finite differences need a contiguous buffer"
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + H
        up = f()
        flat[i] = keep - H
        down = f()
        flat[i] = keep
        grad[i] = (up - down) / (2 * H)
    return grad.reshape(x.shape)


@dataclass(frozen=True)
class Truth:
    """Central differences of one case.

    Attributes:
        totals: storage → total derivative.
        copies: path → derivative when only that alias's copy moves (explicit's partials).
        values: path → the identity policy's share: for a view, the derivative through its
            value alone (``.parent`` still the storage); for the source, everything else.
    """

    totals: dict[str, np.ndarray]
    copies: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


_TRUTHS: dict[tuple[Any, ...], Truth] = {}


def _truth(experiment: str, name: str) -> Truth:
    """Totals and per-alias partials by central differences (partials only where a storage
    has aliases; otherwise the total is the one path's partial). Cases that differ only in
    ``wrt`` share one measurement."""
    case = _case(experiment, name)
    key = (experiment, case.loss.__qualname__, tuple(case.params.items()))
    if key not in _TRUTHS:
        _TRUTHS[key] = _measure(case)
    return _TRUTHS[key]


def _measure(case: Case) -> Truth:
    """Measures a case's :class:`Truth` at its seeded initial values."""
    storages = {k: v.copy() for k, v in case.initial_values(SEED).items()}
    data = case.make_data(SEED)
    totals = {s: _central(partial(_loss, case, storages, data), storages[s]) for s in storages}
    copy_partials: dict[str, np.ndarray] = {}
    value_partials: dict[str, np.ndarray] = {}
    for source in case.sources:
        aliases = case.aliases_of(source)
        if len(aliases) == 1:
            copy_partials[source] = value_partials[source] = totals[source]
            continue
        copies = {p: np.array(_view(case, p, storages[source]), order="C") for p in aliases[1:]}
        for out, follow in ((copy_partials, True), (value_partials, False)):
            f = partial(_loss, case, storages, data, copies, follow)
            out[source] = _central(f, storages[source])
            for path in aliases[1:]:
                out[path] = _central(f, copies[path])
    return Truth(totals, copy_partials, value_partials)


def _grads(strategy: str, case: Case, wrt: tuple[str, ...] | None = None) -> Any:
    from toolkit.runner.strategies import compute_gradients

    return compute_gradients(strategy, case, case.initial_values(SEED), case.make_data(SEED),
                             case.wrt if wrt is None else wrt)


def test_lm_text_ships_and_encodes() -> None:
    from toolkit.experiments.tied_embedding_lm import DATA_DIR, encode, load_text

    text, vocab = load_text("tied_lm.txt")
    assert 2_000 < (DATA_DIR / "tied_lm.txt").stat().st_size < 300_000
    assert 30 <= len(vocab) <= 60
    ids = encode(text, vocab)
    assert "".join(vocab[i] for i in ids) == text
    with pytest.raises(FileNotFoundError, match=r"tied_lm\.txt"):
        load_text("missing.txt")


def test_lm_batch_is_onehot_windows_of_the_text() -> None:
    from toolkit.experiments.tied_embedding_lm import encode, load_text

    case = _case("tied_embedding_lm", "tied-output-all-aliases")
    data = case.make_data(SEED)
    text, vocab = load_text("tied_lm.txt")
    ids = encode(text, vocab)
    ctx, nxt = data["context"].argmax(-1), data["target"].argmax(-1)
    assert data["context"].sum(-1).min() == 1.0 and data["target"].sum(-1).min() == 1.0
    windows = {tuple(ids[i:i + ctx.shape[1] + 1]) for i in range(len(ids) - ctx.shape[1])}
    assert all((*c, t) in windows for c, t in zip(ctx.tolist(), nxt.tolist(), strict=True))
    assert case.params["head.weight"] == TiedParam("embed.weight", "transpose")


@pytest.mark.parametrize(("experiment", "name"), CASES, ids=CASE_IDS)
def test_case_is_well_formed(experiment: str, name: str) -> None:
    case = _case(experiment, name)
    values = case.initial_values(SEED)
    for path, spec in case.params.items():
        if isinstance(spec, TiedParam):
            parse_map(spec.map).out_shape(case.params[spec.source].shape)
        else:
            assert values[path].shape == tuple(spec.shape)
    first, again = case.make_data(SEED), case.make_data(SEED)
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert np.isfinite(_loss(case, values, first))
    assert case.description


@pytest.mark.parametrize(("experiment", "name"), CASES, ids=CASE_IDS)
def test_every_alias_partial_sums_to_the_storage_total(experiment: str, name: str) -> None:
    case = _case(experiment, name)
    truth = _truth(experiment, name)
    for source, total in truth.totals.items():
        for partials in (truth.copies, truth.values):
            summed = sum(_to_storage(case, p, partials[p]) for p in case.aliases_of(source))
            np.testing.assert_allclose(summed, total, rtol=FD_RTOL, atol=FD_ATOL,
                                       err_msg=source)


@needs_explicit
@needs_implicit
@pytest.mark.parametrize(("experiment", "name"), CASES, ids=CASE_IDS)
def test_shared_and_storage_strategies_are_exact(experiment: str, name: str) -> None:
    case = _case(experiment, name)
    totals = _truth(experiment, name).totals
    shared = _grads("explicit-shared", case)
    storage = _grads("implicit-storage", case)
    assert shared.value == pytest.approx(storage.value, rel=1e-12)
    for path in case.wrt:
        want = _view(case, path, totals[case.storage_of(path)])
        got_shared = np.asarray(shared.grads[path])
        np.testing.assert_allclose(got_shared, np.asarray(storage.grads[path]), rtol=1e-10,
                                   atol=1e-12, err_msg=path)
        np.testing.assert_allclose(got_shared, want, rtol=FD_RTOL, atol=FD_ATOL, err_msg=path)


@needs_explicit
@pytest.mark.parametrize(("experiment", "name"), CASES, ids=CASE_IDS)
def test_explicit_gives_each_copy_its_partial(experiment: str, name: str) -> None:
    case = _case(experiment, name)
    partials = _truth(experiment, name).copies
    wrt = tuple(case.params)
    result = _grads("explicit", case, wrt)
    for path in wrt:
        got = result.grads[path]
        got = np.zeros(np.shape(partials[path])) if got is None else np.asarray(got)
        np.testing.assert_allclose(got, partials[path], rtol=FD_RTOL, atol=FD_ATOL,
                                   err_msg=path)


def _identity_policy_step(case: Case, grads: Mapping[str, Any], source: str) -> np.ndarray:
    """Plain SGD over ``Params``: each distinct object's gradient lands on its storage once.

    The source and its identity ties are one object (``Params`` keeps it once); each view is
    its own object. A structural ``{"parent": g}`` gradient updates the parent.
    """
    step = np.zeros(case.params[source].shape)
    seen_object = False
    for path in dict.fromkeys(case.wrt):
        if case.storage_of(path) != source:
            continue
        if _is_same_object(case, path):
            if seen_object:
                continue
            seen_object = True
        g = grads.get(path)
        if isinstance(g, Mapping):
            step += np.asarray(g["parent"]).reshape(step.shape)
        elif g is not None:
            step += _to_storage(case, path, g)
    return step


@needs_implicit
@pytest.mark.parametrize(("experiment", "name"), CASES, ids=CASE_IDS)
def test_identity_policy_misses_exactly_the_unlisted_views(experiment: str, name: str) -> None:
    case = _case(experiment, name)
    truth = _truth(experiment, name)
    totals, partials = truth.totals, truth.values
    result = _grads("implicit-identity", case)
    for source in {case.storage_of(p) for p in case.wrt}:
        aliases = case.aliases_of(source)
        object_listed = any(_is_same_object(case, p) for p in case.wrt if p in aliases)
        expected = np.zeros_like(totals[source])
        for path in aliases:
            credited = path in case.wrt or (_is_same_object(case, path) and object_listed)
            if credited:
                expected += _to_storage(case, path, partials[path])
        step = _identity_policy_step(case, result.grads, source)
        np.testing.assert_allclose(step, expected, rtol=FD_RTOL, atol=FD_ATOL, err_msg=source)
        every_alias_credited = all(
            p in case.wrt or (_is_same_object(case, p) and object_listed) for p in aliases
        )
        if every_alias_credited:
            np.testing.assert_allclose(step, totals[source], rtol=FD_RTOL, atol=FD_ATOL)


def test_each_experiment_shows_a_contrast() -> None:
    """Every experiment has a case where listing only the source loses a view's part,
    or (identity ties only) a case where every alias is the source object itself."""
    for experiment in EXPERIMENTS:
        cases = _built(experiment).values()
        unlisted_view = any(
            p not in c.wrt and not _is_same_object(c, p)
            for c in cases for p in c.params
        )
        identity_only = any(
            isinstance(s, TiedParam) and _is_same_object(c, p)
            for c in cases for p, s in c.params.items()
        )
        assert unlisted_view or identity_only, experiment
