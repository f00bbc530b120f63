"""TOML run configs, parsed: keys, types and ranges of the file alone, no code run.

A config names an experiment (a module name or a ``.py`` path relative to the config file),
its hyperparameters, per-case ``wrt`` overrides, the strategies, dtype, seed, tolerances,
optional training, optional recorded expectations and an optional ``[sweep]`` grid.
:func:`parse_config` checks what the file alone can say (unknown keys, wrong types, values out
of range) and returns a :class:`ConfigFile`; every problem is a
:class:`~toolkit.errors.ConfigError` naming the file, the key path and the valid choices.
Checking the names against the experiment's code, the strategy registry and optax is the
preflight's job (:mod:`toolkit.runner.preflight`), which imports the experiment.

Example:
    >>> cfg = parse_config_text('''
    ... title = "two seed cases"
    ... experiment = "aliasing"
    ... cases = ["case2", "case3"]
    ... seed = 3
    ... ''', name="<doc>")
    >>> cfg.experiment, cfg.cases, cfg.seed, cfg.dtype
    ('aliasing', ('case2', 'case3'), 3, 'float64')
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError

DTYPES = ("float64", "float32")
# Default (rtol, atol) against the float64 finite-difference reference, by dtype. float32
# gradients carry about 1e-7 relative rounding per operation, accumulated over a loss.
DEFAULT_TOLERANCES = {"float64": (1e-6, 1e-9), "float32": (1e-3, 1e-5)}

TOP_KEYS = (
    "title", "experiment", "cases", "strategies", "dtype", "seed", "hyperparameters", "wrt",
    "tolerances", "reference", "train", "expect", "sweep",
)
_TOLERANCE_KEYS = ("rtol", "atol")
_REFERENCE_KEYS = ("directions", "full_limit")
_TRAIN_KEYS = ("steps", "strategies", "optimizers", "cases")


@dataclass(frozen=True)
class TrainTable:
    """The ``[train]`` table as written: optimizer tables, steps, optional name lists."""

    optimizers: tuple[dict[str, Any], ...]
    steps: int
    strategies: tuple[str, ...] | dict[str, tuple[str, ...]] | None
    cases: tuple[str, ...] | None


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config: every value typed and in range, names not yet resolved.

    Attributes:
        name: how messages name the source (the path, or the name given).
        text: the TOML source.
        raw: the parsed TOML, for overrides and for writing the effective config back.
        base_dir: the folder a relative experiment path is resolved against.
        path: the file, or ``None`` for text.
        experiment: the experiment reference as written.
        title: the title, or ``None`` (the experiment's name is used).
        hyperparameters: the ``[hyperparameters]`` table as written.
        cases, strategies: the selected names, or ``None`` for all.
        wrt: case → paths, as written.
        dtype, seed, rtol, atol, directions, full_limit: the settings, defaults filled in.
        train: the ``[train]`` table, or ``None``.
        expect: the ``[expect]`` table as written.
        sweep: key → values to sweep over (the ``[sweep]`` table), possibly empty.
    """

    name: str
    text: str
    raw: dict[str, Any]
    base_dir: Path
    path: Path | None
    experiment: str
    title: str | None
    hyperparameters: dict[str, Any]
    cases: tuple[str, ...] | None
    strategies: tuple[str, ...] | None
    wrt: dict[str, tuple[str, ...]]
    dtype: str
    seed: int
    rtol: float
    atol: float
    directions: int
    full_limit: int
    train: TrainTable | None
    expect: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def read_config_text(path: Path) -> str:
    """The file's text, or a :class:`ConfigError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start} is "
                          f"{e.object[e.start]:#04x}); a config is TOML text") from None


def parse_config(path: str | Path) -> ConfigFile:
    """Reads and parses a TOML config file (no experiment code runs).

    Raises:
        ConfigError: the file is missing, is not TOML, or a key is unknown, mistyped or out
            of range; the message names the file and the key path.

    Example:
        >>> parse_config("configs/seed.toml").experiment
        'aliasing'
    """
    path = Path(path)
    return parse_config_text(read_config_text(path), name=str(path), base_dir=path.parent,
                             path=path)


def parse_config_text(
    text: str, name: str = "<config>", base_dir: str | Path | None = None, *,
    path: Path | None = None,
) -> ConfigFile:
    """Parses TOML config text (e.g. a config embedded in the runner).

    Args:
        text: the TOML source.
        name: how error messages name the source.
        base_dir: folder a relative experiment path is resolved against (default: cwd).
        path: the file the text came from, if any.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: not valid TOML: {e}") from None
    return parse_table(raw, text, name, Path(base_dir) if base_dir is not None else Path.cwd(),
                       path)


