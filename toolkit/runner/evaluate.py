"""A case's loss evaluated in plain NumPy: on the tied storages, or with every alias a copy.

The finite-difference reference (:mod:`toolkit.runner.reference`) differentiates these two
functions, and the preflight (:mod:`toolkit.runner.preflight`) evaluates the first once to
check that a case's code runs. A tied parameter is handed to the loss as a NumPy view that
knows its ``.parent``, as the tape's views do.

Example:
    >>> from toolkit.experiment import Case, Param, tie
    >>> case = Case("c2", {"x": Param((1,), values=[3.0]), "xt": tie("x", "adjoint")},
    ...             lambda np, p, d: np.sum(p.xt * p.x), wrt=("x",))
    >>> NumpyEvaluator(case, {}).tied({"x": np.array([3.0])})
    9.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from toolkit.experiment import Case, ParamTree, TiedParam, cast_floats
from toolkit.namespaces import numpy_namespace


class _NumpyTied(np.ndarray):
    """A NumPy view of a tied parameter that knows its ``.parent`` (as the tape's views do)."""

    parent: np.ndarray


def _tied(value: np.ndarray, parent: np.ndarray) -> np.ndarray:
    out = np.asarray(value).view(_NumpyTied)
    out.parent = parent
    return out


class NumpyEvaluator:
    """Evaluates a case's loss in NumPy float64, tied or with every alias as its own copy."""

    def __init__(self, case: Case, data: Mapping[str, Any]) -> None:
        self.case = case
        self.data = cast_floats(data, np.float64)
        self.ns = numpy_namespace()
        self.maps = {
            path: case.map_of(path)
            for path, spec in case.params.items()
            if isinstance(spec, TiedParam)
        }

    def tree(self, storages: Mapping[str, np.ndarray]) -> ParamTree:
        """Every path as the loss reads it, aliases computed from their storages."""
        flat: dict[str, Any] = {}
        for path in self.case.params:
            src = storages[self.case.storage_of(path)]
            if path in self.maps:
                m = self.maps[path]
                flat[path] = src if m.is_identity else _tied(m.apply(src), src)
            else:
                flat[path] = src
        return ParamTree(flat)

    def tied(self, storages: Mapping[str, np.ndarray]) -> float:
        """The loss with aliases computed from their storages (what the case means)."""
        return float(self.case.loss(self.ns, self.tree(storages), self.data))

    def untied(self, copies: Mapping[str, np.ndarray]) -> float:
        """The loss with each alias its own copy (mapped shape); ``.parent`` of a copy is its
        inverse image, or the source's copy for a map with no inverse (slices)."""
        flat: dict[str, Any] = {}
        for path in self.case.params:
            value = copies[path]
            if path in self.maps:
                m = self.maps[path]
                src = copies[self.case.storage_of(path)]
                parent = m.inverse(value) if m.invertible else src
                flat[path] = _tied(value, parent)
            else:
                flat[path] = value
        return float(self.case.loss(self.ns, ParamTree(flat), self.data))

    def copies_of(self, storages: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every alias as its own array, copied from the storages."""
        out = {}
        for path in self.case.params:
            src = storages[self.case.storage_of(path)]
            out[path] = np.array(self.maps[path].apply(src) if path in self.maps else src)
        return out
