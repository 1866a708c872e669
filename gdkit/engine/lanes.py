"""Host-side lane bookkeeping: grid parsing, lane expansion, and the step/record plan."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdkit import _checks


@dataclasses.dataclass(frozen=True)
class Grid:
    """A parsed grid: swept axes (traced floats or static values) and fixed hyperparameters."""

    axes: dict[str, np.ndarray]  # every swept hyperparameter, in the order given
    traced_axes: tuple[str, ...]  # float-valued axes: per-lane array arguments
    static_axes: tuple[str, ...]  # bool/str/int-valued axes: one program per combination
    fixed: dict[str, float]  # fixed float hyperparameters: scalar array arguments
    static: dict[str, Any]  # fixed non-float hyperparameters: baked into the program


def parse_grid(grid: Mapping[str, Any]) -> Grid:
    """Splits `grid` into swept axes (1-D values) and fixed hyperparameters (scalars).

    Float values become array arguments of the compiled program (changing them never
    recompiles). Anything else (bools, strings, ints, None) is structural: fixed ones are baked
    into the program, swept ones run one program per value.
    """
    if not isinstance(grid, Mapping):
        raise TypeError(
            f"sweep: grid must be a mapping hyperparameter -> values, got {type(grid).__name__}"
        )
    axes, traced, static_axes, fixed, static = {}, [], [], {}, {}
    for name, value in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"sweep: grid key {name!r} is not a valid hyperparameter name")
        if name in ("start", "seed"):
            raise ValueError(f"sweep: grid key {name!r} is reserved (it names a sweep axis)")
        if _is_scalar(value):
            if isinstance(value, float | np.floating) or (
                isinstance(value, np.ndarray) and value.dtype.kind == "f"
            ):
                fixed[name] = float(value)
            else:
                static[name] = value.item() if isinstance(value, np.generic) else value
            continue
        arr = np.asarray(value)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"sweep: grid[{name!r}] must be a scalar or a non-empty 1-D list "
                f"of values, got shape {arr.shape}"
            )
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
            traced.append(name)
        elif arr.dtype.kind in "iub":
            static_axes.append(name)
        elif arr.dtype.kind in "UO":
            arr = np.asarray(list(value), dtype=object if arr.dtype.kind == "O" else None)
            static_axes.append(name)
        else:
            raise ValueError(f"sweep: grid[{name!r}] has unsupported values of dtype {arr.dtype}")
        axes[name] = arr
    return Grid(axes, tuple(traced), tuple(static_axes), fixed, static)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, str | bytes | bool | int | float | np.generic) or value is None:
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0


def parse_starts(x0: Any, default: np.ndarray, dim: int) -> np.ndarray:
    """x0 as [S, d] float64 (None -> the objective's customary start)."""
    want = f"sweep: x0 must have shape [S, {dim}] or [{dim}], finite numbers"
    try:
        starts = default[None, :] if x0 is None else np.asarray(x0, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{want}, got {_checks.short(x0)}") from None
    if starts.ndim == 1:
        starts = starts[None, :]
    if starts.ndim != 2 or starts.shape[1] != dim or starts.shape[0] == 0:
        raise ValueError(f"{want}, got shape {np.shape(starts if x0 is None else x0)}")
    if not np.all(np.isfinite(starts)):
        raise ValueError(f"{want}; x0 has non-finite entries")
    return starts


MAX_SEED = 2**32 - 1  # a PRNG key holds 32 bits of a seed: larger ones would repeat smaller ones


def count_seeds(seeds: Any) -> int | None:
    """How many seeds `seeds` gives (None: no seed axis), checked without making them."""
    if seeds is None:
        return None
    if _checks.is_int(seeds):
        return _checks.integer("sweep", "seeds", seeds, 1, MAX_SEED + 1)
    want = f"sweep: seeds must be an int N or a 1-D list of distinct ints in [0, {MAX_SEED}]"
    if isinstance(seeds, str | bytes) or not hasattr(seeds, "__len__"):
        raise ValueError(f"{want}, got {_checks.short(seeds)}")
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"{want}, got {_checks.short(seeds)}")
    if arr.min() < 0 or arr.max() > MAX_SEED or np.unique(arr).size != arr.size:
        raise ValueError(f"{want}, got {_checks.short(seeds)}")
    return int(arr.size)


def parse_seeds(seeds: Any) -> np.ndarray | None:
    """None, N (seeds 0..N-1) or a sequence of distinct integer seeds (`count_seeds`)."""
    if count_seeds(seeds) is None:
        return None
    if _checks.is_int(seeds):
        return np.arange(int(seeds))
    return np.asarray(seeds).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Segment:
    blocks: int
    record_every: int

    @property
    def steps(self) -> int:
        return self.blocks * self.record_every


def default_record_every(steps: int, records: int = 100) -> int:
    """About `records` records, preferring a step count that divides `steps`."""
    target = max(1, steps // records)
    for r in range(target, min(steps, 2 * target) + 1):
        if steps % r == 0:
            return r
    return target


def plan_segments(steps: int, r: int, chunk_steps: int | None) -> list[Segment]:
    """Host-side chunks of the step loop, each `blocks` x `r` steps (all but at most two share
    one shape, so they share one compiled program)."""
    k, tail = divmod(steps, r)
    if chunk_steps is None:
        b = _divisor_near(k, max(1, math.ceil(k / 8))) if k else 0
    else:
        b = max(1, min(k, chunk_steps // r)) if k else 0
    segs = []
    if k:
        n, last = divmod(k, b)
        segs += [Segment(b, r)] * n
        if last:
            segs.append(Segment(last, r))
    if tail:
        segs.append(Segment(1, tail))
    return segs


def _divisor_near(k: int, want: int) -> int:
    for delta in range(0, max(1, want // 2) + 1):
        for b in (want + delta, want - delta):
            if 1 <= b <= k and k % b == 0:
                return b
    return want


def record_steps(segments: Sequence[Segment], steps: int) -> np.ndarray:
    out, t = [], 0
    for s in segments:
        out += [t + i * s.record_every for i in range(s.blocks)]
        t += s.steps
    return np.array([*out, steps], dtype=np.int64)