def parse_table(
    raw: dict[str, Any], text: str, name: str, base_dir: Path, path: Path | None = None
) -> ConfigFile:
    """Parses an already-read TOML table (the overrides of a sweep point re-enter here)."""
    return _Parser(name).config(raw, text, base_dir, path)


def choices(valid: Any) -> str:
    """``a, b, c``: the valid choices an error message lists."""
    return ", ".join(str(v) for v in valid)


class Checker:
    """Type, key and range checks whose errors name the config and the key path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def error(self, key: str, message: str) -> ConfigError:
        """``<config>: <key>: <message>``."""
        return ConfigError(f"{self.name}: {key}: {message}")

    def keys(self, table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
        """Rejects a key not in ``valid``."""
        for key in table:
            if key not in valid:
                at = f"{where}.{key}" if where else key
                raise self.error(at, f"unknown key; valid: {choices(valid)}")

    def typed(self, value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
        """``value`` if it is a ``kind``; ``true`` is not an integer here."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.error(key, f"expected {what}, got {type(value).__name__} {value!r}")
        return value

    def table(self, raw: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
        """``raw[key]`` as a table (empty when absent)."""
        at = f"{where}.{key}" if where else key
        return self.typed(raw.get(key, {}), dict, at, "a table")

    def names(self, value: Any, key: str, valid: tuple[str, ...] | None,
              what: str) -> tuple[str, ...]:
        """A non-empty list of distinct names, each in ``valid``. With ``valid`` ``None`` (the
        names are resolved later, against the experiment) any list of strings passes, so the
        later check can list the valid names."""
        self.typed(value, list, key, f"a list of {what} names")
        for i, item in enumerate(value):
            self.typed(item, str, f"{key}[{i}]", f"a {what} name")
            if valid is not None and item not in valid:
                raise self.error(f"{key}[{i}]", f"unknown {what} {item!r}; valid: "
                                 f"{choices(valid)}")
        if valid is None:
            return tuple(value)
        if not value:
            raise self.error(key, f"empty list; valid: {choices(valid)}")
        if len(set(value)) != len(value):
            raise self.error(key, f"duplicate {what} names in {value}")
        return tuple(value)

    def number(self, raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
        """A finite number >= 0."""
        value = raw.get(key, default)
        at = f"{where}.{key}"
        self.typed(value, (int, float), at, "a number")
        if not math.isfinite(value) or value < 0:
            raise self.error(at, f"must be a finite number >= 0, got {value}")
        return float(value)

    def positive_int(self, raw: Mapping[str, Any], key: str, where: str, default: int) -> int:
        """An integer >= 1."""
        value = raw.get(key, default)
        at = f"{where}.{key}" if where else key
        self.typed(value, int, at, "an integer")
        if value < 1:
            raise self.error(at, f"must be >= 1, got {value}")
        return value


class _Parser(Checker):
    def config(self, raw: dict[str, Any], text: str, base_dir: Path,
               path: Path | None) -> ConfigFile:
        self.keys(raw, TOP_KEYS, "")
        if "experiment" not in raw:
            raise self.error("experiment", "missing; give a module name such as "
                             "'toolkit.experiments.aliasing' or a .py path relative to the config")
        dtype = self.typed(raw.get("dtype", "float64"), str, "dtype", "a string")
        if dtype not in DTYPES:
            raise self.error("dtype", f"unknown dtype {dtype!r}; valid: {choices(DTYPES)}")
        tol = self.table(raw, "tolerances")
        self.keys(tol, _TOLERANCE_KEYS, "tolerances")
        ref_table = self.table(raw, "reference")
        self.keys(ref_table, _REFERENCE_KEYS, "reference")
        return ConfigFile(
            name=self.name, text=text, raw=raw, base_dir=base_dir, path=path,
            experiment=self.typed(raw["experiment"], str, "experiment",
                                  "a module name or a .py path"),
            title=self.typed(raw["title"], str, "title", "a string") if "title" in raw else None,
            hyperparameters=self.table(raw, "hyperparameters"),
            cases=self.names(raw["cases"], "cases", None, "case") if "cases" in raw else None,
            strategies=(self.names(raw["strategies"], "strategies", None, "strategy")
                        if "strategies" in raw else None),
            wrt={case: self.names(paths, f"wrt.{case}", None, "parameter path")
                 for case, paths in self.table(raw, "wrt").items()},
            dtype=dtype,
            seed=self.seed(raw),
            rtol=self.number(tol, "rtol", "tolerances", DEFAULT_TOLERANCES[dtype][0]),
            atol=self.number(tol, "atol", "tolerances", DEFAULT_TOLERANCES[dtype][1]),
            directions=self.positive_int(ref_table, "directions", "reference", 16),
            full_limit=self.positive_int(ref_table, "full_limit", "reference", 4096),
            train=self.train(raw),
            expect=self.table(raw, "expect"),
            sweep=self.sweep(raw),
        )

    def seed(self, raw: Mapping[str, Any]) -> int:
        seed = self.typed(raw.get("seed", 0), int, "seed", "an integer")
        if seed < 0:
            raise self.error("seed", f"must be >= 0 (a NumPy seed), got {seed}")
        return seed

    def train(self, raw: dict[str, Any]) -> TrainTable | None:
        if "train" not in raw:
            return None
        table = self.table(raw, "train")
        self.keys(table, _TRAIN_KEYS, "train")
        if "optimizers" not in table:
            raise self.error("train.optimizers", "missing; e.g. optimizers = "
                             "[{ name = \"adam\", learning_rate = 0.01 }]")
        opts = self.typed(table["optimizers"], list, "train.optimizers",
                          "a list of tables like { name = \"adam\", learning_rate = 0.01 }")
        if not opts:
            raise self.error("train.optimizers", "empty list")
        for i, opt in enumerate(opts):
            self.typed(opt, dict, f"train.optimizers[{i}]",
                       "a table like { name = \"adam\", learning_rate = 0.01 }")
        return TrainTable(
            optimizers=tuple(opts),
            steps=self.positive_int(table, "steps", "train", 200),
            strategies=self.train_strategies(table),
            cases=(self.names(table["cases"], "train.cases", None, "case")
                   if "cases" in table else None),
        )

    def train_strategies(
        self, table: Mapping[str, Any]
    ) -> tuple[str, ...] | dict[str, tuple[str, ...]] | None:
        """A list (every trained case), or a table case → list (each case its own)."""
        value = table.get("strategies")
        if value is None:
            return None
        if isinstance(value, dict):
            return {case: self.names(names, f"train.strategies.{case}", None, "strategy")
                    for case, names in value.items()}
        return self.names(value, "train.strategies", None, "strategy")

    def sweep(self, raw: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}

        def walk(prefix: str, value: Any) -> None:
            # `train.steps = [..]` in [sweep] is a nested table; its key path is "train.steps".
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, sub)
                return
            self.typed(value, list, f"sweep.{prefix}", "a list of values to sweep over")
            if not value:
                raise self.error(f"sweep.{prefix}", "empty list; give at least one value")
            out[prefix] = tuple(value)

        walk("", self.table(raw, "sweep"))
        return out
