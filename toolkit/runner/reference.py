"""The ground truth: float64 finite differences on each distinct storage, in plain NumPy.

The reference never uses an AD system. It evaluates the case's loss with NumPy
(:func:`toolkit.namespaces.numpy_namespace`) and differentiates by central differences,
refined by Richardson extrapolation; the gap between two successive extrapolations is
reported as the error estimate. Buffers up to ``FULL_LIMIT`` elements are
differenced element by element; larger ones get ``directions`` random unit directions, and
every comparison against them is made on those projections.

Besides the total derivative on each storage, it measures the *partial* through each alias
(the derivative when only that alias's copy moves), which the verdicts use to name what a
strategy missed or double-counted.

Example:
    >>> from toolkit.experiment import Case, Param, tie
    >>> case = Case("c2", {"x": Param((1,), values=[1.0]), "xt": tie("x", "adjoint")},
    ...             lambda np, p, d: np.sum(p.xt * p.x), wrt=("x",))
    >>> ref = compute_reference(case, case.initial_values(0), {})
    >>> [round(float(v), 6) for v in ref.storages["x"].total]
    [2.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.experiment import Case, TiedParam
from toolkit.runner.evaluate import NumpyEvaluator

FULL_LIMIT = 4096


@dataclass
class StorageReference:
    """Reference derivatives for one storage.

    Attributes:
        source: the path that owns the storage.
        shape: the storage's shape.
        directions: ``None`` (full differences) or a ``(K, size)`` matrix of unit directions.
        total: the total derivative, flattened (full) or projected on ``directions``.
        error: the error estimate, same layout as ``total``.
        partials: alias path → derivative through that alias alone, same layout.
    """

    source: str
    shape: tuple[int, ...]
    directions: np.ndarray | None
    total: np.ndarray
    error: np.ndarray
    partials: dict[str, np.ndarray] = field(default_factory=dict)

    def project(self, grad_in_storage: np.ndarray) -> np.ndarray:
        """Puts a storage-shaped gradient in this reference's layout."""
        flat = np.asarray(grad_in_storage, dtype=np.float64).reshape(-1)
        return flat if self.directions is None else self.directions @ flat

    @property
    def mode(self) -> str:
        """``"full"`` or ``"directional(K)"``."""
        return "full" if self.directions is None else f"directional({len(self.directions)})"


@dataclass
class Reference:
    """The loss value and a :class:`StorageReference` per storage."""

    value: float
    storages: dict[str, StorageReference]


def to_storage(case: Case, path: str, grad: np.ndarray) -> np.ndarray:
    """Sends a gradient w.r.t. ``path``'s view back to its storage's coordinates: the tie
    map's adjoint (the chain rule through the tie; a scatter-add for a partial tie).

    Example:
        >>> from toolkit.experiment import Case, Param, tie
        >>> c = Case("c", {"v": Param((4,)), "b": tie("v", "[:2]")}, lambda np, p, d: 0, ())
        >>> to_storage(c, "b", np.array([1.0, 2.0]))
        array([1., 2., 0., 0.])
    """
    source = case.storage_of(path)
    shape = tuple(case.params[source].shape)
    spec = case.params[path]
    if not isinstance(spec, TiedParam):
        return np.asarray(grad, dtype=np.float64).reshape(shape)
    return np.asarray(case.map_of(path).adjoint(np.asarray(grad, dtype=np.float64), shape))


def _derivative(f: Callable[[float], float], h: float) -> tuple[float, float]:
    """Central differences at ``h`` and ``h/2`` refined by Richardson extrapolation.

    The error estimate is the gap to the same extrapolation one halving further (``h/2``,
    ``h/4``): it measures the extrapolated value's own error, truncation and rounding.
    """

    def central(step: float) -> float:
        return (f(step) - f(-step)) / (2 * step)

    d1, d2, d3 = central(h), central(h / 2), central(h / 4)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d3 - d2) / 3
    return r2, abs(r2 - r1)


def compute_reference(
    case: Case,
    storages: Mapping[str, np.ndarray],
    data: Mapping[str, Any],
    *,
    directions: int = 16,
    seed: int = 0,
    step: float = 1e-4,
    full_limit: int = FULL_LIMIT,
    tick: Callable[[int, int], None] | None = None,
) -> Reference:
    """Finite-difference derivatives of ``case``'s loss on each storage and through each alias.

    Args:
        case: the case.
        storages: the value of each storage (``case.sources``); used in float64.
        data: the case's constant inputs.
        directions: random directions for buffers larger than ``full_limit``.
        seed: seeds the random directions.
        step: the central-difference step, relative to ``max(1, |x|)``.
        full_limit: largest buffer differenced element by element.
        tick: called with (derivatives done, derivatives in all) as the work goes on.

    Returns:
        A :class:`Reference`.
    """
    ev = NumpyEvaluator(case, data)
    base = {k: np.array(v, dtype=np.float64) for k, v in storages.items()}
    rng = np.random.default_rng([seed, 2])
    moves = {s: min(base[s].size, directions) if base[s].size > full_limit else base[s].size
             for s in case.sources}
    # One derivative per move for the total, and one per alias for the partials.
    total = sum(n * (1 + (len(case.aliases_of(s)) if len(case.aliases_of(s)) > 1 else 0))
                for s, n in moves.items())
    count = [0]

    def advance() -> None:
        count[0] += 1
        if tick is not None:
            tick(count[0], total)

    out: dict[str, StorageReference] = {}
    for source in case.sources:
        dirs = None
        if base[source].size > full_limit:
            dirs = rng.standard_normal((directions, base[source].size))
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        out[source] = _storage_reference(ev, base, source, dirs, step, advance)
    return Reference(ev.tied(base), out)


