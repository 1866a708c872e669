"""The run directory: written whole or not at all, and read back by `gdkit show` / `gdkit plot`.

    <name>-<YYYYmmdd-HHMMSS>/
      config.yaml     the resolved config (overrides applied)
      meta.json       versions, backend, devices, dtype, seeds, git commit, times
      runs.csv        one row per lane
      runs.parquet    the same rows, typed (nulls, list columns), when pyarrow is installed
      curves.npz      thinned loss histories: loss [runs, R], step [R], run_id [runs]
      summary.md      per objective x optimizer: best hyperparameters, success, gap, divergence
      results/        one SweepResult per job (`SweepResult.load`), for re-plotting
      plots/*.png

Life cycle: `create` makes a fresh directory (never an existing one) holding config.yaml
(and .config.json, the same config as created, so that `--resume` can refuse an edited one;
.data.json, the SHA-256 of each data file it reads, so that it can refuse changed data);
each sweep's result is saved to results/ as soon as it is done; at the end the tables, curves,
summary and plots are written, each atomically, and meta.json last: its presence is what marks
the directory complete. An interrupted run leaves config.yaml and the finished sweeps, nothing
that poses as a result, and `gdkit run --resume DIR` runs only the sweeps that are missing.
A process that writes a run directory holds `lock` on it, so a second one is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import zipfile

import numpy as np

from gdkit.experiments.yaml_loader import short
from gdkit.result import SweepResult

COMPLETE = "meta.json"
CREATED = ".config.json"  # the resolved config as the run was created
DATA = ".data.json"  # the data files the run reads, with their digests as it was created


class Busy(ValueError):
    """The run directory is being written by another process."""


def slug(text: str) -> str:
    """A file-name-safe version of an objective or optimizer label (results/, plots/).

    >>> slug("quadratic(dim=10, condition_number=100)")
    'quadratic_dim=10_condition_number=100'
    """
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("._")[:80] or "objective"


def create(
    out: pathlib.Path,
    name: str,
    config_yaml: str,
    now=None,
    resolved: dict | None = None,
    data: dict[str, str | None] | None = None,
) -> pathlib.Path:
    """A new, empty `<out>/<name>-<YYYYmmdd-HHMMSS>` (`-2`, `-3`, ... if taken) with the
    resolved config.yaml in it (and `resolved`, the same config as a dict, for `changed`;
    `data`, the digests of the data files it reads, for `data_changed`).
    Raises OSError when it cannot be made; then nothing of it is left."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{name}-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = out / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()  # exclusive: fails if it exists, so nothing is ever overwritten
        except FileExistsError:
            continue
        try:
            with _atomic(path / "config.yaml") as tmp:
                tmp.write_text(config_yaml)
            if resolved is not None:
                with _atomic(path / CREATED) as tmp:
                    tmp.write_text(json.dumps(resolved) + "\n")
            if data:  # a run that reads no data files has none to check
                with _atomic(path / DATA) as tmp:
                    tmp.write_text(json.dumps(data) + "\n")
            (path / "results").mkdir()
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # ours, made a moment ago
            raise
        return path
    raise OSError(f"{out}: too many run directories named {base}")


