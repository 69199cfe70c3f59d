"""The validation rules on early-stopped XGBoost runs: clean data, and the same with 40% random labels.

Boosted trees drive the training loss towards 0 while the validation loss holds at its best, so
the gap between them is large without being overfitting; early stopping then ends the run. This
script trains six scikit-learn data sets at three learning rates, each with the early-stopping
window its users pick at that rate, with the default rules, once on clean labels and once with
40% of the labels replaced at random, and prints which of ``overfit`` / ``overtraining`` fired
and at which round.

Run: ``python benchmarks/overfit_early_stopping.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import logging

import numpy as np
import xgboost as xgb
from sklearn import datasets
from sklearn.model_selection import train_test_split

from tripwire import XGBoostTripwire

#: (eta, early_stopping_rounds)
SETUPS = ((0.05, 100), (0.1, 50), (0.3, 30))
VALIDATION_RULES = ("overfit", "overtraining")


def data_sets() -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """(name, X, y, objective) for each data set."""
    out = []
    for name, load, objective in (("breast_cancer", datasets.load_breast_cancer, "binary:logistic"),
                                  ("diabetes", datasets.load_diabetes, "reg:squarederror"),
                                  ("digits", datasets.load_digits, "multi:softprob"),
                                  ("wine", datasets.load_wine, "multi:softprob")):
        x, y = load(return_X_y=True)
        out.append((name, x, y, objective))
    x, y = datasets.make_regression(n_samples=1000, n_features=20, noise=10, random_state=0)
    out.append(("make_regression", x, y, "reg:squarederror"))
    x, y = datasets.make_classification(n_samples=3000, n_features=30, n_informative=8, n_redundant=10,
                                        random_state=0)
    out.append(("make_classification", x, y, "binary:logistic"))
    return out


def train(x: np.ndarray, y: np.ndarray, objective: str, eta: float, window: int) -> tuple[int, int, list[str]]:
    """Rounds trained, best round, and the validation rules that fired ('rule@round')."""
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.25, random_state=0)
    params = {"objective": objective, "eta": eta, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8,
              "seed": 0, "nthread": 1}
    if objective == "multi:softprob":
        params["num_class"] = int(y.max() + 1)
    callback = XGBoostTripwire(None, log_dir=False)
    callback.monitor.print_summary = False
    train_set = xgb.DMatrix(xt, yt)
    booster = xgb.train(params, train_set, 1000, evals=[(train_set, "train"), (xgb.DMatrix(xv, yv), "validation")],
                        early_stopping_rounds=window, verbose_eval=False, callbacks=[callback])
    fired = [f"{f.kind}@{f.step}" for f in callback.findings if f.kind in VALIDATION_RULES]
    return booster.num_boosted_rounds(), booster.best_iteration, fired


def main() -> None:
    logging.getLogger("tripwire").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    print("| data set | labels | eta | window | rounds | best | fired |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, x, y, objective in data_sets():
        noisy = y.copy()
        relabel = rng.random(len(y)) < 0.4
        noisy[relabel] = rng.permutation(y)[relabel]
        for labels, target in (("clean", y), ("40% random", noisy)):
            for eta, window in SETUPS:
                rounds, best, fired = train(x, target, objective, eta, window)
                print(f"| {name} | {labels} | {eta} | {window} | {rounds} | {best} | {', '.join(fired) or '-'} |",
                      flush=True)


if __name__ == "__main__":
    main()
