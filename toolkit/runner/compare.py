"""What a strategy's gradients do to each storage, judged against the reference.

A gradient can be judged two ways: the raw gradients a user sees, and the *effective SGD
step* each storage receives when plain SGD is handed those gradients. Two update rules are
measured for every strategy:

* ``per-param``: SGD updates every listed param in place and views write through, so each
  param's gradient lands on its storage (Zygote/Flux implicit ``update!``). Identity-policy
  partials are exact this way when every alias is listed; storage totals are counted once
  per listed alias.
* ``per-storage``: each storage is updated once, with the gradient of its first listed alias
  (how storage totals must be applied; partials then miss the other aliases).

Each step is compared with the true gradient on the storage; a mismatch is explained as a
combination of the partials through individual aliases. The result is a typed
:class:`~toolkit.runner.results.Verdict` (``kind``, the aliases ``via`` which, the error),
whose text reads ``missing contribution (via …)`` or ``double-counted (via …)``. Training
trajectories get a :class:`~toolkit.runner.results.TrainingVerdict` (:func:`judge_training`).

Example:
    >>> import numpy as np
    >>> v = classify(np.array([1.0]), np.array([2.0]),
    ...              {"x": np.array([1.0]), "xt": np.array([1.0])},
    ...              listed=["x"], rtol=1e-6, atol=1e-9)
    >>> v.kind, v.via, str(v)
    ('missing', ('xt',), 'missing contribution (via xt)')
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.experiment import Case, TiedParam
from toolkit.runner.reference import Reference, SlotReference, to_storage
from toolkit.runner.results import TrainingVerdict, Verdict, VerdictKind

RULES = ("per-param", "per-storage")


def _as_array(grad: Any) -> np.ndarray | None:
    """A raw gradient as an array in its param's view, or None (structural handled apart)."""
    if grad is None:
        return None
    return np.asarray(grad, dtype=np.float64)


def storage_contribution(case: Case, path: str, grad: Any) -> np.ndarray | None:
    """The step a gradient for ``path`` puts on ``path``'s storage (None: nothing).

    A structural gradient ``{"parent": g}`` updates the wrapper's parent, which is the
    storage itself.
    """
    if grad is None:
        return None
    source = case.storage_of(path)
    if isinstance(grad, Mapping):
        parent = grad.get("parent")
        if parent is None:
            return None
        return np.asarray(parent, dtype=np.float64).reshape(case.params[source].shape)
    return to_storage(case, path, _as_array(grad))


def param_key(case: Case, path: str, *, same_object: bool) -> str:
    """Which Params entry ``path`` is: an identity tie is its source's very object when the
    engine shares objects (the tape), and a leaf of its own otherwise (explicit pytrees)."""
    spec = case.params[path]
    if same_object and isinstance(spec, TiedParam) and spec.map.is_identity:
        return spec.source
    return path


def applied_params(
    case: Case, wrt: Sequence[str], rule: str, *, same_object: bool = False
) -> list[str]:
    """The listed params whose gradients ``rule`` applies: one per Params entry (per-param;
    Params holds an object once) or the first of each storage (per-storage)."""
    first: dict[str, str] = {}
    for path in wrt:
        key = case.storage_of(path) if rule == "per-storage" else param_key(
            case, path, same_object=same_object
        )
        first.setdefault(key, path)
    return list(first.values())


