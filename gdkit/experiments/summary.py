"""Per objective x optimizer: the best hyperparameters, how often runs succeed, and warnings."""

from __future__ import annotations

import dataclasses

import numpy as np

from gdkit.result import SweepResult


@dataclasses.dataclass(frozen=True)
class PairSummary:
    objective: str
    optimizer: str
    lanes: int
    best: dict | None  # the best lane's swept hyperparameters; None if every lane diverged
    best_gap: float | None  # the best lane's final gap (final loss when f_min is unknown)
    best_steps: int | None  # its steps_to_tol (None when it neither converged nor is stationary)
    best_evals: dict | None  # its evaluations up to steps_to_tol by kind (f, grad, hess, jac)
    best_status: str | None  # its status; None if every lane diverged
    success_rate: float  # fraction of lanes converged
    stationary_rate: float  # fraction of lanes stationary (|grad f| <= tol, minimum unknown)
    divergence_rate: float
    median_gap: float | None
    warnings: tuple[str, ...]


def best_row(result: SweepResult) -> dict | None:
    """`result.representative()` (`best()` with one run per grid point), or None when every
    lane diverged."""
    try:
        return result.representative()
    except ValueError:
        return None


def summarize(result: SweepResult) -> PairSummary:
    """The summary of one sweep; warns when the best value of a swept hyperparameter sits at the
    edge of its grid (the optimum may lie outside what was swept)."""
    swept = [a for a in result.dims if a not in ("start", "seed")]
    status = result.status
    gap = result.gap if result.gap is not None else result.final_loss
    finite = gap[status != "diverged"]
    row = best_row(result)
    warnings = []
    if result.tol and result.tol_metric == "gap" and result.dtype == "float32":
        ulp = float(np.finfo(np.float32).eps) * max(1.0, abs(result.f_min))
        if result.tol < 4 * ulp:
            warnings.append(
                f"tol = {result.tol:.0e} is only {result.tol / ulp:.1f} float32 steps "
                f"({ulp:.1e} each near f* = {result.f_min:.6g}): gaps that small are "
                "rounding; use dtype: float64 or a larger tol"
            )
    if row is not None:
        for name in swept:
            values = np.asarray(result.axes[name])
            if values.dtype.kind not in "fiu":
                continue  # a structural axis (batch size, a flag): no edge to speak of
            if len(values) >= 3 and row[name] in (values.min(), values.max()):
                edge = "lowest" if row[name] == values.min() else "highest"
                warnings.append(
                    f"best {name} = {row[name]:.4g} is the {edge} value swept; widen the grid"
                )
    elif status.size:  # no representative run: every lane diverged
        warnings.append("every run diverged")
    best_gap = None
    if row is not None:
        best_gap = row["gap"] if row["gap"] is not None else row["final_loss"]
    return PairSummary(
        objective=result.objective,
        optimizer=result.optimizer,
        lanes=result.lanes,
        best=None if row is None else {k: row[k] for k in swept},
        best_gap=best_gap,
        best_steps=None if row is None or row["steps_to_tol"] < 0 else row["steps_to_tol"],
        best_evals=_evals_to_tol(row),
        best_status=None if row is None else row["status"],
        success_rate=float(np.mean(status == "converged")),
        stationary_rate=float(np.mean(status == "stationary")),
        divergence_rate=float(np.mean(status == "diverged")),
        median_gap=float(np.median(finite)) if finite.size else None,
        warnings=tuple(warnings),
    )


def _evals_to_tol(row: dict | None) -> dict | None:
    """{kind: count} of the evaluations the row's run made up to its steps_to_tol."""
    if row is None or row["steps_to_tol"] < 0:
        return None
    suffix = "_to_tol"
    counts = {
        k[len("evals_") : -len(suffix)]: v
        for k, v in row.items()
        if k.startswith("evals_") and k.endswith(suffix)
    }
    return counts or None


