"""Experiment configs: the YAML schema (validated by pydantic), loading, and `--set` overrides.

The config layer knows nothing of XLA: it turns a file into an `ExperimentConfig` whose every
value has been checked, with errors that name the key path (`optimizers.1.learning_rate: ...`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import pathlib
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from gdkit import _memory
from gdkit.experiments.yaml_loader import ConfigError, apply_overrides, parse_yaml, short

if TYPE_CHECKING:  # NumPy loads when a sweep's values are built, not to read a config
    import numpy as np

# `gdkit.plots.KINDS` and `DEFAULT_KINDS` (named here too, so a config is read without JAX)
PLOTS = ("contour", "loss", "loss_time", "epochs", "lr_sensitivity", "surface", "basins", "fit")
DEFAULT_PLOTS = tuple(k for k in PLOTS if k != "loss_time")  # wall times vary run to run
# Keys of an optimizer entry that set up the objective, not the optimizer.
OBJECTIVE_SETTINGS = ("batch_size",)
# A finite number: NaN and infinity are refused wherever a config takes a number.
Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]
MAX_FILE_BYTES = 2 * 2**20  # a config file; the YAML loader reads about 0.1 MB/s
LOGSPACE_RANGE = (-307, 308)  # 10^a stays a normal, finite float64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def sweep_values(value: Any) -> np.ndarray | None:
    """The 1-D float64 grid of a swept hyperparameter, or None when `value` is fixed.

    Swept: a list of numbers, `{logspace: [a, b, n]}` (n values 10^a .. 10^b) or
    `{linspace: [a, b, n]}`. Fixed: a number, a name (a schedule, say) or a flag.
    Raises ValueError (without the key, which the caller knows) for anything else.
    """
    import numpy as np

    if sweep_length(value) is None:
        return None
    if isinstance(value, dict):
        kind, (a, b, n) = next(iter(value.items()))
        return np.logspace(a, b, n) if kind == "logspace" else np.linspace(a, b, n)
    return np.asarray(value, dtype=np.float64)


def sweep_length(value: Any) -> int | None:
    """How many values `sweep_values(value)` holds (None when fixed), checked the same way but
    without building them, so that a sweep too large for memory is refused before it exists."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("logspace", "linspace"):
            raise ValueError(
                f"expected a number, a list, {{logspace: [a, b, n]}} or "
                f"{{linspace: [a, b, n]}}, got {short(value)}"
            )
        kind, spec = next(iter(value.items()))
        if (
            not isinstance(spec, list)
            or len(spec) != 3
            or not all(map(_is_number, spec[:2]))
            or not _is_int(spec[2])
            or spec[2] < 1
        ):
            raise ValueError(f"{kind}: expected [start, stop, count >= 1], got {short(spec)}")
        lo, hi = LOGSPACE_RANGE
        if kind == "logspace" and not all(lo <= e <= hi for e in spec[:2]):
            raise ValueError(
                f"logspace: 10^start .. 10^stop must be finite float64 numbers (start and "
                f"stop in [{lo}, {hi}]), got {short(spec)}"
            )
        return spec[2]
    if isinstance(value, list):
        if not value or not all(map(_is_number, value)):
            raise ValueError(f"a swept list must hold finite numbers, got {short(value)}")
        return len(value)
    if value is None or isinstance(value, bool | str) or _is_number(value):
        return None
    raise ValueError(f"expected a number, a name or a sweep, got {short(value)}")


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class MinimumSpec(_Strict):
    """A known minimum of a user objective: `{x: [...], f: value}`."""

    x: list[Number]
    f: Number


class ObjectiveSpec(BaseModel):
    """One objective: `{name: ..., <params>}`, `{expr: "...", variables: [...]}`,
    `{model: "a * exp(b * x)", csv: data.csv, x: [x], y: y}` (a least-squares fit of a
    formula to a CSV file; see `gdkit.objectives.model`) or `{name: "package.module:name",
    <params>}` (a marked objective; see `check_imports`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str | None = None
    expr: str | None = None
    model: str | None = None
    variables: list[str] | None = None
    bounds: list[tuple[Number, Number]] | None = None
    x0: list[Number] | None = None
    minima: list[MinimumSpec] | None = None
    steps: Annotated[StrictInt, Field(ge=1, le=100_000_000)] | None = None  # overrides `steps`

    @model_validator(mode="after")
    def _one_source(self):
        if sum(v is not None for v in (self.name, self.expr, self.model)) != 1:
            raise ValueError("give exactly one of 'name', 'expr' or 'model'")
        if self.expr is None and self.variables is not None:
            raise ValueError("'variables' goes with 'expr'")
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The objective's own parameters (`dim`, `condition_number`, ...)."""
        return dict(self.model_extra or {})


