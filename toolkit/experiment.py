"""Experiment declarations shared by every engine.

An experiment is written once and run by every strategy. It declares its parameters
(shape, initialiser, or a tie to another parameter) and a loss written against an array
namespace ``np`` that is either :mod:`toolkit.tape.numpy` or :mod:`jax.numpy`. Each backend
turns the declarations into its own objects: the native tape makes tied parameters views of
their source's storage; the JAX backends make them leaves (copies) or compute them inside
the function.

An experiment module defines ``cases(**hyperparameters) -> list[Case]``; the keyword
defaults of ``cases`` are the experiment's hyperparameters and their defaults.

Example:
    >>> from toolkit.experiment import Case, Param, tie
    >>> def loss(np, p, data):
    ...     return np.sum(p.xt * p.x)
    >>> case = Case(
    ...     "alias",
    ...     params={"x": Param((1,), values=[1.0]), "xt": tie("x", "adjoint")},
    ...     loss=loss,
    ...     wrt=("x",),
    ... )
    >>> case.storage_of("xt")
    'x'
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ConfigError
from toolkit.transforms import TieMap, parse_map

INITIALISERS = ("normal", "uniform", "zeros", "ones", "glorot")

Loss = Callable[[Any, "ParamTree", Mapping[str, Any]], Any]
DataFn = Callable[[np.random.Generator], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Param:
    """A parameter that owns its storage.

    Args:
        shape: the array shape.
        init: one of ``INITIALISERS`` or a callable ``(rng, shape) -> ndarray``.
        scale: multiplies the initialiser's draw (``normal``/``uniform``).
        values: fixed initial values (overrides ``init``), e.g. ``x = [1.0]``.
    """

    shape: tuple[int, ...]
    init: str | Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = "normal"
    scale: float = 1.0
    values: Any = None

    def initial_value(self, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
        """Draws this parameter's initial value (float64 draw, then cast to ``dtype``)."""
        shape = tuple(self.shape)
        if self.values is not None:
            out = np.asarray(self.values, dtype=np.float64).reshape(shape)
        elif callable(self.init):
            out = np.asarray(self.init(rng, shape), dtype=np.float64)
        elif self.init == "normal":
            out = self.scale * rng.standard_normal(shape)
        elif self.init == "uniform":
            out = self.scale * rng.uniform(-1.0, 1.0, shape)
        elif self.init == "zeros":
            out = np.zeros(shape)
        elif self.init == "ones":
            out = np.ones(shape)
        elif self.init == "glorot":
            fan_in, fan_out = (shape[-1], shape[0]) if len(shape) >= 2 else (shape[0], shape[0])
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            out = self.scale * rng.uniform(-limit, limit, shape)
        else:
            raise ValueError(f"unknown initialiser {self.init!r}; valid: {', '.join(INITIALISERS)}")
        if out.shape != shape:
            raise ValueError(f"initial value has shape {out.shape}, declared {shape}")
        return out.astype(dtype)


@dataclass(frozen=True)
class TiedParam:
    """A parameter that is ``map(source)``: it shares the source's storage.

    ``map`` is in the tie-map language of :func:`toolkit.transforms.parse_map`, the one the
    transforms use: ``"identity"`` (the same object reused), ``"transpose"``, ``"adjoint"``
    (a vector becomes a 1×n row, as Julia's ``x'``), an axes permutation, an index expression
    such as ``"[:3]"``, a scale such as ``"scale(0.5)"``, or maps joined by ``then``
    (``"[:, :3] then transpose"``). It is stored parsed, so a misspelt map fails where it is
    declared. ``source`` may itself be tied (a chain ``a -> b -> c``).
    """

    source: str
    map: TieMap = "identity"  # type: ignore[assignment]  # any parse_map spec; stored parsed

    def __post_init__(self) -> None:
        object.__setattr__(self, "map", parse_map(self.map))


def tie(source: str, map: Any = "identity") -> TiedParam:
    """Declares a parameter that is ``map(source)``, sharing ``source``'s storage.

    Example:
        >>> tie("enc.weight", "transpose")
        TiedParam(source='enc.weight', map=parse_map('transpose'))
        >>> tie("embed", "[:, :4] then transpose then scale(0.5)").map.describe("embed")
        '0.5 * embed[:, :4].T'
    """
    return TiedParam(source, map)


