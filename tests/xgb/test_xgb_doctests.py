"""The docstring examples of the XGBoost wing run (they are documentation that must work)."""

import doctest
import importlib

import pytest

pytestmark = pytest.mark.xgboost
pytest.importorskip("xgboost")

MODULES = ["", ".callback", ".evals", ".heldout", ".labels", ".trees"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tripwire.callbacks.xgboost{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