class OptimizerSpec(BaseModel):
    """One optimizer: `{name: ..., <hyperparameter>: value | list | {logspace|linspace: ...}}`."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def hparams(self) -> dict[str, Any]:
        """The optimizer's own hyperparameters (fixed or swept)."""
        extra = dict(self.model_extra or {})
        return {k: v for k, v in extra.items() if k not in OBJECTIVE_SETTINGS}

    @property
    def batch_size(self) -> list | str | int:
        """`full` (the default), a size, or a list of them: one compiled program each."""
        return (self.model_extra or {}).get("batch_size", "full")

    def swept(self) -> dict[str, np.ndarray | list]:
        """The swept values, name -> values, in the order the config gives them (a list of
        batch sizes included)."""
        swept = {k: sweep_values(v) for k, v in self.hparams.items()}
        out = {k: v for k, v in swept.items() if v is not None}
        if isinstance(self.batch_size, list):
            out["batch_size"] = [str(b) for b in self.batch_size]
        return out

    def fixed(self) -> dict[str, Any]:
        """The fixed values, name -> value (a single batch size included)."""
        out = {k: v for k, v in self.hparams.items() if sweep_length(v) is None}
        if "batch_size" in (self.model_extra or {}) and not isinstance(self.batch_size, list):
            out["batch_size"] = str(self.batch_size)
        return out


class PlotSpec(_Strict):
    """`plots:` as a mapping: which figures (`kinds`, as the list form gives them) and, for the
    contour plot, the grid points whose paths to draw (`paths`: one mapping of every swept
    hyperparameter of an optimizer to one of its swept values each, e.g.
    `{learning_rate: 0.1}`; each applies to the optimizers that sweep exactly those keys)."""

    kinds: list[Literal[PLOTS]] = list(DEFAULT_PLOTS)  # type: ignore[valid-type]
    paths: list[dict[str, Number | str]] = []


class DefaultStarts(_Strict):
    kind: Literal["default"] = "default"


class GridStarts(_Strict):
    kind: Literal["grid"]
    n: Annotated[StrictInt, Field(ge=1, le=1000)]


class UniformStarts(_Strict):
    kind: Literal["uniform"]
    n: Annotated[StrictInt, Field(ge=1)]
    seed: StrictInt = 0


class ListStarts(_Strict):
    kind: Literal["list"]
    points: Annotated[list[list[Number]], Field(min_length=1)]


Starts = Annotated[
    DefaultStarts | GridStarts | UniformStarts | ListStarts, Field(discriminator="kind")
]


class DistributedSpec(_Strict):
    """JAX's multi-process runtime (`jax.distributed.initialize`). Leave the fields out where a
    cluster (SLURM, ...) is detected automatically."""

    coordinator_address: Annotated[str, Field(pattern=r"^[^\s:]+:\d+$")] | None = None
    num_processes: Annotated[StrictInt, Field(ge=1)] | None = None
    process_id: Annotated[StrictInt, Field(ge=0)] | None = None


