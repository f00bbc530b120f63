"""TOML run configs: which experiment, which params, which strategies, what to expect.

A config names an experiment (a module name or a ``.py`` path relative to the config file),
its hyperparameters, per-case ``wrt`` overrides, the strategies, dtype, seed, tolerances,
optional training and optional recorded expectations. :func:`load_config` validates all of
it up front: every problem is a :class:`~toolkit.errors.ConfigError` naming the file, the key
path and the valid choices.

Example:
    >>> cfg = load_config_text('''
    ... title = "two seed cases"
    ... experiment = "toolkit.experiments.aliasing"
    ... cases = ["case2", "case3"]
    ... [expect.case2.implicit-identity]
    ... grads = { x = [1.0] }
    ... ''', name="<doc>")
    >>> cfg.cases, cfg.wrt["case3"], cfg.expect["case2"]["implicit-identity"]["grads"]
    (('case2', 'case3'), ('x', 'xt'), {'x': array([1.])})
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ConfigError, describe, locate, user_code
from toolkit.experiment import (
    INITIALISERS,
    Case,
    Experiment,
    Param,
    ParamTree,
    TiedParam,
    load_experiment,
)
from toolkit.runner.strategies import STRATEGIES, TRAIN_STRATEGIES

DTYPES = ("float64", "float32")
# Default (rtol, atol) against the float64 finite-difference reference, by dtype. float32
# gradients carry about 1e-7 relative rounding per operation, accumulated over a loss.
DEFAULT_TOLERANCES = {"float64": (1e-6, 1e-9), "float32": (1e-3, 1e-5)}
NOTHING = "nothing"

# optax's optimizer factories a config may name (the ones present in the installed optax).
OPTIMIZERS = (
    "adabelief", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamaxw", "adamw",
    "adan", "amsgrad", "fromage", "lamb", "lars", "lion", "nadam", "nadamw", "noisy_sgd",
    "novograd", "optimistic_gradient_descent", "polyak_sgd", "radam", "rmsprop", "rprop",
    "sgd", "sign_sgd", "sm3", "yogi",
)

_TOP_KEYS = (
    "title", "experiment", "cases", "strategies", "dtype", "seed", "hyperparameters", "wrt",
    "tolerances", "reference", "train", "expect",
)
_TOLERANCE_KEYS = ("rtol", "atol")
_REFERENCE_KEYS = ("directions",)
_TRAIN_KEYS = ("steps", "strategies", "optimizers", "cases")
_EXPECT_KEYS = ("grads", "globals")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optax optimizer by name: ``getattr(optax, name)(**kwargs)``.

    Example:
        >>> tx = OptimizerSpec("sgd", {"learning_rate": 0.1}, "sgd(learning_rate=0.1)").build()
        >>> tx.update({"w": 1.0}, tx.init({"w": 0.0}))[0]
        {'w': -0.1}
    """

    name: str
    kwargs: Mapping[str, Any]
    label: str

    def build(self) -> Any:
        """Returns the ``optax.GradientTransformation``."""
        import optax

        return getattr(optax, self.name)(**self.kwargs)


@dataclass(frozen=True)
class TrainSpec:
    """The ``[train]`` table: every optimizer × every strategy × every case, ``steps`` each."""

    optimizers: tuple[OptimizerSpec, ...]
    steps: int
    strategies: tuple[str, ...]
    cases: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """A validated run config.

    Attributes:
        path: the config file (``None`` for text loaded without a file).
        name: how messages and run folders name it (the path, or the name given to
            :func:`load_config_text`).
        text: the TOML source, for the run folder's copy.
        title: a line for reports.
        experiment: the loaded :class:`~toolkit.experiment.Experiment`.
        hyperparameters: the experiment's hyperparameters, defaults filled in.
        cases: the selected case names, in the experiment's order.
        wrt: case name → the paths to differentiate (the override or the case default).
        strategies: the gradient strategies to run.
        dtype: ``"float64"`` or ``"float32"``.
        seed: seeds initial values and data.
        rtol, atol: tolerances for comparisons against the reference.
        directions: random directional checks for buffers over 4096 elements.
        train: the training comparison, or ``None``.
        expect: case → strategy → ``{"grads": {path: g}, "globals": {name: g}}`` with ``g``
            an array, ``None`` (TOML ``"nothing"``) or ``{"parent": array}``.
    """

    path: Path | None
    name: str
    text: str
    title: str
    experiment: Experiment
    hyperparameters: dict[str, Any]
    cases: tuple[str, ...]
    wrt: dict[str, tuple[str, ...]]
    strategies: tuple[str, ...]
    dtype: str
    seed: int
    rtol: float
    atol: float
    directions: int
    train: TrainSpec | None
    expect: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)

    def build_cases(self) -> list[Case]:
        """The selected cases, built with the hyperparameters and the ``wrt`` overrides."""
        built = {c.name: c for c in self.experiment.build(self.hyperparameters)}
        return [_with_wrt(built[name], self.wrt[name]) for name in self.cases]


