"""A config is data: it never imports or calls code unless the user allows it (`--allow-import`),
and even then only objectives the user marked as such (issue 14, finding 0).

Every attack here aims at a harmless target in tmp_path: a directory that `shutil:rmtree` would
delete, a marker file that `subprocess:run` or an import-time side effect would write.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import pytest
import yaml

from gdkit import objectives
from gdkit.experiments import rundir
from gdkit.experiments.cli import main

TINY = {
    "name": "tiny",
    "objectives": [{"name": "rosenbrock"}],
    "optimizers": [{"name": "gd", "learning_rate": 0.001}],
    "steps": 3,
    "plots": ["loss"],
}

# A module with a side effect at import time, and objectives marked, unmarked and dangerous.
PROBE = """
import pathlib
pathlib.Path({mark!r}).write_text("imported")

import jax.numpy as jnp
from gdkit import objectives
from gdkit.experiments import rundir


def plain(x):
    return jnp.sum((x - 1.0) ** 2)


@objectives.objective(dim=2, minima=[([1.0, 1.0], 0.0)])
def bowl(x):
    return jnp.sum((x - 1.0) ** 2)


@objectives.objective_factory
def shifted(shift: float = 1.0, dim: int = 2) -> objectives.Objective:
    return objectives.wrap(
        lambda x: jnp.sum((x - shift) ** 2), dim=dim, minima=[([shift] * dim, 0.0)]
    )


@objectives.objective_factory
def not_an_objective(path: str = "."):
    return path
"""


@pytest.fixture
def victim(tmp_path):
    """A directory with a file in it, that an attack would delete."""
    path = tmp_path / "victim"
    path.mkdir()
    (path / "precious.txt").write_text("keep me")
    return path


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """(module name, marker path): a module on sys.path and PYTHONPATH that writes the marker
    file when it is imported."""
    name = f"gdkit_probe_{os.urandom(4).hex()}"
    folder = tmp_path / "pymods"
    folder.mkdir()
    mark = tmp_path / "imported.txt"
    (folder / f"{name}.py").write_text(PROBE.format(mark=str(mark)))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    )
    yield name, mark
    sys.modules.pop(name, None)


def _attacks(victim, tmp_path) -> dict[str, dict]:
    """Objective entries that delete `victim` or write tmp_path/ran.txt when called."""
    ran = tmp_path / "ran.txt"
    return {
        "rmtree": {"name": "shutil:rmtree", "path": str(victim)},
        "subprocess": {
            "name": "subprocess:run",
            "args": [sys.executable, "-c", f"open({str(ran)!r}, 'w').write('ran')"],
        },
    }


def _unharmed(victim, tmp_path) -> None:
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "ran.txt").exists()


def _config(tmp_path, objective: dict, **changes) -> str:
    raw = {**TINY, "objectives": [objective], **changes}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _main(argv) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


def _one_line_refusal(capsys, key: str = "objectives.0.name") -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert key in err and "--allow-import" in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete run directory of TINY (for show/plot) and an incomplete one (for --resume)."""
    tmp = tmp_path_factory.mktemp("finished")
    (tmp / "c.yaml").write_text(yaml.safe_dump(TINY))
    assert _main(["run", str(tmp / "c.yaml"), "--out", str(tmp / "runs"), "--no-progress"]) == 0
    (complete,) = (tmp / "runs").iterdir()
    return complete


def _sent_to_you(finished, tmp_path, objective: dict, complete: bool = True):
    """A run directory whose config.yaml names `objective`: an interrupted one as `gdkit run`
    creates it, or a copy of a finished one with its config.yaml edited."""
    raw = {**TINY, "objectives": [objective]}
    if not complete:
        return rundir.create(tmp_path / "sent", "tiny", yaml.safe_dump(raw))
    run_dir = tmp_path / "sent"
    shutil.copytree(finished, run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(raw))
    return run_dir


# -- without --allow-import: refused at the config boundary, nothing called or imported ----------


