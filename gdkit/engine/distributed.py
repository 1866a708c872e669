"""JAX's multi-process runtime for sweeps spread over several hosts (or processes)."""

from __future__ import annotations


def initialize(spec) -> None:
    """`jax.distributed.initialize` with the config's `distributed:` fields (none given: JAX
    detects the cluster, e.g. SLURM). Must run before JAX initialises its backends.

    CPU processes exchange results over gloo; GPU processes use NCCL as JAX does by default.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {} if spec is None else spec.model_dump(exclude_none=True)
    jax.distributed.initialize(**kwargs)


def is_writer() -> bool:
    """Only process 0 writes the run directory; the others compute their lanes and stop."""
    import jax

    return jax.process_index() == 0
