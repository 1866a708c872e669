"""Using every CPU core: one XLA host device per core.

XLA's CPU backend runs the step loop of a sweep on one thread, and a CPU process has one JAX
device unless `XLA_FLAGS=--xla_force_host_platform_device_count=N` is set before JAX starts
its backend. gdkit shards the lanes over all local devices, so N host devices run N lane
shards in parallel, one per core. Results do not depend on the device count.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def _backend_started() -> bool:
    if "jax" not in sys.modules:  # not imported yet: nothing started (and no need to import)
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - JAX without the module: assume it started
        return True
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return True if started is None else bool(started())


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def use_all_cpu_cores() -> bool:
    """Makes JAX expose one CPU device per core, so a sweep runs its lanes on all cores.

    Call it first thing, before JAX computes anything (creating an array is enough to start
    the backend, after which the device count is fixed). It does nothing when the backend has
    already started, when `XLA_FLAGS` already sets a host device count (yours wins), or on a
    single core.

    jaxlib's CPU LAPACK kernels split a large batch of matrices over the thread pool that
    these devices share and wait for it, so a batched `jnp.linalg` decomposition in your own
    objective can deadlock when every device reaches it at once; gdkit's own second-order
    methods avoid it (`gdkit/optimizers/_linalg.py`). Sweep such an objective with
    `devices=1`.

    Returns:
      True if it set the device count (it takes effect when JAX starts its backend).

    Example:
      >>> import gdkit
      >>> gdkit.use_all_cpu_cores()  # doctest: +SKIP
      True
    """
    flags = os.environ.get("XLA_FLAGS", "")
    n = cpu_cores()
    if _FLAG in flags or n < 2 or _backend_started():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={n}".strip()
    return True
