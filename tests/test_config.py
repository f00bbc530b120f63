"""The TOML config loader: valid configs load, every malformed one names file, key and choices."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import toolkit
from toolkit.errors import ConfigError
from toolkit.runner.preflight import Config, load_config, load_config_text
from toolkit.runner.strategies import STRATEGIES, TRAIN_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.toml"))

GOOD = 'experiment = "toolkit.experiments.aliasing"\n'
AE = 'experiment = "toolkit.experiments.tied_autoencoder"\n'


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.path == path and cfg.name == str(path) and cfg.text == path.read_text()
    cases = cfg.build_cases()
    assert [c.name for c in cases] == list(cfg.cases)
    for case in cases:
        assert case.wrt == cfg.wrt[case.name]


def test_toolkit_exposes_load_config() -> None:
    assert toolkit.load_config is load_config


def test_defaults() -> None:
    cfg = load_config_text(GOOD, name="t.toml")
    assert cfg.strategies == STRATEGIES
    assert (cfg.dtype, cfg.seed, cfg.rtol, cfg.atol, cfg.directions) == (
        "float64", 0, 1e-6, 1e-9, 16)
    assert cfg.train is None and cfg.expect == {}
    assert cfg.title == "aliasing"
    assert cfg.cases[0] == "case1" and len(cfg.cases) == 9


def test_case_subset_keeps_experiment_order_and_wrt_override_applies() -> None:
    cfg = load_config_text(GOOD + 'cases = ["case3", "case2"]\n[wrt]\ncase2 = ["x", "xt"]\n')
    assert cfg.cases == ("case2", "case3")
    case2 = cfg.build_cases()[0]
    assert case2.wrt == ("x", "xt")


def test_relative_experiment_path_resolves_against_the_config(tmp_path: Path) -> None:
    sub = tmp_path / "cfg"
    sub.mkdir()
    exp = tmp_path / "my_exp.py"
    exp.write_text(
        "from toolkit.experiment import Case, Param\n"
        "def cases(k=2.0, sizes=(1, 2)):\n"
        "    return [Case('only', {'w': Param((3,))}, lambda np, p, d: k * np.sum(p.w),"
        " ('w',))]\n"
    )
    (sub / "c.toml").write_text(
        'experiment = "../my_exp.py"\n[hyperparameters]\nk = 3\nsizes = [3, 4]\n'
    )
    cfg = load_config(sub / "c.toml")
    assert cfg.experiment.name == "my_exp"
    assert cfg.hyperparameters == {"k": 3, "sizes": (3, 4)}


def test_expectations_are_converted() -> None:
    cfg = load_config_text(GOOD + """
[expect.case6.implicit-identity]
grads = { xt = { parent = [1.0] } }
globals = { x = 1.0, xt = { parent = [1.0] } }
[expect.case5.implicit-identity]
grads = { x = [2.0], xt = "nothing" }
[expect.tied_dense.explicit]
grads = { enc.weight = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]] }
""")
    e6 = cfg.expect["case6"]["implicit-identity"]
    np.testing.assert_array_equal(e6["grads"]["xt"]["parent"], [1.0])
    np.testing.assert_array_equal(e6["globals"]["x"], [1.0])
    assert cfg.expect["case5"]["implicit-identity"]["grads"]["xt"] is None
    # a dotted key is TOML nesting; it is read back as the parameter path
    w = cfg.expect["tied_dense"]["explicit"]["grads"]["enc.weight"]
    assert w.shape == (2, 5) and w[1, 4] == 10


def test_train_table() -> None:
    cfg = load_config_text(AE + """
