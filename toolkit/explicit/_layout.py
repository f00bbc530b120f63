"""How each JAX strategy lays a case's parameters out as a pytree of leaves.

* ``copies`` (``explicit``): every parameter path is its own leaf; a tie's leaf holds a copy
  of ``map(source)``. Its ``.parent`` is ``map⁻¹(copy)``. Only the ``wrt`` leaves are
  differentiated.
* ``merged`` (``explicit-merged``, and ``tied`` in training): the same leaves, but every alias
  of each differentiated storage is differentiated, and :class:`~toolkit.transforms.Tie`
  objects link each alias to its source so gradients can be merged.
* ``shared`` (``explicit-shared``): one leaf per storage; an alias is ``map(source)`` computed
  inside the loss, its ``.parent`` the source leaf.

Leaves live in a flat dict keyed by parameter path; :mod:`toolkit.transforms` resolves its
dotted tie paths against exactly those keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toolkit.experiment import Case, ParamTree, TiedParam
from toolkit.explicit._alias import Alias, alias_namespace
from toolkit.namespaces import jax_namespace
from toolkit.transforms import Tie

NAMESPACE = alias_namespace(jax_namespace())
KINDS = ("copies", "merged", "shared")


def use_dtype(values: Mapping[str, np.ndarray]) -> None:
    """Switches JAX to 64-bit mode when any value is float64 (it would be truncated)."""
    if any(np.asarray(v).dtype == np.float64 for v in values.values()):
        jax.config.update("jax_enable_x64", True)


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Layout:
    """A case's parameters as JAX leaves, for one strategy.

    Attributes:
        kind: ``"copies"``, ``"merged"`` or ``"shared"``.
        case: the experiment case.
        leaves: initial value of every leaf, keyed by parameter path.
        diff: the differentiated leaves.
    """

    kind: str
    case: Case
    leaves: dict[str, jax.Array]
    diff: tuple[str, ...]

    @classmethod
    def build(
        cls, kind: str, case: Case, values: Mapping[str, np.ndarray], wrt: Sequence[str]
    ) -> Layout:
        """Lays ``case`` out as ``kind`` from the storages' initial ``values``."""
        if kind not in KINDS:
            raise ValueError(f"unknown layout {kind!r}; valid: {', '.join(KINDS)}")
        use_dtype(values)
        storages = _unique([case.storage_of(p) for p in wrt])
        if kind == "shared":
            leaves = {s: jnp.asarray(values[s]) for s in case.sources}
            return cls(kind, case, leaves, storages)
        leaves = {
            path: jnp.asarray(case.map_of(path).apply(np.asarray(values[case.storage_of(path)])))
            for path in case.params
        }
        if kind == "copies":
            return cls(kind, case, leaves, _unique(wrt))
        return cls(kind, case, leaves, tuple(a for s in storages for a in case.aliases_of(s)))

    def split(self) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """The leaves as ``(differentiated, constant)`` dicts."""
        diff = {p: self.leaves[p] for p in self.diff}
        const = {p: v for p, v in self.leaves.items() if p not in diff}
        return diff, const

    def tree(self, leaves: Mapping[str, Any]) -> ParamTree:
        """The :class:`ParamTree` a loss reads, tied parameters as :class:`Alias`."""
        flat: dict[str, Any] = {}
        for path, spec in self.case.params.items():
            if not isinstance(spec, TiedParam):
                flat[path] = leaves[path]
                continue
            source = leaves[spec.source]
            tie_map = self.case.map_of(path)
            if self.kind == "shared":
                flat[path] = Alias(tie_map.apply(source), parent=lambda s=source: s)
            else:
                copy = leaves[path]
                flat[path] = Alias(copy, parent=_inverse(tie_map, copy, source.shape, path))
        return ParamTree(flat)

    def loss(self, diff: Mapping[str, Any], const: Mapping[str, Any], data: Any) -> Any:
        """The case's loss on the leaves ``diff`` ∪ ``const``."""
        return self.case.loss(NAMESPACE, self.tree({**const, **diff}), data)

    def report(self, grads: Mapping[str, Any], wrt: Sequence[str]) -> dict[str, np.ndarray]:
        """The gradient for each ``wrt`` path, in that path's own shape."""
        if self.kind == "shared":
            return {
                p: np.asarray(self.case.map_of(p).apply(grads[self.case.storage_of(p)]))
                for p in wrt
            }
        return {p: np.asarray(grads[p]) for p in wrt}

    @property
    def ties(self) -> list[Tie]:
        """The ties the ``merged`` layout merges: those among differentiated leaves."""
        if self.kind != "merged":
            return []
        return [t for t in self.all_ties() if t.target in self.diff]

    def all_ties(self) -> list[Tie]:
        """Every tie of the case between separate leaves (none for the ``shared`` layout)."""
        if self.kind == "shared":
            return []
        return [
            Tie(spec.source, path, self.case.map_of(path))
            for path, spec in self.case.params.items() if isinstance(spec, TiedParam)
        ]


def _inverse(tie_map: Any, copy: Any, source_shape: tuple[int, ...], path: str) -> Any:
    def parent() -> Any:
        if not tie_map.invertible:
            raise ValueError(
                f"{path}.parent: under the explicit strategy {path!r} is its own copy, and its "
                f"map {tie_map} is a partial tie, so the full parent cannot be recovered; read "
                "the source parameter instead, or use explicit-shared"
            )
        return tie_map.inverse(copy, source_shape)

    return parent
