"""The engine computes what plain JAX computes: no compiler option changes a number, and no
sweep hangs on several host devices."""

import jax
import jax.numpy as jnp
import numpy as np
from host_devices import run_on_host_devices

from gdkit import objectives
from gdkit.engine.sweep import sweep

LANES = 2048  # enough lanes that XLA:CPU takes its vectorised (SIMD) code paths


def test_arctan_sweep_matches_float64_numpy_at_simd_widths():
    # f = arctan(x) + y^2, grad f = (1 / (1 + x^2), 2 y). After one gd step,
    # x1 = x0 - lr * grad f(x0); the history's first record is f(x0), the final loss f(x1).
    obj = objectives.from_expression("arctan(x) + y**2")
    x0 = np.random.default_rng(0).uniform(-3.0, 3.0, size=(LANES, 2))
    lr = 0.01
    r = sweep(obj, "gd", grid={"learning_rate": lr}, x0=x0, steps=1, progress=False)
    x0_32 = x0.astype(np.float32).astype(np.float64)  # the sweep starts at float32(x0)
    f = lambda p: np.arctan(p[:, 0]) + p[:, 1] ** 2  # noqa: E731
    grad = np.stack([1.0 / (1.0 + x0_32[:, 0] ** 2), 2.0 * x0_32[:, 1]], axis=1)
    eps = 1e-6  # float32 rounding of values of magnitude up to ~10
    np.testing.assert_allclose(r.history[..., 0], f(x0_32), rtol=eps, atol=eps)
    np.testing.assert_allclose(r.final_x, x0_32 - lr * grad, rtol=eps, atol=eps)
    final_x = r.final_x.astype(np.float64)
    np.testing.assert_allclose(r.final_loss, f(final_x), rtol=eps, atol=eps)


_SECOND_ORDER_ON_TWO_DEVICES = """
import jax
import numpy as np
from gdkit import objectives
from gdkit.engine.sweep import sweep
assert len(jax.devices()) == 2, jax.devices()
rosen = objectives.get("rosenbrock", dim=20)
x0 = np.random.default_rng(0).uniform(-2.0, 2.0, size=(64, 20))
mlp = objectives.get("mlp", hidden=4, seed=0)  # 17 parameters
cases = [(rosen, "newton", {}, x0), (mlp, "levenberg_marquardt", {}, None)]
for obj, opt, grid, starts in cases:
    r = sweep(obj, opt, grid=grid, x0=starts, steps=3, progress=False)
    # both are descent methods: every lane's loss went down
    assert (r.final_loss < r.history[..., 0]).all(), (opt, r.final_loss, r.history[..., 0])
print("OK")
"""


def test_newton_and_levenberg_marquardt_finish_on_two_host_devices():
    """They factorise a Hessian / J^T J per lane with LAPACK; with two host devices in one
    process (the CLI's default on two cores) both used to wait forever in the batch's
    eigendecomposition (see gdkit/optimizers/_linalg.py)."""
    run_on_host_devices(_SECOND_ORDER_ON_TWO_DEVICES, 2, 120, "newton / levenberg_marquardt")


def test_one_matrix_per_call_decompositions_equal_the_batched_ones():
    from gdkit.optimizers import _linalg

    a = np.random.default_rng(2).standard_normal((2, 3, 20, 20)).astype(np.float32)
    sym = a + np.swapaxes(a, -1, -2)
    eigh = jax.jit(jax.vmap(jax.vmap(_linalg.eigh)))(sym)
    for mine, ref in zip(eigh, jnp.linalg.eigh(sym), strict=True):
        np.testing.assert_array_equal(mine, ref)
    np.testing.assert_allclose(eigh[0], np.linalg.eigvalsh(sym.astype(np.float64)), atol=1e-4)
    svd = jax.jit(jax.vmap(jax.vmap(_linalg.svd)))(a[..., :7])
    for mine, ref in zip(svd, jnp.linalg.svd(a[..., :7], full_matrices=False), strict=True):
        np.testing.assert_array_equal(mine, ref)


def test_one_matrix_per_lapack_call_only_on_cpu():
    """The CPU lowering of a batched eigh/svd loops over the batch (one matrix per LAPACK call);
    the CUDA lowering keeps cuSOLVER's batched kernels (checked by exporting for CUDA here)."""
    from jax import export

    from gdkit.optimizers import _linalg

    f = jax.jit(jax.vmap(lambda a: _linalg.eigh(a)[0] + _linalg.svd(a)[1]))
    a = jax.ShapeDtypeStruct((8, 4, 4), jnp.float32)
    cuda = export.export(f, platforms=["cuda"])(a).mlir_module()
    cpu = export.export(f, platforms=["cpu"])(a).mlir_module()
    assert "cusolver_syevd_ffi" in cuda and "tensor<8x4x4xf32>) -> (tensor<8x4x4xf32>" in cuda
    assert "stablehlo.while" not in cuda
    assert "stablehlo.while" in cpu and "lapack_ssyevd_ffi" in cpu
    assert "tensor<8x4x4xf32>) -> (tensor<8x4x4xf32>" not in cpu  # no batch of 8 in one call
