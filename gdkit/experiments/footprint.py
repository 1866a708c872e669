"""The memory a config's results will need, from its counts alone: a config too large for this
machine is refused before anything is built (`gdkit run` and `gdkit run --dry-run` alike)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from gdkit import _memory
from gdkit.experiments.config import ConfigError, ExperimentConfig, sweep_length


@dataclasses.dataclass(frozen=True)
class Footprint:
    """One (objective, optimizer) sweep of a config: its lanes and their results' memory."""

    where: str  # "objectives.0 x optimizers.1"
    lanes: int
    host_bytes: int
    counts: dict[str, int]  # config key -> the factor it contributes (lanes, records, dim)


def footprints(config: ExperimentConfig, dims: list[int]) -> list[Footprint]:
    """Every sweep's lanes and host memory, from the config's counts alone (nothing is built;
    a count may be astronomically large). `dims`: each objective's number of coordinates."""
    from gdkit.engine import lanes as _lanes

    out = []
    for i, (spec, dim) in enumerate(zip(config.objectives, dims, strict=True)):
        starts_key, n_starts = _start_count(config, dim)
        steps = spec.steps or config.steps
        r = config.record_every or _lanes.default_record_every(steps)
        records = steps // r + (steps % r > 0) + 1
        for j, opt in enumerate(config.optimizers):
            counts = {starts_key: n_starts}
            for k, v in opt.hparams.items():
                counts[f"optimizers.{j}.{k}"] = _length(v)
            if isinstance(opt.batch_size, list):
                counts[f"optimizers.{j}.batch_size"] = len(opt.batch_size)
            counts["seeds"] = config.seeds or 1
            lanes = math.prod(counts.values())
            need = lanes * _memory.result_bytes(dim, records, np.dtype(config.dtype).itemsize)
            if "dim" in spec.params:
                counts[f"objectives.{i}.dim"] = dim
            counts["record_every" if config.record_every else "steps"] = records
            out.append(Footprint(f"objectives.{i} x optimizers.{j}", lanes, need, counts))
    return out


def check_size(config: ExperimentConfig, dims: list[int]) -> None:
    """Refuses a config whose results cannot fit in this machine's memory, before they are
    built: the sum of every sweep's host memory (the `--dry-run` estimate), plus each
    objective's start and bounds, against the machine's. The message names the key with the
    most values in the largest sweep. `dims`: each objective's number of coordinates."""
    sweeps = footprints(config, dims)
    total = sum(f.host_bytes for f in sweeps) + sum(24 * d for d in dims)
    have = _memory.total_bytes()
    if total > have:
        worst = max(sweeps, key=lambda f: f.host_bytes)
        key = max(worst.counts, key=worst.counts.get)
        raise ConfigError(
            f"{key}: the results need about {_memory.describe(total)} of memory "
            f"({_memory.count(worst.lanes)} lanes in {worst.where} alone); this machine has "
            f"{_memory.describe(have)}. {_advice(key)}"
        )


def _advice(key: str) -> str:
    if key.endswith(".dim"):
        return "Use a smaller dim"
    if key in ("steps", "record_every"):
        return "Record the loss less often (a larger record_every)"
    return "Sweep fewer values, starts or seeds"


def _length(value) -> int:
    """How many values a hyperparameter sweeps (1 when fixed, or when malformed: the check
    that names its key reports that)."""
    try:
        return sweep_length(value) or 1
    except ValueError:
        return 1


def _start_count(config: ExperimentConfig, dim: int) -> tuple[str, int]:
    """(the key that sets it, how many starts) for an objective of `dim` coordinates."""
    s = config.starts
    if s.kind == "grid":
        return "starts.n", s.n**dim
    if s.kind == "uniform":
        return "starts.n", s.n
    if s.kind == "list":
        return "starts.points", len(s.points)
    return "starts", 1
