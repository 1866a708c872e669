"""The engine's back ends: which one a plan picks and why, and that the GPU layout (forced on
CPU host devices) computes the same bits as the CPU layout it replaces."""

import os
import types
import warnings

import numpy as np
import optax
import pytest
from host_devices import run_on_host_devices

import gdkit
from gdkit import starts
from gdkit.engine import backends, programs
from gdkit.engine import plan as plan_mod
from gdkit.engine.sweep import sweep

FIELDS = (
    "status",
    "steps_to_tol",
    "diverged_step",
    "final_loss",
    "best_loss",
    "final_x",
    "final_grad_norm",
    "history",
)


def assert_same_bits(a, b, what=""):
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what} {f}"
        # bit for bit, NaN included (a diverged lane's history is NaN from its divergence on)
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        same = x.view(np.uint8) == y.view(np.uint8) if x.dtype.kind == "f" else x == y
        assert np.all(same), f"{what} {f}: {np.count_nonzero(~same)} differ"


# Objective / optimizer pairs that cover the step's kinds of arithmetic: polynomials
# (rosenbrock, himmelblau), exp (peaks), a shared optimizer-state leaf (Adam's count), and
# learning rates high enough that some lanes diverge (the replay program runs). Together
# their lanes end in every status but `stationary` (these objectives know their minimum).
PAIRS = [
    ("rosenbrock", "adam", np.geomspace(1e-3, 1.0, 61), 3),
    ("rosenbrock", optax.sgd, np.geomspace(1e-5, 1e-2, 31), 2),
    ("peaks", "adam", np.geomspace(1e-3, 1.0, 23), 3),
    ("himmelblau", optax.sgd, np.geomspace(1e-4, 0.1, 17), 2),
]
IDS = ["rosenbrock-adam", "rosenbrock-gd", "peaks-adam", "himmelblau-gd"]


def _pair_kwargs(name, lrs, n_starts):
    return dict(
        grid={"learning_rate": lrs},
        x0=starts.uniform(name, n_starts, seed=3),
        steps=300,
        tol=1e-4,
        record_every=10,
        progress=False,
    )


@pytest.mark.parametrize(("name", "opt", "lrs", "n_starts"), PAIRS, ids=IDS)
def test_gpu_layout_on_a_cpu_device_gives_the_cpu_layouts_bits(
    monkeypatch, name, opt, lrs, n_starts
):
    kw = _pair_kwargs(name, lrs, n_starts)
    cpu = sweep(name, opt, **kw)
    monkeypatch.setenv(backends.FORCE_ENV, "xla_gpu")
    p = gdkit.sweep.plan(name, opt, **kw)
    assert p.backend == "xla_gpu" and backends.FORCE_ENV in p.backend_reason
    gpu = sweep(name, opt, **kw)
    assert_same_bits(cpu, gpu, name)
    if name != "peaks":  # a status test that can fail: not every lane ends alike
        assert len(set(cpu.status.ravel())) >= 2
    if opt is optax.sgd:  # the replay of diverged lanes ran under both layouts
        assert cpu.counts()["diverged"] > 0


def test_the_two_xla_layouts_differ_as_their_platforms_need():
    """CPU: tiles sized by the carry, the same shape on any device count; GPU: one unit of
    all of a device's lanes (padded to ALIGN), however large."""
    carry = 64  # bytes per lane: a 4096-lane tile fills TILE_BYTES
    cpu, gpu = backends.XLA_CPU.layout, backends.XLA_GPU.layout
    assert cpu(carry, 100_000, 10**9, 1, None) == (4000, 100_000)  # 25 tiles of 4,000
    assert cpu(carry, 100_000, 10**9, 4, None) == (4000, 112_000)  # 7 whole tiles a device
    assert gpu(carry, 100_000, 10**9, 1, None) == (100_000, 100_000)
    assert gpu(carry, 100_000, 10**9, 4, None) == (25_024, 100_096)  # 25,000 -> x32
    assert gpu(carry, 100_000, 10**9, 4, 256) == (25_024, 100_096)  # no tiles on a GPU
    assert gpu(carry, 100_000, 30_000, 4, None) == (7_520, 30_080)  # lane chunks
    assert gpu(carry, 3, 10**9, 2, None) == (32, 64)


