"""The docstring examples of the Keras modules run (they are documentation that must work)."""

import doctest
import importlib

import pytest

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

MODULES = [f"tripwire.callbacks.keras{name}" for name in ("", ".callback", ".activations", ".buffer", ".collector",
                                                          ".data", ".fallback", ".init", ".jax", ".math", ".optimizer",
                                                          ".params", ".spike", ".tensorboard")] + ["tripwire.kit.keras"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
