"""How `sweep(engine=...)` dispatches to the fused Pallas kernel (`gdkit.engine.fused`): which
back end a plan picks on which platform, and that engine="fused" runs the kernel (in Pallas's
interpret mode on CPU) with the XLA path's outcome. Skipped where gdkit has no fused kernel."""

import types
import warnings

import numpy as np
import pytest

fused = pytest.importorskip("gdkit.engine.fused")

from test_engine_backends import assert_same_outcome  # noqa: E402

import gdkit  # noqa: E402
from gdkit.engine import backends  # noqa: E402
from gdkit.engine import plan as plan_mod  # noqa: E402

GPU, CPU = types.SimpleNamespace(platform="gpu"), types.SimpleNamespace(platform="cpu")


def _spec(objective, optimizer):
    p = plan_mod.resolve(objective, optimizer, grid={"learning_rate": [0.1]}, steps=5, tol=1e-6)
    return p.spec({})


def test_the_kernel_runs_two_d_rosenbrock_with_adam():
    assert fused.unsupported(_spec("rosenbrock", "adam")) is None


def test_auto_picks_the_kernel_on_a_gpu_only_where_it_applies():
    adam, newton = _spec("rosenbrock", "adam"), _spec("rosenbrock", "newton")
    why_not = fused.unsupported(newton)
    assert isinstance(why_not, str) and "\n" not in why_not
    on_gpu = backends.choose("auto", [GPU], adam)
    assert on_gpu.backend.name == "fused" and not on_gpu.backend.interpret
    assert on_gpu.backend.make_chunk.func is fused.make_chunk
    assert on_gpu.backend.make_chunk.keywords == {"interpret": False}
    assert on_gpu.fallback is None
    not_fused = backends.choose("auto", [GPU], newton)
    assert not_fused.backend is backends.XLA_GPU and why_not in not_fused.reason
    assert not_fused.fallback is None  # auto asked for nothing: no warning
    assert backends.choose("auto", [CPU], adam).backend is backends.XLA_CPU
    assert backends.choose("xla", [GPU], adam).backend is backends.XLA_GPU
    asked = backends.choose("fused", [GPU], newton)
    assert asked.backend is backends.XLA_GPU and asked.fallback == why_not


def test_fused_on_cpu_runs_the_kernel_in_interpret_mode_with_the_xla_outcome():
    kw = dict(
        grid={"learning_rate": np.geomspace(1e-3, 0.5, 12)},
        x0=[[-1.2, 1.0], [0.5, -0.5]],
        steps=60,
        tol=1e-3,
        record_every=10,
        progress=False,
    )
    p = gdkit.sweep.plan("rosenbrock", "adam", engine="fused", **kw)
    assert p.backend == "fused" and "interpret mode" in p.backend_reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        kernel = gdkit.sweep("rosenbrock", "adam", engine="fused", **kw)
    xla = gdkit.sweep("rosenbrock", "adam", engine="xla", **kw)
    assert_same_outcome(xla, kernel, "fused vs xla")
