"""XGBoost on tabular data: scikit-learn's bundled sets (breast cancer, diabetes, digits, wine)
and generated ones (``make_regression``, ``make_classification`` with redundant, correlated
features), with and without early stopping, column subsampling and the sklearn API.

Every entry hands its validation rows to the callback (``eval_data``) as well as to XGBoost's
``evals``: a callback never sees the eval DMatrix, and ``low_feature_importance`` reads a
held-out importance from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.labels import collapse_labels
from corpus.registry import CORPUS


def _split(x: Any, y: Any, val: float = 0.25, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    stratify = y if len(set(y.tolist())) < 20 else None
    return train_test_split(x, y, test_size=val, random_state=seed, stratify=stratify)


def _train(make_callback: Callable[..., Any], x: Any, y: Any, params: dict[str, Any], *, rounds: int,
           early_stopping: int | None = None, classes: bool = True, train_rows: int | None = None) -> Any:
    import xgboost as xgb

    xt, xv, yt, yv = _split(x, y)
    if train_rows is not None:
        xt, yt = xt[:train_rows], yt[:train_rows]
    callback = make_callback(labels=yt, eval_data=(xv, yv)) if classes else make_callback(eval_data=(xv, yv))
    xgb.train({"nthread": 1, "seed": 0, **params}, xgb.DMatrix(xt, yt), rounds,
              evals=[(xgb.DMatrix(xt, yt), "train"), (xgb.DMatrix(xv, yv), "validation")],
              early_stopping_rounds=early_stopping, verbose_eval=False, callbacks=[callback])
    return callback


def _breast_cancer(make_callback: Callable[..., Any], *, leak: bool = False) -> Any:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    if leak:  # a column computed from the label (e.g. a "diagnosis code" joined in by mistake)
        x = np.column_stack([x, y + 0.01 * np.random.default_rng(0).normal(size=len(y))])
    return _train(make_callback, x, y, {"objective": "binary:logistic", "eta": 0.05, "max_depth": 4,
                                        "subsample": 0.8, "colsample_bytree": 0.8, "eval_metric": "logloss"},
                  rounds=600, early_stopping=40)


def _diabetes(make_callback: Callable[..., Any], *, noise_columns: int = 0) -> Any:
    import numpy as np
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    if noise_columns:  # columns of pure noise joined in (ids, hashes, unrelated measurements)
        x = np.column_stack([x, np.random.default_rng(0).normal(size=(len(y), noise_columns))])
    return _train(make_callback, x, y, {"objective": "reg:squarederror", "eta": 0.03, "max_depth": 3,
                                        "subsample": 0.8, "min_child_weight": 5, "eval_metric": "rmse"},
                  rounds=120, classes=False)  # what 5-fold CV on the training rows picks (118)


def _digits(make_callback: Callable[..., Any], *, collapsed: bool = False) -> Any:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    if collapsed:
        y = collapse_labels(y)
    return _train(make_callback, x, y, {"objective": "multi:softprob", "num_class": 10, "eta": 0.1, "max_depth": 4,
                                        "colsample_bytree": 0.5, "eval_metric": "mlogloss"}, rounds=150)


def _regression(make_callback: Callable[..., Any], *, depth: int = 6, rounds: int = 1000) -> Any:
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=5000, n_features=20, n_informative=12, noise=10.0, random_state=0)
    return _train(make_callback, x, y, {"objective": "reg:squarederror", "eta": 0.05, "max_depth": depth,
                                        "colsample_bytree": 0.7, "eval_metric": "rmse", "tree_method": "hist"},
                  rounds=rounds, early_stopping=30, classes=False)


def _correlated(make_callback: Callable[..., Any], *, train_rows: int | None = None) -> Any:
    """The sklearn API on correlated features (redundant linear combinations of the informative ones)."""
    import xgboost as xgb
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_features=30, n_informative=8, n_redundant=12, n_repeated=2,
                               n_classes=3, class_sep=0.8, flip_y=0.03, random_state=0)
    xt, xv, yt, yv = _split(x, y)
    if train_rows is not None:
        xt, yt = xt[:train_rows], yt[:train_rows]
    callback = make_callback(labels=yt, eval_data=(xv, yv))
    model = xgb.XGBClassifier(n_estimators=300, learning_rate=0.05, max_depth=5, subsample=0.8,
                              colsample_bytree=0.6, n_jobs=1, random_state=0, eval_metric="mlogloss",
                              callbacks=[callback])
    model.fit(xt, yt, eval_set=[(xt, yt), (xv, yv)], verbose=False)
    return callback


def _wine(make_callback: Callable[..., Any], *, noisy_labels: float = 0.0) -> Any:
    import numpy as np
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    if noisy_labels:  # a share of the rows relabelled at random (a corrupted annotation batch)
        rng = np.random.default_rng(0)
        hit = rng.random(len(y)) < noisy_labels
        y = np.where(hit, rng.integers(0, 3, len(y)), y)
    return _train(make_callback, x, y, {"objective": "multi:softprob", "num_class": 3, "eta": 0.1,
                                        "max_depth": 3, "colsample_bytree": 0.6, "eval_metric": "mlogloss"},
                  rounds=200, early_stopping=20)


BREAST = CORPUS.healthy(
    "xgboost/breast_cancer", "xgboost",
    "binary logistic on breast cancer (569 rows, 30 correlated features), subsample and colsample 0.8, "
    "eta 0.05, early stopping 40 of 600 rounds",
    _breast_cancer)
CORPUS.twin(BREAST, "label_leak", "a column that is the label plus a little noise", ["low_feature_importance"],
            lambda mc: _breast_cancer(mc, leak=True))

DIABETES = CORPUS.healthy(
    "xgboost/diabetes", "xgboost",
    "squared-error regression on diabetes (442 rows, 10 features), depth 3, eta 0.03, no early stopping: 120 rounds, "
    "the number 5-fold cross-validation on the training rows picks",
    _diabetes)
CORPUS.twin(DIABETES, "noise_columns", "40 columns of pure noise joined to the 10 real ones",
            ["low_feature_importance"], lambda mc: _diabetes(mc, noise_columns=40))

DIGITS = CORPUS.healthy(
    "xgboost/digits", "xgboost",
    "10-class softprob on digits (1797 rows, 64 pixel features, many always 0), colsample_bytree 0.5, 150 rounds",
    _digits)
CORPUS.twin(DIGITS, "collapsed_labels", "96% of the labels of classes 1-9 fell back to class 0",
            ["class_imbalance"], lambda mc: _digits(mc, collapsed=True))

REGRESSION = CORPUS.healthy(
    "xgboost/make_regression", "xgboost",
    "squared-error regression on make_regression (5000 x 20, 12 informative), hist, depth 6, colsample 0.7, "
    "early stopping 30 of 1000 rounds",
    _regression)
CORPUS.twin(REGRESSION, "depth_20", "max_depth 20 (trees grown far past what the data supports)", ["tree_depth"],
            lambda mc: _regression(mc, depth=20, rounds=150))

CORRELATED = CORPUS.healthy(
    "xgboost/correlated_sklearn", "xgboost",
    "XGBClassifier (sklearn API) on make_classification: 3 classes, 30 features of which 12 redundant and 2 repeated, "
    "3% flipped labels; depth 5, subsample 0.8, colsample 0.6, 300 rounds",
    _correlated)
CORPUS.twin(CORRELATED, "tiny_subset", "trained on 60 rows instead of 3000", ["overfit", "overtraining"],
            lambda mc: _correlated(mc, train_rows=60))

WINE = CORPUS.healthy(
    "xgboost/wine", "xgboost",
    "3-class softprob on wine (178 rows, 13 features; 45-row validation set), depth 3, colsample 0.6, eta 0.1, "
    "early stopping 20 of 200 rounds",
    _wine)
CORPUS.twin(WINE, "noisy_labels", "40% of the rows relabelled at random", ["overfit", "overtraining"],
            lambda mc: _wine(mc, noisy_labels=0.4))
