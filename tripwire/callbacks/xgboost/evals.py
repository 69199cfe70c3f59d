"""Training and validation losses from XGBoost's ``evals_log``, as lower-is-better values.

``evals_log`` maps each eval set's name to ``{metric: [value per round]}`` (in ``xgb.cv`` each
value is a ``(mean, std)`` pair). :class:`EvalReader` picks which set is "train" and which is
"validation", picks one metric, and turns rising metrics (auc, aucpr, map, ndcg, pre) into
``1 - value`` so that the loss rules can treat every metric as a loss.

Defaults, when the names are not given:

- **train**: the first set whose name contains ``train`` (``train``, ``dtrain``, ``training``);
  with the sklearn API's names (``validation_0``, ``validation_1``, ...) and two or more sets,
  ``validation_0``, the usual ``eval_set=[(X_train, y_train), (X_val, y_val)]``.
- **validation**: the last other set (sklearn: the last ``validation_k``, or the only one).
- **metric**: the last lower-is-better metric reported (logloss, rmse, error, ...), else the last
  metric; XGBoost's early stopping also uses the last one.

Example:
    >>> log = {"train": {"auc": [0.9], "logloss": [0.3]}, "eval": {"auc": [0.8], "logloss": [0.4]}}
    >>> r = EvalReader()
    >>> r.losses(log), r.train_set, r.val_set, r.metric
    ((0.3, 0.4), 'train', 'eval', 'logloss')
    >>> r = EvalReader(metric="auc")
    >>> [round(v, 3) for v in r.losses(log)], r.maximize
    ([0.1, 0.2], True)
    >>> pick_sets(["validation_0", "validation_1"])
    ('validation_0', 'validation_1')
"""

from __future__ import annotations

import re
from typing import Any

from tripwire.errors import ConfigError

# XGBoost's own list (callback.EarlyStopping): metrics that improve by rising.
_MAXIMIZED = ("auc", "aucpr", "pre", "pre@", "map", "ndcg", "auc@", "aucpr@", "map@", "ndcg@")
_SKLEARN_NAME = re.compile(r"validation_\d+")


def is_maximized(metric: str) -> bool:
    """Whether a built-in XGBoost metric rises as the model improves (auc, aucpr, map, ndcg, pre)."""
    return metric != "mape" and metric.startswith(_MAXIMIZED)


def pick_sets(names: list[str], train: str | None = None, val: str | None = None) -> tuple[str | None, str | None]:
    """(train set, validation set) among ``names``; a name given explicitly must exist.

    Raises:
        ConfigError: a given name is not among the eval sets.
    """
    for given, what in ((train, "train_set"), (val, "val_set")):
        if given is not None and given not in names:
            raise ConfigError(f"{what}={given!r} is not an eval set of this run; the eval sets are "
                              f"{', '.join(map(repr, names)) or 'none'} (pass evals=[(dtrain, 'train'), "
                              f"(dval, 'validation')] to xgboost.train, or eval_set=[...] to fit)", path=what)
    if train is None:
        candidates = [n for n in names if n != val]
        train = next((n for n in candidates if "train" in n.lower()), None)
        if train is None and len(names) >= 2 and all(_SKLEARN_NAME.fullmatch(n) for n in names):
            train = "validation_0" if "validation_0" in candidates else None
    if val is None:
        others = [n for n in names if n != train]
        val = others[-1] if others else None
    return train, val


def _last(values: list[Any]) -> float:
    value = values[-1]
    return float(value[0] if isinstance(value, tuple) else value)


class EvalReader:
    """Reads the latest train/validation metric of a run from ``evals_log`` as losses.

    Args:
        train_set: name of the training eval set; see the module doc for the default.
        val_set: name of the validation eval set.
        metric: metric name (``logloss``, ``auc``, ``rmse``, ...); default: the last
            lower-is-better one reported, else the last.
        maximize: whether the metric rises as the model improves; default: XGBoost's list
            (auc, aucpr, map, ndcg, pre). Needed for a custom metric that rises.

    After the first :meth:`losses` call, ``train_set``, ``val_set``, ``metric`` and ``maximize``
    hold what was chosen.
    """

    def __init__(self, *, train_set: str | None = None, val_set: str | None = None, metric: str | None = None,
                 maximize: bool | None = None) -> None:
        self.train_set, self.val_set, self.metric, self.maximize = train_set, val_set, metric, maximize
        self.resolved = False

    def resolve(self, evals_log: dict[str, dict[str, list[Any]]]) -> None:
        """Choose the eval sets and the metric from the names in ``evals_log``.

        Raises:
            ConfigError: a set or metric named explicitly is not in the run.
        """
        self.train_set, self.val_set = pick_sets(list(evals_log), self.train_set, self.val_set)
        reported = list(evals_log[self.val_set or self.train_set]) if (self.val_set or self.train_set) else []
        if self.metric is None and reported:
            falling = [m for m in reported if not is_maximized(m)]
            self.metric = (falling or reported)[-1]
        elif self.metric is not None and self.metric not in reported:
            raise ConfigError(f"metric={self.metric!r} is not reported by this run; it reports "
                              f"{', '.join(map(repr, reported)) or 'no metric'} (set eval_metric in the params)",
                              path="metric")
        if self.maximize is None and self.metric is not None:
            self.maximize = is_maximized(self.metric)
        self.resolved = True

    @property
    def description(self) -> str:
        """How ``loss``/``val_loss`` are derived, for logs: ``loss = 1 - train-auc``."""
        sign = "1 - " if self.maximize else ""
        parts = [f"{key} = {sign}{name}-{self.metric}"
                 for key, name in (("loss", self.train_set), ("val_loss", self.val_set)) if name]
        return ", ".join(parts) or "no eval set: no loss"

    def losses(self, evals_log: dict[str, dict[str, list[Any]]]) -> tuple[float | None, float | None]:
        """(train loss, validation loss) at the latest round; None where the run has no such set."""
        if not evals_log:
            return None, None
        if not self.resolved:
            self.resolve(evals_log)
        out = []
        for name in (self.train_set, self.val_set):
            values = evals_log.get(name, {}).get(self.metric) if name and self.metric else None
            if not values:
                out.append(None)
                continue
            value = _last(values)
            out.append(1.0 - value if self.maximize else value)
        return out[0], out[1]
