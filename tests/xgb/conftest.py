"""Small synthetic data sets for the XGBoost tests (seconds of real training each).

``make_data`` draws ``n`` rows of ``features`` standard-normal columns; the target depends on
the first ``informative`` of them (plus ``noise``); every other column is pure noise. Tests get
it through the ``data`` fixture.
"""

from __future__ import annotations

import numpy as np
import pytest


def make_data(n: int = 2000, features: int = 10, informative: int = 10, noise: float = 0.3, seed: int = 0,
              classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): y is a class in range(classes) from a noisy linear score of the informative columns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    weights = np.linspace(1.0, 0.5, informative)
    score = X[:, :informative] @ weights / np.sqrt(informative) + noise * rng.normal(size=n)
    edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return X, np.searchsorted(edges, score).astype(np.int64)


@pytest.fixture()
def data():
    """The :func:`make_data` function, for tests to draw the data they need."""
    return make_data