class ExperimentConfig(_Strict):
    """The whole experiment; see configs/*.yaml for worked examples."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
    objectives: Annotated[list[ObjectiveSpec], Field(min_length=1)]
    optimizers: Annotated[list[OptimizerSpec], Field(min_length=1)]
    starts: Starts = DefaultStarts()
    seeds: Annotated[StrictInt, Field(ge=1)] | None = None
    steps: Annotated[StrictInt, Field(ge=1, le=100_000_000)]
    tol: Annotated[Number, Field(gt=0)] | None = None
    dtype: Literal["float32", "float64"] = "float32"
    platform: Literal["auto", "cpu", "gpu"] = "auto"
    engine: Literal["auto", "xla", "fused"] = "auto"  # sweep(engine=...): XLA or the fused kernel
    record_every: Annotated[StrictInt, Field(ge=1)] | None = None
    # A list of kinds (the short form) or a PlotSpec; always a PlotSpec once validated.
    plots: list[Literal[PLOTS]] | PlotSpec = PlotSpec()  # type: ignore[valid-type]
    distributed: DistributedSpec | None = None  # multi-process run (see README); also --distributed
    checkpoint_every: Annotated[Number, Field(ge=0)] = 5.0  # seconds between sweep checkpoints
    noise: Annotated[Number, Field(gt=0)] | None = None  # gradient noise sigma (needs seeds)

    @field_validator("plots", mode="after")
    @classmethod
    def _plots_list(cls, value):
        """`plots: [contour, loss]` is short for `plots: {kinds: [contour, loss]}`."""
        return PlotSpec(kinds=value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _paths_on_the_grid(self):
        for i, at in enumerate(self.plots.paths):
            check_path(self.optimizers, at, f"plots.paths.{i}")
        return self

    @model_validator(mode="after")
    def _record_within_steps(self):
        if self.record_every is not None:
            for where, steps in [("steps", self.steps)] + [
                (f"objectives.{i}.steps", o.steps)
                for i, o in enumerate(self.objectives)
                if o.steps is not None
            ]:
                if self.record_every > steps:
                    raise ValueError(
                        f"record_every: must be at most {where} ({steps}), got {self.record_every}"
                    )
        return self


def check_path(optimizers: list[OptimizerSpec], at: dict[str, Any], key: str) -> None:
    """A `plots.paths` entry must name every swept hyperparameter of at least one optimizer
    and give, for at least one such optimizer, one of its swept values each (it applies to
    those optimizers whose grid holds the point)."""
    grids = [(o.name, o.swept()) for o in optimizers]
    matching = [(name, g) for name, g in grids if g and sorted(g) == sorted(at)]
    if not at or not matching:
        choices = sorted({", ".join(sorted(g)) for _, g in grids if g})
        raise ValueError(
            f"{key}: {short(at)} must give every swept hyperparameter of an optimizer; "
            f"swept sets: {'; '.join(f'[{c}]' for c in choices) or 'none'}"
        )
    misses = []
    for name, grid in matching:
        miss = next((k for k, v in at.items() if not _swept_value(grid[k], v)), None)
        if miss is None:
            return
        misses.append((name, miss, grid[miss]))
    k = misses[0][1]
    shown = "; ".join(f"{name}: {_some(values)}" for name, kk, values in misses if kk == k)
    raise ValueError(f"{key}.{k}: {short(at[k])} is not a swept value of {k} ({shown})")


def _swept_value(values, v) -> bool:
    import numpy as np

    if isinstance(values, np.ndarray):
        return isinstance(v, int | float) and bool(
            np.any(np.isclose(values, float(v), rtol=1e-9, atol=0.0))
        )
    return str(v) in values


def _some(values, n: int = 6) -> str:
    import numpy as np

    shown = [f"{float(x):.4g}" if isinstance(x, float | np.floating) else str(x) for x in values]
    return ", ".join(shown[:n]) + (", ..." if len(shown) > n else "")


def load(
    path: str | pathlib.Path,
    overrides: list[str] = (),
    *,
    check: bool = True,
    allow_import: bool = False,
) -> ExperimentConfig:
    """Reads, overrides (`key.path=value`) and validates a config file.

    With `check=False` only the schema is validated, nothing that touches JAX: the CLI selects
    the platform in between, then calls `check_names(config)`. A config that names an objective
    by import path is refused unless `allow_import` (see `check_imports`).
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: larger than {_memory.describe(MAX_FILE_BYTES)}; a config is a few "
            "kilobytes (many starts: use starts: {kind: uniform} or the Python API)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.start}: {data[e.start]:#04x})"
        ) from None
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    raw = _data_paths(raw, path.parent)  # the file's paths are relative to the file
    raw = _data_paths(apply_overrides(raw, overrides), pathlib.Path.cwd())  # --set's: to cwd
    config = validate(raw, allow_import=allow_import)
    if check:
        check_names(config)
    return config


