"""SweepResult as data: xarray Dataset, pandas DataFrame, Arrow table; each checked against
the result's own arrays (the independent record) and `rows()`."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest

import gdkit
from gdkit import tables
from gdkit.result import STATUSES

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")
pa = pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def result():
    # 3 learning rates x 4 starts x 2 seeds, gradient noise: some lanes converge, the
    # largest rate diverges, the smallest runs out of steps
    return gdkit.sweep(
        "rosenbrock",
        "gd",
        grid={"learning_rate": [1e-4, 2e-3, 0.05]},
        x0=gdkit.starts.uniform("rosenbrock", 4, seed=1) * 0.3 + 0.7,
        seeds=2,
        noise=1e-9,
        steps=2000,
        tol=1e-4,
        progress=False,
    )


def test_xarray_dims_coords_and_values(result):
    ds = result.to_xarray()
    assert ds.final_loss.dims == result.dims == ("learning_rate", "start", "seed")
    for name, values in result.axes.items():
        np.testing.assert_array_equal(ds[name].values, values)
    lane = 17
    at = result.coords(lane)
    idx = np.unravel_index(lane, result.shape)
    one = ds.sel(at)
    assert one.final_loss.item() == result.final_loss[idx]
    np.testing.assert_array_equal(one.final_x.values, result.final_x[idx])
    np.testing.assert_array_equal(ds.history.sel(at).values, result.history[idx])
    np.testing.assert_array_equal(ds.step.values, result.history_steps)
    assert list(ds.param.values) == ["x_0", "x_1"]
    # missing steps are NaN, so xarray's mean is the mean over the runs that reached tol
    stt = result.steps_to_tol
    assert (stt >= 0).any() and (stt < 0).any()
    assert ds.steps_to_tol.mean().item() == pytest.approx(stt[stt >= 0].mean())
    per_lr = ds.steps_to_tol.mean(dim=["start", "seed"]).values
    for i in range(3):
        s = stt[i][stt[i] >= 0]
        assert (math.isnan(per_lr[i]) and s.size == 0) or per_lr[i] == pytest.approx(s.mean())
    assert ds.attrs["objective"] == "rosenbrock" and ds.attrs["f_min"] == 0.0


def test_pandas_one_row_per_run_matches_rows(result):
    df = result.to_pandas(hparams={"momentum": 0.0})
    rows = result.rows()
    assert len(df) == result.lanes == len(rows)
    for lane in (0, 9, result.lanes - 1):
        row, got = rows[lane], df.iloc[lane]
        for key in ("learning_rate", "start", "seed", "final_loss", "best_loss", "status"):
            assert got[key] == row[key], key
        assert list(got["final_x"]) == [row["final_x_0"], row["final_x_1"]]
        assert list(got["x0"]) == [row["x0_0"], row["x0_1"]]
        if row["steps_to_tol"] < 0:
            assert got["steps_to_tol"] is pd.NA
        else:
            assert got["steps_to_tol"] == row["steps_to_tol"]
    assert str(df.steps_to_tol.dtype) == "Int64" and str(df.status.dtype) == "category"
    assert set(df.status.cat.categories) == set(STATUSES)  # also those no run ended in
    assert (df.momentum == 0.0).all() and (df.objective == "rosenbrock").all()
    stt = result.steps_to_tol.ravel()
    assert df.steps_to_tol.mean() == pytest.approx(stt[stt >= 0].mean())
    assert df.groupby("learning_rate", observed=True).diverged_step.count().sum() == int(
        result.diverged.sum()
    )


def test_arrow_table_is_typed(result):
    t = tables.to_arrow(result, run_id=100)
    assert t.num_rows == result.lanes
    assert t.column("run_id").to_pylist()[:2] == [100, 101]
    assert t.schema.field("steps_to_tol").type == pa.int64()
    assert t.column("steps_to_tol").null_count == int((result.steps_to_tol < 0).sum())
    assert pa.types.is_list(t.schema.field("final_x").type)
    assert t.schema.field("final_loss").type == pa.float32()
    assert pa.types.is_dictionary(t.schema.field("status").type)


def test_missing_extra_names_it(result, monkeypatch):
    real = builtins.__import__

    def no_xarray(name, *args, **kwargs):
        if name == "xarray":
            raise ImportError("No module named 'xarray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xarray)
    monkeypatch.delitem(__import__("sys").modules, "xarray", raising=False)
    with pytest.raises(ImportError, match=r"to_xarray needs xarray: pip install 'gdkit\[data\]'"):
        result.to_xarray()


def test_evaluation_counts_are_columns_with_nulls_where_tol_was_not_reached():
    r = gdkit.sweep(
        "rosenbrock", "bfgs", grid={"learning_rate": [1.0]}, steps=60, tol=1e-8, progress=False
    )
    short = gdkit.sweep(
        "rosenbrock", "bfgs", grid={"learning_rate": [1.0]}, steps=3, tol=1e-8, progress=False
    )
    df, cut = r.to_pandas(), short.to_pandas()
    ds = short.to_xarray()
    assert int(ds["evals_f"].values.reshape(-1)[0]) == short.evals["f"].reshape(-1)[0]
    assert np.isnan(ds["evals_f_to_tol"].values).all()
    assert df["evals_f"].iloc[0] == r.evals["f"].reshape(-1)[0] >= 60  # one per step at least
    assert df["evals_f_to_tol"].iloc[0] == r.evals_to_tol["f"].reshape(-1)[0] > 0
    assert short.evals_to_tol["f"].reshape(-1)[0] == -1 and pd.isna(cut["evals_f_to_tol"].iloc[0])


def test_seconds_to_tol_is_steps_to_tol_at_the_run_time_per_step_and_null_unreached(result):
    stt = result.steps_to_tol.ravel()
    assert (stt >= 0).any() and (stt < 0).any() and result.run_time > 0
    want = stt * (result.run_time / result.steps)  # each sweep step's share of the run time
    reached = stt >= 0
    df = result.to_pandas()
    np.testing.assert_allclose(df.seconds_to_tol[reached], want[reached], rtol=1e-15)
    assert df.seconds_to_tol[~reached].isna().all()
    assert str(df.seconds_to_tol.dtype) == "float64"
    # runs.parquet holds only what the config and seeds determine: the same bytes every run
    assert "seconds_to_tol" not in tables.to_arrow(result).column_names
    ds = result.to_xarray()
    np.testing.assert_allclose(ds.seconds_to_tol.values.ravel(), np.where(reached, want, np.nan))


def test_parquet_columns_of_every_sweep_follow_the_names(tmp_path):
    """A later sweep's own columns (Newton's Hessian counts) sit with the run's columns, not
    among the hyperparameters, whichever sweep comes first."""
    from gdkit.experiments import rundir

    kw = {"steps": 5, "progress": False}
    gd = gdkit.sweep("rosenbrock", "gd", grid={"learning_rate": [1e-3]}, **kw)
    newton = gdkit.sweep("rosenbrock", "newton", grid={"learning_rate": [1.0]}, **kw)
    path = tmp_path / "runs.parquet"
    rundir.write_runs_parquet(path, [({}, gd), ({}, newton)])
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    assert names.index("start") < names.index("evals_hess") < names.index("lane") == len(names) - 1
    assert names.index("learning_rate") < names.index("start")


def test_data_objective_final_params_of_every_run():
    obj = gdkit.objectives.get("linear_regression")
    r = gdkit.sweep(obj, "gd", grid={"learning_rate": [0.01, 0.1]}, steps=20, progress=False)
    every = r.final_params()
    for name, leaf in every.items():
        assert leaf.shape[: len(r.shape)] == r.shape
        np.testing.assert_array_equal(leaf[1, 0], r.final_params(1)[name])