@pytest.mark.parametrize("attack", ["rmtree", "subprocess"])
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_run_refuses_an_import_path_and_calls_nothing(tmp_path, victim, capsys, attack, dry):
    out = tmp_path / "runs"
    cfg = _config(tmp_path, _attacks(victim, tmp_path)[attack])
    argv = ["run", cfg, "--out", str(out), "--no-progress", *(["--dry-run"] * dry)]
    assert _main(argv) == 2
    _unharmed(victim, tmp_path)
    _one_line_refusal(capsys)
    assert not out.exists()


def test_an_override_cannot_smuggle_an_import_path_in(tmp_path, victim, capsys):
    out = tmp_path / "runs"
    cfg = _config(tmp_path, {"name": "rosenbrock"})
    argv = ["run", cfg, "--out", str(out), "--set", "objectives.0.name=shutil:rmtree"]
    argv += ["--set", f"objectives.0.path={victim}"]
    assert _main(argv) == 2
    _unharmed(victim, tmp_path)
    _one_line_refusal(capsys)
    assert not out.exists()


@pytest.mark.parametrize("attack", ["rmtree", "subprocess"])
def test_resume_of_a_directory_someone_sent_calls_nothing(
    finished, tmp_path, victim, capsys, attack
):
    run_dir = _sent_to_you(finished, tmp_path, _attacks(victim, tmp_path)[attack], complete=False)
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert _main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    _unharmed(victim, tmp_path)
    _one_line_refusal(capsys)
    assert sorted(p.name for p in run_dir.rglob("*")) == before


@pytest.mark.parametrize("attack", ["rmtree", "subprocess"])
def test_plot_of_a_directory_someone_sent_calls_nothing(finished, tmp_path, victim, capsys, attack):
    run_dir = _sent_to_you(finished, tmp_path, _attacks(victim, tmp_path)[attack])
    shutil.rmtree(run_dir / "plots")
    assert _main(["plot", str(run_dir), "--kinds", "loss"]) == 2
    _unharmed(victim, tmp_path)
    _one_line_refusal(capsys)
    assert not (run_dir / "plots").exists()


@pytest.mark.parametrize("attack", ["rmtree", "subprocess"])
def test_show_of_a_directory_someone_sent_calls_nothing(finished, tmp_path, victim, attack):
    run_dir = _sent_to_you(finished, tmp_path, _attacks(victim, tmp_path)[attack])
    assert _main(["show", str(run_dir)]) == 0  # the table needs no objective
    _unharmed(victim, tmp_path)


@pytest.mark.parametrize("how", ["run", "dry-run", "resume", "plot", "show"])
def test_nothing_is_imported_without_allow_import(finished, tmp_path, probe, capsys, how):
    name, mark = probe
    objective = {"name": f"{name}:bowl"}
    if how in ("run", "dry-run"):
        argv = ["run", _config(tmp_path, objective), "--out", str(tmp_path / "runs")]
        argv += ["--dry-run"] * (how == "dry-run")
    elif how == "resume":
        argv = ["run", "--resume", str(_sent_to_you(finished, tmp_path, objective, False))]
    else:
        argv = [how, str(_sent_to_you(finished, tmp_path, objective))]
    assert _main(argv) == (0 if how == "show" else 2)
    assert not mark.exists() and name not in sys.modules
    if how != "show":
        _one_line_refusal(capsys)
    assert not (tmp_path / "runs").exists()


