"""The command line: exit codes, one-line errors, no tracebacks."""

import subprocess
import sys

import pytest

from gdkit.experiments.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("gdkit ")


def test_check_grad_at_the_classic_start(capsys):
    assert main(["check-grad", "rosenbrock", "--at", "-1.2,1", "--x64"]) == 0
    out = capsys.readouterr().out
    assert "-215.6" in out and "agree" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check-grad", "rosenbrok"], "did you mean 'rosenbrock'"),
        (["check-grad", "rosenbrock", "--at", "1,a"], "--at: expected comma-separated numbers"),
        (["check-grad", "rosenbrock", "--at", "1,2,3"], "takes 2 coordinates"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_list_shows_objectives_with_parameters():
    out = subprocess.run(
        [sys.executable, "-m", "gdkit", "list", "objectives"],
        capture_output=True,
        text=True,
        check=True,
        env=None,
    ).stdout
    assert "rosenbrock" in out and "condition_number" in out


@pytest.mark.parametrize("at", [["--at=-1.2,1"], ["--at", "-1.2,1"]])
def test_at_takes_a_negative_value_either_way(at, capsys):
    assert main(["check-grad", "rosenbrock", *at]) == 0
    assert "-215.6" in capsys.readouterr().out


def _help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_texts_say_what_each_command_takes(capsys):
    from gdkit.experiments.config import PLOTS, ExperimentConfig

    plot = _help(["plot"], capsys)
    assert all(kind in plot for kind in PLOTS) and "epochs" in plot
    assert "the objectives and the optimizers gdkit knows" in _help(["list"], capsys)
    run = _help(["run"], capsys)
    assert "Config keys:" in run and all(key in run for key in ExperimentConfig.model_fields)
    assert "report.html" in run
    assert "--open" in _help(["show"], capsys)
    top = _help([], capsys)
    assert "objectives and optimizers" in top
