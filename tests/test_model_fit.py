"""Your own least-squares models: `objectives.wrap(residual_fn=...)` and config entries
`{model: "formula", csv:, x:, y:}`, checked against scipy.optimize.least_squares and the NIST
StRD certified values."""

from __future__ import annotations

import csv
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from nist_strd import load as load_nist
from nist_strd import lre

import gdkit
from gdkit import objectives
from gdkit.experiments import config as config_mod
from gdkit.experiments import rundir
from gdkit.experiments.cli import main
from gdkit.objectives.model import ModelError, from_model

# Misra1a (NIST StRD, lower difficulty): y = b1 (1 - exp(-b2 x)), 14 points
MISRA1A = load_nist("Misra1a")
MISRA1A_MODEL = "b1 * (1 - exp(-b2 * x))"


def _write_csv(path: pathlib.Path, x, y, names=("x", "y")) -> pathlib.Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows([repr(float(a)), repr(float(b))] for a, b in zip(x, y, strict=True))
    return path


def test_wrap_takes_residuals_and_levenberg_marquardt_matches_scipy():
    t = np.linspace(0.0, 3.0, 25)
    y = 2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * np.sin(7 * t)  # not exactly the model

    def residuals(p):
        return p[0] * jnp.exp(-p[1] * t) + p[2] - y

    obj = objectives.wrap(residual_fn=residuals, x0=[1.0, 1.0, 0.0], name="decay")
    assert obj.residual_fn is residuals and obj.dim == 3
    with jax.enable_x64(True):
        x = jnp.array([1.0, 0.5, 0.2])
        np.testing.assert_allclose(obj.fn(x), 0.5 * np.sum(np.asarray(residuals(x)) ** 2))
        r = gdkit.sweep(obj, "levenberg_marquardt", grid={}, steps=200, progress=False)
        jac = jax.jit(jax.jacfwd(residuals))
        ref = scipy.optimize.least_squares(
            lambda p: np.asarray(residuals(jnp.asarray(p))),
            obj.x0,
            jac=lambda p: np.asarray(jac(jnp.asarray(p))),
            method="lm",
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
        )
    np.testing.assert_allclose(r.final_x.reshape(-1), ref.x, rtol=1e-9)


def test_wrap_refuses_a_fn_that_is_not_half_the_sum_of_squared_residuals():
    r = lambda p: p - 1.0  # noqa: E731
    with pytest.raises(ValueError, match=r"fn must equal 0.5 \* sum\(residual_fn\*\*2\)"):
        objectives.wrap(lambda p: jnp.sum(r(p) ** 2), residual_fn=r, dim=2)
    ok = objectives.wrap(lambda p: 0.5 * jnp.sum(r(p) ** 2), residual_fn=r, dim=2)
    assert ok.residual_fn is r
    with pytest.raises(TypeError, match="residual_fn must be a callable"):
        objectives.wrap(residual_fn=3, dim=2)
    with pytest.raises(TypeError, match="give fn"):
        objectives.wrap(dim=2)


def test_model_parameters_are_the_names_that_are_not_columns(tmp_path):
    path = _write_csv(tmp_path / "d.csv", MISRA1A.x, MISRA1A.y)
    obj = from_model(MISRA1A_MODEL, path, x=["x"], y="y", x0=MISRA1A.starts[0])
    assert obj.param_names == ("b1", "b2")
    with jax.enable_x64(True):
        b = jnp.asarray(MISRA1A.certified)
        want = -np.asarray(MISRA1A.residuals(b))  # model - y, from NIST's model written apart
        np.testing.assert_allclose(np.asarray(obj.residual_fn(b)) * np.sqrt(len(want) / 2), want)
        np.testing.assert_allclose(obj.fn(b), np.mean(want**2))


@pytest.mark.parametrize(
    ("model", "x", "y", "key", "message"),
    [
        ("b1 * (1 - exp(-b2 * x))", ["q"], "y", "x", "no column 'q'"),
        ("b1 * (1 - exp(-b2 * x))", ["x"], "z", "y", "no column 'z'"),
        ("2 * x", ["x"], "y", "model", "has no parameters"),
        ("b1 * (1 - exp(-b2 * x", ["x"], "y", "model", "cannot parse"),
        ("b1 * __import__('os')", ["x"], "y", "model", "not allowed"),
        ("b1 * y", ["x"], "y", "model", "'y' is a column"),
    ],
)
def test_bad_model_entries_name_their_key(tmp_path, model, x, y, key, message):
    path = _write_csv(tmp_path / "d.csv", MISRA1A.x, MISRA1A.y)
    with pytest.raises(ModelError, match=message) as e:
        from_model(model, path, x=x, y=y)
    assert e.value.key == key
    raw = {
        "name": "bad",
        "objectives": [{"model": model, "csv": str(path), "x": x, "y": y}],
        "optimizers": [{"name": "levenberg_marquardt"}],
        "steps": 10,
    }
    cfg = config_mod.validate(raw)
    with pytest.raises(config_mod.ConfigError, match=rf"^objectives\.0\.{key}: .*{message}"):
        config_mod.check_names(cfg)


