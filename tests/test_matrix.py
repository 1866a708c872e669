"""The correctness matrix (issue 14): gdkit's numbers against independent references, at
2,048 lanes per sweep, under the CLI's device setup (one host device per core) with 2 and with
4 host devices.

(a) every registered objective and every function of the expression allow-list: f(x0) and
    grad f(x0) from a one-step sweep, against float64 NumPy references written from the
    formulas (tests/matrix_reference.py), in float32 and float64, within a running error bound
    of each formula in that dtype;
(b) every optimizer on two objectives against a per-lane `jax.jit(jax.vmap(loop))` of optax's
    own transformation (or gdkit's transformation called directly), lane by lane
    (tests/matrix_optimizers.py).

CI's slow pass runs both parts on 2 host devices (the CLI's default on 2 cores); the 4-device
runs are `very_slow` (minutes each, beyond CI's budget): `pytest -m very_slow` runs them.

JAX fixes the device count when it starts, so each part runs in a fresh process
(tests/matrix_worker.py) with XLA_FLAGS set; a failure lists, per case, how many lanes
disagree and the worst lane's start, numbers and tolerance.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from gdkit import optimizers

WORKER = pathlib.Path(__file__).with_name("matrix_worker.py")
ROOT = WORKER.parents[1]


def _run_worker(part: str, devices: int, timeout: int, *args: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JAX_ENABLE_X64", None)
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), part, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or ""
        started = [line for line in err.splitlines() if line.startswith("matrix case: ")]
        pytest.fail(
            f"matrix {part} {' '.join(args)} on {devices} devices did not finish in {timeout} s; "
            f"it hung in {started[-1][13:] if started else 'start-up'!r}"
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == devices
    return out


def _describe(mismatches: list[dict]) -> str:
    return "\n".join(json.dumps(m) for m in mismatches)


@pytest.mark.slow  # ~2 minutes per device count on 2 busy cores
@pytest.mark.parametrize("devices", [2, pytest.param(4, marks=pytest.mark.very_slow)])
def test_objectives_f_and_grad_against_float64_references(devices):
    out = _run_worker("objectives", devices, timeout=1200)
    assert len(out["cases"]) >= 2 * 37  # 21 objectives, 15 functions, the operators
    assert not out["mismatches"], (
        f"{len(out['mismatches'])} objective/dtype checks disagree with the float64 "
        f"references on {devices} devices:\n{_describe(out['mismatches'])}"
    )


@pytest.mark.slow  # ~2-3 minutes per device count on 2 busy cores
@pytest.mark.parametrize("devices", [2, pytest.param(4, marks=pytest.mark.very_slow)])
def test_optimizers_against_per_lane_loops(devices):
    # One process for every optimizer (a JAX start-up each would cost more than a case); each
    # case is announced before it runs, so a hang (LAPACK inside XLA, say) is named.
    names = optimizers.names()
    out = _run_worker("optimizers", devices, 1200, *names)
    assert len(out["cases"]) == 2 * len(names)
    assert not out["mismatches"], (
        f"{len({m['case'] for m in out['mismatches']})} optimizer cases disagree with the "
        f"per-lane reference loops on {devices} devices:\n{_describe(out['mismatches'])}"
    )
