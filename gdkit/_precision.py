"""Float32 by default; float64 on request."""

import jax


def enable_x64(enabled: bool = True) -> None:
    """Turns JAX's 64-bit mode on (or off) for the whole process.

    Call it before creating arrays: afterwards `jnp.asarray(1.0)` is float64, sweeps run in
    float64, and nothing is downcast. Equivalent to `JAX_ENABLE_X64=1` in the environment. For a
    scoped switch use JAX's own context manager, `with jax.enable_x64(True): ...`.
    """
    jax.config.update("jax_enable_x64", bool(enabled))