def test_forced_gpu_layout_runs_chunks_of_lanes_and_steps_alike(monkeypatch):
    kw = _pair_kwargs("rosenbrock", np.geomspace(1e-4, 1.0, 50), 2)
    kw.update(max_lanes_per_chunk=32, chunk_steps=40)
    cpu = sweep("rosenbrock", "adam", **kw)
    monkeypatch.setenv(backends.FORCE_ENV, "xla_gpu")
    plan = gdkit.sweep.plan("rosenbrock", "adam", **kw)
    assert plan.lane_chunks == 4  # 100 lanes in chunks of 32
    assert_same_bits(cpu, sweep("rosenbrock", "adam", **kw))


def assert_same_outcome(a, b, what=""):
    """The same status, steps to tol and divergence step in every lane, and the same numbers
    to float32 rounding."""
    for f in ("status", "steps_to_tol", "diverged_step"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{what} {f}")
    for f in ("final_loss", "best_loss", "final_x", "history"):
        x, y = getattr(a, f), getattr(b, f)
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-30, err_msg=f"{what} {f}")


# On 4 devices the GPU layout gives each device one array of its lanes, ceil(L/4) rounded up
# to 32, where the CPU layout runs tiles whose shape follows from L alone. XLA:CPU's default
# fusion emitters round the last few lanes of an array differently from the others (2-D
# Rosenbrock with gradient descent shows it in the last bits), so the two agree bit for bit
# only where their arrays agree: the CPU layout with tiles of the GPU layout's per-device
# lane count. Against the CPU layout's default tiles the outcome (status, steps to tol,
# divergence step) is the same and the numbers agree to float32 rounding.
_FOUR_DEVICES = """
import math, os, sys
import jax
sys.path.insert(0, "tests")
from gdkit.engine.sweep import sweep
from test_engine_backends import PAIRS, _pair_kwargs, assert_same_bits, assert_same_outcome
assert len(jax.devices()) == 4
for name, opt, lrs, n in PAIRS:
    kw = _pair_kwargs(name, lrs, n)
    lanes = len(lrs) * n
    per_device = math.ceil(math.ceil(lanes / 4) / 32) * 32  # the GPU layout's array
    chunked = dict(kw, max_lanes_per_chunk=40)  # GPU layout: chunks of 4 x 32 lanes
    cpu = sweep(name, opt, **kw)
    cpu_tiled_alike = sweep(name, opt, tile_lanes=per_device, **kw)
    cpu_chunked = sweep(name, opt, tile_lanes=32, **chunked)
    assert sweep.plan(name, opt, **kw).backend == "xla_cpu"
    os.environ["GDKIT_XLA_BACKEND"] = "xla_gpu"
    assert sweep.plan(name, opt, **kw).backend == "xla_gpu"
    assert sweep.plan(name, opt, **chunked).lane_chunks == math.ceil(lanes / 128)
    gpu = sweep(name, opt, **kw)
    gpu_chunked = sweep(name, opt, **chunked)
    del os.environ["GDKIT_XLA_BACKEND"]
    assert_same_bits(cpu_tiled_alike, gpu, f"{name} 4 devices")
    assert_same_bits(cpu_chunked, gpu_chunked, f"{name} 4 devices, lane chunks")
    assert_same_outcome(cpu, gpu, f"{name} 4 devices, default CPU tiles")
print("OK")
"""


@pytest.mark.slow
def test_gpu_layout_on_four_host_devices_gives_the_cpu_layouts_bits():
    run_on_host_devices(_FOUR_DEVICES, 4, 500, "the forced GPU layout")


