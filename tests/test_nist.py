"""Least squares against the NIST StRD nonlinear-regression certified values (float64).

Scored by the LRE of the worst parameter (correct significant digits, capped at 11); issue 17
asks for LRE >= 8 from both official starts. Every fit runs through `gdkit.sweep` with the
two starts as two lanes.
"""

from __future__ import annotations

import jax
import nist_strd
import numpy as np
import pytest
from host_devices import run_on_host_devices

STEPS = 2000


@pytest.mark.parametrize("name", list(nist_strd.MODELS))
def test_models_reproduce_the_certified_residual_sum_of_squares(name):
    """The model, data and certified values read from each file agree with each other."""
    p = nist_strd.load(name)
    assert p.starts.shape == (2, p.certified.size)
    with jax.enable_x64(True):
        rss = float(np.sum(np.asarray(p.residuals(np.asarray(p.certified))) ** 2))
    # NIST prints 11 digits; Lanczos1's RSS (1.4e-25) is rounding noise of the data.
    assert rss == pytest.approx(p.certified_rss, rel=1e-9, abs=1e-20)


def _lre(name: str, optimizer: str) -> list[float]:
    with jax.enable_x64(True):
        return nist_strd.fitted_lre(nist_strd.load(name), optimizer, STEPS)


# Data sets of each difficulty (lower, average, higher), among them those issue 17 names
# where the old methods failed (LM: Hahn1, Bennett5, MGH17, Lanczos3, BoxBOD and MGH10 from
# start 1; GN: Misra1a, Hahn1, MGH17 start 2). scipy's lm fails BoxBOD from start 1 (see
# scripts/bench_least_squares.py for all 27).
@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "Misra1a",
        "Lanczos3",
        "MGH17",
        "Hahn1",
        "Nelson",
        "Eckerle4",
        "MGH09",
        "Bennett5",
        "BoxBOD",
        "MGH10",
    ],
)
def test_levenberg_marquardt_reaches_lre_8_from_both_starts(name):
    lre = _lre(name, "levenberg_marquardt")
    assert min(lre) >= 8.0, lre


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "starts"),
    [("Misra1a", (1, 2)), ("Chwirut1", (1, 2)), ("MGH17", (2,)), ("Hahn1", (1, 2))],
)
def test_gauss_newton_reaches_lre_8_where_it_converges(name, starts):
    lre = _lre(name, "gauss_newton")
    assert min(lre[s - 1] for s in starts) >= 8.0, lre


_ON_TWO_DEVICES = """
import sys
import numpy as np
import gdkit
sys.path.insert(0, "tests")
import nist_strd
from gdkit.engine.sweep import sweep
import jax
assert len(jax.devices()) == 2, jax.devices()
gdkit.enable_x64()
p = nist_strd.load("Misra1a")
for opt in ("levenberg_marquardt", "gauss_newton"):
    x0 = np.repeat(p.starts, 2, axis=0)  # 4 lanes, 2 per device
    r = sweep(p.objective(1), opt, grid={}, x0=x0, steps=200, dtype="float64", progress=False)
    lre = [nist_strd.lre(x, p.certified) for x in np.asarray(r.final_x).reshape(4, -1)]
    assert min(lre) >= 8.0, (opt, lre)
print("OK")
"""


def test_least_squares_sweeps_on_two_host_devices_reach_the_certified_values():
    run_on_host_devices(_ON_TWO_DEVICES, 2, 180, "least squares")