def _with_wrt(case: Case, wrt: tuple[str, ...]) -> Case:
    if wrt == case.wrt:
        return case
    return Case(case.name, case.params, case.loss, wrt, case.data, case.description)


def load_config(path: str | Path) -> Config:
    """Reads and validates a TOML config file.

    Raises:
        ConfigError: the file is missing, is not TOML, or fails validation; the message
            names the file and the key path.

    Example:
        >>> load_config("configs/seed.toml").title
        "Zygote's implicit Params: aliased variables"
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start} is "
                          f"{e.object[e.start]:#04x}); a config is TOML text") from None
    return load_config_text(text, name=str(path), base_dir=path.parent, path=path)


def load_config_text(
    text: str, name: str = "<config>", base_dir: str | Path | None = None, *,
    path: Path | None = None,
) -> Config:
    """Validates TOML config text (e.g. a config embedded in the runner).

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
    config = _Validator(name, Path(base_dir) if base_dir is not None else Path.cwd()).config(
        raw, text, path
    )
    check_cases(config)
    return config


def experiment_files(config: Config) -> list[str]:
    """The source files of ``config``'s experiment code (its module and each case's loss)."""
    files = [getattr(config.experiment.module, "__file__", None)]
    files += [getattr(getattr(c.loss, "__code__", None), "co_filename", None)
              for c in config.build_cases()]
    return sorted({f for f in files if f})


def check_cases(config: Config) -> None:
    """Runs each selected case's own code once in NumPy, before any strategy runs.

    Draws the initial values (in ``config.dtype`` and float64) and the data, and evaluates
    the loss in float64: a bad initialiser name, an exception in the experiment's code, or a
    loss that is not a finite floating-point scalar is reported as a :class:`ConfigError`
    naming the config, the case and (for an exception) the experiment's ``file:line``.

    Example:
        >>> check_cases(load_config_text('experiment = "aliasing"', name="<doc>"))
    """
    from toolkit.runner.reference import NumpyEvaluator

    name = config.experiment.name
    files = experiment_files(config)
    for case in config.build_cases():
        at = f"{config.name}: experiment {name!r}: case {case.name!r}"
        for path, spec in case.params.items():
            if isinstance(spec, Param) and isinstance(spec.init, str) and (
                spec.init not in INITIALISERS
            ):
                raise ConfigError(f"{at}: parameter {path!r}: unknown initialiser "
                                  f"{spec.init!r}; valid: {_choices(INITIALISERS)}")
        with user_code(f"{at}: initial values", files):
            case.initial_values(config.seed, np.dtype(config.dtype))
            values = case.initial_values(config.seed, np.float64)
        with user_code(f"{at}: data", files):
            data = case.make_data(config.seed, np.float64)
        results: list[Any] = []

        def capture(ns: Any, p: ParamTree, d: Mapping[str, Any], case: Case = case,
                    results: list[Any] = results) -> float:
            results.append(case.loss(ns, p, d))
            return 0.0

        # A non-finite loss is reported below, so NumPy's warnings about it would be noise.
        with user_code(f"{at}: loss", files), np.errstate(all="ignore"):
            NumpyEvaluator(dataclasses.replace(case, loss=capture), data).tied(values)
        _check_loss_value(results[0], f"{at}: loss {_where_defined(case.loss)}")


