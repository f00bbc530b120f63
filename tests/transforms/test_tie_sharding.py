"""Sharding, on 8 fake CPU devices in a subprocess so it stays in the default test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("sharded_tied_training.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fence", ["", "fence"])
@pytest.mark.parametrize("mode", ["auto", "explicit"])
def test_sharded_transpose_tie_trains_like_unsharded(mode: str, fence: str) -> None:
    env = {
        **os.environ,
        # The device count is fixed when jax starts, hence a fresh process.
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), mode, *([fence] if fence else [])],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok,") == 2, result.stdout
