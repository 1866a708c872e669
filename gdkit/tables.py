"""A `SweepResult` as data: an xarray Dataset over its named axes, a tidy pandas DataFrame
(one row per run) and an Arrow table (what `runs.parquet` holds).

One description of the columns (`columns`) feeds both tables, so they agree: typed columns,
`steps_to_tol` / `diverged_step` null where a run did not reach tol / never diverged (never
the sentinel -1, whose plain `.mean()` is wrong), `gap` null where the minimum is unknown,
the start and the final point as one list column each (`x0`, `final_x`) rather than a
column per coordinate, the names of the objective, optimizer and status as categories.
xarray, pandas and pyarrow are optional: `pip install "gdkit[data]"`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import numpy as np

from gdkit.result import STATUSES

EXTRA = "data"


def require(module: str, what: str):
    """`import module`, or an ImportError naming what needs it and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{what} needs {module}: pip install 'gdkit[{EXTRA}]' (xarray, pandas, pyarrow)"
        ) from None


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the run table, for `lanes` rows.

    kind "values": `data` [lanes] numbers or bools, `null` an optional mask (True: missing);
    "category": `data` int32 codes [lanes] into `categories`; "list": `data` [lanes, d].
    """

    kind: str
    data: np.ndarray
    null: np.ndarray | None = None
    categories: tuple[str, ...] = ()


def _category(values: Any, lanes: int, categories: tuple[str, ...] = ()) -> Column:
    """A category column: one value for every row (a scalar) or a value per row; the
    categories are `categories` when given (all of them, even those no row has)."""
    if np.ndim(values) == 0:
        return Column("category", np.zeros(lanes, np.int32), categories=(str(values),))
    values = np.asarray(values).astype(str)
    if categories:
        codes = np.searchsorted(np.asarray(categories), values)  # categories sorted
        return Column("category", codes.astype(np.int32), categories=categories)
    cats, codes = np.unique(values, return_inverse=True)
    return Column("category", codes.astype(np.int32), categories=tuple(cats.tolist()))


def _fixed(value: Any, lanes: int) -> Column:
    """A hyperparameter held fixed: a number (or bool) column, else a category (None: null)."""
    if value is None:
        return Column("values", np.zeros(lanes), null=np.ones(lanes, bool))
    if isinstance(value, bool | np.bool_):
        return Column("values", np.full(lanes, bool(value)))
    if isinstance(value, int | float | np.integer | np.floating):
        return Column("values", np.full(lanes, value))
    return _category(value, lanes)


def _nullable(values: np.ndarray, missing: int = -1) -> Column:
    return Column("values", values.astype(np.int64), null=values == missing)


def columns(result, hparams: dict | None = None, timing: bool = False) -> dict[str, Column]:
    """The run table of `result`, column name -> `Column`, one row per lane in C order:
    objective, optimizer, every hyperparameter (the swept ones per row, the fixed ones and
    `hparams`, e.g. an optimizer's defaults, repeated), the axes start [, seed], x0 (list),
    final_loss, best_loss, gap, final_grad_norm, steps_to_tol, status, diverged_step,
    final_x (list), evals_<kind> and evals_<kind>_to_tol (null where tol was not reached; see
    `SweepResult.evals`), with `timing` seconds_to_tol (the wall time to tol, steps_to_tol x
    the sweep's run time per step; null where tol was not reached or the run time is
    unknown), lane. Without `timing` every number is one the config and seeds determine, as
    runs.csv and runs.parquet hold them (the same files, byte for byte, on every run)."""
    r, n = result, result.lanes
    index = np.indices(r.shape).reshape(len(r.shape), n)
    out = {
        "objective": _category(r.objective, n),
        "optimizer": _category(r.optimizer, n),
    }
    grid = [d for d in r.dims if d not in ("start", "seed")]
    for name, value in {**(hparams or {}), **r.fixed}.items():
        if name not in grid:
            out[name] = _fixed(value, n)
    for i, name in enumerate(r.dims):
        values = np.asarray(r.axes[name])[index[i]]
        out[name] = _category(values, n) if values.dtype.kind in "OUS" else Column("values", values)
    start = np.asarray(r.axes["start"])[index[r.dims.index("start")]]
    out["x0"] = Column("list", np.asarray(r.starts)[start])
    out["final_loss"] = Column("values", r.final_loss.reshape(n))
    out["best_loss"] = Column("values", r.best_loss.reshape(n))
    gap = r.gap
    out["gap"] = (
        Column("values", np.zeros(n, r.final_loss.dtype), null=np.ones(n, bool))
        if gap is None
        else Column("values", gap.reshape(n))
    )
    out["final_grad_norm"] = Column("values", r.final_grad_norm.reshape(n))
    out["steps_to_tol"] = _nullable(r.steps_to_tol.reshape(n))
    out["status"] = _category(r.status.reshape(n), n, tuple(sorted(STATUSES)))
    out["diverged_step"] = _nullable(r.diverged_step.reshape(n))
    out["final_x"] = Column("list", r.final_x.reshape(n, -1))
    for kind, counts in (r.evals or {}).items():
        out[f"evals_{kind}"] = Column("values", np.asarray(counts).reshape(n).astype(np.int64))
    for kind, counts in (r.evals_to_tol or {}).items():
        out[f"evals_{kind}_to_tol"] = _nullable(np.asarray(counts).reshape(n))
    if timing:
        seconds = r.seconds_to_tol
        seconds = np.full(n, np.nan) if seconds is None else seconds.reshape(n)
        out["seconds_to_tol"] = Column("values", np.nan_to_num(seconds), null=np.isnan(seconds))
    out["lane"] = Column("values", np.arange(n, dtype=np.int64))
    return out


def to_pandas(result, hparams: dict | None = None):
    """The run table as a pandas DataFrame: nullable Int64 for the steps, categoricals for
    names, a NumPy array per cell of x0 and final_x, and the wall time seconds_to_tol (see
    `columns`)."""
    pd = require("pandas", "SweepResult.to_pandas")
    data = {}
    for name, c in columns(result, hparams, timing=True).items():
        if c.kind == "category":
            data[name] = pd.Categorical.from_codes(c.data, categories=list(c.categories))
        elif c.kind == "list":
            cells = np.empty(len(c.data), object)
            cells[:] = list(c.data)
            data[name] = cells
        elif c.null is not None and c.data.dtype.kind in "iu":
            data[name] = pd.arrays.IntegerArray(c.data, c.null)
        elif c.null is not None:
            data[name] = np.where(c.null, np.nan, c.data)
        else:
            data[name] = c.data
    return pd.DataFrame(data)


def to_arrow(result, hparams: dict | None = None, run_id: int = 0):
    """The run table as a pyarrow Table (what `runs.parquet` holds), with a leading `run_id`
    column counting from `run_id`: dictionary-encoded names, list<float> coordinates, nulls
    instead of sentinels."""
    pa = require("pyarrow", "runs.parquet")
    arrays, names = [pa.array(np.arange(run_id, run_id + result.lanes, dtype=np.int64))], ["run_id"]
    for name, c in columns(result, hparams).items():
        if c.kind == "category":
            arr = pa.DictionaryArray.from_arrays(
                pa.array(c.data, pa.int32()), pa.array(list(c.categories), pa.string())
            )
        elif c.kind == "list":
            flat = np.ascontiguousarray(c.data).reshape(-1)
            d = c.data.shape[1]
            offsets = np.arange(0, flat.size + 1, d, dtype=np.int64)
            list_type = pa.large_list if flat.size >= 2**31 else pa.list_
            values = pa.array(flat)
            arr = (pa.LargeListArray if list_type is pa.large_list else pa.ListArray).from_arrays(
                pa.array(offsets.astype(np.int64 if list_type is pa.large_list else np.int32)),
                values,
            )
        else:
            arr = pa.array(c.data, mask=c.null)
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def to_xarray(result):
    """The result as an xarray Dataset over its named axes (grid names..., start [, seed]):
    coordinates are the swept values, `param` (the coordinate names of x) and `step` (the
    recorded steps); per-run variables final_loss, best_loss, gap, final_grad_norm,
    steps_to_tol and diverged_step (float, NaN where missing), status, the evaluation counts
    evals_<kind> and evals_<kind>_to_tol and the wall time seconds_to_tol (NaN where tol was
    not reached; see `SweepResult.seconds_to_tol`), final_x [..., param],
    history [..., step]; x0 [start, param]; attrs the names, steps, tol and fixed values."""
    xr = require("xarray", "SweepResult.to_xarray")
    r = result
    dims = r.dims

    def missing(a):
        return np.where(a < 0, np.nan, a.astype(np.float64))

    data = {
        "final_loss": (dims, r.final_loss),
        "best_loss": (dims, r.best_loss),
        "final_grad_norm": (dims, r.final_grad_norm),
        "steps_to_tol": (dims, missing(r.steps_to_tol)),
        "diverged_step": (dims, missing(r.diverged_step)),
        "status": (dims, r.status),
        "final_x": ((*dims, "param"), r.final_x),
        "history": ((*dims, "step"), r.history),
        "x0": (("start", "param"), np.asarray(r.starts)),
    }
    if r.gap is not None:
        data["gap"] = (dims, r.gap)
    for kind, counts in (r.evals or {}).items():
        data[f"evals_{kind}"] = (dims, counts)
    for kind, counts in (r.evals_to_tol or {}).items():
        data[f"evals_{kind}_to_tol"] = (dims, missing(counts))
    if r.seconds_to_tol is not None:
        data["seconds_to_tol"] = (dims, r.seconds_to_tol)
    coords = {name: np.asarray(values) for name, values in r.axes.items()}
    coords["param"] = list(r.coordinate_names)
    coords["step"] = np.asarray(r.history_steps)
    attrs = {
        "objective": r.objective,
        "optimizer": r.optimizer,
        "steps": r.steps,
        "tol": np.nan if r.tol is None else r.tol,
        "tol_metric": r.tol_metric,
        "f_min": np.nan if r.f_min is None else r.f_min,
        "dtype": r.dtype,
        **{k: v for k, v in r.fixed.items() if isinstance(v, int | float | str | bool)},
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