@dataclass(frozen=True)
class Case:
    """One differentiable function with its parameters.

    Args:
        name: the case's name, unique within its experiment.
        params: ordered mapping of dotted path (``"enc.weight"``, ``"layers.0.w"``) to a
            :class:`Param` or :class:`TiedParam`. A tie's source is a :class:`Param` or
            another tie; a chain ``a -> b -> c`` is stored resolved to its root, as
            ``c = (map_b then map_c)(a)``, so every tie in :attr:`params` names the storage it
            sees.
        loss: ``loss(np, p, data) -> scalar``; ``p`` is a :class:`ParamTree`.
        wrt: the paths differentiated by default (the implicit ``Params`` list).
        data: ``data(rng) -> dict`` of constant inputs, or ``None``.
        description: a line for reports (e.g. the case's Julia expression).
    """

    name: str
    params: Mapping[str, Param | TiedParam]
    loss: Loss
    wrt: tuple[str, ...]
    data: DataFn | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "wrt", tuple(self.wrt))
        for path, spec in self.params.items():
            if not isinstance(spec, Param | TiedParam):
                raise TypeError(f"case {self.name!r}: {path!r} must be Param or TiedParam")
        self.params.update({path: self._resolve(path) for path in self.params})
        for path, spec in self.params.items():
            if isinstance(spec, TiedParam):
                try:
                    self.shape_of(path)
                except ValueError as e:
                    raise ValueError(
                        f"case {self.name!r}: tie {path!r} = {spec.map.describe(spec.source)}: "
                        f"{e}"
                    ) from None
        for path in self.wrt:
            if path not in self.params:
                raise ValueError(
                    f"case {self.name!r}: wrt path {path!r} is not a parameter; "
                    f"valid: {', '.join(self.params)}"
                )

    def _resolve(self, path: str) -> Param | TiedParam:
        """``path``'s declaration with a chain of ties folded into one tie to its root."""
        spec, chain = self.params[path], [path]
        maps: list[TieMap] = []
        while isinstance(spec, TiedParam):
            maps.insert(0, spec.map)
            if spec.source in chain:
                cycle = " -> ".join([*chain[chain.index(spec.source) :], spec.source][::-1])
                raise ValueError(
                    f"case {self.name!r}: ties form a cycle: {cycle}; a chain of ties must end "
                    "at a declared Param"
                )
            source = self.params.get(spec.source)
            if source is None:
                raise ValueError(
                    f"case {self.name!r}: tie {chain[-1]!r} -> {spec.source!r}: the source must "
                    f"be a declared parameter; declared: {', '.join(self.params)}"
                )
            chain.append(spec.source)
            spec = source
        if len(chain) == 1:
            return spec
        return TiedParam(chain[-1], parse_map(maps))

    @property
    def sources(self) -> list[str]:
        """Paths that own storage (``Param``), in declaration order."""
        return [p for p, s in self.params.items() if isinstance(s, Param)]

    def storage_of(self, path: str) -> str:
        """The source path whose storage ``path`` sees (a chain's root)."""
        spec = self.params[path]
        return spec.source if isinstance(spec, TiedParam) else path

    def map_of(self, path: str) -> TieMap:
        """The tie map from ``path``'s storage to ``path`` (``identity`` for a source).

        Example:
            >>> c = Case("c", {"w": Param((2, 5)), "v": tie("w", "[:, :3]"),
            ...                "vt": tie("v", "transpose")}, lambda np, p, d: 0.0, ("w",))
            >>> c.storage_of("vt"), str(c.map_of("vt")), c.shape_of("vt")
            ('w', '[:, :3] then transpose', (3, 2))
        """
        spec = self.params[path]
        return spec.map if isinstance(spec, TiedParam) else parse_map("identity")

    def shape_of(self, path: str) -> tuple[int, ...]:
        """The shape ``path`` has: the declared shape, or its tie map's image of the source's.

        Example:
            >>> Case("c", {"w": Param((2, 5)), "wt": tie("w", "transpose")},
            ...      loss=lambda np, p, d: 0.0, wrt=("w",)).shape_of("wt")
            (5, 2)
        """
        source = self.params[self.storage_of(path)]
        assert isinstance(source, Param)
        return self.map_of(path).out_shape(tuple(source.shape))

    def aliases_of(self, source: str) -> list[str]:
        """Every path that sees ``source``'s storage, the source first."""
        return [p for p in self.params if self.storage_of(p) == source]

    def initial_values(self, seed: int, dtype: Any = np.float64) -> dict[str, np.ndarray]:
        """Initial values of the storages, identical for every backend given the seed."""
        rng = np.random.default_rng(seed)
        dt = np.dtype(dtype)
        return {p: self.params[p].initial_value(rng, dt) for p in self.sources}

    def make_data(self, seed: int, dtype: Any = np.float64) -> dict[str, np.ndarray]:
        """The case's constant inputs, drawn from their own stream of ``seed``."""
        if self.data is None:
            return {}
        return cast_floats(self.data(np.random.default_rng([seed, 1])), dtype)


