"""Every bad input exits 2 with one line naming the file and key, and writes nothing.

Each row is run through ``main([...])``; a handful also through a real ``python -m toolkit``
process. The ``--out`` folder holds an earlier run before each row, and must be byte for
byte the same afterwards.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolkit.cli import main

A = 'experiment = "aliasing"\ncases = ["case2"]\n'  # the aliasing experiment's case 2: x' * x
AE = 'experiment = "tied_autoencoder"\ncases = ["aliases"]\n'
TRAIN = AE + "[train]\nsteps = 2\n"
EXP = 'experiment = "exp.py"\n'
TOL = A + "[tolerances]\n"

# A valid experiment module; rows replace one piece of it.
GOOD_EXP = '''\
from toolkit.experiment import Case, Param, tie


def cases(n=3):
    params = {"w": Param((n,), init=INIT), "wt": tie("w", "adjoint")}

    def data(rng):
        return DATA

    def loss(np, p, d):
        return LOSS

    return CASES
'''
PIECES = {
    "INIT": '"normal"',
    "DATA": '{"x": rng.standard_normal(n)}',
    "LOSS": 'np.sum(p.w * p.wt * d["x"])',
    "CASES": '[Case("c", params, loss, ("w",), data=data)]',
}


def experiment(**pieces: str) -> str:
    text = GOOD_EXP
    for key, value in {**PIECES, **pieces}.items():
        text = text.replace(key, value)
    return text


@dataclass
class Row:
    """One bad input: files written into the temp folder, extra CLI arguments, and what the
    single error line must contain (``{tmp}`` is the temp folder)."""

    id: str
    config: str | bytes | None = None  # written as bad.toml; None: no config written
    fragments: tuple[str, ...] = ()
    experiment: str | None = None  # written as exp.py next to the config
    args: tuple[str, ...] = ()  # extra arguments; "{tmp}" expands
    config_arg: str | None = "{tmp}/bad.toml"
    setup: str = ""  # a named preparation step, see prepare()
    files: dict[str, str] = field(default_factory=dict)


ROWS = [
    # --- the config file itself ---
    Row("toml-syntax", "title = \n", ("bad.toml", "not valid TOML")),
    Row("toml-unclosed", A + "[train\n", ("bad.toml", "not valid TOML")),
    Row("toml-duplicate-key", A + 'title = "a"\ntitle = "b"\n', ("bad.toml", "not valid TOML")),
    Row("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ("bad.toml", "not a UTF-8")),
    Row("latin1-file", 'title = "caf\xe9"\n'.encode("latin-1") + A.encode(),
        ("bad.toml", "not a UTF-8", "0xe9")),
    Row("nul-byte", A + 'title = "a\x00b"\n', ("bad.toml", "not valid TOML")),
    Row("directory", None, ("bad.toml", "cannot read config", "directory"), setup="dir-config"),
    Row("missing-file", None, ("absent.toml", "cannot read config", "No such file"),
        config_arg="{tmp}/absent.toml"),
    Row("empty-file", "", ("bad.toml", "experiment: missing")),
    Row("unknown-key", A + "colour = 'red'\n", ("bad.toml", "colour: unknown key", "valid:")),
    Row("unknown-key-typo", A + "strategy = ['explicit']\n", ("strategy: unknown key",)),
    # --- experiment reference ---
    Row("experiment-int", "experiment = 3\n", ("experiment: expected a module name", "int")),
    Row("experiment-unknown-module", 'experiment = "nope"\n',
        ("experiment: no experiment module 'nope'", "aliasing")),
    Row("experiment-empty", 'experiment = ""\n', ("experiment: no experiment module ''",)),
    Row("experiment-missing-file", 'experiment = "../nope.py"\n', ("does not exist",)),
    Row("experiment-no-cases", 'experiment = "toolkit.errors"\n',
        ("defines no function cases",)),
    Row("title-int", A + "title = 3\n", ("title: expected a string",)),
    # --- cases ---
    Row("cases-string", A.replace('["case2"]', '"case2"'), ("cases: expected a list",)),
    Row("cases-empty", A.replace('["case2"]', "[]"), ("cases: empty list", "case1")),
    Row("cases-unknown", A.replace("case2", "case7"), ("cases[0]: unknown case 'case7'",)),
    Row("cases-int", A.replace('["case2"]', "[1]"), ("cases[0]: expected a case name",)),
    Row("cases-duplicate", A.replace('["case2"]', '["case2", "case2"]'),
        ("cases: duplicate case names",)),
    # --- strategies ---
    Row("strategies-empty", A + "strategies = []\n", ("strategies: empty list",)),
    Row("strategies-unknown", A + "strategies = ['zygote']\n",
        ("strategies[0]: unknown strategy 'zygote'", "explicit-shared")),
    Row("strategies-string", A + "strategies = 'explicit'\n", ("strategies: expected a list",)),
    Row("strategies-bool", A + "strategies = [true]\n", ("strategies[0]: expected a strategy",)),
    # --- dtype, seed ---
    Row("dtype-unknown", A + "dtype = 'float16'\n", ("dtype: unknown dtype 'float16'", "float32")),
    Row("dtype-int", A + "dtype = 64\n", ("dtype: expected a string",)),
    Row("seed-negative", A + "seed = -1\n", ("seed: must be >= 0", "-1")),
    Row("seed-bool", A + "seed = true\n", ("seed: expected an integer", "bool")),
    Row("seed-float", A + "seed = 1.5\n", ("seed: expected an integer", "float")),
    Row("seed-string", A + "seed = '0'\n", ("seed: expected an integer", "str")),
    # --- hyperparameters ---
    Row("hyper-not-table", AE + "hyperparameters = 3\n", ("hyperparameters: expected a table",)),
    Row("hyper-unknown", AE + "[hyperparameters]\nwidth = 3\n",
        ("hyperparameters.width: unknown hyperparameter", "valid: n, h")),
    Row("hyper-string-for-int", AE + "[hyperparameters]\nn = 'five'\n",
        ("hyperparameters.n: expected int",)),
    Row("hyper-float-for-int", AE + "[hyperparameters]\nn = 2.5\n",
        ("hyperparameters.n: expected int",)),
    Row("hyper-bool-for-int", AE + "[hyperparameters]\nn = true\n",
        ("hyperparameters.n: expected int",)),
    Row("hyper-rejected", AE + "[hyperparameters]\nactivation = 'relu6'\n",
        ("hyperparameters: experiment 'tied_autoencoder' rejected them", "tanh")),
    Row("hyper-nan", 'experiment = "tied_embedding_lm"\n[hyperparameters]\nembed_scale = nan\n',
        ("hyperparameters.embed_scale: must be a finite number",)),
    Row("hyper-none-taken", A + "[hyperparameters]\nn = 3\n",
        ("hyperparameters.n", "takes no hyperparameters")),
    # --- wrt ---
    Row("wrt-not-table", A + "wrt = 3\n", ("wrt: expected a table",)),
    Row("wrt-unknown-path", A + "[wrt]\ncase2 = ['y']\n",
        ("wrt.case2[0]: unknown parameter path 'y'", "valid: x, xt")),
    Row("wrt-empty", A + "[wrt]\ncase2 = []\n", ("wrt.case2: empty list",)),
    Row("wrt-string", A + "[wrt]\ncase2 = 'x'\n", ("wrt.case2: expected a list",)),
    Row("wrt-unknown-case", A + "[wrt]\ncase9 = ['x']\n", ("wrt.case9: unknown case",)),
    Row("wrt-duplicate", A + "[wrt]\ncase2 = ['x', 'x']\n", ("wrt.case2: duplicate",)),
    # --- tolerances ---
    Row("rtol-nan", TOL + "rtol = nan\n", ("tolerances.rtol: must be a finite",)),
    Row("rtol-inf", TOL + "rtol = inf\n", ("tolerances.rtol: must be a finite",)),
    Row("rtol-negative", TOL + "rtol = -1e-6\n", ("tolerances.rtol: must be a finite",)),
    Row("atol-minus-inf", TOL + "atol = -inf\n", ("tolerances.atol: must be a finite",)),
    Row("atol-nan", TOL + "atol = nan\n", ("tolerances.atol: must be a finite",)),
    Row("rtol-string", TOL + "rtol = 'tight'\n", ("tolerances.rtol: expected a number",)),
    Row("rtol-bool", TOL + "rtol = true\n", ("tolerances.rtol: expected a number",)),
    Row("tolerances-unknown", TOL + "rel = 1e-3\n",
        ("tolerances.rel: unknown key", "rtol, atol")),
    Row("tolerances-not-table", A + "tolerances = 3\n", ("tolerances: expected a table",)),
    # --- reference ---
    Row("directions-zero", A + "[reference]\ndirections = 0\n",
        ("reference.directions: must be >= 1",)),
    Row("directions-float", A + "[reference]\ndirections = 1.5\n",
        ("reference.directions: expected an integer",)),
    Row("directions-negative", A + "[reference]\ndirections = -3\n",
        ("reference.directions: must be >= 1",)),
    Row("reference-unknown", A + "[reference]\nsamples = 3\n", ("reference.samples: unknown key",)),
    # --- train ---
    Row("train-not-table", AE + "train = 3\n", ("train: expected a table",)),
    Row("train-no-optimizers", TRAIN, ("train.optimizers: missing",)),
    Row("optimizers-empty", TRAIN + "optimizers = []\n", ("train.optimizers: empty list",)),
    Row("optimizer-string", TRAIN + "optimizers = ['adam']\n",
        ("train.optimizers[0]: expected a table",)),
    Row("optimizer-no-name", TRAIN + "optimizers = [{ learning_rate = 0.1 }]\n",
        ("train.optimizers[0].name: missing", "sgd")),
    Row("optimizer-unknown", TRAIN + "optimizers = [{ name = 'adamm' }]\n",
        ("train.optimizers[0].name: unknown optax optimizer 'adamm'",)),
    Row("optimizer-name-int", TRAIN + "optimizers = [{ name = 3 }]\n",
        ("train.optimizers[0].name: expected an optax optimizer name",)),
    Row("lr-string", TRAIN + "optimizers = [{ name = 'adam', learning_rate = 'fast' }]\n",
        ("train.optimizers[0].learning_rate: expected a number", "'fast'")),
    Row("lr-nan", TRAIN + "optimizers = [{ name = 'adam', learning_rate = nan }]\n",
        ("train.optimizers[0].learning_rate: must be a finite number",)),
    Row("lr-inf", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = inf }]\n",
        ("train.optimizers[0].learning_rate: must be a finite number",)),
    Row("lr-negative", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = -0.1 }]\n",
        ("train.optimizers[0].learning_rate: must be > 0",)),
    Row("lr-zero", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = 0 }]\n",
        ("train.optimizers[0].learning_rate: must be > 0",)),
    Row("lr-bool", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = true }]\n",
        ("train.optimizers[0].learning_rate: expected a number", "bool")),
    Row("lr-list", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = [0.1] }]\n",
        ("train.optimizers[0].learning_rate: expected a number", "list")),
    Row("optimizer-unknown-arg", TRAIN + "optimizers = [{ name = 'sgd', learning_rat = 0.1 }]\n",
        ("train.optimizers[0].learning_rat: optax.sgd takes no argument",)),
    Row("adam-b1-string", TRAIN + "optimizers = [{ name = 'adam', learning_rate = 0.1, "
        "b1 = 'x' }]\n", ("train.optimizers[0].b1: expected a number",)),
    Row("adam-eps-nan", TRAIN + "optimizers = [{ name = 'adam', learning_rate = 0.1, "
        "eps = nan }]\n", ("train.optimizers[0].eps: must be a finite number",)),
    Row("sgd-nesterov-string", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = 0.1, "
        "nesterov = 'yes' }]\n", ("train.optimizers[0].nesterov: expected true or false",)),
    Row("optimizer-duplicate", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = 0.1 }, "
        "{ name = 'sgd', learning_rate = 0.1 }]\n", ("train.optimizers: duplicate labels",)),
    Row("optimizer-label-int", TRAIN + "optimizers = [{ name = 'sgd', learning_rate = 0.1, "
        "label = 3 }]\n", ("train.optimizers[0].label: expected a string",)),
    Row("steps-zero", AE + "[train]\nsteps = 0\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.steps: must be >= 1",)),
    Row("steps-negative", AE + "[train]\nsteps = -5\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.steps: must be >= 1",)),
    Row("steps-float", AE + "[train]\nsteps = 1.5\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.steps: expected an integer",)),
    Row("steps-string", AE + "[train]\nsteps = '10'\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.steps: expected an integer",)),
    Row("train-strategies-empty", TRAIN + "strategies = []\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.strategies: empty list",)),
    Row("train-strategies-unknown", TRAIN + "strategies = ['tide']\noptimizers = [{ name = "
        "'sgd', learning_rate = 0.1 }]\n", ("train.strategies[0]: unknown strategy 'tide'",)),
    Row("train-cases-empty", TRAIN + "cases = []\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.cases: empty list",)),
    Row("train-cases-unknown", TRAIN + "cases = ['dedup']\noptimizers = [{ name = 'sgd', "
        "learning_rate = 0.1 }]\n", ("train.cases[0]: unknown case 'dedup'", "aliases")),
    Row("train-unknown-key", TRAIN + "epochs = 3\n", ("train.epochs: unknown key",)),
    # --- expectations ---
    Row("expect-unknown-case", A + "[expect.case9.explicit]\ngrads = { x = [1.0] }\n",
        ("expect.case9: unknown or unselected case",)),
    Row("expect-unknown-strategy", A + "[expect.case2.zygote]\ngrads = { x = [1.0] }\n",
        ("expect.case2.zygote: unknown strategy",)),
    Row("expect-unknown-path", A + "[expect.case2.explicit]\ngrads = { y = [1.0] }\n",
        ("expect.case2.explicit.grads.y: not a parameter path", "x, xt")),
    Row("expect-wrong-size", A + "[expect.case2.explicit]\ngrads = { x = [1.0, 2.0] }\n",
        ("expect.case2.explicit.grads.x: 2 values", "shape (1,)")),
    Row("expect-string", A + "[expect.case2.explicit]\ngrads = { x = 'one' }\n",
        ("expect.case2.explicit.grads.x: expected a number",)),
    Row("expect-bool", A + "[expect.case2.explicit]\ngrads = { x = true }\n",
        ("expect.case2.explicit.grads.x: expected a number",)),
    Row("expect-parent-untied", A + "[expect.case2.explicit]\ngrads = { x = { parent = [1.0] } }"
        "\n", ("expect.case2.explicit.grads.x: a structural gradient",)),
    Row("expect-unknown-kind", A + "[expect.case2.explicit]\ngradients = { x = [1.0] }\n",
        ("expect.case2.explicit.gradients: unknown key",)),
    Row("expect-not-table", A + "[expect]\ncase2 = 3\n", ("expect.case2: expected a table",)),
    # --- the experiment's own code: file:line and the exception ---
    Row("exp-syntax-error", EXP, ("exp.py:3", "SyntaxError"),
        experiment="from toolkit.experiment import Case\n\ndef cases(:\n    pass\n"),
    Row("exp-import-raises", EXP, ("exp.py:2", "RuntimeError: no GPU here"),
        experiment="import os\nraise RuntimeError('no GPU here')\n"),
    Row("exp-import-missing-module", EXP, ("exp.py:1", "ModuleNotFoundError", "nonexistent_pkg"),
        experiment="import nonexistent_pkg\n"),
    Row("exp-no-cases", EXP, ("defines no function cases",), experiment="x = 1\n"),
    Row("exp-sys-exit-at-import", EXP, ("exp.py:2", "SystemExit"),
        experiment="import sys\nsys.exit(0)\n"),
    Row("exp-cases-raises", EXP, ("exp.py:13", "cases()", "ZeroDivisionError"),
        experiment=experiment(CASES="[1 / 0]")),
    Row("exp-cases-empty", EXP, ("experiment: experiment 'exp': cases() returned no cases",),
        experiment=experiment(CASES="[]")),
    Row("exp-cases-not-cases", EXP, ("cases()", "AttributeError"),
        experiment=experiment(CASES="[1]")),
    Row("exp-tie-unknown-source", EXP, ("exp.py:13", "the source must be a declared parameter"),
        experiment=experiment().replace('tie("w", "adjoint")', 'tie("v", "adjoint")')),
    Row("exp-init-unknown", EXP, ("case 'c'", "parameter 'w'", "unknown initialiser 'gaussian'",
                                  "glorot"),
        experiment=experiment(INIT='"gaussian"')),
    Row("exp-init-callable-raises", EXP, ("exp.py:5", "initial values", "ZeroDivisionError"),
        experiment=experiment(INIT="lambda rng, shape: 1 / 0")),
    Row("exp-init-wrong-shape", EXP, ("initial values", "shape (2,), declared (3,)"),
        experiment=experiment(INIT="lambda rng, shape: [1.0, 2.0]")),
    Row("exp-data-raises", EXP, ("exp.py:8", "data", "KeyError"),
        experiment=experiment(DATA='{}["x"]')),
    Row("exp-loss-raises", EXP, ("exp.py:11", "loss", "KeyError: 'y'"),
        experiment=experiment(LOSS='np.sum(p.w * d["y"])')),
    Row("exp-loss-non-scalar", EXP, ("case 'c': loss (", "exp.py:10)", "shape (3,)"),
        experiment=experiment(LOSS='p.w * d["x"]')),
    Row("exp-loss-nan", EXP, ("case 'c': loss", "is nan"),
        experiment=experiment(LOSS='np.sum(np.log(-np.abs(p.w)))')),
    Row("exp-loss-inf", EXP, ("case 'c': loss", "is inf"),
        experiment=experiment(LOSS='np.sum(p.w) / 0.0 if False else np.sum(p.w) * np.inf')),
    Row("exp-loss-int", EXP, ("case 'c': loss", "dtype int64", "floating-point scalar"),
        experiment=experiment(LOSS="3")),
    Row("exp-loss-complex", EXP, ("case 'c': loss", "dtype complex128"),
        experiment=experiment(LOSS="np.sum(p.w) + 1j")),
    Row("exp-loss-none", EXP, ("case 'c': loss", "NoneType"),
        experiment=experiment(LOSS="None")),
    Row("exp-loss-string", EXP, ("case 'c': loss", "str"),
        experiment=experiment(LOSS="'small'")),
    # Runs under NumPy (so the up-front check passes), fails under the tape and JAX.
    Row("exp-loss-numpy-only", EXP, ("case 'c': gradients", "exp.py:2",
                                     "NotImplementedError: numpy only"),
        experiment="def _raise():\n    raise NotImplementedError('numpy only')\n" + experiment(
            LOSS='np.sum(p.w) if np.__name__ == "numpy" else _raise()')),
    # --- command-line arguments and the output folder ---
    Row("strategies-flag-unknown", A, ("--strategies: unknown 'bogus'", "implicit-identity"),
        args=("--strategies", "explicit,bogus")),
    Row("strategies-flag-empty", A, ("--strategies: unknown empty list",),
        args=("--strategies", ",")),
    Row("out-under-file", A, ("--out:", "is under", "which is a file"),
        args=("--out", "{tmp}/afile/results"), files={"afile": "x"}),
    Row("out-is-file", A, ("--out:", "afile", "is a file"),
        args=("--out", "{tmp}/afile"), files={"afile": "x"}),
    Row("out-read-only", A, ("--out: cannot create folders in",), setup="read-only-out"),
    Row("disk-full", A, ("--out: cannot write a run folder", "No space left on device"),
        setup="disk-full"),
    Row("one-bad-among-good", A, ("bad2.toml", "seed: must be >= 0"),
        args=("{tmp}/bad2.toml",), files={"bad2.toml": A + "seed = -1\n"}),
    # --- sweeps: every point is checked as a file, before anything runs ---
    Row("sweep-not-a-list", A + "[sweep]\nseed = 3\n", ("sweep.seed", "a list of values")),
    Row("sweep-empty-axis", A + "[sweep]\nseed = []\n", ("sweep.seed", "empty list")),
    Row("sweep-bad-point", A + "[sweep]\n\"tolerances.rtol\" = [1e-6, -1]\n",
        ("bad.toml (with tolerances.rtol=-1", "tolerances.rtol: must be a finite number >= 0")),
    Row("set-no-value", A, ("--set seed: no value",), args=("--set", "seed=")),
    Row("set-no-key", A, ("--set '=3'", "key=value"), args=("--set", "=3")),
    Row("set-unknown-key", A, ("tolerances.rtl: unknown key", "valid: rtol, atol"),
        args=("--set", "tolerances.rtl=1")),
    Row("set-bad-index", AE + "[train]\noptimizers = [{ name = \"sgd\" }]\n",
        ("train.optimizers[2].learning_rate: no item [2]",),
        args=("--set", "train.optimizers[2].learning_rate=0.1")),
    Row("seeds-malformed", A, ("--seeds 'a:b'", "START:STOP"), args=("--seeds", "a:b")),
    Row("shard-malformed", A, ("--shard '0/2'", "1 <= i <= n"), args=("--shard", "0/2")),
    Row("jobs-zero", A, ("--jobs: must be >= 1",), args=("--jobs", "0")),
]
def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_only_folder(tmp: Path) -> Path:
    """A folder this process cannot create folders in: chmod 555, or /sys where root
    ignores permission bits."""
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / ".aliasgrad-test").mkdir()
        except OSError:
            return candidate
        (candidate / ".aliasgrad-test").rmdir()
    pytest.skip("no read-only folder available")


def prepare(row: Row, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    """Writes the row's files; returns the argv and the --out folder."""
    if isinstance(row.config, bytes):
        (tmp / "bad.toml").write_bytes(row.config)
    elif row.config is not None:
        (tmp / "bad.toml").write_text(row.config, encoding="utf-8")
    if row.experiment is not None:
        (tmp / "exp.py").write_text(row.experiment)
    for name, text in row.files.items():
        (tmp / name).write_text(text)
    out = tmp / "out"
    if row.setup == "dir-config":
        (tmp / "bad.toml").mkdir()
    elif row.setup == "read-only-out":
        out = read_only_folder(tmp) / "results"
    elif row.setup == "disk-full":
        write_text = Path.write_text

        def full(self: Path, *args: object, **kwargs: object) -> int:
            if out in self.parents:  # the run folder's files; the config was written above
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", full)
    args = [a.replace("{tmp}", str(tmp)) for a in row.args]
    config = [row.config_arg.replace("{tmp}", str(tmp))] if row.config_arg else []
    if "--out" not in args:
        args += ["--out", str(out)]
    else:
        out = Path(args[args.index("--out") + 1])
    return ["run", *config, *args, "--quiet"], out