def _data_paths(raw: dict, base: pathlib.Path) -> dict:
    """`raw` with each objective entry's relative `csv:` path (a model's, or a data
    objective's such as `{name: linear_regression, csv: ...}`) made absolute against `base`,
    so that a config finds its data from any working directory, and the run directory's copy
    of the config names the same file wherever it is read again (resume, plot)."""
    entries = raw.get("objectives")
    for entry in entries if isinstance(entries, list) else ():
        csv = entry.get("csv") if isinstance(entry, dict) else None
        if isinstance(csv, str) and csv:
            entry["csv"] = os.path.normpath(base.absolute() / os.path.expanduser(csv))
    return raw


def data_files(config: ExperimentConfig) -> list[str]:
    """The data files the config's objectives read (their `csv:` paths), each once."""
    paths = (spec.params.get("csv") for spec in config.objectives)
    return list(dict.fromkeys(p for p in paths if isinstance(p, str) and p))


def validate(raw: dict, *, allow_import: bool = False) -> ExperimentConfig:
    """The schema check: every key known, every value of the right type and range; import
    paths only with `allow_import`."""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_first_error(e)) from None
    check_imports(config, allow_import)
    return config


def check_imports(config: ExperimentConfig, allow_import: bool) -> None:
    """A config is data: naming an objective by import path (`package.module:name`), which
    imports that module, is refused unless the user allows it (`gdkit run --allow-import`).
    Even then `objectives.get` honours only marked objectives (`objectives.objective`,
    `objectives.objective_factory`), and never calls anything else."""
    for i, spec in enumerate(config.objectives):
        if not allow_import and spec.name is not None and ":" in spec.name:
            raise ConfigError(
                f"objectives.{i}.name: {spec.name!r} is an import path, and a config imports "
                "code only when allowed: pass --allow-import if you trust this config"
            )


def _first_error(e: ValidationError) -> str:
    errors = e.errors(include_url=False)
    # Of a union (plots: a list or a mapping), report the member the input was meant for: not
    # "should be a valid list" when a mapping was given and its own member has the error.
    err = next((x for x in errors if x["type"] != "list_type"), errors[0])
    # A custom check's message names its own key ("record_every: ..."): keep it as it is.
    if err["type"] == "value_error" and not err["loc"]:
        return err["msg"].removeprefix("Value error, ")
    loc = [str(p) for p in err["loc"]]
    # Drop pydantic's union-member tags (`float`, `GridStarts`, ...) from the key path.
    loc = [p for p in loc if not (p[:1].isupper() or p in _TYPE_TAGS or "[" in p)]
    starts_model = None
    if loc[:1] == ["starts"] and len(loc) > 1 and loc[1] in _STARTS:
        starts_model = _STARTS[loc.pop(1)]
    path = ".".join(loc) or "config"
    got = err.get("input")
    if isinstance(got, float) and not math.isfinite(got):
        return f"{path}: must be a finite number, got {got}"
    if err["type"] in ("int_type", "int_parsing", "float_type", "float_parsing"):
        return f"{path}: must be a number, got {short(got)}"
    if err["type"] == "extra_forbidden":
        model = starts_model or _model_at(loc[:-1])
        fields = list(model.model_fields) if model else []
        hint = difflib.get_close_matches(loc[-1], fields, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{path}: unknown key{did}; allowed: {', '.join(fields)}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    return f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}, got {short(got)}"


_STARTS = {
    "default": DefaultStarts,
    "grid": GridStarts,
    "uniform": UniformStarts,
    "list": ListStarts,
}
_TYPE_TAGS = {
    "int",
    "float",
    "str",
    "bool",
    "none",
    "list",
    "tuple",
    "function-after",
    "constrained-int",
    "constrained-float",
    "constrained-str",
}


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        if part.isdigit():
            continue
        if part == "starts":
            return None
        field = model.model_fields.get(part)
        if field is None:
            return model
        args = getattr(field.annotation, "__args__", (field.annotation,))
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        inner = models[0] if models else args[0]  # of a union (plots), its model member
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
    return model


