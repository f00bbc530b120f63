"""Run folders appear whole or not at all."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from toolkit.runner.rundir import STAGING_PREFIX, StagedRun, clean_stale_staging


def visible(root):
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_completed_run_is_renamed_whole(tmp_path):
    run = StagedRun(tmp_path, "demo")
    with run as staging:
        (staging / "a.txt").write_text("1")
        assert visible(tmp_path) == []
    assert run.final is not None and (run.final / "a.txt").read_text() == "1"
    assert visible(tmp_path) == [run.final.name]


def test_two_runs_in_the_same_second_never_overwrite(tmp_path):
    finals = []
    for i in range(3):
        run = StagedRun(tmp_path, "demo")
        with run as staging:
            (staging / "i").write_text(str(i))
        finals.append(run.final)
    assert len(set(finals)) == 3
    assert [(f / "i").read_text() for f in finals] == ["0", "1", "2"]


def test_exception_removes_staging_and_keeps_earlier_runs(tmp_path):
    first = StagedRun(tmp_path, "demo")
    with first as staging:
        (staging / "x").write_text("kept")
    with pytest.raises(KeyboardInterrupt), StagedRun(tmp_path, "demo") as staging:
        (staging / "x").write_text("partial")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == [first.final.name]
    assert (first.final / "x").read_text() == "kept"


def test_sigkilled_staging_is_hidden_then_cleaned(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, pathlib
        from toolkit.runner.rundir import StagedRun
        with StagedRun(pathlib.Path({str(tmp_path)!r}), "demo") as staging:
            (staging / "half").write_text("written")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert visible(tmp_path) == []
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(leftovers) == 1
    assert clean_stale_staging(tmp_path) == leftovers
    assert list(tmp_path.iterdir()) == []


def test_npz_bytes_depend_only_on_the_arrays(tmp_path):
    import time as clock

    import numpy as np

    from toolkit.runner.rundir import write_npz

    arrays = {"case/strategy/grads/w": np.arange(6.0).reshape(2, 3), "i": np.array([1, 2])}
    write_npz(tmp_path / "a.npz", arrays)
    clock.sleep(2.1)  # zip times have 2 s resolution: a stamped archive would differ now
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = np.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded["case/strategy/grads/w"], arrays["case/strategy/grads/w"])
    assert loaded["i"].dtype == arrays["i"].dtype
