"""The `gdkit` command line. Exit codes: 0 ok, 2 bad input, 1 out of memory or disk, or an
internal error (130: interrupted). Errors are one line on stderr; `--debug` adds the traceback."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence

from gdkit import __version__
from gdkit.engine.devices import use_all_cpu_cores
from gdkit.experiments import commands as _commands
from gdkit.experiments.commands import (
    ResourceError,
    UserError,
    UserInterrupt,
    exhausted,
    user_errors,
)

MAX_MESSAGE = 500  # characters of an error line


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    use_all_cpu_cores()  # one JAX device per core, before anything starts JAX's backend
    parser = _parser()
    args = parser.parse_args(_glue_values(sys.argv[1:] if argv is None else list(argv)))
    args.started = started
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    debug = getattr(args, "debug", False)
    try:
        return args.handler(args) or 0
    except UserError as e:
        print(f"gdkit {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, UserInterrupt) as e:
        print(f"gdkit {args.command}: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except ResourceError as e:
        if debug:
            traceback.print_exc()
        print(f"gdkit {args.command}: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        what = exhausted(e)
        if what is not None:  # the machine ran out of something: not a bug, no traceback
            if debug:
                traceback.print_exc()
            print(f"gdkit {args.command}: {what}", file=sys.stderr)
            return 1
        # A bug of ours, not bad input: say so, with the traceback to report.
        traceback.print_exc()
        print(
            f"gdkit {args.command}: internal error (please report it with the traceback above)",
            file=sys.stderr,
        )
        return 1


def _one_line(e: BaseException) -> str:
    """The message on one line, cut to MAX_MESSAGE characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 4] + " ..."


_VALUE_OPTIONS = ("--at", "--set")


def _glue_values(argv: list[str]) -> list[str]:
    """`--at -1.2,1` -> `--at=-1.2,1`: argparse takes a value starting with '-' for an option."""
    out = []
    it = iter(argv)
    for token in it:
        if token in _VALUE_OPTIONS:
            value = next(it, None)
            out.append(token if value is None else f"{token}={value}")
        else:
            out.append(token)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdkit",
        description="Sweep optimizers over learning rates, start points and seeds as one "
        "compiled JAX program.",
    )
    parser.add_argument("--version", action="version", version=f"gdkit {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback when memory or disk runs out, too",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run an experiment config and write a run directory",
        description="Run every (objective, optimizer) pair of CONFIG as one compiled sweep each "
        "and write <out>/<name>-<YYYYmmdd-HHMMSS>/ (config.yaml, meta.json, runs.csv, "
        "curves.npz, summary.md, report.html, plots/). The run directory's path is the last "
        f"line printed. Config keys: {_config_keys()}; see configs/*.yaml for worked examples "
        "and the README's 'Experiments from a config' for each key.",
    )
    p.add_argument(
        "config", nargs="?", help="a YAML experiment config, e.g. configs/quickstart.yaml"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted key, list items by index "
        "(--set steps=500 --set optimizers.0.name=rmsprop); repeatable",
    )
    p.add_argument(
        "--out", default="runs", metavar="DIR", help="where run directories go (default: runs/)"
    )
    p.add_argument(
        "--platform",
        choices=["auto", "cpu", "gpu"],
        default=None,
        help="override the config's platform",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither load nor keep compiled programs in the per-user cache (also: "
        "GDKIT_NO_CACHE=1); `gdkit cache clear` empties it",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and the planned work, run nothing",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="run as one process of a multi-process sweep (jax.distributed; the config's "
        "distributed: section, or cluster auto-detection); process 0 writes the results",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (finished sweeps are kept)",
    )
    _allow_import_flag(p)
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="as gdkit --debug"
    )
    p.set_defaults(handler=_commands.run)

    p = sub.add_parser(
        "show",
        help="print a run directory's summary table and warnings again",
        description="Print the summary table and the warnings of a finished run directory; "
        "--open opens its report.html (summary, warnings, every figure, the config and the "
        "timing in one self-contained page) in the web browser.",
    )
    p.add_argument("run_dir", help="a directory written by `gdkit run`")
    p.add_argument(
        "--open", action="store_true", help="open the run's report.html in the web browser"
    )
    p.set_defaults(handler=_commands.show)

    p = sub.add_parser(
        "plot",
        help="re-draw a run directory's plots",
        description="Re-draw the plots of a finished run directory into its "
        "plots/ folder (or --kinds a subset).",
    )
    p.add_argument("run_dir", help="a directory written by `gdkit run`")
    from gdkit.experiments.config import PLOTS  # no JAX: pydantic and NumPy only

    p.add_argument(
        "--kinds",
        default=None,
        metavar="K1,K2",
        help=f"which plots, comma-separated, of: {', '.join(PLOTS)} (default: the config's)",
    )
    _allow_import_flag(p)
    p.set_defaults(handler=_commands.plot)

    p = sub.add_parser(
        "list",
        help="list the objectives and optimizers gdkit knows (with their parameters)",
        description="List the objectives and the optimizers gdkit knows, with one-line "
        "descriptions, parameters and defaults (or only those of WHAT).",
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=["objectives", "optimizers"],
        default=None,
        help="what to list (default: everything)",
    )
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser(
        "cache",
        help="where compiled programs are kept, and emptying it",
        description="`gdkit run` keeps every program it compiles in a per-user cache "
        "($XDG_CACHE_HOME/gdkit, else ~/.cache/gdkit; one folder per gdkit version) and "
        "loads it from there next time. `dir` prints the folder, `clear` deletes it.",
    )
    p.add_argument("action", choices=["dir", "clear"], help="print the folder, or empty it")
    p.set_defaults(handler=_cmd_cache)

    p = sub.add_parser(
        "check-grad",
        help="compare reverse-mode, forward-mode and finite-difference gradients of an objective",
        description="Gradients three ways: jax.grad, jax.jacfwd and central "
        "differences, at the objective's start or at --at.",
    )
    p.add_argument("objective", help="an objective name (see `gdkit list objectives`)")
    p.add_argument("--at", metavar="X,Y,...", help="the point (default: the objective's x0)")
    p.add_argument("--x64", action="store_true", help="check in float64")
    p.set_defaults(handler=_cmd_check_grad)
    return parser


def _config_keys() -> str:
    """The top-level keys of an experiment config, as `run --help` lists them."""
    from gdkit.experiments.config import ExperimentConfig  # no JAX: pydantic and NumPy only

    return ", ".join(ExperimentConfig.model_fields)


def _allow_import_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-import",
        action="store_true",
        help="let the config name objectives by import path (package.module:name), which "
        "imports that module: only for configs you trust. Even then only objectives marked "
        "with @gdkit.objectives.objective or @gdkit.objectives.objective_factory are used",
    )


