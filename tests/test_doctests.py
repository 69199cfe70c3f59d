"""Run the docstring examples of every framework-free module (they are documentation that must work)."""

import doctest
import importlib
import pkgutil

import pytest

import tripwire

FRAMEWORK_PACKAGES = ("tripwire.callbacks", "tripwire.report", "tripwire.demo", "tripwire.torch",
                      "tripwire.transformers", "tripwire.kit.torch", "tripwire.kit.lightning",
                      "tripwire.kit.keras")
FRAMEWORK_FREE_CALLBACK_MODULES = ("tripwire.callbacks.no_gradient", "tripwire.callbacks.missing_framework",
                                   "tripwire.callbacks.torch", "tripwire.callbacks.torch.parts")


def framework_free_modules(package=tripwire):
    """The modules under ``package``, not descending into the framework packages (importing a
    wing such as ``tripwire.callbacks.keras`` imports its framework)."""
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name.startswith(FRAMEWORK_PACKAGES) or info.name == "tripwire.__main__":
            continue
        yield info.name
        if info.ispkg:
            yield from framework_free_modules(importlib.import_module(info.name))
    if package is tripwire:
        yield from FRAMEWORK_FREE_CALLBACK_MODULES


@pytest.mark.parametrize("name", sorted(framework_free_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