def _where_defined(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    return f"({code.co_filename}:{code.co_firstlineno})" if code else ""


def _check_loss_value(value: Any, at: str) -> None:
    try:
        arr = np.asarray(value)
    except Exception:  # an object NumPy cannot read is as wrong as a non-number
        arr = np.asarray(None)
    if arr.dtype.kind != "f":
        raise ConfigError(f"{at}: returned {type(value).__name__} of dtype {arr.dtype}; a loss "
                          "returns a floating-point scalar (e.g. np.sum(...) or np.mean(...))")
    if arr.shape != ():
        raise ConfigError(f"{at}: returned an array of shape {arr.shape}; a loss returns a "
                          "scalar (reduce it with np.sum or np.mean)")
    if not np.isfinite(arr):
        raise ConfigError(f"{at}: is {float(arr)} at the initial values (seed "
                          "given by the config); a loss must be finite where it starts")


def _try_optimizer(spec: OptimizerSpec) -> None:
    """Builds the optimizer and applies one update to a small tree, so arguments optax only
    reads when stepping (a string learning rate) fail here rather than mid-run."""
    import jax.numpy as jnp

    tx = spec.build()
    params = {"w": jnp.ones(2, dtype=jnp.float32)}
    updates, _ = tx.update({"w": jnp.full(2, 0.5, dtype=jnp.float32)}, tx.init(params), params)
    if not bool(jnp.all(jnp.isfinite(updates["w"]))):
        raise ValueError("the test step is not finite")


def _choices(valid: Any) -> str:
    return ", ".join(str(v) for v in valid)


class _Validator:
    def __init__(self, name: str, base_dir: Path) -> None:
        self.name = name
        self.base_dir = base_dir

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.name}: {key}: {message}")

    def keys(self, table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in valid:
                at = f"{where}.{key}" if where else key
                raise self.error(at, f"unknown key; valid: {_choices(valid)}")

    def typed(self, value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int subclass in Python, but `seed = true` is a mistake
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.error(key, f"expected {what}, got {type(value).__name__} {value!r}")
        return value

    def table(self, raw: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
        at = f"{where}.{key}" if where else key
        return self.typed(raw.get(key, {}), dict, at, "a table")

    def names(self, value: Any, key: str, valid: tuple[str, ...], what: str) -> tuple[str, ...]:
        self.typed(value, list, key, f"a list of {what} names")
        for i, item in enumerate(value):
            self.typed(item, str, f"{key}[{i}]", f"a {what} name")
            if item not in valid:
                raise self.error(f"{key}[{i}]", f"unknown {what} {item!r}; valid: "
                                 f"{_choices(valid)}")
        if not value:
            raise self.error(key, f"empty list; valid: {_choices(valid)}")
        if len(set(value)) != len(value):
            raise self.error(key, f"duplicate {what} names in {value}")
        return tuple(value)

    def number(self, raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
        value = raw.get(key, default)
        at = f"{where}.{key}"
        self.typed(value, (int, float), at, "a number")
        if not math.isfinite(value) or value < 0:
            raise self.error(at, f"must be a finite number >= 0, got {value}")
        return float(value)

    def positive_int(self, raw: Mapping[str, Any], key: str, where: str, default: int) -> int:
        value = raw.get(key, default)
        at = f"{where}.{key}" if where else key
        self.typed(value, int, at, "an integer")
        if value < 1:
            raise self.error(at, f"must be >= 1, got {value}")
        return value

    def config(self, raw: dict[str, Any], text: str, path: Path | None) -> Config:
        self.keys(raw, _TOP_KEYS, "")
        if "experiment" not in raw:
            raise self.error("experiment", "missing; give a module name such as "
                             "'toolkit.experiments.aliasing' or a .py path relative to the config")
        ref = self.typed(raw["experiment"], str, "experiment", "a module name or a .py path")
        where = f"{self.name}: experiment {ref!r}"
        ref_file = (self.base_dir / ref).resolve() if ref.endswith(".py") else None
        # Importing runs the experiment's module: its errors are the user's, reported briefly.
        with user_code(f"{where}: import", [ref_file] if ref_file else []):
            experiment = load_experiment(ref, self.base_dir, where=f"{self.name}: experiment")
        title = self.typed(raw.get("title", experiment.name), str, "title", "a string")

        hyper = self.hyperparameters(self.table(raw, "hyperparameters"), experiment)
        files = [f for f in [getattr(experiment.module, "__file__", None)] if f]
        with user_code(f"{where}: cases()", files):
            try:
                built = experiment.build(hyper)
            except (ValueError, TypeError) as e:
                at = locate(e, files)
                raise self.error("hyperparameters", f"experiment {experiment.name!r} rejected "
                                 f"them: {at + ': ' if at else ''}{describe(e)}") from None
        if not built:
            raise self.error("experiment", f"experiment {experiment.name!r}: cases() returned "
                             "no cases; it must return a non-empty list of Case")
        by_name = {c.name: c for c in built}
        all_cases = tuple(by_name)
        cases = (self.names(raw["cases"], "cases", all_cases, "case") if "cases" in raw
                 else all_cases)
        cases = tuple(c for c in all_cases if c in cases)

        wrt_raw = self.table(raw, "wrt")
        wrt = {name: by_name[name].wrt for name in cases}
        for name, paths in wrt_raw.items():
            if name not in cases:
                raise self.error(f"wrt.{name}", f"unknown case; valid: {_choices(cases)}")
            wrt[name] = self.names(paths, f"wrt.{name}", tuple(by_name[name].params),
                                   "parameter path")

        strategies = (self.names(raw["strategies"], "strategies", STRATEGIES, "strategy")
                      if "strategies" in raw else STRATEGIES)
        dtype = self.typed(raw.get("dtype", "float64"), str, "dtype", "a string")
        if dtype not in DTYPES:
            raise self.error("dtype", f"unknown dtype {dtype!r}; valid: {_choices(DTYPES)}")
        seed = self.typed(raw.get("seed", 0), int, "seed", "an integer")
        if seed < 0:
            raise self.error("seed", f"must be >= 0 (a NumPy seed), got {seed}")

        tol = self.table(raw, "tolerances")
        self.keys(tol, _TOLERANCE_KEYS, "tolerances")
        ref_table = self.table(raw, "reference")
        self.keys(ref_table, _REFERENCE_KEYS, "reference")

        return Config(
            path=path,
            name=self.name,
            text=text,
            title=title,
            experiment=experiment,
            hyperparameters=hyper,
            cases=cases,
            wrt=wrt,
            strategies=strategies,
            dtype=dtype,
            seed=seed,
            rtol=self.number(tol, "rtol", "tolerances", DEFAULT_TOLERANCES[dtype][0]),
            atol=self.number(tol, "atol", "tolerances", DEFAULT_TOLERANCES[dtype][1]),
            directions=self.positive_int(ref_table, "directions", "reference", 16),
            train=self.train(raw, cases),
            expect=self.expect(self.table(raw, "expect"), by_name, cases),
        )

    def hyperparameters(self, table: dict[str, Any], experiment: Experiment) -> dict[str, Any]:
        defaults = experiment.defaults
        out = {**defaults, **table}
        for key, value in table.items():
            at = f"hyperparameters.{key}"
            if key not in defaults:
                valid = _choices(defaults) or "(none: the experiment takes no hyperparameters)"
                raise self.error(at, f"unknown hyperparameter of {experiment.name!r}; "
                                 f"valid: {valid}")
            default = defaults[key]
            if default is None:
                continue
            kind: type | tuple[type, ...] = type(default)
            if kind is float:
                kind = (int, float)
            elif kind is tuple:  # TOML arrays are lists
                kind = (list, tuple)
                out[key] = tuple(value) if isinstance(value, list) else value
            self.typed(value, kind, at, f"{type(default).__name__} like the default "
                       f"{default!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise self.error(at, f"must be a finite number, got {value}")
        return out

    def train(self, raw: dict[str, Any], cases: tuple[str, ...]) -> TrainSpec | None:
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
        optimizers = tuple(self.optimizer(o, f"train.optimizers[{i}]")
                           for i, o in enumerate(opts))
        labels = [o.label for o in optimizers]
        if len(set(labels)) != len(labels):
            raise self.error("train.optimizers", f"duplicate labels {labels}; add label = "
                             "\"...\" to tell them apart")
        strategies = (self.names(table["strategies"], "train.strategies", TRAIN_STRATEGIES,
                                 "strategy")
                      if "strategies" in table else TRAIN_STRATEGIES)
        train_cases = (self.names(table["cases"], "train.cases", cases, "case")
                       if "cases" in table else cases)
        return TrainSpec(
            optimizers=optimizers,
            steps=self.positive_int(table, "steps", "train", 200),
            strategies=strategies,
            cases=train_cases,
        )

    def optimizer(self, raw: Any, at: str) -> OptimizerSpec:
        import optax

        self.typed(raw, dict, at, "a table like { name = \"adam\", learning_rate = 0.01 }")
        kwargs = dict(raw)
        valid = tuple(n for n in OPTIMIZERS if hasattr(optax, n))
        if "name" not in kwargs:
            raise self.error(f"{at}.name", f"missing; valid: {_choices(valid)}")
        name = self.typed(kwargs.pop("name"), str, f"{at}.name", "an optax optimizer name")
        if name not in valid:
            raise self.error(f"{at}.name", f"unknown optax optimizer {name!r}; valid: "
                             f"{_choices(valid)}")
        label = kwargs.pop("label", None)
        factory = getattr(optax, name)
        params = inspect.signature(factory).parameters
        for key, value in kwargs.items():
            if key not in params:
                raise self.error(f"{at}.{key}", f"optax.{name} takes no argument {key!r}; "
                                 f"valid: {_choices(params)}")
            self.optimizer_argument(value, params[key], f"{at}.{key}")
        spec_label = label or f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        spec = OptimizerSpec(name, kwargs, self.typed(spec_label, str, f"{at}.label", "a string"))
        try:
            _try_optimizer(spec)
        except Exception as e:  # optax's own checks: any failure means these arguments are bad
            raise self.error(at, f"optax.{name}({kwargs}) failed on a test step: "
                             f"{type(e).__name__}: {e}") from None
        return spec

    def optimizer_argument(self, value: Any, param: inspect.Parameter, at: str) -> None:
        default = param.default
        numeric = param.name == "learning_rate" or (
            isinstance(default, int | float) and not isinstance(default, bool)
        )
        if isinstance(default, bool):
            self.typed(value, bool, at, "true or false")
        elif numeric:
            self.typed(value, (int, float), at, "a number")
            if not math.isfinite(value):
                raise self.error(at, f"must be a finite number, got {value}")
            if param.name == "learning_rate" and value <= 0:
                raise self.error(at, f"must be > 0, got {value}")

    def expect(self, table: dict[str, Any], by_name: dict[str, Case],
               cases: tuple[str, ...]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for case_name, per_strategy in table.items():
            at = f"expect.{case_name}"
            if case_name not in cases:
                raise self.error(at, f"unknown or unselected case; valid: {_choices(cases)}")
            self.typed(per_strategy, dict, at, "a table of strategies")
            case = by_name[case_name]
            for strategy, entry in per_strategy.items():
                at_s = f"{at}.{strategy}"
                if strategy not in STRATEGIES:
                    raise self.error(at_s, f"unknown strategy; valid: {_choices(STRATEGIES)}")
                self.typed(entry, dict, at_s, "a table with grads and/or globals")
                self.keys(entry, _EXPECT_KEYS, at_s)
                out.setdefault(case_name, {})[strategy] = {
                    kind: self.gradients(self.table(entry, kind, at_s), case, f"{at_s}.{kind}")
                    for kind in _EXPECT_KEYS if kind in entry
                }
        return out

    def gradients(self, table: dict[str, Any], case: Case, at: str) -> dict[str, Any]:
        # TOML reads `enc.weight = ...` as nested tables: flatten back to dotted paths.
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if prefix in case.params:
                out[prefix] = self.gradient(value, case, prefix, f"{at}.{prefix}")
            elif isinstance(value, dict) and any(
                p.startswith(prefix + ".") for p in case.params
            ):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}", sub)
            else:
                raise self.error(f"{at}.{prefix}", f"not a parameter path of case "
                                 f"{case.name!r}; valid: {_choices(case.params)}")

        for key, value in table.items():
            walk(key, value)
        return out

    def gradient(self, value: Any, case: Case, path: str, at: str) -> Any:
        if value == NOTHING:
            return None
        spec = case.params[path]
        if isinstance(value, dict):
            self.keys(value, ("parent",), at)
            if not isinstance(spec, TiedParam) or "parent" not in value:
                raise self.error(at, "a structural gradient { parent = [...] } needs a tied "
                                 "parameter and its parent's gradient")
            return {"parent": self.array(value["parent"], case, spec.source, f"{at}.parent")}
        return self.array(value, case, path, at)

    def array(self, value: Any, case: Case, path: str, at: str) -> np.ndarray:
        try:
            if np.asarray(value).dtype.kind not in "iuf":  # true/false are not gradients
                raise TypeError
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise self.error(at, f"expected a number, a (nested) list of numbers, "
                             f"\"{NOTHING}\" or {{ parent = [...] }}, got {value!r}") from None
        shape = case.shape_of(path)
        if arr.size != int(np.prod(shape)):
            raise self.error(at, f"{arr.size} values for parameter {path!r} of shape "
                             f"{shape}")
        return arr.reshape(shape)