def _fmt(v, spec=".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _hp(best: dict | None) -> str:
    if best is None:
        return "-"
    return ", ".join(f"{k}={_fmt(v, '.4g')}" for k, v in best.items()) or "(fixed)"


COLUMNS = (
    "objective",
    "optimizer",
    "best hyperparameters",
    "best gap",
    "steps to tol",
    "evaluations to tol",
    "converged",
    "stationary",
    "diverged",
    "median gap",
    "lanes",
)


def _steps(s: PairSummary) -> str:
    """The best run's steps to tol, saying when they are steps to a stationary point."""
    if s.best_steps is None:
        return "-"
    return f"{s.best_steps} (stationary)" if s.best_status == "stationary" else str(s.best_steps)


def _evals(s: PairSummary) -> str:
    """The best run's evaluations to tol: "49 f, 49 grad" (and hess, jac where made)."""
    if s.best_evals is None:
        return "-"
    return ", ".join(f"{n} {k}" for k, n in s.best_evals.items())


def table_rows(results: list[SweepResult]) -> list[tuple[list[str], tuple[str, ...]]]:
    out = []
    for r in results:
        s = summarize(r)
        out.append(
            (
                [
                    s.objective,
                    s.optimizer,
                    _hp(s.best),
                    _fmt(s.best_gap),
                    _steps(s),
                    _evals(s),
                    f"{s.success_rate:.0%}",
                    f"{s.stationary_rate:.0%}",
                    f"{s.divergence_rate:.0%}",
                    _fmt(s.median_gap),
                    str(s.lanes),
                ],
                s.warnings,
            )
        )
    return out


def markdown(results: list[SweepResult], title: str | None = None) -> str:
    """summary.md: one table row per objective x optimizer, then the warnings."""
    lines = [f"# {title or 'gdkit run'}", ""]
    lines.append(
        "Gap = final loss - known minimum (the final loss itself where no minimum is "
        "known). Best = the hyperparameters where most runs converged (ties: lower "
        "median final gap), shown with the median-speed run there; with one run per grid "
        "point, the converged run with the fewest steps to tol (or, where none converged, "
        "the lowest final gap). Converged = within tol of the known minimum from its "
        "steps to tol to the end; stationary = no minimum is known and |grad f| stayed "
        "within tol (a plateau or a saddle may be one: not a claim of a minimum). "
        "Evaluations to tol = the f, grad f (and Hessian, Jacobian) evaluations that run "
        "made up to its steps to tol: one f and one grad f per step for first-order "
        "methods, every trial for line searches."
    )
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    notes = []
    for cells, warnings in table_rows(results):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        notes += [f"- **{cells[0]} x {cells[1]}**: {w}" for w in warnings]
    if notes:
        lines += ["", "## Warnings", "", *notes]
    return "\n".join(lines) + "\n"


# Short names for the terminal (legend printed under the tables).
SHORT_HPARAMS = {"learning_rate": "lr", "momentum": "mom", "weight_decay": "wd", "damping": "damp"}
_TERMINAL_NOTE = (
    "best: the hyperparameters shown; gap: its final f − f* (f where no minimum is known); "
    "steps: to tol (s = to a stationary point); conv/stat/div: share of all runs converged / "
    "stationary / diverged."
)


def print_summary(console, results: list[SweepResult]) -> None:
    """The summary for a terminal of any width (80 columns and up): one table per objective
    (its name as the title, so no column holds it), short headers and hyperparameter names
    with a legend under the tables, columns that are zero everywhere left out, the median gap
    and lane counts only where the terminal is wide; then every warning of summary.md."""
    from rich import box
    from rich.table import Table

    sums = [summarize(r) for r in results]
    wide = (console.width or 80) >= 110
    stat = any(s.stationary_rate > 0 for s in sums)
    cols = ["optimizer", "best", "gap", "steps", "conv"] + (["stat"] if stat else []) + ["div"]
    if wide:
        cols += ["median gap", "lanes"]
    used: set[str] = set()
    by_objective: dict[str, list[PairSummary]] = {}
    for s in sums:
        by_objective.setdefault(s.objective, []).append(s)
    for objective, rows in by_objective.items():
        table = Table(title=objective, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
        for c in cols:
            table.add_column(
                c,
                justify="left" if c in ("optimizer", "best") else "right",
                no_wrap=c != "best",
                overflow="fold",
            )
        for s in rows:
            best = "-"
            if s.best is not None:
                used |= {k for k in s.best if k in SHORT_HPARAMS}
                best = (
                    ", ".join(
                        f"{SHORT_HPARAMS.get(k, k)}={_fmt(v, '.3g')}" for k, v in s.best.items()
                    )
                    or "(fixed)"
                )
            steps = "-" if s.best_steps is None else str(s.best_steps)
            if s.best_status == "stationary" and s.best_steps is not None:
                steps += " s"
            cells = {
                "optimizer": s.optimizer,
                "best": best,
                "gap": _fmt(s.best_gap),
                "steps": steps,
                "conv": f"{s.success_rate:.0%}",
                "stat": f"{s.stationary_rate:.0%}",
                "div": f"{s.divergence_rate:.0%}",
                "median gap": _fmt(s.median_gap),
                "lanes": str(s.lanes),
            }
            table.add_row(*(cells[c] for c in cols), style="yellow" if s.warnings else None)
        console.print(table)
    legend = _TERMINAL_NOTE
    if used:
        legend += " " + ", ".join(f"{SHORT_HPARAMS[k]} = {k}" for k in sorted(used)) + "."
    console.print(legend, style="dim", highlight=False)
    print_warnings(console, sums)


def print_warnings(console, sums: list[PairSummary]) -> None:
    """The warnings summary.md lists (tol within float32 rounding, a best value at the edge of
    its grid, every run diverged), one line each, under a heading."""
    lines = [f"{s.objective} x {s.optimizer}: {w}" for s in sums for w in s.warnings]
    if lines:
        console.print("warnings:", style="bold yellow", highlight=False)
        for line in lines:
            console.print(f"- {line}", style="yellow", highlight=False, markup=False)