def check_declared(config: ExperimentConfig) -> None:
    """The names a config uses: objectives, optimizers and their hyperparameter keys, checked
    against gdkit's declarations (`gdkit._catalog`), which imports nothing: a misspelt name
    is reported before JAX starts."""
    from gdkit import _catalog

    if config.noise is not None and config.seeds is None:
        raise ConfigError("noise: gradient noise needs seeds (e.g. seeds: 4)")
    for i, spec in enumerate(config.objectives):
        if spec.name is not None and ":" not in spec.name:
            try:
                declared = _catalog.find("objective", spec.name)
            except ValueError as e:
                raise ConfigError(f"objectives.{i}: {e}") from None
            allowed = list(declared.params)
            for key in spec.params:
                if key not in allowed:
                    raise ConfigError(
                        f"objectives.{i}.{key}: objective {spec.name!r} has no parameter "
                        f"{key!r}{_did_you_mean(key, allowed)}; parameters: "
                        f"{', '.join(allowed) or '(none)'}"
                    )
    for i, spec in enumerate(config.optimizers):
        where = f"optimizers.{i}"
        try:
            declared = _catalog.find("optimizer", spec.name)
        except ValueError as e:
            raise ConfigError(f"{where}.name: {e}") from None
        allowed = [*_catalog.optimizer_keys(declared), *OBJECTIVE_SETTINGS]
        for key, value in spec.hparams.items():
            if key not in allowed:
                raise ConfigError(
                    f"{where}.{key}: {spec.name} has no such hyperparameter"
                    f"{_did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
                )
            try:
                sweep_length(value)
            except ValueError as e:
                raise ConfigError(f"{where}.{key}: {e}") from None


def _did_you_mean(key: str, allowed: list[str]) -> str:
    hint = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def check_names(config: ExperimentConfig) -> None:
    """Objective and optimizer names, parameters and hyperparameter values, checked by building
    each one (once per swept value) before anything is compiled."""
    from gdkit.experiments.footprint import check_size
    from gdkit.objectives._imported import ImportPathError
    from gdkit.objectives.model import ModelError

    check_declared(config)
    # The sizes the config states (an objective's `dim`), before an objective is built.
    check_size(config, [_given_dim(spec) for spec in config.objectives])
    built = []
    for i, spec in enumerate(config.objectives):
        try:
            built.append(build_objective(spec))
        except ModelError as e:
            raise ConfigError(f"objectives.{i}.{e.key}: {e}") from None
        except ValueError as e:
            key, msg = _split_key(str(e), spec.name or "")
            m = re.search(r"has no parameter '(\w+)'", msg)
            key = key or (m.group(1) if m else None)
            key = key or ("name" if isinstance(e, ImportPathError) else None)
            raise ConfigError(f"objectives.{i}{'.' + key if key else ''}: {msg}") from None
        except (RecursionError, MemoryError) as e:
            if spec.expr is not None:  # Python's parser gives up on deep nesting this way
                raise ConfigError(
                    f"objectives.{i}.expr: too long or too deeply nested to parse"
                ) from None
            if isinstance(e, RecursionError):
                raise
            key = ".dim" if "dim" in spec.params else ""
            raise ConfigError(
                f"objectives.{i}{key}: building this objective needs more memory than this "
                f"machine has ({_memory.describe(_memory.total_bytes())})"
            ) from None
    for i, spec in enumerate(config.optimizers):
        _check_batch_sizes(f"optimizers.{i}.batch_size", spec.batch_size, config, built)
    check_size(config, [obj.dim for obj in built])  # before any swept values are built
    for i, spec in enumerate(config.optimizers):
        _check_values(f"optimizers.{i}", spec)


def _given_dim(spec: ObjectiveSpec) -> int:
    """The `dim` an objective entry asks for (1 when it gives none, or not an integer)."""
    dim = spec.params.get("dim")
    return dim if _is_int(dim) and dim >= 1 else 1


def _check_values(where: str, spec: OptimizerSpec) -> None:
    """Builds the optimizer with the fixed values and every swept value (all of a swept
    hyperparameter at once: the factory checks arrays; one by one only to name a bad one)."""
    from gdkit import optimizers

    fixed = {k: v for k, v in spec.fixed().items() if k not in OBJECTIVE_SETTINGS}
    swept = {k: v for k, v in spec.swept().items() if k not in OBJECTIVE_SETTINGS}
    try:
        optimizers.check_hparams(spec.name, fixed, swept)
    except (ValueError, TypeError) as e:
        key, msg = _split_key(str(e), spec.name)
        raise ConfigError(f"{where}{'.' + key if key else ''}: {msg}") from None


