"""Runs a Python script in a fresh process with N XLA host devices (JAX fixes its device count
when it starts), under a timeout, so that a hang fails the test that asked instead of stalling
the suite. The script prints OK last when its own assertions passed."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_on_host_devices(script: str, devices: int, timeout: float, what: str) -> None:
    """Runs `script` (from the repository root, so `tests/` is reachable) on `devices` host
    devices; fails the calling test on a timeout, a non-zero exit or no final OK."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} on {devices} host devices did not finish in {timeout:g} s")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK"), out.stdout[-2000:]
