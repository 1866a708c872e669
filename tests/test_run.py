"""`gdkit run` end to end: the run directory, its reload, and bad input that writes nothing."""

import csv
import datetime
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from gdkit.experiments import rundir
from gdkit.experiments.cli import main
from gdkit.result import SweepResult

SMALL = """
name: small
objectives:
  - {name: rosenbrock}
  - {name: parabola}
optimizers:
  - {name: gd, learning_rate: {logspace: [-4, -1, 4]}}
  - {name: adam, learning_rate: [0.01, 0.1], b1: 0.8}
starts: {kind: uniform, n: 2, seed: 1}
steps: 300
tol: 1.0e-4
record_every: 10
plots: [loss]
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "small.yaml").write_text(SMALL)
    out = tmp / "runs"
    argv = [
        "run",
        str(tmp / "small.yaml"),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "steps=200",
    ]
    code, stdout = _main(argv)
    assert code == 0
    return pathlib.Path(stdout.strip().splitlines()[-1]), stdout


def _main(argv):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def test_last_line_is_the_run_directory(finished):
    path, _ = finished
    assert path.is_dir() and path.name.startswith("small-")
    for name in ("config.yaml", "meta.json", "runs.csv", "curves.npz", "summary.md"):
        assert (path / name).is_file(), name
    assert list((path / "plots").glob("loss-*.png"))
    assert not list(path.parent.glob(".*partial"))


def test_config_yaml_holds_the_overrides(finished):
    path, _ = finished
    assert "steps: 200" in (path / "config.yaml").read_text()


def test_runs_csv_is_one_row_per_lane_and_matches_the_results(finished):
    path, _ = finished
    with open(path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    results = rundir.load_results(path)
    assert len(rows) == sum(r.lanes for r in results) == 2 * (4 * 2 + 2 * 2)
    for col in (
        "objective",
        "optimizer",
        "learning_rate",
        "b1",
        "start",
        "x0_0",
        "final_loss",
        "best_loss",
        "gap",
        "steps_to_tol",
        "status",
        "final_x_0",
    ):
        assert col in rows[0], col
    # Every fixed hyperparameter is in the table: adam's b1 as given, gd's rows leave it empty.
    assert {r["b1"] for r in rows if r["optimizer"] == "adam"} == {"0.8"}
    # Rows follow the results lane by lane, exactly (floats are written round-trippably).
    flat = [row for r in results for row in r.rows()]
    for row, lane in zip(rows, flat, strict=True):
        assert np.float32(row["final_loss"]) == np.float32(lane["final_loss"])  # round-trips
        assert np.float32(row["final_x_0"]) == np.float32(lane["final_x_0"])
        assert row["status"] == lane["status"]
        assert float(row["learning_rate"]) == lane["learning_rate"]  # float64: all 17 digits
    # Only what the config and seeds determine: no wall times (the file is the same every run)
    assert "seconds_to_tol" not in rows[0]
    # The gap is to the known minimum: parabola's is 2.
    for row in rows:
        if row["objective"] == "parabola":
            assert float(row["gap"]) == pytest.approx(float(row["final_loss"]) - 2.0, abs=1e-6)


def test_curves_hold_the_thinned_histories(finished):
    path, _ = finished
    z = np.load(path / "curves.npz")
    assert z["loss"].shape == (24, 21) and z["step"].tolist() == list(range(0, 201, 10))
    np.testing.assert_array_equal(z["run_id"], np.arange(24))


def test_meta_records_versions_devices_and_times(finished):
    path, _ = finished
    meta = json.loads((path / "meta.json").read_text())
    for key in (
        "gdkit",
        "jax",
        "optax",
        "backend",
        "devices",
        "dtype",
        "compile_time",
        "run_time",
        "git_commit",
    ):
        assert key in meta, key
    assert meta["backend"] == "cpu" and meta["lanes"] == 24


def test_summary_names_each_pair(finished):
    path, stdout = finished
    text = (path / "summary.md").read_text()
    for pair in ("| rosenbrock | gd |", "| parabola | adam |"):
        assert pair in text
    assert "rosenbrock" in stdout


def test_show_and_plot_read_the_directory_back(finished, capsys):
    path, _ = finished
    assert main(["show", str(path)]) == 0
    assert "parabola" in capsys.readouterr().out
    (path / "plots" / "loss-parabola.png").unlink()
    assert main(["plot", str(path), "--kinds", "loss"]) == 0
    assert (path / "plots" / "loss-parabola.png").is_file()
    assert not (path / "plots" / "loss_time-parabola.png").exists()  # not drawn by default
    assert main(["plot", str(path), "--kinds", "loss_time"]) == 0
    assert (path / "plots" / "loss_time-parabola.png").is_file()


def test_results_round_trip(finished):
    path, _ = finished
    for f in sorted((path / "results").glob("*.npz")):
        r = SweepResult.load(f)
        r.save(f.with_suffix(".again.npz"))
        again = SweepResult.load(f.with_suffix(".again.npz"))
        np.testing.assert_array_equal(r.final_loss, again.final_loss)
        np.testing.assert_array_equal(r.status, again.status)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "optimizers.1.learning_rate=-0.1"], "optimizers.1.learning_rate: must be"),
        (["--set", "stepz=3"], "stepz: unknown key (did you mean 'steps'?)"),
        (["--set", "optimizers.0.name=adma"], "optimizers.0.name: unknown optimizer 'adma'"),
        (["--set", "objectives.0={expr: '__import__(\"os\")'}"], "call to '__import__'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, extra, message):
    (tmp_path / "c.yaml").write_text(SMALL)
    out = tmp_path / "runs"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_and_malformed_files_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    assert main(["run", str(tmp_path / "bad.yaml")]) == 2
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "malformed YAML" in err and "not a gdkit run directory" in err


def test_gpu_on_a_cpu_machine_is_an_error_not_a_silent_cpu_run(tmp_path):
    (tmp_path / "c.yaml").write_text(SMALL)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdkit",
            "run",
            str(tmp_path / "c.yaml"),
            "--platform",
            "gpu",
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": ""},
    )
    assert proc.returncode == 2, proc.stderr
    assert "platform: gpu" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_dry_run_plans_without_running(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(SMALL)
    assert main(["run", str(tmp_path / "c.yaml"), "--dry-run", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "4 compiled sweeps, 24 lanes" in out and "name: small" in out
    backend = "back end: xla_cpu (the devices are CPUs: cache-sized lane tiles, one device per"
    assert out.count(backend) == 1 and "engine: auto" in out
    assert not (tmp_path / "r").exists()


def test_a_run_directory_is_new_and_never_overwrites(tmp_path):
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    taken = tmp_path / "x-20260102-030405"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    path = rundir.create(tmp_path, "x", "name: x\n", now=now)
    assert path.name == "x-20260102-030405-2"
    assert (taken / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in path.iterdir()) == ["config.yaml", "results"]
    assert not rundir.is_complete(path)


def test_an_internal_error_exits_1_and_leaves_no_results(tmp_path, capsys, monkeypatch):
    from gdkit.experiments import experiment

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(experiment, "run", broken)
    (tmp_path / "c.yaml").write_text(SMALL)
    out = tmp_path / "runs"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "RuntimeError: boom" in err
    (run_dir,) = out.iterdir()  # only the resolved config: nothing poses as a result
    assert sorted(p.name for p in run_dir.iterdir()) == [".config.json", "config.yaml", "results"]
    assert main(["show", str(run_dir)]) == 2
    assert f"resume it with: gdkit run --resume {run_dir}" in capsys.readouterr().err


def test_tutorial_examples(tmp_path):
    """x^2 + y^2 from (3, 2): lr 0.4 and 0.1 converge in 50 steps, 0.01 has the closed-form gap
    13 (1 - 2 * 0.01)^100; the parabola likewise; the saddle diverges at every rate."""
    config = pathlib.Path(__file__).parents[1] / "configs" / "tutorial_examples.yaml"
    code, stdout = _main(
        ["run", str(config), "--out", str(tmp_path), "--no-progress", "--set", "plots=[]"]
    )
    assert code == 0
    path = pathlib.Path(stdout.strip().splitlines()[-1])
    with open(path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    bowl = {float(r["learning_rate"]): r for r in rows if r["objective"] == "x**2 + y**2"}
    assert bowl[0.4]["status"] == bowl[0.1]["status"] == "converged"
    assert bowl[0.01]["status"] == "max_steps"
    assert float(bowl[0.01]["gap"]) == pytest.approx(13 * (1 - 2 * 0.01) ** 100, rel=1e-4)
    parabola = {float(r["learning_rate"]): r for r in rows if r["objective"] == "parabola"}
    assert parabola[0.4]["status"] == parabola[0.1]["status"] == "converged"
    # From x = 4: x - 1 shrinks by (1 - 2 lr) per step, so the gap is 9 (1 - 2 lr)^100.
    assert float(parabola[0.01]["gap"]) == pytest.approx(9 * (1 - 2 * 0.01) ** 100, rel=1e-4)
    saddle = [r for r in rows if r["objective"] == "saddle"]
    assert len(saddle) == 3 and all(r["status"] == "diverged" for r in saddle)


KILLABLE = SMALL.replace("steps: 300", "steps: 3000\ncheckpoint_every: 0").replace(
    "{name: gd, learning_rate: {logspace: [-4, -1, 4]}}",
    "{name: gd, learning_rate: {logspace: [-4, -1, 4]}}\n  - {name: momentum, learning_rate: "
    "[0.001, 0.01]}\n  - {name: rmsprop, learning_rate: [0.001, 0.01]}",
)


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(tmp_path):
    """SIGKILL a run at a random moment after its first checkpoint (checkpoints after every
    chunk of steps here), resume it, and get the same numbers, bit for bit, as a run that was
    never interrupted."""
    import random
    import signal
    import time

    (tmp_path / "c.yaml").write_text(KILLABLE)
    cmd = [sys.executable, "-m", "gdkit", "run", str(tmp_path / "c.yaml"), "--no-progress"]
    whole = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    whole_dir = pathlib.Path(whole.stdout.strip().splitlines()[-1])

    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "b")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list((tmp_path / "b").glob("*/checkpoints/*.npz")) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = (tmp_path / "b").iterdir()
    assert not rundir.is_complete(killed)
    again = subprocess.run(
        [sys.executable, "-m", "gdkit", "run", "--resume", str(killed), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert pathlib.Path(again.stdout.strip().splitlines()[-1]) == killed
    assert (killed / "runs.csv").read_text() == (whole_dir / "runs.csv").read_text()
    a, b = np.load(whole_dir / "curves.npz"), np.load(killed / "curves.npz")
    np.testing.assert_array_equal(a["loss"], b["loss"])
    assert main(["run", "--resume", str(killed)]) == 2  # complete now: nothing to resume


def test_runs_csv_quotes_labels_with_commas(tmp_path):
    config = SMALL.replace("  - {name: parabola}", "  - {name: quadratic, dim: 3, seed: 2}")
    config = config.replace("  - {name: adam, learning_rate: [0.01, 0.1], b1: 0.8}\n", "")
    assert config.count("name: adam") == 0  # one optimizer: two sweeps are enough for labels
    (tmp_path / "c.yaml").write_text(config)
    code, stdout = _main(
        [
            "run",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path),
            "--no-progress",
            "--set",
            "plots=[]",
            "--set",
            "steps=20",
        ]
    )
    assert code == 0
    with open(pathlib.Path(stdout.strip().splitlines()[-1]) / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["objective"] for r in rows} == {"rosenbrock", "quadratic(dim=3, seed=2)"}
    assert all(r["status"] in ("converged", "max_steps", "diverged") for r in rows)


def test_ctrl_c_says_how_to_resume(tmp_path):
    import signal
    import time

    config = KILLABLE.replace("steps: 3000", "steps: 20000")
    (tmp_path / "c.yaml").write_text(config)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gdkit",
            "run",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "runs"),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("*/checkpoints/*.npz")) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert err.strip().splitlines()[-1] == (
        f"gdkit run: interrupted; resume with: gdkit run --resume {run_dir}"
    )
    assert not rundir.is_complete(run_dir)


def test_summary_warns_when_tol_is_below_float32_resolution(finished):
    path, _ = finished
    from gdkit.experiments.summary import summarize

    # parabola: f* = 2, float32 steps near 2 are 2.4e-7; tol = 1e-4 is far above them.
    assert not [
        w for r in rundir.load_results(path) for w in summarize(r).warnings if "float32 steps" in w
    ]
    r = rundir.load_results(path)[-1]
    r.tol = 1e-7
    (warning,) = [w for w in summarize(r).warnings if "float32 steps" in w]
    assert "0.4 float32 steps (2.4e-07 each near f* = 2)" in warning


def test_runs_parquet_holds_runs_csv_typed(finished):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path, _ = finished
    df = pd.read_parquet(path / "runs.parquet")
    with open(path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(df) == len(rows) and df.run_id.tolist() == [int(r["run_id"]) for r in rows]
    for got, row in zip(df.itertuples(), rows, strict=True):
        assert np.float32(got.final_loss) == np.float32(row["final_loss"])
        # a list as long as the objective's dimension (parabola 1, rosenbrock 2)
        cells = [row[c] for c in ("final_x_0", "final_x_1") if row[c]]
        assert [np.float32(v) for v in got.final_x] == [np.float32(c) for c in cells]
        assert list(got.x0) == [float(row[c]) for c in ("x0_0", "x0_1") if row[c]]
        assert got.status == row["status"] and got.objective == row["objective"]
        # no sentinel: a run that did not reach tol has no steps_to_tol
        assert pd.isna(got.steps_to_tol) == (row["steps_to_tol"] == "-1")
    assert df.final_loss.dtype == np.float32
    hp = df.columns.tolist()[3:8]  # the hyperparameters come together, after the names
    assert hp == ["learning_rate", "b1", "b2", "eps", "start"]
    nullable = pd.read_parquet(path / "runs.parquet", dtype_backend="numpy_nullable")
    assert str(nullable.steps_to_tol.dtype) == "Int64"
    reached = [int(r["steps_to_tol"]) for r in rows if r["steps_to_tol"] != "-1"]
    assert df.steps_to_tol.mean() == pytest.approx(np.mean(reached))
    assert df[df.optimizer == "adam"].b1.eq(0.8).all() and df[df.optimizer == "gd"].b1.isna().all()


def test_without_pyarrow_runs_csv_alone_with_a_note(finished, tmp_path, monkeypatch):
    import builtins

    path, _ = finished
    pairs = [({}, r) for r in rundir.load_results(path)]
    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    notes = rundir.finish(tmp_path, pairs, {"name": "x"})
    assert notes == ["runs.parquet not written: pyarrow is missing (pip install 'gdkit[data]')"]
    assert (tmp_path / "runs.csv").is_file() and not (tmp_path / "runs.parquet").exists()
    assert json.loads((tmp_path / "meta.json").read_text())["notes"] == notes
