"""The docstring examples of tripwire.report (left out of the framework-free doctest run: they need plotly)."""

import doctest
import importlib
import pkgutil

import pytest

import tripwire.report


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(tripwire.report.__path__,
                                                                               "tripwire.report.")))
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_package_docstring_example():
    assert doctest.testmod(tripwire.report).failed == 0