def _check_batch_sizes(where: str, value, config: ExperimentConfig, objectives: list) -> None:
    sizes = value if isinstance(value, list) else [value]
    if not sizes:
        raise ConfigError(f"{where}: give full, a size, or a list of them")
    for b in sizes:
        if b != "full" and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ConfigError(f"{where}: expected full or an integer >= 1, got {b!r}")
    if any(b != "full" for b in sizes):
        if config.seeds is None:
            raise ConfigError(f"{where}: mini-batches need seeds (e.g. seeds: 4)")
        for i, obj in enumerate(objectives):
            n = getattr(obj.data, "n", None)
            if obj.minibatch is None or n is None:
                raise ConfigError(
                    f"{where}: objectives.{i} ({obj.name}) is not a data "
                    "objective; only data objectives take mini-batches"
                )
            big = [b for b in sizes if b != "full" and b > n]
            if big:
                raise ConfigError(
                    f"{where}: {big[0]} is more than the {n} samples of objectives.{i}"
                )


def _split_key(message: str, name: str) -> tuple[str | None, str]:
    """`"adam: b1 must be in [0, 1), got 1.5"` -> `("b1", "must be in [0, 1), got 1.5")`."""
    m = re.match(rf"^{re.escape(name)}: (\w+) (.*)$", message)
    return (m.group(1), m.group(2)) if m else (None, message)


def build_objective(spec: ObjectiveSpec):
    """The `Objective` an `ObjectiveSpec` names (ValueError when it cannot be built)."""
    import numpy as np

    from gdkit import objectives
    from gdkit.objectives import Minimum

    extras = {}
    if spec.bounds is not None:
        extras["bounds"] = [list(map(float, b)) for b in spec.bounds]
    if spec.x0 is not None:
        extras["x0"] = [float(v) for v in spec.x0]
    if spec.minima is not None:
        extras["minima"] = tuple(Minimum(m.x, m.f) for m in spec.minima)
    if spec.model is not None:
        obj = _build_model(spec, extras)
    elif spec.expr is not None:
        if spec.params:
            raise ValueError(f"an expression takes no parameters, got {sorted(spec.params)}")
        obj = objectives.from_expression(spec.expr, spec.variables, **extras)
    else:
        obj = objectives.get(spec.name, **spec.params)
        if "bounds" in extras and np.asarray(extras["bounds"]).shape != (obj.dim, 2):
            raise ValueError(f"bounds: expected {obj.dim} rows of [low, high]")
        if spec.params:  # "quadratic(dim=20, condition_number=100)": unique within a config
            args = ", ".join(f"{k}={v}" for k, v in spec.params.items())
            extras["name"] = f"{obj.name}({args})"
        obj = dataclasses.replace(obj, **extras) if extras else obj
    for m in obj.minima:
        if m.x.shape != (obj.dim,):
            raise ValueError(f"minima: x must have {obj.dim} coordinates, got {m.x.size}")
    return obj


MODEL_SETTINGS = ("csv", "x", "y")


def _build_model(spec: ObjectiveSpec, extras: dict):
    """The `{model:, csv:, x:, y:}` entry's objective (`gdkit.objectives.model.from_model`)."""
    from gdkit.objectives.model import ModelError, from_model

    params = spec.params
    for key in params:
        if key not in MODEL_SETTINGS:
            raise ModelError(key, f"a model takes {', '.join(MODEL_SETTINGS)}; not {key!r}")
    for key in MODEL_SETTINGS:
        if key not in params:
            raise ModelError(key, f"a model needs {key} ({', '.join(MODEL_SETTINGS)})")
    if spec.variables is not None:
        raise ModelError("variables", "a model's inputs are its x columns; drop 'variables'")
    x = params["x"]
    return from_model(
        spec.model,
        params["csv"],
        [x] if isinstance(x, str) else x,
        params["y"],
        x0=extras.get("x0"),
        bounds=extras.get("bounds"),
        minima=extras.get("minima", ()),
    )


def to_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML (loadable again by `load`)."""
    data = config.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
