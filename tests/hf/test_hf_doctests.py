"""The docstring examples of the Hugging Face Trainer adapter run (documentation that must work)."""

import doctest
import importlib

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")


@pytest.mark.parametrize("name", ["tripwire.transformers", "tripwire.callbacks.torch.hf_trainer"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