[train]
steps = 7
strategies = ["tied", "explicit"]
optimizers = [
    { name = "adam", learning_rate = 0.01 },
    { name = "sgd", learning_rate = 0.1, label = "plain" },
]
""")
    assert cfg.train is not None
    assert cfg.train.steps == 7 and cfg.train.strategies == ("tied", "explicit")
    assert cfg.train.cases == cfg.cases
    adam, sgd = cfg.train.optimizers
    assert (adam.label, sgd.label) == ("adam(learning_rate=0.01)", "plain")
    params = {"w": np.ones(2)}
    updates, _ = sgd.build().update({"w": np.ones(2)}, sgd.build().init(params))
    np.testing.assert_allclose(updates["w"], -0.1)
    assert set(TRAIN_STRATEGIES) - set(STRATEGIES) == {"tied"}


# (config text, key path the message must name, further fragments it must contain)
MALFORMED = [
    ("title = 'x'\n", "experiment", ["missing", "toolkit.experiments.aliasing"]),
    ('experiment = "toolkit.experiments.nope"\n', "experiment", ["no experiment module"]),
    ('experiment = "../nope.py"\n', "experiment", ["does not exist"]),
    ('experiment = "toolkit.errors"\n', "experiment", ["defines no function cases"]),
    ("experiment = 3\n", "experiment", ["expected a module name", "int"]),
    (GOOD + "colour = 'red'\n", "colour", ["unknown key", "valid: title, experiment"]),
    (GOOD + "strategies = ['implicit-id']\n", "strategies[0]",
     ["unknown strategy 'implicit-id'", "valid: implicit-identity, implicit-storage"]),
    (GOOD + "strategies = 'explicit'\n", "strategies", ["expected a list of strategy names"]),
    (GOOD + "strategies = []\n", "strategies", ["empty list"]),
    (GOOD + "cases = ['case7']\n", "cases[0]", ["unknown case 'case7'", "valid: case1"]),
    (GOOD + "cases = ['case1', 'case1']\n", "cases", ["duplicate case names"]),
    (GOOD + "dtype = 'float16'\n", "dtype", ["unknown dtype 'float16'", "float64, float32"]),
    (GOOD + "seed = 1.5\n", "seed", ["expected an integer", "float"]),
    (GOOD + "seed = true\n", "seed", ["expected an integer", "bool"]),
    (GOOD + "[wrt]\ncase2 = ['y']\n", "wrt.case2[0]",
     ["unknown parameter path 'y'", "valid: x, xt"]),
    (GOOD + "cases = ['case1']\n[wrt]\ncase2 = ['x']\n", "wrt.case2",
     ["unknown case", "valid: case1"]),
    (GOOD + "[tolerances]\nrtol = -1\n", "tolerances.rtol", ["must be a finite number >= 0"]),
    (GOOD + "[tolerances]\nrtol = 'tight'\n", "tolerances.rtol", ["expected a number"]),
    (GOOD + "[tolerances]\nrel = 1e-3\n", "tolerances.rel", ["unknown key", "valid: rtol, atol"]),
    (GOOD + "[reference]\ndirections = 0\n", "reference.directions", ["must be >= 1"]),
    (GOOD + "tolerances = 3\n", "tolerances", ["expected a table"]),
    (AE + "[hyperparameters]\nwidth = 3\n", "hyperparameters.width",
     ["unknown hyperparameter of 'tied_autoencoder'", "valid: n, h, batch, activation"]),
    (AE + "[hyperparameters]\nn = 'five'\n", "hyperparameters.n", ["expected int", "'five'"]),
    (AE + "[hyperparameters]\nactivation = 'relu6'\n", "hyperparameters",
     ["rejected them", "valid: tanh, identity"]),
    (GOOD + "[hyperparameters]\nn = 3\n", "hyperparameters.n",
     ["the experiment takes no hyperparameters"]),
    (AE + "[train]\nsteps = 10\n", "train.optimizers", ["missing"]),
    (AE + "[train]\noptimizers = [{ name = 'adamm' }]\n", "train.optimizers[0].name",
     ["unknown optax optimizer 'adamm'", "adam, "]),
    (AE + "[train]\noptimizers = [{ learning_rate = 0.1 }]\n", "train.optimizers[0].name",
     ["missing", "sgd"]),
    (AE + "[train]\noptimizers = [{ name = 'sgd', learning_rat = 0.1 }]\n",
     "train.optimizers[0].learning_rat", ["optax.sgd takes no argument", "learning_rate"]),
    (AE + "[train]\noptimizers = ['adam']\n", "train.optimizers[0]", ["expected a table"]),
    (AE + "[train]\nsteps = 0\noptimizers = [{ name = 'sgd', learning_rate = 0.1 }]\n",
     "train.steps", ["must be >= 1"]),
    (AE + "[train]\nstrategies = ['tide']\noptimizers = [{ name = 'sgd', learning_rate = 1 }]\n",
     "train.strategies[0]", ["unknown strategy 'tide'", "tied"]),
    (AE + "[train]\nepochs = 3\n", "train.epochs", ["unknown key", "valid: steps"]),
    (AE + "[train]\noptimizers = [{ name = 'sgd', learning_rate = 0.1 }, "
     "{ name = 'sgd', learning_rate = 0.1 }]\n", "train.optimizers", ["duplicate labels"]),
    (GOOD + "[expect.case9.implicit-identity]\ngrads = { x = [1.0] }\n", "expect.case9",
     ["unknown or unselected case", "valid: case1"]),
    (GOOD + "[expect.case2.zygote]\ngrads = { x = [1.0] }\n", "expect.case2.zygote",
     ["unknown strategy", "explicit-shared"]),
    (GOOD + "[expect.case2.explicit]\ngrads = { y = [1.0] }\n", "expect.case2.explicit.grads.y",
     ["not a parameter path of case 'case2'", "valid: x, xt"]),
    (GOOD + "[expect.case2.explicit]\ngrads = { x = [1.0, 2.0] }\n",
     "expect.case2.explicit.grads.x", ["2 values for parameter 'x' of shape (1,)"]),
    (GOOD + "[expect.case2.explicit]\ngrads = { x = 'one' }\n",
     "expect.case2.explicit.grads.x", ["expected a number", "\"nothing\""]),
    (GOOD + "[expect.case2.explicit]\ngrads = { x = { parent = [1.0] } }\n",
     "expect.case2.explicit.grads.x", ["needs a tied parameter"]),
    (GOOD + "[expect.case2.explicit]\ngradients = { x = [1.0] }\n",
     "expect.case2.explicit.gradients", ["unknown key", "valid: grads, globals"]),
    (GOOD + "title = \n", "not valid TOML", []),
]


@pytest.mark.parametrize(("text", "key", "fragments"), MALFORMED,
                         ids=[f"{i:02d}-{m[1]}" for i, m in enumerate(MALFORMED)])
def test_malformed_config_names_file_key_and_choices(
    tmp_path: Path, text: str, key: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(rf"(^|: ){re.escape(key)}(:|\b)", message), message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_default_tolerances_follow_the_dtype() -> None:
    from toolkit.runner.config import DEFAULT_TOLERANCES

    f64 = load_config_text(GOOD, name="<t>")
    f32 = load_config_text(GOOD + 'dtype = "float32"\n', name="<t>")
    assert (f64.rtol, f64.atol) == DEFAULT_TOLERANCES["float64"] == (1e-6, 1e-9)
    assert (f32.rtol, f32.atol) == DEFAULT_TOLERANCES["float32"]
    assert f32.rtol > f64.rtol and f32.atol > f64.atol
    explicit = load_config_text(GOOD + 'dtype = "float32"\n[tolerances]\nrtol = 0.5\n', name="<t>")
    assert (explicit.rtol, explicit.atol) == (0.5, DEFAULT_TOLERANCES["float32"][1])


def test_package_ships_the_repository_configs() -> None:
    from toolkit.cli import shipped_configs

    packaged = {p.name: p.read_bytes() for p in shipped_configs()}
    assert packaged == {p.name: p.read_bytes() for p in SHIPPED}


def as_float32(path: Path) -> str:
    """The config with dtype float32 and its training and sweep dropped (the gradient checks
    are what float32 tolerances are for; training has its own tolerance)."""
    import tomllib

    from toolkit.runner.sweep import toml_text

    raw = tomllib.loads(path.read_text())
    raw.pop("train", None)
    raw.pop("sweep", None)
    return toml_text({**raw, "dtype": "float32"})


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_passes_in_float32(path: Path) -> None:
    from toolkit.runner.run import run_config

    cfg = load_config_text(as_float32(path), name=str(path), base_dir=path.parent)
    assert cfg.dtype == "float32" and cfg.train is None
    out = run_config(cfg)
    assert out.checks, "a float32 run with no checks proves nothing"
    assert out.ok, [(c.name, c.detail) for c in out.checks if not c.passed]