def test_a_model_entry_takes_only_its_settings(tmp_path):
    path = _write_csv(tmp_path / "d.csv", MISRA1A.x, MISRA1A.y)
    raw = {
        "name": "bad",
        "objectives": [{"model": MISRA1A_MODEL, "csv": str(path), "x": ["x"], "y": "y", "n": 3}],
        "optimizers": [{"name": "levenberg_marquardt"}],
        "steps": 10,
    }
    with pytest.raises(config_mod.ConfigError, match=r"^objectives\.0\.n: a model takes csv"):
        config_mod.check_names(config_mod.validate(raw))
    del raw["objectives"][0]["n"], raw["objectives"][0]["y"]
    with pytest.raises(config_mod.ConfigError, match=r"^objectives\.0\.y: a model needs y"):
        config_mod.check_names(config_mod.validate(raw))


def test_misra1a_fitted_from_a_config_reaches_the_certified_values(tmp_path):
    # the config path end to end: gdkit run, then the run directory's results (one optimizer:
    # the model entry is what is checked here; tests/test_nist.py has Gauss-Newton on Misra1a)
    path = _write_csv(tmp_path / "misra1a.csv", MISRA1A.x, MISRA1A.y)
    starts = [list(map(float, s)) for s in MISRA1A.starts]  # NIST's two official starts
    (tmp_path / "fit.yaml").write_text(
        f"""
name: misra1a
objectives:
  - {{model: "{MISRA1A_MODEL}", csv: "{path}", x: [x], y: y}}
optimizers:
  - {{name: levenberg_marquardt}}
starts: {{kind: list, points: {starts}}}
steps: 300
dtype: float64
plots: []
"""
    )
    code = main(["run", str(tmp_path / "fit.yaml"), "--out", str(tmp_path / "runs"),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = rundir.load_results(run_dir)
    assert [r.optimizer for r in results] == ["levenberg_marquardt"]
    for r in results:
        for b in r.final_x.reshape(-1, 2):
            assert lre(b, MISRA1A.certified) >= 8, (r.optimizer, b)
    with open(run_dir / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"b1", "b2", "evals_f", "evals_jac"} <= set(rows[0])


def test_a_relative_csv_is_read_from_the_config_files_folder(tmp_path, monkeypatch):
    # from any working directory; a --set path from the working directory; the run
    # directory's config names the file absolutely, so plot and resume find it from anywhere
    (tmp_path / "cfg" / "data").mkdir(parents=True)
    _write_csv(tmp_path / "cfg" / "data" / "m.csv", MISRA1A.x, MISRA1A.y)
    _write_csv(tmp_path / "here.csv", MISRA1A.x, MISRA1A.y)
    path = tmp_path / "cfg" / "fit.yaml"
    path.write_text(
        f"""
name: misra1a
objectives: [{{model: "{MISRA1A_MODEL}", csv: data/m.csv, x: [x], y: y}}]
optimizers: [{{name: gauss_newton}}]
starts: {{kind: list, points: [[250, 5.0e-4]]}}
steps: 20
dtype: float64
plots: []
"""
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config_mod.load(path)
    assert cfg.objectives[0].params["csv"] == str(tmp_path / "cfg" / "data" / "m.csv")
    monkeypatch.chdir(tmp_path)
    cfg = config_mod.load(path, ["objectives.0.csv=here.csv"])
    assert cfg.objectives[0].params["csv"] == str(tmp_path / "here.csv")
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(path), "--out", "runs", "--no-progress"]) == 0
    (run_dir,) = (elsewhere / "runs").iterdir()
    monkeypatch.chdir(tmp_path / "cfg")
    saved = config_mod.load(run_dir / "config.yaml")
    assert saved.objectives[0].params["csv"] == str(tmp_path / "cfg" / "data" / "m.csv")
    assert main(["plot", str(run_dir), "--kinds", "fit"]) == 0
