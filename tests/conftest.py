"""The test process starts JAX's backend before any test runs, so its device count is fixed
(one host device, or what XLA_FLAGS says): a test that calls the CLI in-process, which asks for
one device per core, cannot change the device count of the tests after it. Subprocesses keep
the environment as it is and get the CLI's own device setup."""

import os

# With `pytest -n 2` two processes share the machine: on a GPU neither may take most of its
# memory up front, as JAX does by default.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax

jax.devices()

import tempfile  # noqa: E402

# `gdkit run` keeps compiled programs in a per-user cache: the tests (and the subprocesses
# they start) use one of their own, so they neither read nor fill the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gdkit-test-cache-")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _x64_as_it_was():
    """`gdkit run` of a float64 config turns JAX's 64-bit mode on for the whole process, as it
    should for a CLI; a test that runs one in-process must not leave later tests in float64."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)