def effective_steps(
    case: Case,
    grads: Mapping[str, Any],
    wrt: Sequence[str],
    rule: str,
    *,
    same_object: bool = False,
) -> dict[str, np.ndarray | None]:
    """The (negated, unit learning rate) SGD step on each storage under ``rule``.

    Args:
        case: the case.
        grads: wrt path → raw gradient.
        wrt: the listed params.
        rule: one of :data:`RULES`.
        same_object: identity ties are the same object as their source (implicit engines).

    Returns:
        source path → storage-shaped step, or None when no listed param sees that storage.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(RULES)}")
    steps: dict[str, np.ndarray | None] = {s: None for s in case.sources}
    for path in applied_params(case, wrt, rule, same_object=same_object):
        source = case.storage_of(path)
        contrib = storage_contribution(case, path, grads.get(path))
        zero = np.zeros(case.params[source].shape)
        steps[source] = (steps[source] if steps[source] is not None else zero) + (
            contrib if contrib is not None else zero
        )
    return steps


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    return bool(np.allclose(a, b, rtol=rtol, atol=atol))


def classify(
    step: np.ndarray | None,
    truth: np.ndarray,
    partials: Mapping[str, np.ndarray],
    *,
    listed: Sequence[str],
    rtol: float,
    atol: float,
    reapplied: Mapping[str, np.ndarray] | None = None,
    max_aliases: int = 10,
) -> Verdict:
    """Names what ``step`` (in the reference's layout) is relative to ``truth``.

    Tries, in order: exact; missing the partials of a set of aliases; the true gradient
    applied again through a set of listed aliases (``reapplied``: the truth seen through
    each alias's view and sent back to the storage); the partials of a set of listed aliases
    counted twice. Smaller sets come first; among equals, sets of unlisted aliases for
    "missing" (when partials coincide, the unlisted one went missing) and of non-source
    aliases for "double-counted". Else ``wrong``.

    Args:
        step: the storage's effective step, or None when no listed param sees it.
        truth: the true gradient.
        partials: alias → derivative through that alias alone (declaration order, source
            first).
        listed: the aliases whose gradients were applied.
        rtol: relative tolerance.
        atol: absolute tolerance.
        reapplied: alias → the truth re-applied through that alias (default: ``truth``).
        max_aliases: the search covers this many aliases at most.

    Returns:
        A :class:`~toolkit.runner.results.Verdict`; its ``error`` is the step's max abs error.
    """
    if step is None:
        return Verdict("no-step")
    residual = step - truth
    err = float(np.max(np.abs(residual), initial=0.0))
    if _close(step, truth, rtol, atol):
        return Verdict("exact", error=err)
    aliases = list(partials)[:max_aliases]
    found = _explain(residual, aliases, partials, listed, rtol, atol,
                     reapplied if reapplied is not None else dict.fromkeys(aliases, truth))
    return Verdict(found[0], found[1], err) if found else Verdict("wrong", error=err)


def _subsets(names: Sequence[str], key: Any) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``names``, smallest first, then by ``key``'s count."""
    combos = (c for n in range(1, len(names) + 1) for c in itertools.combinations(names, n))
    return sorted(combos, key=lambda c: (len(c), sum(key(a) for a in c)))


def _explain(
    residual: np.ndarray, aliases: list[str], partials: Mapping[str, np.ndarray],
    listed: Sequence[str], rtol: float, atol: float, again: Mapping[str, np.ndarray],
) -> tuple[VerdictKind, tuple[str, ...]] | None:
    """The first explanation of ``residual`` (see :func:`classify`), or None."""
    for subset in _subsets(aliases, lambda a: a in listed):
        if _close(residual, -sum(partials[a] for a in subset), rtol, atol):
            return "missing", subset
    applied = [a for a in aliases if a in listed]
    not_source = [a for a in applied if a in again]
    for subset in _subsets(not_source, lambda a: a == aliases[0]):
        if _close(residual, sum(again[a] for a in subset), rtol, atol):
            return "double-counted", subset
    for subset in _subsets(applied, lambda a: a == aliases[0]):
        if _close(residual, sum(partials[a] for a in subset), rtol, atol):
            return "double-counted", subset
    return None


@dataclass(frozen=True)
class StorageVerdict:
    """One storage under one rule.

    Attributes:
        source: the storage's source path.
        rule: one of :data:`RULES`.
        verdict: what the rule's step on the storage is; ``verdict.error`` is its max abs
            error against the reference (``None``: no step).
    """

    source: str
    rule: str
    verdict: Verdict


def _reapplied(case: Case, reference: Reference, source: str) -> dict[str, np.ndarray]:
    """Per alias: the true gradient seen through its view and sent back to the storage.

    Under directional checks only full views (invertible maps) can be computed: the truth
    itself. Slices are then left out of the "double-counted" search.
    """
    ref = reference.storages[source]
    out = {}
    for alias in case.aliases_of(source):
        if _is_full_view(case, alias):
            out[alias] = ref.total
        elif ref.directions is None:
            view = _view_of_total(case, alias, ref.total.reshape(ref.shape))
            out[alias] = ref.project(to_storage(case, alias, view))
    return out


def judge(
    case: Case,
    grads: Mapping[str, Any],
    wrt: Sequence[str],
    reference: Reference,
    *,
    rtol: float,
    atol: float,
    same_object: bool = False,
) -> list[StorageVerdict]:
    """Verdicts for every storage under both rules.

    ``atol`` is widened by three times the reference's own error estimate, so a verdict
    never hinges on finite-difference noise. ``same_object``: see :func:`effective_steps`.
    """
    out = []
    for rule in RULES:
        steps = effective_steps(case, grads, wrt, rule, same_object=same_object)
        listed = applied_params(case, wrt, rule, same_object=same_object)
        for source, ref in reference.storages.items():
            step = steps[source]
            projected = None if step is None else ref.project(step)
            tol = atol + 3 * float(np.max(ref.error, initial=0.0))
            verdict = classify(
                projected, ref.total, ref.partials, listed=listed, rtol=rtol, atol=tol,
                reapplied=_reapplied(case, reference, source),
            )
            out.append(StorageVerdict(source, rule, verdict))
    return out


def judge_training(
    max_tie_drift: float,
    max_distance: float,
    tolerance: float,
    *,
    diverged_at: int | None = None,
) -> TrainingVerdict:
    """The verdict on a training run from its worst tie drift and distance to the baseline.

    A run that stopped being finite (``diverged_at``: its first such step) is ``diverged``
    whatever else it did. Drifting ties are named next: once copies move apart the trajectory
    cannot be right.

    Example:
        >>> judge_training(0.0, 2e-3, 1e-6).kind, judge_training(0.0, 1e-9, 1e-6).kind
        ('wrong-trajectory', 'exact')
        >>> str(judge_training(0.0, 1e-9, 1e-6, diverged_at=7))
        'diverged (not finite at step 7)'
    """
    if diverged_at is not None:
        return TrainingVerdict("diverged", max_tie_drift, max_distance, diverged_at)
    if max_tie_drift > tolerance:
        kind = "ties-drift"
    elif max_distance > tolerance:
        kind = "wrong-trajectory"
    else:
        kind = "exact"
    return TrainingVerdict(kind, max_tie_drift, max_distance)


def raw_errors(
    case: Case, grads: Mapping[str, Any], reference: Reference
) -> dict[str, float | None]:
    """Per listed path: max abs error of its gradient against the true total seen through
    its view. Under directional references it is measured on the projections, for full views
    only. None where it cannot be measured (no gradient, a structural one, a slice under
    directional checks)."""
    out: dict[str, float | None] = {}
    for path, grad in grads.items():
        out[path] = None
        if grad is None or isinstance(grad, Mapping):
            continue
        ref = reference.storages[case.storage_of(path)]
        g = _as_array(grad)
        if ref.directions is None:
            truth_in_view = _view_of_total(case, path, ref.total.reshape(ref.shape))
            out[path] = float(np.max(np.abs(g - truth_in_view), initial=0.0))
        elif _is_full_view(case, path):
            mine = ref.project(to_storage(case, path, g))
            out[path] = float(np.max(np.abs(mine - ref.total), initial=0.0))
    return out


def _is_full_view(case: Case, path: str) -> bool:
    # Every storage element seen once, unscaled: the map's adjoint undoes it.
    tie_map = case.map_of(path)
    return tie_map.invertible and tie_map.is_view


def _view_of_total(case: Case, path: str, total: np.ndarray) -> np.ndarray:
    """The storage's total gradient seen through ``path``'s view."""
    return np.asarray(case.map_of(path).apply(total))


def slot_semantics(
    case: Case, grads: Mapping[str, Any], slots: SlotReference, reference: Reference, *,
    rtol: float, atol: float,
) -> str:
    """Which semantics a strategy's gradients follow where one array fills several slots.

    ``slot``: the gradient of each slot's path is that slot's own partial; ``storage``: it is
    the total derivative on the array (the partials summed); ``either``: the slots' partials
    equal the total, so the two cannot be told apart; ``neither``: something else (a path
    without a gradient included).

    Example:
        >>> from toolkit.experiment import Case, Param, tie
        >>> from toolkit.runner.reference import SlotReference, compute_reference
        >>> case = Case("c", {"w": Param((1,), values=[2.0]), "a": tie("w"), "b": tie("w")},
        ...             lambda np, p, d: np.sum(p.a * p.b * p.b), ("a", "b"))
        >>> ref = compute_reference(case, {"w": np.array([2.0])}, {})
        >>> slots = SlotReference({"a": "a", "b": "b"},
        ...                       {"a": np.array([4.0]), "b": np.array([8.0])}, {"a": 0, "b": 0})
        >>> [slot_semantics(case, g, slots, ref, rtol=1e-6, atol=1e-6) for g in (
        ...     {"a": np.array([4.0]), "b": np.array([8.0])},
        ...     {"a": np.array([12.0]), "b": np.array([12.0])})]
        ['slot', 'storage']
    """
    totals, tol = {}, atol
    for name, path in slots.slots.items():
        ref = reference.storages[case.storage_of(path)]
        totals[name] = _view_of_total(case, path, ref.total.reshape(ref.shape))
        tol = max(tol, atol + 3 * float(np.max(ref.error, initial=0.0)) + 3 * slots.error[name])
    if all(_close(slots.partials[n], totals[n], rtol, tol) for n in slots.slots):
        return "either"
    got = {n: grads.get(path) for n, path in slots.slots.items()}
    if any(g is None or isinstance(g, Mapping) for g in got.values()):
        return "neither"
    arrays = {n: np.asarray(g, dtype=np.float64).reshape(totals[n].shape) for n, g in got.items()}
    if all(_close(arrays[n], slots.partials[n], rtol, tol) for n in arrays):
        return "slot"
    if all(_close(arrays[n], totals[n], rtol, tol) for n in arrays):
        return "storage"
    return "neither"
