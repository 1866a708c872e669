"""The README is honest: its Python examples run and its set-up block has two commands."""

import pathlib
import re

README_PATH = pathlib.Path(__file__).parents[1] / "README.md"
README = README_PATH.read_text()


def test_python_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "24.2" in out


def test_exactly_two_setup_commands():
    setup = re.search(r"<!-- setup:begin -->(.*?)<!-- setup:end -->", README, flags=re.S)
    commands = [line for line in setup.group(1).splitlines() if line.startswith("pip ")]
    assert len(commands) == 2
    assert "pytest" in commands[1]
    # the dev extra brings what the test command's options need (-n: pytest-xdist)
    if " -n " in commands[1]:
        assert "pytest-xdist" in (README_PATH.parent / "pyproject.toml").read_text()