def test_sweep_plan_is_an_attribute_of_gdkit_sweep():
    kw = dict(grid={"learning_rate": [0.1, 0.01], "nesterov": [False, True]}, steps=30)
    p = gdkit.sweep.plan("rosenbrock", optax.sgd, **kw)
    assert gdkit.sweep.plan is plan_mod.plan
    assert (p.lanes, p.programs, p.lane_chunks) == (4, 2, 2)
    assert p.backend == "xla_cpu" and p.backend_reason.startswith("the devices are CPUs")
    assert p.describe_backend() == f"back end: xla_cpu ({p.backend_reason})"
    assert "\n" not in p.describe_backend()
    assert gdkit.sweep.plan("rosenbrock", optax.sgd, engine="xla", **kw).backend_reason.startswith(
        "engine='xla': the devices are CPUs"
    )


@pytest.mark.parametrize("bad", ["gpu", "XLA", "", None, 1, ["xla"]])
def test_engine_must_be_one_of_the_three(bad):
    for call in (gdkit.sweep, gdkit.sweep.plan):
        with pytest.raises(ValueError) as info:
            call("rosenbrock", "gd", grid={"learning_rate": 0.1}, steps=3, engine=bad)
        msg = str(info.value)
        assert msg.startswith("sweep: engine must be one of 'auto', 'xla', 'fused', got ")
        assert "\n" not in msg


def test_a_bad_forcing_variable_is_refused(monkeypatch):
    monkeypatch.setenv(backends.FORCE_ENV, "tiles")
    with pytest.raises(ValueError, match=f"sweep: .*{backends.FORCE_ENV}.*'xla_cpu', 'xla_gpu'"):
        gdkit.sweep.plan("rosenbrock", "gd", grid={"learning_rate": 0.1}, steps=3)


def test_fused_falls_back_to_xla_with_one_warning_for_what_it_cannot_run():
    """Newton's method (second order, a linear solve per step) is not elementwise: whether
    the fused kernel is installed or not, engine='fused' runs it on XLA, says why once, and
    gives the XLA numbers."""
    kw = dict(grid={"learning_rate": [1.0, 0.5, 0.1]}, steps=40, tol=1e-6, progress=False)
    xla = sweep("rosenbrock", "newton", engine="xla", **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fused = sweep("rosenbrock", "newton", engine="fused", **kw)
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and lines[0].startswith("sweep: engine='fused' runs on XLA instead: ")
    assert "\n" not in lines[0] and caught[0].filename == __file__  # points at the caller
    assert_same_bits(xla, fused)
    p = gdkit.sweep.plan("rosenbrock", "newton", engine="fused", **kw)
    assert p.backend == "xla_cpu" and p.backend_reason.startswith("engine='fused' falls back")


def test_choice_follows_the_platform():
    """The XLA back end follows the devices' platform (a device is only asked its platform);
    engine='xla' never picks the fused kernel, and it runs on no TPU."""
    spec = plan_mod.resolve("rosenbrock", "adam", grid={"learning_rate": [0.1]}, steps=5)
    spec = spec.spec({})
    assert isinstance(spec, programs.Spec)
    dev = {k: types.SimpleNamespace(platform=k) for k in ("cpu", "gpu", "tpu")}
    assert backends.choose("auto", [dev["cpu"]], spec).backend is backends.XLA_CPU
    gpu = backends.choose("xla", [dev["gpu"]], spec)
    assert gpu.backend is backends.XLA_GPU and gpu.reason.startswith(
        "engine='xla': the devices are GPUs: each runs its lanes as one program"
    )
    tpu = backends.choose("fused", [dev["tpu"]], spec)
    assert tpu.backend is backends.XLA_GPU and "not on tpu" in tpu.fallback
    assert backends.choose("auto", [dev["tpu"]], spec).fallback is None


def test_env_forcing_is_read_per_call_not_at_import(monkeypatch):
    kw = dict(grid={"learning_rate": 0.1}, steps=3)
    monkeypatch.setenv(backends.FORCE_ENV, "xla_gpu")
    assert gdkit.sweep.plan("rosenbrock", "gd", **kw).backend == "xla_gpu"
    monkeypatch.delenv(backends.FORCE_ENV)
    assert os.environ.get(backends.FORCE_ENV) is None
    assert gdkit.sweep.plan("rosenbrock", "gd", **kw).backend == "xla_cpu"