def _cmd_list(args) -> int:
    """From the declarations (`gdkit._catalog`): listing imports neither JAX nor optax."""
    from rich.table import Table

    from gdkit import _catalog

    console = _commands.rich_console()
    if args.what in (None, "objectives"):
        table = Table(title="objectives", show_lines=False)
        for col in ("name", "description", "parameters"):
            table.add_column(col)
        for e in _catalog.objectives():
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
    if args.what in (None, "optimizers"):
        table = Table(title="optimizers")
        for col in ("name", "description", "hyperparameters"):
            table.add_column(col)
        for e in _catalog.optimizers():
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
        console.print(
            "every optimizer also takes: "
            + ", ".join(f"{k}={v!r}" for k, v in _catalog.optimizer_options().items())
        )
    return 0


def _cmd_cache(args) -> int:
    from gdkit import _cache

    if args.action == "dir":
        print(_cache.cache_dir())
    else:
        freed = _cache.clear_compilation_cache()
        print(f"removed {freed / 2**20:.1f} MB of compiled programs from {_cache.cache_root()}")
    return 0


def _cmd_check_grad(args) -> int:
    import jax
    import numpy as np

    from gdkit import check_grad, objectives

    with user_errors():
        obj = objectives.get(args.objective)
    if args.at is None:
        x = obj.x0
    else:
        try:
            x = np.array([float(v) for v in args.at.split(",")])
        except ValueError:
            raise UserError(f"--at: expected comma-separated numbers, got {args.at!r}") from None
        if x.size != obj.dim:
            raise UserError(f"--at: {obj.name} takes {obj.dim} coordinates, got {x.size}")
    with jax.enable_x64(args.x64):
        c = check_grad(obj, x.astype(np.float64 if args.x64 else np.float32))
    np.set_printoptions(precision=8, suppress=False)
    print(f"objective    {obj.name} (dim {obj.dim}) at x = {c.x}  [{c.x.dtype}]")
    print(f"reverse      {c.reverse}    (jax.grad)")
    print(f"forward      {c.forward}    (jax.jacfwd)  max rel. error {c.forward_error:.2e}")
    print(
        f"numeric      {c.numeric}    (central differences, h = {c.step:.1e})  "
        f"max rel. error {c.numeric_error:.2e}"
    )
    print("agree" if c.ok() else "DISAGREE")
    return 0 if c.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