@contextlib.contextmanager
def lock(run_dir: pathlib.Path):
    """Holds an exclusive lock on the run directory (flock on the directory itself, released
    when the block ends or the process dies); raises `Busy` at once if another process holds
    it. Where flock does not exist (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{run_dir} is in use by another gdkit run") from None
        yield
    finally:
        os.close(fd)


def changed(run_dir: pathlib.Path, resolved: dict, normalize=None) -> str | None:
    """The first difference between the config the run was created with and `resolved`
    (`"steps: 40 -> 60"`), or None when they agree (or the run predates this record).
    `normalize` reads the recorded config as the current schema would (defaults of keys
    added since), so a newer gdkit can resume a run an older one began."""
    try:
        created = json.loads((pathlib.Path(run_dir) / CREATED).read_text())
    except (OSError, ValueError):
        return None
    if normalize is not None:
        created = normalize(created)
    return _first_difference(created, json.loads(json.dumps(resolved)), "")


def digests(paths: list[str]) -> dict[str, str | None]:
    """{path: the SHA-256 of its bytes, None where it cannot be read}."""
    out = {}
    for path in paths:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
            out[path] = h.hexdigest()
        except OSError:
            out[path] = None
    return out


def data_changed(run_dir: pathlib.Path, now: dict[str, str | None]) -> str | None:
    """The first data file whose bytes differ from what the run read when it was created
    (`"<path> changed"`, `"<path> is missing"`), or None when all agree (or the run
    predates this record). `now`: `digests` of the files the config reads now."""
    try:
        then = json.loads((pathlib.Path(run_dir) / DATA).read_text())
    except (OSError, ValueError):
        return None
    for path, digest in then.items():
        current = now.get(path)
        if current != digest:
            return f"{path} is missing" if current is None else f"{path} changed"
    return None


def _first_difference(a, b, where: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            key = f"{where}.{k}" if where else str(k)
            if k not in b:
                return f"{key}: {short(a[k])} removed"
            if k not in a:
                return f"{key}: {short(b[k])} added"
            diff = _first_difference(a[k], b[k], key)
            if diff:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = _first_difference(x, y, f"{where}.{i}")
            if diff:
                return diff
        return None
    return None if a == b else f"{where}: {short(a)} -> {short(b)}"


def load_result(path: pathlib.Path) -> SweepResult:
    """One sweep's saved result; ValueError naming the file when it is damaged."""
    try:
        return SweepResult.load(path)
    except Exception as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__})") from None


def damaged(run_dir: pathlib.Path) -> list[pathlib.Path]:
    """The results of a run directory that cannot be read back."""
    bad = []
    for f in sorted((pathlib.Path(run_dir) / "results").glob("*.npz")):
        try:
            load_result(f)
        except ValueError:
            bad.append(f)
    return bad


def mark_incomplete(run_dir: pathlib.Path) -> None:
    """Removes meta.json: the directory is incomplete until `finish` writes it again."""
    (pathlib.Path(run_dir) / COMPLETE).unlink(missing_ok=True)


def result_path(run_dir: pathlib.Path, index: int, objective: str, optimizer: str):
    """Where the `index`-th sweep of a run keeps its SweepResult."""
    name = f"{index:02d}-{slug(objective)}-{slug(optimizer)}.npz"
    return pathlib.Path(run_dir) / "results" / name


def is_complete(run_dir: pathlib.Path) -> bool:
    return (pathlib.Path(run_dir) / COMPLETE).is_file()


