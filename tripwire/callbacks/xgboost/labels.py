"""Class counts of the training labels handed to :class:`~tripwire.XGBoostTripwire` (``labels=``).

XGBoost callbacks never see the training DMatrix, so the labels come from the user. They are
counted once, when the callback is built, and only the counts are kept: the callback stays small
to pickle (the sklearn API clones it, dask sends it to every worker).

Example:
    >>> count_labels([0, 1, 1, 2.0])
    {'0': 1.0, '1': 2.0, '2': 1.0}
    >>> count_labels(["cat", "dog", "dog"])
    {'cat': 1.0, 'dog': 2.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tripwire.errors import ConfigError


def _name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def count_labels(labels: Any) -> dict[str, float]:
    """Count per class of class labels (a list, numpy array, pandas Series, or a dask collection).

    A dask array or series is counted on the cluster; only the counts come back.

    Raises:
        ConfigError: (a ``ValueError``) the labels are not class labels (fractional or non-finite
            values: a regression target, which has no classes to balance).
    """
    if hasattr(labels, "value_counts") and hasattr(labels, "compute"):  # dask Series
        counts = labels.value_counts().compute()
        values, numbers = np.asarray(counts.index), np.asarray(counts.to_numpy())
    else:
        if hasattr(labels, "compute"):  # dask array
            import dask.array as da

            values, numbers = (np.asarray(x) for x in da.compute(*da.unique(labels.ravel(), return_counts=True)))
        else:
            values, numbers = np.unique(np.asarray(labels).ravel(), return_counts=True)
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise ConfigError("labels= takes class labels (integers or names); these have fractional or NaN values, "
                          "as a regression target does. Leave labels= out for regression: class_imbalance "
                          "does not apply", source="<keyword arguments>", path="labels")
    order = np.argsort(values, kind="stable")
    return {_name(values[i]): float(numbers[i]) for i in order}
