"""Small data sets for the data objectives: generated from a seed, shipped, or read from CSV.

Nothing is ever downloaded. Generated sets depend only on their parameters and `seed`; the
shipped ones live in `gdkit/data/`. `load_csv` reads a user's file (header row, then numeric
rows) and names the file, line and column of anything it cannot use.

  >>> from gdkit.objectives import datasets
  >>> d = datasets.linear(n=5, noise=0.0, seed=0)
  >>> d.X.shape, d.feature_names, d.target_name
  ((5, 2), ('x1', 'x2'), 'y')
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import importlib.resources
import math
import os
import stat
from collections.abc import Sequence

import numpy as np

SHIPPED = ("xor",)  # gdkit/data/<name>.csv


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Features `X` [n, k] and target `y` [n] (float64, read-only), their names and origin."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str

    def __post_init__(self):
        X = np.array(self.X, dtype=np.float64, ndmin=2)
        y = np.array(self.y, dtype=np.float64).reshape(-1)
        if X.shape[0] != y.shape[0] or X.shape[1] != len(self.feature_names):
            raise ValueError(f"{self.source}: X {X.shape}, y {y.shape} and names do not match")
        X.flags.writeable = y.flags.writeable = False
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", tuple(self.feature_names))

    @property
    def n(self) -> int:
        """The number of samples."""
        return int(self.y.shape[0])


def linear(n: int = 100, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = 2 x1 + x2 + 3 + noise * N(0, 1), features x1, x2 ~ N(0, 1) (so the Hessian of the
    mean squared error is about 2 I: well conditioned)."""
    n, noise = _count("n", n, 2), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = 2.0 * X[:, 0] + X[:, 1] + 3.0 + noise * rng.standard_normal(n)
    return Dataset(X, y, ("x1", "x2"), "y", f"synthetic y = 2 x1 + x2 + 3 + {noise:g} N(0,1)")


def two_class(n: int = 200, separation: float = 1.0, seed: int = 0) -> Dataset:
    """Two overlapping Gaussian classes (labels 0, 1, n/2 each) at +-separation (1, 0.5), unit
    variance: separable-ish, so the logistic log-loss has a finite minimizer."""
    n, separation = _count("n", n, 4), _nonneg("separation", separation)
    rng = np.random.default_rng(seed)
    y = np.repeat([0.0, 1.0], [n // 2, n - n // 2])
    centre = separation * np.array([1.0, 0.5])
    X = rng.standard_normal((n, 2)) + np.where(y[:, None] > 0, centre, -centre)
    return Dataset(X, y, ("x1", "x2"), "label", f"synthetic two classes at +-{separation:g}")


def exponential(
    n: int = 40, a: float = 1.5, b: float = 0.8, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """y = a exp(b x) + noise * N(0, 1) at x = linspace(0, 2, n)."""
    n, noise = _count("n", n, 3), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 2.0, n)
    y = a * np.exp(b * x) + noise * rng.standard_normal(n)
    return Dataset(x[:, None], y, ("x",), "y", f"synthetic y = {a:g} exp({b:g} x) + noise")


def shipped(name: str) -> Dataset:
    """A data set shipped in `gdkit/data/` (`SHIPPED`): `xor` is the 4-sample, 3-feature toy
    set of the classic "neural network from scratch" exercise (x3 = 1 is the bias input,
    y = x1 XOR x2)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped data set {name!r}; shipped: {', '.join(SHIPPED)}")
    ref = importlib.resources.files("gdkit") / "data" / f"{name}.csv"
    with importlib.resources.as_file(ref) as path:
        return load_csv(path)


def load_csv(
    path: str | os.PathLike,
    features: Sequence[str] | None = None,
    target: str | None = None,
) -> Dataset:
    """Reads a CSV file with a header row: `features` columns (default: all but the target)
    and the `target` column (default: the last one). Other columns are ignored.

    Raises ValueError naming the file and line (`file:line: ...`) for a path that is not a
    regular file (a named pipe, a device), an empty file, a header without data rows, a
    missing column, a ragged row, or a cell of a used column that is not a finite number.

    Example:
      >>> import pathlib, tempfile
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
      >>> _ = p.write_text("a,b,y\\n1,2,3\\n4,x,6\\n")
      >>> load_csv(p, features=["a", "b"], target="y")
      Traceback (most recent call last):
      ...
      ValueError: ...d.csv:3: column 'b': 'x' is not a number
    """
    where = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or /dev/zero: blocks, fills memory
            raise ValueError(f"{where}: not a regular file (csv= names a CSV data file)")
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(f))]
    except OSError as e:
        raise ValueError(f"{where}: cannot read: {e.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{where}: not a readable CSV file: {e}") from None
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{where}: empty file (expected a header row of column names)")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    if not rows[1:]:
        raise ValueError(f"{where}:{header_line + 1}: no data rows after the header")
    target = header[-1] if target is None else target
    features = [h for h in header if h != target] if features is None else list(features)
    if not features:
        raise ValueError(f"{where}:{header_line}: no feature columns besides {target!r}")
    cols = []
    for name in [*features, target]:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}:{header_line}: no column {name!r}{hint}; "
                f"the header has: {', '.join(header)}"
            )
        cols.append(header.index(name))
    data = np.empty((len(rows) - 1, len(cols)))
    for r, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ValueError(
                f"{where}:{line}: {len(row)} cells, but the header has {len(header)} columns"
            )
        for c, (j, name) in enumerate(zip(cols, [*features, target], strict=True)):
            cell = row[j].strip()
            try:
                value = float(cell)
            except ValueError:
                what = "an empty cell" if not cell else f"{cell!r}"
                msg = f"{where}:{line}: column {name!r}: {what} is not a number"
                raise ValueError(msg) from None
            if not math.isfinite(value):
                raise ValueError(f"{where}:{line}: column {name!r}: {cell!r} is not finite")
            data[r, c] = value
    return Dataset(data[:, :-1], data[:, -1], tuple(features), target, where)


def _count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _nonneg(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
