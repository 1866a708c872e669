"""Every runnable example in a docstring runs and prints what it says (the docs stay honest)."""

import doctest
import importlib
import pkgutil

import pytest

import gdkit

SLOW = {"gdkit.optimizers.second_order", "gdkit.optimizers.ncg"}  # compile line searches


def _modules():
    for info in pkgutil.walk_packages(gdkit.__path__, prefix="gdkit."):
        name = info.name
        yield pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name


@pytest.mark.parametrize("name", list(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0
