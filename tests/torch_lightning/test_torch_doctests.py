"""The docstring examples of the torch wing and the Lightning faces run (documentation that must
work); the framework-free ``tripwire.callbacks.torch`` and its ``parts`` run in tests/test_doctests.py."""

import doctest
import importlib

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch")

MODULES = {  # module -> the package its examples need
    "tripwire.callbacks.torch.reductions": "torch",
    "tripwire.callbacks.torch.params": "torch",
    "tripwire.callbacks.torch.element_sample": "torch",
    "tripwire.callbacks.torch.activations": "torch",
    "tripwire.callbacks.torch.batch": "torch",
    "tripwire.callbacks.torch.packing": "torch",
    "tripwire.callbacks.torch.collector": "torch",
    "tripwire.callbacks.torch.driver": "torch",
    "tripwire.callbacks.torch.ranks": "torch",
    "tripwire.callbacks.torch.unwrap": "torch",
    "tripwire.callbacks.torch.spike": "torch",
    "tripwire.callbacks.torch.loop": "torch",
    "tripwire.torch": "torch",
    "tripwire.callbacks.lightning": "lightning",
    "tripwire.callbacks.pytorch_lightning": "pytorch_lightning",
    "tripwire.kit.torch": "torch",
    "tripwire.kit.lightning": "lightning",
}


@pytest.mark.parametrize("name, framework", MODULES.items())
def test_docstring_examples(name, framework):
    pytest.importorskip(framework)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