def earlier_run(out: Path) -> None:
    """An earlier run folder that must survive untouched."""
    if out.parent.is_dir() and os.access(out.parent, os.W_OK) and not out.parent.is_file():
        try:
            (out / "earlier-20260101-000000").mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        (out / "earlier-20260101-000000" / "report.md").write_bytes(b"# earlier\n")


def test_every_config_key_and_run_flag_has_a_bad_input_row() -> None:
    # The validators' own key lists: a key or flag added without a row naming it fails here.
    from toolkit.cli import build_parser
    from toolkit.runner.config import TOP_KEYS

    named = " ".join(f for r in ROWS for f in r.fragments)
    assert [k for k in TOP_KEYS if k not in named] == []
    run = next(a for a in build_parser()._subparsers._actions if a.dest == "command")
    flags = [o for a in run.choices["run"]._actions for o in a.option_strings
             if o.startswith("--") and o not in ("--help", "--json", "--quiet")]
    assert [f for f in flags if f not in named] == []
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, out = prepare(row, tmp_path, monkeypatch)
    earlier_run(out)
    before = tree(out) if out.is_dir() else None
    siblings = sorted(os.listdir(out.parent)) if out.parent.is_dir() else None
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, captured
    assert captured.out == ""
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("aliasgrad: error: "), err
    for fragment in row.fragments:
        assert fragment.replace("{tmp}", str(tmp_path)) in err, err
    assert (tree(out) if out.is_dir() else None) == before
    if siblings is not None:  # no probe or staging folder left next to --out either
        assert sorted(os.listdir(out.parent)) == siblings


SUBPROCESS_ROWS = ["binary-file", "seed-negative", "exp-syntax-error", "exp-loss-raises",
                   "out-under-file", "lr-string"]


@pytest.mark.parametrize("row_id", SUBPROCESS_ROWS)
def test_bad_input_in_a_real_process(
    row_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = next(r for r in ROWS if r.id == row_id)
    argv, out = prepare(row, tmp_path, monkeypatch)
    proc = subprocess.run([sys.executable, "-m", "toolkit", *argv], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    for fragment in row.fragments:
        assert fragment in line, line
    assert not out.exists() or os.listdir(out) == []
