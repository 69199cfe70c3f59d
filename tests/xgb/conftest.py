"""Small synthetic data sets for the XGBoost tests (seconds of real training each).

Tests get :func:`tripwire.kit.data.tabular` through the ``data`` fixture: ``n`` rows of
``features`` standard-normal columns; the target depends on the first ``informative`` of them
(plus ``noise``); every other column is pure noise.
"""

from __future__ import annotations

import pytest

from tripwire.kit.data import tabular


@pytest.fixture()
def data():
    """The :func:`tripwire.kit.data.tabular` function, for tests to draw the data they need."""
    return tabular
