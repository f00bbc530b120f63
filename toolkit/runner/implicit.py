"""The native tape backend: ``implicit-identity`` and ``implicit-storage`` on shared experiments.

Each source parameter becomes a named tape leaf; each tie becomes a view of its source's
storage, created outside the differentiated function and named after its path (an identity
tie is the source object itself, as a struct field holding the same array). ``Params`` holds
the ``wrt`` objects, so the tape's alias policies see exactly what Zygote's implicit ``Params``
would.

Training applies an optax optimizer through ``Params`` the way Flux's implicit ``update!``
does: one optimizer state per param, each update written in place (views write through to
their storage). Under ``implicit-storage`` the update is applied once per storage, through
the alias that covers most of it.

Example:
    >>> from toolkit.experiments.aliasing import cases
    >>> case2 = next(c for c in cases() if c.name == "case2")
    >>> problem = Problem(case2, case2.initial_values(0), {}, ("x",))
    >>> r = compute_gradients("implicit-identity", problem, policy="identity")
    >>> r.grads["x"], sorted(r.globals)
    (array([1.]), ['x', 'xt'])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from toolkit import tape
from toolkit.experiment import Case, ParamTree, TiedParam
from toolkit.problem import GradientResult, Problem


def build_arrays(case: Case, values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Tape objects for every parameter path: named leaves for sources, views for ties.

    Example:
        >>> from toolkit.experiments.aliasing import cases
        >>> arrays = build_arrays(cases()[1], {"x": np.array([1.0])})
        >>> arrays["xt"].parent is arrays["x"], arrays["xt"].shape
        (True, (1, 1))
    """
    arrays: dict[str, Any] = {
        path: tape.array(np.array(values[path]), name=path) for path in case.sources
    }
    for path, spec in case.params.items():
        if not isinstance(spec, TiedParam):
            continue
        tie_map = case.map_of(path)
        if tie_map.is_identity:
            arrays[path] = arrays[spec.source]
        elif tie_map.is_view:  # a scaled tie is not memory: _Model computes it in the loss
            view = tie_map.apply(arrays[spec.source])
            view.name = path
            arrays[path] = view
    return arrays


def _to_numpy(g: Any) -> Any:
    if g is None:
        return None
    if isinstance(g, Mapping):
        return {k: _to_numpy(v) for k, v in g.items()}
    return np.array(g.numpy() if hasattr(g, "numpy") else g)


class _Model:
    """A case's tape arrays, its ``Params`` and its loss closure."""

    def __init__(self, problem: Problem, policy: str) -> None:
        case = self.case = problem.case
        self.policy = policy
        self.arrays = build_arrays(case, problem.values)
        computed = [p for p in case.params if p not in self.arrays]
        for p in set(computed) & set(problem.wrt):
            raise ValueError(
                f"case {case.name!r}: {p!r} = {case.map_of(p).describe(case.storage_of(p))} is "
                f"no view of memory, so the tape computes it inside the loss and it cannot be "
                f"differentiated as a param; list {case.storage_of(p)!r} instead"
            )
        self.params = tape.Params(self.arrays[p] for p in problem.wrt)
        self.data = dict(problem.data)
        self.loss = lambda: case.loss(tape.numpy, self.tree(), self.data)

    def tree(self) -> ParamTree:
        """Every parameter path as the loss reads it (computed ties recomputed)."""
        case = self.case
        return ParamTree({
            p: self.arrays[p] if p in self.arrays
            else case.map_of(p).apply(self.arrays[case.storage_of(p)])
            for p in case.params
        })

    def withgradient(self) -> tuple[float, Any]:
        with warnings.catch_warnings():
            # Several aliases of one storage in Params is the point of these experiments;
            # the trainer applies storage totals once per storage, as the warning asks.
            warnings.simplefilter("ignore", tape.AliasWarning)
            value, grads = tape.withgradient(self.loss, self.params, alias=self.policy)
        return float(np.asarray(value.numpy() if hasattr(value, "numpy") else value)), grads


def compute_gradients(strategy: str, problem: Problem, *, policy: str) -> GradientResult:
    """Gradients of the problem's loss under the tape's ``identity`` or ``storage`` policy.

    See :func:`toolkit.runner.strategies.compute_gradients` (the registry dispatching here).
    """
    model = _Model(problem, policy)
    value, grads = model.withgradient()
    return GradientResult(
        strategy,
        value,
        {p: _to_numpy(grads[model.arrays[p]]) for p in problem.wrt},
        {name: _to_numpy(g) for name, g in grads.globals.items()},
    )


class ImplicitTrainer:
    """Trains a case through implicit ``Params``, as Flux's implicit ``update!``.

    ``identity`` policy: every param in ``Params`` gets its own optimizer state and update,
    written in place through its view. ``storage`` policy: one state and one update per
    storage, applied through the alias covering most of it (the source when listed).

    Example:
        >>> import optax
        >>> from toolkit.experiments.tied_autoencoder import cases
        >>> case = cases()[0]
        >>> problem = Problem.from_case(case, seed=0)
        >>> t = ImplicitTrainer("implicit-storage", problem, optax.adam(1e-2), policy="storage")
        >>> t.step() > t.step()
        True
    """

    def __init__(self, strategy: str, problem: Problem, optimizer: Any, *, policy: str) -> None:
        import jax

        from toolkit.explicit import use_dtype

        use_dtype(problem.values)  # optax state in float64 for float64 storages
        self.strategy = strategy
        self._model = _Model(problem, policy)
        arrays, case = self._model.arrays, problem.case
        distinct: list[str] = []  # one path per object in Params (identity ties coincide)
        for p in problem.wrt:
            if all(arrays[p] is not arrays[q] for q in distinct):
                distinct.append(p)
        if policy == "storage":
            widest: dict[str, str] = {}
            for p in distinct:
                s = case.storage_of(p)
                if s not in widest or arrays[p].size > arrays[widest[s]].size:
                    widest[s] = p
            distinct = [p for p in distinct if widest.get(case.storage_of(p)) == p]
        self._targets = distinct
        self._states = [optimizer.init(arrays[p].numpy()) for p in distinct]
        self._update = jax.jit(optimizer.update)

    def step(self, data: Mapping[str, Any] | None = None) -> float:
        """Returns the loss at the current parameters (on ``data``, when given, from now on),
        then updates each target in place."""
        if data is not None:
            self._model.data = dict(data)
        value, grads = self._model.withgradient()
        arrays, case = self._model.arrays, self._model.case
        for i, path in enumerate(self._targets):
            x = arrays[path]
            g = grads[x]
            if g is None:  # Flux's update! skips params without a gradient
                continue
            if isinstance(g, Mapping):  # structural {"parent": g}: into the view's coordinates
                g = case.map_of(path).apply(_to_numpy(g["parent"]))
            current = x.numpy()
            updates, self._states[i] = self._update(_to_numpy(g), self._states[i], current)
            x[...] = current + np.asarray(updates)
        return value

    def storage_values(self) -> dict[str, np.ndarray]:
        """The current value of each storage."""
        return {s: np.array(self._model.arrays[s].numpy()) for s in self._model.case.sources}

    def tie_drift(self) -> float:
        """Always 0.0: aliases are views of one storage."""
        return 0.0

    def evaluate(self, metric: Any, data: Mapping[str, Any]) -> float:
        """``metric(np, params, data)`` at the current parameters, on the tape's namespace."""
        value = metric(tape.numpy, self._model.tree(), dict(data))
        return float(np.asarray(value.numpy() if hasattr(value, "numpy") else value))
