"""Renders every figure of the shipped configs and checks that none misleads.

    python scripts/check_figures.py                 # every config but the slow gallery
    python scripts/check_figures.py configs/mlp.yaml --keep DIR

Each config runs through `gdkit run` in this process; every figure `gdkit.plots.draw` makes is
checked before it is saved, for what can be checked mechanically:

- every path line (gid "path:<i>") of a contour plot shows along at least a quarter of its
  length: not covered by a later-drawn, at least as wide line (display coordinates, widths in
  pixels);
- no legend overlaps an axes, its tick labels, axis labels or title (so none sits on data or
  hides a label), and every text (titles, labels, legend entries) lies inside the figure;
- a 3-D surface draws in zorder (not by depth) with the minima's stars above the surface;
- 2-D objectives with parameter names (curve_fit's a, b) label the axes with them.

Exits 1 listing every problem (figure: what), 0 when there is none. The PNGs are kept with
--keep DIR; look at them too.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

# the plots' own even resampling of a path (one definition for the figure and its check)
from gdkit.plots._contour import _resample

CHEAP = [
    "tutorial_examples",
    "curve_fit",
    "linear_regression",
    "mlp",
    "quadratic_conditioning",
    "peaks_multistart",
    "quickstart",
    "rosenbrock_lr_sweep",
]
MIN_EXPOSED = 0.25  # the share of a path's length that must show


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of each of `points` [P, 2] to the polyline `line` [T, 2]."""
    if len(line) == 1:
        return np.linalg.norm(points - line[0], axis=1)
    a, b = line[:-1], line[1:]
    ab = b - a
    denom = np.maximum(np.einsum("sk,sk->s", ab, ab), 1e-12)
    out = np.full(len(points), np.inf)
    for start in range(0, len(a), 512):  # segments in blocks: bounded memory
        sa, sab, sd = a[start : start + 512], ab[start : start + 512], denom[start : start + 512]
        t = (np.einsum("pk,sk->ps", points, sab) - np.einsum("sk,sk->s", sa, sab)) / sd
        near = sa[None] + np.clip(t, 0, 1)[..., None] * sab[None]
        out = np.minimum(out, np.linalg.norm(points[:, None] - near, axis=-1).min(axis=1))
    return out


def exposed_shares(ax) -> dict[str, float]:
    """Per path line of `ax` (gid "path:<i>"): the share of its length (in display space)
    not covered by a later-drawn line at least as wide around it."""
    fig = ax.figure
    px = fig.dpi / 72.0
    lines = [ln for ln in ax.get_lines() if str(ln.get_gid() or "").startswith("path:")]
    lines.sort(key=lambda ln: ln.get_zorder())  # drawing order
    xy = [ax.transData.transform(np.column_stack(ln.get_data())) for ln in lines]
    xy = [p[np.all(np.isfinite(p), axis=1)] for p in xy]
    out = {}
    for i, ln in enumerate(lines):
        if len(xy[i]) < 2:
            continue
        pts = _resample(xy[i], 400)
        r_i = ln.get_linewidth() * px / 2
        covered = np.zeros(len(pts), bool)
        for j in range(i + 1, len(lines)):
            if len(xy[j]) == 0:
                continue
            r_j = lines[j].get_linewidth() * px / 2
            covered |= _polyline_distance(pts, xy[j]) + r_i <= r_j + 0.5
        out[ln.get_gid()] = float(1.0 - covered.mean())
    return out


def _texts(fig):
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
    for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if leg is not None:
            texts += leg.get_texts()
    return [t for t in texts if t is not None and t.get_visible() and t.get_text()]