def _storage_reference(
    ev: NumpyEvaluator,
    base: dict[str, np.ndarray],
    source: str,
    dirs: np.ndarray | None,
    step: float,
    advance: Callable[[], None],
) -> StorageReference:
    x = base[source]
    h = step * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    if dirs is None:
        basis = np.eye(x.size).reshape((x.size, *x.shape))
    else:
        basis = dirs.reshape((len(dirs), *x.shape))

    def moved(t: float, e: np.ndarray) -> float:
        return ev.tied({**base, source: x + t * e})

    def derivative(f: Callable[[float], float]) -> tuple[float, float]:
        result = _derivative(f, h)
        advance()
        return result

    estimates = [derivative(functools.partial(moved, e=e)) for e in basis]
    total = np.array([d for d, _ in estimates])
    error = np.array([err for _, err in estimates])
    aliases = ev.case.aliases_of(source)
    if len(aliases) == 1:
        return StorageReference(source, x.shape, dirs, total, error, {source: total.copy()})
    copies = ev.copies_of(base)

    def moved_alias(t: float, alias: str, e: np.ndarray) -> float:
        return ev.untied({**copies, alias: copies[alias] + t * e})

    partials: dict[str, np.ndarray] = {}
    for alias in aliases:
        m = ev.maps.get(alias)
        moves = [np.asarray(m.apply(e)) if m else e for e in basis]
        partials[alias] = np.array([
            derivative(functools.partial(moved_alias, alias=alias, e=e))[0] for e in moves
        ])
    return StorageReference(source, x.shape, dirs, total, error, partials)


@dataclass(frozen=True)
class SlotReference:
    """Derivatives per argument slot, where one array is passed in several slots.

    Attributes:
        slots: slot name → the parameter path the slot reads.
        partials: slot name → the derivative when that slot alone moves (the others hold the
            array's current value), in the path's shape: what per-slot AD systems return.
        error: slot name → the largest error estimate of its partial.
    """

    slots: dict[str, str]
    partials: dict[str, np.ndarray]
    error: dict[str, float]


def compute_slot_reference(
    case: Case,
    storages: Mapping[str, np.ndarray],
    data: Mapping[str, Any],
    slots: Mapping[str, str],
    slot_loss: Callable[..., Any],
    *,
    step: float = 1e-4,
) -> SlotReference:
    """Finite differences that move one argument slot at a time.

    ``slot_loss(np, p, data, values)`` is the case's loss with ``values[name]`` in slot
    ``name``; the storage reference moves every slot together (their sum), this one each
    alone. Every element is differenced (slots hold small arrays: a cell's weights).

    Example:
        >>> from toolkit.experiment import Case, Param
        >>> def two_slots(np, p, d, v):
        ...     return np.sum(v["a"] * v["b"] * v["b"])
        >>> case = Case("c", {"w": Param((1,), values=[2.0])},
        ...             lambda np, p, d: two_slots(np, p, d, {"a": p.w, "b": p.w}), ("w",))
        >>> ref = compute_slot_reference(case, {"w": np.array([2.0])}, {},
        ...                              {"a": "w", "b": "w"}, two_slots)
        >>> [round(float(ref.partials[s][0]), 6) for s in "ab"]   # w², 2w·w: total 3w² = 12
        [4.0, 8.0]
    """
    ev = NumpyEvaluator(case, data)
    tree = ev.tree({k: np.array(v, dtype=np.float64) for k, v in storages.items()})
    values = {name: np.array(tree[path], dtype=np.float64) for name, path in slots.items()}
    partials, error = {}, {}
    for name, x in values.items():
        h = step * max(1.0, float(np.max(np.abs(x), initial=0.0)))

        def moved(t: float, e: np.ndarray, name: str = name, x: np.ndarray = x) -> float:
            return float(slot_loss(ev.ns, tree, ev.data, {**values, name: x + t * e}))

        basis = np.eye(x.size).reshape((x.size, *x.shape))
        estimates = [_derivative(functools.partial(moved, e=e), h) for e in basis]
        partials[name] = np.array([d for d, _ in estimates]).reshape(x.shape)
        error[name] = float(max((err for _, err in estimates), default=0.0))
    return SlotReference(dict(slots), partials, error)
