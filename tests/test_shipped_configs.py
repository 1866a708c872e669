"""Every shipped config runs to completion through `gdkit run`, under a watchdog.

Each config runs as a user runs it (a `gdkit run` subprocess, the CLI's default of one host
device per core) and once more on four host devices, with fewer steps. A run that does not
finish within the watchdog fails the test instead of stalling CI (newton and
levenberg_marquardt used to hang on several host devices: configs/mlp.yaml did).
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from gdkit.engine.devices import cpu_cores
from gdkit.experiments.rundir import is_complete

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
STEPS = 10
WATCHDOG_S = 600  # the optimizer gallery compiles 34 sweeps: minutes on a busy 2-core machine


def _overrides(config: pathlib.Path) -> list[str]:
    """--set options for STEPS steps everywhere (objectives may set steps of their own)."""
    cfg = yaml.safe_load(config.read_text())
    sets = [f"steps={STEPS}", "record_every=1"]
    for i, obj in enumerate(cfg["objectives"]):
        if "steps" in obj:
            sets.append(f"objectives.{i}.steps={STEPS}")
    return [a for s in sets for a in ("--set", s)]


@pytest.mark.slow
@pytest.mark.parametrize("devices", ["one per core", 4])
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_runs_to_completion(tmp_path, config, devices):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    args = _overrides(config)
    if devices == 4:
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        args += ["--set", "plots=[]"]  # the plots do not depend on the device count
    cmd = [sys.executable, "-m", "gdkit", "run", str(config), *args]
    cmd += ["--out", str(tmp_path), "--no-progress"]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WATCHDOG_S)
    except subprocess.TimeoutExpired:
        where = "4 host devices" if devices == 4 else "one host device per core"
        pytest.fail(f"gdkit run {config.name} on {where} did not finish in {WATCHDOG_S} s")
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = pathlib.Path(out.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path and is_complete(run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert len(meta["devices"]) == (cpu_cores() if devices != 4 else 4)
    assert set(meta["steps"]) == {STEPS}
    cfg = yaml.safe_load(config.read_text())
    assert len(meta["sweeps"]) == len(cfg["objectives"]) * len(cfg["optimizers"])
    with open(run_dir / "runs.csv", newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == meta["lanes"]
