"""Run the docstring examples of every framework-free module (they are documentation that must work)."""

import doctest
import importlib
import pkgutil

import pytest

import tripwire

FRAMEWORK_PACKAGES = ("tripwire.callbacks", "tripwire.report", "tripwire.demo")
FRAMEWORK_FREE_CALLBACK_MODULES = ("tripwire.callbacks.no_gradient", "tripwire.callbacks.missing_framework")


def framework_free_modules():
    for info in pkgutil.walk_packages(tripwire.__path__, "tripwire."):
        if not info.name.startswith(FRAMEWORK_PACKAGES) and info.name != "tripwire.__main__":
            yield info.name
    yield from FRAMEWORK_FREE_CALLBACK_MODULES


@pytest.mark.parametrize("name", sorted(framework_free_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
