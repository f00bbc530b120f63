"""Preflight: a parsed config checked against the experiment's code, the registry and optax.

:func:`preflight` turns a :class:`~toolkit.runner.config.ConfigFile` into a runnable
:class:`Config`. It imports the experiment, checks the hyperparameters against its defaults,
builds the cases, resolves every case, path and strategy name, builds each optimizer and
applies one test step, and evaluates each selected case's loss once in NumPy. Every problem
is a :class:`~toolkit.errors.ConfigError` naming the config, the key path (or the
experiment's ``file:line``) and what would be valid, found before anything is computed.

Example:
    >>> cfg = load_config_text('''
    ... title = "two seed cases"
    ... experiment = "aliasing"
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ConfigError, describe, locate, user_code
from toolkit.experiment import INITIALISERS, Case, Experiment, Param, ParamTree, TiedParam
from toolkit.experiment import load_experiment as import_experiment
from toolkit.problem import NOTHING
from toolkit.runner.config import Checker, ConfigFile, choices, parse_config, parse_config_text
from toolkit.runner.strategies import STRATEGIES, TRAIN_STRATEGIES

# optax's optimizer factories a config may name (the ones present in the installed optax).
OPTIMIZERS = (
    "adabelief", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamaxw", "adamw",
    "adan", "amsgrad", "fromage", "lamb", "lars", "lion", "nadam", "nadamw", "noisy_sgd",
    "novograd", "optimistic_gradient_descent", "polyak_sgd", "radam", "rmsprop", "rprop",
    "sgd", "sign_sgd", "sm3", "yogi",
)
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
        """Returns the ``optax.GradientTransformation``; a learning rate given as a table
        ``{ schedule = "warmup_cosine_decay_schedule", ... }`` is that optax schedule."""
        import optax

        kwargs = dict(self.kwargs)
        rate = kwargs.get("learning_rate")
        if isinstance(rate, Mapping):
            rate = dict(rate)
            kwargs["learning_rate"] = getattr(optax, rate.pop("schedule"))(**rate)
        return getattr(optax, self.name)(**kwargs)


@dataclass(frozen=True)
class TrainSpec:
    """The ``[train]`` table: every optimizer × every strategy × every case, ``steps`` each."""

    optimizers: tuple[OptimizerSpec, ...]
    steps: int
    strategies: tuple[str, ...]
    cases: tuple[str, ...]
    by_case: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def strategies_for(self, case: str) -> tuple[str, ...]:
        """The strategies trained on ``case`` (its own list, else the common one)."""
        return self.by_case.get(case, self.strategies)


@dataclass(frozen=True)
class Config:
    """A config checked against its experiment: ready to run.

    The file's own settings (``path``, ``name``, ``text``, ``dtype``, ``seed``, ``rtol``,
    ``atol``, ``directions``, ``full_limit``) are read from ``file``; see
    :class:`~toolkit.runner.config.ConfigFile`.

    Attributes:
        file: the parsed file it came from (its ``raw`` table is what sweeps override).
        title: a line for reports.
        experiment: the loaded :class:`~toolkit.experiment.Experiment`.
        hyperparameters: the experiment's hyperparameters, defaults filled in.
        cases: the selected case names, in the experiment's order.
        wrt: case name → the paths to differentiate (the override or the case default).
        strategies: the gradient strategies to run.
        train: the training comparison, or ``None``.
        expect: case → strategy → ``{"grads": {path: g}, "globals": {name: g}}`` with ``g``
            an array, ``None`` (TOML ``"nothing"``) or ``{"parent": array}``.
    """

    file: ConfigFile
    title: str
    experiment: Experiment
    hyperparameters: dict[str, Any]
    cases: tuple[str, ...]
    wrt: dict[str, tuple[str, ...]]
    strategies: tuple[str, ...]
    train: TrainSpec | None
    expect: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)

    path = property(lambda self: self.file.path, doc="The config file, or None for text.")
    name = property(lambda self: self.file.name, doc="How messages and run folders name it.")
    text = property(lambda self: self.file.text, doc="The TOML source.")
    dtype = property(lambda self: self.file.dtype, doc='"float64" or "float32".')
    seed = property(lambda self: self.file.seed, doc="Seeds initial values and data.")
    rtol = property(lambda self: self.file.rtol, doc="Relative tolerance.")
    atol = property(lambda self: self.file.atol, doc="Absolute tolerance.")
    directions = property(lambda self: self.file.directions,
                          doc="Random directions for buffers over full_limit elements.")
    full_limit = property(lambda self: self.file.full_limit,
                          doc="The largest buffer differenced element by element.")

    def build_cases(self) -> list[Case]:
        """The selected cases, built with the hyperparameters and the ``wrt`` overrides."""
        built = {c.name: c for c in self.experiment.build(self.hyperparameters)}
        return [_with_wrt(built[name], self.wrt[name]) for name in self.cases]


def _with_wrt(case: Case, wrt: tuple[str, ...]) -> Case:
    if wrt == case.wrt:
        return case
    return dataclasses.replace(case, wrt=wrt)


def load_config(path: str | Path) -> Config:
    """Parses a TOML config file and preflights it.

    Raises:
        ConfigError: the file is missing, is not TOML, fails validation, or its experiment's
            code fails; the message names the file and the key path.

    Example:
        >>> load_config("configs/seed.toml").title
        "Zygote's implicit Params: aliased variables"
    """
    return preflight(parse_config(path))


def load_config_text(
    text: str, name: str = "<config>", base_dir: str | Path | None = None, *,
    path: Path | None = None,
) -> Config:
    """Parses TOML config text and preflights it; see :func:`~toolkit.runner.config.
    parse_config_text` for the arguments."""
    return preflight(parse_config_text(text, name, base_dir, path=path))


def preflight(file: ConfigFile) -> Config:
    """Checks ``file`` against its experiment's code, the registry and optax.

    Raises:
        ConfigError: a name does not resolve, the experiment's code fails, an optimizer's
            arguments fail on a test step; the message names the key or ``file:line``.
    """
    config = _Resolver(file).config()
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
    files = experiment_files(config)
    for case in config.build_cases():
        at = f"{config.name}: experiment {config.experiment.name!r}: case {case.name!r}"
        _check_initialisers(case, at)
        with user_code(f"{at}: initial values", files):
            case.initial_values(config.seed, np.dtype(config.dtype))
            values = case.initial_values(config.seed, np.float64)
        with user_code(f"{at}: data", files):
            data = case.make_data(config.seed, np.float64)
        # A non-finite loss is reported below, so NumPy's warnings about it would be noise.
        with user_code(f"{at}: loss", files), np.errstate(all="ignore"):
            value = _numpy_loss(case, values, data)
        _check_loss_value(value, f"{at}: loss {_where_defined(case.loss)}")


def _check_initialisers(case: Case, at: str) -> None:
    for path, spec in case.params.items():
        if isinstance(spec, Param) and isinstance(spec.init, str) and (
            spec.init not in INITIALISERS
        ):
            raise ConfigError(f"{at}: parameter {path!r}: unknown initialiser "
                              f"{spec.init!r}; valid: {choices(INITIALISERS)}")


def _numpy_loss(case: Case, values: Mapping[str, np.ndarray], data: Mapping[str, Any]) -> Any:
    """The loss's raw return value, evaluated in NumPy on the tied storages."""
    from toolkit.runner.evaluate import NumpyEvaluator

    results: list[Any] = []

    def capture(ns: Any, p: ParamTree, d: Mapping[str, Any]) -> float:
        results.append(case.loss(ns, p, d))
        return 0.0

    NumpyEvaluator(dataclasses.replace(case, loss=capture), data).tied(values)
    return results[0]


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