def check_figure(fig, name: str, objective=None) -> list[str]:
    """The problems of one figure (empty when none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    problems = []
    canvas = FigureCanvasAgg(fig)  # the renderer savefig uses: extents as in the PNG
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    for t in _texts(fig):
        bb = t.get_window_extent(renderer)
        if bb.x0 < -1 or bb.y0 < -1 or bb.x1 > width + 1 or bb.y1 > height + 1:
            problems.append(f"{name}: text {t.get_text()[:40]!r} runs past the figure's edge")
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    for leg in [lg for lg in legends if lg is not None]:
        lb = leg.get_window_extent(renderer)
        for ax in fig.axes:  # the axes with their tick labels, axis labels and title
            if ax.get_visible() and lb.overlaps(ax.get_tightbbox(renderer)):
                problems.append(f"{name}: a legend overlaps the axes {ax.get_title()[:30]!r}")
                break
    for ax in fig.axes:
        for gid, share in exposed_shares(ax).items():
            if share < MIN_EXPOSED:
                problems.append(f"{name}: {gid} shows along only {share:.0%} of its length")
        if getattr(ax, "name", "") == "3d" and name.startswith("surface"):  # stars = minima
            if ax.computed_zorder:
                problems.append(f"{name}: 3-D axes sort by depth; the minima may hide")
            surfaces = [
                a.get_zorder() for a in ax.collections if type(a).__name__ == "Poly3DCollection"
            ]
            stars = [
                a.get_zorder() for a in ax.collections if type(a).__name__ == "Path3DCollection"
            ]
            if surfaces and stars and min(stars) <= max(surfaces):
                problems.append(f"{name}: a minimum's star is drawn under the surface")
    names = getattr(objective, "param_names", ())
    if names and getattr(objective, "dim", 0) == 2 and name.split("-")[0] in ("contour", "surface"):
        for ax in fig.axes:
            label = ax.get_xlabel() if ax.get_visible() else ""
            if label and not label.startswith(names[0]):
                problems.append(f"{name}: x axis says {label!r}, not {names[0]!r}")
    return problems


def checked(argv: list[str], what: str) -> tuple[list[str], int]:
    """Runs the gdkit command `argv` with every figure checked as it is drawn:
    (problems, figures)."""
    from gdkit import plots
    from gdkit.experiments.cli import main

    problems: list[str] = []
    count = 0
    save = plots.save
    objectives: dict = {}
    draw = plots.draw

    def drawing(results, objs, out_dir, *args, **kwargs):
        objectives.update(objs)
        return draw(results, objs, out_dir, *args, **kwargs)

    def checked_save(fig, path):
        nonlocal count
        name = pathlib.Path(path).name
        obj = next((o for n, o in objectives.items() if plots.slug(n) in name), None)
        problems.extend(check_figure(fig, name, obj))
        count += 1
        return save(fig, path)

    plots.save, plots.draw = checked_save, drawing
    try:
        rc = main(argv)
        if rc != 0:
            problems.append(f"{what}: gdkit {argv[0]} exited {rc}")
    finally:
        plots.save, plots.draw = save, draw
    return problems, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="configs (default: every cheap shipped one)")
    parser.add_argument("--keep", metavar="DIR", help="write the run directories here")
    parser.add_argument(
        "--redraw",
        nargs="+",
        metavar="RUN_DIR",
        help="only re-draw and check the figures of finished run directories (gdkit plot)",
    )
    args = parser.parse_args(argv)
    if args.redraw:
        problems, total = [], 0
        for run_dir in args.redraw:
            found, count = checked(["plot", run_dir], pathlib.Path(run_dir).name)
            total += count
            problems += found
        return _report(problems, total, "")
    root = pathlib.Path(__file__).resolve().parent.parent
    configs = [pathlib.Path(c) for c in args.configs] or [
        root / "configs" / f"{n}.yaml" for n in CHEAP
    ]
    out = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="gdkit-figures-"))
    problems, total = [], 0
    for config in configs:
        argv = ["run", str(config), "--out", str(out), "--no-progress"]
        found, count = checked(argv, config.name)
        total += count
        print(f"{config.name}: {count} figures, {len(found)} problems", flush=True)
        problems += found
    return _report(problems, total, f"; run directories in {out}")


def _report(problems: list[str], total: int, where: str) -> int:
    for p in problems:
        print("  " + p)
    print(f"{total} figures checked, {len(problems)} problems{where}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
