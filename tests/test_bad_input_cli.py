"""Bad input at the command line, as a table: every case exits 2 (bad input) or 1 (the machine
ran out of something) with ONE line on stderr naming the key, never a traceback, and writes
nothing (the --out directory stays absent; a run directory given to --resume/show/plot keeps
every byte it had).

The cases run in-process through `gdkit.experiments.cli.main` (fast); only the real entry point
and two processes contending for one run directory need subprocesses.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from gdkit.experiments import rundir
from gdkit.experiments.cli import main

BASE = """
name: t
objectives:
  - {name: rosenbrock}
  - {name: quadratic, dim: 10, condition_number: 100}
optimizers:
  - name: adam
    learning_rate: {logspace: [-4, 0, 64]}
  - {name: gd, learning_rate: [1e-3, 2e-3]}
steps: 100
tol: 1e-6
plots: []
"""

# A tiny experiment that really runs (a second or two): two sweeps, so that a run can stop
# between them.
TINY = """
name: tiny
objectives:
  - {name: rosenbrock}
optimizers:
  - {name: gd, learning_rate: [0.0001, 0.001]}
  - {name: adam, learning_rate: [0.01, 0.1]}
steps: 40
tol: 1.0e-4
record_every: 10
plots: []
checkpoint_every: 0
"""


@pytest.fixture(scope="module", autouse=True)
def _jax_started():
    """Starts JAX's backend before `main` can ask for one device per core: the device count
    stays what the rest of the suite expects, whichever test file runs first."""
    import jax

    jax.devices()


def laughs(levels: int = 9) -> str:
    """A ~450-byte YAML value that expands to 9**9 (387 M) strings through aliases."""
    items = ["&a [" + ",".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        items.append(f"&{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


@dataclasses.dataclass
class Case:
    id: str
    argv: list[str]  # {cfg}: the config file, {out}: the --out directory
    message: list[str]  # each must appear in the one line on stderr
    code: int = 2
    config: str | bytes = BASE


def _set(*pairs: str) -> list[str]:
    return [x for p in pairs for x in ("--set", p)]


RUN = ["run", "{cfg}", "--out", "{out}", "--no-progress"]

CASES = [
    # --- everything tests/test_config.py checks, through the CLI -------------------------
    Case("unknown-key", RUN + _set("stepz=3"), ["stepz: unknown key (did you mean 'steps'?)"]),
    Case("tol-negative", RUN + _set("tol=-1"), ["tol: input should be greater than 0"]),
    Case("tol-text", RUN + _set("tol=abc"), ["tol: must be a number, got 'abc'"]),
    Case("steps-float", RUN + _set("steps=1.5"), ["steps: "]),
    Case("seeds-zero", RUN + _set("seeds=0"), ["seeds: "]),
    Case("dtype", RUN + _set("dtype=float16"), ["dtype: input should be 'float32' or 'float64'"]),
    Case("platform", RUN + _set("platform=tpu"), ["platform: "]),
    Case("engine", RUN + _set("engine=pallas"), ["engine: ", "'auto', 'xla' or 'fused'"]),
    Case("plots", RUN + _set("plots=[contour, pie]"), ["plots.1: "]),
    Case(
        "lr-negative",
        RUN + _set("optimizers.1.learning_rate=-0.1"),
        ["optimizers.1.learning_rate: must be finite and in (0"],
    ),
    Case(
        "lr-list-negative",
        RUN + _set("optimizers.1.learning_rate=[0.1, -0.1]"),
        ["optimizers.1.learning_rate: "],
    ),
    Case("b1", RUN + _set("optimizers.0.b1=1.5"), ["optimizers.0.b1: must be"]),
    Case("no-such-hp", RUN + _set("optimizers.0.lr=0.1"), ["optimizers.0.lr: adam has no such"]),
    Case(
        "optimizer-name",
        RUN + _set("optimizers.0.name=adma"),
        ["optimizers.0.name: unknown optimizer 'adma'"],
    ),
    Case(
        "logspace-short",
        RUN + _set("optimizers.0.learning_rate={logspace: [1, 2]}"),
        ["optimizers.0.learning_rate: logspace"],
    ),
    Case(
        "range",
        RUN + _set("optimizers.0.learning_rate={range: [1, 2, 3]}"),
        ["optimizers.0.learning_rate: expected"],
    ),
    Case(
        "lr-text-list",
        RUN + _set("optimizers.0.learning_rate=[a, b]"),
        ["optimizers.0.learning_rate: a swept list"],
    ),
    Case("no-item", RUN + _set("optimizers.5.name=x"), ["optimizers.5: no item 5"]),
    Case("dim-zero", RUN + _set("objectives.1.dim=0"), ["objectives.1.dim: must be an integer"]),
    Case("no-such-param", RUN + _set("objectives.0.dimm=3"), ["objectives.0.dimm: "]),
    Case(
        "objective-name",
        RUN + _set("objectives.0.name=rosenbrok"),
        ["did you mean 'rosenbrock'"],
    ),
    Case(
        "expr-attribute",
        RUN + _set("objectives.0={expr: 'x.__class__'}"),
        ["objectives.0: attribute access"],
    ),
    Case(
        "expr-and-name",
        RUN + _set("objectives.0={expr: 'x', name: sphere}"),
        ["exactly one of 'name', 'expr' or 'model'"],
    ),
    Case(
        "expr-import",
        RUN + _set("objectives.0={expr: '__import__(\"os\")'}"),
        ["call to '__import__'"],
    ),
    Case("starts-kind", RUN + _set("starts={kind: grids, n: 3}"), ["starts: "]),
    Case("starts-n-missing", RUN + _set("starts={kind: grid}"), ["starts.n: required key"]),
    Case(
        "starts-typo",
        RUN + _set("starts={kind: uniform, n: 3, sed: 1}"),
        ["starts.sed: unknown key (did you mean 'seed'?)"],
    ),
    Case("name-space", RUN + _set("name=a b"), ["name: "]),
    Case("set-no-value", [*RUN, "--set", "steps"], ["expected KEY=VALUE"]),
    Case("noise-no-seeds", RUN + _set("noise=0.1"), ["noise: gradient noise needs seeds"]),
    Case("noise-negative", RUN + _set("noise=-1", "seeds=2"), ["noise: input should be greater"]),
    Case(
        "batch-no-seeds",
        RUN + _set("optimizers.1.batch_size=[full, 10]"),
        ["optimizers.1.batch_size: mini-batches need seeds"],
    ),
    Case(
        "batch-zero",
        RUN + _set("optimizers.1.batch_size=[0]", "seeds=2"),
        ["optimizers.1.batch_size: expected full"],
    ),
    Case(
        "batch-not-data",
        RUN + _set("optimizers.1.batch_size=[4]", "seeds=2"),
        ["optimizers.1.batch_size: ", "is not a data objective"],
    ),
    Case("set-malformed", RUN + _set("steps=[1"), ["malformed YAML"]),
    Case("missing-file", ["run", "{out}/../nope.yaml", "--out", "{out}"], ["cannot read"]),
    Case("malformed-file", RUN, ["malformed YAML", "line"], config="name: [unclosed\n"),
    Case("top-level-list", RUN, ["expected a mapping"], config="- just\n- a list\n"),
    Case(
        "objectives-missing",
        RUN,
        ["objectives: required key is missing"],
        config="name: t\nsteps: 10\noptimizers: [{name: gd}]\n",
    ),
    Case("no-config", ["run", "--out", "{out}"], ["give a CONFIG file"]),
    # --- finding 5: values the engine would refuse, refused at the config boundary --------
    Case(
        "quadratic-dim-1e6",
        RUN + _set("objectives.1.dim=1000000"),
        ["objectives.1.dim: ", "memory"],
    ),
    Case(
        "rosenbrock-dim-1e9",  # refused before its 24 GB of start and bounds are made
        RUN + _set("objectives.0.dim=1000000000"),
        ["objectives.0.dim: ", "memory"],
    ),
    Case("x0-nan", RUN + _set("objectives.0.x0=[.nan, 1]"), ["objectives.0.x0.0: ", "finite"]),
    Case(
        "starts-list-nan",
        RUN + _set("objectives=[{name: rosenbrock}]", "starts={kind: list, points: [[1, .nan]]}"),
        ["starts.points.0.1: ", "finite"],
    ),
    Case("tol-inf", RUN + _set("tol=.inf"), ["tol: ", "finite"]),
    Case("record-every", RUN + _set("record_every=1000"), ["record_every: ", "steps"]),
    Case(
        "record-every-objective-steps",
        RUN + _set("record_every=50", "objectives.0.steps=20"),
        ["record_every: ", "objectives.0.steps"],
    ),
    Case("seeds-1e12", RUN + _set("seeds=1000000000000"), ["seeds: ", "memory"]),
    Case(
        "logspace-1e9",
        RUN + _set("optimizers.0.learning_rate={logspace: [-5, 0, 1000000000]}"),
        ["optimizers.0.learning_rate: ", "memory"],
    ),
    Case(
        "uniform-1e9",
        RUN + _set("starts={kind: uniform, n: 1000000000}"),
        ["starts.n: ", "memory"],
    ),
    Case(
        "grid-too-large",
        RUN + _set("objectives=[{name: rosenbrock, dim: 10}]", "starts={kind: grid, n: 1000}"),
        ["starts.n: ", "memory"],
    ),
    Case(
        "minimum-f-inf",
        RUN + _set("objectives.0={expr: 'x**2', minima: [{x: [0], f: .inf}]}"),
        ["objectives.0.minima.0.f: ", "finite"],
    ),
    Case("noise-inf", RUN + _set("noise=.inf", "seeds=2"), ["noise: ", "finite"]),
    Case(
        "logspace-overflow",
        RUN + _set("optimizers.0.learning_rate={logspace: [0, 400, 3]}"),
        ["optimizers.0.learning_rate: ", "logspace"],
    ),
    Case(
        "bounds-nan",
        RUN + _set("objectives.0.bounds=[[.nan, 1], [0, 1]]"),
        ["objectives.0.bounds.0.0: ", "finite"],
    ),
    Case("checkpoint-every-inf", RUN + _set("checkpoint_every=.inf"), ["checkpoint_every: "]),
    Case(
        "dry-run-too-large",
        ["run", "{cfg}", "--dry-run", "--out", "{out}", *_set("seeds=1000000000000")],
        ["seeds: ", "memory"],
    ),
    # --- finding 5b: small files that would exhaust the machine ---------------------------
    Case("laughs-steps", RUN, ["alias"], config=BASE.replace("steps: 100", f"steps: {laughs()}")),
    Case("laughs-name", RUN, ["alias"], config=BASE.replace("name: t", f"name: {laughs()}")),
    Case(
        "laughs-lr",
        RUN,
        ["alias"],
        config=BASE.replace("[1e-3, 2e-3]", laughs()),
    ),
    Case("nested-brackets", RUN, ["nest"], config=BASE + "seeds: " + "[" * 20000 + "\n"),
    Case(
        "nested-brackets-closed",
        RUN,
        ["nest"],
        config=BASE + "seeds: " + "[" * 20000 + "]" * 20000 + "\n",
    ),
    Case(
        "recursive-alias",
        RUN,
        ["alias"],
        config=BASE + "seeds: &r [*r]\n",
    ),
    Case(
        "expr-unary-minus",
        RUN + _set("objectives.0={expr: '" + "-" * 9000 + "x'}"),
        ["objectives.0"],
    ),
    Case(
        "expr-long-sum",
        RUN + _set("objectives.0={expr: '" + "+".join(["x"] * 5000) + "'}"),
        ["objectives.0"],
    ),
    Case("duplicate-key", RUN, ["duplicate key 'steps'", "line"], config=BASE + "steps: 5\n"),
    Case(
        "duplicate-nested-key",
        RUN,
        ["duplicate key 'name'"],
        config=BASE.replace("- {name: gd,", "- {name: gd, name: adam,"),
    ),
    Case("not-utf8", RUN, ["c.yaml", "UTF-8"], config=BASE.encode() + b"# caf\xe9\n"),
    Case(
        "long-value-truncated",
        RUN + _set("name=" + "x" * 5000 + " y"),
        ["name: "],
    ),
    Case(
        "long-list-truncated",
        RUN + _set("optimizers.1.learning_rate=[" + ", ".join(["a"] * 20000) + "]"),
        ["optimizers.1.learning_rate: "],
    ),
    Case("huge-file", RUN, ["c.yaml", "larger than"], config=BASE + "#" * (17 * 2**20) + "\n"),
    # --- finding 5b: --out where no directory can be made ----------------------------------
    Case("out-is-file", ["run", "{cfg}", "--out", "{file}", "--no-progress"], ["--out: "]),
    Case("out-under-file", ["run", "{cfg}", "--out", "{file}/sub", "--no-progress"], ["--out: "]),
    # --- the other commands ---------------------------------------------------------------
    Case("show-missing", ["show", "{out}"], ["no such run directory"]),
    Case("plot-missing", ["plot", "{out}"], ["no such run directory"]),
    Case("resume-not-a-run", ["run", "--resume", "{out}/.."], ["not a gdkit run directory"]),
    Case("resume-with-config", ["run", "{cfg}", "--resume", "{out}"], ["--resume takes"]),
    Case("check-grad-name", ["check-grad", "rosenbrok"], ["did you mean 'rosenbrock'"]),
    Case("check-grad-at", ["check-grad", "rosenbrock", "--at", "1,a"], ["--at: expected"]),
    Case("check-grad-dim", ["check-grad", "rosenbrock", "--at", "1,2,3"], ["takes 2 coordinates"]),
]


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes): what 'nothing written' compares."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _cli(argv: list[str], capsys) -> tuple[int, str, str, list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def _assert_one_line(code: int, out: str, err: str, expect_code: int, message: list[str]):
    assert code == expect_code, err
    assert "Traceback" not in out + err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) < 400, lines[0][:2000]
    for m in message:
        assert m in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    (cfg.write_bytes if isinstance(case.config, bytes) else cfg.write_text)(case.config)
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "runs"
    before = _tree(tmp_path)
    argv = [
        a.replace("{cfg}", str(cfg))
        .replace("{out}", str(out))
        .replace("{file}", str(tmp_path / "file"))
        for a in case.argv
    ]
    code, stdout, err, runtime_warnings = _cli(argv, capsys)
    _assert_one_line(code, stdout, err, case.code, case.message)
    assert not runtime_warnings, [str(w.message) for w in runtime_warnings]
    assert not out.exists()
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (errno.EROFS, 2, ["--out: ", "Read-only file system"]),
        (errno.ENOSPC, 1, ["No space left on device", "cannot make a run directory"]),
    ],
    ids=["read-only", "disk-full"],
)
def test_out_that_cannot_be_made(tmp_path, capsys, monkeypatch, error, code, message):
    """A read-only file system (simulated: we are root here, so permissions would not stop
    us) is bad input; a full disk is the machine running out."""
    (tmp_path / "c.yaml").write_text(TINY)

    def refuse(self, *args, **kwargs):
        raise OSError(error, os.strerror(error), str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    argv = ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]
    got, out, err, _ = _cli(argv, capsys)
    _assert_one_line(got, out, err, code, message)
    assert not (tmp_path / "r").exists()


def test_the_entry_point_exits_2_without_a_traceback(tmp_path):
    (tmp_path / "c.yaml").write_text(BASE + "steps: 5\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdkit",
            "run",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "duplicate key 'steps'" in proc.stderr
    assert not (tmp_path / "r").exists()


# --- out of memory, full disk: exit 1, one line, the directory incomplete and resumable ----


def _tiny(tmp_path) -> pathlib.Path:
    (tmp_path / "c.yaml").write_text(TINY)
    return tmp_path / "c.yaml"


def _only_run_dir(out: pathlib.Path) -> pathlib.Path:
    (run_dir,) = out.iterdir()
    return run_dir


def _fail_second_sweep(monkeypatch, exc: BaseException):
    """The second sweep of the run raises `exc` (the first finishes and is saved)."""
    # The module (gdkit.sweep is also the function); gdkit loads it on first use.
    engine = importlib.import_module("gdkit.engine.sweep")
    real, calls = engine.sweep, []

    def sweep(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "sweep", sweep)


def _resume_completes(run_dir: pathlib.Path, capsys, monkeypatch):
    monkeypatch.undo()
    code, _out, err, _ = _cli(["run", "--resume", str(run_dir), "--no-progress"], capsys)
    assert code == 0, err
    assert rundir.is_complete(run_dir)
    assert len(rundir.load_results(run_dir)) == 2


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (MemoryError(), "out of memory"),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 9 GB"), "out of memory"),
    ],
    ids=["memory", "disk", "device-memory"],
)
def test_running_out_exits_1_and_leaves_a_resumable_directory(
    tmp_path, capsys, monkeypatch, exc, message
):
    out = tmp_path / "runs"
    _fail_second_sweep(monkeypatch, exc)
    code, stdout, err, _ = _cli(
        ["run", str(_tiny(tmp_path)), "--out", str(out), "--no-progress"], capsys
    )
    _assert_one_line(code, stdout, err, 1, [message, "--resume"])
    run_dir = _only_run_dir(out)
    assert not rundir.is_complete(run_dir)
    assert len(list((run_dir / "results").glob("*.npz"))) == 1
    assert not [p for p in run_dir.rglob(".*tmp*")]  # no temporary file left behind
    _resume_completes(run_dir, capsys, monkeypatch)


def test_a_full_disk_while_saving_a_result_or_the_tables(tmp_path, capsys, monkeypatch):
    from gdkit.result import SweepResult

    out = tmp_path / "runs"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SweepResult, "save", full)
    code, stdout, err, _ = _cli(
        ["run", str(_tiny(tmp_path)), "--out", str(out), "--no-progress"], capsys
    )
    _assert_one_line(code, stdout, err, 1, ["No space left on device", "--resume"])
    run_dir = _only_run_dir(out)
    monkeypatch.undo()
    monkeypatch.setattr(rundir, "write_runs_csv", full)
    code, stdout, err, _ = _cli(["run", "--resume", str(run_dir), "--no-progress"], capsys)
    _assert_one_line(code, stdout, err, 1, ["No space left on device", "--resume"])
    assert not rundir.is_complete(run_dir)
    _resume_completes(run_dir, capsys, monkeypatch)


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    _fail_second_sweep(monkeypatch, MemoryError())
    code = main(
        ["--debug", "run", str(_tiny(tmp_path)), "--out", str(tmp_path / "r"), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "MemoryError" in err


# --- finding 6: damaged or contested run directories -------------------------------------


@pytest.fixture
def interrupted(tmp_path, capsys, monkeypatch):
    """A run stopped in its second sweep right after a checkpoint was saved: results/ holds
    the first sweep, checkpoints/01.npz the second one's progress."""
    return _interrupt(_tiny(tmp_path), tmp_path / "runs", capsys, monkeypatch)