def finish(
    folder: pathlib.Path,
    pairs: list[tuple[dict, SweepResult]],
    meta: dict,
    param_names: list[tuple[str, ...]] | None = None,
) -> list[str]:
    """Writes runs.csv, runs.parquet (when pyarrow is installed), curves.npz, summary.md and
    report.html into `folder`, each atomically, and meta.json last (its presence marks the
    directory complete). Returns notes for the user (a table that was not written, and why)."""
    from gdkit.experiments import report
    from gdkit.experiments.summary import markdown

    results = [r for _, r in pairs]
    notes = []
    with contextlib.suppress(OSError):  # every sweep is done: its checkpoints are gone
        (folder / "checkpoints").rmdir()
    with _atomic(folder / "runs.csv") as tmp:
        write_runs_csv(tmp, pairs, param_names)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        notes.append("runs.parquet not written: pyarrow is missing (pip install 'gdkit[data]')")
    else:
        with _atomic(folder / "runs.parquet") as tmp:
            write_runs_parquet(tmp, pairs, param_names)
    meta = {**meta, "notes": notes} if notes else meta
    with _atomic(folder / "curves.npz") as tmp:
        write_curves(tmp, results)
    with _atomic(folder / "summary.md") as tmp:
        tmp.write_text(markdown(results, title=meta.get("name")))
    with _atomic(folder / report.REPORT) as tmp:  # the plots are drawn by now
        tmp.write_text(report.page(folder, results, meta), encoding="utf-8")
    with _atomic(folder / COMPLETE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return notes


@contextlib.contextmanager
def _atomic(path: pathlib.Path):
    """Yields a temporary path next to `path`; renames it into place if the block succeeds."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_runs_csv(
    path: pathlib.Path,
    pairs: list[tuple[dict, SweepResult]],
    param_names: list[tuple[str, ...]] | None = None,
    chunk: int = 100_000,
) -> None:
    """One row per lane: run_id, objective, optimizer, every hyperparameter (defaults
    included), start and its coordinates x0_*, seed, the outcome, the evaluations made
    (evals_f, evals_grad, [evals_hess, evals_jac], each also up to steps_to_tol:
    evals_f_to_tol, ...; empty where unknown), the final point, lane.

    Columnar and chunked, so millions of lanes stream out without a dict per row. Floats are
    written so they round-trip their dtype (9 digits for float32, the shortest repr for
    float64). The
    coordinates are named by the objective's `param_names` when it has them (`w[0]`, `b`).
    """
    param_names = param_names or [()] * len(pairs)
    dim = max(r.final_x.shape[-1] for _, r in pairs)
    hp_names = list(dict.fromkeys(k for hp, r in pairs for k in [*hp, *r.axes]))
    hp_names = [k for k in hp_names if k not in ("start", "seed")]
    head = ["run_id", "objective", "optimizer", *hp_names, "start", "seed"]
    # Coordinates are called by the objectives' parameter names when all sweeps share them.
    shared = {tuple(n) for n in param_names}
    names = list(shared.pop()) if len(shared) == 1 else []
    if len(names) != dim:
        names = [f"final_x_{j}" for j in range(dim)]
        x0_cols = [f"x0_{j}" for j in range(dim)]
    else:
        x0_cols = [f"x0_{n}" for n in names]
    x_cols = names
    # evaluation counts, by kind (f, grad always; hess, jac where some optimizer made any)
    kinds = list(dict.fromkeys(k for _, r in pairs for k in (r.evals or {})))
    evals_cols = [f"evals_{k}" for k in kinds] + [f"evals_{k}_to_tol" for k in kinds]
    columns = [*head, *x0_cols, *_OUTCOME, *evals_cols, *x_cols, "lane"]
    has_seed = any("seed" in r.axes for _, r in pairs)
    if not has_seed:
        columns.remove("seed")
    run_id = 0
    with open(path, "w", newline="") as f:
        f.write(",".join(columns) + "\n")
        for hparams, r in pairs:
            cols = _columns(r, hparams, hp_names, dim)
            cols["objective"] = np.full(r.lanes, r.objective)
            cols["optimizer"] = np.full(r.lanes, r.optimizer)
            cols["run_id"] = np.arange(run_id, run_id + r.lanes)
            run_id += r.lanes
            for j in range(dim):
                cols[x0_cols[j]] = cols.pop(f"x0_{j}")
                cols[x_cols[j]] = cols.pop(f"final_x_{j}")
            for lo in range(0, r.lanes, chunk):
                hi = min(lo + chunk, r.lanes)
                text = [_text(cols.get(c), lo, hi) for c in columns]
                f.write("".join(",".join(row) + "\n" for row in zip(*text, strict=True)))


def write_runs_parquet(
    path: pathlib.Path,
    pairs: list[tuple[dict, SweepResult]],
    param_names: list[tuple[str, ...]] | None = None,
) -> None:
    """runs.csv's rows as one typed Parquet table (`gdkit.tables.to_arrow`, zstd), written one
    sweep (one row group or more) at a time, so memory stays one sweep's table.

    One table, one row per run, rather than one per objective x optimizer or a long format:
    comparing optimizers is a `groupby` on one frame, with no `concat` of per-pair files and
    no `pivot` of a long one. What made runs.csv sparse is gone: the start and the final
    point are one list column each (`x0`, `final_x`, of any length), so the only cells left
    empty are hyperparameters an optimizer does not have (null, as pandas means "does not
    apply"; `df[df.optimizer == "adam"].dropna(axis=1, how="all")` drops them). Run ids are
    runs.csv's; the coordinate names of each objective are in the file's metadata
    (`gdkit.coordinates`, JSON objective -> names).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gdkit import tables

    param_names = param_names or [()] * len(pairs)
    parts, run_id = [], 0
    for hparams, r in pairs:
        parts.append(tables.to_arrow(r, hparams, run_id=run_id))
        run_id += r.lanes
    schema = _unified_schema([t.schema for t in parts])
    # the names, then every hyperparameter (of any sweep), then the run's own columns
    own = []  # in order, the union over the sweeps (a later one may count Hessians)
    for t in parts:
        own += [n for n in t.column_names[t.column_names.index("start") :] if n not in own]
    own = [n for n in own if n != "lane"] + ["lane"]
    head = [f for f in schema if f.name not in own]
    schema = pa.schema([*head, *(schema.field(n) for n in own if n in schema.names)])
    coordinates = {
        r.objective: list(names or r.coordinate_names)
        for (_, r), names in zip(pairs, param_names, strict=True)
    }
    schema = schema.with_metadata({"gdkit.coordinates": json.dumps(coordinates)})
    # dictionary pages for the names only: tried on the float columns they cost 2/3 of the
    # write time (1.9 s of 2.2 s for a million rows) and no space
    names = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=names) as writer:
        for t in parts:
            writer.write_table(_conform(t, schema, pa))


def _unified_schema(schemas):
    """One schema for every sweep's table: numbers widened (float32 -> float64), a column
    that is a number in one sweep and text in another made text."""
    import pyarrow as pa

    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict = {}
        for sch in schemas:
            for f in sch:
                types.setdefault(f.name, set()).add(str(f.type))
        text = pa.dictionary(pa.int32(), pa.string())
        fixed = [
            pa.schema([pa.field(f.name, text) if len(types[f.name]) > 1 else f for f in sch])
            for sch in schemas
        ]
        return pa.unify_schemas(fixed, promote_options="permissive")


def _conform(table, schema, pa):
    """`table` with `schema`'s columns, in its order and types (absent ones all null)."""
    cols = []
    for field in schema:
        if field.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table.column(field.name)
        if col.type != field.type:
            if pa.types.is_dictionary(field.type) and not pa.types.is_dictionary(col.type):
                col = col.cast(pa.string()).dictionary_encode()
            col = col.cast(field.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


_OUTCOME = [
    "final_loss",
    "best_loss",
    "gap",
    "final_grad_norm",
    "steps_to_tol",
    "status",
    "diverged_step",
]


def _columns(r: SweepResult, hparams: dict, hp_names: list[str], dim: int) -> dict:
    """Column name -> array [lanes] (None: an empty cell) for one sweep, in lane (C) order."""
    index = np.indices(r.shape).reshape(len(r.shape), -1)
    cols: dict = {}
    for name in hp_names:
        if name in r.axes:
            cols[name] = np.asarray(r.axes[name])[index[r.dims.index(name)]]
        elif name in hparams:  # fixed: the same text in every row
            value = hparams[name]
            cols[name] = np.full(r.lanes, "" if value is None else str(value))
    start = np.asarray(r.axes["start"])[index[r.dims.index("start")]]
    cols["start"] = start
    if "seed" in r.axes:
        cols["seed"] = np.asarray(r.axes["seed"])[index[r.dims.index("seed")]]
    x0 = np.asarray(r.starts)[start]
    final_x = r.final_x.reshape(r.lanes, -1)
    for j in range(dim):
        cols[f"x0_{j}"] = x0[:, j] if j < x0.shape[1] else None
        cols[f"final_x_{j}"] = final_x[:, j] if j < final_x.shape[1] else None
    for name in (
        "final_loss",
        "best_loss",
        "final_grad_norm",
        "steps_to_tol",
        "status",
        "diverged_step",
    ):
        cols[name] = getattr(r, name).reshape(-1)
    cols["gap"] = None if r.gap is None else r.gap.reshape(-1)
    for k, v in (r.evals or {}).items():
        cols[f"evals_{k}"] = v.reshape(-1)
    for k, v in (r.evals_to_tol or {}).items():
        cols[f"evals_{k}_to_tol"] = v.reshape(-1)
    cols["lane"] = np.arange(r.lanes)
    return cols


def _quote(cell: str) -> str:
    """CSV quoting (RFC 4180) for a text cell that holds a comma, a quote or a newline."""
    if any(c in cell for c in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _text(values, lo: int, hi: int) -> list[str]:
    """Cells lo:hi of a column as text; floats with the digits that round-trip their dtype."""
    if values is None:
        return [""] * (hi - lo)
    v = values[lo:hi]
    if v.dtype.kind == "U":
        special = any(bool((np.char.find(v, c) >= 0).any()) for c in ',"\n\r')
        return [_quote(x) for x in v.tolist()] if special else v.tolist()
    if v.dtype == object:
        return ["" if x is None else _quote(str(x)) for x in v.tolist()]
    if v.dtype.kind == "f" and v.dtype.itemsize <= 4:
        return [f"{x:.9g}" for x in v.tolist()]
    if v.dtype.kind == "f":
        return [repr(x) for x in v.tolist()]  # float64: the shortest repr that round-trips
    return v.astype(str).tolist()


def write_curves(path: pathlib.Path, results: list[SweepResult]) -> None:
    """loss [runs, R] and step [R], run_id [runs] as in runs.csv. `step` is the union of the
    steps the sweeps recorded (they differ when objectives run different step counts); a run
    has NaN where it recorded nothing, and from its divergence on."""
    step = np.unique(np.concatenate([r.history_steps for r in results]))
    loss = np.full((sum(r.lanes for r in results), step.size), np.nan)
    row = 0
    for r in results:
        cols = np.searchsorted(step, r.history_steps)
        loss[row : row + r.lanes, cols] = r.history.reshape(r.lanes, -1)
        row += r.lanes
    arrays = {"loss": loss, "step": step, "run_id": np.arange(len(loss))}
    # Deflate at level 1, not savez_compressed's 6: loss curves are float noise to zlib, and
    # level 6 took 0.6 s of the quickstart's 0.7 s of writing for a file 1.8% smaller.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, value in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def load_results(run_dir: pathlib.Path) -> list[SweepResult]:
    """The SweepResults of a finished run directory (ValueError when it is not one)."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir}: not a gdkit run directory (no config.yaml)")
    if not is_complete(run_dir):
        done = len(list((run_dir / "results").glob("*.npz")))
        raise ValueError(
            f"{run_dir}: incomplete run ({done} sweep(s) finished); "
            f"resume it with: gdkit run --resume {run_dir}"
        )
    files = sorted((run_dir / "results").glob("*.npz"))
    if not files:
        raise ValueError(f"{run_dir}: holds no results/*.npz")
    results = []
    for f in files:
        try:
            results.append(load_result(f))
        except ValueError as e:
            raise ValueError(f"{e}; re-run that sweep with: gdkit run --resume {run_dir}") from None
    return results


def git_commit() -> str | None:
    """The commit of the gdkit source tree, when it is a git checkout."""
    here = pathlib.Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
