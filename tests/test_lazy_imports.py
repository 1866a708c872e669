"""The command line's quick paths (help, list, a config error) never import JAX, and the
declarations they read (`gdkit._catalog`) agree with the registries."""

import inspect
import subprocess
import sys
import textwrap

import pytest

from gdkit import _catalog, objectives, optimizers

BAD_CONFIGS = {
    "schema": "name: bad\nsteps: 10\nobjectives: [{name: rosenbrock}]\n"
    "optimizers: [{name: adam}]\nstepz: 3\n",
    "optimizer": "name: bad\nsteps: 10\nobjectives: [{name: rosenbrock}]\n"
    "optimizers: [{name: adma}]\n",
    "objective": "name: bad\nsteps: 10\nobjectives: [{name: rosenbrok}]\n"
    "optimizers: [{name: adam}]\n",
    "hyperparameter": "name: bad\nsteps: 10\nobjectives: [{name: rosenbrock}]\n"
    "optimizers: [{name: adam, lrate: 0.1}]\n",
    "objective parameter": "name: bad\nsteps: 10\nobjectives: [{name: quadratic, dimm: 3}]\n"
    "optimizers: [{name: adam}]\n",
}


def _run_cli_in_fresh_process(argv: list[str]) -> tuple[int, list[str], str]:
    """(exit code, the heavy modules imported, stderr) of `gdkit ARGV` in a new interpreter."""
    code = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from gdkit.experiments.cli import main
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                rc = main({argv!r})
            except SystemExit as e:
                rc = e.code
        heavy = sorted(m for m in ("jax", "jaxlib", "optax") if m in sys.modules)
        print(json.dumps([rc, heavy, err.getvalue()]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    import json

    rc, heavy, err = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, heavy, err


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["list"],
        ["list", "optimizers"],
        ["run", "--help"],
        ["cache", "dir"],
    ],
)
def test_quick_commands_do_not_import_jax(argv):
    rc, heavy, _ = _run_cli_in_fresh_process(argv)
    assert rc == 0 and heavy == []


@pytest.mark.parametrize("kind", sorted(BAD_CONFIGS))
def test_a_config_error_is_reported_without_importing_jax(tmp_path, kind):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIGS[kind])
    rc, heavy, err = _run_cli_in_fresh_process(["run", str(path)])
    assert rc == 2 and heavy == [], err
    assert err.startswith("gdkit run: error: ") and err.count("\n") == 1
    want = {
        "schema": "stepz",
        "optimizer": "adma",
        "objective": "rosenbrok",
        "hyperparameter": "lrate",
        "objective parameter": "objectives.0.dimm: objective 'quadratic' has no parameter "
        "'dimm' (did you mean 'dim'?); parameters: A, b, c, dim, condition_number, seed",
    }
    assert want[kind] in err


def test_the_declarations_are_the_registries():
    assert [d.name for d in _catalog.objectives()] == objectives.names()
    for d, e in zip(_catalog.objectives(), objectives.entries(), strict=True):
        assert (d.name, d.description, d.params) == (e.name, e.description, e.params)
        assert e.factory.__module__ == d.module
    assert [d.name for d in _catalog.optimizers()] == optimizers.names()
    assert _catalog.optimizer_options() == optimizers.OPTIONS
    for d, e in zip(_catalog.optimizers(), optimizers.entries(), strict=True):
        assert (d.name, d.description, d.kind, d.params) == (
            e.name,
            e.description,
            e.kind,
            e.hparams,
        )
        assert _catalog.optimizer_keys(d) == [*e.hparams, *e.options]


def test_an_unknown_name_reads_as_the_registry_says_it():
    for what, get in (("objective", objectives.get), ("optimizer", optimizers.get)):
        for typo in ("rosenbrok", "adma", "zzz"):
            with pytest.raises(ValueError) as registry:
                get(typo)
            with pytest.raises(ValueError) as catalog:
                _catalog.find(what, typo)
            assert str(catalog.value) == str(registry.value)


def test_a_default_that_is_not_a_literal_is_evaluated_or_kept_as_text():
    ackley = _catalog.find("objective", "ackley")
    factory = next(e.factory for e in objectives.entries() if e.name == "ackley")
    assert ackley.params["c"] == inspect.signature(factory).parameters["c"].default
    assert repr(_catalog.Source("math.inf")) == "math.inf"


def test_gdkit_public_names_load_on_first_use():
    rc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gdkit; assert 'jax' not in sys.modules; "
            "assert set(gdkit.__all__) <= set(dir(gdkit)); "
            "assert gdkit.sweep.__module__ == 'gdkit.engine.sweep'; "
            "assert 'jax' in sys.modules and gdkit.optimizers.adam.__name__ == 'adam'",
        ],
        timeout=120,
    ).returncode
    assert rc == 0


def test_progress_on_a_pipe_leaves_no_blank_lines_or_control_codes():
    """`gdkit run` with its progress bar on, stdout a pipe: no bar, no escape codes, no blank
    lines; the last lines are the time split and the run directory."""
    code = textwrap.dedent(
        """
        import sys, tempfile
        from gdkit import sweep
        r = sweep("rosenbrock", "adam", grid={"learning_rate": [0.01, 0.1]}, steps=50,
                  tol=1e-6, progress="1/1 rosenbrock / adam")
        r = sweep("rosenbrock", "adam", grid={"learning_rate": [0.01, 0.1]}, steps=50,
                  tol=1e-6, progress=True)
        print("done")
        try:  # in the same process: one JAX start-up for both checks
            sweep("rosenbrock", "adam", grid={}, steps=5, tol=1e-6, progress=2)
        except (TypeError, ValueError) as e:
            print(e, file=sys.stderr)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout == "done\n" and "\x1b" not in out.stderr
    assert "progress must be True, False or a label (a string), got 2" in out.stderr