def _interrupt(config: pathlib.Path, out: pathlib.Path, capsys, monkeypatch) -> pathlib.Path:
    from gdkit import Checkpoint

    real = Checkpoint.save

    def save_then_stop(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.path.name == "01.npz":
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    code = main(["run", str(config), "--out", str(out), "--no-progress"])
    assert code == 130
    monkeypatch.undo()
    capsys.readouterr()
    run_dir = _only_run_dir(out)
    assert (run_dir / "checkpoints" / "01.npz").is_file()
    return run_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's runs.csv."""
    tmp = tmp_path_factory.mktemp("ref")
    (tmp / "c.yaml").write_text(TINY)
    assert main(["run", str(tmp / "c.yaml"), "--out", str(tmp / "r"), "--no-progress"]) == 0
    return (_only_run_dir(tmp / "r") / "runs.csv").read_text()


def _damage(path: pathlib.Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flipped":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"garbage")


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_a_damaged_checkpoint_is_reported_and_discarded(interrupted, reference, capsys, how):
    ck = interrupted / "checkpoints" / "01.npz"
    _damage(ck, how)
    code, _out, err, _ = _cli(["run", "--resume", str(interrupted), "--no-progress"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "checkpoint" in x]
    assert "damaged" in line and "01.npz" in line
    assert (interrupted / "runs.csv").read_text() == reference  # the sweep ran from its start


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_a_damaged_result_is_named_by_show_and_plot_and_rerun_by_resume(
    tmp_path, reference, capsys, how
):
    out = tmp_path / "runs"
    assert main(["run", str(_tiny(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    run_dir = _only_run_dir(out)
    (first, _) = sorted((run_dir / "results").glob("*.npz"))
    _damage(first, how)
    capsys.readouterr()
    before = _tree(run_dir)
    for cmd in ("show", "plot"):
        code, stdout, err, _ = _cli([cmd, str(run_dir)], capsys)
        _assert_one_line(code, stdout, err, 2, [first.name, "damaged", "--resume"])
    assert _tree(run_dir) == before
    code, stdout, err, _ = _cli(["run", "--resume", str(run_dir), "--no-progress"], capsys)
    assert code == 0, err
    (line,) = [x for x in err.splitlines() if first.name in x]
    assert "damaged" in line
    assert (run_dir / "runs.csv").read_text() == reference
    assert main(["show", str(run_dir)]) == 0


def test_resume_refuses_a_directory_another_run_holds(interrupted, capsys):
    fd = os.open(interrupted, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = _tree(interrupted)
        code, out, err, _ = _cli(["run", "--resume", str(interrupted), "--no-progress"], capsys)
        _assert_one_line(code, out, err, 2, ["--resume: ", "another gdkit run"])
        assert _tree(interrupted) == before
    finally:
        os.close(fd)


SLOW_RESUME = """
import sys, time
import gdkit.engine.sweep as engine  # loaded by the first sweep otherwise (lazily)
import gdkit.experiments.cli
real = engine.sweep
def sweep(*args, **kwargs):  # a sweep that takes a while: the other process comes meanwhile
    time.sleep(8)
    return real(*args, **kwargs)
engine.sweep = sweep
sys.exit(gdkit.experiments.cli.main(["run", "--resume", sys.argv[1], "--no-progress"]))
"""


@pytest.mark.slow
def test_two_resumes_at_once_the_second_is_refused(interrupted):
    """Two real processes: while the first resumes the directory, the second is refused (it
    used to crash on the first one's temporary file), and the first completes it."""
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_RESUME, str(interrupted)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in first.stdout:  # the lock is held from before this line on
        if line.startswith("run directory:"):
            break
    before = {k: v for k, v in _tree(interrupted).items() if not k.startswith("checkpoints")}
    second = subprocess.run(
        [sys.executable, "-m", "gdkit", "run", "--resume", str(interrupted), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert first.poll() is None, "the first resume ended before the second began"
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert "another gdkit run" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert rundir.is_complete(interrupted)
    after = _tree(interrupted)
    assert all(after[k] == v for k, v in before.items())  # the second wrote nothing


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("steps: 40", "steps: 60"), "steps: 40 -> 60"),
        (
            ("learning_rate: [0.01, 0.1]", "learning_rate: [0.01, 0.2]"),
            "optimizers.1.learning_rate",
        ),
    ],
    ids=["steps", "learning-rate"],
)
def test_resume_refuses_an_edited_config(interrupted, capsys, edit, message):
    path = interrupted / "config.yaml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(*edit))
    before = _tree(interrupted)
    code, out, err, _ = _cli(["run", "--resume", str(interrupted), "--no-progress"], capsys)
    _assert_one_line(code, out, err, 2, ["--resume: ", "config.yaml", "edited", message])
    assert _tree(interrupted) == before


DATA = "x1,x2,y\n0,1,4\n1,0,5\n1,1,6.5\n2,1,8\n0,2,5.2\n"


@pytest.mark.parametrize("edit", ["changed", "is missing"])
def test_resume_refuses_data_that_changed_since_the_run_began(tmp_path, capsys, monkeypatch, edit):
    """A data objective's CSV file is part of what a run computed from: a resume after it was
    edited (or removed) would finish the run's sweeps on other data than its first ones."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "data.csv").write_text(DATA)
    text = TINY.replace(
        "{name: rosenbrock}",
        "{name: linear_regression, csv: data.csv, features: [x1, x2], target: y}",
    )
    (folder / "c.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # not the config's folder: its csv path is relative to it
    run_dir = _interrupt(folder / "c.yaml", tmp_path / "runs", capsys, monkeypatch)
    assert str(folder / "data.csv") in (run_dir / "config.yaml").read_text()
    if edit == "changed":
        (folder / "data.csv").write_text(DATA.replace("6.5", "6.6"))
    else:
        (folder / "data.csv").unlink()
    before = _tree(run_dir)
    code, out, err, _ = _cli(["run", "--resume", str(run_dir), "--no-progress"], capsys)
    _assert_one_line(code, out, err, 2, ["--resume: ", f"{folder / 'data.csv'} {edit}", "data"])
    assert _tree(run_dir) == before
    if edit == "changed":  # put back as it was, the run resumes
        (folder / "data.csv").write_text(DATA)
        code, out, err, _ = _cli(["run", "--resume", str(run_dir), "--no-progress"], capsys)
        assert code == 0, err
        assert rundir.is_complete(run_dir)


def test_an_undamaged_resume_gives_the_uninterrupted_numbers(interrupted, reference, capsys):
    """The ordinary resume (no damage, no contention, no edit) ends with the same numbers."""
    code, _out, err, _ = _cli(["run", "--resume", str(interrupted), "--no-progress"], capsys)
    assert code == 0, err
    assert (interrupted / "runs.csv").read_text() == reference
    np.testing.assert_equal(len(rundir.load_results(interrupted)), 2)


def test_a_resumed_sweep_counts_the_run_time_before_the_interruption_once(interrupted, capsys):
    """The resumed sweep's run_time (meta.json, the time axis of the loss plot) includes what
    ran before the interruption, as its checkpoint recorded it; this run's own phases do not."""
    ck = interrupted / "checkpoints" / "01.npz"
    with np.load(ck) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["__meta__"]))
    assert header["run_time"] > 0
    header["run_time"] = 1000.0  # as if the part before the interruption had taken that long
    arrays["__meta__"] = np.array(json.dumps(header))
    with open(ck, "wb") as f:
        np.savez(f, **arrays)
    code, _out, err, _ = _cli(["run", "--resume", str(interrupted), "--no-progress"], capsys)
    assert code == 0, err
    meta = json.loads((interrupted / "meta.json").read_text())
    assert meta["sweeps"][1]["run_time"] > 1000.0 > meta["sweeps"][0]["run_time"]
    timings = meta["timings"]
    assert timings["run"] < timings["wall"] < 1000.0 and min(timings.values()) >= 0


def test_the_size_check_counts_what_the_engine_plans(tmp_path):
    """The up-front memory check (from the config's counts alone) agrees with the engine's own
    plan (`gdkit.sweep.plan`, what --dry-run prints) on lanes and host memory, sweep by sweep."""
    from gdkit.engine.sweep import plan
    from gdkit.experiments import config, experiment
    from gdkit.experiments import footprint as _footprint

    (tmp_path / "c.yaml").write_text(BASE)
    cfg = config.load(
        tmp_path / "c.yaml",
        ["starts={kind: grid, n: 3}", "seeds=2", "record_every=7", "objectives.0.steps=50"],
    )
    jobs = experiment.plan(cfg)
    dims = [config.build_objective(s).dim for s in cfg.objectives]
    sweeps = _footprint.footprints(cfg, dims)
    assert len(sweeps) == len(jobs) == 4
    for job, f in zip(jobs, sweeps, strict=True):
        p = plan(**experiment.sweep_arguments(cfg, job))
        assert (f.lanes, f.host_bytes) == (p.lanes, p.host_bytes)


def test_a_run_an_older_gdkit_began_resumes(interrupted, reference, tmp_path, capsys):
    """A run directory recorded before a config key existed (`engine`, and `plots` as a plain
    list) is no edited config: the newer gdkit resumes it to the same numbers."""
    old = tmp_path / "old"
    shutil.copytree(interrupted, old)
    created = old / rundir.CREATED
    record = json.loads(created.read_text())
    assert record.pop("engine") == "auto"
    if isinstance(record.get("plots"), dict):
        record["plots"] = record["plots"]["kinds"]
    created.write_text(json.dumps(record))
    code, _out, err, _ = _cli(["run", "--resume", str(old), "--no-progress"], capsys)
    assert code == 0, err
    assert (old / "runs.csv").read_text() == reference
