"""The XGBoost wing: :class:`XGBoostTripwire` and what it reads from the booster.

Importing this package imports XGBoost (through :mod:`~tripwire.callbacks.xgboost.callback`);
without XGBoost the ``ModuleNotFoundError`` names the extra that installs it. The modules:

- :mod:`~tripwire.callbacks.xgboost.callback`: the ``xgboost.callback.TrainingCallback``;
- :mod:`~tripwire.callbacks.xgboost.trees`: tree depth and feature importance from the new rounds' trees;
- :mod:`~tripwire.callbacks.xgboost.evals`: which eval set and metric give ``loss`` and ``val_loss``;
- :mod:`~tripwire.callbacks.xgboost.labels`: the class counts of ``labels=``.

Example:
    >>> import tripwire
    >>> from tripwire.callbacks.xgboost import XGBoostTripwire
    >>> XGBoostTripwire is tripwire.XGBoostTripwire
    True
"""

from __future__ import annotations

from tripwire.callbacks.xgboost.callback import XGBoostTripwire

__all__ = ["XGBoostTripwire"]
