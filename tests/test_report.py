"""The terminal summary (80 columns, warnings printed) and report.html (one self-contained page
per run directory: summary, warnings, every figure, config, timing; `gdkit show --open`)."""

import base64
import contextlib
import html.parser
import io
import pathlib
import shutil
import subprocess

import pytest
from rich.console import Console

from gdkit.experiments import report, rundir
from gdkit.experiments.cli import main
from gdkit.experiments.summary import print_summary, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Long objective labels, several hyperparameters, and a best learning rate at the top of its
# grid (parabola x gd: a warning).
CONFIG = """
name: report-check
objectives:
  - {name: quadratic, dim: 10, condition_number: 100}
  - {name: parabola}
optimizers:
  - {name: gd, learning_rate: {logspace: [-3, -1, 3]}}
  - {name: momentum, learning_rate: [0.001, 0.01], momentum: [0.5, 0.9]}
starts: {kind: uniform, n: 2, seed: 1}
steps: 200
tol: 1.0e-4
record_every: 10
plots: [loss, lr_sensitivity]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "c.yaml").write_text(CONFIG)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", str(tmp / "c.yaml"), "--out", str(tmp), "--no-progress"]) == 0
    return pathlib.Path(buf.getvalue().strip().splitlines()[-1]), buf.getvalue()


def _terminal(results, width):
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_summary(console, results)
    return console.export_text()


def test_summary_fits_80_columns_without_cutting_names(run_dir):
    path, _ = run_dir
    results = rundir.load_results(path)
    text = _terminal(results, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # no cell cut short
    for r in results:
        assert r.optimizer in text
        assert r.objective in text.replace("\n", "")  # the table titles, whole (maybe wrapped)
    assert "lr = learning_rate" in text and "mom = momentum" in text  # the abbreviations' legend
    wide = _terminal(results, 140)
    assert "median gap" in wide and "median gap" not in text  # more columns where there is room


def test_warnings_are_printed_on_the_terminal_and_by_show(run_dir, capsys):
    path, stdout = run_dir
    warnings = [w for r in rundir.load_results(path) for w in summarize(r).warnings]
    assert any("highest value swept" in w for w in warnings)
    summary_md = (path / "summary.md").read_text()
    for w in warnings:
        assert w in summary_md
        assert w in " ".join(stdout.split())  # `gdkit run` printed it (maybe wrapped)
    assert main(["show", str(path)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "warnings:" in shown and all(w in shown for w in warnings)


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.refs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href", "action", "data"):
            if key in attrs:
                self.refs.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_one_self_contained_page(run_dir):
    path, _ = run_dir
    page_text = (path / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(page_text)
    figures = sorted((path / "plots").glob("*.png"))
    assert len(page.images) == len(figures) >= 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == PNG_MAGIC
    assert not [r for r in page.refs if not r.startswith("data:")]  # nothing to fetch
    assert "http://" not in page_text and "https://" not in page_text
    assert "<script" not in page_text and "<link" not in page_text
    text = " ".join(" ".join(page.text).split())
    for r in rundir.load_results(path):
        assert r.objective in text and r.optimizer in text
        assert all(w in text for w in summarize(r).warnings)
    assert "learning_rate:" in text and "logspace" in text  # the resolved config
    assert "compile" in text and "lanes" in text  # the timing


def test_plot_keeps_the_report_in_step_and_show_opens_it(run_dir, monkeypatch, capsys):
    path, _ = run_dir
    before = (path / "report.html").read_text(encoding="utf-8")
    (path / "report.html").unlink()
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    assert main(["show", str(path), "--open"]) == 0  # an older run: written, then opened
    assert opened == [(path / "report.html").resolve().as_uri()]
    assert (path / "report.html").is_file()
    assert main(["plot", str(path), "--kinds", "loss"]) == 0
    again = (path / "report.html").read_text(encoding="utf-8")
    assert again.count("<img") == before.count("<img")
    capsys.readouterr()


def test_report_write_is_atomic(run_dir, monkeypatch):
    path, _ = run_dir
    before = (path / "report.html").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(report, "page", broken)
    with pytest.raises(RuntimeError):
        report.write(path)
    assert (path / "report.html").read_bytes() == before  # the old page, whole
    assert not list(path.glob(".report.html*"))


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless browser installed",
)
def test_report_renders_in_a_headless_browser(run_dir, tmp_path):
    path, _ = run_dir
    browser = next(
        shutil.which(b)
        for b in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(b)
    )
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--screenshot={shot}",
            (path / "report.html").resolve().as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert shot.read_bytes()[:8] == PNG_MAGIC


def test_plot_accepts_every_kind_the_readme_names(run_dir, capsys):
    path, _ = run_dir
    assert main(["plot", str(path), "--kinds", "epochs,loss"]) == 0  # epochs: not applicable
    assert main(["plot", str(path), "--kinds", "pie"]) == 2
    err = capsys.readouterr().err
    allowed = err.split("allowed: ", 1)[1].strip().split(", ")
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    named = readme.split("`plots:` lists the figures to draw:", 1)[1]
    named = named.split("redraws any of them", 1)[0]
    documented = [k for k in allowed if f"`{k}`" in named]
    assert documented == allowed, "a plot kind the CLI allows is missing from the README"
    assert "'pie'" in err and err.count("\n") == 1
