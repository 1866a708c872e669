"""`SweepResult`: every lane's outcome as NumPy arrays with named axes.

Axes are, in order: the grid hyperparameters (in the order the grid gave them), `start`, and
`seed` when seeds were used. Per-lane arrays have exactly that shape; `final_x` adds a trailing
coordinate axis [.., d], `history` a trailing record axis [.., R] (steps in `history_steps`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

STATUSES = ("converged", "stationary", "max_steps", "diverged")

# 2: statuses include "stationary". Files of format 1 called such lanes "converged" (with
# their tol on |grad f|); `load` relabels them.
FORMAT = "gdkit.SweepResult/2"
_FORMAT_1 = "gdkit.SweepResult/1"

_ARRAYS = (
    "final_loss",
    "best_loss",
    "final_x",
    "final_grad_norm",
    "steps_to_tol",
    "status",
    "diverged_step",
    "history",
    "history_steps",
    "starts",
    "trajectory_lanes",
    "trajectory_x",
    "trajectory_loss",
)

_PER_LANE = ("final_loss", "best_loss", "final_x", "final_grad_norm", "steps_to_tol", "status")


@dataclasses.dataclass(eq=False)
class SweepResult:
    """The outcome of `sweep`: one entry per lane (grid point x start x seed).

    Fields:
      objective, optimizer: names; fixed: the hyperparameters held fixed (not swept).
      axes: axis name -> values, in axis order (grid names..., "start", ["seed"]); the values
        of "start" are start indices (coordinates are in `starts`, [S, d]).
      final_loss: f at the final point (for diverged lanes: at the last finite point).
      best_loss: lowest loss seen at any step before divergence.
      final_x: [..., d] the final point (for diverged lanes: the last finite point).
      final_grad_norm: |grad f| at the final point.
      steps_to_tol: the step from which the gap f - f_min (or |grad f| when f_min is unknown)
        stayed at `tol` or below until the end; -1 if it did not end there (or diverged).
      status: "converged" (the gap to the known minimum fell to tol and stayed there, never
        diverged); "stationary" (no minimum is known and |grad f| fell to tol and stayed
        there: a plateau or a saddle may be one, so it is never called converged);
        "diverged" (loss NaN/inf or above the divergence threshold at step
        `diverged_step`); otherwise "max_steps".
      diverged_step: the step whose loss was bad; -1 if the lane never diverged.
      history: [..., R] loss at steps `history_steps` (NaN from the divergence on).
      trajectory_lanes / trajectory_x [K, steps+1, d] / trajectory_loss [K, steps+1]: full paths
        of the lanes asked for with `trajectories=` (flat lane indices), else None.
      evals: name -> per-lane array of the evaluations each run made over all its steps:
        "f" and "grad" always (one `jax.value_and_grad` call counts one of each), "hess"
        (Newton's Hessians) and "jac" (the residuals' Jacobians, least squares) where the
        optimizer made any. First-order methods make one f and one grad f per step; line
        searches count each trial, and the f and grad f they leave at the accepted point are
        reused by the next step, not evaluated again. An optax transformation passed to
        `sweep` directly is counted at one f and one grad f per step (evaluations it makes
        itself are not seen). None for results saved without counts.
      evals_to_tol: the same counts up to steps_to_tol (what reaching tol cost); -1 where
        steps_to_tol is -1.
      compile_time, run_time: seconds spent compiling the sweep's programs and running its
        steps: run_time is the sweep's time less compiling and less reading and writing its
        checkpoint (a resumed sweep adds the run time recorded before the interruption); the
        trajectories' replay is in neither. All lanes advance together (one compiled program
        per structural grid value), so each run's step is charged `seconds_per_step`
        (run_time / steps): what one step of the whole sweep took on this machine.
      param_names: a name per coordinate of x (`w1[0,3]`, `b`; tree paths for a pytree
        x0), or () for x_0, x_1, ...; `coordinate_names` gives either.
      unravel: flat x [..., d] -> the parameter pytree (a pytree x0 or a data objective), or
        None (see `final_params`).

    Example:
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("parabola", "gd", grid={"learning_rate": [0.1, 0.5]}, steps=50,
      ...           tol=1e-6, progress=False)
      >>> r.dims, r.shape, r.status.ravel().tolist()
      (('learning_rate', 'start'), (2, 1), ['converged', 'converged'])
      >>> r.best()["learning_rate"]
      0.5
    """

    objective: str
    optimizer: str
    fixed: dict[str, Any]
    axes: dict[str, np.ndarray]
    starts: np.ndarray
    steps: int
    tol: float | None
    tol_metric: str  # "gap" or "grad_norm"
    f_min: float | None
    dtype: str
    divergence_threshold: float
    final_loss: np.ndarray
    best_loss: np.ndarray
    final_x: np.ndarray
    final_grad_norm: np.ndarray
    steps_to_tol: np.ndarray
    status: np.ndarray
    diverged_step: np.ndarray
    history: np.ndarray
    history_steps: np.ndarray
    trajectory_lanes: np.ndarray | None = None
    trajectory_x: np.ndarray | None = None
    trajectory_loss: np.ndarray | None = None
    evals: dict[str, np.ndarray] | None = None
    evals_to_tol: dict[str, np.ndarray] | None = None
    compile_time: float = 0.0
    run_time: float = 0.0
    param_names: tuple[str, ...] = ()
    unravel: Callable[[Any], Any] | None = dataclasses.field(default=None, repr=False)

    # -- shape ---------------------------------------------------------------------------

    @property
    def dims(self) -> tuple[str, ...]:
        """The axis names, in order."""
        return tuple(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def lanes(self) -> int:
        """The number of lanes (grid points x starts x seeds)."""
        return int(np.prod(self.shape))

    @property
    def gap(self) -> np.ndarray | None:
        """final_loss - f_min, or None when the minimum is unknown."""
        return None if self.f_min is None else self.final_loss - self.f_min

    @property
    def seconds_per_step(self) -> float | None:
        """Wall time on this machine per step: the sweep's run time shared equally by its
        steps (every lane advances each step together); None when the run time is unknown
        (a result built by hand, run_time 0)."""
        return self.run_time / self.steps if self.run_time > 0 else None

    @property
    def seconds_to_tol(self) -> np.ndarray | None:
        """steps_to_tol x `seconds_per_step`: the wall time each run took to reach tol, NaN
        where it did not; None when the run time is unknown."""
        per_step = self.seconds_per_step
        if per_step is None:
            return None
        return np.where(self.steps_to_tol >= 0, self.steps_to_tol * per_step, np.nan)

    @property
    def converged(self) -> np.ndarray:
        """Lanes within tol of the known minimum from steps_to_tol on."""
        return self.status == "converged"

    @property
    def stationary(self) -> np.ndarray:
        """Lanes whose |grad f| stayed within tol from steps_to_tol on, minimum unknown."""
        return self.status == "stationary"

    @property
    def diverged(self) -> np.ndarray:
        return self.status == "diverged"

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """`param_names`, or `("x_0", "x_1", ...)`."""
        return self.param_names or tuple(f"x_{j}" for j in range(self.final_x.shape[-1]))

    def final_params(self, lane: int | None = None) -> Any:
        """The final point as the parameter pytree: of one flat (C-order) lane, or of every
        lane (None; leaves [*shape, *leaf_shape]). Needs `unravel`, which a sweep of a pytree
        x0 (or of a data objective) sets; `load` restores it for trees of dicts, lists and
        tuples (other node types come back flat)."""
        if self.unravel is None:
            raise ValueError(
                "final_params: this result has no pytree structure (a flat objective, or a "
                "tree of node types a file does not keep); use final_x with param_names"
            )
        x = self.final_x if lane is None else self.final_x.reshape(-1, self.final_x.shape[-1])
        return self.unravel(x if lane is None else x[int(lane)])

    def counts(self) -> dict[str, int]:
        """How many lanes ended in each status."""
        return {s: int(np.sum(self.status == s)) for s in STATUSES}

    def coords(self, lane: int) -> dict[str, Any]:
        """Axis name -> value of the flat (C-order) lane index `lane`."""
        idx = np.unravel_index(int(lane), self.shape)
        return {
            name: _py(values[i]) for (name, values), i in zip(self.axes.items(), idx, strict=False)
        }

    # -- queries -------------------------------------------------------------------------

    def best(self, *, converged: bool = False, by: str = "steps_to_tol") -> dict[str, Any]:
        """The row of the best lane. Diverged lanes never win.

        by="steps_to_tol" (default): the converged lane that reached tol in the fewest steps
        (ties: lower final loss); when no lane converged, the lowest final loss. This is the
        lane a user would pick: among runs that all reach the tolerance, lower losses below it
        are rounding noise, speed is not. `stationary` lanes are not converged: a plateau
        reached fast must not beat a lower loss, so without a known minimum the lowest
        final loss wins.
        by="final_loss" or "best_loss": the lowest such loss (equivalent to the gap), ties
        broken by fewer steps_to_tol.
        With `converged=True` only converged lanes compete (never stationary ones). Raises
        ValueError if no lane qualifies.
        """
        if by not in ("steps_to_tol", "final_loss", "best_loss"):
            raise ValueError(
                f"best: by must be 'steps_to_tol', 'final_loss' or 'best_loss', got {by!r}"
            )
        ok = (self.converged if converged else ~self.diverged).ravel()
        if not ok.any():
            what = "converged" if converged else "non-diverged"
            raise ValueError(f"best: no {what} lane in this sweep ({self.counts()})")
        stt = self.steps_to_tol.ravel().astype(np.float64)
        stt = np.where(stt < 0, np.inf, stt)
        if by == "steps_to_tol":
            loss = self.final_loss.ravel().astype(np.float64)
            if self.converged.ravel()[ok].any():
                ok = ok & self.converged.ravel()
                keys = (loss, stt)  # lexsort: last key is primary
            else:
                keys = (stt, loss)
        else:
            keys = (stt, getattr(self, by).ravel().astype(np.float64))
        lanes = np.flatnonzero(ok)
        order = np.lexsort(tuple(k[lanes] for k in keys))
        return self.row(int(lanes[order[0]]))

    def representative(self) -> dict[str, Any]:
        """The row of a typical run at the most reliable hyperparameters.

        With one run per grid point this is `best()`. With several starts or seeds, a single
        lucky start (one that began next to the minimum) should not decide: the grid point is
        the one where most runs converged (ties: fewer median steps to tol, then lower median
        final loss of the runs that did not diverge), and the run is its converged run with
        the median steps_to_tol (without converged runs, the lowest final loss; stationary
        runs count as not converged). Raises ValueError if every lane diverged.
        """
        grid = [d for d in self.dims if d not in ("start", "seed")]
        per_point = int(np.prod([len(self.axes[d]) for d in self.dims if d not in grid]))
        if per_point == 1:
            return self.best()
        if self.diverged.all():
            raise ValueError(f"representative: every lane diverged ({self.counts()})")
        runs = self.status.reshape(-1, per_point)  # [grid points, runs], C order
        conv = (runs == "converged").sum(axis=1)
        loss = np.where(runs == "diverged", np.nan, self.final_loss.reshape(-1, per_point))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(loss.astype(np.float64), axis=1)
            stt = np.where(runs == "converged", self.steps_to_tol.reshape(-1, per_point), np.nan)
            speed = np.nanmedian(stt.astype(np.float64), axis=1)
        med = np.where(np.isnan(med), np.inf, med)
        speed = np.where(np.isnan(speed), np.inf, speed)
        point = int(np.lexsort((med, speed, -conv))[0])
        lanes = point * per_point + np.arange(per_point)
        ok = self.converged.ravel()[lanes]
        if ok.any():
            lanes = lanes[ok]
            stt = self.steps_to_tol.ravel()[lanes]
            order = np.argsort(stt, kind="stable")
            return self.row(int(lanes[order[(len(order) - 1) // 2]]))
        alive = ~self.diverged.ravel()[lanes]
        lanes = lanes[alive]
        return self.row(int(lanes[np.argmin(self.final_loss.ravel()[lanes])]))

    def row(self, lane: int) -> dict[str, Any]:
        """The tidy row of one lane (see `rows`)."""
        lane = int(lane)
        out = self.coords(lane)
        start = out["start"]
        names = self.param_names or tuple(map(str, range(self.final_x.shape[-1])))
        for n, c in zip(names, self.starts[start], strict=True):
            out[f"x0_{n}"] = float(c)
        flat = np.unravel_index(lane, self.shape)
        out["final_loss"] = float(self.final_loss[flat])
        out["best_loss"] = float(self.best_loss[flat])
        out["gap"] = None if self.f_min is None else out["final_loss"] - self.f_min
        out["final_grad_norm"] = float(self.final_grad_norm[flat])
        out["steps_to_tol"] = int(self.steps_to_tol[flat])
        out["status"] = str(self.status[flat])
        out["diverged_step"] = int(self.diverged_step[flat])
        for n, c in zip(names, self.final_x[flat], strict=True):
            out[f"final_x_{n}"] = float(c)
        for name, counts in (self.evals or {}).items():
            out[f"evals_{name}"] = int(counts[flat])
        for name, counts in (self.evals_to_tol or {}).items():
            out[f"evals_{name}_to_tol"] = int(counts[flat])
        per_step, stt = self.seconds_per_step, out["steps_to_tol"]
        out["seconds_to_tol"] = None if per_step is None or stt < 0 else stt * per_step
        out["lane"] = lane
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per lane in C order: each axis value, x0_j, final_loss, best_loss, gap,
        final_grad_norm, steps_to_tol, status, diverged_step, final_x_j (j: the coordinate's
        name in `param_names` when there are names, `w1[0,3]`, else its index), evals_<kind> and
        evals_<kind>_to_tol (see `evals`), seconds_to_tol (None where tol was not reached; see
        `seconds_to_tol`), lane."""
        return [self.row(i) for i in range(self.lanes)]

    # -- as data -------------------------------------------------------------------------

    def to_xarray(self):
        """An xarray Dataset whose dims are this sweep's axes (with their values as
        coordinates), plus `param` (coordinate names) and `step` (recorded steps); missing
        steps_to_tol are NaN. Needs xarray (`pip install "gdkit[data]"`); see `gdkit.tables`.

        Example:
          >>> from gdkit.engine.sweep import sweep
          >>> r = sweep("parabola", "gd", grid={"learning_rate": [0.1, 0.5]}, steps=50,
          ...           tol=1e-6, progress=False)
          >>> ds = r.to_xarray()
          >>> ds.steps_to_tol.sel(learning_rate=0.5, start=0).item(), ds.final_x.dims
          (1.0, ('learning_rate', 'start', 'param'))
        """
        from gdkit import tables

        return tables.to_xarray(self)

    def to_pandas(self, hparams: dict | None = None):
        """A tidy pandas DataFrame, one row per run (see `gdkit.tables.columns`): the names,
        every hyperparameter (`hparams` adds more, e.g. the optimizer's defaults), the axes,
        x0 and final_x as arrays, the outcome with nullable steps_to_tol. Needs pandas."""
        from gdkit import tables

        return tables.to_pandas(self, hparams)

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes one .npz (arrays + JSON metadata) atomically; `load` round-trips exactly."""
        path = os.fspath(path)
        arrays = {k: getattr(self, k) for k in _ARRAYS if getattr(self, k) is not None}
        for i, values in enumerate(self.axes.values()):
            arrays[f"axis_{i}"] = np.asarray(values)
        for prefix, counts in (("evals_", self.evals), ("evals_to_tol_", self.evals_to_tol)):
            arrays |= {prefix + k: v for k, v in (counts or {}).items()}
        meta = {
            "format": FORMAT,
            "objective": self.objective,
            "optimizer": self.optimizer,
            "fixed": {k: _py(v) for k, v in self.fixed.items()},
            "axes": list(self.axes),
            "steps": self.steps,
            "tol": self.tol,
            "tol_metric": self.tol_metric,
            "f_min": self.f_min,
            "dtype": self.dtype,
            "divergence_threshold": self.divergence_threshold,
            "compile_time": self.compile_time,
            "run_time": self.run_time,
            "param_names": list(self.param_names),
            "pytree": _pytree_spec(self.unravel),
        }
        arrays["meta"] = np.array(json.dumps(meta))
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Reads a result written by `save`.

        A format-1 file's lanes that were "converged" on |grad f| come back "stationary"; its
        steps_to_tol stay the first step within tol, as that format recorded them. A file that
        is there but is not a result `save` wrote (garbage, truncated, another program's .npz)
        is a ValueError naming it; a missing file is FileNotFoundError.
        """
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"SweepResult.load: path must be a path, got {type(path).__name__}")
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            meta = json.loads(str(data.pop("meta")))
            fmt = meta.pop("format", None) if isinstance(meta, dict) else None
            if fmt not in (FORMAT, _FORMAT_1):
                raise ValueError(f"no {FORMAT} header")
            names = meta.pop("axes")
            axes = {name: data.pop(f"axis_{i}") for i, name in enumerate(names)}
            fields = {k: data.get(k) for k in _ARRAYS}
            for prefix, field in (("evals_to_tol_", "evals_to_tol"), ("evals_", "evals")):
                counts = {k[len(prefix) :]: data.pop(k) for k in list(data) if k.startswith(prefix)}
                fields[field] = counts or None
            if fmt == _FORMAT_1 and meta.get("tol_metric") == "grad_norm":
                status = fields["status"].astype("<U10")
                fields["status"] = np.where(status == "converged", "stationary", status)
            meta["param_names"] = tuple(meta.get("param_names", ()))
            spec = meta.pop("pytree", None)
            result = cls(axes=axes, **meta, **fields)
            if spec is not None:
                from gdkit.objectives.pytree import Layout

                result.unravel = Layout.from_spec(spec)
            for k in _PER_LANE:
                shape = np.shape(getattr(result, k))
                if shape[: len(result.shape)] != result.shape:
                    raise ValueError(f"{k} has shape {shape}, the axes {result.shape}")
            return result
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as e:  # numpy, zipfile, zlib and json each have their own errors
            reason = f"{type(e).__name__}: {e}".splitlines()[0][:120]
            raise ValueError(f"{path}: not a gdkit SweepResult file ({reason})") from None

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={len(v)}" for k, v in self.axes.items())
        return (
            f"SweepResult({self.objective!r}, {self.optimizer!r}, {dims}, "
            f"steps={self.steps}, {self.counts()})"
        )


def _pytree_spec(unravel: Any) -> Any:
    """The JSON of a pytree x0's structure (see `gdkit.objectives.pytree.Layout.spec`), or
    None: the result of a flat objective, or of a tree `save` cannot describe."""
    from gdkit.objectives.pytree import Layout

    return unravel.spec() if isinstance(unravel, Layout) else None


def _py(v: Any) -> Any:
    """NumPy scalars/arrays -> plain Python values (JSON-able, exact)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
