"""The test process starts JAX's backend before any test runs, so its device count is fixed
(one host device, or what XLA_FLAGS says): a test that calls the CLI in-process, which asks for
one device per core, cannot change the device count of the tests after it. Subprocesses keep
the environment as it is and get the CLI's own device setup."""

import jax

jax.devices()
