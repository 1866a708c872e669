"""Dense decompositions that are safe on several XLA:CPU host devices in one process.

Why not `jnp.linalg.eigh` / `svd` under `vmap`: on CPU, jaxlib (0.10.2) runs a batch of
matrices through one LAPACK custom call whose kernel (`ParallelBatchMap` in jaxlib's
`lapack_kernels.cc`) splits the batch into chunks once it is worth ~2e5 flops (about 25
20x20 matrices), schedules the chunks on XLA's intra-op thread pool and then blocks its own
thread until they are done. That pool is shared by every host device of the process and has
one thread per core, and each device runs its program on one of those threads. With one
host device per core (`gdkit.use_all_cpu_cores`, the CLI's default), all devices reach the
decomposition at the same step: every pool thread then waits for chunks that no free thread
is left to run, and the sweep hangs at 0% CPU (newton and levenberg_marquardt with >= 16
parameters did). `--xla_cpu_multi_thread_eigen=false` does not prevent it.

The functions here give LAPACK one matrix per call instead: under `vmap` they loop over the
batch (`lax.map`), and a batch of one is factorised inline on the calling thread, never
handed to the pool. Each matrix goes through the same LAPACK routine as before, so the
numbers are the same; a device's lanes are factorised one after another on its own core,
which is what one device per core asks for anyway.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _one_per_call(fn):
    """`fn` of one matrix, batched under `vmap` on CPU by a loop of single-matrix calls (on
    other platforms as usual: a GPU solver has no such pool and wants the whole batch)."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, a):
        del axis_size
        (batched,) = in_batched
        if not batched:
            out = wrapped(a)
        else:
            out = jax.lax.platform_dependent(
                a, cpu=lambda m: jax.lax.map(wrapped, m), default=jax.vmap(fn)
            )
        return out, jax.tree.map(lambda _: batched, out)

    return wrapped


@_one_per_call
def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`jnp.linalg.eigh(a)` of one symmetric matrix: (eigenvalues ascending, eigenvectors)."""
    return tuple(jnp.linalg.eigh(a))


@_one_per_call
def svd(a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`jnp.linalg.svd(a, full_matrices=False)` of one matrix: (u, s, vt)."""
    return tuple(jnp.linalg.svd(a, full_matrices=False))