def test_nothing_is_imported_in_a_fresh_process(tmp_path, probe):
    """The module is on PYTHONPATH, so a plain `import` would find it."""
    name, mark = probe
    cfg = _config(tmp_path, {"name": f"{name}:bowl"})
    proc = subprocess.run(
        [sys.executable, "-m", "gdkit", "run", cfg, "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "objectives.0.name" in proc.stderr and "--allow-import" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not mark.exists()


# -- with --allow-import: only an Objective or a marked function, never an arbitrary call --------


@pytest.mark.parametrize("attack", ["rmtree", "subprocess"])
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_allow_import_still_never_calls_an_arbitrary_callable(
    tmp_path, victim, capsys, attack, dry
):
    out = tmp_path / "runs"
    cfg = _config(tmp_path, _attacks(victim, tmp_path)[attack])
    argv = ["run", cfg, "--allow-import", "--out", str(out), *(["--dry-run"] * dry)]
    assert _main(argv) == 2
    _unharmed(victim, tmp_path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "objectives.0.name" in err and "not an Objective" in err
    assert not out.exists()


def test_allow_import_refuses_an_unmarked_function(tmp_path, probe, capsys):
    name, _ = probe
    cfg = _config(tmp_path, {"name": f"{name}:plain", "dim": 2})
    out = tmp_path / "runs"
    assert _main(["run", cfg, "--allow-import", "--dry-run", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"objectives.0.name: '{name}:plain' is a function" in err and "@" in err
    assert err.count("\n") == 1


def test_allow_import_runs_marked_objectives(tmp_path, probe):
    name, mark = probe
    raw = {
        **TINY,
        "objectives": [{"name": f"{name}:shifted", "shift": 3.0}],  # bowl: the resume test
        "tol": 1e-3,
        "steps": 100,
        "optimizers": [{"name": "gd", "learning_rate": 0.1}],
        "plots": [],  # drawn by `gdkit plot` below
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs"
    argv = ["run", str(tmp_path / "c.yaml"), "--allow-import", "--out", str(out), "--no-progress"]
    assert _main(argv) == 0
    assert mark.exists()
    (run_dir,) = out.iterdir()
    (row,) = csv.DictReader(io.StringIO((run_dir / "runs.csv").read_text()))
    # f = |x - 3|^2 from x0 = the centre of the box (0, 0): gd at 0.1 contracts x - 3 by 0.8 a
    # step, to f = 18 * 0.64^100 ~ 1e-18 after 100 steps: converged, at (3, 3).
    assert row["status"] == "converged", row
    assert abs(float(row["final_x_0"]) - 3.0) < 1e-3 and abs(float(row["final_x_1"]) - 3.0) < 1e-3
    # Show and plot of the directory import only when allowed again.
    sys.modules.pop(name, None)
    mark.unlink()
    assert _main(["plot", str(run_dir), "--kinds", "loss"]) == 2 and not mark.exists()
    assert _main(["plot", str(run_dir), "--kinds", "loss", "--allow-import"]) == 0
    assert mark.exists()


def test_a_marked_factory_takes_only_its_declared_parameters(tmp_path, probe, capsys):
    name, _ = probe
    cfg = _config(tmp_path, {"name": f"{name}:shifted", "shift": 2.0, "path": "/"})
    assert _main(["run", cfg, "--allow-import", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"objectives.0.path: objective '{name}:shifted' has no parameter 'path'" in err
    assert "parameters: shift, dim" in err and err.count("\n") == 1, err


def test_a_marked_factory_must_return_an_objective(tmp_path, probe, capsys):
    name, _ = probe
    cfg = _config(tmp_path, {"name": f"{name}:not_an_objective"})
    assert _main(["run", cfg, "--allow-import", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "objectives.0" in err and "returned str, not an Objective" in err


def test_resume_with_allow_import_imports(finished, tmp_path, probe):
    name, mark = probe
    run_dir = _sent_to_you(finished, tmp_path, {"name": f"{name}:bowl"}, complete=False)
    assert _main(["run", "--resume", str(run_dir), "--no-progress", "--allow-import"]) == 0
    assert mark.exists() and (run_dir / "meta.json").is_file()


# -- the Python API: the caller's own code may import, but calls only marked functions ------------


def test_get_never_calls_an_arbitrary_callable(tmp_path, victim):
    attacks = _attacks(victim, tmp_path)
    for attack in attacks.values():
        params = {k: v for k, v in attack.items() if k != "name"}
        with pytest.raises(ValueError, match="not an Objective"):
            objectives.get(attack["name"], **params)
    _unharmed(victim, tmp_path)


def test_get_accepts_objectives_and_marked_functions(probe):
    name, _ = probe
    bowl = objectives.get(f"{name}:bowl")
    assert isinstance(bowl, objectives.Objective) and bowl.dim == 2 and bowl.f_min == 0.0
    assert float(bowl(jnp.ones(2))) == 0.0
    shifted = objectives.get(f"{name}:shifted", shift=3.0, dim=3)
    assert shifted.minima[0].x.tolist() == [3.0, 3.0, 3.0]
    with pytest.raises(ValueError, match=r"has no parameter 'path'.*parameters: shift, dim"):
        objectives.get(f"{name}:shifted", path="/")
    with pytest.raises(ValueError, match="has no parameter 'dim'"):
        objectives.get(f"{name}:bowl", dim=3)
    with pytest.raises(ValueError, match=r"is a function, not an Objective.*@"):
        objectives.get(f"{name}:plain", dim=2)


def test_objective_factory_refuses_undeclared_keywords_at_marking_time():
    with pytest.raises(TypeError, match=r"\*\*kwargs"):

        @objectives.objective_factory
        def anything(**kwargs):
            return kwargs


# -- other ways a config could run code ----------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {ran}']",
        "!!python/object/new:subprocess.Popen [['touch', '{ran}']]",
        "!!python/name:os.system",
    ],
)
def test_yaml_python_tags_are_refused(tmp_path, capsys, tag):
    ran = tmp_path / "ran.txt"
    text = yaml.safe_dump(TINY).replace("name: tiny", f"name: {tag.format(ran=ran)}")
    (tmp_path / "c.yaml").write_text(text)
    assert _main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "malformed YAML" in err and err.count("\n") == 1
    assert not ran.exists() and not (tmp_path / "runs").exists()


def test_the_readme_says_configs_import_only_when_allowed():
    import pathlib

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    text = " ".join(readme.split())
    assert "--allow-import" in text
    assert "objective_factory" in text


def test_an_override_cannot_hold_a_yaml_python_tag(tmp_path, capsys):
    ran = tmp_path / "ran.txt"
    cfg = _config(tmp_path, {"name": "rosenbrock"})
    tag = f"!!python/object/apply:os.system ['touch {ran}']"
    assert _main(["run", cfg, "--out", str(tmp_path / "runs"), "--set", f"steps={tag}"]) == 2
    err = capsys.readouterr().err
    assert "--set steps" in err and "malformed YAML" in err and err.count("\n") == 1
    assert not ran.exists() and not (tmp_path / "runs").exists()


class _Unpickled:
    """Writes a file when unpickled: what a pickled array in a result file could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_a_result_file_is_never_unpickled(finished, tmp_path, capsys):
    import numpy as np

    ran = tmp_path / "ran.txt"
    run_dir = tmp_path / "sent"
    shutil.copytree(finished, run_dir)
    (result,) = (run_dir / "results").iterdir()
    with np.load(result) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["final_loss"] = np.array([_Unpickled(ran)], dtype=object)
    with open(result, "wb") as f:
        np.savez(f, **arrays)
    assert _main(["show", str(run_dir)]) == 2
    assert _main(["plot", str(run_dir)]) == 2
    assert not ran.exists()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_csv_path_at_a_pipe_is_refused_not_waited_on(tmp_path):
    """`csv:` names a data file; a named pipe (or /dev/zero) would block or fill memory."""
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    cfg = _config(tmp_path, {"name": "linear_regression", "csv": str(fifo)})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gdkit", "run", cfg, "--dry-run"],
            capture_output=True,
            text=True,
            timeout=120,  # a watchdog: without the check, open() waits for a writer forever
        )
    except subprocess.TimeoutExpired:
        pytest.fail("gdkit waited on a named pipe given as csv:")
    assert proc.returncode == 2, proc.stderr
    assert f"objectives.0: {fifo}: not a regular file" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_plot_with_allow_import_of_a_module_not_here_is_one_line(finished, tmp_path, capsys):
    run_dir = _sent_to_you(finished, tmp_path, {"name": "gdkit_no_such_module_here:bowl"})
    assert _main(["plot", str(run_dir), "--kinds", "loss", "--allow-import"]) == 2
    err = capsys.readouterr().err
    assert "objectives.0.name: cannot import objective 'gdkit_no_such_module_here:bowl'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_dry_run_of_a_distributed_config_contacts_no_coordinator(tmp_path):
    """A config someone sent you cannot make `--dry-run` connect to a host it names: the
    dry run plans without starting JAX's distributed runtime (which would wait for the
    coordinator and the other processes)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: d\nobjectives: [{name: rosenbrock}]\noptimizers: [{name: gd}]\nsteps: 10\n"
        "distributed: {coordinator_address: '127.0.0.1:9', num_processes: 2, process_id: 0}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gdkit", "run", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 compiled sweeps" in proc.stdout
    assert not (tmp_path / "runs").exists()
