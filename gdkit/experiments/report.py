"""report.html: a run directory as one self-contained page, to look at or to send as one file.

The page holds the summary table, its warnings, every figure of plots/ (embedded as base64 PNG
data URIs), the timing and the resolved config, with inline CSS: it loads nothing from the
network or from the run directory.
"""

from __future__ import annotations

import base64
import html
import json
import pathlib

from gdkit.result import SweepResult

REPORT = "report.html"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
tr.warn td { background: #fff6d6; }
ul.warnings li { color: #8a5a00; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 12px; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 12px; }
.meta { color: #555; }
"""


def page(run_dir: pathlib.Path, results: list[SweepResult], meta: dict) -> str:
    """The HTML text of the report of `run_dir` (its plots/ and config.yaml are read)."""
    from gdkit.experiments.summary import COLUMNS, summarize, table_rows

    run_dir = pathlib.Path(run_dir)
    e = html.escape
    name = str(meta.get("name") or run_dir.name)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(name)}: gdkit report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(name)}</h1>",
        f'<p class="meta">{e(_provenance(meta))}</p>',
        "<h2>Summary</h2>",
        "<table><tr>"
        + "".join(f'<th class="{"l" if i < 3 else ""}">{e(c)}</th>' for i, c in enumerate(COLUMNS))
        + "</tr>",
    ]
    for cells, warnings in table_rows(results):
        cls = ' class="warn"' if warnings else ""
        tds = "".join(
            f'<td class="{"l" if i < 3 else ""}">{e(c)}</td>' for i, c in enumerate(cells)
        )
        out.append(f"<tr{cls}>{tds}</tr>")
    out.append("</table>")
    notes = [(s.objective, s.optimizer, w) for s in map(summarize, results) for w in s.warnings]
    out.append("<h2>Warnings</h2>")
    if notes:
        out.append('<ul class="warnings">')
        out += [f"<li><b>{e(o)} x {e(p)}</b>: {e(w)}</li>" for o, p, w in notes]
        out.append("</ul>")
    else:
        out.append("<p>None.</p>")
    out += _timing(meta)
    figures = sorted((run_dir / "plots").glob("*.png"))
    out.append("<h2>Figures</h2>")
    if not figures:
        out.append("<p>No figures (the config's plots list is empty).</p>")
    for f in figures:
        data = base64.b64encode(f.read_bytes()).decode("ascii")
        out.append(
            f'<figure><img alt="{e(f.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(f.name)}</figcaption></figure>"
        )
    config = run_dir / "config.yaml"
    out.append("<h2>Resolved config</h2>")
    text = config.read_text(encoding="utf-8") if config.is_file() else "(config.yaml missing)"
    out.append(f"<pre>{e(text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _provenance(meta: dict) -> str:
    parts = [
        f"created {meta['created']}" if meta.get("created") else "",
        f"gdkit {meta['gdkit']}" if meta.get("gdkit") else "",
        f"jax {meta['jax']}" if meta.get("jax") else "",
        f"optax {meta['optax']}" if meta.get("optax") else "",
        f"backend {meta['backend']}" if meta.get("backend") else "",
        f"{len(meta['devices'])} device(s)" if meta.get("devices") else "",
        f"dtype {meta['dtype']}" if meta.get("dtype") else "",
        f"git {meta['git_commit'][:12]}" if meta.get("git_commit") else "",
    ]
    return " · ".join(p for p in parts if p)


def _timing(meta: dict) -> list[str]:
    e = html.escape
    out = ["<h2>Timing</h2>"]
    total = []
    for key, label in (("compile_time", "compile"), ("run_time", "run"), ("wall_time", "wall")):
        if isinstance(meta.get(key), int | float):
            total.append(f"{label} {meta[key]:.2f} s")
    if isinstance(meta.get("lanes"), int):
        total.append(f"{meta['lanes']:,} lanes")
    out.append(f"<p>{e(', '.join(total) or 'not recorded')}</p>")
    sweeps = meta.get("sweeps") or []
    if sweeps:
        out.append(
            '<table><tr><th class="l">objective</th><th class="l">optimizer</th>'
            "<th>lanes</th><th>compile (s)</th><th>run (s)</th></tr>"
        )
        for s in sweeps:
            out.append(
                f'<tr><td class="l">{e(str(s.get("objective")))}</td>'
                f'<td class="l">{e(str(s.get("optimizer")))}</td>'
                f"<td>{e(str(s.get('lanes')))}</td>"
                f"<td>{_seconds(s.get('compile_time'))}</td>"
                f"<td>{_seconds(s.get('run_time'))}</td></tr>"
            )
        out.append("</table>")
    return out


def _seconds(v) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) else "-"


def write(
    run_dir: pathlib.Path, results: list[SweepResult] | None = None, meta: dict | None = None
) -> pathlib.Path:
    """Writes `run_dir`/report.html atomically (temp file + rename) and returns its path;
    `results` and `meta` are read from the run directory when not given."""
    from gdkit.experiments import rundir

    run_dir = pathlib.Path(run_dir)
    if results is None:
        results = rundir.load_results(run_dir)
    if meta is None:
        path = run_dir / rundir.COMPLETE
        meta = json.loads(path.read_text()) if path.is_file() else {}
    with rundir._atomic(run_dir / REPORT) as tmp:
        tmp.write_text(page(run_dir, results, meta), encoding="utf-8")
    return run_dir / REPORT
