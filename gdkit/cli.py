"""The `gdkit` command line. Exit codes: 0 ok, 2 bad input, 1 internal error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gdkit import __version__


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_glue_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (UserError, ValueError) as e:
        print(f"gdkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gdkit {args.command}: interrupted", file=sys.stderr)
        return 130


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "list",
        help="list objectives (and their parameters)",
        description="List what gdkit knows, with one-line descriptions, parameters and defaults.",
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


def _cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from gdkit import objectives

    console = Console()
    if args.what in (None, "objectives"):
        table = Table(title="objectives", show_lines=False)
        for col in ("name", "description", "parameters"):
            table.add_column(col)
        for e in objectives.entries():
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
    if args.what in (None, "optimizers"):
        try:
            from gdkit import optimizers
        except ImportError:
            return 0
        table = Table(title="optimizers")
        for col in ("name", "description", "hyperparameters"):
            table.add_column(col)
        for e in optimizers.entries():
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
    return 0


def _cmd_check_grad(args) -> int:
    import jax
    import numpy as np

    from gdkit import check_grad, objectives

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
