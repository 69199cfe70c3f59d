"""The docstring examples of the Keras modules run (they are documentation that must work)."""

import doctest
import importlib

import pytest

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

MODULES = ["keras", "keras_activations", "keras_buffer", "keras_collector", "keras_data", "keras_fallback",
           "keras_init", "keras_jax", "keras_math", "keras_optimizer", "keras_params"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tripwire.callbacks.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