def cast_floats(data: Mapping[str, Any], dtype: Any) -> dict[str, np.ndarray]:
    """``data``'s floating arrays in ``dtype``; integer inputs (indices) stay as they are.

    Example:
        >>> cast_floats({"x": [1.0], "i": [2]}, np.float32)["x"].dtype, cast_floats(
        ...     {"i": [2]}, np.float32)["i"].dtype.kind
        (dtype('float32'), 'i')
    """
    out = {}
    for k, v in data.items():
        a = np.asarray(v)
        out[k] = a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a
    return out


class ParamTree(Mapping[str, Any]):
    """Read-only nested view of flat dotted paths, by attribute or key.

    ``p.enc.weight``, ``p["enc.weight"]``, ``p["enc"]["weight"]`` and ``p.layers[0]`` (for
    ``"layers.0"``) all give the same object.

    Example:
        >>> p = ParamTree({"enc.weight": 1, "layers.0.w": 2})
        >>> p.enc.weight, p["enc.weight"], p.layers[0].w
        (1, 1, 2)
    """

    def __init__(self, flat: Mapping[str, Any], prefix: str = "") -> None:
        self._flat = dict(flat)
        self._prefix = prefix

    def _full(self, key: Any) -> str:
        return f"{self._prefix}{key}"

    def __getitem__(self, key: Any) -> Any:
        full = self._full(key)
        if full in self._flat:
            return self._flat[full]
        sub = full + "."
        if any(k.startswith(sub) for k in self._flat):
            return ParamTree(self._flat, sub)
        raise KeyError(f"no parameter {full!r}; valid: {', '.join(self._flat)}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(str(e.args[0])) from None

    def _children(self) -> list[str]:
        seen: dict[str, None] = {}
        for k in self._flat:
            if k.startswith(self._prefix):
                seen.setdefault(k[len(self._prefix):].split(".")[0], None)
        return list(seen)

    def __iter__(self) -> Iterator[str]:
        return iter(self._children())

    def __len__(self) -> int:
        return len(self._children())

    def __repr__(self) -> str:
        return f"ParamTree({self._prefix or '<root>'}: {', '.join(self._children())})"


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment module: its name, hyperparameter defaults and case builder."""

    name: str
    module: Any
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    def build(self, hyperparameters: Mapping[str, Any] | None = None) -> list[Case]:
        """Builds the cases with ``hyperparameters`` over the defaults."""
        hp = {**self.defaults, **(hyperparameters or {})}
        cases = list(self.module.cases(**hp))
        names = [c.name for c in cases]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r}: duplicate case names {names}")
        return cases


def load_experiment(ref: str, base_dir: Path | None = None, *, where: str = "") -> Experiment:
    """Loads an experiment from a file path (relative to ``base_dir``) or a module name.

    Args:
        ref: a .py path (``"my_experiment.py"``), a shipped experiment's name (``"aliasing"``)
            or a module name (``"mypackage.my_experiment"``).
        base_dir: folder relative paths are resolved against (the config's folder).
        where: context for error messages (``"configs/seed.toml: experiment"``).

    Raises:
        ConfigError: the file or module is missing or defines no ``cases`` function.

    Example:
        >>> load_experiment("aliasing").name
        'aliasing'
    """
    where = where or "experiment"
    if ref.endswith(".py") or "/" in ref:
        path = Path(ref)
        if not path.is_absolute() and base_dir is not None:
            path = (base_dir / path).resolve()
        if not path.is_file():
            raise ConfigError(f"{where}: experiment file {str(path)!r} does not exist")
        mod_name = f"aliasgrad_experiment_{path.stem}_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        name = path.stem
    else:
        # A bare name is a shipped experiment: "aliasing" is toolkit.experiments.aliasing.
        module_name = ref if "." in ref else f"toolkit.experiments.{ref}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise ConfigError(
                f"{where}: no experiment module {ref!r} ({e}); give a module name such as "
                f"'aliasing' (shipped), 'mypackage.module' or a .py path relative to the config"
            ) from None
        name = ref.rsplit(".", 1)[-1]
    builder = getattr(module, "cases", None)
    if not callable(builder):
        raise ConfigError(f"{where}: {ref!r} defines no function cases(**hyperparameters)")
    defaults = {
        k: v.default
        for k, v in inspect.signature(builder).parameters.items()
        if v.default is not inspect.Parameter.empty
    }
    return Experiment(name=name, module=module, defaults=defaults, doc=inspect.getdoc(module) or "")

