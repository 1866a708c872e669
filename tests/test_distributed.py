"""A sweep spread over 2 processes x 2 devices (JAX's runtime, gloo on the CPU) gives exactly
the numbers of a plain one-process run of the same config."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[1]
CONFIG = """
name: dist
objectives:
  - {name: rosenbrock}
  - {name: peaks}
optimizers:
  - {name: gd, learning_rate: {logspace: [-4, -1, 7]}}
  - {name: adam, learning_rate: [0.01, 0.1], b1: 0.8}
starts: {kind: uniform, n: 3, seed: 1}
steps: 300
tol: 1.0e-4
record_every: 10
plots: []
"""


def _last_line(out: str) -> pathlib.Path:
    return pathlib.Path(out.strip().splitlines()[-1])


@pytest.mark.slow  # three fresh processes, ~15 s: in CI's slow pass, with the other slow ones
def test_two_processes_equal_one(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("XLA_FLAGS", None)
    dist = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "launch_local.sh"),
            "2",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "dist"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert dist.returncode == 0, dist.stderr[-2000:]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdkit",
            "run",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "one"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,  # the default: one device per core
    )
    assert one.returncode == 0, one.stderr[-2000:]
    a, b = _last_line(dist.stdout), _last_line(one.stdout)
    assert "4 devices" in dist.stdout  # 2 processes x 2 devices, one global mesh
    # Process 0 alone wrote: one run directory.
    assert len(list((tmp_path / "dist").iterdir())) == 1
    assert (a / "runs.csv").read_text() == (b / "runs.csv").read_text()
    ca, cb = np.load(a / "curves.npz"), np.load(b / "curves.npz")
    np.testing.assert_array_equal(ca["loss"], cb["loss"])
