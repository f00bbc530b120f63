"""The ``aliasgrad`` command: exit codes, run folders, determinism, interruption."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from toolkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "configs" / "seed.toml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def interruptible(*args: str) -> list[str]:
    """``python -m toolkit ARGS`` with SIGINT raising again, even when the tests run as a
    background job (which starts with SIGINT ignored, and Python then leaves it ignored)."""
    start = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "runpy.run_module('toolkit', run_name='__main__')")
    return [sys.executable, "-c", start, *args]


LONG = ('title = "long"\nexperiment = "toolkit.experiments.tied_autoencoder"\n'
        "[train]\nsteps = 1000000\noptimizers = [{ name = \"adam\", learning_rate = 0.01 }]\n")


def small_config(tmp_path: Path, extra: str = "") -> Path:
    return write(
        tmp_path / "small.toml",
        'title = "small"\nexperiment = "toolkit.experiments.aliasing"\n'
        'cases = ["case2", "case5"]\n' + extra,
    )


def test_bad_config_exits_2_naming_file_and_key(tmp_path, capsys):
    bad = write(tmp_path / "bad.toml", 'experiment = "toolkit.experiments.aliasing"\nsteps = 3\n')
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "steps" in err and "Traceback" not in err
    assert not out.exists() or visible(out) == []


def test_missing_config_and_bad_strategy_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    assert "nope.toml" in capsys.readouterr().err
    assert main(["run", str(SEED), "--strategies", "explicit,bogus", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err and "implicit-identity" in err


def test_one_bad_config_among_good_ones_runs_nothing(tmp_path):
    good = small_config(tmp_path)
    bad = write(tmp_path / "bad.toml", 'experiment = "aliasing"\ndtype = "int8"\n')
    out = tmp_path / "out"
    assert main(["run", str(good), str(bad), "--out", str(out)]) == 2
    assert not out.exists() or visible(out) == []


def test_run_writes_a_complete_folder_and_show_prints_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(small_config(tmp_path)), "--out", str(out), "--json"]) == 0
    (run,) = visible(out)
    files = set(os.listdir(out / run))
    assert {"config.toml", "summary.json", "grads.npz", "report.md"} <= files
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["run"] == str(out / run)
    assert main(["show", str(out / run)]) == 0
    assert "case5" in capsys.readouterr().out


def test_same_config_gives_identical_summaries(tmp_path):
    out = tmp_path / "out"
    config = small_config(tmp_path)
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert main(["run", str(config), "--out", str(out)]) == 0
    first, second = visible(out)
    assert first != second
    assert (out / first / "summary.json").read_text() == (out / second / "summary.json").read_text()


def test_failed_expectation_exits_1(tmp_path, capsys):
    # Zygote's case 2 gives x => [1]; recording [2] must fail the run.
    config = small_config(tmp_path, '[expect.case2.implicit-identity]\ngrads = { x = [2.0] }\n')
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "FAILED case2/implicit-identity/grads/x" in out
    assert f"FAIL {config} — small\n     checks (expectations that must hold): 6/7 passed" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_leaves_no_partial_folder(tmp_path, sig):
    out = tmp_path / "out"
    assert main(["run", str(small_config(tmp_path)), "--out", str(out)]) == 0
    (earlier,) = visible(out)
    before = (out / earlier / "summary.json").read_text()
    long = write(tmp_path / "long.toml", LONG)
    proc = subprocess.Popen(
        interruptible("run", str(long), "--out", str(out)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        staging = [p for p in out.iterdir() if p.name.startswith(".tmp-")]
        line = proc.stderr.readline()
        if "train" in line or (staging and "reference" in line):
            break
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert visible(out) == [earlier]
    assert (out / earlier / "summary.json").read_text() == before
    if sig == signal.SIGINT:
        assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_non_finite_training_fails_the_run_naming_where(tmp_path, capsys):
    config = write(tmp_path / "blowup.toml", (
        'title = "blow-up"\nexperiment = "tied_autoencoder"\ncases = ["aliases"]\n'
        'strategies = ["explicit-shared"]\n'
        '[train]\nsteps = 50\nstrategies = ["tied"]\n'
        'optimizers = [{ name = "sgd", learning_rate = 1e6 }]\n'))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if "FAILED aliases/training/" in x
                and x.split(":")[0].endswith("/tied"))
    assert "blowup.toml" in line and "case 'aliases'" in line and "strategy 'tied'" in line
    assert "sgd(learning_rate=1000000.0)" in line
    step = int(line.split("not finite at step ")[1].split()[0])
    assert 1 <= step < 50
    (run,) = visible(out)
    report = (out / run / "report.md").read_text()
    assert f"diverged (not finite at step {step})" in report
    summary = json.loads((out / run / "summary.json").read_text())
    rows = summary["cases"]["aliases"]["training"]["sgd(learning_rate=1000000.0)"]
    assert rows["tied"]["verdict"]["kind"] == "diverged"
    assert not summary["ok"]


@pytest.mark.slow
def test_sigint_at_random_times_always_exits_130_cleanly(tmp_path):
    """24 runs, each interrupted at a random moment: start-up, compilation, the reference,
    training. Every one must exit 130 promptly, with no staging folder and the earlier run
    untouched (before the runner deferred SIGINT to safe points, 9 of 24 crashed, hung or
    died by the signal)."""
    import random

    rng = random.Random(0)
    out = tmp_path / "out"
    assert main(["run", str(small_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    (earlier,) = visible(out)
    before = (out / earlier / "summary.json").read_bytes()
    long = write(tmp_path / "long.toml", LONG)
    codes, tails = [], []
    # Two runs at a time, each interrupted on its own timer: half the wall time, and two
    # interrupted runs share the output folder.
    for _ in range(12):
        procs = [
            subprocess.Popen(
                interruptible("run", str(long), "--out", str(out)),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]
        timers = [threading.Timer(rng.uniform(0.5, 9.0), p.send_signal, (signal.SIGINT,))
                  for p in procs]
        for timer in timers:
            timer.start()
        for proc, timer in zip(procs, timers, strict=True):
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            timer.cancel()
            codes.append(proc.returncode)
            tails.append(err.strip().splitlines()[-1:])
            assert "Traceback" not in err, err
        assert visible(out) == [earlier]
        assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert codes == [130] * 24, list(zip(codes, tails, strict=True))
    assert (out / earlier / "summary.json").read_bytes() == before


def test_summary_ends_with_the_report_path_and_quiet_prints_only_it(tmp_path, capsys):
    out = tmp_path / "out"
    config = small_config(tmp_path)
    assert main(["run", str(config), "--out", str(out)]) == 0
    loud = capsys.readouterr()
    assert "case5: finite-difference reference" in loud.err  # progress without --quiet
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    lines = quiet.out.strip().splitlines()
    newest = max(visible(out), key=lambda name: (out / name / "report.md").stat().st_mtime_ns)
    assert lines[:2] == [f"ok   {config} — small",
                         "     checks (expectations that must hold): 6/6 passed"]
    # Findings (strategies that are not exact) are listed apart from the checks.
    assert lines[2].startswith("     finding: implicit-identity: per-param step not exact in 1/2 "
                               "cases (case2)")
    assert all(line.startswith("     finding: ") for line in lines[2:-1])
    assert lines[-1] == f"report: {out / newest / 'report.md'}"


def test_version_matches_pyproject(capsys):
    import tomllib

    import toolkit

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert capsys.readouterr().out.strip() == f"aliasgrad {pyproject['project']['version']}"
    assert toolkit.__version__ == pyproject["project"]["version"]


def test_show_latest_prints_the_newest_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["show", "latest", "--out", str(out)]) == 2
    assert "no run folder under" in capsys.readouterr().err
    assert main(["run", str(small_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    other = write(tmp_path / "other.toml", 'title = "other"\nexperiment = "aliasing"\n'
                  'cases = ["case1"]\n')
    assert main(["run", str(other), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", "latest", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (newest,) = [name for name in visible(out) if name.startswith("other-")]
    assert printed.startswith("# other")
    assert printed.strip().splitlines()[-1] == f"report: {out / newest / 'report.md'}"


def test_closed_stdout_still_runs_and_writes_every_config(tmp_path):
    out = tmp_path / "out"
    first = small_config(tmp_path)
    second = write(tmp_path / "second.toml", 'experiment = "aliasing"\ncases = ["case1"]\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "run", str(first), str(second), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    proc.stdout.close()  # the reader is gone before anything is printed (`| head -0`)
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "stdout was closed; all 2 configs ran and were written" in err
    assert sorted(name.split("-")[0] for name in visible(out)) == ["second", "small"]


def test_pipe_into_head_keeps_the_exit_code_and_every_config(tmp_path):
    out = tmp_path / "out"
    configs = [str(small_config(tmp_path)),
               str(write(tmp_path / "bad_expect.toml", 'experiment = "aliasing"\n'
                         'cases = ["case2"]\n[expect.case2.implicit-identity]\n'
                         'grads = { x = [2.0] }\n'))]
    command = (f"set -o pipefail; {sys.executable} -m toolkit run {' '.join(configs)} "
               f"--out {out} --quiet | head -1")
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1, proc.stderr  # the failed expectation, not the pipe
    assert proc.stdout.startswith("ok   ") and proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert len(visible(out)) == 2


def test_list_shows_the_package_configs_from_any_folder(tmp_path, monkeypatch, capsys):
    from importlib import resources

    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    listed = [Path(line.strip()) for line in printed.splitlines() if line.endswith(".toml")]
    repository = sorted(p.name for p in (ROOT / "configs").glob("*.toml"))
    assert sorted(p.name for p in listed) == repository
    installed = Path(str(resources.files("toolkit.configs")))
    assert all(p.is_file() and p.parent == installed for p in listed)


@pytest.mark.slow
def test_wheel_from_a_clean_checkout_runs_the_demo_and_every_shipped_config(tmp_path):
    import shutil
    import zipfile

    # Built from a copy of the tracked sources, so the build leaves nothing in the checkout.
    source, wheel_dir, site = tmp_path / "src", tmp_path / "wheel", tmp_path / "site"
    for folder in ("toolkit", "experiments", "configs"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheel_dir), str(source)], check=True, timeout=600,
                   capture_output=True)
    (wheel,) = wheel_dir.glob("aliasgrad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith(("experiments/", "configs/")) for n in names), names
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    empty = tmp_path / "empty"
    empty.mkdir()

    def aliasgrad(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "toolkit", *args], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=900, check=False)

    demo = aliasgrad("run", "--quiet", "--out", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stderr
    listing = aliasgrad("list")
    listed = [line.strip() for line in listing.stdout.splitlines() if line.endswith(".toml")]
    assert len(listed) == len(list((ROOT / "configs").glob("*.toml")))
    assert all(path.startswith(str(site)) for path in listed), listed
    shipped = {p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem != "__init__"}
    assert shipped <= {line.strip() for line in listing.stdout.splitlines()}
    # The transformer LM study is a 5-seed sweep of 800 steps: here 2 seeds of a few steps.
    study = [p for p in listed if p.endswith("transformer_lm.toml")]
    single = [p for p in listed if p not in study]
    proc = aliasgrad("run", *single, "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    reports = [line for line in proc.stdout.splitlines() if line.startswith("report: ")]
    assert len(reports) == len(single)
    for config in study:
        proc = aliasgrad("run", config, "--seeds", "0:2", "--set", "train.steps=4", "--out",
                         str(tmp_path / "study"), "--quiet", "-j", "2")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().endswith("aggregate.md")
        (sweep,) = (tmp_path / "study").iterdir()
        report = (sweep / "aggregate.md").read_text()
        assert "validation perplexity" in report and "Seeds: 0, 1 (2)" in report


def test_disk_full_on_the_second_config_keeps_none_of_this_run(tmp_path, monkeypatch, capsys):
    import errno

    import toolkit.runner.rundir as run_module

    out = tmp_path / "out"
    assert main(["run", str(small_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    (earlier,) = visible(out)
    calls = []
    real = run_module.write_npz

    def fills_up(path, arrays):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, arrays)

    monkeypatch.setattr(run_module, "write_npz", fills_up)
    second = write(tmp_path / "second.toml", 'experiment = "aliasing"\ncases = ["case1"]\n')
    capsys.readouterr()
    assert main(["run", str(small_config(tmp_path)), str(second), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert len(calls) == 2
    assert sorted(os.listdir(out)) == [earlier]