class _Resolver(Checker):
    def __init__(self, file: ConfigFile) -> None:
        super().__init__(file.name)
        self.file = file

    def experiment(self) -> Experiment:
        ref, base_dir = self.file.experiment, self.file.base_dir
        ref_file = (base_dir / ref).resolve() if ref.endswith(".py") else None
        # Importing runs the experiment's module: its errors are the user's, reported briefly.
        with user_code(f"{self.name}: experiment {ref!r}: import", [ref_file] if ref_file else []):
            return import_experiment(ref, base_dir, where=f"{self.name}: experiment")

    def config(self) -> Config:
        f = self.file
        experiment = self.experiment()
        hyper = self.hyperparameters(f.hyperparameters, experiment)
        by_name = self.built_cases(experiment, hyper)
        cases = self.selected(f.cases, "cases", tuple(by_name))
        wrt = {name: by_name[name].wrt for name in cases}
        for name, paths in f.wrt.items():
            if name not in cases:
                raise self.error(f"wrt.{name}", f"unknown case; valid: {choices(cases)}")
            wrt[name] = self.names(list(paths), f"wrt.{name}", tuple(by_name[name].params),
                                   "parameter path")
        strategies = (self.names(list(f.strategies), "strategies", STRATEGIES, "strategy")
                      if f.strategies is not None else STRATEGIES)
        return Config(
            file=f, title=f.title if f.title is not None else experiment.name,
            experiment=experiment, hyperparameters=hyper, cases=cases, wrt=wrt,
            strategies=strategies, train=self.train(cases),
            expect=self.expect(f.expect, by_name, cases),
        )

    def built_cases(self, experiment: Experiment, hyper: dict[str, Any]) -> dict[str, Case]:
        files = [f for f in [getattr(experiment.module, "__file__", None)] if f]
        where = f"{self.name}: experiment {self.file.experiment!r}"
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
        return {c.name: c for c in built}

    def selected(self, names: tuple[str, ...] | None, key: str,
                 valid: tuple[str, ...]) -> tuple[str, ...]:
        """The names chosen (all when ``None``), checked and in ``valid``'s order."""
        if names is None:
            return valid
        chosen = self.names(list(names), key, valid, "case")
        return tuple(c for c in valid if c in chosen)

    def hyperparameters(self, table: dict[str, Any], experiment: Experiment) -> dict[str, Any]:
        defaults = experiment.defaults
        out = {**defaults, **table}
        for key, value in table.items():
            at = f"hyperparameters.{key}"
            if key not in defaults:
                valid = choices(defaults) or "(none: the experiment takes no hyperparameters)"
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

    def train(self, cases: tuple[str, ...]) -> TrainSpec | None:
        table = self.file.train
        if table is None:
            return None
        optimizers = tuple(self.optimizer(o, f"train.optimizers[{i}]")
                           for i, o in enumerate(table.optimizers))
        labels = [o.label for o in optimizers]
        if len(set(labels)) != len(labels):
            raise self.error("train.optimizers", f"duplicate labels {labels}; add label = "
                             "\"...\" to tell them apart")
        train_cases = (self.names(list(table.cases), "train.cases", cases, "case")
                       if table.cases is not None else cases)
        if isinstance(table.strategies, dict):
            by_case = {}
            for case, names in table.strategies.items():
                if case not in train_cases:
                    raise self.error(f"train.strategies.{case}", "unknown or untrained case; "
                                     f"valid: {choices(train_cases)}")
                by_case[case] = self.names(list(names), f"train.strategies.{case}",
                                           TRAIN_STRATEGIES, "strategy")
            return TrainSpec(optimizers, table.steps, TRAIN_STRATEGIES, train_cases, by_case)
        strategies = (self.names(list(table.strategies), "train.strategies", TRAIN_STRATEGIES,
                                 "strategy")
                      if table.strategies is not None else TRAIN_STRATEGIES)
        return TrainSpec(optimizers, table.steps, strategies, train_cases)

    def optimizer(self, raw: dict[str, Any], at: str) -> OptimizerSpec:
        import optax

        kwargs = dict(raw)
        valid = tuple(n for n in OPTIMIZERS if hasattr(optax, n))
        if "name" not in kwargs:
            raise self.error(f"{at}.name", f"missing; valid: {choices(valid)}")
        name = self.typed(kwargs.pop("name"), str, f"{at}.name", "an optax optimizer name")
        if name not in valid:
            raise self.error(f"{at}.name", f"unknown optax optimizer {name!r}; valid: "
                             f"{choices(valid)}")
        label = kwargs.pop("label", None)
        params = inspect.signature(getattr(optax, name)).parameters
        for key, value in kwargs.items():
            if key not in params:
                raise self.error(f"{at}.{key}", f"optax.{name} takes no argument {key!r}; "
                                 f"valid: {choices(params)}")
            self.optimizer_argument(value, params[key], f"{at}.{key}")
        spec_label = label or f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        spec = OptimizerSpec(name, kwargs, self.typed(spec_label, str, f"{at}.label", "a string"))
        try:
            _try_optimizer(spec)
        except Exception as e:  # optax's own checks: any failure means these arguments are bad
            raise self.error(at, f"optax.{name}({kwargs}) failed on a test step: "
                             f"{type(e).__name__}: {e}") from None
        return spec

    def schedule(self, value: dict[str, Any], at: str) -> None:
        """A learning-rate table: ``schedule`` names an optax schedule, the rest its
        arguments."""
        import optax

        valid = sorted(n for n in dir(optax) if n.endswith("_schedule")
                       and not n.startswith(("_", "scale_by")))
        name = self.typed(value.get("schedule"), str, f"{at}.schedule",
                          "an optax schedule name such as \"warmup_cosine_decay_schedule\"")
        if name not in valid:
            raise self.error(f"{at}.schedule", f"unknown optax schedule {name!r}; valid: "
                             f"{choices(valid)}")
        params = inspect.signature(getattr(optax, name)).parameters
        for key, arg in value.items():
            if key != "schedule" and key not in params:
                raise self.error(f"{at}.{key}", f"optax.{name} takes no argument {key!r}; "
                                 f"valid: {choices(params)}")
            if key != "schedule":
                self.typed(arg, (int, float), f"{at}.{key}", "a number")

    def optimizer_argument(self, value: Any, param: inspect.Parameter, at: str) -> None:
        if param.name == "learning_rate" and isinstance(value, dict):
            self.schedule(value, at)
            return
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
                raise self.error(at, f"unknown or unselected case; valid: {choices(cases)}")
            self.typed(per_strategy, dict, at, "a table of strategies")
            for strategy, entry in per_strategy.items():
                out.setdefault(case_name, {})[strategy] = self.expected(
                    entry, by_name[case_name], strategy, f"{at}.{strategy}")
        return out

    def expected(self, entry: Any, case: Case, strategy: str, at: str) -> dict[str, Any]:
        if strategy not in STRATEGIES:
            raise self.error(at, f"unknown strategy; valid: {choices(STRATEGIES)}")
        self.typed(entry, dict, at, "a table with grads and/or globals")
        self.keys(entry, _EXPECT_KEYS, at)
        return {kind: self.gradients(self.table(entry, kind, at), case, f"{at}.{kind}")
                for kind in _EXPECT_KEYS if kind in entry}

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
                                 f"{case.name!r}; valid: {choices(case.params)}")

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
