"""tied(adamw) under jax.distributed: 2 CPU processes on localhost equal one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("multiprocess_tied_training.py")
REPO = Path(__file__).resolve().parents[2]


def _env(devices: int) -> dict[str, str]:
    return {
        **os.environ,
        # The device count is fixed when jax starts, hence fresh processes.
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        # Cross-process collectives on CPU go through gloo.
        "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # about a minute on 2 cores: three jax processes start and compile
def test_two_process_sharded_embedding_trains_like_one_process(tmp_path: Path) -> None:
    single = tmp_path / "single.npz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "single", str(single)],
        env=_env(1),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    port = str(_free_port())
    outs = [tmp_path / f"process{i}.npz" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(i), str(outs[i]), port],
            env=_env(2),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    for worker in workers:
        try:
            logs.append(worker.communicate(timeout=300)[0])
        finally:
            if worker.poll() is None:
                worker.kill()
    for worker in workers:
        assert worker.returncode == 0, "\n".join(logs)

    with np.load(single) as expected_file:
        expected = dict(expected_file)
    assert float(expected["drift"]) == 0.0
    for out in outs:
        with np.load(out) as actual:
            assert float(actual["drift"]) == 0.0
            for name in ("embed", "unembed", "proj"):
                scale = float(np.max(np.abs(expected[name])))
                np.testing.assert_allclose(
                    actual[name], expected[name], rtol=0, atol=1e-5 * scale, err_msg=name
                )
    # It trained: the embedding moved.
    initial = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    assert float(np.max(np.abs(expected["embed"] - initial))) > 0.1
